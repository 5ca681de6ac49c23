#include "scout/adapters/command_spool.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>

namespace scout::adapters {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// Group-writable: members of the service's group (scout) may queue requests and read answers.
constexpr mode_t k_dir_mode = 0770;
constexpr mode_t k_file_mode = 0644;
constexpr std::size_t k_max_status_bytes = std::size_t{64} << 20;

core::Error io(const std::string& what, const std::string& path, int err) {
  return core::Error{core::ErrorKind::io, what + " " + path + ": " + std::strerror(err)};
}

// Writes `text` to `path` through "<dir>/.tmp-<name>" and a rename; fsync when asked.
core::Status write_atomically(const std::string& path, const std::string& text, bool sync) {
  const fs::path target{path};
  const std::string tmp =
      (target.parent_path() / (".tmp-" + target.filename().string())).string();
  const int fd = ::open(tmp.c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, k_file_mode);
  if (fd < 0) return tl::make_unexpected(io("cannot create", tmp, errno));
  int err = ::fchmod(fd, k_file_mode) != 0 ? errno : 0;
  std::size_t done = 0;
  while (err == 0 && done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      err = errno;
    } else {
      done += static_cast<std::size_t>(n);
    }
  }
  if (err == 0 && sync && ::fsync(fd) != 0) err = errno;
  if (::close(fd) != 0 && err == 0) err = errno;
  if (err == 0 && ::rename(tmp.c_str(), path.c_str()) != 0) err = errno;
  if (err != 0) {
    ::unlink(tmp.c_str());
    return tl::make_unexpected(io("cannot write", path, err));
  }
  return {};
}

// The file's text, at most `limit` bytes; nullopt when it cannot be read or is larger.
std::optional<std::string> read_limited(const std::string& path, std::size_t limit) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::string text(limit + 1, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  const auto got = static_cast<std::size_t>(in.gcount());
  if (got > limit) return std::nullopt;
  text.resize(got);
  return text;
}

// mkdir -p `dir`; when root created it, hand it to the owner of `owner_of`.
int make_dir(const fs::path& dir, const fs::path& owner_of) {
  std::error_code ec;
  if (fs::is_directory(dir, ec)) return 0;
  if (const int err = make_dir(dir.parent_path(), owner_of); err != 0) return err;
  if (::mkdir(dir.c_str(), k_dir_mode) != 0) {
    if (errno != EEXIST) return errno;
    return 0;
  }
  ::chmod(dir.c_str(), k_dir_mode);  // whatever the umask (the unit's UMask=0027)
  struct stat owner {};
  if (::geteuid() == 0 && ::stat(owner_of.c_str(), &owner) == 0 && owner.st_uid != 0) {
    if (::chown(dir.c_str(), owner.st_uid, owner.st_gid) != 0) return errno;
  }
  return 0;
}

// Name order is submission order within a process (the counter) and across processes up to
// the millisecond.
std::string new_id(core::TimePoint now) {
  static std::atomic<unsigned> counter{0};
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%013lld-%07d-%06u",
                static_cast<long long>(now.time_since_epoch().count()), static_cast<int>(::getpid()),
                counter++ % 1000000u);
  return buffer;
}

bool is_request_name(const std::string& name) {
  return name.size() > 5 && name.front() != '.' && name.ends_with(".json");
}

}  // namespace

json request_to_json(const core::ShellCommand& command, core::TimePoint at) {
  return json{{"version", 1},
              {"command", core::to_string(command.kind)},
              {"patient", command.patient},
              {"by", command.by},
              {"duration_ms", command.duration.count()},
              {"only", command.only},
              {"at", at.time_since_epoch().count()}};
}

core::Result<core::ShellCommand> request_from_json(const json& doc) {
  const auto bad = [](const std::string& why) {
    return core::fail(core::ErrorKind::malformed_json, "command request: " + why);
  };
  if (!doc.is_object()) return bad("not a JSON object");
  if (doc.value("version", json()) != json(1)) return bad("\"version\" is not 1");
  const auto text = [&doc](const char* key) -> std::optional<std::string> {
    const auto it = doc.find(key);
    if (it == doc.end() || !it->is_string()) return std::nullopt;
    return it->get<std::string>();
  };
  core::ShellCommand command;
  const auto verb = text("command");
  if (!verb) return bad("\"command\" missing or not a string");
  if (*verb == "ack") {
    command.kind = core::ShellCommand::Kind::ack;
  } else if (*verb == "snooze") {
    command.kind = core::ShellCommand::Kind::snooze;
  } else if (*verb == "unsnooze") {
    command.kind = core::ShellCommand::Kind::unsnooze;
  } else {
    return bad("unknown \"command\" " + json(*verb).dump(-1, ' ', false,
                                                        json::error_handler_t::replace));
  }
  const auto patient = text("patient");
  if (!patient || patient->empty()) return bad("\"patient\" missing");
  command.patient = *patient;
  command.by = text("by").value_or("");
  command.only = text("only").value_or("");
  if (command.kind == core::ShellCommand::Kind::snooze) {
    const auto it = doc.find("duration_ms");
    if (it == doc.end() || !it->is_number_integer()) return bad("\"duration_ms\" missing");
    const auto ms = it->get<long long>();
    // The shell refuses more than 24 h; a hand-written file gets the same bound.
    if (ms <= 0 || ms > 24LL * 3600 * 1000) return bad("\"duration_ms\" out of range");
    command.duration = core::Duration{ms};
  }
  return command;
}

