#pragma once
// The alarm state machine (SPEC §4) as a pure function (state, event, now) -> (state, actions).
// No clock, no I/O: the caller (app/engine) feeds events, carries out the actions, saves the
// state (adapters/state_store) and feeds the outcome of each action back as another event.
//
// Times are TimePoint (ms since the epoch, UTC); durations come from AlarmSettings.
// Glucose values are mg/dL. Phone numbers are E.164 with '+'.
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

#include "scout/core/config.hpp"
#include "scout/core/evaluate.hpp"
#include "scout/core/message.hpp"

namespace scout::core {

// ----------------------------------------------------------------------------------------------
// State

// What is known about one call (SPEC §4.1-4.2). Values from Vonage's event `status` and Twilio's
// `CallStatus`/`AnsweredBy`, mapped by the listener and providers (protocols.md §2.5, §4.2-4.3).
enum class CallProgress {
  placing,    // PlaceCall emitted, the provider has not confirmed it yet
  ringing,    // the provider accepted it (started, queued, initiated, ringing)
  answered,   // answered; human or machine not known (yet)
  human,      // answered by a person (answering-machine detection)
  machine,    // answered by a machine (voicemail, fax): final, not an acknowledgement
  completed,  // ended after being answered
  unanswered, // final: nobody answered (Vonage unanswered, Twilio no-answer)
  busy,       // final
  timeout,    // final: rang out (Vonage timeout) or no outcome within k_call_outcome_timeout
  rejected,   // final
  failed,     // final: the provider failed the call, or scout could not place it at all
  cancelled,  // final
};
const char* to_string(CallProgress progress);
// Parses to_string's names; nullopt for anything else.
std::optional<CallProgress> call_progress_from_string(std::string_view name);
// True for machine, completed and the six "ended without answer" values.
bool is_final(CallProgress progress);

// A call that has reached no final progress this long after it was placed is taken as ended
// (timeout, no acknowledgement), so a lost webhook never stops the escalation.
inline constexpr Duration k_call_outcome_timeout = std::chrono::minutes{10};
// A final call is forgotten (dropped from ActiveAlarm::calls) this long after it ended.
inline constexpr Duration k_call_memory = std::chrono::hours{1};

struct CallRecord {
  std::string key;       // scout's id for the call ("c17"), unique for the life of the state
  std::string call_id;   // the provider's id (Vonage uuid, Twilio CA…, console-…); "" until placed
  std::string provider;  // "vonage" | "twilio" | "console"; "" until placed
  std::string to;        // E.164
  std::string to_label;  // "patient" or the contact's name
  int run = 0;           // the chain run that placed it (ActiveAlarm::run)
  int step = 0;          // the step index within that run
  TimePoint placed_at{};
  CallProgress progress = CallProgress::placing;
  bool answered = false;      // answered / human seen at some point
  bool acknowledged = false;  // this call acknowledged the alarm (keypress 1, or human with ack: answer)
  bool escalated = false;     // keypress 2 was handled for this call (it acts once per call)
  std::optional<TimePoint> ended_at;
  bool operator==(const CallRecord&) const = default;
};

// One active alarm of a patient (a glucose alarm or a data alarm).
struct ActiveAlarm {
  std::string id;       // "a12", unique for the life of the state
  Alarm alarm;          // the kind and severity that hold now (for messages)
  Alarm peak;           // the most severe kind seen in this episode; picks the chain
  TimePoint raised_at{};

  // Escalation (SPEC §4.1, §4.3).
  int run = 0;                 // 0 for the first pass of the chain, +1 per repeat / snooze restart
  TimePoint chain_start{};     // when the current run began
  int next_step = 0;           // index of the next step of the current run to carry out
  std::optional<TimePoint> last_step_at;  // when the most recent step of this run was carried out

  // Acknowledgement and snooze (SPEC §4.2, §4.3).
  std::optional<TimePoint> snoozed_until;  // acknowledged_at + snooze_for(alarm.kind)
  std::optional<TimePoint> acknowledged_at;
  std::string acknowledged_by;  // label of who acknowledged ("patient", a contact name); "" if not
  // A glucose alarm whose newest fresh reading no longer raises it but is not yet back by
  // `hysteresis` (SPEC §4.5): it holds, but runs no step and no snooze end until the readings
  // raise it again (no call says "LOW, 73 mg/dL" with the low threshold at 70).
  bool in_band = false;

