#include "scout/app/simulate.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <deque>
#include <iterator>
#include <map>
#include <string>
#include <utility>
#include <variant>

#include "scout/adapters/nightscout.hpp"
#include "scout/adapters/timezone.hpp"
#include "scout/adapters/yaml_config.hpp"
#include "scout/core/evaluate.hpp"
#include "scout/core/message.hpp"

namespace scout::app {

namespace {

using core::Duration;
using core::TimePoint;
using namespace std::chrono_literals;

// A low-side alarm was "active around" an episode when it held at a tick up to this long after
// the episode's last reading (simulate.hpp LowEpisode::alarmed).
constexpr Duration k_alarmed_slack = 5min;
// A low-side call or SMS this long before an episode counts as having reached people for it.
constexpr Duration k_reached_lookback = 30min;
// Bounds on Tick events per instant and between two ticks: next_due only moves forward when a
// Tick changes something, so these only guard against a machine that reports a due time it then
// does not act on.
constexpr int k_max_ticks_per_instant = 4;
constexpr int k_max_wakeups_per_tick = 64;

bool is_low_side(core::AlarmKind kind) {
  return kind == core::AlarmKind::urgent_low || kind == core::AlarmKind::urgent_low_soon ||
         kind == core::AlarmKind::low;
}

bool is_glucose_value(const core::Entry& e) {
  return e.sgv >= core::k_sgv_low_code && e.sgv <= core::k_sgv_high_code;
}

// Glucose readings (39..401) oldest first, one per date (the first given).
std::vector<core::Entry> glucose_readings(const std::vector<core::Entry>& entries) {
  std::vector<core::Entry> readings;
  readings.reserve(entries.size());
  std::copy_if(entries.begin(), entries.end(), std::back_inserter(readings), is_glucose_value);
  std::stable_sort(readings.begin(), readings.end(),
                   [](const core::Entry& a, const core::Entry& b) { return a.date < b.date; });
  readings.erase(std::unique(readings.begin(), readings.end(),
                             [](const core::Entry& a, const core::Entry& b) {
                               return a.date == b.date;
                             }),
                 readings.end());
  return readings;
}

// Median spacing of consecutive readings in whole minutes (Python's round(statistics.median),
// as shared/data/cgm/convert.py computes the cadence). Requires at least two readings.
int cadence_minutes(const std::vector<core::Entry>& readings) {
  std::vector<double> steps;
  steps.reserve(readings.size() - 1);
  for (std::size_t i = 1; i < readings.size(); ++i) {
    steps.push_back(static_cast<double>((readings[i].date - readings[i - 1].date).count()) /
                    60000.0);
  }
  std::sort(steps.begin(), steps.end());
  const std::size_t n = steps.size();
  const double median = n % 2 == 1 ? steps[n / 2] : (steps[n / 2 - 1] + steps[n / 2]) / 2.0;
  // Python rounds half to even; std::nearbyint does too in the default rounding mode.
  return static_cast<int>(std::nearbyint(median));
}

int utc_minute_of_day(TimePoint at) {
  constexpr std::int64_t k_day_minutes = 24 * 60;
  const auto minutes = std::chrono::floor<std::chrono::minutes>(at).time_since_epoch().count();
  return static_cast<int>(((minutes % k_day_minutes) + k_day_minutes) % k_day_minutes);
}

template <class... Fs>
struct Overloaded : Fs... {
  using Fs::operator()...;
};
template <class... Fs>
Overloaded(Fs...) -> Overloaded<Fs...>;

// One replay. Holds the machine state and everything recorded about it.
class Simulator {
 public:
  Simulator(const core::Config& config, const core::Patient& patient,
            const std::vector<core::Entry>& entries, const SimulationOptions& options)
      : config_(config),
        patient_(patient),
        options_(options),
        zone_(patient.timezone.empty() ? std::string("UTC") : patient.timezone),
        served_(entries) {
    std::stable_sort(served_.begin(), served_.end(),
                     [](const core::Entry& a, const core::Entry& b) { return a.date < b.date; });
  }

