// Specification of scout/core/ar2.hpp: Nightscout's AR2 forecast
// (nightscout/cgm-remote-monitor:lib/plugins/ar2.js, with the interpolation of
// lib/plugins/delta.js updateWithInterpolation).
//
// The published algorithm, restated for the hand computations below:
//   prev = ln(mgdl5MinsAgo / 140), curr = ln(current / 140)
//   each step: prev' = curr, curr' = -0.723 * prev + 1.716 * curr
//   point = Math.round(140 * exp(curr')), clipped to [36, 400], at current.date + k * 5 min.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <vector>

#include <catch2/catch.hpp>

#include "scout/core/ar2.hpp"
#include "support/entries.hpp"

using namespace std::chrono_literals;
namespace ar2 = scout::core::ar2;
using scout::core::TimePoint;
using scout::test::entry;
using scout::test::k_t0;

namespace {

// An independent, calculator-style evaluation of the published recurrence, written from the
// formulas above with std::log/std::exp and nothing from the implementation under test.
std::vector<int> reference_values(double mgdl_5_mins_ago, double current) {
  double p = std::log(mgdl_5_mins_ago / 140.0);
  double c = std::log(current / 140.0);
  std::vector<int> out;
  for (int k = 0; k < 6; ++k) {
    const double n = -0.723 * p + 1.716 * c;
    p = c;
    c = n;
    const double rounded = std::floor(140.0 * std::exp(c) + 0.5);
    out.push_back(static_cast<int>(std::min(400.0, std::max(36.0, rounded))));
  }
  return out;
}

std::vector<int> values_of(const std::vector<ar2::Point>& points) {
  std::vector<int> out;
  for (const auto& p : points) {
    out.push_back(p.mgdl);
  }
  return out;
}

}  // namespace

TEST_CASE("AR2 forecasts six points from two readings five minutes apart", "[core][ar2]") {
  // Given 100 mg/dL five minutes ago and 90 now:
  //   prev = ln(100/140) = -0.336472, curr = ln(90/140) = -0.441833
  //   1: -0.723*-0.336472 + 1.716*-0.441833 = -0.514916 -> 140*e^x = 83.657 -> 84
  //   2: -0.723*-0.441833 + 1.716*-0.514916 = -0.564150 -> 79.638 -> 80
  //   3: -0.723*-0.514916 + 1.716*-0.564150 = -0.595798 -> 77.157 -> 77
  //   4: -0.723*-0.564150 + 1.716*-0.595798 = -0.614508 -> 75.727 -> 76
  //   5: -0.723*-0.595798 + 1.716*-0.614508 = -0.623734 -> 75.032 -> 75
  //   6: -0.723*-0.614508 + 1.716*-0.623734 = -0.626039 -> 74.859 -> 75
  const auto prev = entry(k_t0 - 5min, 100);
  const auto current = entry(k_t0, 90);

  // When forecasting
  const auto points = ar2::forecast(prev, current);

  // Then the six points are the hand-computed ones, matching the independent evaluation too
  REQUIRE(points.has_value());
  CHECK(values_of(*points) == std::vector<int>{84, 80, 77, 76, 75, 75});
  CHECK(values_of(*points) == reference_values(100, 90));
}

TEST_CASE("AR2 points are dated every five minutes after the current reading", "[core][ar2]") {
  const auto points = ar2::forecast(entry(k_t0 - 5min, 100), entry(k_t0, 90));
  REQUIRE(points.has_value());
  REQUIRE(points->size() == 6);
  for (std::size_t k = 0; k < points->size(); ++k) {
    CAPTURE(k);
    CHECK((*points)[k].at == k_t0 + (static_cast<int>(k) + 1) * 5min);
  }
}

TEST_CASE("AR2 of a steady 140 mg/dL stays at 140", "[core][ar2]") {
  // ln(140/140) = 0 and -0.723*0 + 1.716*0 = 0, so every point is 140*e^0 = 140.
  const auto points = ar2::forecast(entry(k_t0 - 5min, 140), entry(k_t0, 140));
  REQUIRE(points.has_value());
  CHECK(values_of(*points) == std::vector<int>{140, 140, 140, 140, 140, 140});
}

TEST_CASE("AR2 points are clipped at BG_MIN 36", "[core][ar2]") {
  // Given a fast fall, 150 -> 80:
  //   prev = ln(150/140) = 0.068993, curr = ln(80/140) = -0.559616
  //   1: -1.010183 -> 50.981 -> 51;  2: -1.328871 -> 37.069 -> 37
  //   3: -1.549981 -> 29.715 -> 36 (clipped); 4: 25.601, 5: 23.262, 6: 21.979 -> 36
  const auto points = ar2::forecast(entry(k_t0 - 5min, 150), entry(k_t0, 80));
  REQUIRE(points.has_value());
  CHECK(values_of(*points) == std::vector<int>{51, 37, 36, 36, 36, 36});
  CHECK(values_of(*points) == reference_values(150, 80));
}