CommandSpool::CommandSpool(const std::string& state_file)
    : base_(state_file + ".d"),
      commands_(base_ + "/commands"),
      results_(base_ + "/results"),
      status_(base_ + "/status.json") {}

core::Status CommandSpool::prepare() const {
  const fs::path owner = fs::path(base_).parent_path().empty() ? fs::path(".")
                                                               : fs::path(base_).parent_path();
  for (const auto* dir : {&commands_, &results_}) {
    if (const int err = make_dir(*dir, owner); err != 0) {
      return tl::make_unexpected(io("cannot create", *dir, err));
    }
  }
  return {};
}

core::Result<std::string> CommandSpool::submit(const core::ShellCommand& command,
                                               core::TimePoint now) const {
  if (auto ready = prepare(); !ready) return tl::make_unexpected(ready.error());
  const std::string id = new_id(now);
  const std::string text = request_to_json(command, now).dump(-1, ' ', false,
                                                               json::error_handler_t::replace);
  if (auto written = write_atomically(commands_ + "/" + id + ".json", text + "\n", true);
      !written) {
    return tl::make_unexpected(written.error());
  }
  return id;
}

std::optional<core::CommandOutcome> CommandSpool::take_result(const std::string& id) const {
  const std::string path = results_ + "/" + id + ".json";
  const auto text = read_limited(path, k_max_request_bytes * 16);
  if (!text) return std::nullopt;
  const json doc = json::parse(*text, nullptr, false);
  ::unlink(path.c_str());
  core::CommandOutcome outcome;
  if (!doc.is_object()) {
    outcome.lines.push_back("the service's answer could not be read");
    return outcome;
  }
  outcome.changed = doc.value("changed", false);
  if (const auto it = doc.find("lines"); it != doc.end() && it->is_array()) {
    for (const auto& line : *it) {
      if (line.is_string()) outcome.lines.push_back(line.get<std::string>());
    }
  }
  return outcome;
}

std::vector<SpooledRequest> CommandSpool::pending() const {
  std::vector<std::string> names;
  std::error_code ec;
  for (fs::directory_iterator it(commands_, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (is_request_name(name)) names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  if (names.size() > k_max_requests_per_wake) names.resize(k_max_requests_per_wake);
  std::vector<SpooledRequest> requests;
  requests.reserve(names.size());
  for (const auto& name : names) {
    SpooledRequest request;
    request.id = name.substr(0, name.size() - 5);
    const auto text = read_limited(commands_ + "/" + name, k_max_request_bytes);
    if (!text) {
      request.error = "cannot read the request (missing, unreadable or over " +
                      std::to_string(k_max_request_bytes) + " bytes)";
    } else {
      const json doc = json::parse(*text, nullptr, false);
      auto command = request_from_json(doc);
      if (command) {
        command->id = request.id;
        request.command = std::move(*command);
      } else {
        request.error = command.error().message;
      }
    }
    requests.push_back(std::move(request));
  }
  return requests;
}

core::Status CommandSpool::finish(const std::string& id, const core::CommandOutcome& outcome,
                                  core::TimePoint now) const {
  const json doc{{"version", 1},
                 {"id", id},
                 {"changed", outcome.changed},
                 {"lines", outcome.lines},
                 {"at", now.time_since_epoch().count()}};
  auto written = write_atomically(results_ + "/" + id + ".json",
                                  doc.dump(-1, ' ', false, json::error_handler_t::replace) + "\n",
                                  false);
  const std::string request = commands_ + "/" + id + ".json";
  if (::unlink(request.c_str()) != 0 && errno != ENOENT) {
    const int err = errno;
    // A request that cannot be removed would be applied again at every wake: move it aside.
    const std::string aside = commands_ + "/.failed-" + id + ".json";
    if (::rename(request.c_str(), aside.c_str()) != 0) {
      return tl::make_unexpected(io("cannot remove the request", request, err));
    }
  }
  return written;
}

void CommandSpool::prune_results(core::TimePoint now) const {
  std::error_code ec;
  const auto cutoff = now - std::chrono::hours{1};
  for (fs::directory_iterator it(results_, ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code time_ec;
    const auto written = fs::last_write_time(it->path(), time_ec);
    if (time_ec) continue;
    const auto written_sys = std::chrono::file_clock::to_sys(written);
    if (written_sys < cutoff) fs::remove(it->path(), time_ec);
  }
}

core::Status CommandSpool::write_status(const json& status) const {
  if (auto ready = prepare(); !ready) return ready;
  return write_atomically(status_, status.dump(-1, ' ', false, json::error_handler_t::replace),
                          false);
}

std::optional<json> CommandSpool::read_status() const {
  const auto text = read_limited(status_, k_max_status_bytes);
  if (!text) return std::nullopt;
  json doc = json::parse(*text, nullptr, false);
  if (!doc.is_object()) return std::nullopt;
  return doc;
}

}  // namespace scout::adapters
