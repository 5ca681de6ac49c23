#include "scout/adapters/timezone.hpp"

#include <date/date.h>
#include <date/tz.h>

#include <chrono>
#include <cstdio>
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

namespace {

const date::time_zone* zone_or_host(const std::string& name) {
  const date::time_zone* zone = find_zone(name);
  return zone != nullptr ? zone : host_zone();
}

}  // namespace

long long local_day_number(const std::string& name, core::TimePoint at) {
  const auto local = local_time_at(zone_or_host(name), at);
  return date::floor<date::days>(local).time_since_epoch().count();
}

std::string local_date(const std::string& name, core::TimePoint at) {
  const date::year_month_day ymd{
      date::sys_days{date::days{local_day_number(name, at)}}};
  char buffer[16];
  std::snprintf(buffer, sizeof buffer, "%04d-%02u-%02u", static_cast<int>(ymd.year()),
                static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()));
  return buffer;
}

core::TimePoint from_local(const std::string& name, long long day_number, int minute_of_day) {
  const date::time_zone* zone = zone_or_host(name);
  const date::local_time<std::chrono::milliseconds> local{
      date::days{day_number} + std::chrono::minutes{minute_of_day}};
  if (zone == nullptr) return core::TimePoint{local.time_since_epoch()};
  try {
    // A time that does not exist (spring forward) or exists twice (fall back): the earlier one.
    return zone->to_sys(local, date::choose::earliest);
  } catch (const std::exception&) {
    return core::TimePoint{local.time_since_epoch()};
  }
}

}  // namespace scout::adapters
