// app::Service on a simulated clock (ManualClock, ReplaySource, SimulatedTelephony,
// MemoryStateStorage): the order within a tick (SPEC §4.11), messages rendered when sent
// (§4.8), the listener's replies, and cron mode (no listener, outcomes learned by polling).

#include <catch2/catch.hpp>

#include <chrono>
#include <map>
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

namespace {

const std::string k_alice = "+15550000001";
const std::string k_bob = "+15550000002";

scout::core::Config make_config() {
  scout::core::Config c;
  c.poll.interval = 60s;
  scout::core::Patient p;
  p.name = "Alice";
  p.timezone = "UTC";
  p.phone = k_alice;
  p.contacts = {{"Bob", k_bob}};
  p.settings.escalation = scout::adapters::default_escalation();
  p.settings.predict.enabled = false;
  c.patients = {p};
  return c;
}

// One service and its simulated world. `listening`: webhooks delivered by the test; else the
// service polls the simulated provider (cron mode).
struct World {
  explicit World(std::vector<scout::core::Entry> entries, bool with_listener,
                 std::map<std::string, scout::app::Answer> answers = {})
      : listening(with_listener),
        clock(k_t0),
        source(clock, {{"Alice", std::move(entries)}}),
        telephony(clock, std::move(answers), scout::app::Answer::never) {
    scout::app::ServiceOptions options;
    options.listening = with_listener;
    options.log_journal = false;
    options.on_outbound = [this](const scout::app::Outbound& o) { sent.push_back(o); };
    service = std::make_unique<scout::app::Service>(config, scout::core::State{}, clock, source,
                                                    telephony, storage, journal, options);
  }
  bool listening;
  scout::core::Config config = make_config();
  scout::app::ManualClock clock;
  scout::app::ReplaySource source;
  scout::app::SimulatedTelephony telephony;
  scout::app::MemoryStateStorage storage;
  scout::app::RecordingJournal journal;
  std::vector<scout::app::Outbound> sent;
  std::unique_ptr<scout::app::Service> service;

  // Delivers every simulated webhook due up to `t` (with a listener; without one the service
  // polls the provider), then ticks at `t` (+ t0).
  void tick_at(std::chrono::milliseconds t) {
    while (const auto at = telephony.next_event_at()) {
      if (!listening) break;
      if (*at > k_t0 + t) break;
      clock.set(*at);
      service->deliver(*telephony.take_next());
    }
    clock.set(k_t0 + t);
    service->tick();
  }
  std::vector<scout::app::Outbound> sent_since(std::size_t n) const {
    return {sent.begin() + static_cast<std::ptrdiff_t>(n), sent.end()};
  }
};

}  // namespace

TEST_CASE("cron mode: a fresh reading is assessed before the polled outcome of an earlier call",
          "[app][service]") {
  // Run 1 calls the patient about 50 mg/dL. Before run 2 the call has rung out unanswered (the
  // urgent chain would call the contacts at once) but a fresh 100 mg/dL has arrived: the alarm
  // resolves first, and nothing but the all-clear goes out.
  World w({entry(k_t0 - 1min, 50), entry(k_t0 + 4min, 100)}, /*listening=*/false);
  w.tick_at(0s);
  REQUIRE(w.sent.size() == 1);
  CHECK(w.sent[0].call);
  CHECK(w.sent[0].text == "Alice: URGENT LOW, 50 mg/dL, steady, 1 min ago.");
  const auto before = w.sent.size();
  w.tick_at(5min);
  const auto run2 = w.sent_since(before);
  REQUIRE(run2.size() == 1);
  CHECK_FALSE(run2[0].call);
  CHECK(run2[0].to == k_alice);
  CHECK(run2[0].text == "Alice: URGENT LOW is over, now 100 mg/dL.");
}

TEST_CASE("cron mode: the unanswered outcome escalates with the newest reading's words",
          "[app][service]") {
  World w({entry(k_t0 - 1min, 50), entry(k_t0 + 1min, 48)}, /*listening=*/false);
  w.tick_at(0s);
  REQUIRE(w.sent.size() == 1);
  const auto before = w.sent.size();
  w.tick_at(2min);  // the patient's call rang out (45 s): contacts now, speaking 48
  const auto run2 = w.sent_since(before);
  REQUIRE(run2.size() == 2);  // call Bob, SMS Bob
  for (const auto& o : run2) {
    CHECK(o.to == k_bob);
    CHECK(o.text.rfind("Alice: URGENT LOW, 48 mg/dL, steady, 1 min ago.", 0) == 0);
  }
}

