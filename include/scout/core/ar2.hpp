#pragma once
// Nightscout's AR2 forecast, ported from nightscout/cgm-remote-monitor:lib/plugins/ar2.js
// (`forecast`, `initAR2`, `incrementAR2`, `ar2Point`) and the interpolation of
// lib/plugins/delta.js (`updateWithInterpolation`).

#include <optional>
#include <vector>

#include "scout/core/reading.hpp"

namespace scout::core::ar2 {

inline constexpr double k_bg_ref = 140;  // BG_REF, "central tendency"
inline constexpr int k_bg_min = 36;      // BG_MIN
inline constexpr int k_bg_max = 400;     // BG_MAX
inline constexpr double k_coef_prev = -0.723;  // AR[0]
inline constexpr double k_coef_curr = 1.716;   // AR[1]
inline constexpr Duration k_step = std::chrono::minutes{5};
inline constexpr int k_steps = 6;  // ar2.forecast folds over new Array(6)

struct Point {
  TimePoint at;  // forecast time: current.date + k * 5 min (ar2.js adds a 2 s display offset;
                 // scout does not, it only compares values)
  int mgdl = 0;  // round(140 * exp(curr)), clipped to [36, 400]
  bool operator==(const Point&) const = default;
};

// The mg/dL value five minutes before `current`, as delta.js computes it: `prev.sgv` when the
// two are at most 9 minutes apart, else interpolated linearly back from `current`.
double mgdl_5_mins_ago(const Entry& prev, const Entry& current);

// Forecasts `steps` points at 5-minute intervals after `current`, from the two newest
// readings. Returns nothing when either is below BG_MIN (36) (ar2.js okToForecast) or when
// `prev` is not older than `current`. Any spacing is accepted here (beyond 9 minutes the value
// 5 minutes ago is interpolated); evaluate() decides which spacings it trusts.
// Requires: 1 <= steps; ar2.js uses 6 and scout never asks for more (steps <= 0 gives no points).
std::optional<std::vector<Point>> forecast(const Entry& prev, const Entry& current,
                                           int steps = k_steps);

}  // namespace scout::core::ar2
