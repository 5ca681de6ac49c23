#pragma once
// The one service behind every command (SPEC §1, §4): `scout run` (loop and --once), `scout
// check`, `scout replay` and the tests all drive this class through the seams of
// app/seams.hpp. It polls, assesses (app::assess), feeds the pure machine (core::step, through
// app::Engine), and carries out the machine's calls and SMS, rendering each message only when it
// goes out (SPEC §4.8), from the patient's newest facts and the clock at that moment.
//
// Order within a tick (SPEC §3, §4.11): patients are assessed as their Nightscout answers (a
// partial core::Assessed per batch of answers: raising, calls of new alarms, and those
// patients' own time rules); once every answer is in, a core::Tick runs everyone's time rules;
// only then are call outcomes polled and due steps run.
//
// Clock jumps (SPEC §6): tick(), poll_calls(), advance() and deliver() first compare the wall
// clock with the monotonic one; a jump of 5 s or more is applied as core::ClockJumped, which
// moves scout's own times with it.
//
// Thread-safety: tick(), poll_calls(), advance() and drain() are called by one driving thread;
// deliver() may be called from the listener's threads at any time; with `workers` > 0, calls and
// SMS are carried out on worker threads, else inline in the calling thread before it returns.
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "scout/app/engine.hpp"
#include "scout/app/seams.hpp"
#include "scout/core/alarm.hpp"
#include "scout/core/config.hpp"
#include "scout/core/evaluate.hpp"

namespace scout::app {

// Evaluates one patient at `now` (core::evaluate with the schedule minute of the patient's
// timezone; an unknown zone counts as UTC here, config validation refuses one). The one
// evaluation every command uses.
core::Assessment assess(const core::Patient& patient, const core::PollOutcome& outcome,
                        core::TimePoint now);

// The words of `message` for `patient` at `now` (core::render_message with the patient's facts
// and the local "HH:MM" of its failure streak or sensor-code run). The one renderer every
// command uses.
std::string render(const core::Config& config, const core::Patient& patient,
                   const core::PatientState& state, const core::Message& message,
                   core::TimePoint now);

// One call or SMS as it went out (for replay and check reports, and tests).
struct Outbound {
  core::TimePoint at{};
  bool call = false;
  std::string patient;
  std::string alarm_id;
  std::string to;        // E.164
  std::string to_label;  // "patient" or a contact name
  core::Message message;
  std::string text;      // as rendered at `at`
  bool operator==(const Outbound&) const = default;
};

struct ServiceOptions {
  // A webhook listener delivers call outcomes and keypresses (deliver()). Without one, answering
  // a call is the acknowledgement (every patient's ack becomes `answer`, SPEC §4.2) and calls in
  // flight are polled by poll_calls().
  bool listening = false;
  // Worker threads for calls and SMS (a provider retrying with backoff must not hold up the SMS
  // to a contact); 0 = inline.
  int workers = 0;
  // Called after every call or SMS carried out and every event applied (the run loop wakes).
  std::function<void()> on_change;
  // Log every journal entry (app::log_journal_entry). Off for check and replay, which report.
  bool log_journal = true;
  // One info line per tick (`tick patients=… failed=… alarms=… slowest=…`, SPEC §6): run only.
  bool log_ticks = false;
  // When set, the words of every call and SMS (scout drill: every message says it is a test)
  // instead of the alarm's own.
  std::function<std::string(const std::string& patient, const core::Message& message)> words;
  // Called for every call or SMS as it goes out (after rendering, before telephony).
  std::function<void(const Outbound&)> on_outbound;
};

class Service {
 public:
  // `config` must outlive the service, and so must the seams. `state` is the persisted state.
  Service(const core::Config& config, core::State state, Clock& clock, CgmSource& cgm,
          Telephony& telephony, StateStorage& store, JournalSink& journal,
          ServiceOptions options);
  ~Service();
  Service(const Service&) = delete;
  Service& operator=(const Service&) = delete;

