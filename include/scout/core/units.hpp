#pragma once
// Time, glucose units and durations. Pure: no clock reads.

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "scout/core/result.hpp"

namespace scout::core {

// Wall-clock instants, milliseconds since the Unix epoch (UTC), as in Nightscout's `date`.
using TimePoint = std::chrono::sys_time<std::chrono::milliseconds>;
// Spans of time, in milliseconds.
using Duration = std::chrono::milliseconds;

// Nightscout's factor: 1 mmol/L = 18.01559 mg/dL (nightscout/cgm-remote-monitor:lib/constants.json
// MMOL_TO_MGDL).
inline constexpr double k_mmol_to_mgdl = 18.01559;

// The unit of thresholds in the config and of glucose in messages (SPEC §2 `units`).
enum class GlucoseUnit { mg_dl, mmol_l };

// "mg/dL" or "mmol/L".
const char* to_string(GlucoseUnit unit);

// Converts a value given in `unit` to whole mg/dL the way Nightscout's lib/units.js
// mmolToMgdl does: Math.round(x * 18.01559) for mmol/L; mg/dL values are rounded the same way.
// Math.round semantics: nearest integer, ties toward +infinity (2.5 -> 3, -2.5 -> -2).
// NaN gives 0; values beyond int's range saturate.
int to_mgdl(double value, GlucoseUnit unit);

// Formats an mg/dL value for display in `unit`: a whole number for mg/dL (Math.round, "52");
// for mmol/L one decimal, as Nightscout's mgdlToMMOL: (Math.round(x / 18.01559 * 10) / 10)
// .toFixed(1), e.g. 52 -> "2.9", 90 -> "5.0".
std::string format_glucose(double mgdl, GlucoseUnit unit);

// Formats a signed delta in mg/dL for display in `unit`: "+3", "-6", "+0.2", "-0.3". The mg/dL
// delta itself is converted (value / 18.01559, one decimal) and rounded like Math.round. A delta
// that rounds to zero is "+0" (mg/dL) or "+0.0" (mmol/L), as Nightscout's delta.js shows it.
std::string format_delta(double mgdl, GlucoseUnit unit);

// The delta from `previous_mgdl` to `recent_mgdl` as Nightscout's page shows it
// (lib/plugins/bgnow.js calcDelta, `scaled`): mg/dL, Math.round(recent - previous); mmol/L,
// the difference of the two values each rounded to one decimal first ("+0.2", "-0.3", "+0.0").
std::string format_delta_between(double recent_mgdl, double previous_mgdl, GlucoseUnit unit);

// Parses a SPEC §2 duration: one or more <integer><unit> groups, unit one of h, m, s
// (also ms for completeness), in decreasing order, e.g. "45s", "15m", "2h", "1h30m", "0s",
// "500ms". No sign, no fraction, no spaces.
// Errors (ErrorKind::config; the message quotes the text, says what is wrong and the expected
// form): empty text, missing number, missing/unknown/repeated unit, units out of order,
// fractions ("1.5h"), a sign ("-5m"), other characters, overflow of the millisecond count.
[[nodiscard]] Result<Duration> parse_duration(std::string_view text);

// Formats a duration for humans: "0s", "45s", "15m", "1h30m", "2h", "1h5s" (zero groups are
// left out; hours are not folded into days). Sub-second parts are dropped (truncated); negative
// durations get a leading '-'. A non-negative result parses back with parse_duration.
std::string format_duration(Duration d);

// Formats a reading age for humans: whole seconds below 2 minutes ("0s", "30s", "119s"), then
// whole minutes rounded down ("2 min", "59 min"), then hours and minutes ("1 h", "1 h 5 min").
// A negative age (a reading dated slightly in the future) is "0s".
std::string format_age(Duration age);

}  // namespace scout::core
