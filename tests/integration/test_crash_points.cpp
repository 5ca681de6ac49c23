// SPEC §6: a restart mid-escalation neither repeats a call nor forgets one. The real binary is
// killed (SIGKILL) right after each fsync of one escalation in turn — every state save point,
// before and after its rename — and started again; the escalation must end with the patient
// called once, the contact called once and the contact's acknowledgement, whatever the point.
// Slow (one escalation per save point): ctest label "slow".

#include <catch2/catch.hpp>

#include "integration/run_support.hpp"

using namespace scout::test;
using namespace std::chrono_literals;

namespace {

// Urgent low; the patient never answers, Bob answers and presses 1.
ScenarioSpec crash_spec() {
  ScenarioSpec spec;
  spec.step1_after = "60s";
  // The fake keeps re-sending a webhook while scout is down (Vonage retries for longer).
  spec.webhook_attempts = 30;
  return spec;
}

void script(Scenario& s) {
  s.glucose.sgv = 45;
  s.vonage->script(k_patient_phone, {fake::Answer::no, {}, 300ms, 100ms});
  s.vonage->script(k_contact_phone, {fake::Answer::human, {"1"}, 300ms, 100ms});
}

// Bob's acknowledgement, as the state file says (the journal line is written after the save
// that holds it, so a kill between the two leaves the state right and the line missing).
bool acknowledged(const Scenario& s) {
  const auto state = nlohmann::json::parse(fake::read_text(s.state_path()), nullptr, false);
  if (!state.is_object()) return false;
  const auto* glucose = &state;
  for (const char* key : {"patients", "Alice", "glucose"}) {
    if (!glucose->is_object() || !glucose->contains(key)) return false;
    glucose = &(*glucose)[key];
  }
  return glucose->is_object() && glucose->value("acknowledged_by", "") == "Bob";
}

}  // namespace

TEST_CASE("killed at every save point of an escalation, scout neither loses nor doubles a call, "
          "and loses no SMS",
          "[run][crash][slow]") {
  int killed = 0;
  bool walked = false;
  for (int n = 1; n <= 80 && !walked; ++n) {
    Scenario s(crash_spec());
    REQUIRE(s.start_fakes());
    script(s);
    INFO("kill after fsync " << n);
    const bool listening = s.start_scout(
        {"LD_PRELOAD=" + std::string{SCOUT_KILL_AT_FSYNC},
         "SCOUT_TEST_KILL_AT_FSYNC=" + std::to_string(n),
         "ASAN_OPTIONS=verify_asan_link_order=0:detect_leaks=0"});
    REQUIRE_RUN(s, (listening || !s.scout->running()));
    // Either it dies at that fsync, or the escalation finishes before it gets there.
    REQUIRE_RUN(s, poll_until([&] { return !s.scout->running() || acknowledged(s); }, 20s));
    if (acknowledged(s) && s.scout->running()) {
      // Past the last save point of the escalation: every point has been walked.
      s.scout->terminate(10s);
      CHECK(s.vonage->log().count_calls_to(k_patient_phone) == 1);
      CHECK(s.vonage->log().count_calls_to(k_contact_phone) == 1);
      walked = true;
      continue;
    }
    ++killed;
    REQUIRE_RUN(s, s.start_scout());
    REQUIRE_RUN(s, poll_until([&] { return acknowledged(s); }, 30s));
    const auto log = s.vonage->log();
    CHECK_RUN(s, log.count_calls_to(k_patient_phone) == 1);
    CHECK_RUN(s, log.count_calls_to(k_contact_phone) == 1);
    // The contact's SMS of the same step is not lost either (SPEC §6: decided SMS are kept until
    // sent and sent again after a restart); a kill between sending it and saving that it was
    // sent repeats it, once.
    CHECK_RUN(s, s.vonage->wait_for(
                     [](const VonageLog& l) { return l.count_sms_to(k_contact_phone) >= 1; }, 10s));
    CHECK_RUN(s, s.vonage->log().count_sms_to(k_contact_phone) <= 2);
  }
  // The walk reached the end of the escalation, and really killed scout at many points (a shim
  // that never fires would pass the checks above).
  CHECK(walked);
  CHECK(killed >= 6);
}
