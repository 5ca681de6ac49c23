// Specification of scout/core/alarm.hpp: the alarm state machine (SPEC §4), driven by a fake
// clock. Every scenario starts at k_t0 with the config from make_config():
//   Alice +15550000001, contacts Bob +15550000002 and Carol +15550000003;
//   urgent chain: 0s call patient; 5m call contacts + sms contacts.
//   warning chain: 0s call patient; 15m sms contacts.  repeat 15m, snooze 30m,
//   min_call_gap 2m, max_calls_per_hour 10, max_sms_per_hour 20, ack keypress, hysteresis 5,
//   default thresholds (55 / 70 / 250 / 300 mg/dL), stale warn 15m / urgent 30m.
// Assessments are built directly (reading() mimics evaluate() for the default thresholds).

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "scout/core/alarm.hpp"
#include "scout/core/message.hpp"
#include "support/entries.hpp"

using namespace std::chrono_literals;
using scout::core::AckMode;
using scout::core::Action;
using scout::core::ActiveAlarm;
using scout::core::Alarm;
using scout::core::AlarmKind;
using scout::core::Assessment;
using scout::core::CallNotPlaced;
using scout::core::CallPlaced;
using scout::core::CallProgress;
using scout::core::CallRecord;
using scout::core::CallUpdate;
using scout::core::Config;
using scout::core::Duration;
using scout::core::Entry;
using scout::core::Error;
using scout::core::ErrorKind;
using scout::core::EscalationStep;
using scout::core::Event;
using scout::core::GlucoseUnit;
using scout::core::JournalEntry;
using scout::core::Keypress;
using scout::core::KeypressReply;
using scout::core::Patient;
using scout::core::PatientAssessed;
using scout::core::PatientState;
using scout::core::PlaceCall;
using scout::core::SendSms;
using scout::core::Severity;
using scout::core::SmsResult;
using scout::core::State;
using scout::core::Thresholds;
using scout::core::Tick;
using scout::core::TimePoint;
using scout::test::k_t0;

namespace {

const std::string k_alice = "+15550000001";
const std::string k_bob = "+15550000002";
const std::string k_carol = "+15550000003";
const std::string k_dave = "+15550000004";

const Alarm k_urgent_low{AlarmKind::urgent_low, Severity::urgent};
const Alarm k_urgent_low_soon{AlarmKind::urgent_low_soon, Severity::urgent};
const Alarm k_low{AlarmKind::low, Severity::warning};
const Alarm k_urgent_high{AlarmKind::urgent_high, Severity::urgent};
const Alarm k_high{AlarmKind::high, Severity::warning};
const Alarm k_stale_warning{AlarmKind::stale, Severity::warning};
const Alarm k_stale_urgent{AlarmKind::stale, Severity::urgent};
const Alarm k_unreachable{AlarmKind::unreachable, Severity::warning};
const Alarm k_sensor_error{AlarmKind::sensor_error, Severity::warning};

EscalationStep step_of(Duration after, std::vector<std::string> call,
                       std::vector<std::string> sms = {}) {
  EscalationStep s;
  s.after = after;
  s.call = std::move(call);
  s.sms = std::move(sms);
  return s;
}

Patient make_alice() {
  Patient p;
  p.name = "Alice";
  p.phone = k_alice;
  p.contacts = {{"Bob", k_bob}, {"Carol", k_carol}};
  auto& s = p.settings;
  s.escalation.urgent = {step_of(0s, {"patient"}), step_of(5min, {"contacts"}, {"contacts"})};
  s.escalation.warning = {step_of(0s, {"patient"}), step_of(15min, {}, {"contacts"})};
  s.escalation.repeat = 15min;
  s.snooze = scout::core::SnoozeSettings::all(30min);
  s.min_call_gap = 2min;
  s.max_calls_per_hour = 10;
  s.max_sms_per_hour = 20;
  s.ack = AckMode::keypress;
  s.notify_resolved = true;
  s.hysteresis = 5;
  return p;
}

Config make_config() {
  Config c;
  c.patients = {make_alice()};
  return c;
}

// A successful poll whose newest usable reading is `sgv`, `age` old, judged like evaluate()
// with `th` and the default stale settings (prediction off).
Assessment reading(int sgv, Duration age = 1min, Thresholds th = Thresholds{}) {
  Assessment a;
  a.thresholds = th;
  a.latest = Entry{k_t0 - age, sgv, "Flat"};
  a.age = age;
  if (age > 30min) {
    a.data = k_stale_urgent;
  } else if (age > 15min) {
    a.data = k_stale_warning;
  } else if (sgv < th.urgent_low) {
    a.glucose = k_urgent_low;
  } else if (sgv < th.low) {
    a.glucose = k_low;
  } else if (sgv > th.urgent_high) {
    a.glucose = k_urgent_high;
  } else if (sgv > th.high) {
    a.glucose = k_high;
  }
  return a;
}

Assessment failed_poll() {
  Assessment a;
  a.poll_error = Error{ErrorKind::timeout, "alice.example.org: timed out after 10s"};
  return a;
}

// An assessment that holds exactly `alarm` (glucose or data class), with a plausible reading.
Assessment holding(const Alarm& alarm) {
  switch (alarm.kind) {
    case AlarmKind::urgent_low:
      return reading(50);
    case AlarmKind::urgent_low_soon: {
      auto a = reading(72);
      a.glucose = k_urgent_low_soon;
      return a;
    }
    case AlarmKind::low:
      return reading(65);
    case AlarmKind::urgent_high:
      return reading(320);
    case AlarmKind::high:
      return reading(260);
    case AlarmKind::stale:
      return reading(110, alarm.severity == Severity::urgent ? 40min : 20min);
    case AlarmKind::unreachable: {
      auto a = failed_poll();
      a.data = k_unreachable;
      return a;
    }
    case AlarmKind::sensor_error: {
      auto a = reading(110, 20min);
      a.data = k_sensor_error;
      a.status_code = 5;
      return a;
    }
  }
  return reading(100);
}

template <typename T>
std::vector<T> only(const std::vector<Action>& actions) {
  std::vector<T> out;
  for (const auto& a : actions) {
    if (const auto* t = std::get_if<T>(&a)) out.push_back(*t);
  }
  return out;
}

std::vector<JournalEntry> journal_of(const std::vector<Action>& actions, const std::string& type) {
  std::vector<JournalEntry> out;
  for (const auto& e : only<JournalEntry>(actions)) {
    if (e.type == type) out.push_back(e);
  }
  return out;
}

std::string field(const JournalEntry& e, const std::string& key) {
  for (const auto& [k, v] : e.fields) {
    if (k == key) return v;
  }
  return "<missing " + key + ">";
}

std::vector<std::string> numbers_called(const std::vector<Action>& actions) {
  std::vector<std::string> out;
  for (const auto& c : only<PlaceCall>(actions)) out.push_back(c.to);
  return out;
}

std::vector<std::string> numbers_texted(const std::vector<Action>& actions) {
  std::vector<std::string> out;
  for (const auto& s : only<SendSms>(actions)) out.push_back(s.to);
  return out;
}

// The fake world: a config, the state as the app would persist it, and a clock we advance.
struct Sim {
  Config config = make_config();
  State state;
  TimePoint now = k_t0;
  std::vector<Action> actions;  // of the last event
  std::optional<KeypressReply> reply;
  std::optional<scout::core::CommandOutcome> command;

  void apply(const Event& event) {
    auto t = scout::core::step(config, state, event, now);
    state = std::move(t.state);
    actions = std::move(t.actions);
    reply = std::move(t.reply);
    command = std::move(t.command);
  }
  // A request from the shell (SPEC §4.13).
  void shell(scout::core::ShellCommand::Kind kind, const std::string& patient = "Alice",
             Duration duration = 0ms, const std::string& only = "") {
    scout::core::ShellCommand c;
    c.kind = kind;
    c.id = "r1";
    c.patient = patient;
    c.by = "mum";
    c.duration = duration;
    c.only = only;
    apply(c);
  }
  void at(Duration since_t0) { now = k_t0 + since_t0; }
  // For scenarios about escalation timing that tick for longer than stale.warn without polling:
  // the patient's readings count as fresh for hours (SPEC §4.9 pauses a glucose alarm otherwise).
  void keep_data_fresh() {
    for (auto& p : config.patients) p.settings.stale = scout::core::StaleSettings{6h, 12h};
  }
  void tick(Duration since_t0) {
    at(since_t0);
    apply(Tick{});
  }
  const Patient& patient(const std::string& name) const {
    for (const auto& p : config.patients) {
      if (p.name == name) return p;
    }
    FAIL("no patient " << name);
    return config.patients.front();
  }
  // Applies the assessment as of now: its reading is dated `age` before the sim's clock.
  void assess(const Assessment& a, const std::string& name = "Alice") {
    PatientAssessed e{name, a};
    if (e.assessment.latest && e.assessment.age) {
      e.assessment.latest->date = now - *e.assessment.age;
    }
    apply(e);
  }
  // The words of `m` as the app would render them now (core::render_message, since "02:10").
  std::string say(const scout::core::Message& m, const std::string& name = "Alice") const {
    return scout::core::render_message(name, m, ps(name).facts, patient(name).settings,
                                       config.units, now, "02:10");
  }
  std::string text(const SendSms& sms) const { return say(sms.message, sms.patient); }
  std::string text(const PlaceCall& call) const { return say(call.message, call.patient); }
  std::string glucose_text(const std::string& name = "Alice") const {
    scout::core::Message m;
    m.alarm = glucose(name).alarm;
    return say(m, name);
  }
  std::string data_text(const std::string& name = "Alice") const {
    scout::core::Message m;
    m.alarm = data(name).alarm;
    if (ps(name).glucose) m.paused = ps(name).glucose->alarm;
    return say(m, name);
  }
  void poll(int sgv, Duration age = 1min) { assess(reading(sgv, age)); }
  void update(const std::string& key, CallProgress progress) {
    apply(CallUpdate{key, "", progress, ""});
  }
  void press(const std::string& key, const std::string& digits) {
    apply(Keypress{key, "", digits});
  }

