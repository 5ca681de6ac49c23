#pragma once
// Nightscout entries as scout sees them (SPEC §3, protocols.md §1.3).

#include <optional>
#include <string>
#include <vector>

#include "scout/core/units.hpp"

namespace scout::core {

// Lowest and highest sgv that are glucose (SPEC §3). 39 is Dexcom "LOW" (an urgent low),
// 401 "HIGH"; below 39 are sensor status codes, not glucose.
inline constexpr int k_sgv_low_code = 39;
inline constexpr int k_sgv_high_code = 401;
// A reading dated further than this in the future is not usable (SPEC §3).
inline constexpr Duration k_max_future_skew = std::chrono::minutes{5};

// One `sgv` entry from Nightscout, after parsing. `sgv` is mg/dL as sent (may be a status code).
struct Entry {
  TimePoint date;         // `date`, ms since epoch, UTC
  int sgv = 0;            // mg/dL; < 39 is a sensor status code
  std::string direction;  // Nightscout trend name, "" when absent
  bool operator==(const Entry&) const = default;
};

// True when `e` is usable at `now`: 39 <= sgv <= 401 and date <= now + 5 min (SPEC §3; both
// bounds inclusive).
bool is_usable(const Entry& e, TimePoint now);

// A human name for a sensor status code (sgv < 39): Nightscout's display code followed by its
// meaning in parentheses (lib/plugins/errorcodes.js code2Display):
// 1 "?SN (sensor not active)", 2 "?MD (minimal deviation)", 3 "?NA (no antenna)",
// 5 "?NC (sensor not calibrated)", 6 "?CD (counts deviation)", 9 "?AD (absolute deviation)",
// 10 "??? (power deviation)", 12 "?RF (bad RF)"; any other value N (0 included) "code N".
std::string describe_status_code(int sgv);

// Nightscout's arrow for a direction name (lib/plugins/direction.js dir2Char), UTF-8:
// NONE ⇼, TripleUp ⤊, DoubleUp ⇈, SingleUp ↑, FortyFiveUp ↗, Flat →, FortyFiveDown ↘,
// SingleDown ↓, DoubleDown ⇊, TripleDown ⤋, "NOT COMPUTABLE" -, "RATE OUT OF RANGE" ⇕;
// "-" for anything else (also ""). Names are case-sensitive, as in Nightscout.
const char* direction_arrow(const std::string& direction);

// True when `direction` is one of the names direction.js knows (NONE, TripleUp .. TripleDown,
// "NOT COMPUTABLE", "RATE OUT OF RANGE"); case-sensitive, as Nightscout compares them.
bool is_direction_name(const std::string& direction);

}  // namespace scout::core
