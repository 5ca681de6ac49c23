// `scout status`, `scout ack|snooze|unsnooze` and `scout log` against the real binary (SPEC §1,
// §4.13): the shell steers a running service through the command spool, and cron mode applies
// what was queued at its next `run --once`.

#include <sstream>

#include <catch2/catch.hpp>

#include "integration/process.hpp"
#include "integration/run_support.hpp"

using namespace scout::test;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

ProcessResult scout_cli(const Scenario& s, std::vector<std::string> args) {
  std::vector<std::string> argv{k_scout};
  argv.insert(argv.end(), args.begin(), args.end());
  argv.insert(argv.end(), {"--config", (s.dir.path() / "scout.yaml").string(), "--state",
                           s.state_path()});
  return run_process(argv, 30s);
}

ProcessResult scout_log_cmd(const Scenario& s, std::vector<std::string> args) {
  std::vector<std::string> argv{k_scout, "log", "--config", (s.dir.path() / "scout.yaml").string()};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_process(argv, 30s);
}

std::size_t calls_to(const Scenario& s, const std::string& number) {
  return s.vonage->log().count_calls_to(number);
}

}  // namespace

TEST_CASE("control: status shows the alarm, snooze stops the escalation at once, unsnooze "
          "resumes it, log tells the story", "[run][control]") {
  Scenario s({.step1_after = "8s"});
  REQUIRE(s.start_fakes());
  s.glucose.sgv = 48;
  // The patient's phone rings for 30 s: the contacts step is due by time (8 s), not earlier.
  s.vonage->script(k_patient_phone, {Answer::no, {}, 30s});
  s.vonage->script(k_contact_phone, {Answer::no, {}, 500ms});
  REQUIRE_RUN(s, s.start_scout());
  REQUIRE_RUN(s, s.vonage->wait_for(
                     [](const VonageLog& l) { return l.count_calls_to(k_patient_phone) >= 1; },
                     10s));

  // status: the reading, the alarm, the call in flight; exit 2 (critical) as check would.
  const auto status = scout_cli(s, {"status", "--format", "json"});
  INFO(status.err);
  CHECK(status.exit_code == 2);
  const json doc = json::parse(status.out, nullptr, false);
  REQUIRE(doc.is_object());
  CHECK(doc["status"] == "critical");
  CHECK(doc["service"]["running"] == true);
  const auto& alice = doc["patients"][0];
  CHECK(alice["name"] == "Alice");
  CHECK(alice["sgv"] == 48);
  REQUIRE(alice["alarms"].size() == 1);
  CHECK(alice["alarms"][0]["kind"] == "urgent_low");
  CHECK(alice["alarms"][0]["notified"] == json::array({"Alice"}));
  REQUIRE(alice["alarms"][0]["calls_in_flight"].size() == 1);
  const auto text = scout_cli(s, {"status"});
  CHECK(text.exit_code == 2);
  CHECK(text.out.find("Alice: 48 mg/dL") != std::string::npos);
  CHECK(text.out.find("URGENT LOW") != std::string::npos);
  CHECK(text.out.find("status: CRITICAL") != std::string::npos);

  // snooze: the running service answers within a second (--wait 1 fails with 75 otherwise).
  const auto snoozed = scout_cli(s, {"snooze", "Alice", "1h", "--by", "Mum", "--wait", "1"});
  INFO(snoozed.out << snoozed.err);
  REQUIRE(snoozed.exit_code == 0);
  CHECK(snoozed.out == "Alice: URGENT LOW snoozed for 1h by Mum\n");
  // The contacts step (due 8 s after the alarm) does not run.
  std::this_thread::sleep_for(10s);
  CHECK_RUN(s, calls_to(s, k_contact_phone) == 0);
  CHECK(journal_of(s.journal(), "snoozed", {{"by", "Mum"}, {"via", "shell"}}).size() == 1);
  const auto quiet = scout_cli(s, {"status", "--format", "json"});
  CHECK(json::parse(quiet.out)["patients"][0]["alarms"][0]["acknowledged_by"] == "Mum");

  // unsnooze: the chain starts again from its first step at once.
  const auto resumed = scout_cli(s, {"unsnooze", "Alice", "--wait", "1"});
  INFO(resumed.out << resumed.err);
  REQUIRE(resumed.exit_code == 0);
  REQUIRE_RUN(s, s.wait_journal("snooze_ended", {}, 5s));
  // ack: the chain stops again, acknowledged by the shell user named with --by.
  const auto acked = scout_cli(s, {"ack", "Alice", "--by", "Dad", "--wait", "1"});
  INFO(acked.out << acked.err);
  REQUIRE(acked.exit_code == 0);
  CHECK(acked.out.find("acknowledged by Dad") != std::string::npos);
  // A second ack changes nothing: exit 1, and it says why.
  const auto again = scout_cli(s, {"ack", "Alice", "--wait", "1"});
  CHECK(again.exit_code == 1);
  CHECK(again.out.find("already snoozed") != std::string::npos);

  // The requests are gone from the spool.
  CHECK(std::filesystem::is_empty(s.state_path() + ".d/commands"));

  const auto story = scout_log_cmd(s, {"--since", "-1h"});
  INFO(story.err);
  CHECK(story.exit_code == 0);
  CHECK(story.out.find("Alice URGENT LOW 48 mg/dL steady") != std::string::npos);
  CHECK(story.out.find("called Alice") != std::string::npos);
  CHECK(story.out.find("snoozed 1h by Mum") != std::string::npos);
  CHECK(story.out.find("unsnoozed by") != std::string::npos);
  CHECK(story.out.find("acknowledged by Dad from the shell") != std::string::npos);
  // Every call in the journal carries the words spoken and the glucose value.
  const auto placed = journal_of(s.journal(), "call_placed");
  REQUIRE_FALSE(placed.empty());
  for (const auto& line : placed) {
    CHECK(line.value("text", "").find("Alice: URGENT LOW, 48 mg/dL") == 0);
    CHECK(line.value("sgv", "") == "48");
  }

  CHECK(s.scout->terminate(10s) == 0);
  // The service is gone: status says so (UNKNOWN) rather than report a stale picture as current.
  const auto after = scout_cli(s, {"status"});
  CHECK(after.exit_code == 2);  // the alarm still holds: critical outranks unknown (SPEC §1)
  CHECK(after.out.find("is not running") != std::string::npos);
}

