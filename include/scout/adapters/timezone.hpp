#pragma once
// Local time of day in a patient's timezone, from the system tz database (HowardHinnant date,
// Debian's libhowardhinnant-date-dev, reading /usr/share/zoneinfo).

#include <string>

#include "scout/core/result.hpp"
#include "scout/core/units.hpp"

namespace scout::adapters {

// True when `name` is an IANA zone known to the system database.
bool is_known_timezone(const std::string& name);

// Minutes since local midnight (0..1439) at `at` in zone `name`; empty `name` = the host's zone.
// Errors: ErrorKind::config for an unknown zone.
[[nodiscard]] core::Result<int> local_minute_of_day(const std::string& name, core::TimePoint at);

// "HH:MM" local time at `at` in zone `name` (the host's zone when empty or unknown).
std::string local_hhmm(const std::string& name, core::TimePoint at);

}  // namespace scout::adapters
