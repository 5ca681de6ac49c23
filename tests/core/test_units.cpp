// Specification of scout/core/units.hpp: glucose units as Nightscout converts and shows them,
// and the duration strings of the config (SPEC §2, §3).

#include <chrono>
#include <cmath>
#include <limits>
#include <string>

#include <catch2/catch.hpp>

#include "scout/core/units.hpp"

using namespace std::chrono_literals;
using scout::core::Duration;
using scout::core::ErrorKind;
using scout::core::format_age;
using scout::core::format_delta;
using scout::core::format_duration;
using scout::core::format_glucose;
using scout::core::GlucoseUnit;
using scout::core::parse_duration;
using scout::core::to_mgdl;

// ---------------------------------------------------------------------------------------------
// Units

TEST_CASE("glucose units are named as Nightscout and the config write them", "[core][units]") {
  CHECK(std::string(to_string(GlucoseUnit::mg_dl)) == "mg/dL");
  CHECK(std::string(to_string(GlucoseUnit::mmol_l)) == "mmol/L");
}

TEST_CASE("mmol/L converts to whole mg/dL with Nightscout's factor 18.01559", "[core][units]") {
  // Given mmol/L values a config might hold; when converted; then round(x * 18.01559):
  const auto [mmol, mgdl] = GENERATE(table<double, int>({
      {3.0, 54},    // 54.04677
      {2.8, 50},    // 50.443652
      {3.9, 70},    // 70.260801
      {4.4, 79},    // 79.268596
      {5.5, 99},    // 99.085745
      {10.0, 180},  // 180.1559
      {13.9, 250},  // 250.416701
      {16.7, 301},  // 300.860353
      {0.0, 0},
  }));
  CAPTURE(mmol);
  CHECK(to_mgdl(mmol, GlucoseUnit::mmol_l) == mgdl);
}

TEST_CASE("mmol/L to mg/dL rounds up a product at or above .5", "[core][units]") {
  // Given 3.025 mmol/L: 3.025 * 18.01559 = 54.497..., and 3.0254 * 18.01559 = 54.5047...
  // Then the first rounds down and the second up, as Math.round does.
  CHECK(to_mgdl(3.025, GlucoseUnit::mmol_l) == 54);
  CHECK(to_mgdl(3.0254, GlucoseUnit::mmol_l) == 55);
}

TEST_CASE("mg/dL values are rounded as JavaScript's Math.round, ties toward +infinity",
          "[core][units]") {
  CHECK(to_mgdl(70.0, GlucoseUnit::mg_dl) == 70);
  CHECK(to_mgdl(70.4, GlucoseUnit::mg_dl) == 70);
  CHECK(to_mgdl(70.5, GlucoseUnit::mg_dl) == 71);
  CHECK(to_mgdl(2.5, GlucoseUnit::mg_dl) == 3);
  // Math.round(-2.5) is -2 and Math.round(-2.6) is -3: not half away from zero.
  CHECK(to_mgdl(-2.5, GlucoseUnit::mg_dl) == -2);
  CHECK(to_mgdl(-2.6, GlucoseUnit::mg_dl) == -3);
  // Math.round(0.49999999999999994) is 0; a naive floor(x + 0.5) gives 1.
  CHECK(to_mgdl(0.49999999999999994, GlucoseUnit::mg_dl) == 0);
}

TEST_CASE("to_mgdl saturates absurd values instead of overflowing", "[core][units]") {
  CHECK(to_mgdl(std::numeric_limits<double>::quiet_NaN(), GlucoseUnit::mmol_l) == 0);
  CHECK(to_mgdl(1e300, GlucoseUnit::mmol_l) == std::numeric_limits<int>::max());
  CHECK(to_mgdl(-1e300, GlucoseUnit::mg_dl) == std::numeric_limits<int>::min());
}

TEST_CASE("glucose in mg/dL is shown as a whole number", "[core][units]") {
  CHECK(format_glucose(52, GlucoseUnit::mg_dl) == "52");
  CHECK(format_glucose(401, GlucoseUnit::mg_dl) == "401");
  CHECK(format_glucose(52.5, GlucoseUnit::mg_dl) == "53");
  CHECK(format_glucose(52.4, GlucoseUnit::mg_dl) == "52");
}