  bool has(const std::string& name = "Alice") const { return state.patients.count(name) != 0; }
  const PatientState& ps(const std::string& name = "Alice") const {
    REQUIRE(has(name));
    return state.patients.at(name);
  }
  const ActiveAlarm& glucose(const std::string& name = "Alice") const {
    REQUIRE(ps(name).glucose);
    return *ps(name).glucose;
  }
  const ActiveAlarm& data(const std::string& name = "Alice") const {
    REQUIRE(ps(name).data);
    return *ps(name).data;
  }
  // The key of the newest call to `number` among the active alarms.
  std::string call_to(const std::string& number) const {
    std::string key;
    for (const auto& [name, p] : state.patients) {
      for (const auto* slot : {&p.glucose, &p.data}) {
        if (!*slot) continue;
        for (const auto& c : (*slot)->calls) {
          if (c.to == number) key = c.key;
        }
      }
    }
    REQUIRE(!key.empty());
    return key;
  }
  const CallRecord& call(const std::string& key) const {
    for (const auto& [name, p] : state.patients) {
      for (const auto* slot : {&p.glucose, &p.data}) {
        if (!*slot) continue;
        for (const auto& c : (*slot)->calls) {
          if (c.key == key) return c;
        }
      }
    }
    FAIL("no call " << key);
    throw 0;
  }
  std::vector<std::string> called() const { return numbers_called(actions); }
  std::vector<std::string> texted() const { return numbers_texted(actions); }
  std::vector<JournalEntry> journal(const std::string& type) const {
    return journal_of(actions, type);
  }
};

using Numbers = std::vector<std::string>;

}  // namespace

namespace Catch {
template <>
struct StringMaker<std::optional<TimePoint>> {
  static std::string convert(const std::optional<TimePoint>& t) {
    return t ? StringMaker<TimePoint>::convert(*t) : std::string("none");
  }
};
}  // namespace Catch

// ---------------------------------------------------------------------------------------------
// Names

TEST_CASE("call progress names round-trip and six outcomes plus machine and completed are final",
          "[alarm]") {
  const auto [progress, name, ends] = GENERATE(table<CallProgress, std::string, bool>({
      {CallProgress::placing, "placing", false},
      {CallProgress::ringing, "ringing", false},
      {CallProgress::answered, "answered", false},
      {CallProgress::human, "human", false},
      {CallProgress::machine, "machine", true},
      {CallProgress::completed, "completed", true},
      {CallProgress::unanswered, "unanswered", true},
      {CallProgress::busy, "busy", true},
      {CallProgress::timeout, "timeout", true},
      {CallProgress::rejected, "rejected", true},
      {CallProgress::failed, "failed", true},
      {CallProgress::cancelled, "cancelled", true},
  }));
  CHECK(std::string(scout::core::to_string(progress)) == name);
  CHECK(scout::core::call_progress_from_string(name) == progress);
  CHECK(scout::core::is_final(progress) == ends);
}

TEST_CASE("call progress parsing refuses other names", "[alarm]") {
  const auto name = GENERATE(as<std::string>{}, "", "Ringing", "no-answer", "invalid", "ringing ");
  CHECK_FALSE(scout::core::call_progress_from_string(name).has_value());
}

// ---------------------------------------------------------------------------------------------
// Raising

TEST_CASE("a glucose alarm is raised and step 0 of its chain calls the patient", "[alarm]") {
  Sim sim;
  sim.poll(50);

  const auto& g = sim.glucose();
  CHECK(g.id == "a1");
  CHECK(g.alarm == k_urgent_low);
  CHECK(g.peak == k_urgent_low);
  CHECK(g.raised_at == k_t0);
  CHECK(g.run == 0);
  CHECK(g.chain_start == k_t0);
  CHECK(g.next_step == 1);
  CHECK(g.last_step_at == std::optional<TimePoint>{k_t0});
  CHECK(sim.glucose_text() == "Alice: URGENT LOW, 50 mg/dL, steady, 1 min ago.");
  CHECK(g.notified == Numbers{k_alice});
  CHECK_FALSE(sim.ps().data);

  const auto calls = only<PlaceCall>(sim.actions);
  REQUIRE(calls.size() == 1);
  CHECK(calls[0] == PlaceCall{"c2", "Alice", "a1", k_alice, "patient", scout::core::Message{scout::core::MessagePurpose::alarm, k_urgent_low, std::nullopt, ""}, true});
  CHECK(only<SendSms>(sim.actions).empty());

  REQUIRE(g.calls.size() == 1);
  CHECK(g.calls[0].key == "c2");
  CHECK(g.calls[0].to == k_alice);
  CHECK(g.calls[0].to_label == "patient");
  CHECK(g.calls[0].progress == CallProgress::placing);
  CHECK(g.calls[0].placed_at == k_t0);
  CHECK(g.calls[0].run == 0);
  CHECK(g.calls[0].step == 0);
  CHECK(sim.state.numbers.at(k_alice).calls == std::vector<TimePoint>{k_t0});
  CHECK(sim.state.next_id == 3);

  const auto raised = sim.journal("alarm_raised");
  REQUIRE(raised.size() == 1);
  CHECK(raised[0].patient == "Alice");
  CHECK(raised[0].alarm_id == "a1");
  CHECK(raised[0].at == k_t0);
  CHECK(field(raised[0], "kind") == "urgent_low");
  CHECK(field(raised[0], "severity") == "urgent");
  const auto step = sim.journal("step");
  REQUIRE(step.size() == 1);
  CHECK(field(step[0], "run") == "0");
  CHECK(field(step[0], "step") == "0");
  const auto call = sim.journal("call");
  REQUIRE(call.size() == 1);
  CHECK(field(call[0], "to") == "\u20260001");
  CHECK(field(call[0], "to_label") == "patient");
  CHECK(field(call[0], "call") == "c2");
  for (const auto& e : only<JournalEntry>(sim.actions)) {
    for (const auto& [k, v] : e.fields) CHECK(v.find(k_alice) == std::string::npos);
  }
}

TEST_CASE("with ack: answer calls do not gather a key", "[alarm]") {
  Sim sim;
  sim.config.patients[0].settings.ack = AckMode::answer;
  sim.poll(50);
  const auto calls = only<PlaceCall>(sim.actions);
  REQUIRE(calls.size() == 1);
  CHECK_FALSE(calls[0].gather);
}

TEST_CASE("a data alarm is raised and runs the chain of its severity", "[alarm]") {
  Sim sim;
  sim.poll(110, 20min);  // stale, warning
  CHECK_FALSE(sim.ps().glucose);
  const auto& d = sim.data();
  CHECK(d.alarm == k_stale_warning);
  CHECK(sim.data_text() == "Alice: NO DATA, no new glucose data for 20 min, last value 110 mg/dL.");
  CHECK(sim.called() == Numbers{k_alice});
  // The warning chain's step 1 (SMS only, not the urgent chain's calls) runs once the
  // patient's call has timed out unanswered.
  sim.tick(scout::core::k_call_outcome_timeout - 1ms);
  CHECK(sim.actions.empty());
  sim.tick(scout::core::k_call_outcome_timeout);
  CHECK(sim.called().empty());
  CHECK(sim.texted() == Numbers{k_bob, k_carol});
}

TEST_CASE("a patient has at most one glucose alarm and one data alarm", "[alarm]") {
  Sim sim;
  auto a = reading(65);
  a.data = k_sensor_error;
  sim.assess(a);
  const auto g = sim.glucose();
  const auto d = sim.data();
  CHECK(g.alarm == k_low);
  CHECK(d.alarm == k_sensor_error);
  CHECK(g.id != d.id);
  // At most one chain runs (SPEC §4.9): the data alarm speaks for the patient, the glucose
  // alarm holds and waits for fresh data.
  CHECK(sim.called() == Numbers{k_alice});
  CHECK(only<SendSms>(sim.actions).empty());
  CHECK(sim.data().calls.size() == 1);
  CHECK(sim.glucose().calls.empty());
  CHECK(sim.glucose().notified.empty());
  CHECK(sim.data_text() ==
        "Alice: SENSOR ERROR, the sensor reports an error since 02:10; the last value, 65 mg/dL "
        "1 min ago, was a LOW.");

  // A second, lower alarm of each class does not add alarms.
  sim.at(1min);
  auto b = reading(60);
  b.data = k_sensor_error;
  sim.assess(b);
  CHECK(sim.glucose().id == g.id);
  CHECK(sim.data().id == d.id);
  CHECK(sim.journal("alarm_raised").empty());
}

TEST_CASE("events for an unknown patient change nothing but the journal", "[alarm]") {
  Sim sim;
  sim.assess(reading(50), "Alice");
  const State before = sim.state;
  sim.apply(PatientAssessed{"Mallory", reading(40)});
  CHECK(sim.state == before);
  CHECK(sim.journal("unknown_call").size() == 1);
  CHECK(only<PlaceCall>(sim.actions).empty());
}

// ---------------------------------------------------------------------------------------------
// Episodes

TEST_CASE(
    "a more severe alarm replaces the active one: new id, new chain, no snooze, same "
    "notified list",
    "[alarm]") {
  Sim sim;
  sim.keep_data_fresh();
  sim.poll(65);  // low: warning chain
  const auto low_id = sim.glucose().id;
  const auto first_call = sim.call_to(k_alice);
  sim.tick(15min);  // step 1: SMS to contacts
  CHECK(sim.glucose().notified == Numbers{k_alice, k_bob, k_carol});
  sim.at(16min);
  sim.press(first_call, "1");
  REQUIRE(sim.glucose().snoozed_until);

  sim.at(17min);
  sim.poll(50);
  const auto& g = sim.glucose();
  CHECK(g.id != low_id);
  CHECK(g.alarm == k_urgent_low);
  CHECK(g.peak == k_urgent_low);
  CHECK_FALSE(g.snoozed_until);
  CHECK(g.acknowledged_by.empty());
  CHECK(g.notified == Numbers{k_alice, k_bob, k_carol});
  CHECK(g.run == 0);
  CHECK(g.chain_start == k_t0 + 17min);
  CHECK(g.raised_at == k_t0 + 17min);
  CHECK(g.next_step == 1);
  REQUIRE(g.calls.size() == 1);  // the old alarm's calls stay with the old alarm
  const auto replaced = sim.journal("alarm_replaced");
  REQUIRE(replaced.size() == 1);
  CHECK(replaced[0].alarm_id == g.id);
  CHECK(field(replaced[0], "replaces") == low_id);
  CHECK(sim.called() == Numbers{k_alice});

  // A call of the replaced alarm is no longer part of an active alarm.
  sim.press(first_call, "1");
  REQUIRE(sim.reply);
  CHECK(sim.reply->kind == KeypressReply::Kind::unknown_call);
  CHECK_FALSE(sim.glucose().snoozed_until);
}

