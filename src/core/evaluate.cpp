#include "scout/core/evaluate.hpp"

#include <algorithm>
#include <cmath>
#include <iterator>
#include <utility>
#include <vector>

namespace scout::core {

namespace {

// Nightscout's bgnow.js: readings fall into 5-minute buckets centred on the newest one
// (offset 2.5 min, four buckets); the delta is taken against the next non-empty bucket, so the
// previous reading is more than 2.5 and at most 17.5 minutes older.
constexpr Duration k_bucket_offset = std::chrono::seconds{150};
constexpr Duration k_bucket_reach = std::chrono::seconds{1050};
// SPEC §3: sensors slower than this get stale thresholds from their own cadence.
constexpr Duration k_standard_cadence = std::chrono::minutes{5};

bool is_status_code(const Entry& e) { return e.sgv >= 0 && e.sgv < k_sgv_low_code; }

// The entries worth looking at, newest first: nothing dated beyond now + 5 min (SPEC §3: such a
// date is a broken clock, not a reading), one entry per date (an uploader may send a reading
// twice; a usable one is kept over an unusable one, otherwise the first given).
std::vector<Entry> prepare(const std::vector<Entry>& entries, TimePoint now) {
  std::vector<Entry> kept;
  kept.reserve(entries.size());
  for (const auto& e : entries) {
    if (e.date <= now + k_max_future_skew) {
      kept.push_back(e);
    }
  }
  std::stable_sort(kept.begin(), kept.end(), [now](const Entry& a, const Entry& b) {
    if (a.date != b.date) {
      return a.date > b.date;
    }
    return is_usable(a, now) && !is_usable(b, now);
  });
  kept.erase(std::unique(kept.begin(), kept.end(),
                         [](const Entry& a, const Entry& b) { return a.date == b.date; }),
             kept.end());
  return kept;
}

std::optional<Alarm> glucose_alarm(const Entry& latest, const Thresholds& thresholds,
                                   const std::vector<ar2::Point>& forecast,
                                   const PredictSettings& predict) {
  const int sgv = latest.sgv;
  // 39 is the sensor's "LOW": below its range, so an urgent low whatever the thresholds.
  if (sgv == k_sgv_low_code || sgv < thresholds.urgent_low) {
    return Alarm{AlarmKind::urgent_low, Severity::urgent};
  }
  if (predict.enabled && sgv >= thresholds.low) {
    // The horizon counts from the reading's time, as Nightscout's ar2.js counts its steps from
    // the reading (its "in20mins" is predicted[3], the fourth 5-minute step).
    for (const auto& point : forecast) {
      if (point.at - latest.date <= predict.horizon && point.mgdl < thresholds.urgent_low) {
        return Alarm{AlarmKind::urgent_low_soon, Severity::urgent};
      }
    }
  }
  if (sgv < thresholds.low) {
    return Alarm{AlarmKind::low, Severity::warning};
  }
  // 401 is the sensor's "HIGH": above its range, an urgent high whatever the thresholds.
  if (sgv == k_sgv_high_code || sgv > thresholds.urgent_high) {
    return Alarm{AlarmKind::urgent_high, Severity::urgent};
  }
  if (sgv > thresholds.high) {
    return Alarm{AlarmKind::high, Severity::warning};
  }
  return std::nullopt;
}

// True when `a` ranks above `b`: urgent before warning, then the SPEC §4 kind order.
bool outranks(const Alarm& a, const Alarm& b) {
  if (a.severity != b.severity) {
    return a.severity == Severity::urgent;
  }
  return static_cast<int>(a.kind) < static_cast<int>(b.kind);
}

}  // namespace

const char* to_string(AlarmKind kind) {
  switch (kind) {
    case AlarmKind::urgent_low:
      return "urgent_low";
    case AlarmKind::urgent_low_soon:
      return "urgent_low_soon";
    case AlarmKind::low:
      return "low";
    case AlarmKind::urgent_high:
      return "urgent_high";
    case AlarmKind::high:
      return "high";
    case AlarmKind::stale:
      return "stale";
    case AlarmKind::unreachable:
      return "unreachable";
    case AlarmKind::sensor_error:
      return "sensor_error";
  }
  return "invalid";
}

const char* to_string(Severity severity) {
  switch (severity) {
    case Severity::warning:
      return "warning";
    case Severity::urgent:
      return "urgent";
  }
  return "invalid";
}

std::optional<Alarm> Assessment::worst() const {
  if (!glucose) {
    return data;
  }
  if (!data) {
    return glucose;
  }
  return outranks(*data, *glucose) ? data : glucose;
}

StaleSettings stale_in_force(const StaleSettings& configured, std::optional<Duration> cadence) {
  StaleSettings stale = configured;
  if (cadence && *cadence > k_standard_cadence) {
    stale.warn = std::max(stale.warn, *cadence + std::chrono::minutes{10});
    stale.urgent = std::max(stale.urgent, *cadence * 2 + std::chrono::minutes{15});
  }
  return stale;
}

std::optional<Duration> cadence_of(const std::vector<Entry>& entries, TimePoint now) {
  std::vector<TimePoint> dates;
  dates.reserve(entries.size());
  for (const auto& e : entries) {
    if (is_usable(e, now)) dates.push_back(e.date);
  }
  std::sort(dates.begin(), dates.end());
  dates.erase(std::unique(dates.begin(), dates.end()), dates.end());
  if (dates.size() < 2) return std::nullopt;
  std::vector<Duration> steps;
  steps.reserve(dates.size() - 1);
  for (std::size_t i = 1; i < dates.size(); ++i) steps.push_back(dates[i] - dates[i - 1]);
  std::sort(steps.begin(), steps.end());
  const std::size_t n = steps.size();
  return n % 2 == 1 ? steps[n / 2] : (steps[n / 2 - 1] + steps[n / 2]) / 2;
}

bool Assessment::fresh() const {
  return !poll_error && latest && age && *age <= stale.warn;
}

std::optional<int> Assessment::forecast_low(Duration horizon) const {
  if (!latest || forecast.empty()) return std::nullopt;
  std::optional<int> lowest;
  for (const auto& point : forecast) {
    if (point.at - latest->date <= horizon && (!lowest || point.mgdl < *lowest)) {
      lowest = point.mgdl;
    }
  }
  return lowest;
}

Assessment evaluate(const PollOutcome& outcome, const AlarmSettings& settings, TimePoint now,
                    int minute_of_day) {
  Assessment result;
  result.thresholds = thresholds_at(settings, minute_of_day);
  const auto age_of = [now](const Entry& e) { return std::max(Duration::zero(), now - e.date); };

  if (outcome.error) {
    result.poll_error = outcome.error;
    result.cadence = outcome.last_cadence;
    result.stale = stale_in_force(settings.stale, result.cadence);
    if (outcome.last_reading) {
      result.latest = outcome.last_reading;
      result.age = age_of(*outcome.last_reading);
    }
    const TimePoint since = outcome.failing_since.value_or(now);
    const bool unreachable = now - since >= settings.unreachable;
    if (result.age && *result.age > result.stale.urgent) {
      result.data = Alarm{AlarmKind::stale, Severity::urgent};
    } else if (unreachable) {
      result.data = Alarm{AlarmKind::unreachable, Severity::warning};
    } else if (result.age && *result.age > result.stale.warn) {
      result.data = Alarm{AlarmKind::stale, Severity::warning};
    }
    return result;
  }

  const std::vector<Entry> entries = prepare(outcome.entries, now);
  const auto latest_it = std::find_if(entries.begin(), entries.end(),
                                      [now](const Entry& e) { return is_usable(e, now); });
  result.cadence = cadence_of(entries, now);
  result.stale = stale_in_force(settings.stale, result.cadence);

  // Sensor status codes newer than the newest usable reading (all of them when there is none).
  // With no usable reading between them, they form one consecutive run.
  for (auto it = entries.begin(); it != latest_it; ++it) {
    if (is_status_code(*it)) {
      if (!result.status_code) {
        result.status_code = it->sgv;
      }
      result.status_code_since = it->date;
    }
  }

  if (latest_it != entries.end()) {
    const Entry& latest = *latest_it;
    result.latest = latest;
    result.age = age_of(latest);

    // bgnow.js previousBucket: the newest usable reading of an older bucket.
    const auto prev_it = std::find_if(std::next(latest_it), entries.end(), [&](const Entry& e) {
      return is_usable(e, now) && latest.date - e.date > k_bucket_offset;
    });
    // bgnow.js notError drops 39 ("LOW") from a bucket's mean: no delta, no forecast from it.
    if (prev_it != entries.end() && latest.date - prev_it->date <= k_bucket_reach &&
        latest.sgv != k_sgv_low_code && prev_it->sgv != k_sgv_low_code) {
      const Entry& prev = *prev_it;
      result.previous = prev;
      result.mgdl_5_mins_ago = ar2::mgdl_5_mins_ago(prev, latest);
      const double delta = latest.sgv - *result.mgdl_5_mins_ago;
      result.delta = static_cast<int>(std::floor(delta + 0.5));  // Math.round
      if (settings.predict.enabled) {
        if (auto points = ar2::forecast(prev, latest)) {
          result.forecast = std::move(*points);
        }
      }
    }
  }

  // Data alarm. `silence` is how long scout has had no usable glucose: the reading's age, or,
  // without a reading, at least as long as the sensor has been sending codes; with neither, no
  // glucose data at all (treated as older than any limit).
  const StaleSettings& stale = result.stale;
  std::optional<Duration> silence = result.age;
  if (!silence && result.status_code_since) {
    silence = now - *result.status_code_since;
  }
  const bool codes_too_long =
      result.status_code_since && now - *result.status_code_since > stale.warn;
  if (!silence || *silence > stale.urgent) {
    result.data = Alarm{AlarmKind::stale, Severity::urgent};
  } else if (codes_too_long) {
    // A sensor error says more than "no data" and is as severe as stale/warning; stale/urgent
    // (above) still wins, being the more severe.
    result.data = Alarm{AlarmKind::sensor_error, Severity::warning};
  } else if (*silence > stale.warn) {
    result.data = Alarm{AlarmKind::stale, Severity::warning};
  }

  // Glucose alarm: only from a fresh reading (SPEC §3: a stale reading raises no glucose alarm).
  if (result.latest && *result.age <= stale.warn) {
    result.glucose =
        glucose_alarm(*result.latest, result.thresholds, result.forecast, settings.predict);
  }
  return result;
}

}  // namespace scout::core
