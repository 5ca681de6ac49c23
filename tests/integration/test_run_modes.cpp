// `scout run` in its other modes and `scout notify` (SPEC §1, §4.2, §6, §7): cron mode (--once)
// learning call outcomes by polling the provider, the console provider without a listener, the
// systemd notify protocol, a corrupt state file, config and bind failures, and the test call /
// SMS of `scout notify` through the Vonage and Twilio fakes. The real binary, loopback only,
// every wait bounded.

#include <sys/socket.h>
#include <sys/un.h>

#include <poll.h>

#include <cstddef>
#include <regex>

#include <catch2/catch.hpp>

#include "integration/run_support.hpp"

using namespace scout::test;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

// "…1000": how scout masks a number in what it prints (core::mask_phone).
std::string masked(const std::string& number) { return "\u2026" + number.substr(number.size() - 4); }

// `scout --log-level debug run --once` with the scenario's state file.
ProcessResult run_once(const Scenario& s, const std::string& config) {
  return run_process({k_scout, "--log-level", "debug", "run", "--once", "--config", config, "--state",
                      s.state_path()},
                     30s);
}

ProcessResult notify(const std::string& config, const std::string& to, const std::string& channel,
                     const std::vector<std::string>& extra = {}) {
  std::vector<std::string> argv = {k_scout, "notify", "--config", config, "--to", to, "--channel", channel};
  argv.insert(argv.end(), extra.begin(), extra.end());
  return run_process(argv, 30s);
}

json read_state(const Scenario& s) { return json::parse(fake::read_text(s.state_path()), nullptr, false); }

// Index of the first journal line of `type` matching `match`, or -1.
long journal_index(const std::vector<JournalLine>& journal, const std::string& type,
                   const std::vector<std::pair<std::string, std::string>>& match) {
  for (std::size_t i = 0; i < journal.size(); ++i) {
    if (!journal_of({journal[i]}, type, match).empty()) return static_cast<long>(i);
  }
  return -1;
}

std::string replace_all(std::string text, const std::string& from, const std::string& to) {
  for (auto at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size())) {
    text.replace(at, from.size(), to);
  }
  return text;
}

bool first_call_ended(const Scenario& s, std::chrono::milliseconds limit) {
  return s.vonage->wait_for([](const VonageLog& l) { return !l.calls.empty() && l.calls[0].ended; }, limit);
}

// A datagram socket that receives sd_notify messages: a file path, or "@name" (abstract).
class NotifySocket {
 public:
  explicit NotifySocket(std::string name) : m_name(std::move(name)) {
    m_fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (m_fd < 0) return;
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    if (m_name.size() >= sizeof(address.sun_path)) return;
    std::memcpy(address.sun_path, m_name.data(), m_name.size());
    if (m_name[0] == '@') address.sun_path[0] = '\0';
    const auto size = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + m_name.size());
    m_bound = ::bind(m_fd, reinterpret_cast<const sockaddr*>(&address), size) == 0;
  }
  NotifySocket(const NotifySocket&) = delete;
  NotifySocket& operator=(const NotifySocket&) = delete;
  ~NotifySocket() {
    if (m_fd >= 0) ::close(m_fd);
  }
  bool bound() const { return m_bound; }
  const std::string& name() const { return m_name; }

  // The next datagram, or "" when none arrives within `limit`.
  std::string receive(std::chrono::milliseconds limit) {
    pollfd p{m_fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(limit.count())) <= 0) return "";
    char buffer[512];
    const ssize_t n = ::recv(m_fd, buffer, sizeof buffer, 0);
    return n > 0 ? std::string(buffer, static_cast<std::size_t>(n)) : "";
  }

 private:
  std::string m_name;
  int m_fd = -1;
  bool m_bound = false;
};