TEST_CASE("a keypress on a call of a replaced alarm does not say that the alarm is over",
          "[alarm]") {
  // 3 a.m.: the LOW call rings, the next poll is URGENT LOW (replaced; the patient's new call is
  // held back by min_call_gap), then the patient answers the LOW call and presses 1. They must
  // not be told that all is well.
  Sim sim;
  sim.poll(65);
  const auto low_call = sim.call_to(k_alice);
  sim.at(1min);
  sim.poll(50);
  REQUIRE(sim.glucose().alarm == k_urgent_low);
  CHECK(sim.journal("call_held_back").size() == 1);
  sim.at(90s);
  sim.press(low_call, "1");
  REQUIRE(sim.reply);
  CHECK(sim.reply->kind == KeypressReply::Kind::unknown_call);
  CHECK(sim.reply->text.find("no longer active") == std::string::npos);
  CHECK(sim.reply->text.find("call again") != std::string::npos);
  CHECK_FALSE(sim.glucose().snoozed_until);
}

TEST_CASE("replacement follows the peak of the episode, urgent before warning, then kind order",
          "[alarm]") {
  const auto [first, second, replaced] = GENERATE(table<Alarm, Alarm, bool>({
      {k_low, k_urgent_low, true},
      {k_low, k_urgent_low_soon, true},
      {k_urgent_low_soon, k_urgent_low, true},
      {k_urgent_low, k_urgent_low_soon, false},
      {k_urgent_low, k_low, false},
      {k_urgent_low_soon, k_low, false},
      {k_high, k_urgent_high, true},
      {k_urgent_high, k_high, false},
      {k_stale_warning, k_stale_urgent, true},
      {k_stale_urgent, k_stale_warning, false},
      {k_unreachable, k_stale_warning, false},  // SPEC §4.12: only warning -> urgent
      {k_stale_warning, k_unreachable, false},
      {k_unreachable, k_sensor_error, false},
      {k_sensor_error, k_stale_urgent, true},
      {k_unreachable, k_stale_urgent, true},
      {k_stale_urgent, k_sensor_error, false},
  }));
  CAPTURE(first, second);
  Sim sim;
  const bool glucose = first.kind <= AlarmKind::high;
  sim.assess(holding(first));
  const auto& before = glucose ? sim.glucose() : sim.data();
  const std::string id = before.id;
  sim.at(3min);
  sim.assess(holding(second));
  const auto& after = glucose ? sim.glucose() : sim.data();
  CHECK(after.alarm == second);
  if (replaced) {
    CHECK(after.id != id);
    CHECK(after.peak == second);
    CHECK(sim.journal("alarm_replaced").size() == 1);
    CHECK(after.chain_start == k_t0 + 3min);
  } else {
    CHECK(after.id == id);
    CHECK(after.peak == first);
    CHECK(sim.journal("alarm_replaced").empty());
    CHECK(sim.journal("alarm_updated").size() == 1);
    CHECK(after.chain_start == k_t0);
  }
}

TEST_CASE("a lesser alarm of the same side keeps the chain, going back up is the same episode",
          "[alarm]") {
  Sim sim;
  sim.poll(50);
  const auto id = sim.glucose().id;

  sim.at(1min);
  sim.poll(65);  // low
  CHECK(sim.glucose().id == id);
  CHECK(sim.glucose().alarm == k_low);
  CHECK(sim.glucose().peak == k_urgent_low);
  CHECK(sim.glucose_text() == "Alice: LOW, 65 mg/dL, steady, 1 min ago.");
  const auto updated = sim.journal("alarm_updated");
  REQUIRE(updated.size() == 1);
  CHECK(field(updated[0], "kind") == "low");
  CHECK(field(updated[0], "from") == "urgent_low");
  CHECK(only<PlaceCall>(sim.actions).empty());

  // The urgent chain (picked by the peak) goes on: step 1 at 5m.
  sim.tick(5min);
  CHECK(sim.called() == Numbers{k_bob, k_carol});

  sim.at(6min);
  sim.poll(50);
  CHECK(sim.glucose().id == id);
  CHECK(sim.glucose().alarm == k_urgent_low);
  CHECK(sim.journal("alarm_replaced").empty());
  CHECK(sim.journal("alarm_raised").empty());
  CHECK(only<PlaceCall>(sim.actions).empty());
}

TEST_CASE("a glucose alarm of the other side resolves the active one and raises a new one",
          "[alarm]") {
  Sim sim;
  sim.poll(65);
  const auto low_id = sim.glucose().id;
  sim.at(3min);
  sim.poll(260);
  const auto& g = sim.glucose();
  CHECK(g.id != low_id);
  CHECK(g.alarm == k_high);
  CHECK(g.notified == Numbers{k_alice});
  const auto resolved = sim.journal("alarm_resolved");
  REQUIRE(resolved.size() == 1);
  CHECK(resolved[0].alarm_id == low_id);
  CHECK(sim.journal("alarm_raised").size() == 1);
  const auto sms = only<SendSms>(sim.actions);
  REQUIRE(sms.size() == 1);
  CHECK(sms[0].to == k_alice);
  CHECK(sms[0].alarm_id == low_id);
  CHECK(sim.text(sms[0]) == "Alice: LOW is over, now 260 mg/dL.");
  CHECK(sim.called() == Numbers{k_alice});
}

// ---------------------------------------------------------------------------------------------
// Resolving

TEST_CASE("a low alarm resolves only at low + hysteresis", "[alarm]") {
  const auto [sgv, resolves] = GENERATE(table<int, bool>({
      {69, false},
      {70, false},
      {74, false},
      {75, true},
      {140, true},
  }));
  CAPTURE(sgv);
  Sim sim;
  sim.poll(65);
  sim.at(5min);
  sim.poll(sgv);
  CHECK(sim.ps().glucose.has_value() == !resolves);
  CHECK(sim.journal("alarm_resolved").size() == (resolves ? 1u : 0u));
}

TEST_CASE("a high alarm resolves only at high - hysteresis", "[alarm]") {
  const auto [sgv, resolves] = GENERATE(table<int, bool>({
      {251, false},
      {250, false},
      {246, false},
      {245, true},
      {100, true},
  }));
  CAPTURE(sgv);
  Sim sim;
  sim.poll(260);
  sim.at(5min);
  sim.poll(sgv);
  CHECK(sim.ps().glucose.has_value() == !resolves);
}

TEST_CASE("resolving uses the thresholds in force now", "[alarm]") {
  const auto [sgv, resolves] = GENERATE(table<int, bool>({{84, false}, {85, true}}));
  Sim sim;
  sim.poll(65);
  sim.at(5min);
  Thresholds night;
  night.low = 80;  // a schedule raised the low threshold
  auto a = reading(sgv, 1min, Thresholds{});
  a.thresholds = night;
  sim.assess(a);
  CHECK(sim.ps().glucose.has_value() == !resolves);
}

TEST_CASE("a stale reading resolves nothing, a reading exactly stale.warn old is fresh",
          "[alarm]") {
  Sim sim;
  sim.poll(65);
  const auto id = sim.glucose().id;
  sim.at(1min);
  sim.poll(100, 15min + 1ms);  // stale: raises NO DATA, keeps the low
  CHECK(sim.glucose().id == id);
  CHECK(sim.data().alarm == k_stale_warning);
  sim.at(2min);
  sim.poll(100, 15min);
  CHECK_FALSE(sim.ps().glucose);
  CHECK_FALSE(sim.ps().data);
  CHECK(sim.journal("alarm_resolved").size() == 2);
}

TEST_CASE("a failed poll resolves nothing and starts the failure streak", "[alarm]") {
  Sim sim;
  sim.poll(65);
  const auto id = sim.glucose().id;
  CHECK_FALSE(sim.ps().failing_since);

  sim.at(1min);
  sim.assess(failed_poll());
  CHECK(sim.glucose().id == id);
  CHECK(sim.ps().failing_since == std::optional<TimePoint>{k_t0 + 1min});

  sim.at(2min);
  sim.assess(failed_poll());
  CHECK(sim.ps().failing_since == std::optional<TimePoint>{k_t0 + 1min});
  CHECK(sim.journal("alarm_resolved").empty());

  sim.at(3min);
  sim.assess(holding(k_unreachable));  // evaluate() says unreachable
  const auto data_id = sim.data().id;
  CHECK(sim.data().alarm == k_unreachable);
  CHECK(sim.ps().failing_since == std::optional<TimePoint>{k_t0 + 1min});

  sim.at(4min);
  sim.poll(100);
  CHECK_FALSE(sim.ps().failing_since);
  CHECK_FALSE(sim.ps().glucose);
  CHECK_FALSE(sim.ps().data);
  const auto sms = only<SendSms>(sim.actions);
  REQUIRE(sms.size() == 2);
  // The data class is settled first (SPEC §4.10), then the glucose class.
  CHECK(sms[0].alarm_id == data_id);
  CHECK(sim.text(sms[0]) == "Alice: NIGHTSCOUT UNREACHABLE is over, readings are arriving again.");
  CHECK(sms[1].alarm_id == id);
  CHECK(sim.text(sms[1]) == "Alice: LOW is over, now 100 mg/dL.");
}

TEST_CASE("a data alarm resolves on a successful poll with a fresh reading", "[alarm]") {
  Sim sim;
  sim.poll(110, 40min);
  REQUIRE(sim.data().alarm == k_stale_urgent);
  sim.at(1min);
  sim.assess(failed_poll());  // no data alarm in the assessment, but the poll failed
  CHECK(sim.ps().data);
  sim.at(2min);
  sim.poll(110, 2min);
  CHECK_FALSE(sim.ps().data);
  const auto sms = only<SendSms>(sim.actions);
  REQUIRE(sms.size() == 1);
  CHECK(sim.text(sms[0]) == "Alice: NO DATA is over, readings are arriving again.");
}

TEST_CASE(
    "the all-clear goes to everyone notified, also when snoozed, and only with "
    "notify_resolved",
    "[alarm]") {
  Sim sim;
  const bool notify = GENERATE(true, false);
  sim.config.patients[0].settings.notify_resolved = notify;
  sim.poll(50);
  sim.tick(5min);  // step 1: calls and texts Bob and Carol
  sim.at(6min);
  sim.press(sim.call_to(k_bob), "1");
  REQUIRE(sim.glucose().snoozed_until);
  REQUIRE(sim.glucose().acknowledged_by == "Bob");
  const auto id = sim.glucose().id;

  sim.at(10min);
  sim.poll(100);
  CHECK_FALSE(sim.ps().glucose);
  CHECK(sim.journal("alarm_resolved").size() == 1);
  const auto sms = only<SendSms>(sim.actions);
  if (notify) {
    REQUIRE(sms.size() == 3);
    CHECK(sim.texted() == Numbers{k_alice, k_bob, k_carol});
    CHECK(sms[0].to_label == "patient");
    CHECK(sms[1].to_label == "Bob");
    for (const auto& s : sms) {
      CHECK(s.alarm_id == id);
      CHECK(sim.text(s) == "Alice: URGENT LOW is over, now 100 mg/dL.");
    }
  } else {
    CHECK(sms.empty());
  }
  // A snooze of a resolved alarm ends with it: nothing at the old snooze end.
  sim.tick(40min);
  CHECK(sim.actions.empty());
}

