// Real CGM traces (../shared/data/cgm, see its README for sources and licences): at many moments
// of each trace, `scout check`'s verdict must match an independent classification of the same
// readings, written here from SPEC §3–§4 without using scout's code.
//
// One replay server serves the whole trace; each moment is a patient whose Nightscout URL is
// http://127.0.0.1:PORT/at/<trace-ms>, so one `scout check` run evaluates every moment.

#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>

#include "integration/support.hpp"

using namespace scout::test;

namespace {

// SPEC §2 defaults, in mg/dL.
constexpr int k_urgent_low = 55;
constexpr int k_low = 70;
constexpr int k_high = 250;
constexpr int k_urgent_high = 300;
constexpr std::int64_t k_minute = 60'000;
constexpr std::int64_t k_stale_warn = 15 * k_minute;
constexpr std::int64_t k_stale_urgent = 30 * k_minute;
constexpr int k_entries_fetched = 36;  // what scout asks Nightscout for

// Nightscout's AR2 (lib/plugins/ar2.js): true when one of the first `steps` 5-minute points is
// below `limit`. Written out here independently of src/core/ar2.cpp.
bool ar2_drops_below(const TraceEntry& prev, const TraceEntry& cur, int steps, int limit) {
  if (prev.sgv < 36 || cur.sgv < 36) return false;
  const double elapsed_min = static_cast<double>(cur.date - prev.date) / k_minute;
  const double five_ago =
      elapsed_min > 9 ? cur.sgv - (cur.sgv - prev.sgv) / elapsed_min * 5 : prev.sgv;
  double p = std::log(five_ago / 140.0);
  double c = std::log(cur.sgv / 140.0);
  for (int k = 0; k < steps; ++k) {
    const double next = -0.723 * p + 1.716 * c;
    p = c;
    c = next;
    const double mgdl = std::clamp(std::floor(140.0 * std::exp(c) + 0.5), 36.0, 400.0);
    if (mgdl < limit) return true;
  }
  return false;
}

struct Verdict {
  std::string alarm;  // "" for none
  int sgv = 0;        // 0 when no usable reading
  std::optional<int> delta;
  bool ambiguous = false;  // the outcome hinges on a choice the SPEC leaves open
  std::int64_t stale_urgent = k_stale_urgent;  // in force for the sensor's cadence
};

// Classifies moment `m` of `trace` (oldest first) from SPEC §3–§4 with default settings.
Verdict classify(const std::vector<TraceEntry>& trace, std::int64_t m) {
  std::vector<TraceEntry> seen;  // what Nightscout serves at m: newest first, at most 36
  for (auto it = trace.rbegin(); it != trace.rend(); ++it) {
    if (it->date <= m && static_cast<int>(seen.size()) < k_entries_fetched) seen.push_back(*it);
  }
  std::vector<TraceEntry> usable;
  for (const auto& e : seen) {
    if (e.sgv >= 39 && e.sgv <= 401) usable.push_back(e);
  }
  Verdict v;
  if (usable.empty()) {
    v.alarm = "stale";
    return v;
  }
  const auto& cur = usable[0];
  v.sgv = cur.sgv;
  // Nightscout's bgnow.js: the previous reading is the newest one more than 2.5 and at most
  // 17.5 minutes older (5-minute buckets); past 9 minutes apart the delta is scaled to
  // 5 minutes; a 39 (LOW) gives none.
  const TraceEntry* prev = nullptr;
  for (std::size_t i = 1; i < usable.size(); ++i) {
    if (cur.date - usable[i].date > 150'000) {
      if (cur.date - usable[i].date <= 1'050'000) prev = &usable[i];
      break;
    }
  }
  if (prev != nullptr && (prev->sgv == 39 || cur.sgv == 39)) prev = nullptr;
  if (prev != nullptr) {
    const double elapsed = static_cast<double>(cur.date - prev->date) / k_minute;
    const double five_ago = elapsed > 9 ? cur.sgv - (cur.sgv - prev->sgv) / elapsed * 5 : prev->sgv;
    v.delta = static_cast<int>(std::floor(cur.sgv - five_ago + 0.5));
  }
  // SPEC §3: a sensor slower than 5 minutes (median spacing) gets warn >= cadence + 10 min.
  std::vector<std::int64_t> spacings;
  for (std::size_t i = 1; i < usable.size(); ++i) {
    if (usable[i - 1].date != usable[i].date) spacings.push_back(usable[i - 1].date - usable[i].date);
  }
  std::sort(spacings.begin(), spacings.end());
  std::int64_t warn = k_stale_warn;
  if (!spacings.empty()) {
    const std::size_t n = spacings.size();
    const std::int64_t cadence =
        n % 2 == 1 ? spacings[n / 2] : (spacings[n / 2 - 1] + spacings[n / 2]) / 2;
    if (cadence > 5 * k_minute) {
      warn = std::max(warn, cadence + 10 * k_minute);
      v.stale_urgent = std::max(k_stale_urgent, 2 * cadence + 15 * k_minute);
    }
    // A moment right at the adapted threshold depends on the exact median: don't judge it.
    const auto age_now = m - cur.date;
    if (cadence > 5 * k_minute && std::abs(age_now - warn) < 2 * k_minute) v.ambiguous = true;
  }
  const auto age = m - cur.date;
  if (age > warn) {
    v.alarm = "stale";
    return v;
  }
  bool soon = false;
  if (prev != nullptr && cur.sgv >= k_low) {
    // 20-minute horizon = the first four 5-minute AR2 points.
    soon = ar2_drops_below(*prev, cur, 4, k_urgent_low);
  }
  if (cur.sgv < k_urgent_low) {
    v.alarm = "urgent_low";
  } else if (soon) {
    v.alarm = "urgent_low_soon";
  } else if (cur.sgv < k_low) {
    v.alarm = "low";
  } else if (cur.sgv > k_urgent_high) {
    v.alarm = "urgent_high";
  } else if (cur.sgv > k_high) {
    v.alarm = "high";
  }
  return v;
}

std::string status_of(const std::string& alarm, std::int64_t age, std::int64_t stale_urgent) {
  if (alarm.empty()) return "ok";
  if (alarm == "stale") return age > stale_urgent ? "critical" : "warning";
  if (alarm == "urgent_low" || alarm == "urgent_low_soon" || alarm == "urgent_high") {
    return "critical";
  }
  return "warning";
}

void check_trace(const std::filesystem::path& file) {
  const auto trace = read_trace(file.string());
  REQUIRE(trace.size() > 100);

  // Moments: one minute after every k-th reading (fresh data), and 20 and 40 minutes into every
  // gap long enough (stale warn and stale urgent).
  std::vector<std::int64_t> moments;
  const std::size_t stride = std::max<std::size_t>(1, trace.size() / 150);
  for (std::size_t i = 2; i < trace.size(); i += stride) moments.push_back(trace[i].date + k_minute);
  // Every reading below 54 mg/dL too: the moments that matter most.
  for (std::size_t i = 2; i < trace.size(); ++i) {
    if (trace[i].sgv < 54 && i % 2 == 0) moments.push_back(trace[i].date + k_minute);
  }
  int gaps = 0;
  for (std::size_t i = 1; i < trace.size(); ++i) {
    const auto gap = trace[i].date - trace[i - 1].date;
    if (gap > 25 * k_minute) {
      moments.push_back(trace[i - 1].date + 20 * k_minute);
      ++gaps;
    }
    if (gap > 45 * k_minute) moments.push_back(trace[i - 1].date + 40 * k_minute);
  }
  std::sort(moments.begin(), moments.end());
  moments.erase(std::unique(moments.begin(), moments.end()), moments.end());

  BackgroundServer replay({k_replay, file.string(), "--port", "0", "--speed", "0",
                           "--threads", "16"});
  std::vector<PatientSpec> patients;
  for (const auto m : moments) {
    patients.push_back({"m" + std::to_string(m), replay.url() + "/at/" + std::to_string(m)});
  }
  TempDir dir;
  const auto config = dir.write("scout.yaml", make_config(patients));
  const auto run = run_check_json(config, {}, std::chrono::seconds{120});
  INFO(file.filename().string() << ": " << run.process.err);
  REQUIRE_FALSE(run.doc.is_discarded());
  REQUIRE(run.doc.at("patients").size() == moments.size());

  int compared = 0;
  int alarms = 0;
  for (const auto m : moments) {
    const auto expected = classify(trace, m);
    if (expected.ambiguous) continue;
    const auto& got = patient_of(run.doc, "m" + std::to_string(m));
    INFO(file.filename().string() << " at trace ms " << m << ": " << got.dump());
    const std::string got_alarm = got.at("alarm").is_null() ? "" : got.at("alarm").get<std::string>();
    CHECK(got_alarm == expected.alarm);
    if (expected.sgv != 0) {
      CHECK(got.at("sgv") == expected.sgv);
      const auto age_ms = m - [&] {
        for (auto it = trace.rbegin(); it != trace.rend(); ++it) {
          if (it->date <= m && it->sgv >= 39) return it->date;
        }
        return m;
      }();
      CHECK(got.at("status") == status_of(expected.alarm, age_ms, expected.stale_urgent));
      if (expected.delta) {
        CHECK(got.at("delta") == *expected.delta);
      } else {
        CHECK(got.at("delta").is_null());
      }
    }
    ++compared;
    if (!expected.alarm.empty()) ++alarms;
  }
  // The comparison covered the trace and saw alarms (a test that cannot fail is a defect).
  CHECK(compared >= 100);
  CHECK(alarms >= 5);
  WARN(file.filename().string() << ": " << compared << " moments compared, " << alarms
                                << " with an alarm, " << gaps << " gaps");
}

}  // namespace

TEST_CASE("check's verdict matches an independent classification on every real CGM trace",
          "[integration][traces]") {
  const std::filesystem::path dir = k_shared_cgm;
  if (!std::filesystem::is_directory(dir)) {
    WARN("skipped: " << dir.string()
                     << " is absent (the real traces live in ../shared/data/cgm beside the repo)");
    return;
  }
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() == ".json") files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  REQUIRE_FALSE(files.empty());
  for (const auto& file : files) {
    SECTION(file.filename().string()) { check_trace(file); }
  }
}
