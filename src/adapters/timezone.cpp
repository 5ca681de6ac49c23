#include "scout/adapters/timezone.hpp"

#include <date/date.h>
#include <date/tz.h>

#include <chrono>
#include <exception>

namespace scout::adapters {

namespace {

// The zone named `name`, or nullptr when the database does not know it. date::locate_zone
// throws std::runtime_error for an unknown name (and when the database cannot be read).
const date::time_zone* find_zone(const std::string& name) {
  if (name.empty()) {
    return nullptr;
  }
  try {
    return date::locate_zone(name);
  } catch (const std::exception&) {
    return nullptr;
  }
}

// The host's zone; UTC when it cannot be determined (e.g. a container without /etc/localtime,
// where date::current_zone throws).
const date::time_zone* host_zone() {
  try {
    return date::current_zone();
  } catch (const std::exception&) {
    return find_zone("UTC");
  }
}

// Local time at `at` in `zone`; `at` itself (UTC) when `zone` is null.
date::local_time<std::chrono::milliseconds> local_time_at(const date::time_zone* zone,
                                                          core::TimePoint at) {
  if (zone == nullptr) {
    return date::local_time<std::chrono::milliseconds>{at.time_since_epoch()};
  }
  try {
    return date::make_zoned(zone, at).get_local_time();
  } catch (const std::exception&) {
    return date::local_time<std::chrono::milliseconds>{at.time_since_epoch()};
  }
}

int minute_of_day(date::local_time<std::chrono::milliseconds> local) {
  const auto midnight = date::floor<date::days>(local);
  return static_cast<int>(
      std::chrono::duration_cast<std::chrono::minutes>(local - midnight).count());
}

}  // namespace

bool is_known_timezone(const std::string& name) { return find_zone(name) != nullptr; }

core::Result<int> local_minute_of_day(const std::string& name, core::TimePoint at) {
  const date::time_zone* zone = nullptr;
  if (name.empty()) {
    zone = host_zone();
  } else {
    zone = find_zone(name);
    if (zone == nullptr) {
      return core::fail(core::ErrorKind::config, "unknown timezone '" + name + "'");
    }
  }
  return minute_of_day(local_time_at(zone, at));
}

std::string local_hhmm(const std::string& name, core::TimePoint at) {
  const date::time_zone* zone = find_zone(name);
  if (zone == nullptr) {
    zone = host_zone();
  }
  const int minute = minute_of_day(local_time_at(zone, at));
  const int hours = minute / 60;
  const int minutes = minute % 60;
  std::string out;
  out += static_cast<char>('0' + hours / 10);
  out += static_cast<char>('0' + hours % 10);
  out += ':';
  out += static_cast<char>('0' + minutes / 10);
  out += static_cast<char>('0' + minutes % 10);
  return out;
}

}  // namespace scout::adapters