// ---------------------------------------------------------------------------------------------
// Steps

TEST_CASE("a step runs at chain_start + after, not a millisecond before", "[alarm]") {
  Sim sim;
  sim.poll(50);
  sim.update(sim.call_to(k_alice), CallProgress::ringing);
  sim.tick(5min - 1ms);
  CHECK(sim.actions.empty());
  sim.tick(5min);
  CHECK(sim.called() == Numbers{k_bob, k_carol});
  CHECK(sim.texted() == Numbers{k_bob, k_carol});
  const auto sms = only<SendSms>(sim.actions);
  REQUIRE(sms.size() == 2);
  for (const auto& s : sms) {
    CHECK(sim.text(s) == sim.glucose_text() + " Not acknowledged yet.");
  }
  CHECK(sms[0].to_label == "Bob");
  const auto steps = sim.journal("step");
  REQUIRE(steps.size() == 1);
  CHECK(field(steps[0], "step") == "1");
  CHECK(field(steps[0], "reason") == "time");
  CHECK(sim.glucose().next_step == 2);
  CHECK(sim.glucose().notified == Numbers{k_alice, k_bob, k_carol});
  CHECK(sim.call(sim.call_to(k_bob)).step == 1);
}

TEST_CASE("every final outcome without an acknowledgement runs the next step at once", "[alarm]") {
  const auto outcome = GENERATE(CallProgress::unanswered, CallProgress::busy, CallProgress::timeout,
                                CallProgress::rejected, CallProgress::failed,
                                CallProgress::cancelled, CallProgress::machine);
  const auto ack = GENERATE(AckMode::keypress, AckMode::answer);
  CAPTURE(scout::core::to_string(outcome), scout::core::to_string(ack));
  Sim sim;
  sim.config.patients[0].settings.ack = ack;
  sim.poll(50);
  const auto key = sim.call_to(k_alice);
  sim.at(30s);
  sim.update(key, CallProgress::ringing);
  CHECK(sim.called().empty());
  sim.at(1min);
  sim.update(key, outcome);
  CHECK(sim.called() == Numbers{k_bob, k_carol});
  const auto steps = sim.journal("step");
  REQUIRE(steps.size() == 1);
  CHECK(field(steps[0], "reason") == "no_ack");
  CHECK_FALSE(sim.glucose().snoozed_until);
  CHECK(sim.call(key).ended_at == std::optional<TimePoint>{k_t0 + 1min});
}

TEST_CASE("an answered call that completes without a keypress escalates under ack: keypress",
          "[alarm]") {
  Sim sim;
  sim.poll(50);
  const auto key = sim.call_to(k_alice);
  sim.at(20s);
  sim.update(key, CallProgress::answered);
  sim.at(25s);
  sim.update(key, CallProgress::human);
  CHECK(sim.called().empty());
  sim.at(1min);
  sim.press(key, "");
  REQUIRE(sim.reply);
  CHECK(sim.reply->kind == KeypressReply::Kind::no_input);
  CHECK(sim.called().empty());
  sim.update(key, CallProgress::completed);
  CHECK(sim.called() == Numbers{k_bob, k_carol});
  CHECK_FALSE(sim.glucose().snoozed_until);
}

TEST_CASE("under ack: answer a human, or answered then completed, acknowledges", "[alarm]") {
  const auto via_human = GENERATE(true, false);
  Sim sim;
  sim.config.patients[0].settings.ack = AckMode::answer;
  sim.poll(50);
  const auto key = sim.call_to(k_alice);
  sim.at(20s);
  sim.update(key, via_human ? CallProgress::human : CallProgress::answered);
  if (!via_human) {
    CHECK_FALSE(sim.glucose().snoozed_until);
    sim.at(40s);
    sim.update(key, CallProgress::completed);
  }
  const auto& g = sim.glucose();
  CHECK(g.snoozed_until == std::optional<TimePoint>{sim.now + 30min});
  CHECK(g.acknowledged_by == "patient");
  CHECK(sim.call(key).acknowledged);
  CHECK(sim.journal("acknowledged").size() == 1);
  sim.at(1min);
  sim.update(key, CallProgress::completed);  // a final repeat, if any, changes nothing
  sim.tick(5min);
  CHECK(sim.called().empty());
}

TEST_CASE("under ack: answer a machine, or completed never seen answered, does not acknowledge",
          "[alarm]") {
  const auto path =
      GENERATE(as<std::vector<CallProgress>>{},
               std::vector<CallProgress>{CallProgress::answered, CallProgress::machine},
               std::vector<CallProgress>{CallProgress::completed});
  Sim sim;
  sim.config.patients[0].settings.ack = AckMode::answer;
  sim.poll(50);
  const auto key = sim.call_to(k_alice);
  sim.at(1min);
  for (const auto p : path) sim.update(key, p);
  CHECK_FALSE(sim.glucose().snoozed_until);
  CHECK_FALSE(sim.call(key).acknowledged);
  CHECK(sim.called() == Numbers{k_bob, k_carol});
}

TEST_CASE("a call that could not be placed counts as failed", "[alarm]") {
  Sim sim;
  sim.poll(50);
  const auto key = sim.call_to(k_alice);
  sim.at(10s);
  sim.apply(CallNotPlaced{key, "vonage: 401 Unauthorized; twilio: network error", ""});
  CHECK(sim.call(key).progress == CallProgress::failed);
  const auto j = sim.journal("call_not_placed");
  REQUIRE(j.size() == 1);
  CHECK(j[0].level == JournalEntry::Level::error);
  CHECK(field(j[0], "error") == "vonage: 401 Unauthorized; twilio: network error");
  CHECK(sim.called() == Numbers{k_bob, k_carol});
}

TEST_CASE("a step that placed no call does not escalate early", "[alarm]") {
  Sim sim;
  auto& chain = sim.config.patients[0].settings.escalation.urgent;
  SECTION("SMS only") {
    chain = {step_of(0s, {}, {"patient"}), step_of(5min, {"patient"})};
    sim.poll(50);
    const auto sms = only<SendSms>(sim.actions);
    REQUIRE(sms.size() == 1);
    CHECK(sim.text(sms[0]) == sim.glucose_text());  // step 0, run 0: no "Not acknowledged yet."
  }
  SECTION("every call held back") {
    sim.state.numbers[k_alice].calls = {k_t0 - 1min};
    sim.poll(50);
    CHECK(sim.called().empty());
    CHECK(sim.texted() == Numbers{k_alice});
  }
  sim.tick(1min);
  CHECK(sim.actions.empty());
  sim.tick(5min - 1ms);
  CHECK(sim.actions.empty());
  sim.tick(5min);
  CHECK(sim.journal("step").size() == 1);
}

TEST_CASE("early escalation waits for every call of the previous step", "[alarm]") {
  Sim sim;
  sim.config.patients[0].settings.escalation.urgent = {
      step_of(0s, {"patient"}), step_of(5min, {"contacts"}), step_of(20min, {"patient"}, {"Bob"})};
  sim.poll(50);
  sim.tick(5min);
  const auto bob = sim.call_to(k_bob);
  const auto carol = sim.call_to(k_carol);
  sim.at(6min);
  sim.update(bob, CallProgress::unanswered);
  CHECK(sim.journal("step").empty());
  sim.at(7min);
  sim.update(carol, CallProgress::busy);
  CHECK(sim.called() == Numbers{k_alice});
  CHECK(sim.texted() == Numbers{k_bob});
  CHECK(sim.glucose().next_step == 3);
}

TEST_CASE("early escalation looks only at the calls of the current run", "[alarm]") {
  Sim sim;
  sim.keep_data_fresh();
  sim.config.patients[0].settings.min_call_gap = 20min;
  sim.poll(50);
  sim.at(1min);
  sim.update(sim.call_to(k_alice), CallProgress::unanswered);  // run 0: step 1 at once
  REQUIRE(sim.called() == Numbers{k_bob, k_carol});
  sim.at(2min);
  sim.update(sim.call_to(k_bob), CallProgress::unanswered);
  sim.update(sim.call_to(k_carol), CallProgress::unanswered);
  sim.tick(16min);  // repeat: run 1, step 0 calls Alice, held back (called 16m ago)
  REQUIRE(sim.glucose().run == 1);
  CHECK(sim.called().empty());
  CHECK(sim.journal("call_held_back").size() == 1);
  sim.tick(17min);  // run 0's unanswered call to Alice does not count for run 1
  CHECK(sim.journal("step").empty());
  sim.tick(21min - 1ms);
  CHECK(sim.journal("step").empty());
  sim.tick(21min);
  CHECK(sim.journal("step").size() == 1);
}

TEST_CASE("at most one step runs per event", "[alarm]") {
  Sim sim;
  sim.config.patients[0].settings.escalation.urgent = {
      step_of(0s, {"patient"}), step_of(5min, {"contacts"}), step_of(6min, {}, {"patient"})};
  sim.poll(50);
  SECTION("by time") {
    sim.tick(10min);  // steps 1 and 2 are both due
    CHECK(sim.called() == Numbers{k_bob, k_carol});
    CHECK(sim.texted().empty());
  }
  SECTION("keypress 2 when steps are due by time") {
    sim.at(10min);
    sim.press(sim.call_to(k_alice), "2");
    CHECK(sim.called() == Numbers{k_bob, k_carol});
    CHECK(sim.texted().empty());
  }
  CHECK(sim.journal("step").size() == 1);
  sim.tick(10min + 1ms);
  CHECK(sim.texted() == Numbers{k_alice});
}

TEST_CASE("a call with no outcome after k_call_outcome_timeout ends as timeout and escalates",
          "[alarm]") {
  Sim sim;
  sim.poll(65);  // warning chain: step 1 at 15m
  const auto key = sim.call_to(k_alice);
  sim.at(1min);
  sim.update(key, CallProgress::answered);
  CHECK(scout::core::next_due(sim.config, sim.state, sim.now) ==
        std::optional<TimePoint>{k_t0 + scout::core::k_call_outcome_timeout});
  sim.tick(scout::core::k_call_outcome_timeout - 1ms);
  CHECK(sim.actions.empty());
  CHECK(sim.call(key).progress == CallProgress::answered);
  sim.tick(scout::core::k_call_outcome_timeout);
  CHECK(sim.call(key).progress == CallProgress::timeout);
  CHECK(sim.call(key).ended_at == std::optional<TimePoint>{sim.now});
  const auto outcome = sim.journal("call_outcome");
  REQUIRE(outcome.size() == 1);
  CHECK(field(outcome[0], "progress") == "timeout");
  CHECK(sim.texted() == Numbers{k_bob, k_carol});
}