TEST_CASE("AR2 points are clipped at BG_MAX 400", "[core][ar2]") {
  // Given a fast rise, 300 -> 380:
  //   prev = ln(300/140) = 0.762140, curr = ln(380/140) = 0.998529
  //   1: 1.162448 -> 447.685 -> 400 (clipped); 2..6: 499.930, 536.657, 559.593, 571.216,
  //   574.091 -> 400
  const auto points = ar2::forecast(entry(k_t0 - 5min, 300), entry(k_t0, 380));
  REQUIRE(points.has_value());
  CHECK(values_of(*points) == std::vector<int>{400, 400, 400, 400, 400, 400});
}

TEST_CASE("AR2 forecasts from readings exactly at BG_MIN 36", "[core][ar2]") {
  // ln(36/140) = -1.358123 for both; 1: -0.723*-1.358123 + 1.716*-1.358123 = -1.348617
  //   -> 36.344 -> 36; then 36.942 -> 37, 37.730 -> 38, 38.664 -> 39, 39.710 -> 40, 40.842 -> 41
  const auto points = ar2::forecast(entry(k_t0 - 5min, 36), entry(k_t0, 36));
  REQUIRE(points.has_value());
  CHECK(values_of(*points) == std::vector<int>{36, 37, 38, 39, 40, 41});
}

TEST_CASE("AR2 refuses to forecast when the current reading is below BG_MIN", "[core][ar2]") {
  // ar2.js okToForecast: current.mgdl >= BG_MIN && prev.mgdl >= BG_MIN.
  CHECK_FALSE(ar2::forecast(entry(k_t0 - 5min, 100), entry(k_t0, 35)).has_value());
}

TEST_CASE("AR2 refuses to forecast when the previous reading is below BG_MIN", "[core][ar2]") {
  CHECK_FALSE(ar2::forecast(entry(k_t0 - 5min, 35), entry(k_t0, 100)).has_value());
}

TEST_CASE("AR2 refuses to forecast when the previous reading is not older", "[core][ar2]") {
  SECTION("same date") {
    CHECK_FALSE(ar2::forecast(entry(k_t0, 100), entry(k_t0, 90)).has_value());
  }
  SECTION("newer") {
    CHECK_FALSE(ar2::forecast(entry(k_t0 + 5min, 100), entry(k_t0, 90)).has_value());
  }
}

TEST_CASE("the value five minutes ago is the previous reading when at most 9 minutes apart",
          "[core][ar2]") {
  // delta.js: interpolated = elapsedMins > 9.
  const auto current = entry(k_t0, 90);
  CHECK(ar2::mgdl_5_mins_ago(entry(k_t0 - 5min, 100), current) == 100.0);
  CHECK(ar2::mgdl_5_mins_ago(entry(k_t0 - 1min, 100), current) == 100.0);
  CHECK(ar2::mgdl_5_mins_ago(entry(k_t0 - 9min, 120), current) == 120.0);
}

TEST_CASE("the value five minutes ago is interpolated when more than 9 minutes apart",
          "[core][ar2]") {
  // Given a Libre-style 15-minute gap, 120 then 90: 90 - (90 - 120) / 15 * 5 = 100.
  CHECK(ar2::mgdl_5_mins_ago(entry(k_t0 - 15min, 120), entry(k_t0, 90)) == Approx(100.0));
  // 9 min 6 s = 9.1 min: 90 - (90 - 120) / 9.1 * 5 = 106.4835
  CHECK(ar2::mgdl_5_mins_ago(entry(k_t0 - 9min - 6s, 120), entry(k_t0, 90)) ==
        Approx(90.0 + 30.0 / 9.1 * 5.0));
  // Rising, 20 minutes: 200 - (200 - 100) / 20 * 5 = 175
  CHECK(ar2::mgdl_5_mins_ago(entry(k_t0 - 20min, 100), entry(k_t0, 200)) == Approx(175.0));
}

TEST_CASE("AR2 over a 15-minute gap forecasts from the interpolated value", "[core][ar2]") {
  // Given 120 fifteen minutes ago and 90 now, the value five minutes ago is 100 (see above),
  // so the forecast is the one of 100 -> 90 at a five-minute spacing.
  const auto points = ar2::forecast(entry(k_t0 - 15min, 120), entry(k_t0, 90));
  REQUIRE(points.has_value());
  CHECK(values_of(*points) == std::vector<int>{84, 80, 77, 76, 75, 75});
  CHECK(points->front().at == k_t0 + 5min);
}

TEST_CASE("AR2 can be asked for fewer steps, giving the first points of the full forecast",
          "[core][ar2]") {
  const auto three = ar2::forecast(entry(k_t0 - 5min, 100), entry(k_t0, 90), 3);
  REQUIRE(three.has_value());
  CHECK(values_of(*three) == std::vector<int>{84, 80, 77});
}
