// SPEC §4.8–4.12 (alarm truth) on the pure machine, with evaluate() producing the assessments
// from entries, on a fake clock: a glucose alarm pauses while the data are stale and the data
// alarm speaks for it; fresh data restart it at once and end a snooze given meanwhile; a data
// alarm re-alerts only when it worsens; snoozes hold per kind and follow the kind that holds;
// an alarm held only by hysteresis does not call; messages are words rendered from facts.

#include <catch2/catch.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "scout/adapters/yaml_config.hpp"
#include "scout/core/alarm.hpp"
#include "scout/core/evaluate.hpp"
#include "scout/core/message.hpp"
#include "support/entries.hpp"

using namespace std::chrono_literals;
using scout::core::Action;
using scout::core::AlarmKind;
using scout::core::Duration;
using scout::core::Entry;
using scout::core::PlaceCall;
using scout::core::SendSms;
using scout::core::TimePoint;
using scout::test::k_t0;

namespace {

const std::string k_alice = "+15550000001";
const std::string k_bob = "+15550000002";

// SPEC §2 defaults: urgent chain 0s call patient, 5m call + sms contacts; warning chain 0s
// call patient, 15m sms contacts; repeat 15m; snooze by kind; stale 15m / 30m.
scout::core::Config make_config() {
  scout::core::Config c;
  scout::core::Patient p;
  p.name = "Alice";
  p.phone = k_alice;
  p.contacts = {{"Bob", k_bob}};
  p.settings.escalation = scout::adapters::default_escalation();
  p.settings.predict.enabled = false;
  c.patients = {p};
  return c;
}

struct World {
  scout::core::Config config = make_config();
  scout::core::State state;
  TimePoint now = k_t0;
  std::vector<Entry> served;  // what Nightscout has, any order
  std::vector<Action> actions;
  std::optional<scout::core::KeypressReply> reply;
  bool failing = false;

  void apply(const scout::core::Event& e) {
    auto t = scout::core::step(config, state, e, now);
    state = std::move(t.state);
    actions = std::move(t.actions);
    reply = std::move(t.reply);
  }
  // One poll of Nightscout at `now` (+ t0), as the Service makes it.
  void poll(Duration at) {
    now = k_t0 + at;
    scout::core::PollOutcome outcome;
    const auto& ps = state.patients["Alice"];
    if (failing) {
      outcome.error = scout::core::Error{scout::core::ErrorKind::timeout, "timed out"};
      outcome.failing_since = ps.failing_since.value_or(now);
      outcome.last_reading = ps.facts.latest;
      outcome.last_cadence = ps.facts.cadence;
    } else {
      for (const auto& e : served) {
        if (e.date <= now) outcome.entries.push_back(e);
      }
    }
    apply(scout::core::PatientAssessed{
        "Alice", scout::core::evaluate(outcome, config.patients[0].settings, now, 0)});
  }
  void reading(Duration at, int sgv) { served.push_back(scout::test::entry(k_t0 + at, sgv)); }
  // A reading at `at` and a poll one minute later.
  void reading_and_poll(Duration at, int sgv) {
    reading(at, sgv);
    poll(at + 1min);
  }
  void tick(Duration at) {
    now = k_t0 + at;
    apply(scout::core::Tick{});
  }
  std::vector<PlaceCall> calls() const {
    std::vector<PlaceCall> out;
    for (const auto& a : actions) {
      if (const auto* c = std::get_if<PlaceCall>(&a)) out.push_back(*c);
    }
    return out;
  }
  std::vector<SendSms> sms() const {
    std::vector<SendSms> out;
    for (const auto& a : actions) {
      if (const auto* s = std::get_if<SendSms>(&a)) out.push_back(*s);
    }
    return out;
  }
  std::string say(const scout::core::Message& m) const {
    return scout::core::render_message("Alice", m, state.patients.at("Alice").facts,
                                       config.patients[0].settings, config.units, now, "02:10");
  }
  const scout::core::PatientState& ps() const { return state.patients.at("Alice"); }
  void press1(const std::string& number) {
    for (const auto* slot : {&ps().glucose, &ps().data}) {
      if (!*slot) continue;
      for (const auto& c : (*slot)->calls) {
        if (c.to == number && !scout::core::is_final(c.progress)) {
          const std::string key = c.key;
          apply(scout::core::Keypress{key, "", "1"});
          return;
        }
      }
    }
    FAIL("no call in flight to " << number);
  }
};

}  // namespace