TEST_CASE("after the last step the chain reruns every repeat", "[alarm]") {
  Sim sim;
  sim.keep_data_fresh();
  sim.poll(50);
  sim.tick(5min);   // step 1 (last)
  sim.tick(15min);  // the calls time out, nothing else
  CHECK(sim.journal("step").empty());
  sim.tick(20min - 1ms);
  CHECK(sim.actions.empty());
  sim.tick(20min);
  const auto restarted = sim.journal("chain_restarted");
  REQUIRE(restarted.size() == 1);
  CHECK(field(restarted[0], "reason") == "repeat");
  CHECK(field(restarted[0], "run") == "1");
  const auto& g = sim.glucose();
  CHECK(g.run == 1);
  CHECK(g.chain_start == k_t0 + 20min);
  CHECK(g.next_step == 1);
  CHECK(sim.called() == Numbers{k_alice});
  CHECK(sim.call(sim.call_to(k_alice)).run == 1);
  sim.tick(25min);
  CHECK(sim.called() == Numbers{k_bob, k_carol});
  for (const auto& s : only<SendSms>(sim.actions)) {
    CHECK(sim.text(s).find(" Not acknowledged yet.") != std::string::npos);
  }
}

// ---------------------------------------------------------------------------------------------
// Keypresses

TEST_CASE("keypress 1 acknowledges, snoozes and stops the chain, twice changes nothing more",
          "[alarm]") {
  Sim sim;
  sim.poll(50);
  const auto key = sim.call_to(k_alice);
  sim.at(1min);
  sim.press(key, "1");
  REQUIRE(sim.reply);
  CHECK(sim.reply->kind == KeypressReply::Kind::acknowledged);
  CHECK(sim.reply->text.find("30 minutes") != std::string::npos);
  const auto& g = sim.glucose();
  CHECK(g.snoozed_until == std::optional<TimePoint>{k_t0 + 31min});
  CHECK(g.acknowledged_by == "patient");
  CHECK(sim.call(key).acknowledged);
  const auto ack = sim.journal("acknowledged");
  REQUIRE(ack.size() == 1);
  CHECK(field(ack[0], "by") == "patient");
  CHECK(sim.journal("keypress").size() == 1);

  const State after_first = sim.state;
  sim.at(1min + 5s);
  sim.press(key, "1");
  CHECK(sim.state == after_first);
  CHECK(sim.reply->kind == KeypressReply::Kind::acknowledged);
  CHECK(sim.journal("acknowledged").empty());

  sim.tick(5min);
  CHECK(sim.actions.empty());
  sim.tick(31min - 1ms);  // the unfinished call times out; nothing else happens
  CHECK(sim.called().empty());
  CHECK(sim.journal("step").empty());
  CHECK(sim.journal("call_outcome").size() == 1);
}

TEST_CASE("a contact can acknowledge", "[alarm]") {
  Sim sim;
  sim.poll(50);
  sim.tick(5min);
  sim.at(6min);
  sim.press(sim.call_to(k_carol), "1");
  CHECK(sim.glucose().acknowledged_by == "Carol");
}

TEST_CASE(
    "keypress 2 runs the next step now, once per call, the last step again at the end, "
    "also when snoozed",
    "[alarm]") {
  Sim sim;
  sim.poll(50);
  const auto key = sim.call_to(k_alice);
  const bool snoozed = GENERATE(false, true);
  if (snoozed) {
    sim.at(30s);
    sim.press(key, "1");
    REQUIRE(sim.glucose().snoozed_until);
  }
  sim.at(1min);
  sim.press(key, "2");
  REQUIRE(sim.reply);
  CHECK(sim.reply->kind == KeypressReply::Kind::escalated);
  CHECK(sim.called() == Numbers{k_bob, k_carol});
  const auto steps = sim.journal("step");
  REQUIRE(steps.size() == 1);
  CHECK(field(steps[0], "reason") == "keypress");
  CHECK(sim.glucose().next_step == 2);
  CHECK(sim.call(key).escalated);
  CHECK(sim.glucose().snoozed_until.has_value() == snoozed);

  sim.at(2min);
  sim.press(key, "2");  // once per call
  CHECK(sim.reply->kind == KeypressReply::Kind::escalated);
  CHECK(sim.journal("step").empty());
  CHECK(sim.called().empty());

  sim.at(4min);
  sim.press(sim.call_to(k_bob), "2");  // every step has run: the last one again
  CHECK(sim.called() == Numbers{k_bob, k_carol});
  CHECK(sim.glucose().last_step_at == std::optional<TimePoint>{k_t0 + 4min});
  CHECK(sim.glucose().next_step == 2);
}

TEST_CASE("any other key repeats the prompt with the alarm message", "[alarm]") {
  const auto digits = GENERATE(as<std::string>{}, "0", "3", "9", "*", "#", "12");
  Sim sim;
  sim.poll(50);
  const auto key = sim.call_to(k_alice);
  sim.at(1min);
  sim.press(key, digits);
  REQUIRE(sim.reply);
  CHECK(sim.reply->kind == KeypressReply::Kind::repeat_prompt);
  REQUIRE(sim.reply->message);
  CHECK(sim.say(*sim.reply->message) == sim.glucose_text());
  CHECK_FALSE(sim.glucose().snoozed_until);
  CHECK_FALSE(sim.call(key).acknowledged);
  CHECK(sim.called().empty());
  CHECK(sim.journal("keypress").size() == 1);
}

TEST_CASE("no key says goodbye and leaves the alarm unacknowledged", "[alarm]") {
  Sim sim;
  sim.poll(50);
  const auto key = sim.call_to(k_alice);
  sim.at(1min);
  sim.press(key, "");
  REQUIRE(sim.reply);
  CHECK(sim.reply->kind == KeypressReply::Kind::no_input);
  CHECK(sim.reply->text == "Goodbye.");
  CHECK_FALSE(sim.glucose().snoozed_until);
  CHECK(sim.called().empty());
}

TEST_CASE("a keypress for a call scout does not know is refused", "[alarm]") {
  Sim sim;
  sim.poll(50);
  const State before = sim.state;
  sim.press("c999", "1");
  REQUIRE(sim.reply);
  CHECK(sim.reply->kind == KeypressReply::Kind::unknown_call);
  CHECK(sim.state == before);
  CHECK(sim.journal("unknown_call").size() == 1);
}

TEST_CASE("a keypress found by call id", "[alarm]") {
  Sim sim;
  sim.poll(50);
  const auto key = sim.call_to(k_alice);
  sim.apply(CallPlaced{key, "twilio", "CA0123", ""});
  sim.at(1min);
  sim.apply(Keypress{"", "CA0123", "1"});
  CHECK(sim.glucose().snoozed_until);
  sim.apply(Keypress{"", "CA9999", "1"});
  CHECK(sim.reply->kind == KeypressReply::Kind::unknown_call);
}

TEST_CASE("when the snooze ends and the alarm still holds the chain starts again", "[alarm]") {
  Sim sim;
  sim.keep_data_fresh();
  sim.poll(50);
  sim.at(1min);
  sim.press(sim.call_to(k_alice), "1");
  CHECK(scout::core::next_due(sim.config, sim.state, sim.now) ==
        std::optional<TimePoint>{k_t0 + scout::core::k_call_outcome_timeout});
  sim.update(sim.call_to(k_alice), CallProgress::completed);
  CHECK(scout::core::next_due(sim.config, sim.state, sim.now) == std::optional<TimePoint>{k_t0 + 31min});
  sim.tick(31min - 1ms);
  CHECK(sim.actions.empty());
  sim.tick(31min);
  CHECK(sim.journal("snooze_ended").size() == 1);
  const auto restarted = sim.journal("chain_restarted");
  REQUIRE(restarted.size() == 1);
  CHECK(field(restarted[0], "reason") == "snooze_ended");
  const auto& g = sim.glucose();
  CHECK_FALSE(g.snoozed_until);
  CHECK(g.acknowledged_by.empty());
  CHECK(g.run == 1);
  CHECK(g.chain_start == k_t0 + 31min);
  CHECK(sim.called() == Numbers{k_alice});
  sim.tick(36min);
  CHECK(sim.called() == Numbers{k_bob, k_carol});
}

// ---------------------------------------------------------------------------------------------
// Call limits

TEST_CASE("min_call_gap holds a call back and sends it as an SMS", "[alarm]") {
  Sim sim;
  sim.poll(65);  // calls Alice at t0
  const auto [since, held] = GENERATE(table<Duration, bool>({
      {1min + 59s + 999ms, true},
      {2min, false},
  }));
  sim.at(since);
  sim.assess(holding(k_unreachable));
  if (held) {
    CHECK(sim.called().empty());
    const auto sms = only<SendSms>(sim.actions);
    REQUIRE(sms.size() == 1);
    CHECK(sms[0].to == k_alice);
    CHECK(sim.text(sms[0]) == sim.data_text() + " (scout did not call: called 1m59s ago)");
    const auto j = sim.journal("call_held_back");
    REQUIRE(j.size() == 1);
    CHECK(j[0].level == JournalEntry::Level::warn);
    CHECK(field(j[0], "reason") == "min_call_gap");
    CHECK(field(j[0], "to") == "\u20260001");
    CHECK(sim.data().notified == Numbers{k_alice});
    CHECK(sim.data().calls.empty());
    CHECK(sim.state.numbers.at(k_alice).sms.size() == 1);
  } else {
    CHECK(sim.called() == Numbers{k_alice});
    CHECK(sim.journal("call_held_back").empty());
  }
}

TEST_CASE("max_calls_per_hour holds a call back, calls older than an hour do not count",
          "[alarm]") {
  Sim sim;
  sim.config.patients[0].settings.max_calls_per_hour = 3;
  const auto [oldest, held] = GENERATE(table<Duration, bool>({
      {59min + 59s, true},  // still inside the hour
      {60min, false},       // exactly an hour old: pruned
  }));
  sim.state.numbers[k_alice].calls = {k_t0 - oldest, k_t0 - 50min, k_t0 - 40min};
  sim.poll(50);
  CHECK(sim.called().empty() == held);
  if (held) {
    const auto j = sim.journal("call_held_back");
    REQUIRE(j.size() == 1);
    CHECK(field(j[0], "reason") == "max_calls_per_hour");
    const auto sms = only<SendSms>(sim.actions);
    REQUIRE(sms.size() == 1);
    CHECK(sim.text(sms[0]) == sim.glucose_text() + " (scout did not call: 3 calls in the last hour)");
  } else {
    CHECK(sim.state.numbers.at(k_alice).calls ==
          std::vector<TimePoint>{k_t0 - 50min, k_t0 - 40min, k_t0});
  }
}

