// SPEC §6: a call that was decided (saved as `placing`) but never confirmed by a provider is
// neither lost nor placed twice after a restart: the new process asks the providers first.
// Simulated clock and telephony; the binary-level kill-at-every-save test is in
// tests/integration/test_crash_points.cpp.

#include <catch2/catch.hpp>

#include <chrono>
#include <string>
#include <vector>

#include "scout/adapters/yaml_config.hpp"
#include "scout/app/service.hpp"
#include "scout/app/simulated.hpp"
#include "support/entries.hpp"

using namespace std::chrono_literals;
using scout::core::TimePoint;
using scout::test::entry;
using scout::test::k_t0;
namespace core = scout::core;
namespace app = scout::app;

namespace {

const std::string k_alice = "+15550000001";
const std::string k_bob = "+15550000002";

core::Config make_config() {
  core::Config c;
  c.poll.interval = 60s;
  core::Patient p;
  p.name = "Alice";
  p.timezone = "UTC";
  p.phone = k_alice;
  p.contacts = {{"Bob", k_bob}};
  p.settings.escalation = scout::adapters::default_escalation();
  p.settings.predict.enabled = false;
  c.patients = {p};
  return c;
}

// The state a process saved when it decided the first call of an urgent low at t0 and then died
// before anything else: the call is `placing`, without a provider id.
core::State decided_state(const core::Config& config) {
  core::PollOutcome outcome;
  outcome.entries = {entry(k_t0 - 1min, 45)};
  const auto assessment = app::assess(config.patients[0], outcome, k_t0);
  auto t = core::step(config, core::State{}, core::PatientAssessed{"Alice", assessment}, k_t0);
  REQUIRE(t.state.patients.at("Alice").glucose);
  REQUIRE(t.state.patients.at("Alice").glucose->calls.size() == 1);
  REQUIRE(t.state.patients.at("Alice").glucose->calls[0].progress == core::CallProgress::placing);
  return t.state;
}

struct Restarted {
  Restarted(core::State state, TimePoint at)
      : clock(at), source(clock, {{"Alice", {entry(k_t0 - 1min, 45)}}}),
        telephony(clock, {}, app::Answer::never) {
    saved = std::move(state);
  }
  void start() {
    app::ServiceOptions options;
    options.listening = true;
    options.log_journal = false;
    options.on_outbound = [this](const app::Outbound& o) { sent.push_back(o); };
    service = std::make_unique<app::Service>(config, saved, clock, source, telephony, storage,
                                             journal, options);
  }
  const core::CallRecord& first_call() const {
    state_copy = service->state();
    return state_copy.patients.at("Alice").glucose->calls.at(0);
  }
  core::Config config = make_config();
  core::State saved;
  app::ManualClock clock;
  app::ReplaySource source;
  app::SimulatedTelephony telephony;
  app::MemoryStateStorage storage;
  app::RecordingJournal journal;
  std::vector<app::Outbound> sent;
  std::unique_ptr<app::Service> service;
  mutable core::State state_copy;
};

std::size_t calls_to(const std::vector<app::Outbound>& sent, const std::string& to) {
  std::size_t n = 0;
  for (const auto& o : sent) n += o.call && o.to == to ? 1 : 0;
  return n;
}

}  // namespace

TEST_CASE("undispatched_calls gives back the PlaceCall of every placing call without an id",
          "[app][recovery]") {
  const auto config = make_config();
  const auto state = decided_state(config);
  const auto calls = core::undispatched_calls(config, state);
  REQUIRE(calls.size() == 1);
  const auto& record = state.patients.at("Alice").glucose->calls[0];
  CHECK(calls[0].call_key == record.key);
  CHECK(calls[0].to == k_alice);
  CHECK(calls[0].to_label == "patient");
  CHECK(calls[0].alarm_id == state.patients.at("Alice").glucose->id);
  CHECK(calls[0].message.alarm.kind == core::AlarmKind::urgent_low);
  CHECK(calls[0].gather);
  // Once a provider confirmed it, it is not undispatched any more.
  auto placed = core::step(config, state, core::CallPlaced{record.key, "vonage", "u-1", ""}, k_t0);
  CHECK(core::undispatched_calls(config, placed.state).empty());
}

TEST_CASE("a call decided before a crash and never placed is placed once after the restart",
          "[app][recovery]") {
  Restarted r(decided_state(make_config()), k_t0 + 20s);
  r.start();
  r.service->tick();
  r.service->drain();
  CHECK(calls_to(r.sent, k_alice) == 1);
  CHECK(r.first_call().progress == core::CallProgress::ringing);
  CHECK_FALSE(r.first_call().call_id.empty());
  // Rendered now, from the facts: the reading's true age at the restart.
  REQUIRE_FALSE(r.sent.empty());
  CHECK(r.sent[0].text == "Alice: URGENT LOW, 45 mg/dL, steady, 1 min ago.");
  // Later ticks do not place it again.
  r.clock.set(k_t0 + 40s);
  r.service->tick();
  CHECK(calls_to(r.sent, k_alice) == 1);
}

