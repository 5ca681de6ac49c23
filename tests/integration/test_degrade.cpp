// SPEC §6: a state directory that cannot be written does not stop monitoring. The real binary
// with its state file under a path that is a regular file (so even root cannot create it): it
// still calls the patient, says loudly that it runs from memory, and exits cleanly on SIGTERM.

#include <catch2/catch.hpp>

#include "integration/process.hpp"
#include "integration/run_support.hpp"

using namespace scout::test;
using namespace std::chrono_literals;

TEST_CASE("run: an unwritable state directory at start keeps monitoring from memory",
          "[run][degrade]") {
  ScenarioSpec spec;
  spec.state_name = "not-a-directory/state.json";
  Scenario s(spec);
  s.dir.write("not-a-directory", "a file where the state directory should be\n");
  REQUIRE(s.start_fakes());
  s.glucose.sgv = 45;
  s.vonage->script(k_patient_phone, {fake::Answer::human, {"1"}, 200ms, 100ms});
  REQUIRE_RUN(s, s.start_scout());
  REQUIRE_RUN(s, s.vonage->wait_for([](const VonageLog& l) { return l.count_calls_to(k_patient_phone) == 1; },
                                    15s));
  // The keypress reached the alarm held in memory: acknowledged, no second call.
  REQUIRE_RUN(s, s.scout->wait_for_log("acknowledged patient=Alice", 15s));
  const std::string log = s.scout->log();
  CHECK_RUN(s, log.find("cannot write the state file") != std::string::npos);
  CHECK_RUN(s, log.find("keeps its state in memory") != std::string::npos);
  // Loud but bounded: one error line a minute about failed saves, not one per event.
  std::size_t save_errors = 0;
  for (std::size_t at = log.find("cannot save the state"); at != std::string::npos;
       at = log.find("cannot save the state", at + 1)) {
    ++save_errors;
  }
  CHECK_RUN(s, save_errors <= 1);
  CHECK_RUN(s, s.scout->running());
  CHECK(s.vonage->log().count_calls_to(k_patient_phone) == 1);
  // `scout status` cannot vouch for a service that saves nothing: UNKNOWN (SPEC §6).
  const auto status = run_process({k_scout, "status", "--config",
                                   (s.dir.path() / "scout.yaml").string(), "--state",
                                   s.state_path()},
                                  30s);
  INFO(status.out << status.err);
  CHECK(status.exit_code == 3);
  CHECK(status.out.find("status: UNKNOWN") != std::string::npos);
}
