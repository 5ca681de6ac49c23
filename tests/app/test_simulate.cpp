// Specification of scout/app/simulate.hpp: replaying a trace through core::evaluate and
// core::step with the console provider's outcomes. Settings: app::trace_config (built-in
// defaults: urgent_low 55, low 70, hysteresis 5, stale 15m/30m, snooze 30m, min_call_gap 2m;
// escalation urgent = call patient at 0s, then after 5m call + text contacts; warning = call
// patient at 0s, then after 15m text contacts; repeat 15m), patient P with contacts Bob, Carol.

#include <algorithm>
#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "scout/app/simulate.hpp"
#include "support/entries.hpp"

using namespace std::chrono_literals;
using scout::app::find_low_episodes;
using scout::app::Notification;
using scout::app::SimulationOptions;
using scout::app::SimulationResult;
using scout::app::simulate_trace;
using scout::app::trace_config;
using scout::core::AlarmKind;
using scout::core::ConsoleAnswer;
using scout::core::Entry;
using scout::core::Severity;
using scout::core::TimePoint;
using scout::test::k_t0;

namespace {

// `count` readings every `cadence` from k_t0, the i-th reading's sgv given by `sgv(i)`; newest
// first, as Nightscout serves them.
std::vector<Entry> readings(int count, const std::function<int(int)>& sgv,
                            scout::core::Duration cadence = 5min) {
  std::vector<Entry> entries;
  for (int i = 0; i < count; ++i) {
    entries.push_back(scout::test::entry(k_t0 + cadence * i, sgv(i)));
  }
  std::reverse(entries.begin(), entries.end());
  return entries;
}

// 3 h at 120, 40 min at 48 (readings 36..43, k_t0+180min .. k_t0+215min), 2 h at 120.
std::vector<Entry> dip_trace() {
  return readings(68, [](int i) { return i >= 36 && i < 44 ? 48 : 120; });
}
const TimePoint k_dip_start = k_t0 + 180min;
const TimePoint k_dip_end = k_t0 + 215min;

SimulationResult simulate(const std::vector<Entry>& entries, ConsoleAnswer answer,
                          scout::core::Duration tail = 0min) {
  const auto config = trace_config(answer);
  SimulationOptions options;
  options.answer = answer;
  options.tail = tail;
  return simulate_trace(config, config.patients.front(), entries, options);
}

std::vector<std::string> labels(const SimulationResult& r, bool calls, TimePoint at) {
  std::vector<std::string> out;
  for (const Notification& n : r.notifications) {
    if (n.call == calls && n.at == at) out.push_back(n.to_label);
  }
  return out;
}

using Labels = std::vector<std::string>;

}  // namespace

TEST_CASE("simulate: a flat 120 trace raises nothing and calls nobody", "[simulate]") {
  const auto r = simulate(readings(72, [](int) { return 120; }), ConsoleAnswer::never);
  CHECK(r.first == k_t0 + 1h);  // lead_in 1h by default
  CHECK(r.last == k_t0 + 355min);  // the last reading, tail 0
  CHECK(r.days == Approx(295.0 / 1440.0));
  CHECK(r.calls == 0);
  CHECK(r.sms == 0);
  CHECK(r.alarms_raised == 0);
  CHECK(r.alarms.empty());
  CHECK(r.episodes.empty());
  CHECK(r.journal.empty());
}

