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

// Days since 1970-01-01 of the local date at `at` in zone `name` (the host's when empty or
// unknown), and that date as "YYYY-MM-DD".
long long local_day_number(const std::string& name, core::TimePoint at);
std::string local_date(const std::string& name, core::TimePoint at);
// The instant of local day `day_number` at `minute_of_day` in zone `name` (host's when empty or
// unknown); a local time that does not exist or exists twice (DST changes) gives the earlier.
core::TimePoint from_local(const std::string& name, long long day_number, int minute_of_day);

}  // namespace scout::adapters
