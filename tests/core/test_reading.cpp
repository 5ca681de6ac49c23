// Specification of scout/core/reading.hpp: which Nightscout entries are glucose (SPEC §3), and how
// status codes and trends are named.

#include <chrono>
#include <string>

#include <catch2/catch.hpp>

#include "scout/core/reading.hpp"
#include "support/entries.hpp"

using namespace std::chrono_literals;
using scout::core::describe_status_code;
using scout::core::direction_arrow;
using scout::core::is_usable;
using scout::test::entry;
using scout::test::k_t0;

TEST_CASE("an sgv from 39 to 401 mg/dL is a usable reading", "[core][reading]") {
  const int sgv = GENERATE(39, 40, 100, 400, 401);
  CAPTURE(sgv);
  CHECK(is_usable(entry(k_t0 - 1min, sgv), k_t0));
}

TEST_CASE("an sgv below 39 (status code) or above 401 is not a usable reading",
          "[core][reading]") {
  const int sgv = GENERATE(-1, 0, 1, 5, 12, 38, 402, 1000);
  CAPTURE(sgv);
  CHECK_FALSE(is_usable(entry(k_t0 - 1min, sgv), k_t0));
}

TEST_CASE("a reading dated up to 5 minutes in the future is usable", "[core][reading]") {
  CHECK(is_usable(entry(k_t0 + 1min, 100), k_t0));
  CHECK(is_usable(entry(k_t0 + 5min, 100), k_t0));
}

TEST_CASE("a reading dated more than 5 minutes in the future is not usable", "[core][reading]") {
  CHECK_FALSE(is_usable(entry(k_t0 + 5min + 1ms, 100), k_t0));
  CHECK_FALSE(is_usable(entry(k_t0 + 2h, 100), k_t0));
}

TEST_CASE("an old reading is still usable, its age is a matter for staleness",
          "[core][reading]") {
  CHECK(is_usable(entry(k_t0 - 3h, 100), k_t0));
}

TEST_CASE("Dexcom status codes are named with Nightscout's display code and meaning",
          "[core][reading]") {
  // nightscout/cgm-remote-monitor:lib/plugins/errorcodes.js code2Display.
  const auto [code, text] = GENERATE(table<int, std::string>({
      {1, "?SN (sensor not active)"},
      {2, "?MD (minimal deviation)"},
      {3, "?NA (no antenna)"},
      {5, "?NC (sensor not calibrated)"},
      {6, "?CD (counts deviation)"},
      {9, "?AD (absolute deviation)"},
      {10, "??? (power deviation)"},
      {12, "?RF (bad RF)"},
  }));
  CHECK(describe_status_code(code) == text);
}

TEST_CASE("unlisted status codes are named by number", "[core][reading]") {
  CHECK(describe_status_code(0) == "code 0");
  CHECK(describe_status_code(4) == "code 4");
  CHECK(describe_status_code(38) == "code 38");
}

TEST_CASE("trend names map to Nightscout's arrows", "[core][reading]") {
  // nightscout/cgm-remote-monitor:lib/plugins/direction.js dir2Char.
  const auto [direction, arrow] = GENERATE(table<std::string, std::string>({
      {"NONE", "⇼"},
      {"TripleUp", "⤊"},
      {"DoubleUp", "⇈"},
      {"SingleUp", "↑"},
      {"FortyFiveUp", "↗"},
      {"Flat", "→"},
      {"FortyFiveDown", "↘"},
      {"SingleDown", "↓"},
      {"DoubleDown", "⇊"},
      {"TripleDown", "⤋"},
      {"NOT COMPUTABLE", "-"},
      {"RATE OUT OF RANGE", "⇕"},
  }));
  CHECK(std::string(direction_arrow(direction)) == arrow);
}

TEST_CASE("unknown, empty and wrongly cased trend names show as '-'", "[core][reading]") {
  CHECK(std::string(direction_arrow("")) == "-");
  CHECK(std::string(direction_arrow("Sideways")) == "-");
  CHECK(std::string(direction_arrow("flat")) == "-");
}

TEST_CASE("direction names are the ones Nightscout's direction.js knows, case-sensitive",
          "[core][reading]") {
  CHECK(scout::core::is_direction_name("SingleDown"));
  CHECK(scout::core::is_direction_name("NOT COMPUTABLE"));
  CHECK(scout::core::is_direction_name("RATE OUT OF RANGE"));
  CHECK_FALSE(scout::core::is_direction_name("singledown"));
  CHECK_FALSE(scout::core::is_direction_name("Sideways"));
  CHECK_FALSE(scout::core::is_direction_name(""));
}