TEST_CASE("with a listener, a keypress other than 1 or 2 hears the alarm rendered now",
          "[app][service]") {
  World w({entry(k_t0 - 1min, 50), entry(k_t0 + 1min, 47)}, /*listening=*/true);
  w.tick_at(0s);
  w.tick_at(2min);  // the newest reading is now 47, one minute old
  const auto state = w.service->state();
  const auto& call = state.patients.at("Alice").glucose->calls.front();
  const auto reply = w.service->deliver(scout::core::Keypress{call.key, "", "7"});
  REQUIRE(reply);
  CHECK(reply->kind == scout::core::KeypressReply::Kind::repeat_prompt);
  CHECK(reply->text == "Alice: URGENT LOW, 47 mg/dL, steady, 1 min ago.");
}

TEST_CASE("while Nightscout cannot be read, the glucose alarm is quiet and the data alarm "
          "speaks",
          "[app][service]") {
  World w({entry(k_t0 - 1min, 50)}, /*listening=*/true);
  w.source.fail_until("Alice", k_t0 + 2h,
                      scout::core::Error{scout::core::ErrorKind::timeout, "timed out"});
  // The first poll fails at once: nothing is known, nothing is said yet.
  for (int m = 0; m <= 60; ++m) w.tick_at(std::chrono::minutes{m});
  REQUIRE_FALSE(w.sent.empty());
  for (const auto& o : w.sent) CHECK(o.message.alarm.kind == scout::core::AlarmKind::unreachable);
}

TEST_CASE("a stale reading never gets a glucose call, the data alarm names the last value",
          "[app][service]") {
  World w({entry(k_t0 - 1min, 50)}, /*listening=*/true);
  for (int m = 0; m <= 40; ++m) w.tick_at(std::chrono::minutes{m});
  bool data_spoke = false;
  for (const auto& o : w.sent) {
    INFO(o.text);
    const auto age = o.at - (k_t0 - 1min);
    if (o.message.alarm.kind == scout::core::AlarmKind::urgent_low) CHECK(age <= 15min);
    if (o.message.alarm.kind == scout::core::AlarmKind::stale) {
      data_spoke = true;
      CHECK(o.text.find("the last value, 50 mg/dL, was an URGENT LOW") != std::string::npos);
    }
  }
  CHECK(data_spoke);
}

namespace {

// Two patients; Alice's Nightscout answers at once, Bob's (another patient) only after `hang`.
class SlowSecond final : public scout::app::CgmSource {
 public:
  SlowSecond(scout::app::ManualClock& clock, std::function<void()> between)
      : clock_(clock), between_(std::move(between)) {}
  std::vector<scout::app::FetchResult> fetch(const std::vector<const scout::core::Patient*>&) override {
    return {};
  }
  void fetch_each(const std::vector<const scout::core::Patient*>& patients,
                  const std::function<void(scout::app::Answers&&)>& on_answers) override {
    const auto now = clock_.now();
    scout::app::Answers first;
    first.emplace_back(0, std::vector<scout::core::Entry>{entry(now - 1min, 45)});
    on_answers(std::move(first));
    between_();  // what happened before the slow one answered
    clock_.advance(8s);
    scout::app::Answers second;
    second.emplace_back(1, scout::core::fail(scout::core::ErrorKind::timeout, "timed out"));
    on_answers(std::move(second));
    (void)patients;
  }

 private:
  scout::app::ManualClock& clock_;
  std::function<void()> between_;
};

}  // namespace

