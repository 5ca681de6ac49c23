#pragma once
// The words scout says (SPEC §4): what a call speaks and an SMS reads, for a half-asleep person.
// Pure: local times are passed in already formatted.

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

// One sentence about `patient`'s alarm (SPEC §4), never carrying a URL or token, e.g.
//   "Alice: URGENT LOW, 52 mg/dL, falling, 1 min ago."
//   "Alice: URGENT LOW SOON, 72 mg/dL, falling fast, forecast 50 mg/dL within 20 min."
//   "Alice: NO DATA, no new glucose data for 40 min, last value 110 mg/dL."
//   "Alice: NIGHTSCOUT UNREACHABLE, scout cannot reach Alice's Nightscout since 02:10."
//   "Alice: SENSOR ERROR, the sensor reports ?NC (sensor not calibrated) since 02:10."
// `since_local` is the local "HH:MM" for unreachable (start of the failure streak) and
// sensor_error (status_code_since); ignored otherwise.
std::string alarm_message(const std::string& patient_name, const Alarm& alarm,
                          const Assessment& assessment, const AlarmSettings& settings,
                          GlucoseUnit unit, const std::string& since_local);

}  // namespace scout::core
