#pragma once
// Support for the `scout run` scenarios (test_run.cpp, test_run_modes.cpp): the real binary
// against an in-process Nightscout whose glucose the test sets, the Vonage and Twilio fakes, and
// scout's own webhook listener on a free loopback port. Every wait is bounded.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "integration/support.hpp"
#include "support/fake_nightscout.hpp"
#include "support/fake_twilio.hpp"
#include "support/fake_vonage.hpp"

// REQUIRE / CHECK that show scout's log (stderr, debug level) when they fail (INFO is evaluated
// where it is written). `scenario` is a Scenario.
#define REQUIRE_RUN(scenario, ...)                  \
  do {                                              \
    INFO("scout log:\n" << (scenario).scout_log()); \
    REQUIRE(__VA_ARGS__);                           \
  } while (false)
#define CHECK_RUN(scenario, ...)                    \
  do {                                              \
    INFO("scout log:\n" << (scenario).scout_log()); \
    CHECK(__VA_ARGS__);                             \
  } while (false)

namespace scout::test {

inline const std::string k_vonage_key_dir = std::string(SCOUT_TEST_DATA_DIR) + "/vonage";
inline const std::string k_patient_phone = "+15555551000";
inline const std::string k_contact_phone = "+15555559999";

// A loopback port that was free a moment ago (bound to port 0, then closed).
inline int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  int port = -1;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  ::close(fd);
  return port;
}

// Polls `pred` every 20 ms until it holds or `limit` passes (for files written by another
// process, where no notification exists).
inline bool poll_until(const std::function<bool()>& pred, std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  for (;;) {
    if (pred()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds{20});
  }
}

// `scout` running in the background with stdout and stderr appended to `log_path`. The
// destructor stops it (SIGTERM, then SIGKILL after 10 s).
class ScoutProcess {
 public:
  // `env`: "NAME=value" entries added to (or replacing in) the test's environment.
  ScoutProcess(const std::vector<std::string>& args, std::string log_path,
               const std::vector<std::string>& env = {})
      : m_log_path(std::move(log_path)) {
    std::vector<std::string> argv = {k_scout};
    argv.insert(argv.end(), args.begin(), args.end());
    std::vector<char*> cargs;
    for (auto& a : argv) cargs.push_back(a.data());
    cargs.push_back(nullptr);
    // Built before fork: the child may only make async-signal-safe calls.
    std::vector<std::string> envs = env;
    for (char** e = environ; *e != nullptr; ++e) {
      const std::string_view entry{*e};
      const auto name = entry.substr(0, entry.find('=') + 1);
      if (std::none_of(env.begin(), env.end(), [&](const std::string& x) { return x.rfind(name, 0) == 0; })) {
        envs.emplace_back(entry);
      }
    }
    std::vector<char*> cenv;
    for (auto& e : envs) cenv.push_back(e.data());
    cenv.push_back(nullptr);
    const int log_fd = ::open(m_log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log_fd < 0) throw std::runtime_error("cannot open " + m_log_path);
    m_log_offset = static_cast<std::size_t>(::lseek(log_fd, 0, SEEK_END));
    m_pid = ::fork();
    if (m_pid == 0) {
      // Child: only async-signal-safe calls. Nothing of the test process (the fakes' sockets)
      // may leak into scout.
      const int devnull = ::open("/dev/null", O_RDONLY);
      ::dup2(devnull, 0);
      ::dup2(log_fd, 1);
      ::dup2(log_fd, 2);
      for (int fd = 3; fd < 4096; ++fd) ::close(fd);
      ::execve(cargs[0], cargs.data(), cenv.data());
      ::_exit(127);
    }
    ::close(log_fd);
    if (m_pid < 0) throw std::runtime_error("fork failed");
  }
  ScoutProcess(const ScoutProcess&) = delete;
  ScoutProcess& operator=(const ScoutProcess&) = delete;
  ~ScoutProcess() {
    if (m_pid > 0) terminate(std::chrono::seconds{10});
  }

  pid_t pid() const { return m_pid; }

  // What this process wrote so far.
  std::string log() const {
    const auto all = fake::read_text(m_log_path);
    return all.size() > m_log_offset ? all.substr(m_log_offset) : "";
  }

  bool wait_for_log(const std::string& text, std::chrono::milliseconds limit) const {
    return poll_until([&] { return log().find(text) != std::string::npos; }, limit);
  }

  // True while the process has not exited.
  bool running() {
    if (m_pid <= 0) return false;
    int status = 0;
    if (::waitpid(m_pid, &status, WNOHANG) == m_pid) {
      m_exit = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      m_pid = -1;
      return false;
    }
    return true;
  }

  // SIGTERM and wait at most `limit` (then SIGKILL). The exit code, -1 when killed by a signal.
  int terminate(std::chrono::milliseconds limit) {
    if (m_pid <= 0) return m_exit;
    ::kill(m_pid, SIGTERM);
    if (!poll_until([&] { return !running(); }, limit)) kill9();
    return m_exit;
  }