  SimulationResult run() {
    if (served_.empty()) return std::move(result_);
    const Duration tick = options_.tick > Duration::zero() ? options_.tick : Duration{1min};
    const TimePoint first = served_.front().date + std::max(Duration::zero(), options_.lead_in);
    const TimePoint end = served_.back().date + std::max(Duration::zero(), options_.tail);
    TimePoint last = first;
    for (TimePoint now = first; now <= end; now += tick) {
      last = now;
      deliver_outcomes(now);
      assess(now);
      run_due(now);
      wake_between(now, now + tick);
    }
    result_.first = first;
    result_.last = last;
    result_.days = static_cast<double>((last - first).count()) / 86'400'000.0;
    score_episodes();
    return std::move(result_);
  }

 private:
  struct Pending {
    std::string call_key;
    std::string call_id;
  };

  const core::PatientState* patient_state() const {
    const auto it = state_.patients.find(patient_.name);
    return it == state_.patients.end() ? nullptr : &it->second;
  }

  bool low_side_active() const {
    const auto* ps = patient_state();
    return ps != nullptr && ps->glucose && is_low_side(ps->glucose->alarm.kind);
  }

  // True when `alarm_id` is the active low-side glucose alarm.
  bool is_active_low(const std::string& alarm_id) const {
    const auto* ps = patient_state();
    return ps != nullptr && ps->glucose && ps->glucose->id == alarm_id &&
           is_low_side(ps->glucose->alarm.kind);
  }

  // Records alarms that appeared, changed peak or ended in the last transition.
  void track_alarms(TimePoint now) {
    const auto* ps = patient_state();
    std::vector<const core::ActiveAlarm*> active;
    if (ps != nullptr && ps->glucose) active.push_back(&*ps->glucose);
    if (ps != nullptr && ps->data) active.push_back(&*ps->data);
    for (auto& [id, index] : open_) {
      const bool still = std::any_of(active.begin(), active.end(), [&id = id](const auto* a) {
        return a->id == id;
      });
      if (!still) result_.alarms[index].ended_at = now;
    }
    std::erase_if(open_, [this](const auto& item) {
      return result_.alarms[item.second].ended_at.has_value();
    });
    for (const auto* a : active) {
      const auto known = index_.find(a->id);
      if (known == index_.end()) {
        index_.emplace(a->id, result_.alarms.size());
        open_.emplace(a->id, result_.alarms.size());
        result_.alarms.push_back(SimulatedAlarm{a->id, a->alarm, a->peak, now, std::nullopt, 0, 0});
      } else {
        result_.alarms[known->second].peak = a->peak;
      }
    }
  }

  void count_for_alarm(const std::string& alarm_id, bool call) {
    const auto it = index_.find(alarm_id);
    if (it == index_.end()) return;
    auto& alarm = result_.alarms[it->second];
    (call ? alarm.calls : alarm.sms) += 1;
  }

  // Applies `first` and every follow-up event its actions cause, in order, at `now`.
  void apply(core::Event first, TimePoint now) {
    std::deque<core::Event> queue;
    queue.push_back(std::move(first));
    while (!queue.empty()) {
      core::Event event = std::move(queue.front());
      queue.pop_front();
      auto transition = core::step(config_, std::move(state_), event, now);
      state_ = std::move(transition.state);
      track_alarms(now);
      for (auto& action : transition.actions) {
        std::visit(Overloaded{
                       [&](core::PlaceCall& call) {
                         ++result_.calls;
                         count_for_alarm(call.alarm_id, true);
                         result_.notifications.push_back(
                             Notification{now, true, call.to_label, call.alarm_id,
                                          is_active_low(call.alarm_id)});
                         std::string call_id = "console-" + std::to_string(++console_ids_);
                         pending_.push_back(Pending{call.call_key, call_id});
                         core::CallPlaced placed;
                         placed.call_key = call.call_key;
                         placed.provider = "console";
                         placed.call_id = call_id;
                         queue.push_back(std::move(placed));
                       },
                       [&](core::SendSms& sms) {
                         ++result_.sms;
                         count_for_alarm(sms.alarm_id, false);
                         result_.notifications.push_back(Notification{
                             now, false, sms.to_label, sms.alarm_id, is_active_low(sms.alarm_id)});
                         core::SmsResult sent;
                         sent.sms_key = sms.sms_key;
                         sent.patient = sms.patient;
                         sent.alarm_id = sms.alarm_id;
                         sent.to = sms.to;
                         sent.sent = true;
                         sent.provider = "console";
                         queue.push_back(std::move(sent));
                       },
                       [&](core::JournalEntry& entry) {
                         if (entry.type == "call_held_back") ++result_.calls_held_back;
                         if (entry.type == "alarm_raised" || entry.type == "alarm_replaced") {
                           ++result_.alarms_raised;
                         }
                         result_.journal.push_back(std::move(entry));
                       },
                   },
                   action);
      }
    }
  }

