#pragma once
// Replays a recorded CGM trace through scout's own evaluation and alarm machine on a simulated
// clock, with the console provider's call outcomes (SPEC §4; issue 3 "replays of the real
// traces"). Used by the trace tests and by tools/trace-alarms, which prints the README numbers.
//
// The loop is what `scout run` does each tick, minus the network: every `tick`, the entries
// Nightscout would serve at that moment (dated <= now, newest 36) are evaluated
// (core::evaluate), the assessment goes to core::step, and each PlaceCall is answered the way the
// console provider answers (adapters::make_console_provider): the call is placed at once and its
// outcome arrives on the next tick (never -> unanswered; ack -> keypress "1" then completed;
// noack -> completed). SendSms succeed at once.
// Order within a tick: first the outcomes of the calls placed before it, then the assessment;
// then Tick events while core::next_due is due, and between two ticks a Tick at each
// core::next_due (the run loop wakes then). Every action's follow-up event (CallPlaced with
// provider "console" and id "console-<n>", SmsResult sent) is applied at once, in order.
#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "scout/core/alarm.hpp"
#include "scout/core/config.hpp"
#include "scout/core/reading.hpp"

namespace scout::app {

struct SimulationOptions {
  core::ConsoleAnswer answer = core::ConsoleAnswer::never;
  core::Duration tick = std::chrono::minutes{1};  // the poll interval being simulated
  // The first tick is this long after the first entry (the history nightscout-replay serves
  // before its cursor, `--start +1h`). An episode that ends within it is never seen, so the
  // trace replays (tools/trace-alarms, the [traces] test) set 0 to see every reading.
  core::Duration lead_in = std::chrono::hours{1};
  // The last tick is at most this long after the last entry: the default shows the data alarm
  // of a trace that stops; 0 ends at the last reading (no stale alarm for the end of the file).
  core::Duration tail = std::chrono::hours{1};
};

// Below this (mg/dL) a run of readings is a low episode (level 2 hypoglycaemia, the `< 54` of
// shared/data/cgm/README.md).
inline constexpr int k_episode_below_mgdl = 54;
// An episode lasts at least this long (last reading - first reading + cadence).
inline constexpr core::Duration k_episode_min_length = std::chrono::minutes{15};

// One low episode: consecutive usable readings < 54 mg/dL lasting >= 15 min, counted the way
// shared/data/cgm/README.md ("episodes <54", convert.py `stats`) counts them, so the numbers
// match its table: the cadence is the median spacing of the trace in whole minutes; a gap
// longer than max(15 min, 1.5 x cadence) ends a run (so a Libre's 15-17 min spacing does not);
// a run lasts (end - start) + cadence.
struct LowEpisode {
  core::TimePoint start{};  // first reading < 54
  core::TimePoint end{};    // last reading < 54
  int nadir = 0;            // lowest sgv, mg/dL
  bool alarmed = false;     // a low-side glucose alarm was active at some tick in [start, end + 5 min]
  // From `start` to the first call or SMS of a low-side alarm placed in [start - 30 min, end]
  // (0 when a low-side alarm was already reaching people before the episode); nullopt: none.
  std::optional<core::Duration> reached_after;
  // From `start` to the first call of a low-side alarm placed in [start, end + 5 min]; nullopt:
  // none (e.g. acknowledged and snoozed throughout). A new urgent_low calls at once; one raised
  // before `start` (at 54, or replaced earlier) calls again only at its next step or repeat.
  std::optional<core::Duration> called_after;
};

// Every low episode of `entries` (any order; unusable entries and repeated dates ignored),
// oldest first. Empty for fewer than two usable readings.
std::vector<LowEpisode> find_low_episodes(const std::vector<core::Entry>& entries);

// One alarm raised during a simulation (a new alarm id in the state).
struct SimulatedAlarm {
  std::string id;
  core::Alarm alarm;     // the kind and severity when raised
  core::Alarm peak;      // the most severe kind it reached (for a replaced alarm, until replaced)
  core::TimePoint raised_at{};
  std::optional<core::TimePoint> ended_at;  // resolved or replaced; nullopt: active at the end
  int calls = 0;  // PlaceCall actions for it
  int sms = 0;    // SendSms actions for it (all-clear SMS included)
};

// One PlaceCall or SendSms carried out.
struct Notification {
  core::TimePoint at{};
  bool call = false;     // PlaceCall (true) or SendSms (false)
  std::string to_label;  // "patient" or the contact's name
  std::string alarm_id;
  bool low_side = false;  // for the active low-side glucose alarm (all-clear SMS are not)
};

struct SimulationResult {
  core::TimePoint first{};  // first simulated tick
  core::TimePoint last{};   // last simulated tick
  double days = 0;          // (last - first) in days
  int calls = 0;            // PlaceCall actions
  int sms = 0;              // SendSms actions
  int calls_held_back = 0;  // call_held_back journal entries
  int alarms_raised = 0;    // alarm_raised + alarm_replaced journal entries
  std::vector<LowEpisode> episodes;  // every episode < 54 mg/dL lasting >= 15 min
  std::vector<core::JournalEntry> journal;
  std::vector<SimulatedAlarm> alarms;        // in the order raised
  std::vector<Notification> notifications;  // in the order carried out
};

// Simulates `patient` (of `config`, which must contain it) over `entries` (any order) from the
// first entry + options.lead_in to the last entry + options.tail (default 1 h each), one tick
// per options.tick (a tick <= 0 is taken as 1 minute). Deterministic. The
// patient's timezone is used for schedules (empty = UTC here, for reproducibility).
SimulationResult simulate_trace(const core::Config& config, const core::Patient& patient,
                                const std::vector<core::Entry>& entries,
                                const SimulationOptions& options);

// The config the README numbers use: SPEC §2's built-in defaults (thresholds 55/70/250/300,
// hysteresis 5, no schedule, stale 15m/30m, predict 20m, ack keypress, snooze 30m, min_call_gap
// 2m, 10 calls and 20 SMS per hour, notify_resolved, adapters::default_escalation()), one
// console provider answering `answer`, and one patient "P" (timezone UTC, +15550000001) with
// contacts Bob (+15550000002) and Carol (+15550000003).
core::Config trace_config(core::ConsoleAnswer answer);

}  // namespace scout::app