TEST_CASE("simulate: a 40-minute dip to 48 with nobody answering reaches the contacts",
          "[simulate]") {
  const auto r = simulate(dip_trace(), ConsoleAnswer::never);

  REQUIRE(r.episodes.size() == 1);
  const auto& episode = r.episodes.front();
  CHECK(episode.start == k_dip_start);
  CHECK(episode.end == k_dip_end);
  CHECK(episode.nadir == 48);
  CHECK(episode.alarmed);
  REQUIRE(episode.reached_after.has_value());
  CHECK(*episode.reached_after == 0min);  // the first tick that sees 48 calls the patient
  CHECK(episode.called_after == std::optional<scout::core::Duration>(0min));

  REQUIRE(r.alarms.size() == 1);
  CHECK(r.alarms_raised == 1);
  CHECK(r.alarms.front().alarm.kind == AlarmKind::urgent_low);
  CHECK(r.alarms.front().raised_at == k_dip_start);
  // Resolved by the first reading back at 120 (>= low 70 + hysteresis 5).
  CHECK(r.alarms.front().ended_at == k_dip_end + 5min);

  // Run 0: the patient at once; the unanswered outcome (next tick) runs step 1 early.
  CHECK(labels(r, true, k_dip_start) == Labels{"patient"});
  CHECK(labels(r, true, k_dip_start + 1min) == Labels{"Bob", "Carol"});
  CHECK(labels(r, false, k_dip_start + 1min) == Labels{"Bob", "Carol"});
  // Repeat 15m after the last step: runs 1 and 2 the same way.
  CHECK(labels(r, true, k_dip_start + 16min) == Labels{"patient"});
  CHECK(labels(r, true, k_dip_start + 17min) == Labels{"Bob", "Carol"});
  CHECK(labels(r, true, k_dip_start + 32min) == Labels{"patient"});
  CHECK(labels(r, true, k_dip_start + 33min) == Labels{"Bob", "Carol"});
  // The all-clear to everyone notified.
  CHECK(labels(r, false, k_dip_end + 5min) == Labels{"patient", "Bob", "Carol"});
  CHECK(r.calls == 9);
  CHECK(r.sms == 9);
  CHECK(r.calls_held_back == 0);
  CHECK(r.alarms.front().calls == 9);
  CHECK(r.alarms.front().sms == 9);
}

TEST_CASE("simulate: a 40-minute dip to 48 acknowledged by the patient calls no contact",
          "[simulate]") {
  const auto r = simulate(dip_trace(), ConsoleAnswer::ack);

  REQUIRE(r.episodes.size() == 1);
  CHECK(r.episodes.front().alarmed);
  REQUIRE(r.episodes.front().reached_after.has_value());
  CHECK(*r.episodes.front().reached_after == 0min);
  CHECK(r.episodes.front().called_after == std::optional<scout::core::Duration>(0min));

  // Keypress 1 on the next tick snoozes 30m; the snooze ends while the dip holds, so the chain
  // restarts and calls the patient again, who acknowledges again.
  CHECK(labels(r, true, k_dip_start) == Labels{"patient"});
  CHECK(labels(r, true, k_dip_start + 31min) == Labels{"patient"});
  CHECK(labels(r, false, k_dip_end + 5min) == Labels{"patient"});
  CHECK(r.calls == 2);
  CHECK(r.sms == 1);
  for (const auto& n : r.notifications) CHECK(n.to_label == "patient");
  CHECK(std::count_if(r.journal.begin(), r.journal.end(),
                      [](const auto& e) { return e.type == "acknowledged"; }) == 2);
}

TEST_CASE("simulate: a gap of more than 30 minutes raises a stale alarm, then an urgent one",
          "[simulate]") {
  // Readings every 5 min up to k_t0+115min, none until k_t0+180min, then 1 h more.
  auto entries = readings(48, [](int) { return 120; });
  std::erase_if(entries, [](const Entry& e) {
    return e.date >= k_t0 + 120min && e.date < k_t0 + 180min;
  });
  const auto r = simulate(entries, ConsoleAnswer::never);

  REQUIRE(r.alarms.size() == 2);
  // Age 16 min > stale.warn 15m at k_t0+131min.
  CHECK(r.alarms[0].alarm.kind == AlarmKind::stale);
  CHECK(r.alarms[0].alarm.severity == Severity::warning);
  CHECK(r.alarms[0].raised_at == k_t0 + 131min);
  // Age 31 min > stale.urgent 30m replaces it at k_t0+146min.
  CHECK(r.alarms[1].alarm.kind == AlarmKind::stale);
  CHECK(r.alarms[1].alarm.severity == Severity::urgent);
  CHECK(r.alarms[1].raised_at == k_t0 + 146min);
  CHECK(r.alarms[0].ended_at == k_t0 + 146min);
  // The reading at k_t0+180min resolves it.
  CHECK(r.alarms[1].ended_at == k_t0 + 180min);
  CHECK(r.alarms_raised == 2);
  CHECK(labels(r, true, k_t0 + 131min) == Labels{"patient"});
  CHECK(labels(r, true, k_t0 + 146min) == Labels{"patient"});
  CHECK(labels(r, true, k_t0 + 147min) == Labels{"Bob", "Carol"});
  CHECK(r.episodes.empty());
  for (const auto& n : r.notifications) CHECK_FALSE(n.low_side);
}