// A listening TCP socket on 127.0.0.1 holding a port (no SO_REUSEADDR / SO_REUSEPORT).
class HeldPort {
 public:
  HeldPort() {
    m_fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (m_fd >= 0 && ::bind(m_fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
        ::listen(m_fd, 4) == 0 && ::getsockname(m_fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
      m_port = ntohs(addr.sin_port);
    }
  }
  HeldPort(const HeldPort&) = delete;
  HeldPort& operator=(const HeldPort&) = delete;
  ~HeldPort() {
    if (m_fd >= 0) ::close(m_fd);
  }
  int port() const { return m_port; }

 private:
  int m_fd = -1;
  int m_port = -1;
};

// The console-only scenario without a listener.
ScenarioSpec console_spec(const std::string& answer = "never") {
  return {.vonage = false, .step1_after = "60s", .listener = false, .console_answer = answer};
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Cron mode

TEST_CASE("run --once: an unanswered call is learned by polling on the next run, then contacts "
          "are called and the patient is not called again",
          "[run]") {
  // The contacts step is due only after 60 s: when it comes sooner, the polled outcome did it.
  // repeat 2s: the third run reruns the chain, and min_call_gap holds the patient's call back.
  Scenario s({.step1_after = "60s", .min_call_gap = "2m", .repeat = "2s"});
  REQUIRE(s.start_fakes());
  s.glucose.sgv = 48;
  s.vonage->script(k_patient_phone, {Answer::no, {}, 300ms});
  s.vonage->script(k_contact_phone, {Answer::no, {}, 300ms});
  const auto config = s.dir.write("scout.yaml", s.config_yaml());

  // Run 1: the alarm is raised and the patient called, without webhooks.
  const auto first = run_once(s, config);
  INFO("run 1 stderr:\n" << first.err);
  REQUIRE(first.exit_code == 0);
  auto log = s.vonage->log();
  REQUIRE(log.count_calls_to(k_patient_phone) == 1);
  CHECK(log.count_calls_to(k_contact_phone) == 0);
  CHECK(log.count_sms_to(k_contact_phone) == 0);
  const auto patient_call = *log.first_call_to(k_patient_phone);
  const auto& request = patient_call.request;
  CHECK_FALSE(request.contains("event_url"));
  for (const auto& action : request.at("ncco")) {
    CHECK(action.at("action") != "input");
    CHECK_FALSE(action.contains("eventUrl"));
  }
  CHECK(first.err.find("--once: no webhook listener") != std::string::npos);

  // The state was saved with the alarm and the call in flight.
  const auto state1 = read_state(s);
  REQUIRE(state1.is_object());
  const auto& alarm1 = state1.at("patients").at("Alice").at("glucose");
  REQUIRE(alarm1.is_object());
  CHECK(alarm1.at("alarm").at("kind") == "urgent_low");
  REQUIRE(alarm1.at("calls").size() == 1);
  CHECK(alarm1.at("calls")[0].at("call_id") == patient_call.uuid);
  CHECK(alarm1.at("calls")[0].at("provider") == "vonage");
  const auto progress1 = alarm1.at("calls")[0].at("progress").get<std::string>();
  CHECK((progress1 == "placing" || progress1 == "ringing"));

  // The call ends unanswered; nobody tells scout, but the call resource says so.
  REQUIRE(first_call_ended(s, 10s));
  CHECK(s.vonage->log().calls[0].status == "unanswered");

  // Run 2: polls the call, learns it was not answered, calls and texts the contacts at once.
  const auto second = run_once(s, config);
  INFO("run 2 stderr:\n" << second.err);
  REQUIRE(second.exit_code == 0);
  log = s.vonage->log();
  const auto call_path = "/v1/calls/" + patient_call.uuid;
  CHECK(log.count_requests("GET", call_path) == 1);
  for (const auto& r : log.requests) {
    if (r.method == "GET" && r.path == call_path) CHECK(r.status == 200);
  }
  CHECK(log.count_calls_to(k_patient_phone) == 1);
  CHECK(log.count_calls_to(k_contact_phone) == 1);
  CHECK(log.count_sms_to(k_contact_phone) == 1);
  if (const auto* contact_call = log.first_call_to(k_contact_phone)) {
    CHECK_FALSE(contact_call->request.contains("event_url"));
  }
  auto journal = s.journal();
  CHECK(journal_of(journal, "call_outcome", {{"to_label", "patient"}, {"progress", "unanswered"}}).size() == 1);
  CHECK(journal_of(journal, "step", {{"step", "1"}, {"reason", "no_ack"}}).size() == 1);
  const auto outcome_at = journal_index(journal, "call_outcome", {{"to_label", "patient"}, {"progress", "unanswered"}});
  const auto contact_at = journal_index(journal, "call", {{"to_label", "Bob"}});
  CHECK(outcome_at >= 0);
  CHECK(outcome_at < contact_at);

  // Run 3, once the repeat time has passed: the chain reruns, but the patient was called less than
  // min_call_gap ago, so scout texts instead of calling (SPEC §4.6).
  std::this_thread::sleep_for(2500ms);  // escalation.repeat is 2 s (a time, not a condition)
  const auto third = run_once(s, config);
  INFO("run 3 stderr:\n" << third.err);
  REQUIRE(third.exit_code == 0);
  log = s.vonage->log();
  CHECK(log.count_calls_to(k_patient_phone) == 1);
  CHECK(log.count_calls_to(k_contact_phone) == 1);
  journal = s.journal();
  CHECK_FALSE(journal_of(journal, "call_held_back", {{"to_label", "patient"}, {"reason", "min_call_gap"}}).empty());
  REQUIRE(log.count_sms_to(k_patient_phone) >= 1);
  bool told = false;
  for (const auto& sms : log.sms) {
    if (sms.to == fake::digits_only(k_patient_phone)) told = told || sms.text.find("scout did not call") != std::string::npos;
  }
  CHECK(told);
  CHECK(journal_of(journal, "alarm_raised").size() == 1);
}

TEST_CASE("run --once: a call answered by a person acknowledges the alarm once its outcome is polled",
          "[run]") {
  Scenario s({.step1_after = "60s"});
  REQUIRE(s.start_fakes());
  s.glucose.sgv = 48;
  s.vonage->script(k_patient_phone, {Answer::human, {}, 300ms, 200ms});
  const auto config = s.dir.write("scout.yaml", s.config_yaml());

  const auto first = run_once(s, config);
  INFO("run 1 stderr:\n" << first.err);
  REQUIRE(first.exit_code == 0);
  REQUIRE(s.vonage->log().count_calls_to(k_patient_phone) == 1);
  REQUIRE(first_call_ended(s, 10s));
  const auto call = s.vonage->log().calls[0];
  CHECK(call.status == "completed");
  CHECK(call.digits_sent.empty());  // no input action: nobody was asked to press a key

  const auto second = run_once(s, config);
  INFO("run 2 stderr:\n" << second.err);
  REQUIRE(second.exit_code == 0);
  const auto log = s.vonage->log();
  CHECK(log.count_requests("GET", "/v1/calls/" + call.uuid) == 1);
  const auto journal = s.journal();
  CHECK(journal_of(journal, "acknowledged", {{"to_label", "patient"}}).size() == 1);
  CHECK(journal_of(journal, "call", {{"to_label", "Bob"}}).empty());
  CHECK(log.count_calls_to(k_contact_phone) == 0);
  CHECK(log.count_sms_to(k_contact_phone) == 0);
  const auto state = read_state(s);
  REQUIRE(state.is_object());
  const auto& alarm = state.at("patients").at("Alice").at("glucose");
  REQUIRE(alarm.is_object());
  CHECK(alarm.at("acknowledged_by") == "patient");
  CHECK(alarm.at("snoozed_until").is_number());
}

// ---------------------------------------------------------------------------------------------
// Console provider, no listener

TEST_CASE("run: console provider without a listener polls the call, finds it unanswered and calls "
          "the contacts, and SIGTERM saves the state",
          "[run]") {
  Scenario s(console_spec("never"));
  REQUIRE(s.start_fakes());
  s.glucose.sgv = 48;
  const auto config = s.dir.write("scout.yaml", s.config_yaml());
  s.scout = std::make_unique<ScoutProcess>(
      std::vector<std::string>{"--log-level", "debug", "run", "--config", config, "--state", s.state_path()},
      s.log_path());

  const std::string patient_line = "[console] CALL " + masked(k_patient_phone);
  REQUIRE_RUN(s, s.scout->wait_for_log(patient_line, 15s));
  // Console calls are polled every 5 s without a listener: the first poll says unanswered.
  REQUIRE_RUN(s, s.wait_journal("call_outcome", {{"to_label", "patient"}, {"progress", "unanswered"}}, 12s));
  REQUIRE_RUN(s, s.scout->wait_for_log("[console] CALL " + masked(k_contact_phone), 5s));
  REQUIRE_RUN(s, s.scout->wait_for_log("[console] SMS  " + masked(k_contact_phone), 5s));
  REQUIRE_RUN(s, s.wait_journal("call", {{"to_label", "Bob"}}, 5s));

  const auto journal = s.journal();
  const auto outcome_at = journal_index(journal, "call_outcome", {{"to_label", "patient"}, {"progress", "unanswered"}});
  const auto contact_at = journal_index(journal, "call", {{"to_label", "Bob"}});
  CHECK(outcome_at < contact_at);
  CHECK(journal_of(journal, "call_outcome", {{"detail", "console: not answered"}}).size() >= 1);
  CHECK(journal_of(journal, "step", {{"step", "1"}, {"reason", "no_ack"}}).size() == 1);
  CHECK(journal_of(journal, "call", {{"to_label", "patient"}}).size() == 1);
  // Nobody can press a key without a listener: the calls do not ask for one.
  const auto out = s.scout->log();
  const auto line_at = out.find(patient_line);
  REQUIRE(line_at != std::string::npos);
  const auto line = out.substr(line_at, out.find('\n', line_at) - line_at);
  CHECK(line.find("Press 1") == std::string::npos);
  // Numbers are masked in everything scout prints.
  CHECK(out.find(k_patient_phone) == std::string::npos);
  CHECK(out.find(k_contact_phone.substr(1)) == std::string::npos);

  CHECK_RUN(s, s.scout->terminate(10s) == 0);
  CHECK_RUN(s, s.scout_log().find("state saved") != std::string::npos);
  const auto state = read_state(s);
  REQUIRE(state.is_object());
  const auto& alarm = state.at("patients").at("Alice").at("glucose");
  REQUIRE(alarm.is_object());
  CHECK(alarm.at("alarm").at("kind") == "urgent_low");
  CHECK(alarm.at("calls").size() == 2);
}

// ---------------------------------------------------------------------------------------------
// systemd

TEST_CASE("run: systemd notify protocol, READY=1 after the first tick, WATCHDOG=1, STOPPING=1",
          "[run]") {
  Scenario s(console_spec());
  REQUIRE(s.start_fakes());
  s.glucose.sgv = 120;
  const auto config = s.dir.write("scout.yaml", s.config_yaml());

  std::string name;
  SECTION("a socket file") { name = (s.dir.path() / "notify.sock").string(); }
  SECTION("an abstract socket") { name = "@scout-test-notify-" + fake::random_hex(8); }

  NotifySocket socket(name);
  REQUIRE(socket.bound());
  s.scout = std::make_unique<ScoutProcess>(
      std::vector<std::string>{"--log-level", "debug", "run", "--config", config, "--state", s.state_path()},
      s.log_path(), std::vector<std::string>{"NOTIFY_SOCKET=" + name});

  // READY=1 comes first, once Nightscout has been polled.
  CHECK_RUN(s, socket.receive(15s) == "READY=1");
  CHECK(s.glucose.polls() >= 1);
  CHECK_RUN(s, socket.receive(5s) == "WATCHDOG=1");
  // Then what it is doing (SPEC §6: a state it cannot save would be said here).
  CHECK_RUN(s, socket.receive(5s) == "STATUS=watching 1 patient(s)");

  CHECK_RUN(s, s.scout->terminate(10s) == 0);
  std::vector<std::string> after;
  for (std::string m = socket.receive(2s); !m.empty(); m = socket.receive(500ms)) {
    after.push_back(m);
    if (m == "STOPPING=1") break;
  }
  REQUIRE_RUN(s, !after.empty());
  CHECK(after.back() == "STOPPING=1");
  for (const auto& m : after) CHECK((m == "WATCHDOG=1" || m == "STOPPING=1"));
}

// ---------------------------------------------------------------------------------------------
// State file

TEST_CASE("run: a corrupt state file is moved aside with an error and scout starts clean", "[run]") {
  Scenario s(console_spec());
  REQUIRE(s.start_fakes());
  s.glucose.sgv = 120;
  const auto config = s.dir.write("scout.yaml", s.config_yaml());
  const std::string garbage = "this is not { a state file\n\x01\x02 at all";
  s.dir.write("state.json", garbage);

  const auto result = run_once(s, config);
  INFO("stderr:\n" << result.err);
  REQUIRE(result.exit_code == 0);

  std::vector<std::filesystem::path> moved;
  for (const auto& entry : std::filesystem::directory_iterator(s.dir.path())) {
    if (entry.path().filename().string().rfind("state.json.corrupt-", 0) == 0) moved.push_back(entry.path());
  }
  REQUIRE(moved.size() == 1);
  CHECK(fake::read_text(moved[0].string()) == garbage);
  // An error line names where the file went.
  bool named = false;
  std::istringstream lines(result.err);
  for (std::string line; std::getline(lines, line);) {
    if (line.find(moved[0].string()) != std::string::npos && line.find("error") != std::string::npos) named = true;
  }
  CHECK(named);
  const auto state = read_state(s);
  REQUIRE(state.is_object());
  CHECK(state.contains("version"));
  CHECK(state.at("patients").at("Alice").at("glucose").is_null());
}

// ---------------------------------------------------------------------------------------------
// Start-up failures

TEST_CASE("run: an invalid config exits 78 with FILE:LINE:COL problems", "[run]") {
  TempDir dir;
  const auto config =
      dir.write("scout.yaml", make_config({{"Alice", "http://127.0.0.1:9"}}, "colour: blue\n"));
  const auto result = run_process({k_scout, "run", "--config", config}, 20s);
  INFO("stderr:\n" << result.err);
  CHECK(result.exit_code == 78);
  const std::regex problem{"(^|\n)" + replace_all(config, ".", "\\.") + R"(:(\d+):(\d+): [^\n]*colour)"};
  CHECK(std::regex_search(result.err, problem));
}

TEST_CASE("run: a listener port already in use exits 1 naming the address", "[run]") {
  HeldPort held;
  REQUIRE(held.port() > 0);
  Scenario s({.vonage = false, .listener = true, .console_answer = "never"});
  REQUIRE(s.start_fakes());
  s.listener_port = held.port();
  const auto config = s.dir.write("scout.yaml", s.config_yaml());
  const auto result =
      run_process({k_scout, "run", "--config", config, "--state", s.state_path()}, 20s);
  INFO("stderr:\n" << result.err);
  CHECK_FALSE(result.timed_out);
  CHECK(result.exit_code == 1);
  CHECK(result.err.find("127.0.0.1:" + std::to_string(held.port())) != std::string::npos);
  CHECK(s.glucose.polls() == 0);
}

// ---------------------------------------------------------------------------------------------
// scout notify

TEST_CASE("notify: an SMS and a call through Vonage", "[run]") {
  Scenario s({});
  REQUIRE(s.start_fakes());
  const auto config = s.dir.write("scout.yaml", s.config_yaml());

  const auto sms = notify(config, k_contact_phone, "sms");
  INFO("sms stdout:\n" << sms.out << "\nstderr:\n" << sms.err);
  CHECK(sms.exit_code == 0);
  auto log = s.vonage->log();
  REQUIRE(log.sms.size() == 1);
  CHECK(log.sms[0].to == fake::digits_only(k_contact_phone));
  CHECK_FALSE(log.sms[0].text.empty());
  CHECK(sms.out.find("accepted by vonage") != std::string::npos);
  CHECK(sms.out.find(log.sms[0].message_uuid) != std::string::npos);
  CHECK(sms.out.find(masked(k_contact_phone)) != std::string::npos);
  // The Messages API was reached with Basic api_key:api_secret (the fake checked it).
  for (const auto& r : log.requests) {
    if (r.path != "/v1/messages") continue;
    CHECK(r.status == 202);
    const auto auth = r.headers.find("Authorization");
    REQUIRE(auth != r.headers.end());
    CHECK(auth->second.rfind("Basic ", 0) == 0);
  }

  const auto call = notify(config, k_patient_phone, "call", {"--text", "Hello from the test"});
  INFO("call stdout:\n" << call.out << "\nstderr:\n" << call.err);
  CHECK(call.exit_code == 0);
  log = s.vonage->log();
  REQUIRE(log.calls.size() == 1);
  const auto& placed = log.calls[0];
  CHECK(placed.to == fake::digits_only(k_patient_phone));
  CHECK(call.out.find("accepted by vonage (id " + placed.uuid + ")") != std::string::npos);
  CHECK_FALSE(placed.request.contains("event_url"));
  CHECK(FakeVonage::check_create_call(placed.request).empty());
  CHECK(placed.request.at("ncco").at(0).at("text").get<std::string>().find("Hello from the test") != std::string::npos);
  for (const auto& r : log.requests) {
    if (r.path != "/v1/calls") continue;
    CHECK(r.status == 201);  // the RS256 JWT verified with the application's public key
    const auto auth = r.headers.find("Authorization");
    REQUIRE(auth != r.headers.end());
    CHECK(auth->second.rfind("Bearer ", 0) == 0);
  }
}

TEST_CASE("notify: console prints the call and the SMS, and a bad --to or --channel is a usage error",
          "[run]") {
  Scenario s(console_spec());
  REQUIRE(s.start_fakes());
  const auto config = s.dir.write("scout.yaml", s.config_yaml());

  const auto call = notify(config, k_patient_phone, "call");
  INFO("stdout:\n" << call.out << "\nstderr:\n" << call.err);
  CHECK(call.exit_code == 0);
  CHECK(call.out.find("[console] CALL " + masked(k_patient_phone)) != std::string::npos);
  CHECK(call.out.find("accepted by console") != std::string::npos);
  CHECK(call.out.find(k_patient_phone) == std::string::npos);

  const auto sms = notify(config, k_patient_phone, "sms", {"--text", "hello sms"});
  INFO("stdout:\n" << sms.out << "\nstderr:\n" << sms.err);
  CHECK(sms.exit_code == 0);
  CHECK(sms.out.find("[console] SMS  " + masked(k_patient_phone) + ": hello sms") != std::string::npos);

  const auto no_plus = notify(config, k_patient_phone.substr(1), "sms");
  CHECK(no_plus.exit_code == 64);
  CHECK(no_plus.err.find("E.164") != std::string::npos);
  CHECK(no_plus.out.find("[console]") == std::string::npos);

  const auto fax = notify(config, k_patient_phone, "fax");
  CHECK(fax.exit_code == 64);
  CHECK(fax.err.find("fax") != std::string::npos);
  CHECK(fax.out.find("[console]") == std::string::npos);
}

TEST_CASE("notify: Vonage refusing the credentials exits 1 without retrying", "[run]") {
  Scenario s({});
  REQUIRE(s.start_fakes());
  const auto& o = s.vonage->options();
  // Another application and a wrong API secret: the fake answers 401 to the calls and the SMS.
  const std::string wrong_secret = "wrong-api-secret-42";
  auto yaml = replace_all(s.config_yaml(), "api_secret: " + o.api_secret, "api_secret: " + wrong_secret);
  yaml = replace_all(yaml, o.application_id, "ffffffff-bbbb-cccc-dddd-0123456789ab");
  const auto config = s.dir.write("scout.yaml", yaml);

  for (const std::string channel : {"call", "sms"}) {
    INFO(channel);
    const auto result = notify(config, k_patient_phone, channel);
    INFO("stdout:\n" << result.out << "\nstderr:\n" << result.err);
    CHECK(result.exit_code == 1);
    CHECK(result.out.find("accepted") == std::string::npos);
    CHECK(result.err.find("401") != std::string::npos);
    CHECK(result.err.find("credentials") != std::string::npos);
    CHECK(result.err.find(wrong_secret) == std::string::npos);
  }
  const auto log = s.vonage->log();
  CHECK(log.count_requests("POST", "/v1/calls") == 1);  // a 401 is not retried (SPEC §4.7)
  CHECK(log.count_requests("POST", "/v1/messages") == 1);
  CHECK(log.calls.empty());
  CHECK(log.sms.empty());
}

TEST_CASE("notify: Vonage answering 500 fails over to Twilio", "[run]") {
  Scenario s({.twilio = true});
  REQUIRE(s.start_fakes());
  s.vonage->fail_calls(-1, 500);
  const auto config = s.dir.write("scout.yaml", s.config_yaml());

  const auto result = notify(config, k_patient_phone, "call");
  INFO("stdout:\n" << result.out << "\nstderr:\n" << result.err);
  CHECK(result.exit_code == 0);
  CHECK(result.out.find("accepted by twilio") != std::string::npos);
  CHECK(s.vonage->log().count_requests("POST", "/v1/calls") == 3);
  const auto tlog = s.twilio->log();
  REQUIRE(tlog.calls.size() == 1);
  CHECK(tlog.calls[0].to == k_patient_phone);
  CHECK(fake::form_values(tlog.calls[0].request, "StatusCallback").empty());
  CHECK(result.out.find(tlog.calls[0].sid) != std::string::npos);
}
