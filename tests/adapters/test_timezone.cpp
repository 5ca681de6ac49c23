#include "scout/adapters/timezone.hpp"

#include <catch2/catch.hpp>

#include <chrono>

using scout::adapters::is_known_timezone;
using scout::adapters::local_hhmm;
using scout::adapters::local_minute_of_day;
using scout::core::ErrorKind;
using scout::core::TimePoint;

namespace {

// A UTC instant from a civil date and time.
TimePoint utc(int year, unsigned month, unsigned day, int hours, int minutes) {
  using namespace std::chrono;
  const sys_days date =
      year_month_day{std::chrono::year{year}, std::chrono::month{month}, std::chrono::day{day}};
  return TimePoint{date} + hours * 1h + minutes * 1min;
}

}  // namespace

TEST_CASE("Paris is two hours ahead of UTC in summer", "[adapters][timezone]") {
  // Given 2024-07-01 12:00 UTC (CEST, UTC+2)
  const auto minute = local_minute_of_day("Europe/Paris", utc(2024, 7, 1, 12, 0));
  // Then it is 14:00 in Paris
  REQUIRE(minute.has_value());
  CHECK(*minute == 14 * 60);
  CHECK(local_hhmm("Europe/Paris", utc(2024, 7, 1, 12, 0)) == "14:00");
}

TEST_CASE("Paris is one hour ahead of UTC in winter", "[adapters][timezone]") {
  // Given 2024-01-15 12:00 UTC (CET, UTC+1)
  const auto minute = local_minute_of_day("Europe/Paris", utc(2024, 1, 15, 12, 0));
  // Then it is 13:00 in Paris
  REQUIRE(minute.has_value());
  CHECK(*minute == 13 * 60);
}

TEST_CASE("a UTC instant late in the evening is early morning of the next day in Paris",
          "[adapters][timezone]") {
  // Given 2024-07-01 22:30 UTC
  const auto minute = local_minute_of_day("Europe/Paris", utc(2024, 7, 1, 22, 30));
  // Then it is 00:30 in Paris (wrapped past midnight)
  REQUIRE(minute.has_value());
  CHECK(*minute == 30);
  CHECK(local_hhmm("Europe/Paris", utc(2024, 7, 1, 22, 30)) == "00:30");
}

TEST_CASE("UTC local time is the UTC time of day", "[adapters][timezone]") {
  const auto minute = local_minute_of_day("UTC", utc(2024, 3, 31, 1, 59));
  REQUIRE(minute.has_value());
  CHECK(*minute == 1 * 60 + 59);
  CHECK(local_hhmm("UTC", utc(2024, 3, 31, 1, 59)) == "01:59");
}

TEST_CASE("New York is behind UTC", "[adapters][timezone]") {
  // Given 2024-07-01 03:00 UTC (EDT, UTC-4): 23:00 the day before
  const auto minute = local_minute_of_day("America/New_York", utc(2024, 7, 1, 3, 0));
  REQUIRE(minute.has_value());
  CHECK(*minute == 23 * 60);
}

TEST_CASE("an unknown zone is a config error that names it", "[adapters][timezone]") {
  const auto minute = local_minute_of_day("Europe/Pariss", utc(2024, 7, 1, 12, 0));
  REQUIRE_FALSE(minute.has_value());
  CHECK(minute.error().kind == ErrorKind::config);
  CHECK(minute.error().message == "unknown timezone 'Europe/Pariss'");
}

TEST_CASE("the host's zone is used when the name is empty", "[adapters][timezone]") {
  // Whatever the host's zone is, the result is a minute of the day.
  const auto minute = local_minute_of_day("", utc(2024, 7, 1, 12, 0));
  REQUIRE(minute.has_value());
  CHECK(*minute >= 0);
  CHECK(*minute < 24 * 60);
}

TEST_CASE("local_hhmm falls back to the host's zone for an unknown name", "[adapters][timezone]") {
  const TimePoint t = utc(2024, 7, 1, 12, 0);
  CHECK(local_hhmm("No/Such_Zone", t) == local_hhmm("", t));
}

TEST_CASE("known IANA zones are recognised and others are not", "[adapters][timezone]") {
  CHECK(is_known_timezone("Europe/Paris"));
  CHECK(is_known_timezone("UTC"));
  CHECK(is_known_timezone("America/New_York"));
  CHECK_FALSE(is_known_timezone(""));
  CHECK_FALSE(is_known_timezone("Europe/Pariss"));
  CHECK_FALSE(is_known_timezone("europe/paris"));
  CHECK_FALSE(is_known_timezone("../../etc/passwd"));
}