  // One tick: recover_calls(), fetch every patient, assess, apply one core::Assessed, then
  // poll_calls(), then advance(). Logs a failing Nightscout once per streak (auth at error
  // level, SPEC §3).
  void tick();
  // The calls an earlier process decided but never saw confirmed (core::undispatched_calls of the
  // state the service started from, SPEC §6): each is looked up at the providers
  // (Telephony::find_call); one that exists is followed (CallPlaced), one that does not is placed
  // now, one decided 5 minutes ago or more counts as failed (CallNotPlaced) so the chain goes on.
  // When the providers cannot be asked, the call waits for the next tick. SMS decided but never
  // reported sent (core::undispatched_sms) are sent again at the first call. Called by tick().
  void recover_calls();
  // Asks the provider about calls in flight and applies what it says: without a listener every
  // such call, with one only calls placed more than 90 s ago (webhooks normally tell).
  void poll_calls();
  // Applies core::Tick while something is due at the clock's now (bounded: 8 per call).
  void advance();
  // An event from the webhook listener (CallUpdate, Keypress). Returns the reply to speak, its
  // text rendered now.
  std::optional<core::KeypressReply> deliver(const core::Event& event);
  // A request from the shell (SPEC §4.13: `scout ack|snooze|unsnooze` through the spool), applied
  // now like any event; what it changed. Called by the driving thread.
  core::CommandOutcome command(const core::ShellCommand& command);
  // The next time advance() has work (core::next_due at the clock's now).
  std::optional<core::TimePoint> next_due() const;
  // Calls in flight that poll_calls() would ask about next (any, when not listening).
  bool calls_in_flight() const;
  // Waits until every call and SMS handed to the workers (and what their results caused) is done.
  void drain();
  // Stops the workers after draining. Idempotent.
  void stop();
  // Saves the state unconditionally (StateStorage::save).
  core::Status save() const;
  // Saves the state if a change is waiting for its save: a batch of answers without calls, a
  // call placed or progressing (CallPlaced, CallUpdate), an SMS result. Changes that carry a
  // call or SMS to make, keypresses and shell commands are saved at once. The run loop calls
  // this every pass (at most about 1 s apart), so a mass event writes the state file about once
  // a second, not once per call (SPEC §6, §7). Errors as save().
  core::Status flush();
  // False while the newest state is not saved (the last save failed, SPEC §6): every later event
  // tries again. mark_unsaved() says so for a save that failed before the service existed.
  bool state_saved() const { return engine_->saved(); }
  void mark_unsaved() { engine_->mark_unsaved(); }

  // The newest assessment of every patient (config order), from the last tick.
  std::vector<core::PatientAssessed> last_assessments() const;
  // A copy of the machine's state.
  core::State state() const;
  // The machine's view of the config (ack as the listener allows).
  const core::Config& machine_config() const { return engine_->config(); }

 private:
  struct Workers;
  void poll_calls_placed_before(core::TimePoint before);
  void apply(const core::Event& event, bool defer_save = false);
  void dispatch(std::vector<core::Action> actions);
  std::vector<core::Action> carry_out(const core::Action& action);
  adapters::CallRequest request_for(const core::PlaceCall& call, std::string text) const;
  std::string render_now(const std::string& patient, const core::Message& message,
                         core::TimePoint now) const;

  const core::Config& config_;
  Clock& clock_;
  CgmSource& cgm_;
  Telephony& telephony_;
  ServiceOptions options_;
  std::unique_ptr<Engine> engine_;
  std::map<std::string, const core::Patient*> patients_;  // machine config, by name
  std::unique_ptr<Workers> workers_;
  mutable std::mutex assessed_mutex_;
  std::vector<core::PatientAssessed> last_assessed_;
  std::unordered_map<std::string, bool> reported_failure_;  // patient -> failure logged in this streak
  std::vector<core::PlaceCall> orphans_;           // recover_calls() still to settle
  std::vector<core::SendSms> orphan_sms_;          // decided earlier, sent again at the first tick
  // Wall and monotonic readings at the last look (notice_clock_jump).
  std::mutex clock_mutex_;
  std::optional<std::pair<core::TimePoint, core::Duration>> clock_anchor_;
  void notice_clock_jump();
};

}  // namespace scout::app