TEST_CASE("a call speaks the newest reading and its true age when it is rendered",
          "[alarm][truth]") {
  World w;
  w.reading_and_poll(0min, 50);
  REQUIRE(w.calls().size() == 1);
  const auto call = w.calls()[0];
  CHECK(w.say(call.message) == "Alice: URGENT LOW, 50 mg/dL, steady, 1 min ago.");
  // The same message rendered later, after a newer reading, says the newer one: the words are
  // never stored.
  w.reading_and_poll(5min, 47);
  w.now = k_t0 + 8min;
  CHECK(w.say(call.message) == "Alice: URGENT LOW, 47 mg/dL, steady, 3 min ago.");
}

TEST_CASE("a glucose alarm never calls while the data are stale, the data alarm speaks for it",
          "[alarm][truth]") {
  World w;
  w.reading_and_poll(0min, 50);  // urgent low: call patient
  REQUIRE(w.calls().size() == 1);
  // Nightscout has nothing newer: the step at 5m (contacts) is due while the reading is fresh.
  for (int m = 2; m <= 15; ++m) w.poll(std::chrono::minutes{m});
  // Fresh until 15 min after the reading (0 + 15): the contacts were called at 5m.
  bool stale_seen = false;
  for (int m = 16; m <= 90; ++m) {
    w.poll(std::chrono::minutes{m});
    for (const auto& c : w.calls()) {
      INFO("minute " << m);
      CHECK(c.message.alarm.kind == AlarmKind::stale);  // never the glucose alarm
      CHECK(c.message.paused == std::optional<scout::core::Alarm>{scout::core::Alarm{
                                    AlarmKind::urgent_low, scout::core::Severity::urgent}});
    }
    for (const auto& s : w.sms()) CHECK(s.message.alarm.kind == AlarmKind::stale);
    if (w.ps().data) stale_seen = true;
    REQUIRE(w.ps().glucose);  // it holds
  }
  CHECK(stale_seen);
  // The data alarm's words name the last value, its true age and the alarm it was raising.
  scout::core::Message m;
  m.alarm = w.ps().data->alarm;
  m.paused = w.ps().glucose->alarm;
  CHECK(w.say(m) ==
        "Alice: NO DATA, no new glucose data for 90 min; the last value, 50 mg/dL, was an "
        "URGENT LOW.");
  // No glucose step is due by time while paused: nothing to spin on.
  const auto due = scout::core::next_due(w.config, w.state, w.now);
  if (due) CHECK(*due > w.now);
}

TEST_CASE("fresh data after a gap restart a glucose alarm at once, ending a snooze given "
          "meanwhile",
          "[alarm][truth]") {
  World w;
  w.reading_and_poll(0min, 50);
  w.press1(k_alice);  // snoozed 15 min
  REQUIRE(w.ps().glucose->snoozed_until);
  // No data for 40 minutes: the data alarm calls; acknowledged too.
  for (int m = 2; m <= 40; ++m) w.poll(std::chrono::minutes{m});
  REQUIRE(w.ps().data);
  // A new snooze on the glucose alarm while stale cannot be given by keypress (its chain is
  // paused); the data alarm's acknowledgement snoozes only the data alarm.
  // Fresh data, still urgent: the data alarm resolves and the glucose alarm calls now.
  w.reading(41min, 45);
  w.poll(41min + 30s);
  CHECK_FALSE(w.ps().data);
  REQUIRE(w.ps().glucose);
  CHECK_FALSE(w.ps().glucose->snoozed_until);
  const auto calls = w.calls();
  REQUIRE(calls.size() == 1);
  CHECK(calls[0].to == k_alice);
  CHECK(calls[0].message.alarm.kind == AlarmKind::urgent_low);
  CHECK(w.say(calls[0].message) == "Alice: URGENT LOW, 45 mg/dL, steady, less than a minute ago.");
}

TEST_CASE("an acknowledged data alarm calls again only when it worsens or after its snooze",
          "[alarm][truth]") {
  World w;
  w.reading_and_poll(0min, 120);
  for (int m = 2; m <= 16; ++m) w.poll(std::chrono::minutes{m});
  REQUIRE(w.ps().data);
  REQUIRE(w.ps().data->alarm.severity == scout::core::Severity::warning);
  w.press1(k_alice);
  REQUIRE(w.ps().data->snoozed_until == std::optional<TimePoint>{w.now + 1h});
  // Nightscout now fails too: unreachable is no worse than stale (warning): nothing.
  w.failing = true;
  for (int m = 17; m <= 30; ++m) {
    w.poll(std::chrono::minutes{m});
    CHECK(w.calls().empty());
  }
  // Past stale.urgent: worse, a new chain calls.
  w.poll(31min);
  REQUIRE(w.calls().size() == 1);
  CHECK(w.ps().data->alarm.severity == scout::core::Severity::urgent);
  w.press1(k_alice);
  // Then only after its snooze (1 h for data alarms).
  int calls = 0;
  for (int m = 32; m <= 31 + 59; ++m) {
    w.poll(std::chrono::minutes{m});
    calls += static_cast<int>(w.calls().size());
  }
  CHECK(calls == 0);
  w.poll(31min + 61min);
  CHECK(w.calls().size() == 1);
}