TEST_CASE("a patient is called as soon as their Nightscout answers, not after the slowest",
          "[app][service]") {
  auto config = make_config();
  auto carol = config.patients[0];
  carol.name = "Carol";
  carol.phone = "+15550000003";
  carol.contacts = {};
  config.patients.push_back(carol);
  scout::app::ManualClock clock(k_t0);
  std::vector<scout::app::Outbound> sent;
  std::size_t sent_before_slow = 0;
  SlowSecond source(clock, [&] { sent_before_slow = sent.size(); });
  scout::app::SimulatedTelephony telephony(clock, {}, scout::app::Answer::never);
  scout::app::MemoryStateStorage storage;
  scout::app::RecordingJournal journal;
  scout::app::ServiceOptions options;
  options.listening = true;
  options.log_journal = false;
  options.on_outbound = [&](const scout::app::Outbound& o) { sent.push_back(o); };
  scout::app::Service service(config, scout::core::State{}, clock, source, telephony, storage,
                              journal, options);
  service.tick();
  // Alice's call went out while Carol's Nightscout was still being waited for.
  REQUIRE(sent_before_slow == 1);
  CHECK(sent[0].to == k_alice);
  CHECK(sent[0].at == k_t0);
  CHECK(sent[0].text == "Alice: URGENT LOW, 45 mg/dL, steady, 1 min ago.");
  // The tick saved the state before that call (save before acting) and once more at its end.
  CHECK(storage.saves() >= 2);
}

TEST_CASE("a new reading that changes no alarm is saved within 5 minutes, not at every tick",
          "[app][service]") {
  // Given Alice in range, her first tick saved
  World w({entry(k_t0 - 1min, 120), entry(k_t0 + 1min, 118), entry(k_t0 + 6min, 60)},
          /*listening=*/true);
  w.tick_at(0s);
  const int first = w.storage.saves();
  REQUIRE(first >= 1);
  CHECK(w.storage.last()->patients.at("Alice").facts.latest->sgv == 120);
  // When a newer reading in range comes: the tick does not rewrite the state file for it
  w.tick_at(2min);
  CHECK(w.storage.saves() == first);
  REQUIRE(w.service->flush());
  CHECK(w.storage.saves() == first);
  CHECK(w.service->state().patients.at("Alice").facts.latest->sgv == 118);
  // When 5 minutes have gone by since that change, the run loop's flush saves it
  w.clock.set(k_t0 + 2min + scout::app::k_facts_saved_within - 1s);
  REQUIRE(w.service->flush());
  CHECK(w.storage.saves() == first);
  w.clock.set(k_t0 + 2min + scout::app::k_facts_saved_within);
  REQUIRE(w.service->flush());
  CHECK(w.storage.saves() == first + 1);
  CHECK(w.storage.last()->patients.at("Alice").facts.latest->sgv == 118);
  REQUIRE(w.service->flush());
  CHECK(w.storage.saves() == first + 1);
  // When a reading raises an alarm, it is saved at once, before the call goes out
  const std::size_t sent = w.sent.size();
  w.tick_at(7min + 30s);
  REQUIRE(w.sent.size() > sent);
  CHECK(w.storage.saves() > first + 1);
  CHECK(w.storage.last()->patients.at("Alice").facts.latest->sgv == 60);
  CHECK(w.storage.last()->patients.at("Alice").glucose.has_value());
}

TEST_CASE("a call's progress is saved with the next flush, a keypress at once", "[app][service]") {
  // Given a service with a listener that has called Alice about 50 mg/dL
  World w({entry(k_t0 - 1min, 50)}, /*listening=*/true);
  w.tick_at(0s);
  const auto state = w.service->state();
  const auto& call = state.patients.at("Alice").glucose->calls.front();
  // When a webhook says the call was answered (not yet acknowledged: ack is a keypress)
  const int before = w.storage.saves();
  w.service->deliver(scout::core::CallUpdate{call.key, call.call_id,
                                             scout::core::CallProgress::answered, "answered"});
  // Then nothing is written yet (a mass event must not write the state file once per call)
  CHECK(w.storage.saves() == before);
  CHECK(w.storage.last()->patients.at("Alice").glucose->calls.front().progress !=
        scout::core::CallProgress::answered);
  // When the run loop flushes, the progress is saved, once
  REQUIRE(w.service->flush());
  CHECK(w.storage.saves() == before + 1);
  CHECK(w.storage.last()->patients.at("Alice").glucose->calls.front().progress ==
        scout::core::CallProgress::answered);
  REQUIRE(w.service->flush());
  CHECK(w.storage.saves() == before + 1);
  // When Alice presses 1, the acknowledgement is saved before the reply is spoken
  const auto reply = w.service->deliver(scout::core::Keypress{call.key, call.call_id, "1"});
  REQUIRE(reply);
  CHECK(w.storage.saves() == before + 2);
  CHECK(w.storage.last()->patients.at("Alice").glucose->acknowledged_at.has_value());
}