TEST_CASE("a call the provider placed before the crash is followed, not placed again",
          "[app][recovery]") {
  Restarted r(decided_state(make_config()), k_t0 + 2s);
  // The dead process's create-call reached the provider at t0.
  r.clock.set(k_t0);
  const auto existing = r.telephony.place_call(
      scout::adapters::CallRequest{"c-old", k_alice, "x", true, k_t0, {}});
  REQUIRE(existing);
  r.clock.set(k_t0 + 2s);
  r.start();
  r.service->tick();
  CHECK(calls_to(r.sent, k_alice) == 0);
  CHECK(r.first_call().call_id == existing->id);
  CHECK(r.first_call().progress == core::CallProgress::ringing);
}

TEST_CASE("a call to the same number that scout already knows is not taken for the lost one",
          "[app][recovery]") {
  const auto config = make_config();
  auto state = decided_state(config);
  // An earlier call to Alice, known with its id, a few seconds before the decision.
  core::CallRecord earlier = state.patients.at("Alice").glucose->calls[0];
  earlier.key = "c-earlier";
  earlier.call_id = "sim-1";
  earlier.provider = "simulated";
  earlier.progress = core::CallProgress::unanswered;
  earlier.placed_at = k_t0 - 10s;
  earlier.ended_at = k_t0 - 5s;
  state.patients.at("Alice").glucose->calls.insert(
      state.patients.at("Alice").glucose->calls.begin(), earlier);
  Restarted r(state, k_t0 - 10s);
  const auto old = r.telephony.place_call(
      scout::adapters::CallRequest{"c-earlier", k_alice, "x", true, k_t0 - 10s, {}});
  REQUIRE(old);
  REQUIRE(old->id == "sim-1");
  r.clock.set(k_t0 + 5s);
  r.start();
  r.service->tick();
  CHECK(calls_to(r.sent, k_alice) == 1);  // the lost one, placed now
}

TEST_CASE("while the providers cannot be asked, the lost call waits, then it is placed once",
          "[app][recovery]") {
  Restarted r(decided_state(make_config()), k_t0 + 10s);
  r.telephony.set_down(true);
  r.start();
  r.service->tick();
  CHECK(r.sent.empty());
  CHECK(r.first_call().progress == core::CallProgress::placing);
  r.telephony.set_down(false);
  r.clock.set(k_t0 + 70s);
  r.service->tick();
  CHECK(calls_to(r.sent, k_alice) == 1);
  r.clock.set(k_t0 + 130s);
  r.service->tick();
  CHECK(calls_to(r.sent, k_alice) == 1);
}

TEST_CASE("a call decided 5 minutes or more before the restart counts as failed and the chain "
          "goes on",
          "[app][recovery]") {
  Restarted r(decided_state(make_config()), k_t0 + 6min);
  r.start();
  r.service->tick();
  r.service->drain();
  CHECK(calls_to(r.sent, k_alice) == 0);
  // The urgent chain's next step (the contacts) runs at once: the patient's call failed.
  CHECK(calls_to(r.sent, k_bob) == 1);
  const auto state = r.service->state();
  const auto& calls = state.patients.at("Alice").glucose->calls;
  CHECK(calls.at(0).progress == core::CallProgress::failed);
}

TEST_CASE("an SMS decided before a crash and never reported sent is sent once after the restart",
          "[app][recovery][sms]") {
  const auto config = make_config();
  // The contacts' step (5 min) decided a call and an SMS to Bob, saved, then the process died.
  auto t = core::step(config, decided_state(config), core::Tick{}, k_t0 + 5min);
  core::State state = t.state;
  REQUIRE(state.sms_in_flight.size() == 1);
  REQUIRE(state.sms_in_flight.begin()->second.to == k_bob);
  Restarted r(state, k_t0 + 5min + 3s);
  r.start();
  r.service->tick();
  r.service->drain();
  std::size_t texts = 0;
  for (const auto& o : r.sent) {
    if (o.call || o.to != k_bob) continue;
    ++texts;
    // Rendered when it goes out, from the newest facts (SPEC §4.8).
    CHECK(o.text.rfind("Alice: URGENT LOW, 45 mg/dL", 0) == 0);
  }
  CHECK(texts == 1);
  CHECK(r.service->state().sms_in_flight.empty());
  // Not again at the next tick.
  r.clock.set(k_t0 + 5min + 30s);
  r.service->tick();
  r.service->drain();
  std::size_t again = 0;
  for (const auto& o : r.sent) again += !o.call && o.to == k_bob ? 1 : 0;
  CHECK(again == 1);
}
