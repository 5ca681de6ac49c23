// The real Service (app::replay: ManualClock, ReplaySource, SimulatedTelephony answering through
// Service::deliver as the listener would) over every real CGM trace of ../shared/data/cgm (see
// its README.md), in several answering patterns, with SPEC §2's built-in defaults. What every
// call and SMS *says* is checked against the trace itself (SPEC §4.8–4.11):
//   - it speaks the newest reading scout had polled, with its true age (±1 min);
//   - no glucose-alarm call or SMS while the data are stale (§4.9);
//   - after a data gap, a fresh urgent low reaches someone within one poll (§4.10);
//   - with the patient never answering and a contact who does, every level-2 episode is
//     acknowledged by a person from 30 minutes before to 10 minutes after its onset;
//   - no number is called twice within min_call_gap (§4.6).
// Skipped, with a message, when ../shared/data/cgm is absent.

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "scout/adapters/nightscout.hpp"
#include "scout/adapters/yaml_config.hpp"
#include "scout/app/replay.hpp"

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using scout::core::Duration;
using scout::core::Entry;
using scout::core::TimePoint;

const fs::path k_cgm_dir = fs::path(SCOUT_SOURCE_DIR "/../shared/data/cgm");

std::vector<fs::path> trace_files() {
  std::vector<fs::path> files;
  std::error_code ec;
  for (fs::directory_iterator it(k_cgm_dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->path().extension() == ".json") files.push_back(it->path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

std::vector<Entry> load(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream body;
  body << in.rdbuf();
  auto parsed = scout::adapters::parse_entries(body.str());
  REQUIRE(parsed);
  return *parsed;
}

scout::core::Config trace_config() {
  scout::core::Config config;
  config.units = scout::core::GlucoseUnit::mg_dl;
  config.listener = scout::core::Listener{};
  config.listener->public_url = "https://scout.example.org";
  scout::core::Provider console;
  config.providers.push_back(console);
  config.defaults = scout::core::AlarmSettings{};
  config.defaults.escalation = scout::adapters::default_escalation();
  scout::core::Patient p;
  p.name = "P";
  p.timezone = "UTC";
  p.phone = "+15550000001";
  p.contacts = {{"Bob", "+15550000002"}, {"Carol", "+15550000003"}};
  p.settings = config.defaults;
  config.patients.push_back(p);
  return config;
}

// Usable readings oldest first, one per date.
std::vector<Entry> readings_of(const std::vector<Entry>& entries) {
  std::vector<Entry> r;
  for (const auto& e : entries) {
    if (e.sgv >= 39 && e.sgv <= 401) r.push_back(e);
  }
  std::stable_sort(r.begin(), r.end(), [](const Entry& a, const Entry& b) { return a.date < b.date; });
  r.erase(std::unique(r.begin(), r.end(),
                      [](const Entry& a, const Entry& b) { return a.date == b.date; }),
          r.end());
  return r;
}

// The newest reading dated at or before `t`.
const Entry* newest_at(const std::vector<Entry>& readings, TimePoint t) {
  const auto it = std::upper_bound(readings.begin(), readings.end(), t,
                                   [](TimePoint x, const Entry& e) { return x < e.date; });
  return it == readings.begin() ? nullptr : &*std::prev(it);
}

// Minutes in "N min", "N h", "N h M min", or 0 for "less than a minute".
std::optional<long> spoken_minutes(const std::string& text) {
  if (text == "less than a minute") return 0;
  std::smatch m;
  if (std::regex_match(text, m, std::regex(R"((\d+) min)"))) return std::stol(m[1]);
  if (std::regex_match(text, m, std::regex(R"((\d+) h)"))) return std::stol(m[1]) * 60;
  if (std::regex_match(text, m, std::regex(R"((\d+) h (\d+) min)"))) {
    return std::stol(m[1]) * 60 + std::stol(m[2]);
  }
  return std::nullopt;
}

bool is_glucose_kind(scout::core::AlarmKind k) {
  return k <= scout::core::AlarmKind::high;
}

struct Pattern {
  const char* name;
  const char* answers;
  bool contact_acks;  // the patient never answers and a contact presses 1
};

const std::vector<Pattern> k_patterns = {
    {"patient acknowledges", "patient=ack", false},
    {"patient never answers, Bob acknowledges, Carol answers without a key",
     "patient=never,Bob=ack,Carol=noack", true},
    {"patient's line busy, Bob's voicemail, Carol acknowledges", "patient=busy,Bob=machine,Carol=ack",
     true},
    {"nobody answers", "", false},
};

void check_trace(const fs::path& path, const Pattern& pattern) {
  const auto entries = load(path);
  const auto readings = readings_of(entries);
  const auto config = trace_config();
  const auto& patient = config.patients.front();
  const auto plan = scout::app::parse_answers(pattern.answers);
  REQUIRE(plan);
  const auto result = scout::app::replay(config, patient, entries, *plan, {});
  const Duration interval = config.poll.interval;
  // The sensor's cadence and the stale threshold in force for it (SPEC §3).
  const auto cadence = scout::core::cadence_of(entries, readings.back().date);
  const auto stale = scout::core::stale_in_force(patient.settings.stale, cadence);
  const auto last_tick_at = [&](TimePoint t) {
    return result.first + (t - result.first) / interval * interval;
  };

  INFO(path.filename().string() << " — " << pattern.name);
  REQUIRE(!result.messages.empty());
  int checked = 0;
  std::map<std::string, TimePoint> last_call;
  for (const auto& m : result.messages) {
    INFO("at " << (m.at - result.first).count() / 60000.0 << " min: " << m.text);
    const Entry* known = newest_at(readings, last_tick_at(m.at));
    REQUIRE(known != nullptr);
    const long true_age_min = std::chrono::duration_cast<std::chrono::minutes>(
                                  std::max(Duration::zero(), m.at - known->date))
                                  .count();
    const std::string value = known->sgv == 39    ? "below the sensor's range (LOW)"
                              : known->sgv == 401 ? "above the sensor's range (HIGH)"
                                                  : std::to_string(known->sgv) + " mg/dL";
    const auto kind = m.message.alarm.kind;
    std::smatch match;
    if (m.message.purpose == scout::core::MessagePurpose::resolved) {
      if (is_glucose_kind(kind)) CHECK(m.text.find("now " + value) != std::string::npos);
    } else if (is_glucose_kind(kind)) {
      // "P: LOW, 65 mg/dL, steady, 3 min ago."
      CHECK(m.text.find(", " + value) != std::string::npos);
      REQUIRE(std::regex_search(m.text, match, std::regex(R"(, ([^,.(]+) ago)")));
      const auto said = spoken_minutes(match[1]);
      REQUIRE(said);
      CHECK(std::abs(*said - true_age_min) <= 1);
      // SPEC §4.9: never while the data are stale.
      CHECK(m.at - known->date <= stale.warn);
      ++checked;
    } else if (kind == scout::core::AlarmKind::stale) {
      REQUIRE(std::regex_search(m.text, match, std::regex(R"(no new glucose data for ([^,;]+))")));
      const auto said = spoken_minutes(match[1]);
      REQUIRE(said);
      CHECK(std::abs(*said - true_age_min) <= 1);
      CHECK(m.text.find(value) != std::string::npos);
      ++checked;
    }
    if (m.call) {
      const auto it = last_call.find(m.to);
      if (it != last_call.end()) CHECK(m.at - it->second >= patient.settings.min_call_gap);
      last_call[m.to] = m.at;
    }
  }
  CHECK(checked > 0);

  // After a data gap, a fresh urgent low reaches someone within one poll (SPEC §4.10).
  for (std::size_t i = 1; i < readings.size(); ++i) {
    const auto& r = readings[i];
    if (r.date - readings[i - 1].date <= stale.warn || r.sgv >= patient.settings.thresholds.urgent_low) {
      continue;
    }
    if (r.date <= result.first || r.date > result.last) continue;
    INFO("urgent low " << r.sgv << " after a gap of "
                       << (r.date - readings[i - 1].date).count() / 60000.0 << " min");
    const bool reached = std::any_of(result.messages.begin(), result.messages.end(), [&](const auto& m) {
      return m.at >= r.date && m.at <= r.date + interval + 1s &&
             m.message.alarm.kind == scout::core::AlarmKind::urgent_low &&
             m.message.purpose != scout::core::MessagePurpose::resolved;
    });
    CHECK(reached);
  }

  // Every level-2 episode acknowledged by a person in [onset - 30 min, onset + 10 min].
  if (pattern.contact_acks) {
    for (const auto& e : result.episodes) {
      if (e.start < result.first + 30min || e.start > result.last - 10min) continue;
      INFO("episode at " << (e.start - result.first).count() / 60000.0 << " min, nadir "
                         << e.nadir);
      REQUIRE(e.ack_after);
      CHECK(*e.ack_after >= -30min);
      CHECK(*e.ack_after <= 10min);
      CHECK(e.ack_by != "patient");
    }
  }
  std::cout << path.filename().string() << " [" << pattern.name << "]: "
            << result.calls / std::max(result.days, 1.0 / 24) << " calls/day, "
            << result.sms / std::max(result.days, 1.0 / 24) << " SMS/day, "
            << result.episodes.size() << " episodes\n";
}

}  // namespace

TEST_CASE("every real trace through the real Service: every message says the truth",
          "[traces]") {
  const auto files = trace_files();
  if (files.empty()) {
    WARN("skipped: no CGM traces in " << k_cgm_dir.string()
                                      << " (the shared data directory is absent)");
    return;
  }
  for (const auto& file : files) {
    for (const auto& pattern : k_patterns) check_trace(file, pattern);
  }
}