TEST_CASE("usage older than an hour is pruned", "[alarm]") {
  Sim sim;
  sim.state.numbers["+15559999999"].calls = {k_t0 - 61min};
  sim.state.numbers["+15559999999"].sms = {k_t0 - 60min};
  sim.state.numbers[k_bob].sms = {k_t0 - 61min, k_t0 - 10min};
  sim.tick(0s);
  CHECK(sim.state.numbers.count("+15559999999") == 0);
  CHECK(sim.state.numbers.at(k_bob).sms == std::vector<TimePoint>{k_t0 - 10min});
}

TEST_CASE("an SMS over max_sms_per_hour is not sent and logged as an error", "[alarm]") {
  Sim sim;
  std::vector<TimePoint> twenty;
  for (int i = 0; i < 20; ++i) twenty.push_back(k_t0 - std::chrono::minutes{i + 1});
  SECTION("a step SMS") {
    sim.state.numbers[k_bob].sms = twenty;
    sim.poll(50);
    sim.tick(5min);
    CHECK(sim.called() == Numbers{k_bob, k_carol});
    CHECK(sim.texted() == Numbers{k_carol});
    const auto j = sim.journal("sms_suppressed");
    REQUIRE(j.size() == 1);
    CHECK(j[0].level == JournalEntry::Level::error);
    CHECK(field(j[0], "to_label") == "Bob");
  }
  SECTION("a held-back call's SMS") {
    sim.state.numbers[k_alice].calls = {k_t0 - 1min};
    sim.state.numbers[k_alice].sms = twenty;
    sim.poll(50);
    CHECK(sim.called().empty());
    CHECK(sim.texted().empty());
    CHECK(sim.journal("call_held_back").size() == 1);
    CHECK(sim.journal("sms_suppressed").size() == 1);
    CHECK(sim.glucose().notified.empty());
  }
}

TEST_CASE("call limits hold per number across patients", "[alarm]") {
  Sim sim;
  Patient dave;
  dave.name = "Dave";
  dave.phone = k_dave;
  dave.contacts = {{"Bob", k_bob}};
  dave.settings = sim.config.patients[0].settings;
  dave.settings.escalation.urgent = {step_of(0s, {"contacts"})};
  sim.config.patients.push_back(dave);

  sim.poll(50);
  sim.tick(5min);  // Alice's step 1 calls Bob
  REQUIRE(sim.called() == Numbers{k_bob, k_carol});
  sim.at(6min);
  sim.assess(reading(50), "Dave");
  CHECK(sim.called().empty());
  const auto sms = only<SendSms>(sim.actions);
  REQUIRE(sms.size() == 1);
  CHECK(sms[0].to == k_bob);
  CHECK(sms[0].patient == "Dave");
  CHECK(sim.text(sms[0]).find("Dave: URGENT LOW") == 0);
  CHECK(sim.text(sms[0]).find("(scout did not call: called 1m ago)") != std::string::npos);
  sim.at(7min);
  sim.assess(reading(50), "Dave");
  CHECK(sim.actions.empty());  // the held-back step ran; nothing is due
}

// ---------------------------------------------------------------------------------------------
// Targets

TEST_CASE("step targets: patient, contacts and names in order, each number once per channel",
          "[alarm]") {
  Sim sim;
  auto& patient = sim.config.patients[0];
  patient.settings.escalation.urgent = {
      step_of(0s, {"patient", "Bob", "contacts", "Zoe"}, {"Carol", "contacts", "patient"})};
  SECTION("distinct numbers") {
    sim.poll(50);
    CHECK(sim.called() == Numbers{k_alice, k_bob, k_carol});
    CHECK(sim.texted() == Numbers{k_carol, k_bob, k_alice});
    const auto calls = only<PlaceCall>(sim.actions);
    CHECK(calls[0].to_label == "patient");
    CHECK(calls[1].to_label == "Bob");
    CHECK(calls[2].to_label == "Carol");
    CHECK(sim.glucose().notified == Numbers{k_alice, k_bob, k_carol});
  }
  SECTION("a held-back call's SMS is the only SMS to that number in the step") {
    patient.settings.escalation.urgent = {step_of(0s, {"patient"}, {"patient", "Bob"})};
    sim.state.numbers[k_alice].calls = {k_t0 - 1min};
    sim.poll(50);
    CHECK(sim.called().empty());
    CHECK(sim.texted() == Numbers{k_alice, k_bob});
    CHECK(sim.text(only<SendSms>(sim.actions)[0]).find("scout did not call") != std::string::npos);
  }
  SECTION("a contact with the patient's number") {
    patient.contacts[0].phone = k_alice;
    sim.poll(50);
    CHECK(sim.called() == Numbers{k_alice, k_carol});
    CHECK(only<PlaceCall>(sim.actions)[0].to_label == "patient");
    CHECK(sim.texted() == Numbers{k_carol, k_alice});
  }
}

// ---------------------------------------------------------------------------------------------
// Call progress

TEST_CASE("out-of-order and repeated call updates change nothing", "[alarm]") {
  Sim sim;
  sim.poll(65);
  const auto key = sim.call_to(k_alice);
  sim.apply(CallPlaced{key, "vonage", "uuid-1", ""});
  CHECK(sim.call(key).progress == CallProgress::ringing);
  CHECK(sim.journal("call_placed").size() == 1);

  const auto unchanged = [&sim](const Event& e) {
    const State before = sim.state;
    sim.apply(e);
    CHECK(sim.state == before);
    CHECK(sim.actions.empty());
  };
  unchanged(CallPlaced{key, "vonage", "uuid-1", ""});
  unchanged(CallUpdate{key, "", CallProgress::ringing, ""});
  unchanged(CallUpdate{key, "", CallProgress::placing, ""});
  sim.update(key, CallProgress::answered);
  CHECK(sim.call(key).answered);
  unchanged(CallUpdate{key, "", CallProgress::answered, ""});
  unchanged(CallUpdate{key, "", CallProgress::ringing, ""});
  sim.update(key, CallProgress::human);
  unchanged(CallUpdate{"", "uuid-1", CallProgress::answered, ""});
  sim.at(1min);
  sim.update(key, CallProgress::completed);
  CHECK(sim.call(key).progress == CallProgress::completed);
  unchanged(CallUpdate{key, "", CallProgress::completed, ""});
  unchanged(CallUpdate{key, "", CallProgress::unanswered, "no-answer"});
  unchanged(CallUpdate{key, "", CallProgress::ringing, ""});
  unchanged(CallNotPlaced{key, "late", ""});
}

TEST_CASE("a call update that arrives before CallPlaced is kept", "[alarm]") {
  Sim sim;
  sim.poll(50);
  const auto key = sim.call_to(k_alice);
  sim.at(5s);
  sim.update(key, CallProgress::answered);
  CHECK(sim.call(key).progress == CallProgress::answered);
  CHECK(sim.call(key).call_id.empty());
  sim.at(6s);
  sim.apply(CallPlaced{key, "vonage", "uuid-7", ""});
  CHECK(sim.call(key).progress == CallProgress::answered);
  CHECK(sim.call(key).call_id == "uuid-7");
  CHECK(sim.call(key).provider == "vonage");
  sim.at(1min);
  sim.apply(CallUpdate{"", "uuid-7", CallProgress::completed, "completed"});
  CHECK(sim.call(key).progress == CallProgress::completed);
  CHECK(sim.called() == Numbers{k_bob, k_carol});  // completed without keypress
}

TEST_CASE("updates for calls scout does not know are journaled and ignored", "[alarm]") {
  Sim sim;
  sim.poll(50);
  const State before = sim.state;
  sim.apply(CallUpdate{"", "uuid-unknown", CallProgress::busy, ""});
  CHECK(sim.state == before);
  CHECK(sim.journal("unknown_call").size() == 1);
  sim.apply(CallPlaced{"c404", "vonage", "uuid-x", ""});
  CHECK(sim.state == before);
  CHECK(sim.journal("unknown_call").size() == 1);
}

TEST_CASE("SMS results are journaled only", "[alarm]") {
  Sim sim;
  sim.poll(50);
  const State before = sim.state;
  sim.apply(SmsResult{"s9", "Alice", "a1", "+33612345678", true, "twilio", "", ""});
  CHECK(sim.state == before);
  REQUIRE(sim.journal("sms_sent").size() == 1);
  sim.apply(SmsResult{"s9", "Alice", "a1", "+33612345678", false, "", "twilio: 400 invalid number", ""});
  const auto failed = sim.journal("sms_failed");
  REQUIRE(failed.size() == 1);
  CHECK(failed[0].level == JournalEntry::Level::error);
  CHECK(field(failed[0], "error") == "twilio: 400 invalid number");
}

// ---------------------------------------------------------------------------------------------
// Config changes, restarts, scheduling, determinism

TEST_CASE("a patient removed from the config loses its state", "[alarm]") {
  Sim sim;
  sim.poll(50);
  REQUIRE(sim.has("Alice"));
  sim.config.patients.clear();
  sim.tick(1min);
  CHECK_FALSE(sim.has("Alice"));
  const auto j = sim.journal("patient_removed");
  REQUIRE(j.size() == 1);
  CHECK(j[0].patient == "Alice");
  CHECK(field(j[0], "alarms") == "a1");
  CHECK(scout::core::next_due(sim.config, sim.state, sim.now) == std::nullopt);
}

TEST_CASE("a restart mid-escalation neither repeats a call nor forgets the next step", "[alarm]") {
  Sim original;
  original.poll(50);
  original.at(20s);
  original.apply(CallPlaced{original.call_to(k_alice), "vonage", "uuid-1", ""});

  // The saved state, picked up by a new process 90 s later.
  Sim restarted;
  restarted.state = original.state;
  restarted.tick(1min + 30s);
  CHECK(restarted.actions.empty());
  restarted.at(1min + 40s);
  restarted.poll(50);  // the same alarm still holds
  CHECK(restarted.called().empty());
  CHECK(restarted.journal("alarm_raised").empty());
  restarted.tick(5min - 1ms);
  CHECK(restarted.actions.empty());
  restarted.tick(5min);
  CHECK(restarted.called() == Numbers{k_bob, k_carol});

  // The process that never stopped does exactly the same.
  original.tick(1min + 30s);
  original.at(1min + 40s);
  original.poll(50);
  original.tick(5min - 1ms);
  original.tick(5min);
  CHECK(original.state == restarted.state);
  CHECK(original.actions == restarted.actions);
}

