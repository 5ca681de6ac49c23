#pragma once
// Evaluation (SPEC §3–§4): a pure function of (entries, patient settings, now, local time of day,
// poll outcome) that says which alarm holds.

#include <optional>
#include <string>
#include <vector>

#include "scout/core/ar2.hpp"
#include "scout/core/config.hpp"
#include "scout/core/reading.hpp"

namespace scout::core {

// Alarm kinds, most severe first (SPEC §4). Names as in SPEC (to_string).
enum class AlarmKind {
  urgent_low,
  urgent_low_soon,
  low,
  urgent_high,
  high,
  stale,
  unreachable,
  sensor_error,
};
const char* to_string(AlarmKind kind);

// Which escalation chain an alarm runs (SPEC §4: urgent kinds use `urgent`).
enum class Severity { warning, urgent };
const char* to_string(Severity severity);

// An alarm that holds now. For `stale` the severity depends on the age (warn/urgent).
struct Alarm {
  AlarmKind kind = AlarmKind::low;
  Severity severity = Severity::warning;
  bool operator==(const Alarm&) const = default;
};

// What the last poll of the patient's Nightscout gave.
struct PollOutcome {
  // The entries fetched, any order; empty when the poll failed.
  std::vector<Entry> entries;
  // Set when the poll failed; `entries` is then ignored.
  std::optional<Error> error;
  // When the current streak of failed polls began (first failure), if the poll failed.
  // For a one-shot check this equals `now`.
  std::optional<TimePoint> failing_since;
};

struct Assessment {
  // The newest usable reading (SPEC §3), if any.
  std::optional<Entry> latest;
  // now - latest->date, when latest is set.
  std::optional<Duration> age;
  // latest.sgv minus the previous usable reading's sgv, in mg/dL, when that reading is
  // 4–6 minutes older, bounds inclusive (SPEC §3). "Previous" is the next older usable reading,
  // not a search for one 4–6 minutes back.
  std::optional<int> delta;
  // All six AR2 points after `latest`, from latest and the previous usable reading (empty when
  // prediction is off, there is no previous reading, it is more than 15 minutes older, or ar2
  // refuses). Only points within predict.horizon of latest.date count for urgent_low_soon.
  std::vector<ar2::Point> forecast;
  // The thresholds in force (schedule applied for the local time of day).
  Thresholds thresholds;
  // At most one glucose alarm (urgent_low .. high), the most severe that holds; never set when
  // the newest reading is stale.
  std::optional<Alarm> glucose;
  // At most one data alarm (stale, unreachable, sensor_error).
  std::optional<Alarm> data;
  // When the newest entries are sensor status codes (0 <= sgv < 39) newer than `latest` (or
  // when there is no usable reading at all): the newest code and since when (the date of the
  // oldest of those codes).
  std::optional<int> status_code;
  std::optional<TimePoint> status_code_since;
  // Set when the poll failed.
  std::optional<Error> poll_error;

  // The more severe of `glucose` and `data`, if any: urgent before warning, then the SPEC §4
  // kind order (AlarmKind's order; glucose kinds come first).
  std::optional<Alarm> worst() const;
};

// Evaluates one patient.
//   outcome        the poll result (entries or error)
//   settings       the patient's resolved settings
//   now            wall-clock time of the evaluation
//   minute_of_day  local time of day in the patient's timezone, 0..1439 (for `schedule`)
// Rules (SPEC §3–§4); all glucose values are mg/dL:
//   - entries may come in any order and are sorted newest first; entries dated more than
//     5 minutes after `now` are ignored entirely; of entries sharing a date one is kept (a
//     usable one if any, else the first given); sgv < 0 and sgv > 401 are ignored;
//   - usable readings only (is_usable); the newest decides;
//   - staleness is strict ("older than"): age > stale.urgent -> data alarm stale/urgent;
//     age > stale.warn -> stale/warning; a stale reading (age > stale.warn) raises no glucose
//     alarm; age == stale.warn is still fresh;
//   - status codes newer than the newest usable reading for longer than stale.warn
//     (now - status_code_since > stale.warn) -> sensor_error (warning), which replaces
//     stale/warning but not stale/urgent (the more severe wins);
//   - no usable reading at all: without status codes -> stale/urgent; with codes, their run
//     stands in for the age (now - status_code_since) in the two rules above;
//   - poll failed: entries are ignored and nothing but `thresholds` and `poll_error` is set;
//     unreachable (warning) once now - failing_since >= settings.unreachable (failing_since
//     missing counts as `now`), otherwise no data alarm (the caller reports the error);
//   - glucose, first match wins: sgv < urgent_low (39 "LOW" always) -> urgent_low;
//     urgent_low_soon when predict.enabled, sgv >= low, and an AR2 point dated at most
//     predict.horizon after latest.date (counted from the reading, as ar2.js does) is
//     < urgent_low; sgv < low -> low; sgv > urgent_high (401 "HIGH" always) -> urgent_high;
//     sgv > high -> high. A value equal to a threshold raises nothing.
//   - severity: urgent_low, urgent_low_soon, urgent_high -> urgent; low, high, unreachable,
//     sensor_error -> warning; stale as above.
Assessment evaluate(const PollOutcome& outcome, const AlarmSettings& settings, TimePoint now,
                    int minute_of_day);

}  // namespace scout::core
