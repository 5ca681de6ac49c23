#include "scout/core/ar2.hpp"

#include <algorithm>
#include <cmath>

namespace scout::core::ar2 {

namespace {

// Math.round (ties toward +infinity), as ar2.js uses it.
double js_round(double x) {
  const double down = std::floor(x);
  return (x - down >= 0.5) ? down + 1.0 : down;
}

// ar2.js ar2Point: Math.max(BG_MIN, Math.min(BG_MAX, Math.round(BG_REF * Math.exp(curr)))).
// Clipped as a double first, so that an exploding forecast cannot overflow the int.
int point_mgdl(double curr) {
  const double mgdl = js_round(k_bg_ref * std::exp(curr));
  return static_cast<int>(std::clamp(mgdl, static_cast<double>(k_bg_min),
                                     static_cast<double>(k_bg_max)));
}

}  // namespace

double mgdl_5_mins_ago(const Entry& prev, const Entry& current) {
  // nightscout/cgm-remote-monitor:lib/plugins/delta.js updateWithInterpolation: more than
  // 9 minutes apart, the value 5 minutes before `current` is read off the straight line
  // between the two readings; otherwise `prev` is taken as it is.
  const double elapsed_mins =
      std::chrono::duration<double, std::ratio<60>>(current.date - prev.date).count();
  if (elapsed_mins > 9) {
    const double abs_mgdl = current.sgv - prev.sgv;
    return current.sgv - abs_mgdl / elapsed_mins * 5;
  }
  return prev.sgv;
}

std::optional<std::vector<Point>> forecast(const Entry& prev, const Entry& current, int steps) {
  // ar2.js okToForecast: both readings at least BG_MIN. scout also refuses a `prev` that is not
  // older: delta.js would divide by a zero or negative elapsed time.
  if (current.sgv < k_bg_min || prev.sgv < k_bg_min || prev.date >= current.date) {
    return std::nullopt;
  }
  // ar2.js initAR2: the model runs in log space around BG_REF.
  double prev_log = std::log(mgdl_5_mins_ago(prev, current) / k_bg_ref);
  double curr_log = std::log(current.sgv / k_bg_ref);
  TimePoint at = current.date;

  std::vector<Point> points;
  points.reserve(static_cast<std::size_t>(std::max(steps, 0)));
  for (int i = 0; i < steps; ++i) {
    // ar2.js incrementAR2, then pushPoint.
    const double next_log = k_coef_prev * prev_log + k_coef_curr * curr_log;
    prev_log = curr_log;
    curr_log = next_log;
    at += k_step;
    points.push_back(Point{at, point_mgdl(curr_log)});
  }
  return points;
}

}  // namespace scout::core::ar2