TEST_CASE("control: with no service running the request is queued and the next run --once "
          "applies it", "[run][control]") {
  Scenario s({.step1_after = "60s", .listener = false});
  REQUIRE(s.start_fakes());
  s.glucose.sgv = 48;
  s.vonage->script(k_patient_phone, {Answer::no, {}, 20s});
  const auto config = s.dir.write("scout.yaml", s.config_yaml());
  const auto once = [&] {
    return run_process({k_scout, "run", "--once", "--config", config, "--state", s.state_path()},
                       60s);
  };
  REQUIRE(once().exit_code == 0);
  REQUIRE(calls_to(s, k_patient_phone) == 1);

  const auto queued = scout_cli(s, {"ack", "Alice", "--by", "Mum"});
  INFO(queued.out << queued.err);
  CHECK(queued.exit_code == 0);
  CHECK(queued.out.find("queued") != std::string::npos);
  CHECK(journal_of(s.journal(), "acknowledged").empty());

  REQUIRE(once().exit_code == 0);
  const auto acked = journal_of(s.journal(), "acknowledged", {{"by", "Mum"}, {"via", "shell"}});
  CHECK(acked.size() == 1);
  CHECK(std::filesystem::is_empty(s.state_path() + ".d/commands"));
}

TEST_CASE("control: bad requests are refused before anything is queued", "[run][control]") {
  Scenario s({});
  REQUIRE(s.start_fakes());
  s.dir.write("scout.yaml", s.config_yaml());
  const auto unknown = scout_cli(s, {"ack", "Zed"});
  CHECK(unknown.exit_code == 64);
  CHECK(unknown.err.find("no patient named 'Zed'") != std::string::npos);
  CHECK(unknown.err.find("Alice") != std::string::npos);
  for (const std::string duration : {"0s", "25h", "soon"}) {
    const auto bad = scout_cli(s, {"snooze", "Alice", duration});
    CHECK(bad.exit_code == 64);
    CHECK(bad.err.find("at most 24h") != std::string::npos);
  }
  const auto kind = scout_cli(s, {"snooze", "Alice", "1h", "--kind", "lowish"});
  CHECK(kind.exit_code == 64);
  const auto since = scout_log_cmd(s, {"--since", "last tuesday"});
  CHECK(since.exit_code == 64);
  CHECK(since.err.find("yesterday 22:00") != std::string::npos);
  const bool queued = std::filesystem::exists(s.state_path() + ".d/commands") &&
                      !std::filesystem::is_empty(s.state_path() + ".d/commands");
  CHECK_FALSE(queued);
}

TEST_CASE("logs: JSON lines carry each field as its own key, under journald text lines carry "
          "the syslog priority, one line per tick", "[run][control]") {
  Scenario s({.step1_after = "60s", .listener = false});
  REQUIRE(s.start_fakes());
  s.glucose.sgv = 48;
  s.vonage->script(k_patient_phone, {Answer::no, {}, 20s});
  const auto config = s.dir.write("scout.yaml", s.config_yaml());

  const auto json_run = run_process({k_scout, "--log-format", "json", "run", "--once", "--config",
                                     config, "--state", s.state_path()},
                                    60s);
  INFO(json_run.err);
  REQUIRE(json_run.exit_code == 0);
  std::istringstream lines(json_run.err);
  std::string line;
  bool raised = false;
  bool tick = false;
  while (std::getline(lines, line)) {
    const json doc = json::parse(line, nullptr, false);
    REQUIRE(doc.is_object());  // every line is one JSON object
    CHECK(doc.contains("time"));
    CHECK(doc.contains("level"));
    if (doc.value("msg", "") == "alarm_raised") {
      raised = true;
      CHECK(doc.value("patient", "") == "Alice");
      CHECK(doc.value("kind", "") == "urgent_low");
      CHECK(doc.value("sgv", "") == "48");
    }
    if (doc.value("msg", "") == "tick") {
      tick = true;
      CHECK(doc.value("patients", "") == "1");
      CHECK(doc.value("alarms", "") == "1");
      CHECK(doc.value("slowest", "") == "Alice");
    }
  }
  CHECK(raised);
  CHECK(tick);

  // journald: JOURNAL_STREAM set -> "<N>level message", no time stamp of our own.
  const auto journald = run_process({k_scout, "run", "--once", "--config", config, "--state",
                                     s.state_path()},
                                    60s, {{"JOURNAL_STREAM", "8:12345"}});
  INFO(journald.err);
  REQUIRE(journald.exit_code == 0);
  std::istringstream text(journald.err);
  std::size_t count = 0;
  while (std::getline(text, line)) {
    ++count;
    CHECK((line.rfind("<6>info ", 0) == 0 || line.rfind("<4>warning ", 0) == 0 ||
           line.rfind("<3>error ", 0) == 0));
  }
  CHECK(count > 0);
  CHECK(journald.err.find("<6>info tick patients=1 failed=0 alarms=1") != std::string::npos);
}