  // The console provider's answer to every call placed before this tick.
  void deliver_outcomes(TimePoint now) {
    const auto calls = std::exchange(pending_, {});
    for (const auto& call : calls) {
      const auto update = [&](core::CallProgress progress, const char* detail) {
        core::CallUpdate event;
        event.call_key = call.call_key;
        event.call_id = call.call_id;
        event.progress = progress;
        event.detail = detail;
        apply(std::move(event), now);
      };
      switch (options_.answer) {
        case core::ConsoleAnswer::never:
          update(core::CallProgress::unanswered, "console: never");
          break;
        case core::ConsoleAnswer::ack: {
          core::Keypress keypress;
          keypress.call_key = call.call_key;
          keypress.call_id = call.call_id;
          keypress.digits = "1";
          apply(std::move(keypress), now);
          update(core::CallProgress::completed, "console: ack");
          break;
        }
        case core::ConsoleAnswer::noack:
          update(core::CallProgress::completed, "console: noack");
          break;
      }
    }
  }

  int minute_of_day(TimePoint now) const {
    if (zone_ == "UTC") return utc_minute_of_day(now);
    const auto minute = adapters::local_minute_of_day(zone_, now);
    return minute ? *minute : utc_minute_of_day(now);
  }

  // One poll and evaluation: what Nightscout serves at `now`, evaluated and applied.
  void assess(TimePoint now) {
    const auto newer = std::upper_bound(
        served_.begin(), served_.end(), now,
        [](TimePoint t, const core::Entry& e) { return t < e.date; });
    const auto available = newer - served_.begin();
    const auto count = std::min<std::ptrdiff_t>(available, adapters::k_entries_count);
    core::PollOutcome outcome;
    // Newest first, the order Nightscout serves (and the cheapest for evaluate's sort).
    outcome.entries.assign(std::make_reverse_iterator(newer),
                           std::make_reverse_iterator(newer - count));

    const auto& settings = patient_.settings;
    core::PatientAssessed event;
    event.patient = patient_.name;
    event.assessment = core::evaluate(outcome, settings, now, minute_of_day(now));
    const auto& a = event.assessment;
    if (a.glucose) {
      event.glucose_message =
          core::alarm_message(patient_.name, *a.glucose, a, settings, config_.units, "");
    }
    if (a.data) {
      std::string since;
      if (a.data->kind == core::AlarmKind::sensor_error && a.status_code_since) {
        since = adapters::local_hhmm(zone_, *a.status_code_since);
      }
      event.data_message =
          core::alarm_message(patient_.name, *a.data, a, settings, config_.units, since);
    }
    apply(std::move(event), now);
    if (low_side_active()) low_active_ticks_.push_back(now);
  }

  // Ticks while something is due now.
  void run_due(TimePoint now) {
    for (int i = 0; i < k_max_ticks_per_instant; ++i) {
      const auto due = core::next_due(config_, state_);
      if (!due || *due > now) return;
      apply(core::Tick{}, now);
    }
  }

