#include "scout/app/logging.hpp"

#include <chrono>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>
#include <memory>

#include <nlohmann/json.hpp>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

namespace scout::app {

namespace {

// The fields of the message being logged by log_fields() on this thread (the logger is
// synchronous: it formats in the calling thread, before log_fields returns).
thread_local const std::vector<std::pair<std::string, std::string>>* t_fields = nullptr;
thread_local std::string t_message;

// syslog priority of a level (sd-daemon(3) prefixes).
int priority(spdlog::level::level_enum level) {
  switch (level) {
    case spdlog::level::trace:
    case spdlog::level::debug:
      return 7;
    case spdlog::level::info:
      return 6;
    case spdlog::level::warn:
      return 4;
    case spdlog::level::err:
      return 3;
    case spdlog::level::critical:
      return 2;
    default:
      return 6;
  }
}

// Text lines for journald (JOURNAL_STREAM set, SPEC §6): "<4>warn message", the priority
// prefix journald reads (sd-daemon(3)); no timestamp, journald has its own.
class JournaldFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    const std::string head = "<" + std::to_string(priority(msg.level)) + ">" +
                             std::string(spdlog::level::to_string_view(msg.level).data(),
                                         spdlog::level::to_string_view(msg.level).size()) +
                             " ";
    dest.append(head.data(), head.data() + head.size());
    dest.append(msg.payload.data(), msg.payload.data() + msg.payload.size());
    dest.push_back('\n');
  }
  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<JournaldFormatter>();
  }
};

// One JSON object per line: {"time": ISO-8601 UTC, "level": ..., "msg": ...}. nlohmann does the
// escaping, so a message with quotes or control characters stays one valid line.
class JsonFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                        msg.time.time_since_epoch())
                        .count();
    const std::time_t seconds = static_cast<std::time_t>(ms / 1000);
    std::tm tm{};
    gmtime_r(&seconds, &tm);
    char stamp[64];
    std::snprintf(stamp, sizeof stamp, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                  static_cast<int>(ms % 1000));
    nlohmann::ordered_json line = {
        {"time", stamp},
        {"level", std::string(spdlog::level::to_string_view(msg.level).data(),
                              spdlog::level::to_string_view(msg.level).size())},
    };
    if (t_fields != nullptr) {
      // SPEC §6: each field its own key; "msg" is the event name alone.
      line["msg"] = t_message;
      for (const auto& [key, value] : *t_fields) {
        if (key != "time" && key != "level" && key != "msg" && !line.contains(key)) {
          line[key] = value;
        }
      }
    } else {
      line["msg"] = std::string(msg.payload.data(), msg.payload.size());
    }
    const auto text = line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
    dest.append(text.data(), text.data() + text.size());
  }
  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<JsonFormatter>();
  }
};

}  // namespace

core::Status configure_logging(const std::string& level, const std::string& format) {
  const auto parsed = spdlog::level::from_str(level);
  if (level != "trace" && level != "debug" && level != "info" && level != "warn" &&
      level != "error") {
    return core::fail(core::ErrorKind::usage,
                      "--log-level must be trace, debug, info, warn or error, got '" + level + "'");
  }
  if (format != "text" && format != "json") {
    return core::fail(core::ErrorKind::usage,
                      "--log-format must be text or json, got '" + format + "'");
  }
  auto logger = std::make_shared<spdlog::logger>(
      "scout", std::make_shared<spdlog::sinks::stderr_sink_mt>());
  const char* journal_stream = std::getenv("JOURNAL_STREAM");
  if (format == "json") {
    logger->set_formatter(std::make_unique<JsonFormatter>());
  } else if (journal_stream != nullptr && journal_stream[0] != '\0') {
    logger->set_formatter(std::make_unique<JournaldFormatter>());
  } else {
    logger->set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %l %v", spdlog::pattern_time_type::utc);
  }
  logger->set_level(parsed);
  logger->flush_on(spdlog::level::trace);
  spdlog::set_default_logger(std::move(logger));
  return {};
}

void log_fields(spdlog::level::level_enum level, const std::string& message,
                const std::vector<std::pair<std::string, std::string>>& fields) {
  if (!spdlog::should_log(level)) return;
  std::string text = message;
  for (const auto& [key, value] : fields) {
    text += ' ';
    text += key;
    text += '=';
    const bool quote = value.find(' ') != std::string::npos;
    if (quote) text += '"';
    text += value;
    if (quote) text += '"';
  }
  t_fields = &fields;
  t_message = message;
  spdlog::log(level, "{}", text);
  t_fields = nullptr;
}

}  // namespace scout::app
