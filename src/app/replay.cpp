#include "scout/app/replay.hpp"

#include <algorithm>
#include <cstdio>
#include <cmath>
#include <fstream>
#include <iostream>
#include <iterator>
#include <set>
#include <sstream>

#include <date/tz.h>
#include <spdlog/spdlog.h>

#include "scout/adapters/nightscout.hpp"
#include "scout/adapters/yaml_config.hpp"
#include "scout/app/cli.hpp"
#include "scout/core/redact.hpp"

namespace scout::app {

namespace {

using core::Duration;
using core::TimePoint;
using namespace std::chrono_literals;

// Between two ticks the driver wakes for scheduled webhooks and due steps; this bounds it.
constexpr int k_max_wakeups_per_tick = 10'000;

bool is_low_side(const std::string& kind) {
  return kind == "urgent_low" || kind == "urgent_low_soon" || kind == "low";
}

bool is_glucose_value(const core::Entry& e) {
  return e.sgv >= core::k_sgv_low_code && e.sgv <= core::k_sgv_high_code;
}

std::vector<core::Entry> glucose_readings(const std::vector<core::Entry>& entries) {
  std::vector<core::Entry> readings;
  readings.reserve(entries.size());
  std::copy_if(entries.begin(), entries.end(), std::back_inserter(readings), is_glucose_value);
  std::stable_sort(readings.begin(), readings.end(),
                   [](const core::Entry& a, const core::Entry& b) { return a.date < b.date; });
  readings.erase(std::unique(readings.begin(), readings.end(),
                             [](const core::Entry& a, const core::Entry& b) {
                               return a.date == b.date;
                             }),
                 readings.end());
  return readings;
}

// Median spacing in whole minutes (Python's round(statistics.median), as convert.py computes it).
int cadence_minutes(const std::vector<core::Entry>& readings) {
  std::vector<double> steps;
  steps.reserve(readings.size() - 1);
  for (std::size_t i = 1; i < readings.size(); ++i) {
    steps.push_back(static_cast<double>((readings[i].date - readings[i - 1].date).count()) /
                    60000.0);
  }
  std::sort(steps.begin(), steps.end());
  const std::size_t n = steps.size();
  const double median = n % 2 == 1 ? steps[n / 2] : (steps[n / 2 - 1] + steps[n / 2]) / 2.0;
  return static_cast<int>(std::nearbyint(median));  // half to even, as Python
}

std::string field(const core::JournalEntry& entry, const std::string& key) {
  for (const auto& [k, v] : entry.fields) {
    if (k == key) return v;
  }
  return "";
}

// `at` in the patient's zone (the host's when empty; UTC when the zone is unknown).
std::string local_format(const char* format, const std::string& zone, TimePoint at) {
  const auto seconds = std::chrono::floor<std::chrono::seconds>(at);
  try {
    const auto* tz = zone.empty() ? date::current_zone() : date::locate_zone(zone);
    return date::format(format, date::make_zoned(tz, seconds));
  } catch (const std::exception&) {
    return date::format(format, seconds);
  }
}
std::string local_date(const std::string& zone, TimePoint at) {
  return local_format("%F", zone, at);
}
std::string local_time(const std::string& zone, TimePoint at) {
  return local_format("%F %H:%M", zone, at);
}

}  // namespace

std::vector<LowEpisode> find_low_episodes(const std::vector<core::Entry>& entries) {
  const auto readings = glucose_readings(entries);
  std::vector<LowEpisode> episodes;
  if (readings.size() < 2) return episodes;
  const Duration cadence = std::chrono::minutes{cadence_minutes(readings)};
  const Duration gap_limit = std::max<Duration>(15min, cadence * 3 / 2);
  bool in_run = false;
  LowEpisode run;
  TimePoint previous{};
  const auto close = [&] {
    if (in_run && run.end - run.start + cadence >= k_episode_min_length) episodes.push_back(run);
    in_run = false;
  };
  for (const auto& r : readings) {
    if (r.sgv < k_episode_below_mgdl) {
      if (in_run && r.date - previous > gap_limit) close();
      if (!in_run) {
        run = LowEpisode{};
        run.start = r.date;
        run.end = r.date;
        run.nadir = r.sgv;
        in_run = true;
      } else {
        run.end = r.date;
        run.nadir = std::min(run.nadir, r.sgv);
      }
    } else {
      close();
    }
    previous = r.date;
  }
  close();
  return episodes;
}

core::Result<AnswerPlan> parse_answers(const std::string& text) {
  AnswerPlan plan;
  std::stringstream items(text);
  std::string item;
  while (std::getline(items, item, ',')) {
    if (item.empty()) continue;
    const auto eq = item.find('=');
    if (eq == std::string::npos || eq == 0) {
      return core::fail(core::ErrorKind::config,
                        "--answer: '" + item + "' is not WHO=never|ack|noack|machine|busy");
    }
    const std::string who = item.substr(0, eq);
    const auto answer = answer_from_string(item.substr(eq + 1));
    if (!answer) {
      return core::fail(core::ErrorKind::config, "--answer: '" + item.substr(eq + 1) +
                                                     "' for " + who +
                                                     " is not never, ack, noack, machine or busy");
    }
    if (who == "*") {
      plan.otherwise = *answer;
    } else {
      plan.by_person[who] = *answer;
    }
  }
  return plan;
}

ReplayResult replay(const core::Config& config, const core::Patient& patient,
                    const std::vector<core::Entry>& entries, const AnswerPlan& answers,
                    const ReplaySettings& settings) {
  ReplayResult result;
  if (entries.empty()) return result;
  core::Config one = config;
  one.patients = {patient};
  const core::Patient& p = one.patients.front();

  TimePoint first_entry = entries.front().date;
  TimePoint last_entry = entries.front().date;
  for (const auto& e : entries) {
    first_entry = std::min(first_entry, e.date);
    last_entry = std::max(last_entry, e.date);
  }
  const TimePoint from = settings.from.value_or(first_entry);
  const TimePoint to = settings.to.value_or(last_entry);
  const Duration interval = std::max<Duration>(config.poll.interval, 1s);

  std::map<std::string, Answer> by_number;
  const auto answer_of = [&](const std::string& who) {
    const auto it = answers.by_person.find(who);
    return it == answers.by_person.end() ? answers.otherwise : it->second;
  };
  for (const auto& contact : p.contacts) by_number[contact.phone] = answer_of(contact.name);
  by_number[p.phone] = answer_of("patient");  // the patient's own number wins

  ManualClock clock(from);
  ReplaySource source(clock, {{p.name, entries}});
  SimulatedTelephony telephony(clock, by_number, answers.otherwise);
  MemoryStateStorage storage;
  RecordingJournal journal;
  ServiceOptions options;
  options.listening = settings.listening;
  options.log_journal = false;
  options.on_outbound = [&result](const Outbound& out) { result.messages.push_back(out); };
  Service service(one, core::State{}, clock, source, telephony, storage, journal, options);

  TimePoint last = from;
  for (TimePoint now = from; now <= to; now += interval) {
    // What happens between the previous tick and this one, in time order: webhooks as the
    // simulated people answer, and steps falling due.
    for (int i = 0; i < k_max_wakeups_per_tick; ++i) {
      const auto event_at = telephony.next_event_at();
      const auto due = service.next_due();
      std::optional<TimePoint> next;
      if (event_at && *event_at < now) next = event_at;
      if (due && *due < now && (!next || *due < *next)) next = due;
      if (!next) break;
      clock.set(std::max(*next, clock.now()));
      if (event_at && *next == *event_at) {
        if (auto event = telephony.take_next()) service.deliver(*event);
      } else {
        service.advance();
      }
    }
    clock.set(now);
    service.tick();
    last = now;
  }
  result.first = from;
  result.last = last;
  result.days = static_cast<double>((last - from).count()) / 86'400'000.0;
  result.journal = journal.entries();

  // Per day, alarms raised by kind, calls and SMS by person; acknowledgements for episodes.
  std::map<std::string, ReplayDay> days;
  std::map<std::string, std::string> kind_of;  // alarm id -> kind when raised
  for (const auto& entry : result.journal) {
    if (entry.type == "alarm_raised" || entry.type == "alarm_replaced") {
      const std::string kind = field(entry, "kind");
      kind_of[entry.alarm_id] = kind;
      auto& day = days[local_date(p.timezone, entry.at)];
      day.alarms[kind] += 1;
    }
  }
  for (const auto& m : result.messages) {
    auto& day = days[local_date(p.timezone, m.at)];
    (m.call ? day.calls : day.sms)[m.to_label] += 1;
    (m.call ? result.calls : result.sms) += 1;
  }
  for (auto& [date, day] : days) {
    day.date = date;
    result.per_day.push_back(day);
  }

  result.episodes = find_low_episodes(entries);
  for (auto& episode : result.episodes) {
    for (const auto& entry : result.journal) {
      if (entry.type != "acknowledged" || !is_low_side(kind_of[entry.alarm_id])) continue;
      if (entry.at < episode.start - k_ack_lookback) continue;
      episode.ack_after = entry.at - episode.start;
      episode.ack_by = field(entry, "by");
      break;
    }
    for (const auto& m : result.messages) {
      if (!m.call || !is_low_side(core::to_string(m.message.alarm.kind))) continue;
      if (m.at < episode.start - k_ack_lookback) continue;
      episode.called_after = m.at - episode.start;
      break;
    }
  }
  return result;
}

namespace {

std::string minutes(Duration d) {
  const double m = static_cast<double>(d.count()) / 60000.0;
  std::ostringstream out;
  out.setf(std::ios::fixed);
  out.precision(1);
  out << m;
  return out.str();
}

std::string label_of(const core::Patient& patient, const std::string& label) {
  return label == "patient" ? patient.name + " (patient)" : label;
}

}  // namespace

std::string replay_text(const ReplayResult& result, const core::Patient& patient) {
  std::ostringstream out;
  out << "replay of " << patient.name << ": " << local_time(patient.timezone, result.first)
      << " to " << local_time(patient.timezone, result.last) << " ("
      << minutes(result.last - result.first) << " min, "
      << static_cast<double>(static_cast<int>(result.days * 10 + 0.5)) / 10 << " days)\n";
  const double days = std::max(result.days, 1.0 / 24);
  out << "calls: " << result.calls << " (" << static_cast<int>(result.calls / days * 10 + 0.5) / 10.0
      << "/day), SMS: " << result.sms << " ("
      << static_cast<int>(result.sms / days * 10 + 0.5) / 10.0 << "/day)\n\n";
  out << "per day:\n";
  for (const auto& day : result.per_day) {
    out << "  " << day.date << "  alarms:";
    if (day.alarms.empty()) out << " none";
    for (const auto& [kind, n] : day.alarms) out << " " << kind << "=" << n;
    out << "  calls:";
    if (day.calls.empty()) out << " none";
    for (const auto& [who, n] : day.calls) out << " " << label_of(patient, who) << "=" << n;
    out << "  SMS:";
    if (day.sms.empty()) out << " none";
    for (const auto& [who, n] : day.sms) out << " " << label_of(patient, who) << "=" << n;
    out << "\n";
  }
  out << "\nlevel-2 low episodes (< 54 mg/dL for >= 15 min): " << result.episodes.size() << "\n";
  for (const auto& e : result.episodes) {
    out << "  " << local_time(patient.timezone, e.start) << "  nadir " << e.nadir
        << " mg/dL, " << minutes(e.end - e.start) << " min  ";
    if (e.ack_after) {
      out << "acknowledged after " << minutes(*e.ack_after) << " min by "
          << label_of(patient, e.ack_by);
    } else {
      out << "NOT acknowledged";
    }
    out << "\n";
  }
  out << "\nmessages:\n";
  for (const auto& m : result.messages) {
    out << "  " << local_time(patient.timezone, m.at) << "  " << (m.call ? "call" : "SMS ")
        << " " << label_of(patient, m.to_label) << " (" << core::mask_phone(m.to) << "): " << m.text
        << "\n";
  }
  return out.str();
}

nlohmann::json replay_json(const ReplayResult& result, const core::Patient& patient) {
  using nlohmann::json;
  json days = json::array();
  for (const auto& day : result.per_day) {
    days.push_back({{"date", day.date}, {"alarms", day.alarms}, {"calls", day.calls},
                    {"sms", day.sms}});
  }
  json episodes = json::array();
  for (const auto& e : result.episodes) {
    episodes.push_back(
        {{"onset", e.start.time_since_epoch().count()},
         {"end", e.end.time_since_epoch().count()},
         {"nadir", e.nadir},
         {"ack_after_min", e.ack_after ? json(static_cast<double>(e.ack_after->count()) / 60000.0)
                                       : json(nullptr)},
         {"ack_by", e.ack_after ? json(e.ack_by) : json(nullptr)},
         {"called_after_min", e.called_after
                                  ? json(static_cast<double>(e.called_after->count()) / 60000.0)
                                  : json(nullptr)}});
  }
  json messages = json::array();
  for (const auto& m : result.messages) {
    messages.push_back({{"at", m.at.time_since_epoch().count()},
                        {"channel", m.call ? "call" : "sms"},
                        {"to", m.to_label},
                        {"number", core::mask_phone(m.to)},
                        {"alarm", m.alarm_id},
                        {"kind", core::to_string(m.message.alarm.kind)},
                        {"text", m.text}});
  }
  const double days_span = std::max(result.days, 1.0 / 24);
  return {{"patient", patient.name},
          {"from", result.first.time_since_epoch().count()},
          {"to", result.last.time_since_epoch().count()},
          {"days", result.days},
          {"calls", result.calls},
          {"sms", result.sms},
          {"calls_per_day", result.calls / days_span},
          {"sms_per_day", result.sms / days_span},
          {"per_day", days},
          {"episodes", episodes},
          {"messages", messages}};
}

namespace {

// "-14d", "-36h", "-8h55m" (a SPEC duration, or whole days) before `now`, or an ISO date or
// date-time in UTC: "2026-11-20", "2026-11-20T22:00", "2026-11-20 22:00:30", "...Z".
std::optional<TimePoint> parse_when(const std::string& text, TimePoint now) {
  if (text.size() >= 3 && text[0] == '-') {
    const std::string span = text.substr(1);
    if (const auto d = core::parse_duration(span)) return now - *d;
    // Days are not a SPEC §2 duration unit: "-14d" is 14 × 24 hours.
    int days = 0;
    int used = 0;
    if (std::sscanf(span.c_str(), "%4dd%n", &days, &used) == 1 &&
        static_cast<std::size_t>(used) == span.size() && days >= 0) {
      return now - std::chrono::hours{24 * days};
    }
    return std::nullopt;
  }
  // YYYY-MM-DD[(T| )HH:MM[:SS]][Z], UTC.
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, se = 0;
  char sep = 0;
  int used = 0;
  std::string rest;
  if (std::sscanf(text.c_str(), "%4d-%2d-%2d%n", &y, &mo, &d, &used) != 3) return std::nullopt;
  rest = text.substr(static_cast<std::size_t>(used));
  if (!rest.empty()) {
    int more = 0;
    if (std::sscanf(rest.c_str(), "%c%2d:%2d%n", &sep, &h, &mi, &more) != 3 ||
        (sep != 'T' && sep != ' ')) {
      return std::nullopt;
    }
    rest = rest.substr(static_cast<std::size_t>(more));
    if (!rest.empty() && rest[0] == ':') {
      int secs_used = 0;
      if (std::sscanf(rest.c_str(), ":%2d%n", &se, &secs_used) != 1) return std::nullopt;
      rest = rest.substr(static_cast<std::size_t>(secs_used));
    }
    if (rest == "Z") rest.clear();
    if (!rest.empty() || h > 23 || mi > 59 || se > 59) return std::nullopt;
  }
  const date::year_month_day ymd{date::year{y}, date::month{static_cast<unsigned>(mo)},
                                 date::day{static_cast<unsigned>(d)}};
  if (!ymd.ok()) return std::nullopt;
  return TimePoint{date::sys_days{ymd}} + std::chrono::hours{h} + std::chrono::minutes{mi} +
         std::chrono::seconds{se};
  return std::nullopt;
}

}  // namespace

int run_replay(const ReplayOptions& options, std::ostream& out, std::ostream& err) {
  if (options.format != "text" && options.format != "json") {
    err << "scout replay: --format must be text or json, got '" << options.format << "'\n";
    return k_exit_usage;
  }
  const bool window = !options.from.empty() || !options.to.empty();
  if (window == !options.entries_file.empty() || (window && options.from.empty())) {
    err << "scout replay: give --from DATE [--to DATE] (the patient's Nightscout) or --entries "
           "FILE\n";
    return k_exit_usage;
  }
  const auto plan = parse_answers(options.answer);
  if (!plan) {
    err << "scout replay: " << plan.error().message << "\n";
    return k_exit_usage;
  }
  const auto env = adapters::system_config_environment();
  const auto path =
      options.config_path.empty() ? adapters::default_config_path(env) : options.config_path;
  const auto load = adapters::load_config(path, env);
  for (const auto& problem : load.problems) err << problem.to_string() << "\n";
  if (!load.config) {
    err << "scout replay: the config " << path << " is not valid\n";
    return k_exit_config;
  }
  const core::Config& config = *load.config;
  const core::Patient* patient = nullptr;
  for (const auto& p : config.patients) {
    if (options.patient.empty() ? config.patients.size() == 1 : p.name == options.patient) {
      patient = &p;
    }
  }
  if (patient == nullptr) {
    err << "scout replay: "
        << (options.patient.empty() ? "the config has several patients: name one with --patient"
                                    : "no patient named '" + options.patient + "' in " + path)
        << "\n";
    return k_exit_usage;
  }
  for (const auto& [who, answer] : plan->by_person) {
    bool known = who == "patient";
    for (const auto& c : patient->contacts) known = known || c.name == who;
    if (!known) {
      err << "scout replay: --answer names '" << who << "', who is neither 'patient' nor a "
          << "contact of " << patient->name << "\n";
      return k_exit_usage;
    }
  }

  std::vector<core::Entry> entries;
  ReplaySettings settings;
  settings.listening = true;
  if (!options.entries_file.empty()) {
    std::ifstream in(options.entries_file, std::ios::binary);
    if (!in) {
      err << "scout replay: cannot read " << options.entries_file << "\n";
      return 66;
    }
    std::ostringstream body;
    body << in.rdbuf();
    auto parsed = adapters::parse_entries(body.str());
    if (!parsed) {
      err << "scout replay: " << options.entries_file << ": " << parsed.error().message << "\n";
      return 66;
    }
    entries = std::move(*parsed);
  } else {
    const TimePoint now = SystemClock{}.now();
    const auto from = parse_when(options.from, now);
    const auto to = options.to.empty() ? std::optional<TimePoint>{now} : parse_when(options.to, now);
    if (!from || !to || *to <= *from) {
      err << "scout replay: --from and --to must be dates like 2026-11-20, 2026-11-20T22:00 or "
             "-14d, with --from before --to\n";
      return k_exit_usage;
    }
    // History starts 3 hours early so the first tick has the readings scout would have had.
    auto fetched = adapters::fetch_history(patient->nightscout, *from - std::chrono::hours{3}, *to,
                                           std::max<Duration>(config.poll.timeout, 30s));
    if (!fetched) {
      err << "scout replay: cannot read the Nightscout of " << patient->name << ": "
          << fetched.error().message << "\n";
      return k_exit_fatal;
    }
    entries = std::move(*fetched);
    settings.from = *from;
    settings.to = *to;
  }
  if (entries.empty()) {
    err << "scout replay: no readings to replay\n";
    return 66;
  }
  // The replay journals every transition; its log lines would drown the report.
  const auto level = spdlog::get_level();
  spdlog::set_level(spdlog::level::err);
  const auto result = replay(config, *patient, entries, *plan, settings);
  spdlog::set_level(level);
  if (options.format == "json") {
    out << replay_json(result, *patient).dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  } else {
    out << replay_text(result, *patient);
  }
  return k_exit_ok;
}

}  // namespace scout::app