  // SIGKILL: a crash as far as scout can tell.
  void kill9() {
    if (m_pid <= 0) return;
    ::kill(m_pid, SIGKILL);
    int status = 0;
    ::waitpid(m_pid, &status, 0);
    m_pid = -1;
    m_exit = -1;
  }

 private:
  std::string m_log_path;
  std::size_t m_log_offset = 0;
  pid_t m_pid = -1;
  int m_exit = -1;
};

// Nightscout serving `count` sgv entries 5 minutes apart, the newest `age_s` seconds old, all
// with the glucose `sgv` (mg/dL); both can change while scout runs.
class GlucoseSource {
 public:
  std::atomic<int> sgv{120};
  std::atomic<int> age_s{60};

  GlucoseSource() {
    m_ns.server().Get(R"(.*/api/v1/entries(/sgv)?\.json)", [this](const httplib::Request& req,
                                                                   httplib::Response& res) {
      const int count = req.has_param("count") ? std::stoi(req.get_param_value("count")) : 10;
      const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                           std::chrono::system_clock::now().time_since_epoch())
                           .count();
      const std::int64_t newest = now - std::int64_t{age_s.load()} * 1000;
      nlohmann::json entries = nlohmann::json::array();
      for (int i = 0; i < std::min(count, 12); ++i) {
        const std::int64_t date = newest - std::int64_t{i} * 300'000;
        entries.push_back({{"_id", fake::random_hex(12)},
                           {"type", "sgv"},
                           {"date", date},
                           {"dateString", iso(date)},
                           {"sgv", sgv.load()},
                           {"direction", "Flat"},
                           {"device", "fake"}});
      }
      res.set_content(entries.dump(), "application/json");
    });
  }
  bool start() { return m_ns.start(); }
  std::string base_url() const { return m_ns.base_url(); }
  std::size_t polls() const { return m_ns.requests().size(); }

 private:
  static std::string iso(std::int64_t ms) {
    const std::time_t secs = static_cast<std::time_t>(ms / 1000);
    std::tm tm{};
    gmtime_r(&secs, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    return std::string(buf) + ".000Z";
  }

  FakeNightscout m_ns;
};

// One journal line.
using JournalLine = nlohmann::json;

// Every complete line of the journal file (a half-written last line is left out).
inline std::vector<JournalLine> read_journal(const std::string& path) {
  std::vector<JournalLine> lines;
  std::istringstream in(fake::read_text(path));
  std::string line;
  while (std::getline(in, line)) {
    auto doc = nlohmann::json::parse(line, nullptr, false);
    if (doc.is_object()) lines.push_back(std::move(doc));
  }
  return lines;
}

// Journal lines of `type` whose string fields equal every (key, value) of `match`.
inline std::vector<JournalLine> journal_of(const std::vector<JournalLine>& journal, const std::string& type,
                                           const std::vector<std::pair<std::string, std::string>>& match = {}) {
  std::vector<JournalLine> out;
  for (const auto& line : journal) {
    if (line.value("type", "") != type) continue;
    bool ok = true;
    for (const auto& [k, v] : match) {
      if (!line.contains(k) || !line[k].is_string() || line[k].get<std::string>() != v) ok = false;
    }
    if (ok) out.push_back(line);
  }
  return out;
}

// What a scenario needs to vary.
struct ScenarioSpec {
  bool vonage = true;
  bool twilio = false;
  bool vonage_signed = true;  // signature_secret configured (else scout uses its URL token)
  std::string step1_after = "60s";  // when the contacts step is due
  std::string min_call_gap = "2m";
  std::string repeat = "15m";     // escalation.repeat
  bool listener = true;           // the `listener:` section
  std::string console_answer = "";  // not empty: a console provider (never | ack | noack) last
  int webhook_attempts = 3;         // tries per webhook of the provider fakes
  std::string state_name = "state.json";  // the state file, relative to the scenario's dir
};

// A TempDir, the glucose source, the fakes, a listener port and the config; then scout itself.
class Scenario {
 public:
  explicit Scenario(ScenarioSpec spec) : m_spec(std::move(spec)) {
    if (m_spec.vonage) {
      VonageOptions o;
      o.public_key_pem = fake::read_text(k_vonage_key_dir + "/test_public_key.pem");
      o.signing = m_spec.vonage_signed ? VonageSigning::signed_jwt : VonageSigning::unsigned_;
      o.webhook_attempts = m_spec.webhook_attempts;
      vonage = std::make_unique<FakeVonage>(o);
    }
    if (m_spec.twilio) twilio = std::make_unique<FakeTwilio>(TwilioOptions{});
    listener_port = free_port();
  }

  // Starts the fakes; false when one cannot run.
  bool start_fakes() {
    if (!glucose.start()) return false;
    if (vonage && (vonage->options().public_key_pem.empty() || !vonage->start())) return false;
    if (twilio && !twilio->start()) return false;
    return listener_port > 0;
  }