  std::vector<std::string> notified;  // E.164 numbers called or texted for this alarm, first-come
  std::vector<CallRecord> calls;      // calls placed for this alarm (final ones kept k_call_memory)
  bool operator==(const ActiveAlarm&) const = default;
};

struct PatientState {
  std::optional<ActiveAlarm> glucose;  // urgent_low, urgent_low_soon, low, urgent_high, high
  std::optional<ActiveAlarm> data;     // stale, unreachable, sensor_error
  // Start of the current streak of failed polls (set on the first failed poll, cleared by a
  // successful one). The caller passes it to evaluate() as PollOutcome::failing_since.
  std::optional<TimePoint> failing_since;
  // The newest facts about the readings (update_facts of every assessment): what messages say
  // when they are rendered, and the last value known while Nightscout cannot be read.
  ReadingFacts facts;
  bool operator==(const PatientState&) const = default;
};

// A glucose or a data alarm of `ps` is active: only then can anything of it be due by time, and
// only then can it have calls (SPEC §4).
inline bool has_alarm(const PatientState& ps) { return ps.glucose.has_value() || ps.data.has_value(); }

// Calls and SMS sent to one number in the last hour, oldest first, across all patients and
// alarms (SPEC §4.6: min_call_gap, max_calls_per_hour, max_sms_per_hour hold per number).
struct NumberUsage {
  std::vector<TimePoint> calls;
  std::vector<TimePoint> sms;
  bool operator==(const NumberUsage&) const = default;
};

// An SMS decided (SendSms emitted) whose SmsResult has not come back yet (SPEC §6): after a
// crash in between, the app sends it again at start (at least once: a crash after sending and
// before the result was saved repeats it, which beats losing it).
struct PendingSms {
  std::string patient;
  std::string alarm_id;
  std::string to;        // E.164
  std::string to_label;  // "patient" or a contact name
  Message message;
  TimePoint decided_at{};
  bool operator==(const PendingSms&) const = default;
};

struct State {
  std::map<std::string, PatientState> patients;  // by patient name
  std::map<std::string, PendingSms> sms_in_flight;  // by sms key ("s<n>")
  std::map<std::string, NumberUsage> numbers;    // by E.164 number
  std::uint64_t next_id = 1;  // source of alarm ids ("a<n>"), call keys ("c<n>"), sms keys ("s<n>")
  // Per-install secret for webhook URLs when Vonage has no signature_secret (SPEC §5). Created
  // by the app, not by the machine; kept here so it survives restarts.
  std::string webhook_token;
  bool operator==(const State&) const = default;
};

// Calls `visit(name, ps)` for each patient of `state` named in `alarmed` (the names of the
// patients with an alarm active, as Engine::read_alarmed keeps them) that is in `state` with an
// alarm active (has_alarm), in name order. O(|alarmed| log patients).
template <typename Visit>
void for_each_alarmed(const State& state, const std::set<std::string>& alarmed, Visit&& visit) {
  for (const auto& name : alarmed) {
    const auto it = state.patients.find(name);
    if (it != state.patients.end() && has_alarm(it->second)) visit(name, it->second);
  }
}

// ----------------------------------------------------------------------------------------------
// Events

// The outcome of one poll and evaluation of a patient.
struct PatientAssessed {
  std::string patient;
  Assessment assessment;
};

// Every patient's assessment of one tick (SPEC §4.11): all are applied before any time-based
// rule runs, so no step of one patient runs before every patient's newest reading is in.
struct Assessed {
  std::vector<PatientAssessed> patients;
  // The assessments of the patients whose Nightscout has answered so far in a tick (SPEC §3: a
  // slow Nightscout never delays another patient): the time-based rules run for these patients
  // only; the driver ends the tick with a Tick for everyone.
  bool partial = false;
};

// A PlaceCall was accepted by `provider`, which named the call `call_id`.
struct CallPlaced {
  std::string call_key;
  std::string provider;
  std::string call_id;
  std::string text;  // the words spoken, as rendered when placed (journal only, SPEC §6)
};

// A PlaceCall could not be placed by any provider. The call counts as ended (failed).
struct CallNotPlaced {
  std::string call_key;
  std::string error;  // redacted, for the journal
  std::string text;   // the words it would have spoken (journal only)
};

// Progress of a call, from a webhook or from polling the provider. The call is found by
// `call_key` when set (scout puts it in the webhook URLs), else by `call_id`.
struct CallUpdate {
  std::string call_key;
  std::string call_id;
  CallProgress progress = CallProgress::ringing;
  std::string detail;  // provider detail for the journal ("busy", "no-answer", sip code ...)
};

// Digits entered during a call (Vonage input / Twilio Gather). "" = no key pressed (timed out).
struct Keypress {
  std::string call_key;
  std::string call_id;
  std::string digits;
};

// The result of a SendSms (journal only; SMS have no further effect on the chain).
struct SmsResult {
  std::string sms_key;
  std::string patient;   // from the SendSms, for the journal
  std::string alarm_id;  // from the SendSms, for the journal
  std::string to;        // E.164, from the SendSms (journaled masked)
  bool sent = false;
  std::string provider;  // the provider that sent it, when sent
  std::string error;     // redacted, when not sent
  std::string text;      // the words sent (or that could not be), journal only (SPEC §6)
};

// Time passed. Every event also advances time-based rules; Tick does only that.
struct Tick {};

// The wall clock jumped by `offset` (the wall clock moved that much more than the monotonic
// clock, SPEC §6): every time in the state that scout read from its own clock (alarm and chain
// starts, step times, snoozes, acknowledgements, call times, per-number call and SMS times, the
// failure streak) moves by `offset`, so that gaps, snoozes, min_call_gap and step timers keep
// their length. Reading dates (Nightscout's clock) stay. Journal clock_jumped.
struct ClockJumped {
  Duration offset{};
};

// A request from the shell (`scout ack|snooze|unsnooze`, through the command spool, SPEC §1,
// §4.13). It acts on the patient's active alarms (glucose and data), or only on those whose
// kind (to_string(AlarmKind)) or class ("glucose", "data") is `only`:
//  ack       as keypress 1 would: every alarm not already snoozed is snoozed for
//            snooze_for(its kind), acknowledged_by = `by` (journal acknowledged, via=shell).
//  snooze    every alarm is snoozed until now + `duration` (a fixed end that the kind does not
//            move; a more severe alarm replaces it unsnoozed, SPEC §4.4) (journal snoozed).
//  unsnooze  every snoozed alarm's snooze ends now: its chain restarts at once (journal
//            unsnoozed, then snooze_ended and the first step).
// An unknown patient, or no alarm it could act on, changes nothing (journal command_ignored).
struct ShellCommand {
  enum class Kind { ack, snooze, unsnooze };
  Kind kind = Kind::ack;
  std::string id;       // the spool's id of the request, for the journal
  std::string patient;
  std::string by;       // who sent it (--by, or the shell user)
  Duration duration{};  // snooze only; > 0
  std::string only;     // "" = every active alarm
};
const char* to_string(ShellCommand::Kind kind);

// What a ShellCommand did, for the shell that sent it: `changed` is false when it changed
// nothing; `lines` say what changed, or why nothing did, one sentence each.
struct CommandOutcome {
  bool changed = false;
  std::vector<std::string> lines;
  bool operator==(const CommandOutcome&) const = default;
};

using Event = std::variant<PatientAssessed, Assessed, CallPlaced, CallNotPlaced, CallUpdate, Keypress,
                           SmsResult, Tick, ClockJumped, ShellCommand>;

// ----------------------------------------------------------------------------------------------
// Actions

// Place a call. `message` says what the call is about; the caller renders it into words when it
// places the call (core::render_message with the patient's newest facts, SPEC §4.8). The provider
// speaks it twice (SPEC §4.2) and, when `gather` is true, asks "press 1 to acknowledge, press 2 to alert the contacts now" and collects
// one digit. `gather` is false when the patient's ack mode is `answer`.
struct PlaceCall {
  std::string call_key;
  std::string patient;
  std::string alarm_id;
  std::string to;        // E.164
  std::string to_label;  // "patient" or a contact name
  Message message;
  bool gather = true;
  bool operator==(const PlaceCall&) const = default;
};

struct SendSms {
  std::string sms_key;
  std::string patient;
  std::string alarm_id;
  std::string to;        // E.164
  std::string to_label;  // "patient" or a contact name
  Message message;       // rendered when sent, like PlaceCall::message
  bool operator==(const SendSms&) const = default;
};

// One journal line (SPEC §6). `type` is one of:
//   alarm_raised, alarm_replaced, alarm_updated (kind changed within the episode),
//   alarm_resolved, step (a chain step ran), chain_restarted (repeat or snooze end),
//   snooze_ended, call (PlaceCall emitted), call_placed, call_not_placed, call_outcome,
//   call_held_back (min_call_gap / max_calls_per_hour: sent as SMS instead), sms,
//   sms_sent, sms_failed, sms_suppressed (max_sms_per_hour), acknowledged (via=shell from a
//   ShellCommand), keypress, unknown_call, patient_removed, clock_jumped, and for ShellCommand:
//   snoozed, unsnoozed, command_ignored.
// `fields` are extra key/values in order (values are strings; phone numbers masked with
// core::mask_phone). call_placed, call_not_placed, sms_sent and sms_failed carry `text`, the
// words as sent, when the event had them. `level` is how loudly the app logs it.
struct JournalEntry {
  enum class Level { info, warn, error };
  TimePoint at{};
  std::string type;
  std::string patient;
  std::string alarm_id;
  std::vector<std::pair<std::string, std::string>> fields;
  Level level = Level::info;
  bool operator==(const JournalEntry&) const = default;
};

using Action = std::variant<PlaceCall, SendSms, JournalEntry>;

// What the person on a call hears after pressing a key (the listener answers the input webhook
// with it, SPEC §5).
struct KeypressReply {
  enum class Kind {
    acknowledged,   // '1': "Acknowledged ... Goodbye."
    escalated,      // '2': "Alerting your contacts now. Goodbye."
    repeat_prompt,  // any other key: speak `text` and the prompt again, collect one digit
    no_input,       // no key: "Goodbye." — the call ends unacknowledged
    unknown_call,   // the call is not (or no longer) part of an active alarm
  };
  KeypressReply() = default;
  KeypressReply(Kind k, std::string t, std::optional<Message> m = std::nullopt, std::string p = "")
      : kind(k), text(std::move(t)), message(std::move(m)), patient(std::move(p)) {}
  Kind kind = Kind::unknown_call;
  std::string text;  // what to speak; for repeat_prompt the caller renders `message` into it
  std::optional<Message> message;  // repeat_prompt: the alarm, rendered when answered
  // The patient of the call (repeat_prompt), for rendering.
  std::string patient;
  bool operator==(const KeypressReply&) const = default;
};

struct Transition {
  State state;
  std::vector<Action> actions;
  std::optional<KeypressReply> reply;  // set for Keypress events only
  std::optional<CommandOutcome> command;  // set for ShellCommand events only
};

// Applies one event. `config` gives each patient's settings, contacts and the glucose unit for
// messages; the caller sets patient.settings.ack = answer for everyone when there is no listener.
// Patients in `state` that are not in `config` are dropped (journal patient_removed). Events for
// unknown patients, call keys or call ids change nothing but a journal line (unknown_call).
//
// Rules (SPEC §4), precisely:
//  Raising. On PatientAssessed, assessment.glucose / .data raise an alarm when none of that
//   class is active (new id, run 0, chain_start = now, alarm_raised). The chain is
//   escalation.urgent when the alarm's severity is urgent, escalation.warning otherwise.
//  Episode. Low side = urgent_low, urgent_low_soon, low; high side = urgent_high, high.
//   An assessment alarm of the same class (and, for glucose, the same side) that is more severe
//   than the active alarm's `peak` (urgent before warning, then AlarmKind order) replaces it at
//   once: a new id and a new chain from step 0, the snooze of the old one does not carry, the
//   old `notified` list does (alarm_replaced). Otherwise the active alarm stays (same id, chain,
//   snooze) and only `alarm` and `message` follow the assessment (alarm_updated when the kind
//   changes). A glucose alarm of the other side resolves the active one and raises a new one.
//  Resolving (SPEC §4.5). Needs a fresh reading: no poll_error, `latest` set and age <=
//   stale.warn. A low-side alarm resolves when the assessment has no low-side alarm and
//   latest.sgv >= thresholds.low + hysteresis; a high-side alarm when there is no high-side
//   alarm and latest.sgv <= thresholds.high - hysteresis (thresholds as in force now). A data
//   alarm resolves when the assessment has no data alarm. Resolving drops the alarm
//   (alarm_resolved) and, with notify_resolved, sends one SMS to every number in `notified`
//   (also when snoozed), subject to max_sms_per_hour. A failed poll resolves nothing.
//  Failure streak. A PatientAssessed with poll_error sets failing_since = now when unset;
//   without poll_error it clears it.
//  Steps (SPEC §4.1). After every event, for every active alarm not snoozed, at most one step
//   runs per event: step next_step of the current run runs when now >= chain_start + after, or
//   when next_step > 0 and the previous step of this run placed at least one call and every
//   call it placed is final and none acknowledged. Running a step: calls to each `call` target
//   in order ("patient", "contacts" = every contact in order, or a contact name), then SMS to
//   each `sms` target; numbers are deduplicated within a step per channel; every number reached
//   goes into `notified`. When every step of the run has run, the chain restarts (run + 1,
//   chain_start = now, chain_restarted) once now >= last_step_at + escalation.repeat, and its
//   step 0 may run in the same event.
//  Call limits (SPEC §4.6), per number across all alarms: a call is held back when the number
//   was called less than min_call_gap ago, or was called max_calls_per_hour times in the last
//   hour; a held-back call is sent as an SMS with the same text (call_held_back, warn) and
//   counts toward max_sms_per_hour. An SMS over max_sms_per_hour is not sent (sms_suppressed,
//   error). Entries older than one hour are pruned from NumberUsage.
//  Calls (SPEC §4.2). CallPlaced sets call_id/provider, progress ringing. CallUpdate moves a call
//   that is not final; updates for final calls and repeats of the same progress change nothing.
//   `machine` and the ended values are final; `completed` is final. With ack: answer, `human`
//   acknowledges, and `completed` after `answered` (never `machine`) acknowledges. With ack:
//   keypress only keypress '1' acknowledges. CallNotPlaced makes the call failed (error level
//   journal). A call not final k_call_outcome_timeout after placed_at becomes timeout.
//  Matching. A call is found by call_key; when the event also carries a call_id and the call has
//   one, they must be equal. Final calls are dropped k_call_memory after they ended.
//  Keypress. '1': acknowledges (if not already snoozed: snoozed_until = now + snooze,
//   acknowledged_by = the call's label; acknowledged); reply acknowledged. '2': once per call,
//   runs the next step of the run now (the last step again when every step has run), even when
//   snoozed; reply escalated. Other digits: reply repeat_prompt with the alarm message. "": reply
//   no_input. A call of an alarm that was replaced or resolved: reply unknown_call.
//  Snooze (SPEC §4.3, §4.12). Acknowledging snoozes until acknowledged_at + snooze_for(the kind
//   that holds); when the kind changes while snoozed the end follows it (improving lengthens
//   the quiet, a relapse shortens it). Once
//   now >= snoozed_until and the alarm still holds, snooze ends (snooze_ended), acknowledged_by
//   clears and the chain restarts (run + 1, chain_start = now).
//  Facts (SPEC §4.8). Every PatientAssessed updates PatientState::facts (update_facts); actions
//   carry a Message (kind, purpose), never words: the caller renders them when it sends them.
//  Data alarms (SPEC §4.12). A data alarm is replaced only when it worsens from warning to
//   urgent; other changes of kind keep its chain and snooze.
//  Pause (SPEC §4.9). A glucose alarm runs no step, repeat or snooze end while glucose_paused();
//   it still holds. Messages of a data alarm name the
//   glucose alarm that holds (Message::paused). Keypress '2' on a paused glucose alarm's call
//   runs the data alarm's next step instead (none without a data alarm).
//  Band (SPEC §4.5). A fresh assessment without a glucose alarm of the active alarm's side that
//   does not resolve it sets in_band; one that raises that side again clears it. While in_band
//   the alarm behaves as paused.
//  Data return (SPEC §4.10). A PatientAssessed whose fresh reading resolves the data alarm,
//   while the same glucose alarm still holds, ends that alarm's snooze (snooze_ended) and
//   restarts its chain from step 0 (chain_restarted, reason data_returned) in the same event.
//  Batches (SPEC §4.11). Assessed applies every PatientAssessed first (data class, then
//   glucose class, per patient), then the time-based rules once.
//
// Deterministic: the same (config, state, event, now) gives the same result. Never throws.
Transition step(const Config& config, State state, const Event& event, TimePoint now);

// The patients of `config` by name, with their place in config order: built once per config (O(N))
// so that no event has to (SPEC §7: a tick's work grows linearly with the patients). `config`
// must outlive it and not change.
class PatientIndex {
 public:
  static constexpr std::size_t npos = static_cast<std::size_t>(-1);
  explicit PatientIndex(const Config& config);
  const Patient* find(std::string_view name) const;  // nullptr when no such patient
  std::size_t position(std::string_view name) const;  // index in config.patients, or npos
 private:
  std::unordered_map<std::string_view, std::pair<const Patient*, std::size_t>> by_name_;
};

// What step_in_place() did.
struct Stepped {
  std::vector<Action> actions;
  std::optional<KeypressReply> reply;
  std::optional<CommandOutcome> command;
  bool changed = false;  // the state is not what it was (so it needs saving)
  // Every change is to the reading facts (PatientState::facts: the newest reading, its forecast,
  // the cadence) of patients with no alarm active: no alarm, step, acknowledgement, usage or id
  // changed, and nothing was decided. False when nothing changed.
  bool facts_only = false;
};

// step() on `state` in place, for the engine (issue 8, SPEC §7): the same rules, actions, reply
// and state as step() gives, except that patients no longer in the config are dropped, and old
// usage pruned, only by the events that reach every patient (Tick, ClockJumped, a full
// Assessed), not by every event. Nothing is copied but what the event touches: a partial
// Assessed costs its own patients (and `changed` compares only them), a call, keypress, SMS or
// shell command event counts as a change unless it only journals unknown_call /
// command_ignored, and Tick and ClockJumped cost the whole state once. `index` is of `config`.
// Never throws (but std::bad_alloc).
Stepped step_in_place(const Config& config, const PatientIndex& index, State& state,
                      const Event& event, TimePoint now);

// The earliest time at which a Tick would change something: a step due by time, a repeat, a
// snooze end, a call reaching k_call_outcome_timeout. nullopt when nothing is pending. The run
// loop wakes at this time between polls, so steps run on time whatever poll.interval is. A
// glucose alarm that is paused at `now` (SPEC §4.9), or would be by the time a step of it is
// due, contributes only its calls' timeouts: fresh data (an assessment) resume it.
std::optional<TimePoint> next_due(const Config& config, const State& state, TimePoint now);
// The same, with the PatientIndex of the config (what the engine keeps): O(patients in `state`)
// with a lookup only for those with an alarm active.
std::optional<TimePoint> next_due(const PatientIndex& index, const State& state, TimePoint now);
// The same, looking only at the patients named in `alarmed`: the caller keeps the names of every
// patient with an alarm active (has_alarm), since no other patient has anything due. O(|alarmed|
// log patients): the run loop asks this at every pass, whatever the number of patients.
std::optional<TimePoint> next_due(const PatientIndex& index, const State& state,
                                  const std::set<std::string>& alarmed, TimePoint now);

// The calls of `state` that were decided (progress placing) but never confirmed by a provider (no
// call_id), as the PlaceCall that decided them (same key, number, message and gather), in config
// order. After a restart these are the calls that may or may not have gone out (SPEC §6): the
// app asks the providers and re-dispatches only those that do not exist.
std::vector<PlaceCall> undispatched_calls(const Config& config, const State& state);

// The SMS of `state` that were decided but whose result never came back (State::sms_in_flight),
// as the SendSms that decided them, oldest first. After a restart the app sends them again.
std::vector<SendSms> undispatched_sms(const State& state);

// The quiet time after acknowledging an alarm of `kind` (SPEC §2 `snooze`, §4.12).
Duration snooze_for(const AlarmSettings& settings, AlarmKind kind);

// The last instant at which the newest reading in `patient.facts` is fresh (its date + the stale
// warn threshold in force for the sensor's cadence); nullopt without a reading.
std::optional<TimePoint> readings_fresh_until(const PatientState& patient,
                                              const AlarmSettings& settings);

// SPEC §4.9: true when the patient's glucose alarm must not call or text at `now`: a data alarm
// is active, or there is no fresh reading (now > readings_fresh_until).
bool glucose_paused(const PatientState& patient, const AlarmSettings& settings, TimePoint now);

}  // namespace scout::core