TEST_CASE("next_due names the earliest pending change", "[alarm]") {
  Sim sim;
  sim.keep_data_fresh();
  CHECK(scout::core::next_due(sim.config, sim.state, sim.now) == std::nullopt);

  std::optional<TimePoint> expected;
  SECTION("a step due by time (urgent step 1 at 5m, before the call's 10m timeout)") {
    sim.poll(50);
    expected = k_t0 + 5min;
  }
  SECTION("a call reaching k_call_outcome_timeout (warning step 1 at 15m)") {
    sim.poll(65);
    expected = k_t0 + scout::core::k_call_outcome_timeout;
  }
  SECTION("a repeat after the last step") {
    sim.poll(50);
    sim.at(1min);
    sim.update(sim.call_to(k_alice), CallProgress::unanswered);  // step 1 at once
    sim.at(2min);
    sim.update(sim.call_to(k_bob), CallProgress::busy);
    sim.update(sim.call_to(k_carol), CallProgress::rejected);
    expected = k_t0 + 1min + 15min;
  }
  SECTION("a snooze end") {
    sim.poll(50);
    sim.at(1min);
    sim.press(sim.call_to(k_alice), "1");
    sim.update(sim.call_to(k_alice), CallProgress::completed);
    expected = k_t0 + 31min;
  }
  const auto due = scout::core::next_due(sim.config, sim.state, sim.now);
  REQUIRE(due == expected);
  sim.now = *due - 1ms;
  sim.apply(Tick{});
  CHECK(sim.actions.empty());
  sim.now = *due;
  sim.apply(Tick{});
  CHECK_FALSE(sim.actions.empty());
  CHECK(scout::core::next_due(sim.config, sim.state, sim.now) > due);
}

TEST_CASE("the same input gives the same output", "[alarm]") {
  Sim sim;
  sim.poll(50);
  sim.tick(5min);
  sim.at(6min);
  const Config config = sim.config;
  const State state = sim.state;
  const std::vector<Event> events{Tick{}, PatientAssessed{"Alice", reading(40)},
                                  CallUpdate{sim.call_to(k_bob), "", CallProgress::busy, ""},
                                  Keypress{sim.call_to(k_carol), "", "2"}};
  for (const auto& e : events) {
    const auto a = scout::core::step(config, state, e, sim.now);
    const auto b = scout::core::step(config, state, e, sim.now);
    CHECK(a.state == b.state);
    CHECK(a.actions == b.actions);
    CHECK(a.reply == b.reply);
  }
}

TEST_CASE("resolved_message says what is over", "[alarm]") {
  using scout::core::resolved_message;
  CHECK(resolved_message("Alice", k_urgent_low, 98, GlucoseUnit::mg_dl) ==
        "Alice: URGENT LOW is over, now 98 mg/dL.");
  CHECK(resolved_message("Alice", k_high, 90, GlucoseUnit::mmol_l) ==
        "Alice: HIGH is over, now 5.0 mmol/L.");
  CHECK(resolved_message("Alice", k_low, std::nullopt, GlucoseUnit::mg_dl) ==
        "Alice: LOW is over.");
  CHECK(resolved_message("Alice", k_stale_urgent, 120, GlucoseUnit::mg_dl) ==
        "Alice: NO DATA is over, readings are arriving again.");
  CHECK(resolved_message("Bob", k_unreachable, std::nullopt, GlucoseUnit::mg_dl) ==
        "Bob: NIGHTSCOUT UNREACHABLE is over, readings are arriving again.");
  CHECK(resolved_message("Alice", k_sensor_error, std::nullopt, GlucoseUnit::mg_dl) ==
        "Alice: SENSOR ERROR is over, readings are arriving again.");
}

// ---------------------------------------------------------------------------------------------
// Matching webhooks to calls, and forgetting old calls

TEST_CASE("a webhook whose call id disagrees with the call found by its key changes nothing",
          "[alarm]") {
  Sim sim;
  sim.poll(48);
  const auto key = sim.call_to(k_alice);
  sim.apply(CallPlaced{key, "vonage", "uuid-1", ""});
  const State before = sim.state;
  // A replayed webhook of another call (or a key reused after a state reset) carries the key in
  // its URL but another call id: it must neither end the call nor acknowledge the alarm.
  sim.apply(CallUpdate{key, "uuid-other", CallProgress::unanswered, ""});
  CHECK(sim.state == before);
  CHECK(sim.journal("unknown_call").size() == 1);
  sim.apply(Keypress{key, "uuid-other", "1"});
  CHECK_FALSE(sim.glucose().snoozed_until);
  REQUIRE(sim.reply);
  CHECK(sim.reply->kind == KeypressReply::Kind::unknown_call);
  // The same key with the right id, or with no id, still works.
  sim.apply(CallUpdate{key, "uuid-1", CallProgress::ringing, ""});
  sim.apply(Keypress{key, "", "1"});
  CHECK(sim.glucose().snoozed_until);
}

TEST_CASE("final calls are forgotten an hour after they ended, calls in flight are kept",
          "[alarm]") {
  Sim sim;
  sim.poll(48);
  const auto first = sim.call_to(k_alice);
  sim.update(first, CallProgress::unanswered);  // ends now (t0): contacts are called at once
  REQUIRE(sim.glucose().calls.size() == 3);
  sim.tick(1h);
  CHECK(sim.glucose().calls.size() >= 1);  // still remembered at exactly one hour
  bool first_known = false;
  for (const auto& c : sim.glucose().calls) first_known = first_known || c.key == first;
  CHECK(first_known);
  sim.tick(1h + 1ms);
  for (const auto& c : sim.glucose().calls) {
    CHECK(c.key != first);
    // Whatever is left is either not final or ended less than an hour ago.
    CHECK((!scout::core::is_final(c.progress) ||
           sim.now - c.ended_at.value_or(c.placed_at) <= scout::core::k_call_memory));
  }
}

// ---------------------------------------------------------------------------------------------
// Requests from the shell: scout ack | snooze | unsnooze (SPEC §1, §4.13)

using Shell = scout::core::ShellCommand::Kind;

TEST_CASE("shell ack snoozes every active alarm as keypress 1 would and stops the chain",
          "[alarm][shell]") {
  Sim sim;
  sim.poll(50);  // urgent low: the patient is called
  sim.at(1min);
  sim.shell(Shell::ack);
  REQUIRE(sim.command);
  CHECK(sim.command->changed);
  REQUIRE(sim.command->lines.size() == 1);
  CHECK(sim.command->lines[0] == "URGENT LOW acknowledged by mum, snoozed for 30m");
  const auto& g = sim.glucose();
  CHECK(g.snoozed_until == std::optional<TimePoint>{k_t0 + 31min});
  CHECK(g.acknowledged_by == "mum");
  const auto ack = sim.journal("acknowledged");
  REQUIRE(ack.size() == 1);
  CHECK(field(ack[0], "via") == "shell");
  CHECK(field(ack[0], "request") == "r1");
  // Step 2 (5 min: call the contacts) does not run while snoozed.
  sim.tick(6min);
  CHECK(sim.called().empty());
  // The snooze ends and the chain starts again.
  sim.at(31min);
  sim.poll(50);
  CHECK(sim.called() == Numbers{k_alice});
  // A second ack while snoozed changes nothing and says so.
  sim.press(sim.call_to(k_alice), "1");
  const State before = sim.state;
  sim.shell(Shell::ack);
  CHECK_FALSE(sim.command->changed);
  CHECK(sim.command->lines[0].find("already snoozed") != std::string::npos);
  CHECK(sim.state == before);
}

TEST_CASE("shell snooze holds for its own duration, whatever the kind becomes", "[alarm][shell]") {
  Sim sim;
  sim.poll(65);  // low
  sim.shell(Shell::snooze, "Alice", 2h);
  REQUIRE(sim.command);
  CHECK(sim.command->changed);
  CHECK(sim.glucose().snoozed_until == std::optional<TimePoint>{k_t0 + 2h});
  CHECK(sim.journal("snoozed").size() == 1);
  // Improving within the episode does not move a shell snooze (an ack's would follow the kind).
  sim.at(10min);
  sim.poll(66);
  CHECK(sim.glucose().snoozed_until == std::optional<TimePoint>{k_t0 + 2h});
  // A more severe alarm replaces it at once, unsnoozed (SPEC §4.4), and calls.
  sim.at(20min);
  sim.poll(50);
  CHECK(sim.glucose().alarm.kind == AlarmKind::urgent_low);
  CHECK_FALSE(sim.glucose().snoozed_until);
  CHECK(sim.called() == Numbers{k_alice});
}

TEST_CASE("shell snooze --kind acts only on alarms of that kind or class", "[alarm][shell]") {
  Sim sim;
  sim.poll(65);
  sim.shell(Shell::snooze, "Alice", 1h, "high");
  CHECK_FALSE(sim.command->changed);
  CHECK(sim.command->lines[0] == "Alice has no active high alarm");
  CHECK_FALSE(sim.glucose().snoozed_until);
  CHECK(sim.journal("command_ignored").size() == 1);
  sim.shell(Shell::snooze, "Alice", 1h, "data");
  CHECK_FALSE(sim.command->changed);
  sim.shell(Shell::snooze, "Alice", 1h, "glucose");
  CHECK(sim.command->changed);
  CHECK(sim.glucose().snoozed_until == std::optional<TimePoint>{k_t0 + 1h});
}

TEST_CASE("shell unsnooze ends the snooze now and the chain calls again at once",
          "[alarm][shell]") {
  Sim sim;
  sim.poll(50);
  sim.press(sim.call_to(k_alice), "1");
  REQUIRE(sim.glucose().snoozed_until);
  sim.at(3min);  // past min_call_gap
  sim.poll(50);
  CHECK(sim.called().empty());
  sim.shell(Shell::unsnooze);
  REQUIRE(sim.command);
  CHECK(sim.command->changed);
  CHECK_FALSE(sim.glucose().snoozed_until);
  CHECK(sim.journal("unsnoozed").size() == 1);
  CHECK(sim.journal("snooze_ended").size() == 1);
  CHECK(sim.called() == Numbers{k_alice});
  // Not snoozed: nothing to do.
  sim.shell(Shell::unsnooze);
  CHECK_FALSE(sim.command->changed);
  CHECK(sim.command->lines[0] == "URGENT LOW was not snoozed");
}