  // The wake-ups of the run loop between two polls.
  void wake_between(TimePoint now, TimePoint next_tick) {
    TimePoint at = now;
    for (int i = 0; i < k_max_wakeups_per_tick; ++i) {
      const auto due = core::next_due(config_, state_);
      if (!due || *due >= next_tick || *due <= at) return;
      at = *due;
      apply(core::Tick{}, at);
    }
  }

  void score_episodes() {
    result_.episodes = find_low_episodes(served_);
    for (auto& episode : result_.episodes) {
      const auto active = std::lower_bound(low_active_ticks_.begin(), low_active_ticks_.end(),
                                           episode.start);
      episode.alarmed =
          active != low_active_ticks_.end() && *active <= episode.end + k_alarmed_slack;
      for (const auto& n : result_.notifications) {
        if (!n.low_side || n.at < episode.start - k_reached_lookback) continue;
        if (n.at <= episode.end) {
          episode.reached_after = std::max(Duration::zero(), n.at - episode.start);
        }
        break;
      }
      for (const auto& n : result_.notifications) {
        if (!n.low_side || !n.call || n.at < episode.start) continue;
        if (n.at <= episode.end + k_alarmed_slack) episode.called_after = n.at - episode.start;
        break;
      }
    }
  }

  const core::Config& config_;
  const core::Patient& patient_;
  const SimulationOptions options_;
  const std::string zone_;
  std::vector<core::Entry> served_;  // every entry, oldest first
  core::State state_;
  SimulationResult result_;
  std::vector<Pending> pending_;                  // calls awaiting their outcome
  std::uint64_t console_ids_ = 0;                 // source of "console-<n>" call ids
  std::map<std::string, std::size_t> index_;      // alarm id -> result_.alarms index
  std::map<std::string, std::size_t> open_;       // alarms not yet ended
  std::vector<TimePoint> low_active_ticks_;       // ticks at which a low-side alarm was active
};

}  // namespace

std::vector<LowEpisode> find_low_episodes(const std::vector<core::Entry>& entries) {
  const auto readings = glucose_readings(entries);
  std::vector<LowEpisode> episodes;
  if (readings.size() < 2) return episodes;
  const Duration cadence = std::chrono::minutes{cadence_minutes(readings)};
  const Duration gap_limit = std::max<Duration>(15min, cadence * 3 / 2);

  bool in_run = false;
  LowEpisode run;
  TimePoint previous{};
  const auto close = [&] {
    if (in_run && run.end - run.start + cadence >= k_episode_min_length) episodes.push_back(run);
    in_run = false;
  };
  for (const auto& r : readings) {
    if (r.sgv < k_episode_below_mgdl) {
      if (in_run && r.date - previous > gap_limit) close();
      if (!in_run) {
        run = LowEpisode{r.date, r.date, r.sgv, false, std::nullopt, std::nullopt};
        in_run = true;
      } else {
        run.end = r.date;
        run.nadir = std::min(run.nadir, r.sgv);
      }
    } else {
      close();
    }
    previous = r.date;
  }
  close();
  return episodes;
}

SimulationResult simulate_trace(const core::Config& config, const core::Patient& patient,
                                const std::vector<core::Entry>& entries,
                                const SimulationOptions& options) {
  return Simulator(config, patient, entries, options).run();
}

core::Config trace_config(core::ConsoleAnswer answer) {
  core::Config config;
  config.source_path = "(trace-alarms)";
  config.units = core::GlucoseUnit::mg_dl;
  core::Provider console;
  console.type = core::ProviderType::console;
  console.answer = answer;
  config.providers.push_back(console);
  config.defaults = core::AlarmSettings{};
  config.defaults.escalation = adapters::default_escalation();

  core::Patient patient;
  patient.name = "P";
  patient.timezone = "UTC";
  patient.phone = "+15550000001";
  patient.contacts = {core::Contact{"Bob", "+15550000002"}, core::Contact{"Carol", "+15550000003"}};
  patient.settings = config.defaults;
  config.patients.push_back(patient);
  return config;
}

}  // namespace scout::app
