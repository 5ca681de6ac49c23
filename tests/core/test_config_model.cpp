#include "scout/core/config.hpp"

#include <catch2/catch.hpp>

#include <string>

using scout::core::AckMode;
using scout::core::AlarmSettings;
using scout::core::apply;
using scout::core::in_window;
using scout::core::is_e164;
using scout::core::ProviderType;
using scout::core::ScheduleEntry;
using scout::core::ThresholdOverrides;
using scout::core::Thresholds;
using scout::core::thresholds_at;

namespace {

constexpr int at(int hours, int minutes) { return hours * 60 + minutes; }

ScheduleEntry night_low_80() {
  ScheduleEntry entry;
  entry.start_minute = at(22, 0);
  entry.end_minute = at(7, 0);
  entry.thresholds.low = 80;
  return entry;
}

}  // namespace

TEST_CASE("apply replaces exactly the thresholds that an override sets", "[core][config]") {
  // Given the SPEC defaults and an override of low and urgent_high only
  const Thresholds base{55, 70, 250, 300};
  ThresholdOverrides overrides;
  overrides.low = 80;
  overrides.urgent_high = 320;
  // When it is applied
  const Thresholds result = apply(base, overrides);
  // Then the other two keep their base values
  CHECK(result == Thresholds{55, 80, 250, 320});
}

TEST_CASE("apply with an empty override returns the base unchanged", "[core][config]") {
  const Thresholds base{50, 72, 180, 260};
  CHECK(apply(base, ThresholdOverrides{}) == base);
}

TEST_CASE("a daytime window holds from its start up to but not including its end",
          "[core][config]") {
  // Given 08:00-12:00
  ScheduleEntry entry;
  entry.start_minute = at(8, 0);
  entry.end_minute = at(12, 0);
  // Then the start is in, the end is out, and the times around are out
  CHECK_FALSE(in_window(entry, at(7, 59)));
  CHECK(in_window(entry, at(8, 0)));
  CHECK(in_window(entry, at(11, 59)));
  CHECK_FALSE(in_window(entry, at(12, 0)));
  CHECK_FALSE(in_window(entry, at(23, 0)));
}

TEST_CASE("a window that wraps midnight holds late in the evening and early in the morning",
          "[core][config]") {
  // Given 22:00-07:00
  const ScheduleEntry entry = night_low_80();
  // Then it holds from 22:00 through midnight until 06:59
  CHECK_FALSE(in_window(entry, at(21, 59)));
  CHECK(in_window(entry, at(22, 0)));
  CHECK(in_window(entry, at(23, 59)));
  CHECK(in_window(entry, at(0, 0)));
  CHECK(in_window(entry, at(6, 59)));
  CHECK_FALSE(in_window(entry, at(7, 0)));
  CHECK_FALSE(in_window(entry, at(12, 0)));
}

TEST_CASE("an empty window (start equal to end) never holds", "[core][config]") {
  ScheduleEntry entry;
  entry.start_minute = at(5, 0);
  entry.end_minute = at(5, 0);
  CHECK_FALSE(in_window(entry, at(5, 0)));
  CHECK_FALSE(in_window(entry, at(17, 0)));
}

TEST_CASE("thresholds_at applies a night schedule across midnight and not during the day",
          "[core][config]") {
  // Given the SPEC defaults with low 80 from 22:00 to 07:00
  AlarmSettings settings;
  settings.schedule = {night_low_80()};
  // Then low is 80 at night on both sides of midnight and 70 in the day
  CHECK(thresholds_at(settings, at(23, 30)) == Thresholds{55, 80, 250, 300});
  CHECK(thresholds_at(settings, at(3, 0)) == Thresholds{55, 80, 250, 300});
  CHECK(thresholds_at(settings, at(7, 0)) == Thresholds{55, 70, 250, 300});
  CHECK(thresholds_at(settings, at(14, 0)) == Thresholds{55, 70, 250, 300});
}

TEST_CASE("thresholds_at applies overlapping entries in file order, the later one winning",
          "[core][config]") {
  // Given low 80 at night and, later in the file, low 90 with high 200 from 06:00 to 09:00
  AlarmSettings settings;
  ScheduleEntry morning;
  morning.start_minute = at(6, 0);
  morning.end_minute = at(9, 0);
  morning.thresholds.low = 90;
  morning.thresholds.high = 200;
  settings.schedule = {night_low_80(), morning};
  // Then at 06:30 both hold and the morning entry's low wins
  CHECK(thresholds_at(settings, at(6, 30)) == Thresholds{55, 90, 200, 300});
  // And at 08:00 only the morning entry holds
  CHECK(thresholds_at(settings, at(8, 0)) == Thresholds{55, 90, 200, 300});
  // And at 05:00 only the night entry holds
  CHECK(thresholds_at(settings, at(5, 0)) == Thresholds{55, 80, 250, 300});
}

TEST_CASE("is_e164 accepts '+' and 2 to 15 digits whose first is not 0", "[core][config]") {
  CHECK(is_e164("+14155550100"));
  CHECK(is_e164("+33612345678"));
  CHECK(is_e164("+12"));
  CHECK(is_e164("+123456789012345"));
}

TEST_CASE("is_e164 rejects numbers without '+', too short or long, with a leading 0 or non-digits",
          "[core][config]") {
  const auto number = GENERATE(as<std::string>{}, "", "+", "+1", "14155550100", "+0123456789",
                               "+1234567890123456", "+1 415 555 0100", "+1-415-555-0100",
                               "+1415555010a", "++14155550100", " +14155550100");
  INFO("number: '" << number << "'");
  CHECK_FALSE(is_e164(number));
}

TEST_CASE("ack modes and provider types have their SPEC names", "[core][config]") {
  CHECK(std::string{to_string(AckMode::keypress)} == "keypress");
  CHECK(std::string{to_string(AckMode::answer)} == "answer");
  CHECK(std::string{to_string(ProviderType::vonage)} == "vonage");
  CHECK(std::string{to_string(ProviderType::twilio)} == "twilio");
  CHECK(std::string{to_string(ProviderType::console)} == "console");
}
