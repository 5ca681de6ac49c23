#include "scout/app/control.hpp"

#include <pwd.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <map>
#include <ostream>
#include <regex>
#include <sstream>
#include <thread>

#include "scout/adapters/command_spool.hpp"
#include "scout/adapters/state_store.hpp"
#include "scout/adapters/timezone.hpp"
#include "scout/adapters/wall_clock.hpp"
#include "scout/adapters/yaml_config.hpp"
#include "scout/app/check.hpp"
#include "scout/app/cli.hpp"
#include "scout/core/message.hpp"
#include "scout/core/reading.hpp"
#include "scout/core/redact.hpp"

namespace scout::app {

using nlohmann::json;
using namespace std::chrono_literals;

namespace {

std::string dump(const json& j, int indent = -1) {
  return j.dump(indent, ' ', false, json::error_handler_t::replace);
}

}  // namespace

std::optional<core::Config> load_config_for(const std::string& config_path, std::ostream& err,
                                            const char* command) {
  const auto env = adapters::system_config_environment();
  const auto path = config_path.empty() ? adapters::default_config_path(env) : config_path;
  auto load = adapters::load_config(path, env);
  if (!load.config) {
    for (const auto& problem : load.problems) err << problem.to_string() << "\n";
    err << "scout " << command << ": the config " << path << " is not valid ("
        << load.problems.size() << " problem(s)); run `scout validate`\n";
    return std::nullopt;
  }
  return std::move(load.config);
}

namespace {

// "1 min", "45 s", "2 h 5 min" for an age.
std::string age_text(core::Duration d) {
  if (d < 0ms) d = 0ms;
  const auto s = std::chrono::duration_cast<std::chrono::seconds>(d).count();
  if (s < 60) return std::to_string(s) + " s";
  if (s < 3600) return std::to_string(s / 60) + " min";
  std::string text = std::to_string(s / 3600) + " h";
  if ((s % 3600) / 60 != 0) text += " " + std::to_string((s % 3600) / 60) + " min";
  return text;
}

// Who a number is for a patient: "patient" (the patient's own name in text), a contact's name,
// or the masked number.
std::string label_of(const core::Patient& patient, const std::string& number) {
  if (number == patient.phone) return patient.name;
  for (const auto& contact : patient.contacts) {
    if (contact.phone == number) return contact.name;
  }
  return core::mask_phone(number);
}

std::string shell_user() {
  if (const char* sudo = std::getenv("SUDO_USER"); sudo != nullptr && sudo[0] != '\0') {
    return sudo;
  }
  if (const passwd* pw = ::getpwuid(::getuid()); pw != nullptr && pw->pw_name != nullptr) {
    return pw->pw_name;
  }
  return "uid " + std::to_string(::getuid());
}

// The service that wrote status.json, if it is running now and ticking.
struct ServiceSeen {
  bool running = false;  // mode run, process alive, ticked recently
  bool ticking = false;  // the last tick is recent (run or cron)
  std::string mode;
  long long pid = 0;
  std::optional<core::TimePoint> tick_at;
  bool saved = true;
  bool alive = false;  // the process that wrote it still exists
};

ServiceSeen look_at_service(const std::optional<json>& status, const core::Config& config,
                            core::TimePoint now) {
  ServiceSeen seen;
  if (!status) return seen;
  seen.mode = status->value("mode", "");
  seen.pid = status->value("pid", 0LL);
  seen.saved = status->value("saved", true);
  if (const auto it = status->find("tick_at"); it != status->end() && it->is_number_integer()) {
    seen.tick_at = core::TimePoint{core::Duration{it->get<long long>()}};
  }
  const auto limit = 3 * config.poll.interval + core::Duration{60s};
  seen.ticking = seen.tick_at && now - *seen.tick_at <= limit && *seen.tick_at <= now + 60s;
  bool alive = false;
  if (seen.pid > 0) {
    alive = ::kill(static_cast<pid_t>(seen.pid), 0) == 0 || errno == EPERM;
  }
  seen.alive = alive;
  seen.running = seen.mode == "run" && alive && seen.ticking;
  return seen;
}

CheckStatus status_of_alarm(const core::ActiveAlarm& alarm) {
  return alarm.alarm.severity == core::Severity::urgent ? CheckStatus::critical
                                                        : CheckStatus::warning;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// scout status

int run_status(const StatusOptions& options, std::ostream& out, std::ostream& err) {
  if (options.format != "text" && options.format != "json") {
    err << "scout status: --format must be text or json\n";
    return k_exit_usage;
  }
  const auto config = load_config_for(options.config_path, err, "status");
  if (!config) return exit_code(CheckStatus::unknown);
  const std::string state_path =
      options.state_path.empty() ? config->state_file : options.state_path;
  const core::TimePoint now = adapters::wall_clock_now();
  adapters::CommandSpool spool(state_path);
  const auto status_doc = spool.read_status();
  const ServiceSeen service = look_at_service(status_doc, *config, now);

  std::optional<std::string> state_error;
  core::State state;
  {
    std::ifstream in(state_path, std::ios::binary);
    if (!in) {
      state_error = "no state file at " + state_path + " (scout has not run yet, or cannot save)";
    } else {
      std::string text(adapters::k_max_state_bytes + 1, '\0');
      in.read(text.data(), static_cast<std::streamsize>(text.size()));
      text.resize(static_cast<std::size_t>(in.gcount()));
      const json doc = json::parse(text, nullptr, false);
      auto parsed = text.size() > adapters::k_max_state_bytes || doc.is_discarded()
                        ? core::Result<core::State>(core::fail(core::ErrorKind::malformed_json,
                                                               "not JSON"))
                        : adapters::state_from_json(doc);
      if (parsed) {
        state = std::move(*parsed);
      } else {
        state_error = "the state file " + state_path + " cannot be read: " +
                      parsed.error().message;
      }
    }
  }

  CheckStatus overall = CheckStatus::ok;
  std::vector<std::string> service_problems;
  if (state_error) service_problems.push_back(*state_error);
  if (!service.tick_at) {
    service_problems.push_back("scout has not reported a tick (is the service running?)");
  } else if (!service.ticking) {
    service_problems.push_back("scout's last tick was " + age_text(now - *service.tick_at) +
                               " ago (is the service running?)");
  }
  if (service.mode == "run" && !service.alive) {
    service_problems.push_back("the service (pid " + std::to_string(service.pid) +
                               ") that wrote the last status is not running");
  }
  if (!service.saved) {
    service_problems.push_back("scout cannot save its state to " + state_path +
                               " and monitors from memory");
  }
  if (!service_problems.empty()) overall = CheckStatus::unknown;

  const json* polled = nullptr;
  if (status_doc) {
    if (const auto it = status_doc->find("patients"); it != status_doc->end() && it->is_object()) {
      polled = &*it;
    }
  }

  json patients_json = json::array();
  std::ostringstream text;
  if (service.tick_at) {
    text << "scout: " << (service.running ? "running" : service.mode == "once" ? "cron (--once)"
                                                                                 : "not running")
         << (service.pid > 0 && service.running ? " (pid " + std::to_string(service.pid) + ")" : "")
         << ", last tick " << age_text(now - *service.tick_at) << " ago at "
         << adapters::local_hhmm("", *service.tick_at) << ", state "
         << (service.saved ? "saved" : "NOT SAVED") << "\n";
  }
  for (const auto& problem : service_problems) text << "problem: " << problem << "\n";

  for (const auto& patient : config->patients) {
    CheckStatus status = CheckStatus::ok;
    json pj{{"name", patient.name}};
    const auto it = state.patients.find(patient.name);
    const core::PatientState* ps = it == state.patients.end() ? nullptr : &it->second;
    text << patient.name << ": ";
    if (ps != nullptr && ps->facts.latest) {
      const auto& latest = *ps->facts.latest;
      text << core::format_glucose(latest.sgv, config->units) << " "
           << core::to_string(config->units);
      const std::string arrow = core::direction_arrow(latest.direction);
      if (!arrow.empty()) text << " " << arrow;
      text << ", " << age_text(now - latest.date) << " ago";
      pj["sgv"] = latest.sgv;
      pj["direction"] = latest.direction;
      pj["age_s"] = std::chrono::duration_cast<std::chrono::seconds>(now - latest.date).count();
    } else {
      text << "no reading yet";
      pj["sgv"] = nullptr;
    }
    pj["last_poll_age_s"] = nullptr;
    pj["error"] = nullptr;
    if (polled != nullptr) {
      if (const auto p = polled->find(patient.name); p != polled->end() && p->is_object()) {
        if (const auto at = p->find("polled_at"); at != p->end() && at->is_number_integer()) {
          const core::TimePoint when{core::Duration{at->get<long long>()}};
          pj["last_poll_age_s"] =
              std::chrono::duration_cast<std::chrono::seconds>(now - when).count();
          text << "; polled " << age_text(now - when) << " ago";
        }
        if (const auto e = p->find("error"); e != p->end() && e->is_string()) {
          pj["error"] = *e;
          text << "; last poll FAILED: " << e->get<std::string>();
          status = worse(status, CheckStatus::unknown);
        }
      }
    }
    if (ps != nullptr && ps->failing_since) {
      text << "; Nightscout failing since " << adapters::local_hhmm(patient.timezone,
                                                                    *ps->failing_since);
    }
    text << "\n";
    json alarms = json::array();
    if (ps != nullptr) {
      for (const auto* slot : {&ps->glucose, &ps->data}) {
        if (!*slot) continue;
        const core::ActiveAlarm& a = **slot;
        status = worse(status, status_of_alarm(a));
        const auto& steps = a.peak.severity == core::Severity::urgent
                                ? patient.settings.escalation.urgent
                                : patient.settings.escalation.warning;
        text << "  " << core::alarm_title(a.alarm) << " (" << a.id << ") since "
             << adapters::local_hhmm(patient.timezone, a.raised_at) << ", step "
             << std::min<int>(a.next_step, static_cast<int>(steps.size())) << " of "
             << steps.size() << (a.run > 0 ? " (repeat " + std::to_string(a.run) + ")" : "");
        json aj{{"id", a.id},
                {"kind", core::to_string(a.alarm.kind)},
                {"severity", core::to_string(a.alarm.severity)},
                {"raised_at", adapters::utc_iso8601(a.raised_at)},
                {"steps_done", a.next_step},
                {"steps", steps.size()},
                {"run", a.run},
                {"snoozed_until", nullptr},
                {"acknowledged_by", a.acknowledged_by.empty() ? json() : json(a.acknowledged_by)}};
        if (a.snoozed_until) {
          aj["snoozed_until"] = adapters::utc_iso8601(*a.snoozed_until);
          text << "; snoozed until " << adapters::local_hhmm(patient.timezone, *a.snoozed_until);
          if (!a.acknowledged_by.empty()) text << " by " << a.acknowledged_by;
        }
        json notified = json::array();
        std::string names;
        for (const auto& number : a.notified) {
          const std::string label = label_of(patient, number);
          notified.push_back(label);
          names += (names.empty() ? "" : ", ") + label;
        }
        aj["notified"] = std::move(notified);
        if (!names.empty()) text << "; notified " << names;
        text << "\n";
        json calls = json::array();
        for (const auto& call : a.calls) {
          if (core::is_final(call.progress)) continue;
          const std::string who = call.to_label == "patient" ? patient.name : call.to_label;
          text << "    call to " << who << ": " << core::to_string(call.progress) << ", placed "
               << age_text(now - call.placed_at) << " ago\n";
          calls.push_back(json{{"to", who},
                               {"progress", core::to_string(call.progress)},
                               {"placed_at", adapters::utc_iso8601(call.placed_at)}});
        }
        aj["calls_in_flight"] = std::move(calls);
        alarms.push_back(std::move(aj));
      }
    }
    pj["alarms"] = std::move(alarms);
    pj["status"] = to_string(status);
    overall = worse(overall, status);
    patients_json.push_back(std::move(pj));
  }
  text << "status: ";
  std::string upper = to_string(overall);
  std::transform(upper.begin(), upper.end(), upper.begin(),
                 [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  text << upper << "\n";

  if (options.format == "json") {
    json doc{{"status", to_string(overall)},
             {"service",
              {{"running", service.running},
               {"mode", service.mode.empty() ? json() : json(service.mode)},
               {"last_tick_age_s",
                service.tick_at ? json(std::chrono::duration_cast<std::chrono::seconds>(
                                           now - *service.tick_at)
                                           .count())
                                : json()},
               {"saved", service.saved},
               {"problems", service_problems}}},
             {"patients", std::move(patients_json)}};
    out << dump(doc, 2) << "\n";
  } else {
    out << text.str();
  }
  return exit_code(overall);
}

// ---------------------------------------------------------------------------------------------
// scout ack | snooze | unsnooze

int run_command(const CommandOptions& options, std::ostream& out, std::ostream& err) {
  const std::string verb = core::to_string(options.kind);
  const auto config = load_config_for(options.config_path, err, verb.c_str());
  if (!config) return k_exit_config;
  const auto patient = std::find_if(config->patients.begin(), config->patients.end(),
                                    [&](const core::Patient& p) { return p.name == options.patient; });
  if (patient == config->patients.end()) {
    err << "scout " << verb << ": no patient named '" << options.patient
        << "' in the config; the patients are:";
    for (const auto& p : config->patients) err << " " << p.name;
    err << "\n";
    return k_exit_usage;
  }
  core::ShellCommand command;
  command.kind = options.kind;
  command.patient = options.patient;
  command.by = options.by.empty() ? shell_user() : options.by;
  if (!options.only.empty()) {
    static const std::vector<std::string> k_kinds{
        "urgent_low", "urgent_low_soon", "low", "urgent_high", "high", "stale",
        "unreachable", "sensor_error", "glucose", "data"};
    if (std::find(k_kinds.begin(), k_kinds.end(), options.only) == k_kinds.end()) {
      err << "scout " << verb << ": --kind must be one of urgent_low, urgent_low_soon, low, "
          << "urgent_high, high, stale, unreachable, sensor_error, glucose, data; got '"
          << options.only << "'\n";
      return k_exit_usage;
    }
    command.only = options.only;
  }
  if (options.kind == core::ShellCommand::Kind::snooze) {
    const auto duration = core::parse_duration(options.duration);
    if (!duration || *duration <= core::Duration{0} || *duration > core::Duration{24h}) {
      err << "scout snooze: DURATION must be like 30m, 2h or 1h30m, more than 0 and at most "
             "24h; got '"
          << options.duration << "'\n";
      return k_exit_usage;
    }
    command.duration = *duration;
  }

  const std::string state_path =
      options.state_path.empty() ? config->state_file : options.state_path;
  adapters::CommandSpool spool(state_path);
  const core::TimePoint now = adapters::wall_clock_now();
  const ServiceSeen service = look_at_service(spool.read_status(), *config, now);
  const auto id = spool.submit(command, now);
  if (!id) {
    err << "scout " << verb << ": cannot queue the request: " << id.error().message
        << " (run it as the user scout runs as, or as root)\n";
    return k_exit_fatal;
  }
  if (!service.running) {
    out << verb << " for " << options.patient << " queued (request " << *id
        << "): no scout service is running now; the next `scout run` (or `scout run --once` "
           "from cron) applies it\n";
    return k_exit_ok;
  }
  // The service wakes on the request (inotify) or within a second; bounded wait.
  const auto deadline = std::chrono::steady_clock::now() +
                        std::chrono::milliseconds(static_cast<long long>(
                            std::clamp(options.wait_s, 0.0, 600.0) * 1000));
  while (true) {
    if (auto outcome = spool.take_result(*id)) {
      for (const auto& line : outcome->lines) out << options.patient << ": " << line << "\n";
      return outcome->changed ? k_exit_ok : k_exit_fatal;
    }
    if (std::chrono::steady_clock::now() >= deadline) break;
    std::this_thread::sleep_for(50ms);
  }
  err << "scout " << verb << ": the running service (pid " << service.pid
      << ") has not answered within " << options.wait_s << " s; the request " << *id
      << " stays queued and is applied when it wakes\n";
  return 75;  // EX_TEMPFAIL
}

// ---------------------------------------------------------------------------------------------
// scout log

core::Result<core::TimePoint> parse_since(const std::string& raw, core::TimePoint now,
                                          const std::string& zone) {
  const auto bad = [&raw] {
    return core::fail(core::ErrorKind::usage,
                      "--since '" + raw + "' is not a time; use -8h, -2d, 22:00, 'today 06:00', "
                      "'yesterday 22:00', 2026-11-30 or '2026-11-30 22:00'");
  };
  std::string text = raw;
  while (!text.empty() && text.front() == ' ') text.erase(text.begin());
  while (!text.empty() && text.back() == ' ') text.pop_back();
  if (text.empty()) return bad();
  std::smatch m;
  if (text.front() == '-') {
    auto d = core::parse_duration(text.substr(1));
    if (!d) {
      static const std::regex k_days(R"(^-(\d{1,4})d$)");
      if (std::regex_match(text, m, k_days)) {
        return now - std::chrono::duration_cast<core::Duration>(
                         std::chrono::hours{24 * std::stoll(m[1].str())});
      }
      return bad();
    }
    return now - *d;
  }
  const long long today = adapters::local_day_number(zone, now);
  static const std::regex k_hhmm(R"(^(\d{1,2}):(\d{2})$)");
  static const std::regex k_rel(R"(^(today|yesterday)(?:\s+(\d{1,2}):(\d{2}))?$)");
  static const std::regex k_date(R"(^(\d{4})-(\d{2})-(\d{2})(?:[ T](\d{1,2}):(\d{2}))?$)");
  const auto minute = [](const std::string& h, const std::string& mm) -> std::optional<int> {
    const int hours = std::stoi(h);
    const int minutes = std::stoi(mm);
    if (hours > 23 || minutes > 59) return std::nullopt;
    return hours * 60 + minutes;
  };
  if (std::regex_match(text, m, k_hhmm)) {
    const auto at = minute(m[1].str(), m[2].str());
    if (!at) return bad();
    auto t = adapters::from_local(zone, today, *at);
    if (t > now) t = adapters::from_local(zone, today - 1, *at);
    return t;
  }
  if (std::regex_match(text, m, k_rel)) {
    const long long day = m[1].str() == "today" ? today : today - 1;
    int at = 0;
    if (m[2].matched) {
      const auto parsed = minute(m[2].str(), m[3].str());
      if (!parsed) return bad();
      at = *parsed;
    }
    return adapters::from_local(zone, day, at);
  }
  if (std::regex_match(text, m, k_date)) {
    const std::chrono::year_month_day ymd{std::chrono::year{std::stoi(m[1].str())},
                                          std::chrono::month{static_cast<unsigned>(std::stoi(m[2].str()))},
                                          std::chrono::day{static_cast<unsigned>(std::stoi(m[3].str()))}};
    if (!ymd.ok()) return bad();
    int at = 0;
    if (m[4].matched) {
      const auto parsed = minute(m[4].str(), m[5].str());
      if (!parsed) return bad();
      at = *parsed;
    }
    return adapters::from_local(zone, std::chrono::sys_days{ymd}.time_since_epoch().count(), at);
  }
  return bad();
}

namespace {

std::optional<core::TimePoint> entry_time(const json& entry) {
  const auto it = entry.find("time");
  if (it == entry.end() || !it->is_string()) return std::nullopt;
  const std::string& t = it->get_ref<const std::string&>();
  static const std::regex k_iso(R"(^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,3}))?Z$)");
  std::smatch m;
  if (!std::regex_match(t, m, k_iso)) return std::nullopt;
  const std::chrono::year_month_day ymd{std::chrono::year{std::stoi(m[1].str())},
                                        std::chrono::month{static_cast<unsigned>(std::stoi(m[2].str()))},
                                        std::chrono::day{static_cast<unsigned>(std::stoi(m[3].str()))}};
  if (!ymd.ok()) return std::nullopt;
  std::string ms = m[7].matched ? m[7].str() : "0";
  while (ms.size() < 3) ms += '0';
  return core::TimePoint{std::chrono::sys_days{ymd}.time_since_epoch() +
                         std::chrono::hours{std::stoi(m[4].str())} +
                         std::chrono::minutes{std::stoi(m[5].str())} +
                         std::chrono::seconds{std::stoi(m[6].str())} +
                         std::chrono::milliseconds{std::stoi(ms)}};
}

std::string field(const json& entry, const char* key) {
  const auto it = entry.find(key);
  return it != entry.end() && it->is_string() ? it->get<std::string>() : std::string();
}

std::string kind_title(const std::string& kind) {
  static const std::map<std::string, core::AlarmKind> k_kinds{
      {"urgent_low", core::AlarmKind::urgent_low},   {"urgent_low_soon", core::AlarmKind::urgent_low_soon},
      {"low", core::AlarmKind::low},                 {"urgent_high", core::AlarmKind::urgent_high},
      {"high", core::AlarmKind::high},               {"stale", core::AlarmKind::stale},
      {"unreachable", core::AlarmKind::unreachable}, {"sensor_error", core::AlarmKind::sensor_error}};
  const auto it = k_kinds.find(kind);
  if (it == k_kinds.end()) return kind;
  core::Alarm alarm;
  alarm.kind = it->second;
  return core::alarm_title(alarm);
}

std::string glucose_text(const json& entry, core::GlucoseUnit unit) {
  const std::string sgv = field(entry, "sgv");
  if (sgv.empty()) return "";
  int value = 0;
  try {
    value = std::stoi(sgv);
  } catch (const std::exception&) {
    return "";
  }
  std::string text = core::format_glucose(value, unit) + " " + core::to_string(unit);
  const std::string words = core::direction_words(field(entry, "direction"));
  if (!words.empty()) text += " " + words;
  return text;
}

}  // namespace

std::string narrate_alarm(const std::vector<json>& entries, core::GlucoseUnit unit,
                          const std::string& zone) {
  std::string line;
  std::map<std::string, std::string> sms_to;  // sms key -> who
  const auto who = [](const json& entry) {
    const std::string label = field(entry, "to_label");
    if (label == "patient") return field(entry, "patient");
    return label.empty() ? field(entry, "to") : label;
  };
  std::string last_part;
  const auto add = [&line, &last_part](const std::string& part) {
    if (part.empty() || part == last_part) return;  // "answered" then "human": said once
    last_part = part;
    line += line.empty() ? part : " — " + part;
  };
  bool headed = false;
  for (const auto& entry : entries) {
    const std::string type = field(entry, "type");
    const auto at = entry_time(entry);
    const std::string hhmm = at ? adapters::local_hhmm(zone, *at) : "??:??";
    if (!headed && (type == "alarm_raised" || type == "alarm_replaced" || type == "step" ||
                    type == "call")) {
      std::string head = hhmm + " " + field(entry, "patient") + " " +
                         kind_title(field(entry, "kind"));
      const std::string value = glucose_text(entry, unit);
      const std::string kind = field(entry, "kind");
      const bool data = kind == "stale" || kind == "unreachable" || kind == "sensor_error";
      if (!value.empty()) head += data ? " (last " + value + ")" : " " + value;
      if (type == "alarm_replaced") head += " (worse than before)";
      line = head;
      headed = true;
      if (type == "alarm_raised" || type == "alarm_replaced") continue;
    }
    if (!headed) {
      line = hhmm + " " + field(entry, "patient") + " alarm " + field(entry, "alarm");
      headed = true;
    }
    if (type == "alarm_updated") {
      add(hhmm + " now " + kind_title(field(entry, "kind")) + " " + glucose_text(entry, unit));
    } else if (type == "call_placed") {
      add("called " + who(entry));
    } else if (type == "call_not_placed") {
      add("could not call " + who(entry));
    } else if (type == "call_outcome") {
      const std::string progress = field(entry, "progress");
      if (progress == "unanswered" || progress == "timeout") add("no answer");
      else if (progress == "busy") add("busy");
      else if (progress == "machine") add("voicemail");
      else if (progress == "rejected") add("rejected");
      else if (progress == "failed") add("call failed");
      else if (progress == "cancelled") add("cancelled");
      else if (progress == "human" || progress == "answered") add("answered");
    } else if (type == "keypress") {
      const std::string digits = field(entry, "digits");
      add(digits.empty() ? "no key pressed" : "pressed " + digits);
    } else if (type == "acknowledged") {
      if (field(entry, "via") == "shell") {
        add(hhmm + " acknowledged by " + field(entry, "by") + " from the shell");
      } else {
        add("acknowledged, snoozed " + field(entry, "snooze"));
      }
    } else if (type == "snoozed") {
      add(hhmm + " snoozed " + field(entry, "snooze") + " by " + field(entry, "by"));
    } else if (type == "unsnoozed") {
      add(hhmm + " unsnoozed by " + field(entry, "by"));
    } else if (type == "snooze_ended") {
      add(hhmm + " snooze over");
    } else if (type == "chain_restarted" && field(entry, "reason") == "repeat") {
      add(hhmm + " again, not acknowledged");
    } else if (type == "chain_restarted" && field(entry, "reason") == "data_returned") {
      add(hhmm + " data back, starting over");
    } else if (type == "sms") {
      sms_to[field(entry, "sms")] = who(entry);
    } else if (type == "sms_sent") {
      const auto it = sms_to.find(field(entry, "sms"));
      add("texted " + (it != sms_to.end() ? it->second : field(entry, "to")));
    } else if (type == "sms_failed") {
      const auto it = sms_to.find(field(entry, "sms"));
      add("SMS to " + (it != sms_to.end() ? it->second : field(entry, "to")) + " FAILED");
    } else if (type == "sms_suppressed") {
      add("SMS to " + who(entry) + " not sent (" + field(entry, "limit") + ")");
    } else if (type == "call_held_back") {
      add(who(entry) + " not called (" + field(entry, "detail") + "), texted instead");
    } else if (type == "alarm_resolved") {
      const std::string value = glucose_text(entry, unit);
      add(hhmm + " cleared" + (value.empty() ? "" : " at " + value));
    }
  }
  return line;
}

int run_log(const LogOptions& options, std::ostream& out, std::ostream& err) {
  if (options.format != "text" && options.format != "json") {
    err << "scout log: --format must be text or json\n";
    return k_exit_usage;
  }
  const auto config = load_config_for(options.config_path, err, "log");
  if (!config) return k_exit_config;
  if (config->journal_file.empty()) {
    err << "scout log: the config has no journal_file, so scout keeps no journal to show\n";
    return k_exit_fatal;
  }
  const core::TimePoint now = adapters::wall_clock_now();
  core::TimePoint since = now - std::chrono::hours{24};
  if (!options.since.empty()) {
    auto parsed = parse_since(options.since, now);
    if (!parsed) {
      err << "scout log: " << parsed.error().message << "\n";
      return k_exit_usage;
    }
    since = *parsed;
  }
  if (!options.patient.empty() &&
      std::none_of(config->patients.begin(), config->patients.end(),
                   [&](const core::Patient& p) { return p.name == options.patient; })) {
    err << "scout log: no patient named '" << options.patient << "' in the config\n";
    return k_exit_usage;
  }
  std::ifstream in(config->journal_file);
  if (!in) {
    err << "scout log: cannot read the journal " << config->journal_file << "\n";
    return k_exit_fatal;
  }
  std::map<std::string, std::string> zone_of;
  for (const auto& p : config->patients) zone_of[p.name] = p.timezone;

  // Entries of each alarm in order; alarms in the order of their first entry after `since`.
  std::vector<std::string> order;
  std::map<std::string, std::vector<json>> by_alarm;
  std::vector<json> other;
  std::size_t unreadable = 0;
  std::string line;
  constexpr std::size_t k_max_line = 1 << 16;
  while (std::getline(in, line)) {
    if (line.size() > k_max_line) {
      ++unreadable;
      continue;
    }
    json entry = json::parse(line, nullptr, false);
    if (!entry.is_object()) {
      ++unreadable;
      continue;
    }
    const auto at = entry_time(entry);
    if (!at || *at < since) continue;
    const std::string patient = field(entry, "patient");
    if (!options.patient.empty() && patient != options.patient) continue;
    const std::string alarm = field(entry, "alarm");
    if (alarm.empty()) {
      const std::string type = field(entry, "type");
      if (type == "command_ignored" || type == "clock_jumped" || type == "patient_removed") {
        other.push_back(std::move(entry));
      }
      continue;
    }
    const std::string key = patient + "/" + alarm;
    auto& group = by_alarm[key];
    if (group.empty()) order.push_back(key);
    if (group.size() < 10'000) group.push_back(std::move(entry));
  }

  if (options.format == "json") {
    json alarms = json::array();
    for (const auto& key : order) {
      const auto& group = by_alarm[key];
      const std::string patient = field(group.front(), "patient");
      alarms.push_back(json{{"patient", patient},
                            {"alarm", field(group.front(), "alarm")},
                            {"text", narrate_alarm(group, config->units, zone_of[patient])},
                            {"entries", group}});
    }
    out << dump(json{{"since", adapters::utc_iso8601(since)},
                     {"alarms", std::move(alarms)},
                     {"other", std::move(other)},
                     {"unreadable_lines", unreadable}},
                2)
        << "\n";
    return k_exit_ok;
  }
  std::string day;
  for (const auto& key : order) {
    const auto& group = by_alarm[key];
    const std::string patient = field(group.front(), "patient");
    const auto at = entry_time(group.front());
    if (at) {
      const std::string date = adapters::local_date(zone_of[patient], *at);
      if (date != day) {
        out << "== " << date << "\n";
        day = date;
      }
    }
    out << narrate_alarm(group, config->units, zone_of[patient]) << "\n";
  }
  for (const auto& entry : other) {
    const auto at = entry_time(entry);
    out << (at ? adapters::local_hhmm("", *at) : "??:??") << " " << field(entry, "type") << " "
        << field(entry, "patient") << " " << field(entry, "reason") << field(entry, "offset")
        << "\n";
  }
  if (order.empty()) {
    out << "no alarms since " << adapters::local_date("", since) << " "
        << adapters::local_hhmm("", since) << "\n";
  }
  if (unreadable > 0) err << "scout log: " << unreadable << " unreadable line(s) skipped\n";
  return k_exit_ok;
}

}  // namespace scout::app