TEST_CASE("drill: the whole chain for real, every call saying it is a test, the contact's 1 is "
          "heard through the listener, the state file is not touched", "[run][control]") {
  Scenario s({.step1_after = "30s"});
  REQUIRE(s.start_fakes());
  s.vonage->script(k_patient_phone, {Answer::no, {}, 300ms});
  s.vonage->script(k_contact_phone, {Answer::human, {"1"}, 300ms});
  const auto config = s.dir.write("scout.yaml", s.config_yaml());
  const auto drill = run_process({k_scout, "drill", "Alice", "--config", config}, 90s);
  INFO(drill.out << drill.err);
  CHECK(drill.exit_code == 0);
  CHECK(drill.out.find("Alice FIRE DRILL — called Alice — no answer — ") != std::string::npos);
  CHECK(drill.out.find("called Bob — answered — pressed 1") != std::string::npos);
  CHECK(drill.out.find("pressed 1") != std::string::npos);
  CHECK(drill.out.find("result: acknowledged by Bob") != std::string::npos);
  CHECK(drill.out.find("answered: Bob; not reached: Alice") != std::string::npos);
  const auto log = s.vonage->log();
  CHECK(log.count_calls_to(k_patient_phone) == 1);
  CHECK(log.count_calls_to(k_contact_phone) == 1);
  // Every call speaks the drill sentence, never a glucose value.
  for (const auto* number : {&k_patient_phone, &k_contact_phone}) {
    const auto* call = log.first_call_to(*number);
    REQUIRE(call != nullptr);
    const std::string ncco = call->request.at("ncco").dump();
    CHECK(ncco.find("This is a scout fire drill for Alice") != std::string::npos);
    CHECK(ncco.find("mg/dL") == std::string::npos);
  }
  CHECK_FALSE(std::filesystem::exists(s.state_path()));
  CHECK_FALSE(std::filesystem::exists(s.journal_path()));
}

TEST_CASE("drill: nobody acknowledging exits 1 and says who was not reached", "[run][control]") {
  Scenario s({.step1_after = "2s"});
  REQUIRE(s.start_fakes());
  s.vonage->script(k_patient_phone, {Answer::no, {}, 300ms});
  s.vonage->script(k_contact_phone, {Answer::busy, {}, 300ms});
  const auto config = s.dir.write("scout.yaml", s.config_yaml());
  const auto drill = run_process({k_scout, "drill", "Alice", "--config", config}, 90s);
  INFO(drill.out << drill.err);
  CHECK(drill.exit_code == 1);
  CHECK(drill.out.find("answered: nobody; not reached: Alice, Bob") != std::string::npos);
  CHECK(drill.out.find("result: every step ran and nobody acknowledged") != std::string::npos);
  CHECK(run_process({k_scout, "drill", "Zed", "--config", config}, 30s).exit_code == 64);
}

TEST_CASE("validate --online: Vonage credentials are proven with a read-only request, a wrong "
          "application is refused, and no call is placed", "[run][control]") {
  Scenario s({});
  REQUIRE(s.start_fakes());
  const auto config = s.dir.write("scout.yaml", s.config_yaml());
  const auto good = run_process({k_scout, "validate", "--online", "--config", config}, 60s);
  INFO(good.out << good.err);
  CHECK(good.exit_code == 0);
  CHECK(good.out.find("providers[0] (vonage): credentials accepted") != std::string::npos);
  CHECK(good.out.find("Alice: Nightscout") != std::string::npos);
  std::string yaml = s.config_yaml();
  const auto id = s.vonage->options().application_id;
  yaml.replace(yaml.find(id), id.size(), "aaaaaaaa-bbbb-cccc-dddd-ffffffffffff");
  const auto bad = run_process(
      {k_scout, "validate", "--online", "--config", s.dir.write("bad.yaml", yaml)}, 60s);
  INFO(bad.out << bad.err);
  CHECK(bad.exit_code == 78);
  CHECK(bad.err.find("providers[0] (vonage): ") != std::string::npos);
  CHECK(s.vonage->log().calls.empty());
}
