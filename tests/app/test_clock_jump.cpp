// SPEC §6: times that decide escalation survive the wall clock jumping back or forward. The
// machine rebases its own times on core::ClockJumped; the Service notices a jump by comparing
// the wall clock with the monotonic one. A night with a jump must call and text exactly as the
// same night without one, at the same moments of real (monotonic) time.

#include <catch2/catch.hpp>

#include <chrono>
#include <string>
#include <vector>

#include "scout/adapters/yaml_config.hpp"
#include "scout/app/service.hpp"
#include "scout/app/simulated.hpp"
#include "support/entries.hpp"

using namespace std::chrono_literals;
using scout::core::Duration;
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
  p.settings.min_call_gap = 5min;
  p.settings.predict.enabled = false;
  c.patients = {p};
  return c;
}

// A Nightscout whose uploader keeps time with scout's wall clock: a 45 mg/dL reading a minute
// old at every poll (so the readings stay fresh across the jump and only scout's own times are
// tested).
class LowSource final : public app::CgmSource {
 public:
  explicit LowSource(const app::Clock& clock) : clock_(clock) {}
  std::vector<app::FetchResult> fetch(const std::vector<const core::Patient*>& patients) override {
    std::vector<app::FetchResult> out;
    const TimePoint now = clock_.now();
    for (std::size_t i = 0; i < patients.size(); ++i) {
      out.emplace_back(std::vector<core::Entry>{entry(now - 1min, 45), entry(now - 6min, 46)});
    }
    return out;
  }

 private:
  const app::Clock& clock_;
};

struct Sent {
  Duration at;  // monotonic time since the start
  bool call;
  std::string to;
  core::MessagePurpose purpose;
  bool operator==(const Sent&) const = default;
};

// One hour on a 30 s tick, Alice acknowledging every call and Bob never answering; the wall
// clock jumps by `jump` at 5 minutes (none when zero).
std::vector<Sent> night(Duration jump, app::Answer alice) {
  const core::Config config = make_config();
  app::ManualClock clock(k_t0);
  LowSource source(clock);
  app::SimulatedTelephony telephony(clock, {{k_alice, alice}}, app::Answer::never);
  app::MemoryStateStorage storage;
  app::RecordingJournal journal;
  std::vector<Sent> sent;
  app::ServiceOptions options;
  options.listening = true;
  options.log_journal = false;
  options.on_outbound = [&](const app::Outbound& o) {
    sent.push_back(Sent{clock.monotonic() - k_t0.time_since_epoch(), o.call, o.to,
                        o.message.purpose});
  };
  app::Service service(config, core::State{}, clock, source, telephony, storage, journal, options);
  Duration offset{0};
  for (Duration t{0}; t <= 60min; t += 30s) {
    if (jump != Duration{0} && t == 5min) {
      clock.jump(jump);
      offset = jump;
    }
    const TimePoint wall = k_t0 + t + offset;
    while (const auto at = telephony.next_event_at()) {
      if (*at > wall) break;
      clock.set(std::max(*at, k_t0 + offset + (t > 30s ? t - 30s : Duration{0})));
      service.deliver(*telephony.take_next());
    }
    clock.set(wall);
    service.tick();
  }
  return sent;
}

}  // namespace

TEST_CASE("ClockJumped moves every time scout read from its own clock, not reading dates",
          "[core][clock]") {
  const core::Config config = make_config();
  core::PollOutcome outcome;
  outcome.entries = {entry(k_t0 - 1min, 45)};
  const auto assessed = app::assess(config.patients[0], outcome, k_t0);
  auto t = core::step(config, core::State{}, core::PatientAssessed{"Alice", assessed}, k_t0);
  const auto& before = *t.state.patients.at("Alice").glucose;
  auto jumped = core::step(config, t.state, core::ClockJumped{-1h}, k_t0 - 1h);
  const auto& after = *jumped.state.patients.at("Alice").glucose;
  CHECK(after.raised_at == before.raised_at - 1h);
  CHECK(after.chain_start == before.chain_start - 1h);
  REQUIRE(after.last_step_at);
  CHECK(*after.last_step_at == *before.last_step_at - 1h);
  CHECK(after.calls.at(0).placed_at == before.calls.at(0).placed_at - 1h);
  CHECK(jumped.state.numbers.at(k_alice).calls.at(0) == t.state.numbers.at(k_alice).calls.at(0) - 1h);
  // The reading is Nightscout's: it keeps its date.
  CHECK(jumped.state.patients.at("Alice").facts.latest == t.state.patients.at("Alice").facts.latest);
  bool journaled = false;
  for (const auto& action : jumped.actions) {
    if (const auto* e = std::get_if<core::JournalEntry>(&action); e && e->type == "clock_jumped") {
      journaled = true;
    }
  }
  CHECK(journaled);
  // Forward: the last hour's call is still known afterwards (moved before pruning), so
  // min_call_gap holds.
  auto forward = core::step(config, t.state, core::ClockJumped{2h}, k_t0 + 2h);
  REQUIRE(forward.state.numbers.count(k_alice) == 1);
  CHECK(forward.state.numbers.at(k_alice).calls.at(0) == t.state.numbers.at(k_alice).calls.at(0) + 2h);
}

TEST_CASE("a night with the wall clock jumping an hour back or forward calls and texts as the "
          "same night without the jump",
          "[app][clock]") {
  for (const auto alice : {app::Answer::ack, app::Answer::never}) {
    CAPTURE(app::to_string(alice));
    const auto steady = night(Duration{0}, alice);
    REQUIRE(steady.size() >= 3);
    for (const Duration jump : {Duration{-1h}, Duration{1h}, Duration{-10min}, Duration{7h}}) {
      CAPTURE(jump.count());
      const auto jumped = night(jump, alice);
      CHECK(jumped == steady);
    }
  }
}
