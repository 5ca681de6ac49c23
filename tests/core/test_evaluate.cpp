// Specification of scout/core/evaluate.hpp: which alarm holds for a patient (SPEC §3–§4).
// Defaults used throughout (AlarmSettings{}): thresholds urgent_low 55, low 70, high 250,
// urgent_high 300 mg/dL; stale warn 15m, urgent 30m; unreachable 30m; predict on, horizon 20m.

#include <algorithm>
#include <chrono>
#include <optional>
#include <vector>

#include <catch2/catch.hpp>

#include "scout/core/evaluate.hpp"
#include "support/entries.hpp"

using namespace std::chrono_literals;
using scout::core::Alarm;
using scout::core::AlarmKind;
using scout::core::AlarmSettings;
using scout::core::Assessment;
using scout::core::Entry;
using scout::core::Error;
using scout::core::ErrorKind;
using scout::core::GlucoseUnit;
using scout::core::PollOutcome;
using scout::core::ScheduleEntry;
using scout::core::Severity;
using scout::core::TimePoint;
using scout::test::entry;
using scout::test::k_t0;

namespace {

constexpr int k_noon = 12 * 60;

const Alarm k_urgent_low{AlarmKind::urgent_low, Severity::urgent};
const Alarm k_urgent_low_soon{AlarmKind::urgent_low_soon, Severity::urgent};
const Alarm k_low{AlarmKind::low, Severity::warning};
const Alarm k_urgent_high{AlarmKind::urgent_high, Severity::urgent};
const Alarm k_high{AlarmKind::high, Severity::warning};
const Alarm k_stale_warning{AlarmKind::stale, Severity::warning};
const Alarm k_stale_urgent{AlarmKind::stale, Severity::urgent};
const Alarm k_unreachable{AlarmKind::unreachable, Severity::warning};
const Alarm k_sensor_error{AlarmKind::sensor_error, Severity::warning};

// Evaluates a successful poll that returned `entries`, at `now` (default t0) and noon.
Assessment assess(std::vector<Entry> entries, const AlarmSettings& settings = AlarmSettings{},
                  TimePoint now = k_t0, int minute_of_day = k_noon) {
  PollOutcome outcome;
  outcome.entries = std::move(entries);
  return scout::core::evaluate(outcome, settings, now, minute_of_day);
}

// Evaluates a failed poll whose failure streak began at `failing_since`.
Assessment assess_failure(std::optional<TimePoint> failing_since,
                          const AlarmSettings& settings = AlarmSettings{}) {
  PollOutcome outcome;
  outcome.error = Error{ErrorKind::timeout, "alice.example.org: timed out after 10s"};
  outcome.failing_since = failing_since;
  return scout::core::evaluate(outcome, settings, k_t0, k_noon);
}

// A single fresh reading (one minute old), with no previous reading: no delta, no forecast.
Assessment assess_sgv(int sgv, const AlarmSettings& settings = AlarmSettings{}) {
  return assess({entry(k_t0 - 1min, sgv)}, settings);
}

std::vector<int> values_of(const std::vector<scout::core::ar2::Point>& points) {
  std::vector<int> out;
  for (const auto& p : points) {
    out.push_back(p.mgdl);
  }
  return out;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Names and ranking

TEST_CASE("alarm kinds and severities have the SPEC's names", "[core][evaluate]") {
  CHECK(std::string(to_string(AlarmKind::urgent_low)) == "urgent_low");
  CHECK(std::string(to_string(AlarmKind::urgent_low_soon)) == "urgent_low_soon");
  CHECK(std::string(to_string(AlarmKind::low)) == "low");
  CHECK(std::string(to_string(AlarmKind::urgent_high)) == "urgent_high");
  CHECK(std::string(to_string(AlarmKind::high)) == "high");
  CHECK(std::string(to_string(AlarmKind::stale)) == "stale");
  CHECK(std::string(to_string(AlarmKind::unreachable)) == "unreachable");
  CHECK(std::string(to_string(AlarmKind::sensor_error)) == "sensor_error");
  CHECK(std::string(to_string(Severity::warning)) == "warning");
  CHECK(std::string(to_string(Severity::urgent)) == "urgent");
}

TEST_CASE("worst() ranks urgent before warning, then by the SPEC's kind order",
          "[core][evaluate]") {
  Assessment a;
  SECTION("nothing holds") { CHECK(a.worst() == std::nullopt); }
  SECTION("only a glucose alarm") {
    a.glucose = k_high;
    CHECK(a.worst() == k_high);
  }
  SECTION("only a data alarm") {
    a.data = k_unreachable;
    CHECK(a.worst() == k_unreachable);
  }
  SECTION("an urgent data alarm outranks a warning glucose alarm") {
    a.glucose = k_high;
    a.data = k_stale_urgent;
    CHECK(a.worst() == k_stale_urgent);
  }
  SECTION("an urgent glucose alarm outranks a warning data alarm") {
    a.glucose = k_urgent_high;
    a.data = k_sensor_error;
    CHECK(a.worst() == k_urgent_high);
  }
  SECTION("equal severity: the glucose kind comes first in the SPEC order") {
    a.glucose = k_high;
    a.data = k_stale_warning;
    CHECK(a.worst() == k_high);
    a.glucose = k_urgent_low;
    a.data = k_stale_urgent;
    CHECK(a.worst() == k_urgent_low);
  }
}

// ---------------------------------------------------------------------------------------------
// Glucose thresholds

TEST_CASE("a fresh reading inside the thresholds raises no alarm", "[core][evaluate]") {
  // Given a 120 mg/dL reading one minute old
  const auto a = assess_sgv(120);
  // Then it is the latest, one minute old, and nothing holds
  REQUIRE(a.latest.has_value());
  CHECK(a.latest->sgv == 120);
  CHECK(a.age == std::optional<scout::core::Duration>{1min});
  CHECK(a.glucose == std::nullopt);
  CHECK(a.data == std::nullopt);
  CHECK(a.worst() == std::nullopt);
  CHECK(a.poll_error == std::nullopt);
  CHECK(a.thresholds == scout::core::Thresholds{});
}

TEST_CASE("urgent_low holds below urgent_low, not at it", "[core][evaluate]") {
  CHECK(assess_sgv(54).glucose == k_urgent_low);
  // 55 is not below urgent_low 55, but is below low 70
  CHECK(assess_sgv(55).glucose == k_low);
}

TEST_CASE("low holds below low, not at it", "[core][evaluate]") {
  CHECK(assess_sgv(69).glucose == k_low);
  CHECK(assess_sgv(70).glucose == std::nullopt);
}

TEST_CASE("high holds above high, not at it", "[core][evaluate]") {
  CHECK(assess_sgv(250).glucose == std::nullopt);
  CHECK(assess_sgv(251).glucose == k_high);
}

TEST_CASE("urgent_high holds above urgent_high, not at it", "[core][evaluate]") {
  CHECK(assess_sgv(300).glucose == k_high);
  CHECK(assess_sgv(301).glucose == k_urgent_high);
}

TEST_CASE("39 (the sensor's LOW) is an urgent low whatever the thresholds", "[core][evaluate]") {
  // Given thresholds that 39 would not cross
  AlarmSettings settings;
  settings.thresholds = {20, 30, 250, 300};
  // Then 39 is urgent_low, while 40 is fine
  CHECK(assess_sgv(39, settings).glucose == k_urgent_low);
  CHECK(assess_sgv(40, settings).glucose == std::nullopt);
}

TEST_CASE("401 (the sensor's HIGH) is an urgent high whatever the thresholds",
          "[core][evaluate]") {
  AlarmSettings settings;
  settings.thresholds = {55, 70, 450, 500};
  CHECK(assess_sgv(401, settings).glucose == k_urgent_high);
  CHECK(assess_sgv(400, settings).glucose == std::nullopt);
}

TEST_CASE("thresholds are mg/dL: a config in mmol/L is converted before evaluation",
          "[core][evaluate]") {
  // Given urgent_low 3.0 mmol/L = round(3.0 * 18.01559) = 54 mg/dL, low 3.9 mmol/L = 70 mg/dL
  AlarmSettings settings;
  settings.thresholds.urgent_low = scout::core::to_mgdl(3.0, GlucoseUnit::mmol_l);
  settings.thresholds.low = scout::core::to_mgdl(3.9, GlucoseUnit::mmol_l);
  REQUIRE(settings.thresholds.urgent_low == 54);
  // Then Nightscout's mg/dL sgv is compared as is: 53 is urgent, 54 only low
  CHECK(assess_sgv(53, settings).glucose == k_urgent_low);
  CHECK(assess_sgv(54, settings).glucose == k_low);
  CHECK(assess_sgv(54, settings).latest->sgv == 54);
}

TEST_CASE("a schedule across midnight applies its thresholds only inside its window",
          "[core][evaluate]") {
  // Given low 80 between 22:00 and 07:00
  AlarmSettings settings;
  ScheduleEntry night;
  night.start_minute = 22 * 60;
  night.end_minute = 7 * 60;
  night.thresholds.low = 80;
  settings.schedule = {night};
  const std::vector<Entry> entries = {entry(k_t0 - 1min, 75)};

  // Then 75 is low at 23:30 and at 06:59, and fine at 12:00 and at 07:00
  const auto at_2330 = assess(entries, settings, k_t0, 23 * 60 + 30);
  CHECK(at_2330.glucose == k_low);
  CHECK(at_2330.thresholds.low == 80);
  CHECK(assess(entries, settings, k_t0, 6 * 60 + 59).glucose == k_low);
  const auto at_noon = assess(entries, settings, k_t0, k_noon);
  CHECK(at_noon.glucose == std::nullopt);
  CHECK(at_noon.thresholds.low == 70);
  CHECK(assess(entries, settings, k_t0, 7 * 60).glucose == std::nullopt);
}

// ---------------------------------------------------------------------------------------------
// Which reading decides

TEST_CASE("entries in any order: the newest usable reading decides", "[core][evaluate]") {
  // Given entries out of order, the newest a 60
  const auto a = assess({entry(k_t0 - 11min, 120), entry(k_t0 - 1min, 60),
                         entry(k_t0 - 6min, 90)});
  REQUIRE(a.latest.has_value());
  CHECK(*a.latest == entry(k_t0 - 1min, 60));
  CHECK(a.glucose == k_low);
  // and the previous reading (5 minutes older) gives the delta
  CHECK(a.delta == std::optional<int>{-30});
}

TEST_CASE("duplicate entries with the same date count once", "[core][evaluate]") {
  // Given the newest reading uploaded twice
  const auto a = assess({entry(k_t0 - 1min, 100), entry(k_t0 - 1min, 100),
                         entry(k_t0 - 6min, 94)});
  // Then the previous reading is the one 5 minutes older, not the duplicate
  CHECK(a.delta == std::optional<int>{6});
}

TEST_CASE("of a status code and a reading with the same date, the reading is kept",
          "[core][evaluate]") {
  const auto a = assess({entry(k_t0 - 1min, 5), entry(k_t0 - 1min, 100)});
  REQUIRE(a.latest.has_value());
  CHECK(a.latest->sgv == 100);
  CHECK(a.status_code == std::nullopt);
}

TEST_CASE("a reading dated more than 5 minutes ahead is ignored", "[core][evaluate]") {
  // Given a low reading dated 6 minutes in the future and a normal one 2 minutes old
  const auto a = assess({entry(k_t0 + 6min, 40), entry(k_t0 - 2min, 120)});
  // Then the normal one decides
  REQUIRE(a.latest.has_value());
  CHECK(a.latest->sgv == 120);
  CHECK(a.glucose == std::nullopt);
}

TEST_CASE("a reading dated up to 5 minutes ahead is used, 0 s old (never a negative age)",
          "[core][evaluate]") {
  const auto a = assess({entry(k_t0 + 5min, 40), entry(k_t0 - 2min, 120)});
  REQUIRE(a.latest.has_value());
  CHECK(a.latest->sgv == 40);
  CHECK(a.age == std::optional<scout::core::Duration>{0ms});
  CHECK(a.glucose == k_urgent_low);
}

TEST_CASE("only future-dated entries leave no usable reading: stale, urgent",
          "[core][evaluate]") {
  const auto a = assess({entry(k_t0 + 10min, 100)});
  CHECK(a.latest == std::nullopt);
  CHECK(a.data == k_stale_urgent);
}

TEST_CASE("no entries at all is stale, urgent", "[core][evaluate]") {
  const auto a = assess({});
  CHECK(a.latest == std::nullopt);
  CHECK(a.age == std::nullopt);
  CHECK(a.glucose == std::nullopt);
  CHECK(a.data == k_stale_urgent);
  CHECK(a.worst() == k_stale_urgent);
}

TEST_CASE("sgv above 401 is neither glucose nor a status code", "[core][evaluate]") {
  const auto a = assess({entry(k_t0 - 1min, 500), entry(k_t0 - 6min, 120)});
  REQUIRE(a.latest.has_value());
  CHECK(a.latest->sgv == 120);
  CHECK(a.status_code == std::nullopt);
}

// ---------------------------------------------------------------------------------------------
// Delta

TEST_CASE("the delta is Nightscout's: against the previous 5-minute bucket, scaled to 5 minutes "
          "past 9 minutes",
          "[core][evaluate]") {
  // lib/plugins/bgnow.js: buckets of 5 minutes around the newest reading (offset 2.5 min, four
  // buckets), so the previous reading is more than 2.5 and at most 17.5 minutes older; past
  // 9 minutes apart the value 5 minutes ago is interpolated.
  const auto with_previous_at = [](scout::core::Duration gap) {
    return assess({entry(k_t0 - 1min, 100), entry(k_t0 - 1min - gap, 106)}).delta;
  };
  CHECK(with_previous_at(2min) == std::nullopt);
  CHECK(with_previous_at(150s) == std::nullopt);
  CHECK(with_previous_at(150s + 1ms) == std::optional<int>{-6});
  CHECK(with_previous_at(4min) == std::optional<int>{-6});
  CHECK(with_previous_at(5min) == std::optional<int>{-6});
  CHECK(with_previous_at(9min) == std::optional<int>{-6});
  CHECK(with_previous_at(10min) == std::optional<int>{-3});  // -6 / 10 * 5
  CHECK(with_previous_at(15min) == std::optional<int>{-2});  // -6 / 15 * 5 = -2
  CHECK(with_previous_at(1050s) == std::optional<int>{-2});
  CHECK(with_previous_at(1050s + 1ms) == std::nullopt);
}

TEST_CASE("no delta and no forecast from a 39 (LOW) code", "[core][evaluate]") {
  const auto latest_low = assess({entry(k_t0 - 1min, 39), entry(k_t0 - 6min, 60)});
  CHECK(latest_low.delta == std::nullopt);
  CHECK(latest_low.forecast.empty());
  CHECK(latest_low.glucose == k_urgent_low);
  const auto previous_low = assess({entry(k_t0 - 1min, 45), entry(k_t0 - 6min, 39)});
  CHECK(previous_low.delta == std::nullopt);
  CHECK(previous_low.forecast.empty());
}

TEST_CASE("a mmol/L delta is the difference of the rounded values, as Nightscout shows it",
          "[core][evaluate]") {
  // 100 -> 5.6, 97 -> 5.4: Nightscout shows -0.2, where -3 mg/dL converted would be -0.2 too;
  // 101 -> 5.6, 99 -> 5.5: -0.1 although -2 mg/dL is -0.11 -> -0.1; 100 -> 5.6, 98 -> 5.4 shows
  // -0.2 where -2 mg/dL alone would read -0.1.
  const auto a = assess({entry(k_t0 - 1min, 98), entry(k_t0 - 6min, 100)});
  REQUIRE(a.mgdl_5_mins_ago);
  CHECK(scout::core::format_delta_between(98, *a.mgdl_5_mins_ago,
                                          scout::core::GlucoseUnit::mmol_l) == "-0.2");
  CHECK(scout::core::format_delta(-2, scout::core::GlucoseUnit::mmol_l) == "-0.1");
}

TEST_CASE("a sensor slower than 5 minutes gets stale thresholds from its cadence",
          "[core][evaluate]") {
  // A 15-minute sensor: warn = 15 + 10 = 25 min, urgent = 2 x 15 + 15 = 45 min.
  std::vector<scout::core::Entry> libre;
  for (int i = 0; i < 8; ++i) libre.push_back(entry(k_t0 - 20min - i * 15min, 120));
  const auto a = assess(libre);
  REQUIRE(a.cadence);
  CHECK(*a.cadence == 15min);
  CHECK(a.stale.warn == 25min);
  CHECK(a.stale.urgent == 45min);
  CHECK(a.data == std::nullopt);  // 20 minutes old: on time for this sensor
  // A 5-minute sensor keeps the configured 15m / 30m.
  std::vector<scout::core::Entry> dexcom;
  for (int i = 0; i < 8; ++i) dexcom.push_back(entry(k_t0 - 16min - i * 5min, 120));
  const auto b = assess(dexcom);
  CHECK(b.stale.warn == 15min);
  CHECK(b.data == k_stale_warning);
}

TEST_CASE("a failed poll keeps the last reading known: it ages and goes stale",
          "[core][evaluate]") {
  scout::core::PollOutcome outcome;
  outcome.error = scout::core::Error{scout::core::ErrorKind::timeout, "timed out"};
  outcome.failing_since = k_t0 - 5min;
  outcome.last_reading = entry(k_t0 - 20min, 52);
  const auto a = scout::core::evaluate(outcome, scout::core::AlarmSettings{}, k_t0, 0);
  REQUIRE(a.latest);
  CHECK(a.age == std::optional<scout::core::Duration>{20min});
  CHECK(a.data == k_stale_warning);
  CHECK(a.glucose == std::nullopt);
  CHECK_FALSE(a.fresh());
  outcome.failing_since = k_t0 - 30min;
  CHECK(scout::core::evaluate(outcome, scout::core::AlarmSettings{}, k_t0, 0).data ==
        k_unreachable);
  outcome.last_reading = entry(k_t0 - 31min, 52);
  CHECK(scout::core::evaluate(outcome, scout::core::AlarmSettings{}, k_t0, 0).data ==
        k_stale_urgent);
}

TEST_CASE("the delta skips status codes between the two readings", "[core][evaluate]") {
  // Given a status code dated between the latest reading and the one 5 minutes before it
  const auto a = assess({entry(k_t0 - 1min, 100), entry(k_t0 - 3min, 5),
                         entry(k_t0 - 6min, 97)});
  // Then the code is older than the latest reading: no status, and the delta is +3
  CHECK(a.delta == std::optional<int>{3});
  CHECK(a.status_code == std::nullopt);
}

TEST_CASE("a single reading has no delta and no forecast", "[core][evaluate]") {
  const auto a = assess_sgv(100);
  CHECK(a.delta == std::nullopt);
  CHECK(a.forecast.empty());
}

// ---------------------------------------------------------------------------------------------
// Staleness

TEST_CASE("a reading exactly stale.warn old is still fresh and alarms on glucose",
          "[core][evaluate]") {
  const auto a = assess({entry(k_t0 - 15min, 60)});
  CHECK(a.data == std::nullopt);
  CHECK(a.glucose == k_low);
}

TEST_CASE("a reading older than stale.warn is stale (warning) and raises no glucose alarm",
          "[core][evaluate]") {
  const auto a = assess({entry(k_t0 - 15min - 1ms, 60)});
  CHECK(a.data == k_stale_warning);
  CHECK(a.glucose == std::nullopt);
  // the last value and its age are still reported, for the message
  REQUIRE(a.latest.has_value());
  CHECK(a.latest->sgv == 60);
  CHECK(a.age == std::optional<scout::core::Duration>{15min + 1ms});
}

TEST_CASE("a reading exactly stale.urgent old is stale, warning", "[core][evaluate]") {
  CHECK(assess({entry(k_t0 - 30min, 120)}).data == k_stale_warning);
}

TEST_CASE("a reading older than stale.urgent is stale, urgent", "[core][evaluate]") {
  CHECK(assess({entry(k_t0 - 30min - 1ms, 120)}).data == k_stale_urgent);
}

TEST_CASE("a stale urgent low raises only the stale alarm", "[core][evaluate]") {
  // Given a 40 mg/dL reading 40 minutes old
  const auto a = assess({entry(k_t0 - 40min, 40)});
  // Then no glucose alarm: scout does not know the glucose now
  CHECK(a.glucose == std::nullopt);
  CHECK(a.data == k_stale_urgent);
  CHECK(a.worst() == k_stale_urgent);
}

TEST_CASE("stale limits come from the settings", "[core][evaluate]") {
  AlarmSettings settings;
  settings.stale = {5min, 10min};
  CHECK(assess({entry(k_t0 - 6min, 120)}, settings).data == k_stale_warning);
  CHECK(assess({entry(k_t0 - 11min, 120)}, settings).data == k_stale_urgent);
}

// ---------------------------------------------------------------------------------------------
// Sensor status codes

TEST_CASE("status codes newer than the latest reading are reported with their start",
          "[core][evaluate]") {
  // Given codes 5, 5, 9 (newest last in time) over 10 minutes after a reading 16 minutes old
  const auto a = assess({entry(k_t0 - 1min, 9), entry(k_t0 - 6min, 5), entry(k_t0 - 11min, 5),
                         entry(k_t0 - 16min, 120)});
  // Then the latest usable reading is the older 120, now stale
  REQUIRE(a.latest.has_value());
  CHECK(a.latest->sgv == 120);
  CHECK(a.status_code == std::optional<int>{9});
  CHECK(a.status_code_since == std::optional<TimePoint>{k_t0 - 11min});
  // and the codes have not lasted longer than stale.warn: stale (warning), no sensor_error yet
  CHECK(a.data == k_stale_warning);
}

TEST_CASE("status codes for longer than stale.warn raise sensor_error", "[core][evaluate]") {
  // Given codes since 15 min 1 ms ago after a reading 21 minutes old
  const auto a = assess({entry(k_t0 - 1min, 5), entry(k_t0 - 6min, 5), entry(k_t0 - 11min, 5),
                         entry(k_t0 - 15min - 1ms, 5), entry(k_t0 - 21min, 120)});
  CHECK(a.data == k_sensor_error);
  CHECK(a.glucose == std::nullopt);
  CHECK(a.status_code == std::optional<int>{5});
  CHECK(a.status_code_since == std::optional<TimePoint>{k_t0 - 15min - 1ms});
}

TEST_CASE("status codes for exactly stale.warn do not yet raise sensor_error",
          "[core][evaluate]") {
  const auto a = assess({entry(k_t0 - 1min, 5), entry(k_t0 - 15min, 5),
                         entry(k_t0 - 21min, 120)});
  CHECK(a.data == k_stale_warning);
}

TEST_CASE("a reading older than stale.urgent wins over sensor_error", "[core][evaluate]") {
  const auto a = assess({entry(k_t0 - 1min, 5), entry(k_t0 - 20min, 5),
                         entry(k_t0 - 31min, 120)});
  CHECK(a.data == k_stale_urgent);
  CHECK(a.status_code == std::optional<int>{5});
}

TEST_CASE("status codes after a fresh reading are noted, the reading still decides",
          "[core][evaluate]") {
  // Given a low 60 ten minutes ago, then codes
  const auto a = assess({entry(k_t0, 1), entry(k_t0 - 5min, 1), entry(k_t0 - 10min, 60)});
  CHECK(a.glucose == k_low);
  CHECK(a.data == std::nullopt);
  CHECK(a.status_code == std::optional<int>{1});
  CHECK(a.status_code_since == std::optional<TimePoint>{k_t0 - 5min});
}

TEST_CASE("status codes older than the latest reading are history, not a status",
          "[core][evaluate]") {
  const auto a = assess({entry(k_t0 - 1min, 120), entry(k_t0 - 6min, 5)});
  CHECK(a.status_code == std::nullopt);
  CHECK(a.status_code_since == std::nullopt);
}

TEST_CASE("a status code dated more than 5 minutes ahead is ignored", "[core][evaluate]") {
  const auto a = assess({entry(k_t0 + 10min, 5), entry(k_t0 - 1min, 120)});
  CHECK(a.status_code == std::nullopt);
  CHECK(a.status_code_since == std::nullopt);
}

TEST_CASE("a negative sgv is garbage, not a status code", "[core][evaluate]") {
  const auto a = assess({entry(k_t0 - 1min, -5), entry(k_t0 - 6min, 120)});
  CHECK(a.status_code == std::nullopt);
  REQUIRE(a.latest.has_value());
  CHECK(a.latest->sgv == 120);
}

TEST_CASE("only status codes: their run stands in for the reading's age", "[core][evaluate]") {
  SECTION("for less than stale.warn: noted, no alarm yet") {
    const auto a = assess({entry(k_t0 - 1min, 1), entry(k_t0 - 11min, 1)});
    CHECK(a.latest == std::nullopt);
    CHECK(a.status_code == std::optional<int>{1});
    CHECK(a.data == std::nullopt);
  }
  SECTION("for longer than stale.warn: sensor_error") {
    const auto a = assess({entry(k_t0 - 1min, 1), entry(k_t0 - 16min, 1)});
    CHECK(a.data == k_sensor_error);
  }
  SECTION("for longer than stale.urgent: stale, urgent") {
    const auto a = assess({entry(k_t0 - 1min, 1), entry(k_t0 - 31min, 1)});
    CHECK(a.data == k_stale_urgent);
    CHECK(a.status_code == std::optional<int>{1});
  }
}

// ---------------------------------------------------------------------------------------------
// Poll failures

TEST_CASE("a failed poll reports the error and no data alarm before `unreachable`",
          "[core][evaluate]") {
  const auto a = assess_failure(k_t0 - 30min + 1ms);
  CHECK(a.data == std::nullopt);
  CHECK(a.glucose == std::nullopt);
  REQUIRE(a.poll_error.has_value());
  CHECK(a.poll_error->kind == ErrorKind::timeout);
  CHECK(a.poll_error->message == "alice.example.org: timed out after 10s");
}

TEST_CASE("polls failing for `unreachable` raise unreachable (warning)", "[core][evaluate]") {
  const auto a = assess_failure(k_t0 - 30min);
  CHECK(a.data == k_unreachable);
  CHECK(a.poll_error.has_value());
}

TEST_CASE("a failed poll without a streak start counts as failing since now",
          "[core][evaluate]") {
  CHECK(assess_failure(std::nullopt).data == std::nullopt);
  AlarmSettings immediate;
  immediate.unreachable = 0s;
  CHECK(assess_failure(std::nullopt, immediate).data == k_unreachable);
}

TEST_CASE("a failed poll ignores any entries it carries", "[core][evaluate]") {
  PollOutcome outcome;
  outcome.entries = {entry(k_t0 - 1min, 40)};
  outcome.error = Error{ErrorKind::auth, "401"};
  outcome.failing_since = k_t0;
  const auto a = scout::core::evaluate(outcome, AlarmSettings{}, k_t0, k_noon);
  CHECK(a.latest == std::nullopt);
  CHECK(a.glucose == std::nullopt);
  CHECK(a.data == std::nullopt);
  CHECK(a.poll_error == std::optional<Error>{Error{ErrorKind::auth, "401"}});
}

// ---------------------------------------------------------------------------------------------
// urgent_low_soon (AR2)

TEST_CASE("urgent_low_soon holds when AR2 drops below urgent_low within the horizon",
          "[core][evaluate]") {
  // Given 100 then 80 five minutes later, read now: AR2 gives 68, 61, 57, 54, 53, 52
  // (ln(100/140) = -0.336472, ln(80/140) = -0.559616; step 4: 140*e^-0.952 = 54.41 -> 54)
  const auto a = assess({entry(k_t0, 80), entry(k_t0 - 5min, 100)});
  REQUIRE(values_of(a.forecast) == std::vector<int>{68, 61, 57, 54, 53, 52});
  // Then the 54 at +20 min is below 55 while 80 is above low: urgent_low_soon
  CHECK(a.glucose == k_urgent_low_soon);
  CHECK(a.worst() == k_urgent_low_soon);
}

TEST_CASE("urgent_low_soon ignores forecast points beyond the horizon", "[core][evaluate]") {
  // Given the same fall, with a 15-minute horizon: 68, 61, 57 are all >= 55
  AlarmSettings settings;
  settings.predict.horizon = 15min;
  const auto a = assess({entry(k_t0, 80), entry(k_t0 - 5min, 100)}, settings);
  CHECK(a.glucose == std::nullopt);
  // The boundary: a horizon of 20 min minus 1 ms also leaves out the point at +20 min
  settings.predict.horizon = 20min - 1ms;
  CHECK(assess({entry(k_t0, 80), entry(k_t0 - 5min, 100)}, settings).glucose == std::nullopt);
}

TEST_CASE("the horizon counts from the reading's time, not from now", "[core][evaluate]") {
  // Given 99 then 80: AR2 gives 69, 62, 58, 55, 54, 53 (first below 55 at +25 min)
  // and a reading 5 minutes old, so +25 min from the reading is +20 min from now
  const auto a = assess({entry(k_t0 - 5min, 80), entry(k_t0 - 10min, 99)});
  REQUIRE(values_of(a.forecast) == std::vector<int>{69, 62, 58, 55, 54, 53});
  // Then with a 20-minute horizon nothing holds (55 is not below 55)
  CHECK(a.glucose == std::nullopt);
  // while a 25-minute horizon reaches the 54
  AlarmSettings settings;
  settings.predict.horizon = 25min;
  CHECK(assess({entry(k_t0 - 5min, 80), entry(k_t0 - 10min, 99)}, settings).glucose ==
        k_urgent_low_soon);
}

TEST_CASE("urgent_low_soon holds for a reading exactly at low", "[core][evaluate]") {
  // 82 then 70: AR2 gives 63, 58, 56, 54, ... (the 54 at +20 min)
  const auto a = assess({entry(k_t0, 70), entry(k_t0 - 5min, 82)});
  REQUIRE(values_of(a.forecast).at(3) == 54);
  CHECK(a.glucose == k_urgent_low_soon);
}

TEST_CASE("below low, a falling forecast gives low, not urgent_low_soon", "[core][evaluate]") {
  // Given 85 then 65: already below low, and AR2 drops below 55 within 20 minutes
  const auto a = assess({entry(k_t0, 65), entry(k_t0 - 5min, 85)});
  const auto values = values_of(a.forecast);
  REQUIRE(values.size() == 6);
  REQUIRE(*std::min_element(values.begin(), values.begin() + 4) < 55);
  // Then the alarm is low
  CHECK(a.glucose == k_low);
}

TEST_CASE("with prediction disabled there is no forecast and no urgent_low_soon",
          "[core][evaluate]") {
  AlarmSettings settings;
  settings.predict.enabled = false;
  const auto a = assess({entry(k_t0, 80), entry(k_t0 - 5min, 100)}, settings);
  CHECK(a.forecast.empty());
  CHECK(a.glucose == std::nullopt);
}

TEST_CASE("a stale falling reading raises no urgent_low_soon", "[core][evaluate]") {
  const auto a = assess({entry(k_t0 - 16min, 80), entry(k_t0 - 21min, 100)});
  CHECK(a.glucose == std::nullopt);
  CHECK(a.data == k_stale_warning);
}

TEST_CASE("AR2 interpolates over a 15-minute gap (Libre) and can raise urgent_low_soon",
          "[core][evaluate]") {
  // Given 140 fifteen minutes before 80: five minutes ago is 80 - (80 - 140) / 15 * 5 = 100,
  // so the forecast is the one of 100 -> 80 above
  const auto a = assess({entry(k_t0, 80), entry(k_t0 - 15min, 140)});
  CHECK(values_of(a.forecast) == std::vector<int>{68, 61, 57, 54, 53, 52});
  CHECK(a.glucose == k_urgent_low_soon);
  CHECK(a.delta == std::optional<int>{-20});  // (80 - 140) / 15 * 5, bgnow.js
}

TEST_CASE("no forecast when the previous reading is more than 17.5 minutes older",
          "[core][evaluate]") {
  const auto a = assess({entry(k_t0, 80), entry(k_t0 - 1050s - 1ms, 140)});
  CHECK(a.forecast.empty());
  CHECK(a.delta == std::nullopt);
  CHECK(a.glucose == std::nullopt);
}

TEST_CASE("the forecast starts at the latest reading and uses the previous usable one",
          "[core][evaluate]") {
  // Given a status code between two readings, and one older reading
  const auto a = assess({entry(k_t0 - 1min, 90), entry(k_t0 - 3min, 5), entry(k_t0 - 6min, 100),
                         entry(k_t0 - 11min, 200)});
  // Then AR2 runs on 100 -> 90 (84, 80, 77, 76, 75, 75), dated from the latest reading
  REQUIRE(a.forecast.size() == 6);
  CHECK(values_of(a.forecast) == std::vector<int>{84, 80, 77, 76, 75, 75});
  CHECK(a.forecast.front().at == k_t0 + 4min);
}
