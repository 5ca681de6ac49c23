#include "scout/app/check.hpp"

#include <algorithm>
#include <chrono>
#include <map>
#include <ostream>
#include <sstream>

#include <spdlog/spdlog.h>

#include "scout/adapters/command_spool.hpp"
#include "scout/adapters/nightscout.hpp"
#include "scout/adapters/timezone.hpp"
#include "scout/adapters/yaml_config.hpp"
#include "scout/app/seams.hpp"
#include "scout/app/simulated.hpp"
#include "scout/core/message.hpp"
#include "scout/core/redact.hpp"

namespace scout::app {

using core::Alarm;
using core::Severity;

const char* to_string(CheckStatus status) {
  switch (status) {
    case CheckStatus::ok:
      return "ok";
    case CheckStatus::warning:
      return "warning";
    case CheckStatus::critical:
      return "critical";
    case CheckStatus::unknown:
      return "unknown";
  }
  return "unknown";
}

int exit_code(CheckStatus status) {
  switch (status) {
    case CheckStatus::ok:
      return 0;
    case CheckStatus::warning:
      return 1;
    case CheckStatus::critical:
      return 2;
    case CheckStatus::unknown:
      return 3;
  }
  return 3;
}

namespace {

int rank(CheckStatus status) {
  switch (status) {
    case CheckStatus::ok:
      return 0;
    case CheckStatus::warning:
      return 1;
    case CheckStatus::unknown:
      return 2;
    case CheckStatus::critical:
      return 3;
  }
  return 2;
}

}  // namespace

CheckStatus worse(CheckStatus a, CheckStatus b) { return rank(a) >= rank(b) ? a : b; }

PatientReport make_report(const core::Patient& patient, const core::Assessment& assessment,
                          const std::vector<Outbound>& outbound, core::GlucoseUnit unit,
                          core::TimePoint now) {
  PatientReport report;
  report.name = patient.name;
  report.assessment = assessment;
  report.configured_stale = patient.settings.stale;
  report.alarm = assessment.worst();
  if (assessment.poll_error) report.error = assessment.poll_error->message;
  if (report.alarm) {
    report.status =
        report.alarm->severity == Severity::urgent ? CheckStatus::critical : CheckStatus::warning;
    for (const bool call : {true, false}) {
      for (const auto& out : outbound) {
        if (out.patient != patient.name || out.call != call) continue;
        if (report.message.empty()) report.message = out.text;
        const std::string channel = call ? "call" : "sms";
        auto same = std::find_if(report.would.begin(), report.would.end(), [&](const auto& w) {
          return w.channel == channel && w.to == out.to_label;
        });
        if (same == report.would.end()) {
          report.would.push_back({channel, out.to_label, {out.to}});
        }
      }
    }
    if (report.message.empty()) {
      report.message = core::alarm_message(patient.name, *report.alarm, assessment,
                                           patient.settings, unit, now, "");
    }
  } else if (assessment.poll_error) {
    report.status = CheckStatus::unknown;
  } else {
    report.status = CheckStatus::ok;
  }
  return report;
}

namespace {

nlohmann::json optional_int(const std::optional<int>& value) {
  return value ? nlohmann::json(*value) : nlohmann::json(nullptr);
}

std::string describe_would(const std::vector<WouldAction>& would, const std::string& patient) {
  std::string text;
  for (const auto& action : would) {
    if (!text.empty()) text += "; ";
    text += action.channel == "call" ? "call " : "text ";
    text += action.to == "patient" ? patient : action.to;
    std::string phones;
    for (const auto& phone : action.phones) {
      phones += (phones.empty() ? "" : ", ") + core::mask_phone(phone);
    }
    text += phones.empty() ? "" : " (" + phones + ")";
  }
  return text.empty() ? "nobody: no step reaches anyone now" : text;
}

// Display width of UTF-8 text: one column per code point (the arrows and the ellipsis are
// single-width).
std::size_t display_width(const std::string& text) {
  std::size_t width = 0;
  for (const unsigned char c : text) {
    if ((c & 0xC0) != 0x80) ++width;
  }
  return width;
}

std::string pad(const std::string& text, std::size_t width) {
  const auto w = display_width(text);
  return text + std::string(w < width ? width - w : 0, ' ');
}

}  // namespace

CheckStatus overall_status(const std::vector<PatientReport>& reports) {
  CheckStatus overall = CheckStatus::ok;
  for (const auto& report : reports) overall = worse(overall, report.status);
  return overall;
}

namespace {

nlohmann::json seconds_or_null(const std::optional<core::Duration>& duration) {
  return duration ? nlohmann::json(
                        std::chrono::duration_cast<std::chrono::seconds>(*duration).count())
                  : nlohmann::json(nullptr);
}

// One patient's object of the SPEC §1 document. Built by assignment: an initializer list would
// copy every value once more.
nlohmann::json patient_json(const PatientReport& report, core::GlucoseUnit unit) {
  const auto& a = report.assessment;
  nlohmann::json entry = nlohmann::json::object();
  auto& would = entry["would"] = nlohmann::json::array();
  for (const auto& action : report.would) {
    auto& w = would.emplace_back(nlohmann::json::object());
    w["channel"] = action.channel;
    w["to"] = action.to;
  }
  auto& forecast = entry["forecast"] = nlohmann::json::array();
  for (const auto& point : a.forecast) {
    auto& f = forecast.emplace_back(nlohmann::json::object());
    f["date"] = point.at.time_since_epoch().count();
    f["sgv"] = point.mgdl;
  }
  entry["name"] = report.name;
  entry["status"] = to_string(report.status);
  entry["alarm"] = report.alarm ? nlohmann::json(core::to_string(report.alarm->kind))
                                : nlohmann::json(nullptr);
  entry["severity"] = report.alarm ? nlohmann::json(core::to_string(report.alarm->severity))
                                   : nlohmann::json(nullptr);
  entry["sgv"] = a.latest ? nlohmann::json(a.latest->sgv) : nlohmann::json(nullptr);
  entry["glucose"] = a.latest ? nlohmann::json(core::format_glucose(a.latest->sgv, unit))
                              : nlohmann::json(nullptr);
  entry["unit"] = core::to_string(unit);
  entry["direction"] = a.latest && !a.latest->direction.empty()
                           ? nlohmann::json(a.latest->direction)
                           : nlohmann::json(nullptr);
  entry["arrow"] = a.latest ? nlohmann::json(core::direction_arrow(a.latest->direction))
                            : nlohmann::json(nullptr);
  entry["delta"] = optional_int(a.delta);
  entry["age_s"] = seconds_or_null(a.age);
  entry["date"] = a.latest ? nlohmann::json(a.latest->date.time_since_epoch().count())
                           : nlohmann::json(nullptr);
  entry["message"] =
      report.message.empty() ? nlohmann::json(nullptr) : nlohmann::json(report.message);
  auto& thresholds = entry["thresholds"] = nlohmann::json::object();
  thresholds["urgent_low"] = a.thresholds.urgent_low;
  thresholds["low"] = a.thresholds.low;
  thresholds["high"] = a.thresholds.high;
  thresholds["urgent_high"] = a.thresholds.urgent_high;
  auto& stale = entry["stale"] = nlohmann::json::object();
  stale["warn_s"] = std::chrono::duration_cast<std::chrono::seconds>(a.stale.warn).count();
  stale["urgent_s"] = std::chrono::duration_cast<std::chrono::seconds>(a.stale.urgent).count();
  entry["cadence_s"] = seconds_or_null(a.cadence);
  entry["delta_display"] = a.delta && a.mgdl_5_mins_ago && a.latest
                               ? nlohmann::json(core::format_delta_between(
                                     a.latest->sgv, *a.mgdl_5_mins_ago, unit))
                               : nlohmann::json(nullptr);
  entry["status_code"] = optional_int(a.status_code);
  entry["error"] = report.error ? nlohmann::json(*report.error) : nlohmann::json(nullptr);
  return entry;
}

std::string dump_json(const nlohmann::json& value) {
  return value.dump(2, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace

nlohmann::json render_json(const std::vector<PatientReport>& reports, core::GlucoseUnit unit,
                           core::TimePoint now) {
  auto patients = nlohmann::json::array();
  for (const auto& report : reports) patients.push_back(patient_json(report, unit));
  return {{"status", to_string(overall_status(reports))},
          {"checked_at", now.time_since_epoch().count()},
          {"patients", std::move(patients)}};
}

void write_json(std::ostream& out, const std::vector<PatientReport>& reports,
                core::GlucoseUnit unit, core::TimePoint now,
                const std::optional<std::string>& service_error) {
  CheckStatus overall = overall_status(reports);
  if (service_error) overall = worse(overall, CheckStatus::unknown);
  // nlohmann::json's objects are ordered by key: checked_at, patients, service_error, status;
  // each patient's object is dumped on its own and indented two levels deeper (a dumped string
  // holds no raw newline: JSON escapes it).
  out << "{\n  \"checked_at\": " << now.time_since_epoch().count() << ",\n  \"patients\": [";
  for (std::size_t i = 0; i < reports.size(); ++i) {
    out << (i == 0 ? "\n    " : ",\n    ");
    const std::string text = dump_json(patient_json(reports[i], unit));
    std::size_t from = 0;
    for (auto newline = text.find('\n'); newline != std::string::npos;
         newline = text.find('\n', from)) {
      out.write(text.data() + from, static_cast<std::streamsize>(newline - from));
      out << "\n    ";
      from = newline + 1;
    }
    out.write(text.data() + from, static_cast<std::streamsize>(text.size() - from));
  }
  out << (reports.empty() ? "]" : "\n  ]") << ",\n";
  if (service_error) out << "  \"service_error\": " << dump_json(*service_error) << ",\n";
  out << "  \"status\": " << dump_json(to_string(overall)) << "\n}";
}

std::string render_text(const std::vector<PatientReport>& reports, core::GlucoseUnit unit) {
  const std::vector<std::string> header = {"PATIENT", "GLUCOSE", "TREND", "DELTA",
                                           "AGE",     "ALARM",   "WOULD"};
  std::vector<std::vector<std::string>> rows;
  for (const auto& report : reports) {
    const auto& a = report.assessment;
    std::string glucose = "-";
    std::string trend = "-";
    if (a.latest) {
      // The sensor's limits read as the sensor shows them, without a unit.
      glucose = a.latest->sgv == core::k_sgv_low_code    ? "LOW"
                : a.latest->sgv == core::k_sgv_high_code ? "HIGH"
                : core::format_glucose(a.latest->sgv, unit) + " " + core::to_string(unit);
      trend = core::direction_arrow(a.latest->direction);
    }
    const std::string delta = a.delta && a.mgdl_5_mins_ago
                                  ? core::format_delta_between(a.latest->sgv, *a.mgdl_5_mins_ago,
                                                               unit)
                                  : "-";
    const std::string age = a.age ? core::format_age(*a.age) : "-";
    std::string alarm = report.alarm ? core::to_string(report.alarm->kind) : "-";
    if (report.alarm && report.alarm->kind == core::AlarmKind::stale) {
      alarm += std::string(" (") + core::to_string(report.alarm->severity) + ")";
    }
    std::string would = "nothing";
    if (report.alarm) {
      would = describe_would(report.would, report.name);
    } else if (report.status == CheckStatus::unknown) {
      would = "nothing yet: cannot read Nightscout";
    }
    rows.push_back({report.name, glucose, trend, delta, age, alarm, would});
  }
  std::vector<std::size_t> widths(header.size());
  for (std::size_t i = 0; i < header.size(); ++i) {
    widths[i] = display_width(header[i]);
    for (const auto& row : rows) widths[i] = std::max(widths[i], display_width(row[i]));
  }
  std::ostringstream out;
  const auto print_row = [&](const std::vector<std::string>& row) {
    std::string line;
    for (std::size_t i = 0; i < row.size(); ++i) {
      line += i + 1 == row.size() ? row[i] : pad(row[i], widths[i]) + "  ";
    }
    out << line << "\n";
  };
  print_row(header);
  for (const auto& row : rows) print_row(row);
  bool blank = false;
  for (const auto& report : reports) {
    if (!report.message.empty() || report.error) {
      if (!blank) out << "\n";
      blank = true;
    }
    if (!report.message.empty()) out << report.message << "\n";
    if (report.error) out << report.name << ": cannot evaluate: " << *report.error << "\n";
  }
  // SPEC §3: the stale thresholds in force when the sensor's cadence changed them.
  for (const auto& report : reports) {
    const auto& a = report.assessment;
    if (a.stale == report.configured_stale || !a.cadence) continue;
    const auto whole_minutes = [](core::Duration d) {
      return std::to_string(std::chrono::duration_cast<std::chrono::minutes>(d).count()) + " min";
    };
    out << report.name << ": a reading every " << whole_minutes(*a.cadence) << ", so no data is "
        << "an alarm after " << whole_minutes(a.stale.warn) << " (urgent after "
        << whole_minutes(a.stale.urgent) << ")\n";
  }
  std::string status = to_string(overall_status(reports));
  std::transform(status.begin(), status.end(), status.begin(),
                 [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  out << "\nstatus: " << status << "\n";
  return out.str();
}

namespace {

int fail_unknown(const CheckOptions& options, std::ostream& out, std::ostream& err,
                 const std::string& message) {
  err << "scout check: " << message << "\n";
  if (options.format == "json") {
    out << nlohmann::json{{"status", "unknown"},
                          {"patients", nlohmann::json::array()},
                          {"error", message}}
               .dump(2, ' ', false, nlohmann::json::error_handler_t::replace)
        << "\n";
  } else {
    out << "status: UNKNOWN\n";
  }
  return exit_code(CheckStatus::unknown);
}

}  // namespace

int run_check(const CheckOptions& options, std::ostream& out, std::ostream& err) {
  if (options.format != "text" && options.format != "json") {
    CheckOptions text_options = options;
    text_options.format = "text";
    return fail_unknown(text_options, out, err,
                        "--format must be text or json, got '" + options.format + "'");
  }
  const auto env = adapters::system_config_environment();
  const auto path =
      options.config_path.empty() ? adapters::default_config_path(env) : options.config_path;
  const auto load = adapters::load_config(path, env);
  if (!load.config) {
    for (const auto& problem : load.problems) err << problem.to_string() << "\n";
    return fail_unknown(options, out, err,
                        "the config " + path + " is not valid (" +
                            std::to_string(load.problems.size()) +
                            " problem(s)); run `scout validate` for the list");
  }
  const core::Config& config = *load.config;
  for (const auto& warning : load.warnings) err << "warning: " << warning.to_string() << "\n";

  std::vector<const core::Patient*> patients;
  for (const auto& patient : config.patients) {
    if (options.patient.empty() || patient.name == options.patient) patients.push_back(&patient);
  }
  if (patients.empty()) {
    return fail_unknown(options, out, err, "no patient named '" + options.patient + "' in " + path);
  }
  if (!options.sgv && !options.direction.empty()) {
    return fail_unknown(options, out, err, "--direction needs --sgv");
  }
  if (!options.direction.empty() && !core::is_direction_name(options.direction)) {
    return fail_unknown(options, out, err,
                        "--direction must be a Nightscout direction (DoubleUp, SingleUp, "
                        "FortyFiveUp, Flat, FortyFiveDown, SingleDown, DoubleDown, NONE, ...), "
                        "got '" + options.direction + "'");
  }

  // The same Service as `scout run`, from an empty state, on telephony that places nothing:
  // what it would send is what core::step does (SPEC §1 `would`).
  core::Config chosen = config;
  chosen.patients.clear();
  for (const auto* patient : patients) chosen.patients.push_back(*patient);
  SystemClock clock;
  NightscoutSource nightscout(config.poll.timeout, clock, /*keep_alive=*/false);
  std::optional<int> simulated_mgdl;
  if (options.sgv) {
    const int mgdl = core::to_mgdl(*options.sgv, config.units);
    // Below 39 mg/dL is a sensor status code, not glucose (SPEC §3): a 2.9 given to a mg/dL
    // config is a unit mix-up, not a reading of 3 mg/dL.
    if (mgdl < core::k_sgv_low_code || mgdl > core::k_sgv_high_code) {
      std::ostringstream given;
      given << *options.sgv;
      const char* range = config.units == core::GlucoseUnit::mmol_l
                              ? "2.2 to 22.3; 39 to 401 would be mg/dL"
                              : "39 to 401; 2.2 to 22.3 would be mmol/L";
      return fail_unknown(options, out, err,
                          "--sgv " + given.str() + " is not a glucose value in " +
                              core::to_string(config.units) + ", the unit of " + path + " (" +
                              range + ")");
    }
    simulated_mgdl = mgdl;
  }
  // --sgv: every patient's Nightscout has one reading, dated now.
  std::map<std::string, std::vector<core::Entry>> simulated;
  if (simulated_mgdl) {
    const core::Entry reading{clock.now(), *simulated_mgdl, options.direction};
    for (const auto& patient : chosen.patients) simulated[patient.name] = {reading};
  }
  ReplaySource fixed(clock, std::move(simulated));
  SimulatedTelephony telephony(clock, {}, Answer::never);
  MemoryStateStorage storage;
  RecordingJournal journal;
  std::vector<Outbound> outbound;
  ServiceOptions service_options;
  service_options.listening = config.listener.has_value();
  service_options.on_outbound = [&outbound](const Outbound& o) { outbound.push_back(o); };
  service_options.log_journal = false;
  Service service(chosen, core::State{}, clock,
                  options.sgv ? static_cast<CgmSource&>(fixed) : nightscout, telephony, storage,
                  journal, service_options);
  service.tick();
  const core::TimePoint now = clock.now();

  std::vector<PatientReport> reports;
  const auto assessed = service.last_assessments();
  for (std::size_t i = 0; i < chosen.patients.size() && i < assessed.size(); ++i) {
    const auto& patient = chosen.patients[i];
    if (const auto minute = adapters::local_minute_of_day(patient.timezone, now); !minute) {
      PatientReport report;
      report.name = patient.name;
      report.error = minute.error().message;
      reports.push_back(std::move(report));
      continue;
    }
    reports.push_back(make_report(patient, assessed[i].assessment, outbound, config.units, now));
  }

  // SPEC §6: a running service that cannot save its state makes check UNKNOWN too (the service
  // says so in its per-tick status, adapters/command_spool.hpp).
  std::optional<std::string> service_error;
  if (!options.sgv) {
    if (const auto status = adapters::CommandSpool(config.state_file).read_status();
        status && status->value("saved", true) == false) {
      const auto tick = status->value("tick_at", 0LL);
      if (now - core::TimePoint{core::Duration{tick}} <= 3 * config.poll.interval + core::Duration{std::chrono::minutes{1}}) {
        service_error = "the running scout cannot save its state to " + config.state_file +
                        " and monitors from memory (a restart would forget escalations in "
                        "progress)";
      }
    }
  }
  CheckStatus overall = overall_status(reports);
  if (service_error) overall = worse(overall, CheckStatus::unknown);
  if (options.format == "json") {
    write_json(out, reports, config.units, now, service_error);
    out << "\n";
  } else {
    if (options.sgv) {
      out << "simulated reading: " << core::format_glucose(*simulated_mgdl, config.units)
          << " " << core::to_string(config.units)
          << (options.direction.empty() ? "" : " " + options.direction) << ", now\n\n";
    }
    std::string text = render_text(reports, config.units);
    if (service_error) {
      const auto at = text.rfind("status: ");
      std::string upper = to_string(overall);
      for (auto& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      const std::string tail = "problem: " + *service_error + "\n\nstatus: " + upper + "\n";
      text = at == std::string::npos ? text + tail : text.substr(0, at) + tail;
    }
    out << text;
  }
  return exit_code(overall);
}

}  // namespace scout::app
