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
  // What scout already knew before this poll (core::PatientState::facts): the newest usable
  // reading and the sensor's cadence. Used only when the poll failed, so that the data still
  // age and go stale while Nightscout cannot be read (SPEC §4.9).
  std::optional<Entry> last_reading;
  std::optional<Duration> last_cadence;
};

// The stale thresholds in force for a sensor of `cadence` (SPEC §3): a sensor slower than
// 5 minutes gets warn >= cadence + 10m and urgent >= 2 x cadence + 15m, so that a reading that
// is on time never looks stale. Without a cadence, or at 5 minutes or faster, `configured`.
StaleSettings stale_in_force(const StaleSettings& configured, std::optional<Duration> cadence);

// The median spacing of consecutive usable readings of `entries` (any order, one per date), or
// nullopt for fewer than two such readings.
std::optional<Duration> cadence_of(const std::vector<Entry>& entries, TimePoint now);

struct Assessment {
  // The newest usable reading (SPEC §3), if any. After a failed poll: the last one known.
  std::optional<Entry> latest;
  // now - latest->date, never negative (a reading up to 5 minutes in the future is 0 s old).
  std::optional<Duration> age;
  // The reading the delta and forecast come from, as Nightscout's bgnow.js picks it: the newest
  // usable reading more than 2.5 and at most 17.5 minutes older than `latest` (its 5-minute
  // buckets). Unset when there is none or when either is a 39 ("LOW") code.
  std::optional<Entry> previous;
  // The glucose 5 minutes before `latest` (bgnow.js mean5MinsAgo): previous->sgv, or read off
  // the straight line to `previous` when they are more than 9 minutes apart. mg/dL.
  std::optional<double> mgdl_5_mins_ago;
  // Nightscout's delta (bgnow.js delta.mgdl): Math.round(latest - mgdl_5_mins_ago), mg/dL; so a
  // sensor slower than 5 minutes gets its delta scaled to 5 minutes.
  std::optional<int> delta;
  // All six AR2 points after `latest`, from `latest` and mgdl_5_mins_ago (empty when
  // prediction is off, there is no `previous`, or ar2 refuses). Only points within
  // predict.horizon of latest.date count for urgent_low_soon.
  std::vector<ar2::Point> forecast;
  // The thresholds in force (schedule applied for the local time of day).
  Thresholds thresholds;
  // The stale thresholds in force (stale_in_force of the sensor's cadence) and that cadence.
  StaleSettings stale;
  std::optional<Duration> cadence;
  // At most one glucose alarm (urgent_low .. high), the most severe that holds; never set when
  // the newest reading is stale or the poll failed.
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

  // True when `latest` is set, not stale (age <= stale.warn) and came from a successful poll.
  bool fresh() const;
  // The more severe of `glucose` and `data`, if any: urgent before warning, then the SPEC §4
  // kind order (AlarmKind's order; glucose kinds come first).
  std::optional<Alarm> worst() const;
  // The lowest AR2 point within `horizon` of latest.date, mg/dL; nullopt without a forecast.
  std::optional<int> forecast_low(Duration horizon) const;
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
//   - the stale thresholds are stale_in_force(settings.stale, cadence of the entries);
//     staleness is strict ("older than"): age > stale.urgent -> data alarm stale/urgent;
//     age > stale.warn -> stale/warning; a stale reading (age > stale.warn) raises no glucose
//     alarm; age == stale.warn is still fresh;
//   - status codes newer than the newest usable reading for longer than stale.warn
//     (now - status_code_since > stale.warn) -> sensor_error (warning), which replaces
//     stale/warning but not stale/urgent (the more severe wins);
//   - no usable reading at all: without status codes -> stale/urgent; with codes, their run
//     stands in for the age (now - status_code_since) in the two rules above;
//   - poll failed: entries are ignored; `latest` is outcome.last_reading (no delta, no
//     forecast) and the stale rules apply to its age with outcome.last_cadence; otherwise
//     unreachable (warning) once now - failing_since >= settings.unreachable (failing_since
//     missing counts as `now`); stale/urgent outranks unreachable, unreachable outranks
//     stale/warning; no glucose alarm;
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