TEST_CASE("simulate: the end of a trace is a stale alarm unless tail is 0", "[simulate]") {
  const auto flat = readings(36, [](int) { return 120; });
  const auto with_tail = simulate(flat, ConsoleAnswer::never, 1h);
  REQUIRE_FALSE(with_tail.alarms.empty());
  CHECK(with_tail.alarms.front().alarm.kind == AlarmKind::stale);
  CHECK(with_tail.last == k_t0 + 175min + 1h);
  CHECK(simulate(flat, ConsoleAnswer::never).alarms.empty());
}

TEST_CASE("simulate: an episode before the first tick is not seen unless lead_in is 0",
          "[simulate]") {
  // 48 for the first 20 min, then 120 for 3 h.
  const auto entries = readings(40, [](int i) { return i < 4 ? 48 : 120; });
  const auto config = trace_config(ConsoleAnswer::never);
  SimulationOptions options;
  options.tail = 0min;
  const auto late = simulate_trace(config, config.patients.front(), entries, options);
  REQUIRE(late.episodes.size() == 1);
  CHECK_FALSE(late.episodes.front().alarmed);
  CHECK_FALSE(late.episodes.front().reached_after.has_value());
  CHECK_FALSE(late.episodes.front().called_after.has_value());

  options.lead_in = 0min;
  const auto early = simulate_trace(config, config.patients.front(), entries, options);
  REQUIRE(early.episodes.size() == 1);
  CHECK(early.episodes.front().alarmed);
  CHECK(early.first == k_t0);
}

TEST_CASE("simulate: the same trace gives the same result", "[simulate]") {
  const auto a = simulate(dip_trace(), ConsoleAnswer::never);
  const auto b = simulate(dip_trace(), ConsoleAnswer::never);
  CHECK(a.journal == b.journal);
  CHECK(a.calls == b.calls);
  CHECK(a.sms == b.sms);
}

TEST_CASE("simulate: low episodes are counted as data/cgm/README.md counts them", "[simulate]") {
  SECTION("three 5-minute readings below 54 last 15 minutes; two do not") {
    const auto three = readings(10, [](int i) { return i >= 3 && i < 6 ? 50 : 100; });
    REQUIRE(find_low_episodes(three).size() == 1);
    CHECK(find_low_episodes(three).front().start == k_t0 + 15min);
    CHECK(find_low_episodes(three).front().end == k_t0 + 25min);
    const auto two = readings(10, [](int i) { return i >= 3 && i < 5 ? 50 : 100; });
    CHECK(find_low_episodes(two).empty());
  }
  SECTION("54 is not below 54; 39 (LOW) is, and is the nadir") {
    CHECK(find_low_episodes(readings(10, [](int) { return 54; })).empty());
    const auto low = readings(10, [](int i) { return i == 4 ? 39 : 53; });
    REQUIRE(find_low_episodes(low).size() == 1);
    CHECK(find_low_episodes(low).front().nadir == 39);
  }
  SECTION("a Libre's 15-17 minute spacing keeps a run; a longer gap splits it") {
    std::vector<Entry> libre;
    TimePoint at = k_t0;
    for (int i = 0; i < 12; ++i) {
      libre.push_back(scout::test::entry(at, i >= 4 && i < 7 ? 45 : 110));
      at += i % 2 == 0 ? 15min : 16min;
    }
    const auto episodes = find_low_episodes(libre);
    REQUIRE(episodes.size() == 1);  // cadence 15 (median), lows at +62, +77, +93
    CHECK(episodes.front().start == k_t0 + 62min);
    CHECK(episodes.front().end == k_t0 + 93min);

    // 5-minute data: a 20-minute hole splits lows at +25, +30 | +50 into runs too short.
    auto split = readings(20, [](int i) { return i >= 5 && i < 11 ? 50 : 100; });
    std::erase_if(split, [](const Entry& e) {
      return e.date > k_t0 + 30min && e.date < k_t0 + 50min;
    });
    CHECK(find_low_episodes(split).empty());
  }
  SECTION("status codes and repeated dates are ignored") {
    auto entries = readings(10, [](int i) { return i >= 3 && i < 6 ? 50 : 100; });
    entries.push_back(scout::test::entry(k_t0 + 20min, 5));    // a status code amid the lows
    entries.push_back(scout::test::entry(k_t0 + 20min, 100));  // a repeat of the date: first wins
    REQUIRE(find_low_episodes(entries).size() == 1);
    CHECK(find_low_episodes(entries).front().end == k_t0 + 25min);
  }
}