TEST_CASE("shell requests for an unknown patient or no active alarm change nothing",
          "[alarm][shell]") {
  Sim sim;
  sim.poll(120);
  const State before = sim.state;
  for (const auto kind : {Shell::ack, Shell::snooze, Shell::unsnooze}) {
    sim.shell(kind, "Alice", 30min);
    REQUIRE(sim.command);
    CHECK_FALSE(sim.command->changed);
    CHECK(sim.command->lines == std::vector<std::string>{"Alice has no active alarm"});
    CHECK(sim.state == before);
    sim.shell(kind, "Zed", 30min);
    CHECK_FALSE(sim.command->changed);
    CHECK(sim.command->lines == std::vector<std::string>{"no patient named Zed"});
    CHECK(sim.state == before);
    const auto ignored = sim.journal("command_ignored");
    REQUIRE(ignored.size() == 1);
    CHECK(field(ignored[0], "by") == "mum");
  }
  // Other events carry no command outcome.
  sim.tick(1min);
  CHECK_FALSE(sim.command);
}

// ---------------------------------------------------------------------------------------------
// SMS in flight (SPEC §6): decided SMS are kept until their result comes back

TEST_CASE("a decided SMS stays in the state until its result, and undispatched_sms gives it back",
          "[alarm][sms]") {
  Sim sim;
  sim.keep_data_fresh();
  sim.poll(65);  // low: warning chain, the contacts are texted at 15 min
  sim.tick(15min);
  REQUIRE(sim.texted() == Numbers{k_bob, k_carol});
  REQUIRE(sim.state.sms_in_flight.size() == 2);
  const auto pending = scout::core::undispatched_sms(sim.state);
  REQUIRE(pending.size() == 2);
  std::vector<SendSms> sent;
  for (const auto& action : sim.actions) {
    if (const auto* sms = std::get_if<SendSms>(&action)) sent.push_back(*sms);
  }
  REQUIRE(sent.size() == 2);
  CHECK(pending == sent);  // the same key, number, label and message
  // Sent, or given up on: either way no longer in flight.
  sim.apply(SmsResult{sent[0].sms_key, "Alice", sent[0].alarm_id, sent[0].to, true, "vonage", "", ""});
  sim.apply(SmsResult{sent[1].sms_key, "Alice", sent[1].alarm_id, sent[1].to, false, "", "no", ""});
  CHECK(sim.state.sms_in_flight.empty());
  CHECK(scout::core::undispatched_sms(sim.state).empty());
}

TEST_CASE("an SMS in flight moves with a clock jump and is forgotten after a day", "[alarm][sms]") {
  Sim sim;
  sim.keep_data_fresh();
  sim.poll(65);
  sim.tick(15min);
  REQUIRE(sim.state.sms_in_flight.size() == 2);
  const auto decided = sim.state.sms_in_flight.begin()->second.decided_at;
  sim.apply(scout::core::ClockJumped{-1h});
  CHECK(sim.state.sms_in_flight.begin()->second.decided_at == decided - 1h);
  sim.tick(15min + 22h);  // decided at t0 - 45 min (after the jump): 22 h 15 min ago
  CHECK(sim.state.sms_in_flight.size() == 2);
  sim.tick(15min + 24h);
  CHECK(sim.state.sms_in_flight.empty());
}

// ----------------------------------------------------------------------------------------------
// step_in_place (the engine's form of step, SPEC §7): the same rules, without the copy.

namespace {

// Runs `event` through step() and step_in_place() on two copies of the same state and checks
// that both give the same actions, reply, command and state; returns the actions.
std::vector<Action> both_ways(const Config& config, const scout::core::PatientIndex& index,
                              State& pure, State& in_place, const Event& event, TimePoint now) {
  auto transition = scout::core::step(config, pure, event, now);
  auto stepped = scout::core::step_in_place(config, index, in_place, event, now);
  CHECK(stepped.actions == transition.actions);
  CHECK(stepped.reply == transition.reply);
  CHECK(stepped.command == transition.command);
  // `changed` says whether the state moved (it may say so of an event that only journals).
  if (!(transition.state == pure)) CHECK(stepped.changed);
  pure = std::move(transition.state);
  CHECK(in_place == pure);
  return stepped.actions;
}

template <typename T>
const T* first_of(const std::vector<Action>& actions) {
  for (const auto& a : actions) {
    if (const auto* x = std::get_if<T>(&a)) return x;
  }
  return nullptr;
}

}  // namespace

TEST_CASE("step_in_place gives what step gives through a whole escalation of two patients",
          "[alarm][core]") {
  // Given Alice and Dave, and the engine's index of them
  Config config = make_config();
  Patient dave = make_alice();
  dave.name = "Dave";
  dave.phone = k_dave;
  config.patients.push_back(dave);
  const scout::core::PatientIndex index(config);
  State pure;
  State in_place;
  // When Alice's batch raises an urgent low while Dave's Nightscout has not answered yet
  scout::core::Assessed batch;
  batch.partial = true;
  batch.patients = {PatientAssessed{"Alice", reading(50)}};
  auto actions = both_ways(config, index, pure, in_place, batch, k_t0);
  const auto* call = first_of<PlaceCall>(actions);
  REQUIRE(call != nullptr);
  const std::string key = call->call_key;
  // And Dave answers in range, and the tick ends
  batch.patients = {PatientAssessed{"Dave", reading(120)}};
  both_ways(config, index, pure, in_place, batch, k_t0 + 1s);
  both_ways(config, index, pure, in_place, Tick{}, k_t0 + 2s);
  // And the call is placed, rings out unanswered, and the contacts' step comes due
  both_ways(config, index, pure, in_place, CallPlaced{key, "vonage", "uuid-1", ""}, k_t0 + 3s);
  actions = both_ways(config, index, pure, in_place,
                      CallUpdate{key, "uuid-1", CallProgress::unanswered, "timeout"}, k_t0 + 40s);
  const auto later = both_ways(config, index, pure, in_place, Tick{}, k_t0 + 5min);
  actions.insert(actions.end(), later.begin(), later.end());
  const auto* sms = first_of<SendSms>(actions);
  REQUIRE(sms != nullptr);
  both_ways(config, index, pure, in_place,
            SmsResult{sms->sms_key, "Alice", sms->alarm_id, sms->to, true, "vonage", "", ""},
            k_t0 + 5min + 1s);
  // And a webhook for a call nobody knows changes nothing
  const auto unknown = scout::core::step_in_place(
      config, index, in_place, CallUpdate{"c999", "nope", CallProgress::answered, ""},
      k_t0 + 6min);
  CHECK_FALSE(unknown.changed);
  CHECK(in_place == pure);
  // And a batch that repeats what is known of Dave changes nothing
  batch.patients = {PatientAssessed{"Dave", reading(120)}};
  both_ways(config, index, pure, in_place, batch, k_t0 + 1s);
  State again = in_place;
  const auto same = scout::core::step_in_place(config, index, again, batch, k_t0 + 1s);
  CHECK_FALSE(same.changed);
  // Then the two ways agree to the end
  CHECK(in_place == pure);
}

TEST_CASE("step_in_place drops a patient removed from the config at the next Tick",
          "[alarm][core]") {
  // Given a state that still holds Zed, who is no longer in the config
  const Config config = make_config();
  const scout::core::PatientIndex index(config);
  State state;
  state.patients["Zed"] = PatientState{};
  // When a batch of Alice's answers is applied, Zed is not looked at (the batch costs its own
  // patients only)
  scout::core::Assessed batch;
  batch.partial = true;
  batch.patients = {PatientAssessed{"Alice", reading(120)}};
  scout::core::step_in_place(config, index, state, batch, k_t0);
  CHECK(state.patients.count("Zed") == 1);
  // Then the Tick that ends the tick drops Zed, journaled, as step() does at any event
  const auto ticked = scout::core::step_in_place(config, index, state, Tick{}, k_t0 + 1s);
  CHECK(state.patients.count("Zed") == 0);
  CHECK(ticked.changed);
  const auto* removed = first_of<JournalEntry>(ticked.actions);
  REQUIRE(removed != nullptr);
  CHECK(removed->type == "patient_removed");
}

TEST_CASE("step_in_place says when a change touches only the reading facts", "[alarm][core]") {
  const Config config = make_config();
  const scout::core::PatientIndex index(config);
  State state;
  scout::core::Assessed batch;
  batch.partial = true;
  // Given Alice assessed once in range (her first assessment is more than facts: she is new)
  batch.patients = {PatientAssessed{"Alice", reading(120, 6min)}};
  const auto first = scout::core::step_in_place(config, index, state, batch, k_t0);
  CHECK(first.changed);
  CHECK_FALSE(first.facts_only);
  // When a newer reading in range comes: only the facts changed
  batch.patients = {PatientAssessed{"Alice", reading(118, 1min)}};
  const auto newer = scout::core::step_in_place(config, index, state, batch, k_t0);
  CHECK(newer.changed);
  CHECK(newer.facts_only);
  // When the same reading comes again: nothing changed, so not "facts only" either
  const auto again = scout::core::step_in_place(config, index, state, batch, k_t0 + 1s);
  CHECK_FALSE(again.changed);
  CHECK_FALSE(again.facts_only);
  // When a tick finds nothing due: nothing changed
  const auto tick = scout::core::step_in_place(config, index, state, Tick{}, k_t0 + 2s);
  CHECK_FALSE(tick.changed);
  CHECK_FALSE(tick.facts_only);
  // When a reading raises an alarm: more than facts (an alarm and a call decided)
  batch.patients = {PatientAssessed{"Alice", reading(50, 0min)}};
  const auto raised = scout::core::step_in_place(config, index, state, batch, k_t0 + 3s);
  CHECK(raised.changed);
  CHECK_FALSE(raised.facts_only);
  // When a newer reading of the same low comes, nothing due yet: more than facts too (while an
  // alarm is active, what its calls say is saved at once)
  batch.patients = {PatientAssessed{"Alice", reading(49, 0min)}};
  batch.patients[0].assessment.latest->date += 1min;
  const auto lower = scout::core::step_in_place(config, index, state, batch, k_t0 + 3s + 1min);
  CHECK(lower.changed);
  CHECK_FALSE(lower.facts_only);
  CHECK(state.patients.at("Alice").facts.latest->sgv == 49);
  // When the Nightscout then fails: the failing streak starts, more than facts
  batch.patients = {PatientAssessed{"Alice", reading(50, 0min)}};
  batch.patients[0].assessment.glucose.reset();
  batch.patients[0].assessment.poll_error =
      scout::core::Error{scout::core::ErrorKind::timeout, "timed out"};
  const auto failed = scout::core::step_in_place(config, index, state, batch, k_t0 + 4s);
  CHECK(failed.changed);
  CHECK_FALSE(failed.facts_only);
}