TEST_CASE("glucose in mmol/L is shown with one decimal as Nightscout's mgdlToMMOL",
          "[core][units]") {
  // (Math.round(mgdl / 18.01559 * 10) / 10).toFixed(1):
  const auto [mgdl, shown] = GENERATE(table<double, std::string>({
      {52, "2.9"},    // 28.8639 tenths -> 29
      {39, "2.2"},    // 21.6477 -> 22
      {55, "3.1"},    // 30.5291 -> 31
      {70, "3.9"},    // 38.8552 -> 39
      {90, "5.0"},    // 49.9567 -> 50: toFixed keeps the ".0"
      {100, "5.6"},   // 55.5075 -> 56
      {180, "10.0"},  // 99.9135 -> 100
      {250, "13.9"},  // 138.7687 -> 139
      {401, "22.3"},  // 222.5894 -> 223
      {0, "0.0"},
  }));
  CAPTURE(mgdl);
  CHECK(format_glucose(mgdl, GlucoseUnit::mmol_l) == shown);
}

TEST_CASE("a mg/dL delta is shown signed, a zero delta as +0", "[core][units]") {
  CHECK(format_delta(3, GlucoseUnit::mg_dl) == "+3");
  CHECK(format_delta(-6, GlucoseUnit::mg_dl) == "-6");
  CHECK(format_delta(0, GlucoseUnit::mg_dl) == "+0");
  // Math.round(-0.4) is -0, and delta.js prints (-0 >= 0 ? '+' : '') + -0 = "+0".
  CHECK(format_delta(-0.4, GlucoseUnit::mg_dl) == "+0");
  CHECK(format_delta(-2.5, GlucoseUnit::mg_dl) == "-2");
  CHECK(format_delta(2.5, GlucoseUnit::mg_dl) == "+3");
}

TEST_CASE("a mmol/L delta is the mg/dL delta converted, signed, with one decimal",
          "[core][units]") {
  const auto [mgdl, shown] = GENERATE(table<double, std::string>({
      {4, "+0.2"},     // 4 / 18.01559 * 10 = 2.2203 -> 2
      {-6, "-0.3"},    // -3.3304 -> -3
      {18, "+1.0"},    // 9.9914 -> 10
      {-18, "-1.0"},   // -9.9914 -> -10
      {-40, "-2.2"},   // -22.2030 -> -22
      {0, "+0.0"},
      {-0.5, "+0.0"},  // -0.2775 -> Math.round gives -0 -> "+0.0", never "-0.0"
      {-0.9, "+0.0"},  // -0.4996 -> -0 as well
      {-0.91, "-0.1"}, // -0.5051 -> -1
  }));
  CAPTURE(mgdl);
  CHECK(format_delta(mgdl, GlucoseUnit::mmol_l) == shown);
}

// ---------------------------------------------------------------------------------------------
// Durations

TEST_CASE("durations in the config's form parse to milliseconds", "[core][units][duration]") {
  const auto [text, expected] = GENERATE(table<std::string, Duration>({
      {"45s", 45s},
      {"15m", 15min},
      {"2h", 2h},
      {"1h30m", 90min},
      {"1h30m15s", 1h + 30min + 15s},
      {"0s", 0s},
      {"500ms", 500ms},
      {"1m5s", 65s},
      {"1s250ms", 1250ms},
      {"2h15s", 2h + 15s},
      {"90m", 90min},
      {"0h0m1s", 1s},
      {"007m", 7min},
  }));
  CAPTURE(text);
  const auto parsed = parse_duration(text);
  REQUIRE(parsed.has_value());
  CHECK(*parsed == expected);
}

TEST_CASE("malformed durations are config errors that say what is wrong and the form expected",
          "[core][units][duration]") {
  const auto [text, complaint] = GENERATE(table<std::string, std::string>({
      {"", "it is empty"},
      {"15", "missing unit after 15"},
      {"m", "missing number before unit"},
      {"1h30", "missing unit after 30"},
      {"1.5h", "fractions are not allowed"},
      {"1,5h", "fractions are not allowed"},
      {"-5m", "negative durations are not allowed"},
      {"+5m", "unexpected character '+'"},
      {"15x", "unknown unit \"x\""},
      {"15min", "unknown unit \"min\""},
      {"1d", "unknown unit \"d\""},
      {"15M", "unknown unit \"M\""},
      {"15m1h", "units out of order, \"h\" after \"m\""},
      {"500ms1s", "units out of order, \"s\" after \"ms\""},
      {"1h1h", "unit \"h\" appears twice"},
      {"5m5m", "unit \"m\" appears twice"},
      {" 15m", "unexpected character ' ' at position 1"},
      {"15m ", "unexpected character ' ' at position 4"},
      {"15 m", "unexpected character ' ' at position 3"},
  }));
  CAPTURE(text);
  const auto parsed = parse_duration(text);
  REQUIRE_FALSE(parsed.has_value());
  CHECK(parsed.error().kind == ErrorKind::config);
  CHECK_THAT(parsed.error().message, Catch::Contains("\"" + text + "\""));
  CHECK_THAT(parsed.error().message, Catch::Contains(complaint));
  CHECK_THAT(parsed.error().message, Catch::Contains("e.g. 45s, 15m, 2h, 1h30m"));
}

