#include "scout/adapters/timezone.hpp"

#include <date/date.h>
#include <date/tz.h>

#include <chrono>
#include <exception>
#include <mutex>
#include <string>
#include <unordered_map>

namespace scout::adapters {

namespace {

// The zone named `name`, or nullptr when the database does not know it. date::locate_zone
// throws std::runtime_error for an unknown name (and when the database cannot be read).
// Looked up once per name and kept (SPEC §7: a tick at 10,000 patients must not search the
// database, or read /etc/localtime, per patient). Thread-safe.
const date::time_zone* find_zone(const std::string& name) {
  if (name.empty()) {
    return nullptr;
  }
  static std::mutex mutex;
  static std::unordered_map<std::string, const date::time_zone*> known;
  const std::lock_guard lock{mutex};
  if (const auto it = known.find(name); it != known.end()) return it->second;
  const date::time_zone* zone = nullptr;
  try {
    zone = date::locate_zone(name);
  } catch (const std::exception&) {
    zone = nullptr;
  }
  if (known.size() < 4096) known.emplace(name, zone);  // bounded: names come from the config
  return zone;
}

// The host's zone, determined once; UTC when it cannot be determined (e.g. a container without
// /etc/localtime, where date::current_zone throws).
const date::time_zone* host_zone() {
  static const date::time_zone* const zone = []() -> const date::time_zone* {
    try {
      return date::current_zone();
    } catch (const std::exception&) {
      return find_zone("UTC");
    }
  }();
  return zone;
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
