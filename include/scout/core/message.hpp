#pragma once
// The words scout says (SPEC §4): what a call speaks and an SMS reads, for a half-asleep person.
// Pure: local times are passed in already formatted.

#include <optional>
#include <string>

#include "scout/core/config.hpp"
#include "scout/core/evaluate.hpp"

namespace scout::core {

// The trend in words for a Nightscout direction name: "falling fast" (DoubleDown), "falling"
// (SingleDown), "falling slowly" (FortyFiveDown), "steady" (Flat), "rising slowly", "rising",
// "rising fast", "falling very fast" / "rising very fast" (Triple*); "" when unknown or not
// computable.
std::string direction_words(const std::string& direction);

// A short human title of an alarm kind: "URGENT LOW", "URGENT LOW SOON", "LOW", "URGENT HIGH",
// "HIGH", "NO DATA", "NIGHTSCOUT UNREACHABLE", "SENSOR ERROR".
std::string alarm_title(const Alarm& alarm);

// What scout knows about a patient's readings that its messages speak (SPEC §4.8). Kept in
// core::PatientState (and the state file) and refreshed by every assessment, so that a message
// rendered at any later moment can say the newest reading and its true age.
struct ReadingFacts {
  std::optional<Entry> latest;            // the newest usable reading seen
  std::optional<int> forecast_low;        // lowest AR2 point within predict.horizon, mg/dL
  std::optional<int> status_code;         // newest sensor code newer than `latest`
  std::optional<TimePoint> status_code_since;
  std::optional<Duration> cadence;        // the sensor's median reading spacing
  bool operator==(const ReadingFacts&) const = default;
};

// The facts of one assessment as it is (a failed poll's assessment carries the last reading).
ReadingFacts facts_of(const Assessment& assessment, const AlarmSettings& settings);

// `before` updated by one assessment: a failed poll changes nothing; a successful one sets
// every field, keeping the old `latest` (and its forecast) only when the poll had no usable
// reading, and the old cadence when it could not measure one.
ReadingFacts update_facts(const ReadingFacts& before, const Assessment& assessment,
                          const AlarmSettings& settings);

// What a call or an SMS is about: facts, rendered into words only when it is sent (SPEC §4.8).
enum class MessagePurpose {
  alarm,      // the alarm sentence
  reminder,   // the alarm sentence + " Not acknowledged yet." (later steps, repeats)
  held_back,  // the alarm sentence + " (scout did not call: <held_detail>)" (SPEC §4.6)
  resolved,   // the all-clear (core::resolved_message) for `alarm` (the episode's peak)
};

struct Message {
  MessagePurpose purpose = MessagePurpose::alarm;
  Alarm alarm;                  // the kind that holds (resolved: the episode's most severe)
  std::optional<Alarm> paused;  // data alarms: the glucose alarm that holds meanwhile (§4.9)
  std::string held_detail;      // held_back: why the call was not placed ("called 1m ago")
  bool operator==(const Message&) const = default;
};

// The words of `message` about `patient_name` at `now` (SPEC §4, §4.8–4.9), never carrying a
// URL or token, e.g.
//   "Alice: URGENT LOW, 52 mg/dL, falling, 1 min ago."
//   "Alice: URGENT LOW SOON, 72 mg/dL, falling fast, 2 min ago, forecast 50 mg/dL within 20 min."
//   "Alice: NO DATA, no new glucose data for 40 min, last value 110 mg/dL."
//   "Alice: NO DATA, no new glucose data for 40 min; the last value, 42 mg/dL, was an URGENT LOW."
//   "Alice: NIGHTSCOUT UNREACHABLE, scout cannot reach Alice's Nightscout since 02:10, last value
//    110 mg/dL 35 min ago."
//   "Alice: SENSOR ERROR, the sensor reports ?NC (sensor not calibrated) since 02:10."
// Ages are now - reading date, never negative. `since_local` is the local "HH:MM" of the failure
// streak's start (unreachable) or of facts.status_code_since (sensor_error); ignored otherwise.
std::string render_message(const std::string& patient_name, const Message& message,
                           const ReadingFacts& facts, const AlarmSettings& settings,
                           GlucoseUnit unit, TimePoint now, const std::string& since_local);

// The alarm sentence for an assessment as it is now: render_message of an `alarm` message with
// the facts of `assessment` at `now`.
std::string alarm_message(const std::string& patient_name, const Alarm& alarm,
                          const Assessment& assessment, const AlarmSettings& settings,
                          GlucoseUnit unit, TimePoint now, const std::string& since_local);

// The all-clear text for a resolved alarm, e.g. "Alice: URGENT LOW is over, now 98 mg/dL."
// (glucose alarms, with the value in `unit`) or "Alice: NO DATA is over, readings are arriving
// again." (data alarms; `sgv` ignored).
std::string resolved_message(const std::string& patient_name, const Alarm& alarm,
                             std::optional<int> sgv, GlucoseUnit unit);

}  // namespace scout::core