TEST_CASE("durations beyond the millisecond counter's range are rejected, not wrapped",
          "[core][units][duration]") {
  // The counter is a signed 64-bit number of milliseconds: at most 9223372036854775807 ms,
  // i.e. 2562047788015 h plus a little (9223372036854775807 / 3600000 = 2562047788015.2).
  SECTION("the largest count parses") {
    const auto parsed = parse_duration("9223372036854775807ms");
    REQUIRE(parsed.has_value());
    CHECK(parsed->count() == std::numeric_limits<std::int64_t>::max());
  }
  SECTION("a number that does not fit in 64 bits") {
    const auto parsed = parse_duration("9223372036854775808ms");
    REQUIRE_FALSE(parsed.has_value());
    CHECK_THAT(parsed.error().message, Catch::Contains("too large"));
  }
  SECTION("a number that fits but overflows once scaled to milliseconds") {
    const auto parsed = parse_duration("2562047788016h");
    REQUIRE_FALSE(parsed.has_value());
    CHECK_THAT(parsed.error().message, Catch::Contains("too large"));
  }
  SECTION("groups that fit one by one but overflow when added") {
    // 2562047788015 h = 9223372036854000000 ms; + 59 min = 3540000 ms goes past the maximum.
    REQUIRE(parse_duration("2562047788015h").has_value());
    const auto parsed = parse_duration("2562047788015h59m");
    REQUIRE_FALSE(parsed.has_value());
    CHECK_THAT(parsed.error().message, Catch::Contains("too large"));
  }
}

TEST_CASE("durations format in the config's form, leaving out zero groups",
          "[core][units][duration]") {
  CHECK(format_duration(0ms) == "0s");
  CHECK(format_duration(999ms) == "0s");
  CHECK(format_duration(45s) == "45s");
  CHECK(format_duration(45s + 999ms) == "45s");
  CHECK(format_duration(15min) == "15m");
  CHECK(format_duration(90min) == "1h30m");
  CHECK(format_duration(2h) == "2h");
  CHECK(format_duration(1h + 5s) == "1h5s");
  CHECK(format_duration(1h + 30min + 15s) == "1h30m15s");
  CHECK(format_duration(48h) == "48h");
  CHECK(format_duration(-90s) == "-1m30s");
}

TEST_CASE("a formatted whole-second duration parses back to itself", "[core][units][duration]") {
  const Duration d = GENERATE(Duration{0s}, Duration{1s}, Duration{59s}, Duration{60s},
                              Duration{3599s}, Duration{3600s}, Duration{3661s},
                              Duration{86400s + 1s});
  CAPTURE(d.count());
  const auto parsed = parse_duration(format_duration(d));
  REQUIRE(parsed.has_value());
  CHECK(*parsed == d);
}

TEST_CASE("reading ages show seconds below two minutes, then whole minutes, then hours",
          "[core][units][age]") {
  CHECK(format_age(0ms) == "0s");
  CHECK(format_age(30s) == "30s");
  CHECK(format_age(30s + 999ms) == "30s");
  CHECK(format_age(119s + 999ms) == "119s");
  CHECK(format_age(2min) == "2 min");
  CHECK(format_age(4min + 59s) == "4 min");
  CHECK(format_age(59min + 59s) == "59 min");
  CHECK(format_age(60min) == "1 h");
  CHECK(format_age(65min + 30s) == "1 h 5 min");
  CHECK(format_age(25h) == "25 h");
}

TEST_CASE("a reading dated slightly in the future is 0s old", "[core][units][age]") {
  CHECK(format_age(-30s) == "0s");
  CHECK(format_age(-4min) == "0s");
}