  std::string config_yaml() const {
    std::ostringstream y;
    y << "units: mg/dL\n"
      << "poll: {interval: 10s, timeout: 5s}\n"
      << "state_file: " << state_path() << "\n"
      << "journal_file: " << journal_path() << "\n";
    if (m_spec.listener) {
      y << "listener:\n"
        << "  bind: 127.0.0.1:" << listener_port << "\n"
        << "  public_url: " << listener_url() << "\n";
    }
    y << "providers:\n";
    if (vonage) {
      const auto& o = vonage->options();
      y << "  - type: vonage\n"
        << "    application_id: " << o.application_id << "\n"
        << "    private_key_file: " << k_vonage_key_dir << "/test_private_key.pem\n"
        << "    api_key: " << o.api_key << "\n"
        << "    api_secret: " << o.api_secret << "\n";
      if (m_spec.vonage_signed) y << "    signature_secret: " << o.signature_secret << "\n";
      y << "    from: \"+14155550100\"\n"
        << "    base_url: " << vonage->base_url() << "\n";
    }
    if (twilio) {
      const auto& o = twilio->options();
      y << "  - type: twilio\n"
        << "    account_sid: " << o.account_sid << "\n"
        << "    auth_token: " << o.auth_token << "\n"
        << "    from: \"+14155550101\"\n"
        << "    base_url: " << twilio->base_url() << "\n";
    }
    if (!m_spec.console_answer.empty()) {
      y << "  - type: console\n"
        << "    answer: " << m_spec.console_answer << "\n";
    }
    y << "defaults:\n"
      << "  thresholds: {urgent_low: 55, low: 70, high: 250, urgent_high: 300}\n"
      << "  stale: {warn: 15m, urgent: 30m}\n"
      << "  min_call_gap: " << m_spec.min_call_gap << "\n"
      << "  escalation:\n"
      << "    urgent:\n"
      << "      - {after: 0s, call: [patient]}\n"
      << "      - {after: " << m_spec.step1_after << ", call: [contacts], sms: [contacts]}\n"
      << "    warning:\n"
      << "      - {after: 0s, call: [patient]}\n"
      << "      - {after: " << m_spec.step1_after << ", sms: [contacts]}\n"
      << "    repeat: " << m_spec.repeat << "\n"
      << "patients:\n"
      << "  - name: Alice\n"
      << "    timezone: UTC\n"
      << "    phone: \"" << k_patient_phone << "\"\n"
      << "    nightscout:\n"
      << "      url: " << glucose.base_url() << "\n"
      << "    contacts:\n"
      << "      - {name: Bob, phone: \"" << k_contact_phone << "\"}\n";
    return y.str();
  }

  // Writes the config and starts scout; true once it announced its listener. `INFO(scout_log())`
  // shows why when not.
  bool start_scout(const std::vector<std::string>& env = {}) {
    const auto config = dir.write("scout.yaml", config_yaml());
    scout = std::make_unique<ScoutProcess>(
        std::vector<std::string>{"--log-level", "debug", "run", "--config", config, "--state", state_path()},
        log_path(), env);
    return scout->wait_for_log("listening for webhooks on http://", std::chrono::seconds{15});
  }

  std::string state_path() const { return (dir.path() / m_spec.state_name).string(); }
  std::string journal_path() const { return (dir.path() / "journal.jsonl").string(); }
  std::string log_path() const { return (dir.path() / "scout.log").string(); }
  std::string listener_url() const { return "http://127.0.0.1:" + std::to_string(listener_port); }
  std::string scout_log() const { return fake::read_text(log_path()); }

  std::vector<JournalLine> journal() const { return read_journal(journal_path()); }
  bool wait_journal(const std::function<bool(const std::vector<JournalLine>&)>& pred,
                    std::chrono::milliseconds limit) const {
    return poll_until([&] { return pred(journal()); }, limit);
  }
  // Waits for a journal line of `type` matching `match`.
  bool wait_journal(const std::string& type, const std::vector<std::pair<std::string, std::string>>& match,
                    std::chrono::milliseconds limit) const {
    return wait_journal([&](const auto& j) { return !journal_of(j, type, match).empty(); }, limit);
  }

  // Declared in destruction order: scout stops first, then the fakes, then the files go.
  TempDir dir;
  GlucoseSource glucose;
  std::unique_ptr<FakeVonage> vonage;
  std::unique_ptr<FakeTwilio> twilio;
  int listener_port = -1;
  std::unique_ptr<ScoutProcess> scout;

 private:
  ScenarioSpec m_spec;
};

// The `call` query parameter of a webhook URL scout gave a provider ("" when absent).
inline std::string call_key_of(const std::string& url) {
  const auto q = url.find('?');
  if (q == std::string::npos) return "";
  for (const auto& [k, v] : fake::parse_form(std::string_view(url).substr(q + 1))) {
    if (k == "call") return v;
  }
  return "";
}

}  // namespace scout::test