TEST_CASE("the snooze holds per kind and follows the kind that holds", "[alarm][truth]") {
  World w;
  w.reading_and_poll(0min, 50);  // urgent low
  w.press1(k_alice);
  CHECK(w.ps().glucose->snoozed_until == std::optional<TimePoint>{w.now + 15min});
  CHECK(w.reply->text == "Acknowledged. Snoozed for 15 minutes. Goodbye.");
  // Better but still low (not back by hysteresis): the low's own 30 min from the ack.
  const TimePoint acked = w.now;
  w.reading_and_poll(5min, 62);
  CHECK(w.ps().glucose->alarm.kind == AlarmKind::low);
  CHECK(w.ps().glucose->snoozed_until == std::optional<TimePoint>{acked + 30min});
  // A relapse to urgent low: back to 15 min from the ack.
  w.reading_and_poll(10min, 50);
  CHECK(w.ps().glucose->snoozed_until == std::optional<TimePoint>{acked + 15min});
  // Highs have their own snooze: 1 h.
  World h;
  h.reading_and_poll(0min, 260);
  h.press1(k_alice);
  CHECK(h.ps().glucose->snoozed_until == std::optional<TimePoint>{h.now + 1h});
}

TEST_CASE("an alarm held only by hysteresis does not call after its snooze", "[alarm][truth]") {
  World w;
  w.reading_and_poll(0min, 65);  // low
  w.press1(k_alice);             // 30 min
  // 73 is above low (70) but not back by hysteresis (75): the alarm holds, in the band.
  for (int m = 5; m <= 60; m += 5) {
    w.reading_and_poll(std::chrono::minutes{m}, 73);
    INFO("minute " << m);
    CHECK(w.calls().empty());
  }
  REQUIRE(w.ps().glucose);
  CHECK(w.ps().glucose->in_band);
  // Low again: the snooze is long over, so the chain restarts and calls.
  w.reading_and_poll(65min, 66);
  CHECK_FALSE(w.ps().glucose->in_band);
  REQUIRE(w.calls().size() == 1);
  CHECK(w.say(w.calls()[0].message) == "Alice: LOW, 66 mg/dL, steady, 1 min ago.");
}

TEST_CASE("a batch of assessments is applied before any time-based rule", "[alarm][truth]") {
  // Two patients; Bob's step is due at the moment of the batch, and his new reading resolves
  // it: no step may run from Alice's assessment first.
  World w;
  auto bob = w.config.patients[0];
  bob.name = "Bob";
  bob.phone = "+15550000009";
  bob.contacts = {};
  w.config.patients.push_back(bob);
  const auto assess = [&](const std::string& name, int sgv, Duration reading_at, Duration at) {
    scout::core::PollOutcome o;
    o.entries = {scout::test::entry(k_t0 + reading_at, sgv)};
    return scout::core::PatientAssessed{
        name, scout::core::evaluate(o, w.config.patients[0].settings, k_t0 + at, 0)};
  };
  w.apply(assess("Bob", 65, 0min, 0min));  // low: call Bob
  REQUIRE(w.calls().size() == 1);
  w.now = k_t0 + 16min;  // Bob's repeat is due now (15 min after his call) ...
  scout::core::Assessed batch;
  batch.patients = {assess("Alice", 120, 15min, 16min), assess("Bob", 110, 15min, 16min)};
  w.apply(batch);  // ... but his fresh 110 resolves the alarm first
  CHECK(w.calls().empty());
  CHECK_FALSE(w.state.patients.at("Bob").glucose);
  for (const auto& s : w.sms()) CHECK(s.message.purpose == scout::core::MessagePurpose::resolved);
}

TEST_CASE("a step falling due after the reading went stale, before the next poll, waits",
          "[alarm][truth]") {
  World w;
  w.reading_and_poll(0min, 50);  // call patient at 1 min
  w.tick(6min);                  // step 1: contacts, the reading 6 min old
  REQUIRE_FALSE(w.calls().empty());
  // The chain's repeat is due 15 min after that step; the reading (at 0) is stale from 15 min,
  // and no poll has run since: nothing may be called about it.
  const auto due = scout::core::next_due(w.config, w.state, k_t0 + 21min);
  CHECK((!due || *due > k_t0 + 21min || *due < k_t0 + 15min));
  w.tick(21min);
  CHECK(w.calls().empty());
  CHECK(w.sms().empty());
}
