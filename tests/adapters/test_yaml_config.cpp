#include "scout/adapters/yaml_config.hpp"

#include <catch2/catch.hpp>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using scout::adapters::ConfigEnvironment;
using scout::adapters::ConfigLoad;
using scout::adapters::ConfigProblem;
using scout::adapters::default_config_path;
using scout::adapters::default_escalation;
using scout::adapters::load_config;
using scout::adapters::parse_config;
using scout::adapters::system_config_environment;
namespace core = scout::core;

namespace {

const std::string k_pem =
    "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n";

// What lies outside the YAML text, under the test's control.
struct FakeEnvironment {
  std::map<std::string, std::string> vars;
  std::map<std::string, std::string> files;
  std::set<std::string> zones{"UTC", "Europe/Paris", "America/New_York"};

  ConfigEnvironment get() const {
    ConfigEnvironment env;
    env.getenv = [this](const std::string& name) -> std::optional<std::string> {
      const auto it = vars.find(name);
      if (it == vars.end()) {
        return std::nullopt;
      }
      return it->second;
    };
    env.read_file = [this](const std::string& path) -> std::optional<std::string> {
      const auto it = files.find(path);
      if (it == files.end()) {
        return std::nullopt;
      }
      return it->second;
    };
    env.is_timezone = [this](const std::string& name) { return zones.count(name) == 1; };
    return env;
  }
};

ConfigLoad parse(const std::string& text, const FakeEnvironment& fake = {}) {
  return parse_config(text, "scout.yaml", fake.get());
}

std::vector<std::string> messages(const std::vector<ConfigProblem>& problems) {
  std::vector<std::string> out;
  for (const auto& p : problems) {
    out.push_back(p.to_string());
  }
  return out;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE(in.good());
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

std::string data_path(const std::string& name) {
  return std::string{SCOUT_TEST_DATA_DIR} + "/config/" + name;
}

const std::vector<std::string> k_none{};

// The smallest valid config: one console provider, one patient.
const std::string k_minimal = R"(providers:
  - type: console
patients:
  - name: Alice
    phone: "+33612345678"
    nightscout: {url: https://alice.example.org}
)";

// A valid provider block and a valid patient head, for tests that vary the rest.
const std::string k_providers = R"(providers:
  - type: console
)";

FakeEnvironment full_environment() {
  FakeEnvironment fake;
  fake.vars = {{"VONAGE_API_KEY", "abcd1234"},
               {"CREDENTIALS_DIRECTORY", "/run/credentials/scout.service"},
               {"VONAGE_SIGNATURE_SECRET", "signature-secret-value"},
               {"TWILIO_AUTH_TOKEN", "twilio-token-value"},
               {"ALICE_NS_TOKEN", "alice-0123456789abcdef"}};
  fake.files = {{"/etc/scout/cert.pem", "-----BEGIN CERTIFICATE-----\n"},
                {"/etc/scout/key.pem", k_pem},
                {"/etc/scout/vonage.key", k_pem},
                {"/run/credentials/scout.service/vonage_api_secret", "vonage-api-secret\n"},
                {"/run/credentials/scout.service/bob_ns_secret",
                 "bob-secret-123456\r\nsecond line is ignored\n"}};
  return fake;
}

core::Config expected_full_config() {
  core::Config c;
  c.source_path = "full.yaml";
  c.units = core::GlucoseUnit::mg_dl;
  c.poll = {2min, 15s};
  c.state_file = "/srv/scout/state.json";
  c.journal_file = "/srv/scout/journal.jsonl";
  c.heartbeat_url = "https://hc-ping.example.com/abc-123";
  c.listener = core::Listener{"0.0.0.0", 9090, "https://scout.example.org/hooks",
                              core::ListenerTls{"/etc/scout/cert.pem", "/etc/scout/key.pem"}};

  core::Provider vonage;
  vonage.type = core::ProviderType::vonage;
  vonage.from = "+14155550100";
  vonage.base_url = "http://127.0.0.1:18080";
  vonage.application_id = "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0";
  vonage.private_key_pem = k_pem;
  vonage.api_key = "abcd1234";
  vonage.api_secret = "vonage-api-secret";
  vonage.signature_secret = "signature-secret-value";
  core::Provider twilio;
  twilio.type = core::ProviderType::twilio;
  twilio.from = "+14155550101";
  twilio.base_url = "https://api.twilio.com";
  twilio.account_sid = "AC0123456789abcdef0123456789abcdef";
  twilio.auth_token = "twilio-token-value";
  core::Provider console;
  console.type = core::ProviderType::console;
  console.answer = core::ConsoleAnswer::ack;
  c.providers = {vonage, twilio, console};

  core::AlarmSettings d;
  d.thresholds = {54, 72, 240, 290};
  d.hysteresis = 6;
  core::ScheduleEntry night;
  night.start_minute = 22 * 60;
  night.end_minute = 7 * 60;
  night.thresholds.low = 80;
  d.schedule = {night};
  d.stale = {20min, 40min};
  d.unreachable = 45min;
  d.predict = {false, 25min};
  d.ack = core::AckMode::answer;
  d.snooze = scout::core::SnoozeSettings::all(20min);
  d.min_call_gap = 3min;
  d.max_calls_per_hour = 8;
  d.max_sms_per_hour = 12;
  d.notify_resolved = false;
  d.escalation.urgent = {{0s, {"patient"}, {}}, {4min, {"Bob"}, {"contacts"}}};
  d.escalation.warning = {{0s, {}, {"patient"}}, {20min, {"contacts"}, {}}};
  d.escalation.repeat = 10min;
  c.defaults = d;

  core::Patient alice;
  alice.name = "Alice";
  alice.timezone = "Europe/Paris";
  alice.phone = "+33612345678";
  alice.nightscout = {"https://alice.example.org/ns", "alice-0123456789abcdef", ""};
  alice.contacts = {{"Bob", "+33687654321"}, {"Carol", "+33611112222"}};
  alice.settings = d;
  alice.settings.thresholds.high = 260;
  alice.settings.stale.urgent = 50min;
  alice.settings.escalation.warning = {{0s, {"patient", "Carol"}, {}}};

  core::Patient bob;
  bob.name = "Bob";
  bob.phone = "+14155550123";
  bob.nightscout = {"http://bob.example.org", "", "bob-secret-123456"};
  bob.contacts = {{"Bob", "+14155550124"}};
  bob.settings = d;
  bob.settings.schedule.clear();
  bob.settings.ack = core::AckMode::keypress;

  c.patients = {alice, bob};
  return c;
}

// Restores the working directory when it goes out of scope.
struct WorkingDirectory {
  std::filesystem::path previous = std::filesystem::current_path();
  explicit WorkingDirectory(const std::filesystem::path& dir) {
    std::filesystem::current_path(dir);
  }
  ~WorkingDirectory() { std::filesystem::current_path(previous); }
  WorkingDirectory(const WorkingDirectory&) = delete;
  WorkingDirectory& operator=(const WorkingDirectory&) = delete;
};

}  // namespace

// ---- good files -----------------------------------------------------------------------------

TEST_CASE("a config with every field is parsed into the model, with inheritance and secrets",
          "[adapters][config]") {
  // Given full.yaml and an environment with its variables and secret files
  const auto fake = full_environment();
  // When it is parsed
  const ConfigLoad load = parse_config(read_text(data_path("full.yaml")), "full.yaml", fake.get());
  // Then there is no problem or warning and every field has reached the model
  CHECK(messages(load.problems) == k_none);
  CHECK(messages(load.warnings) == k_none);
  REQUIRE(load.config.has_value());
  const core::Config& config = *load.config;
  const core::Config expected = expected_full_config();
  CHECK(config.units == expected.units);
  CHECK(config.poll == expected.poll);
  CHECK(config.state_file == expected.state_file);
  CHECK(config.journal_file == expected.journal_file);
  CHECK(config.heartbeat_url == expected.heartbeat_url);
  CHECK(config.listener == expected.listener);
  REQUIRE(config.providers.size() == 3);
  CHECK(config.providers[0] == expected.providers[0]);
  CHECK(config.providers[1] == expected.providers[1]);
  CHECK(config.providers[2] == expected.providers[2]);
  CHECK(config.defaults == expected.defaults);
  REQUIRE(config.patients.size() == 2);
  CHECK(config.patients[0] == expected.patients[0]);
  CHECK(config.patients[1] == expected.patients[1]);
  CHECK(config == expected);
}

TEST_CASE("a minimal config gets the defaults of SPEC section 2", "[adapters][config]") {
  // Given only a console provider and one patient
  const ConfigLoad load = parse(k_minimal);
  REQUIRE(messages(load.problems) == k_none);
  const core::Config& config = *load.config;
  // Then everything else has the SPEC defaults
  CHECK(config.source_path == "scout.yaml");
  CHECK(config.units == core::GlucoseUnit::mg_dl);
  CHECK(config.poll == core::PollSettings{60s, 10s});
  CHECK(config.state_file == "/var/lib/scout/state.json");
  CHECK(config.journal_file.empty());
  CHECK(config.heartbeat_url.empty());
  CHECK_FALSE(config.listener.has_value());
  core::Provider console;
  console.type = core::ProviderType::console;
  console.answer = core::ConsoleAnswer::never;
  CHECK(config.providers == std::vector<core::Provider>{console});
  core::AlarmSettings defaults;
  defaults.escalation = default_escalation();
  CHECK(config.defaults == defaults);
  REQUIRE(config.patients.size() == 1);
  CHECK(config.patients[0].settings == defaults);
  CHECK(config.patients[0].timezone.empty());
  CHECK(config.patients[0].nightscout == core::NightscoutSite{"https://alice.example.org", "", ""});
}

TEST_CASE("the default escalation is the one in SPEC section 2", "[adapters][config]") {
  const core::Escalation escalation = default_escalation();
  CHECK(escalation.urgent == std::vector<core::EscalationStep>{{0s, {"patient"}, {}},
                                                               {5min, {"contacts"}, {"contacts"}}});
  CHECK(escalation.warning ==
        std::vector<core::EscalationStep>{{0s, {"patient"}, {}}, {15min, {}, {"contacts"}}});
  CHECK(escalation.repeat == 15min);
}

TEST_CASE("a patient with no contacts gets a warning, not an error, for the contacts steps",
          "[adapters][config]") {
  // Given the minimal config (default escalation reaches `contacts`; Alice has none)
  const ConfigLoad load = parse(k_minimal);
  // Then it is valid, with one warning at the patient
  CHECK(load.config.has_value());
  CHECK(messages(load.warnings) ==
        std::vector<std::string>{"scout.yaml:4:5: patients[0]: escalation reaches `contacts` "
                                 "but Alice has none: those steps notify nobody"});
}

TEST_CASE("thresholds in mmol/L are converted to whole mg/dL with Nightscout's factor",
          "[adapters][config]") {
  // Given mmol.yaml
  const ConfigLoad load =
      parse_config(read_text(data_path("mmol.yaml")), "mmol.yaml", FakeEnvironment{}.get());
  REQUIRE(messages(load.problems) == k_none);
  const core::Config& config = *load.config;
  // Then 3.0 -> 54, 3.9 -> 70, 10.0 -> 180, 13.9 -> 250 and hysteresis 0.3 -> 5
  CHECK(config.units == core::GlucoseUnit::mmol_l);
  CHECK(config.defaults.thresholds == core::Thresholds{54, 70, 180, 250});
  CHECK(config.defaults.hysteresis == 5);
  // And the schedule's 4.4 -> 79, across midnight from 23:30 to 06:15
  REQUIRE(config.defaults.schedule.size() == 1);
  CHECK(config.defaults.schedule[0].start_minute == 23 * 60 + 30);
  CHECK(config.defaults.schedule[0].end_minute == 6 * 60 + 15);
  CHECK(config.defaults.schedule[0].thresholds.low == std::optional<int>{79});
  // And the patient's high 11.1 -> 200, merged over the defaults
  CHECK(config.patients[0].settings.thresholds == core::Thresholds{54, 70, 200, 250});
}

TEST_CASE("units are accepted in either case", "[adapters][config]") {
  const auto units = GENERATE(as<std::string>{}, "mg/dl", "MG/DL", "mmol/l");
  const ConfigLoad load = parse("units: " + units + "\n" + k_minimal);
  CHECK(messages(load.problems) == k_none);
}

TEST_CASE("a patient's overrides merge thresholds, stale and predict field by field",
          "[adapters][config]") {
  // Given defaults and a patient overriding single fields of each map
  const ConfigLoad load = parse(k_providers + R"(defaults:
  thresholds: {low: 75, high: 200}
  stale: {warn: 10m}
  predict: {horizon: 15m}
  snooze: 45m
patients:
  - name: Alice
    phone: "+33612345678"
    nightscout: {url: https://alice.example.org}
    thresholds: {urgent_low: 50}
    stale: {urgent: 35m}
    predict: {enabled: false}
    snooze: 5m
)");
  REQUIRE(messages(load.problems) == k_none);
  const core::AlarmSettings& s = load.config->patients[0].settings;
  // Then each field comes from the most specific level that sets it
  CHECK(s.thresholds == core::Thresholds{50, 75, 200, 300});
  CHECK(s.stale == core::StaleSettings{10min, 35min});
  CHECK(s.predict == core::PredictSettings{false, 15min});
  CHECK(s.snooze == scout::core::SnoozeSettings::all(5min));
  CHECK(load.config->defaults.snooze == scout::core::SnoozeSettings::all(45min));
}

TEST_CASE("a patient's schedule and escalation chains replace the defaults' ones",
          "[adapters][config]") {
  const ConfigLoad load = parse(k_providers + R"(defaults:
  schedule:
    - {between: "22:00-07:00", thresholds: {low: 80}}
  escalation:
    urgent:
      - {after: 0s, call: [patient]}
    warning:
      - {after: 0s, sms: [patient]}
patients:
  - name: Alice
    phone: "+33612345678"
    nightscout: {url: https://alice.example.org}
    contacts: [{name: Bob, phone: "+33687654321"}]
    schedule:
      - {between: "12:00-13:00", thresholds: {high: 200}}
    escalation:
      urgent:
        - {after: 0s, call: [patient, Bob]}
)");
  REQUIRE(messages(load.problems) == k_none);
  const core::AlarmSettings& s = load.config->patients[0].settings;
  core::ScheduleEntry lunch;
  lunch.start_minute = 12 * 60;
  lunch.end_minute = 13 * 60;
  lunch.thresholds.high = 200;
  CHECK(s.schedule == std::vector<core::ScheduleEntry>{lunch});
  CHECK(s.escalation.urgent == std::vector<core::EscalationStep>{{0s, {"patient", "Bob"}, {}}});
  CHECK(s.escalation.warning == std::vector<core::EscalationStep>{{0s, {}, {"patient"}}});
}

TEST_CASE("a schedule window may wrap midnight", "[adapters][config]") {
  const ConfigLoad load = parse(k_minimal + R"(    schedule:
      - {between: "23:00-01:30", thresholds: {low: 90}}
      - {between: "7:05 - 9:00", thresholds: {high: 180}}
)");
  REQUIRE(messages(load.problems) == k_none);
  const auto& schedule = load.config->patients[0].settings.schedule;
  REQUIRE(schedule.size() == 2);
  CHECK(schedule[0].start_minute == 23 * 60);
  CHECK(schedule[0].end_minute == 90);
  CHECK(schedule[1].start_minute == 7 * 60 + 5);
  CHECK(schedule[1].end_minute == 9 * 60);
  CHECK(core::thresholds_at(load.config->patients[0].settings, 30).low == 90);
}

TEST_CASE("environment variables are interpolated in any string, also inside text",
          "[adapters][config]") {
  // Given variables used whole, as a prefix/suffix, and twice in one value
  FakeEnvironment fake;
  fake.vars = {
      {"NS_HOST", "alice.example.org"}, {"DIR", "/srv"}, {"LOW", "65"}, {"TOKEN", "tok-123"}};
  const ConfigLoad load = parse(R"(state_file: ${DIR}/scout-${DIR}.json
providers:
  - type: console
patients:
  - name: Alice
    phone: "+33612345678"
    nightscout: {url: "https://${NS_HOST}/", token: "${TOKEN}"}
    thresholds: {low: "${LOW}"}
)",
                                fake);
  REQUIRE(messages(load.problems) == k_none);
  CHECK(load.config->state_file == "/srv/scout-/srv.json");
  CHECK(load.config->patients[0].nightscout ==
        core::NightscoutSite{"https://alice.example.org", "tok-123", ""});
  CHECK(load.config->patients[0].settings.thresholds.low == 65);
}

TEST_CASE("a `$` not followed by `{` is kept as it is", "[adapters][config]") {
  const ConfigLoad load = parse("state_file: /srv/$HOME/a$b.json\n" + k_minimal);
  REQUIRE(messages(load.problems) == k_none);
  CHECK(load.config->state_file == "/srv/$HOME/a$b.json");
}

TEST_CASE("secrets come from the first line of a *_file, and the private key from the whole file",
          "[adapters][config]") {
  FakeEnvironment fake;
  fake.files = {{"/run/creds/key", k_pem},
                {"/run/creds/api_key", "the-key\nignored\n"},
                {"/run/creds/api_secret", "the-secret\r\n"},
                {"/run/creds/sig", "the-signature-secret"},
                {"/run/creds/twilio", "the-auth-token\n"},
                {"/run/creds/ns", "ns-token\n"}};
  const ConfigLoad load = parse(R"(providers:
  - type: vonage
    application_id: 0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0
    private_key_file: /run/creds/key
    api_key_file: /run/creds/api_key
    api_secret_file: /run/creds/api_secret
    signature_secret_file: /run/creds/sig
    from: "+14155550100"
  - type: twilio
    account_sid: AC0123456789ABCDEF0123456789ABCDEF
    auth_token_file: /run/creds/twilio
    from: "+14155550101"
patients:
  - name: Alice
    phone: "+33612345678"
    nightscout: {url: https://alice.example.org, token_file: /run/creds/ns}
)",
                                fake);
  REQUIRE(messages(load.problems) == k_none);
  const auto& vonage = load.config->providers[0];
  CHECK(vonage.private_key_pem == k_pem);
  CHECK(vonage.api_key == "the-key");
  CHECK(vonage.api_secret == "the-secret");
  CHECK(vonage.signature_secret == "the-signature-secret");
  CHECK(vonage.base_url == "https://api.nexmo.com");
  CHECK(load.config->providers[1].auth_token == "the-auth-token");
  CHECK(load.config->providers[1].base_url == "https://api.twilio.com");
  CHECK(load.config->patients[0].nightscout.token == "ns-token");
}

TEST_CASE("a private key may be given inline, e.g. from a variable", "[adapters][config]") {
  FakeEnvironment fake;
  fake.vars = {{"VONAGE_KEY", k_pem}};
  const ConfigLoad load = parse(R"(providers:
  - type: vonage
    application_id: 0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0
    private_key: ${VONAGE_KEY}
    api_key: k
    api_secret: s
    from: "+14155550100"
patients:
  - name: Alice
    phone: "+33612345678"
    nightscout: {url: https://alice.example.org}
)",
                                fake);
  REQUIRE(messages(load.problems) == k_none);
  CHECK(load.config->providers[0].private_key_pem == k_pem);
  CHECK(load.config->providers[0].signature_secret.empty());
}

TEST_CASE("a listener with only public_url binds to 127.0.0.1:8787 and has no TLS",
          "[adapters][config]") {
  const ConfigLoad load = parse("listener: {public_url: https://scout.example.org}\n" + k_minimal);
  REQUIRE(messages(load.problems) == k_none);
  CHECK(load.config->listener ==
        core::Listener{"127.0.0.1", 8787, "https://scout.example.org", std::nullopt});
}

TEST_CASE("a listener may bind an IPv6 address in brackets", "[adapters][config]") {
  const ConfigLoad load =
      parse("listener: {bind: \"[::1]:8080\", public_url: \"https://[::1]:8080/\"}\n" + k_minimal);
  REQUIRE(messages(load.problems) == k_none);
  CHECK(load.config->listener->bind_host == "::1");
  CHECK(load.config->listener->bind_port == 8080);
  CHECK(load.config->listener->public_url == "https://[::1]:8080");
}

TEST_CASE("an http public_url is a warning, not an error", "[adapters][config]") {
  const ConfigLoad load = parse("listener: {public_url: http://scout.example.org}\n" + k_minimal);
  CHECK(messages(load.problems) == k_none);
  REQUIRE(load.config.has_value());
  CHECK(messages(load.warnings).front() ==
        "scout.yaml:1:24: listener.public_url: uses http: webhooks (call outcomes, keypresses) "
        "travel unencrypted; use https or a TLS proxy");
}

// ---- bad files ------------------------------------------------------------------------------

TEST_CASE("several problems in one file are all reported, in file order, without secrets",
          "[adapters][config]") {
  // Given many_problems.yaml (one problem of each of seven kinds)
  const std::string text = read_text(data_path("many_problems.yaml"));
  // When it is parsed
  const ConfigLoad load = parse_config(text, "many_problems.yaml", FakeEnvironment{}.get());
  // Then every problem is reported at its value, and there is no config
  CHECK_FALSE(load.config.has_value());
  CHECK(messages(load.problems) ==
        std::vector<std::string>{
            "many_problems.yaml:3:13: poll.interval: must be at least 10s, got 5s",
            "many_problems.yaml:6:18: providers[0].account_sid: must be AC followed by 32 hex "
            "digits (the Account SID from the Twilio console)",
            "many_problems.yaml:10:21: defaults.thresholds.low: must be at most 150 mg/dL (higher "
            "and low alarms would come at ordinary glucose), got 260",
            "many_problems.yaml:14:28: defaults.escalation.urgent[1].call[0]: 'Dave' is not a "
            "contact of patients[0] (Alice); use patient, contacts or one of: Bob",
            "many_problems.yaml:17:12: patients[0].phone: must start with '+' and the country "
            "code (E.164, e.g. \"+14155550100\"; quote it in YAML)",
            "many_problems.yaml:18:23: patients[0].nightscout.url: must start with https:// or "
            "http://",
            "many_problems.yaml:21:5: patients[0].tresholds: unknown key; did you mean "
            "'thresholds'? (allowed: name, timezone, phone, nightscout, contacts, thresholds, "
            "hysteresis, schedule, stale, unreachable, predict, ack, snooze, min_call_gap, "
            "max_calls_per_hour, max_sms_per_hour, notify_resolved, escalation)",
        });
  // And the auth token appears nowhere
  for (const auto& m : messages(load.problems)) {
    CHECK(m.find("secret-value-that-must-not-leak") == std::string::npos);
  }
}

TEST_CASE("a YAML syntax error is one problem at its position", "[adapters][config]") {
  const ConfigLoad load = parse("providers:\n  - type: console\npatients: [\n");
  CHECK_FALSE(load.config.has_value());
  REQUIRE(load.problems.size() == 1);
  CHECK(load.problems[0].line == 4);
  CHECK(load.problems[0].message.rfind("invalid YAML: ", 0) == 0);
}

TEST_CASE("a YAML syntax error in a block map names its line and column", "[adapters][config]") {
  const ConfigLoad load = parse("units: mg/dL\npoll:\n  interval: 60s\n timeout: 10s\n");
  REQUIRE(load.problems.size() == 1);
  CHECK(load.problems[0].line == 4);
  CHECK(load.problems[0].column == 2);
  CHECK(load.problems[0].message == "invalid YAML: end of map not found");
}

TEST_CASE("an empty file and a file that is not a map are problems", "[adapters][config]") {
  CHECK(messages(parse("").problems) ==
        std::vector<std::string>{"scout.yaml:1:1: the file is empty; expected a map with "
                                 "`providers` and `patients`"});
  CHECK(messages(parse("# only a comment\n").problems).size() == 1);
  CHECK(messages(parse("- a\n- b\n").problems) ==
        std::vector<std::string>{
            "scout.yaml:1:1: must be a map of keys (units, poll, state_file, journal_file, "
            "heartbeat_url, listener, providers, defaults, patients), got a list"});
}

TEST_CASE("input on which yaml-cpp's LoadAll never returns is refused at once",
          "[adapters][config]") {
  // yaml-cpp 0.7's LoadAll loops on these, taking memory without bound.
  for (const std::string& text : {std::string{",\n"}, std::string{",,,\n"}, std::string{"a: 1\n,\n"}}) {
    CAPTURE(text);
    const ConfigLoad load = parse(text);
    CHECK_FALSE(load.problems.empty());
    CHECK_FALSE(load.config);
  }
  CHECK(messages(parse(",\n").problems) ==
        std::vector<std::string>{"scout.yaml:1:1: not a YAML map; expected a map with "
                                 "`providers` and `patients`"});
}

TEST_CASE("a config over 1 MiB is refused without parsing", "[adapters][config]") {
  const ConfigLoad load = parse(k_minimal + "# " + std::string(std::size_t{1} << 20, 'x') + "\n");
  REQUIRE(load.problems.size() == 1);
  CHECK_THAT(load.problems[0].message, Catch::Contains("a config is at most 1024 KiB"));
}

TEST_CASE("a second YAML document is a problem (its `---` line is named)", "[adapters][config]") {
  const ConfigLoad load = parse(k_minimal + "---\nunits: mg/dL\n");
  CHECK(messages(load.problems) ==
        std::vector<std::string>{"scout.yaml:7:1: only one YAML document is allowed (remove "
                                 "the second `---`)"});
}

TEST_CASE("a config opening with `---` is one document and a second one after it or after "
          "`...` is named",
          "[adapters][config]") {
  CHECK(parse("# scout\n---\n" + k_minimal).problems.empty());
  const ConfigLoad again = parse("---\n" + k_minimal + "---\nunits: mg/dL\n");
  CHECK(messages(again.problems) ==
        std::vector<std::string>{"scout.yaml:8:1: only one YAML document is allowed (remove "
                                 "the second `---`)"});
  const ConfigLoad ended = parse(k_minimal + "...\r\n---\r\nunits: mg/dL\r\n");
  REQUIRE(ended.problems.size() == 1);
  CHECK_THAT(ended.problems[0].message, Catch::Contains("only one YAML document is allowed"));
}

TEST_CASE("missing required top-level keys are reported at the top map", "[adapters][config]") {
  const ConfigLoad load = parse("units: mg/dL\n");
  CHECK(messages(load.problems) ==
        std::vector<std::string>{"scout.yaml:1:1: missing required key 'providers'",
                                 "scout.yaml:1:1: missing required key 'patients'"});
}

TEST_CASE("an unknown top-level key is an error that suggests the closest one",
          "[adapters][config]") {
  const ConfigLoad load = parse("unit: mg/dL\n" + k_minimal);
  CHECK(messages(load.problems) ==
        std::vector<std::string>{
            "scout.yaml:1:1: unit: unknown key at the top level; did you mean 'units'? "
            "(allowed: units, poll, state_file, journal_file, heartbeat_url, listener, "
            "providers, defaults, patients)"});
}

TEST_CASE("an unknown key deep inside is an error at the key, listing the allowed ones",
          "[adapters][config]") {
  const ConfigLoad load = parse(k_providers + R"(defaults:
  escalation:
    urgent:
      - {after: 0s, call: [patient], mail: [patient]}
patients:
  - name: Alice
    phone: "+33612345678"
    nightscout: {url: https://alice.example.org, tokn: abc}
    thresholds: {hihg: 200}
)");
  CHECK(messages(load.problems) ==
        std::vector<std::string>{
            "scout.yaml:6:38: defaults.escalation.urgent[0].mail: unknown key (allowed: after, "
            "call, sms)",
            "scout.yaml:10:50: patients[0].nightscout.tokn: unknown key; did you mean 'token'? "
            "(allowed: url, token, token_file, api_secret, api_secret_file)",
            "scout.yaml:11:18: patients[0].thresholds.hihg: unknown key; did you mean 'high'? "
            "(allowed: urgent_low, low, high, urgent_high)"});
}

TEST_CASE("a key given twice in one map is an error", "[adapters][config]") {
  const ConfigLoad load = parse("units: mg/dL\nunits: mmol/L\n" + k_minimal);
  CHECK(messages(load.problems) ==
        std::vector<std::string>{"scout.yaml:2:1: units: duplicate key (first given at line 1)"});
}

TEST_CASE("an unknown unit is an error", "[adapters][config]") {
  const ConfigLoad load = parse("units: mgdl\n" + k_minimal);
  CHECK(messages(load.problems) ==
        std::vector<std::string>{"scout.yaml:1:8: units: must be mg/dL or mmol/L, got 'mgdl'"});
}

TEST_CASE("a wrong type is named: a list where a map is expected, a map where a value is",
          "[adapters][config]") {
  const ConfigLoad load = parse("poll: [60s]\nstate_file: {a: b}\n" + k_minimal);
  CHECK(messages(load.problems) ==
        std::vector<std::string>{
            "scout.yaml:1:7: poll: must be a map of keys (interval, timeout), got a list",
            "scout.yaml:2:13: state_file: must be a single value, got a map"});
}

TEST_CASE("a key without a value is reported at the key", "[adapters][config]") {
  const ConfigLoad load = parse("state_file:\n" + k_minimal);
  CHECK(messages(load.problems) ==
        std::vector<std::string>{"scout.yaml:1:1: state_file: missing value"});
}

TEST_CASE("an unset environment variable is an error that names it", "[adapters][config]") {
  const ConfigLoad load = parse(R"(providers:
  - type: console
patients:
  - name: Alice
    phone: "+33612345678"
    nightscout:
      url: https://alice.example.org
      token: prefix-${ALICE_NS_TOKEN}
)");
  CHECK(messages(load.problems) ==
        std::vector<std::string>{"scout.yaml:8:14: patients[0].nightscout.token: environment "
                                 "variable ALICE_NS_TOKEN is not set"});
}

TEST_CASE("a malformed ${...} is an error", "[adapters][config]") {
  CHECK(messages(parse("state_file: /srv/${DIR\n" + k_minimal).problems) ==
        std::vector<std::string>{"scout.yaml:1:13: state_file: unterminated ${ (write ${NAME})"});
  CHECK(messages(parse("state_file: /srv/${1X}\n" + k_minimal).problems) ==
        std::vector<std::string>{"scout.yaml:1:13: state_file: invalid environment variable "
                                 "name '1X' in ${...} (letters, digits and _)"});
}

TEST_CASE("a secret given both inline and as a file is an error at the second one",
          "[adapters][config]") {
  FakeEnvironment fake;
  fake.files = {{"/run/creds/ns", "token\n"}};
  const ConfigLoad load = parse(R"(providers:
  - type: console
patients:
  - name: Alice
    phone: "+33612345678"
    nightscout:
      url: https://alice.example.org
      token: abc
      token_file: /run/creds/ns
)",
                                fake);
  CHECK(messages(load.problems) ==
        std::vector<std::string>{"scout.yaml:9:7: patients[0].nightscout.token_file: give "
                                 "either token or token_file, not both"});
}

TEST_CASE("an unreadable secret file is an error naming the path", "[adapters][config]") {
  const ConfigLoad load = parse(R"(providers:
  - type: twilio
    account_sid: AC0123456789abcdef0123456789abcdef
    auth_token_file: /run/creds/missing
    from: "+14155550101"
patients:
  - name: Alice
    phone: "+33612345678"
    nightscout: {url: https://alice.example.org}
)");
  CHECK(messages(load.problems) ==
        std::vector<std::string>{"scout.yaml:4:22: providers[0].auth_token_file: cannot read "
                                 "file '/run/creds/missing'"});
}

TEST_CASE("a secret file with an empty first line is an error", "[adapters][config]") {
  FakeEnvironment fake;
  fake.files = {{"/run/creds/ns", "\nsecret-on-line-2\n"}};
  const ConfigLoad load = parse(R"(providers:
  - type: console
patients:
  - name: Alice
    phone: "+33612345678"
    nightscout: {url: https://alice.example.org, token_file: /run/creds/ns}
)",
                                fake);
  CHECK(messages(load.problems) ==
        std::vector<std::string>{"scout.yaml:6:62: patients[0].nightscout.token_file: the first "
                                 "line of '/run/creds/ns' is empty"});
}

TEST_CASE("a private key file that is not a PEM key is an error that does not show it",
          "[adapters][config]") {
  FakeEnvironment fake;
  fake.files = {{"/etc/scout/vonage.key", "not-a-key-but-a-secret\n"}};
  const ConfigLoad load = parse(R"(providers:
  - type: vonage
    application_id: 0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0
    private_key_file: /etc/scout/vonage.key
    api_key: k
    api_secret: s
    from: "+14155550100"
patients:
  - name: Alice
    phone: "+33612345678"
    nightscout: {url: https://alice.example.org}
)",
                                fake);
  CHECK(messages(load.problems) ==
        std::vector<std::string>{"scout.yaml:4:23: providers[0].private_key_file: is not a PEM "
                                 "private key (expected -----BEGIN PRIVATE KEY-----)"});
}

TEST_CASE("bad durations and out-of-range poll settings are errors", "[adapters][config]") {
  CHECK(messages(parse("poll: {interval: 9s}\n" + k_minimal).problems) ==
        std::vector<std::string>{"scout.yaml:1:18: poll.interval: must be at least 10s, got 9s"});
  CHECK(messages(parse("poll: {interval: 30s, timeout: 30s}\n" + k_minimal).problems) ==
        std::vector<std::string>{
            "scout.yaml:1:32: poll.timeout: must be shorter than poll.interval (30s), got 30s"});
  CHECK(messages(parse("poll: {timeout: 0s}\n" + k_minimal).problems) ==
        std::vector<std::string>{"scout.yaml:1:17: poll.timeout: must be longer than 0s"});
  CHECK(messages(parse("poll: {interval: 10}\n" + k_minimal).problems) ==
        std::vector<std::string>{"scout.yaml:1:18: poll.interval: must be a duration like 45s, "
                                 "15m, 2h or 1h30m, got '10'"});
  CHECK(messages(parse("poll: {interval: 10s}\n" + k_minimal).problems) ==
        std::vector<std::string>{"scout.yaml:1:7: poll: poll.interval must be longer than the "
                                 "default timeout (10s); set poll.timeout"});
}

TEST_CASE("stale.warn must be shorter than stale.urgent, after inheritance", "[adapters][config]") {
  const ConfigLoad load = parse(k_minimal + "    stale: {warn: 30m}\n");
  CHECK(messages(load.problems) ==
        std::vector<std::string>{
            "scout.yaml:7:12: patients[0].stale: warn (30m) must be shorter than urgent (30m)"});
}

TEST_CASE("predict.horizon must be between 5m and 30m", "[adapters][config]") {
  const auto horizon = GENERATE(as<std::string>{}, "4m", "31m", "1h");
  const ConfigLoad load = parse(k_minimal + "    predict: {horizon: " + horizon + "}\n");
  REQUIRE(load.problems.size() == 1);
  CHECK(load.problems[0].line == 7);
  CHECK(load.problems[0].column == 24);
  CHECK(load.problems[0].message.rfind(
            "patients[0].predict.horizon: must be between 5m and 30m (AR2 forecasts six 5-minute "
            "steps), got ",
            0) == 0);
}

TEST_CASE("rate limits must be at least 1 and repeat longer than 0s", "[adapters][config]") {
  const ConfigLoad load = parse(k_providers + R"(defaults:
  max_calls_per_hour: 0
  max_sms_per_hour: many
  escalation: {repeat: 0s}
patients:
  - name: Alice
    phone: "+33612345678"
    nightscout: {url: https://alice.example.org}
)");
  CHECK(messages(load.problems) ==
        std::vector<std::string>{
            "scout.yaml:4:23: defaults.max_calls_per_hour: must be between 1 and 1000000, got 0",
            "scout.yaml:5:21: defaults.max_sms_per_hour: must be a whole number, got 'many'",
            "scout.yaml:6:24: defaults.escalation.repeat: must be at least 1s, got 0s"});
}

TEST_CASE("booleans and enums reject other words", "[adapters][config]") {
  const ConfigLoad load = parse(k_minimal + R"(    notify_resolved: maybe
    ack: press
)");
  CHECK(messages(load.problems) ==
        std::vector<std::string>{
            "scout.yaml:7:22: patients[0].notify_resolved: must be true or false, got 'maybe'",
            "scout.yaml:8:10: patients[0].ack: must be keypress or answer, got 'press'"});
}

TEST_CASE("a patient's threshold that breaks the order after inheritance is reported at it",
          "[adapters][config]") {
  // Given the default low 70 and a patient urgent_low of 80
  const ConfigLoad load = parse(k_minimal + "    thresholds: {urgent_low: 80}\n");
  CHECK(messages(load.problems) ==
        std::vector<std::string>{"scout.yaml:7:30: patients[0].thresholds.urgent_low: must be "
                                 "below low (70 mg/dL), got 80"});
}

TEST_CASE("a patient's lowered high is blamed on the high, naming the inherited low",
          "[adapters][config]") {
  const ConfigLoad load = parse(k_providers + R"(defaults:
  thresholds: {low: 140}
patients:
  - name: Alice
    phone: "+33612345678"
    nightscout: {url: https://alice.example.org}
    thresholds: {high: 130}
)");
  CHECK(messages(load.problems) ==
        std::vector<std::string>{"scout.yaml:9:24: patients[0].thresholds.high: must be above "
                                 "low (140 mg/dL), got 130"});
}

TEST_CASE("threshold order problems are reported in the config's units", "[adapters][config]") {
  const ConfigLoad load =
      parse("units: mmol/L\n" + k_minimal + "    thresholds: {urgent_low: 4.2}\n");
  CHECK(messages(load.problems) ==
        std::vector<std::string>{"scout.yaml:8:30: patients[0].thresholds.urgent_low: must be "
                                 "below low (3.9 mmol/L), got 4.2"});
}

TEST_CASE("a threshold outside its safe range is refused, naming the bound and why",
          "[adapters][config]") {
  // The issue's config that validated silently: 40 / 41 / 399 / 400 mg/dL.
  const ConfigLoad load = parse(
      k_minimal + "    thresholds: {urgent_low: 40, low: 41, high: 399, urgent_high: 400}\n");
  CHECK(messages(load.problems) ==
        std::vector<std::string>{
            "scout.yaml:7:30: patients[0].thresholds.urgent_low: must be at least 45 mg/dL "
            "(lower and a severe low would be announced only when it is already dangerous), got 40",
            "scout.yaml:7:39: patients[0].thresholds.low: must be at least 55 mg/dL (lower and a "
            "low would be announced only when it is already severe), got 41",
            "scout.yaml:7:49: patients[0].thresholds.high: must be at most 300 mg/dL (higher and "
            "a high would be announced hours late), got 399",
            "scout.yaml:7:67: patients[0].thresholds.urgent_high: must be at most 350 mg/dL "
            "(higher and a dangerous high would never be announced: CGMs read at most 400 "
            "mg/dL), got 400"});
  // In mmol/L the bounds are said in mmol/L.
  CHECK(messages(parse("units: mmol/L\n" + k_minimal + "    thresholds: {low: 2.5}\n").problems) ==
        std::vector<std::string>{"scout.yaml:8:23: patients[0].thresholds.low: must be at least "
                                 "3.1 mmol/L (lower and a low would be announced only when it is "
                                 "already severe), got 2.5"});
}

TEST_CASE("a threshold outside the CGM's range hints at the wrong unit", "[adapters][config]") {
  CHECK(messages(parse(k_minimal + "    thresholds: {low: 3.9}\n").problems) ==
        std::vector<std::string>{"scout.yaml:7:23: patients[0].thresholds.low: must be between "
                                 "40 and 400 mg/dL, got 3.9 (units is mg/dL; is this mmol/L?)"});
  CHECK(messages(parse("units: mmol/L\n" + k_minimal + "    thresholds: {low: 70}\n").problems) ==
        std::vector<std::string>{"scout.yaml:8:23: patients[0].thresholds.low: must be between "
                                 "2.2 and 22.2 mmol/L, got 70 (units is mmol/L; is this mg/dL?)"});
}

TEST_CASE("a schedule entry that breaks the order is reported at its threshold",
          "[adapters][config]") {
  const ConfigLoad load = parse(k_providers + R"(defaults:
  schedule:
    - {between: "22:00-07:00", thresholds: {low: 80}}
    - {between: "12:00-13:00", thresholds: {urgent_high: 240}}
patients:
  - name: Alice
    phone: "+33612345678"
    nightscout: {url: https://alice.example.org}
)");
  CHECK(messages(load.problems) ==
        std::vector<std::string>{"scout.yaml:6:58: defaults.schedule[1].thresholds.urgent_high: "
                                 "must be above high (250 mg/dL), got 240"});
}

TEST_CASE("an inherited schedule entry is checked against a patient's own thresholds",
          "[adapters][config]") {
  // Given a night low of 130 in defaults and a patient whose high is 125
  const ConfigLoad load = parse(k_providers + R"(defaults:
  schedule:
    - {between: "22:00-07:00", thresholds: {low: 130}}
patients:
  - name: Alice
    phone: "+33612345678"
    nightscout: {url: https://alice.example.org}
    thresholds: {urgent_low: 50, low: 60, high: 125}
)");
  // Then the schedule entry is blamed, for that patient
  CHECK(messages(load.problems) ==
        std::vector<std::string>{"scout.yaml:5:50: defaults.schedule[0].thresholds.low: must be "
                                 "below high (125 mg/dL) for patients[0] (Alice), got 130"});
}

TEST_CASE("overlapping schedule entries are checked together", "[adapters][config]") {
  // Given two entries each valid alone whose overlap has low 140 above high 130
  const ConfigLoad load = parse(k_minimal + R"(    schedule:
      - {between: "06:00-09:00", thresholds: {low: 140, high: 240}}
      - {between: "08:00-10:00", thresholds: {high: 130}}
)");
  CHECK(messages(load.problems) ==
        std::vector<std::string>{
            "scout.yaml:9:53: patients[0].schedule[1].thresholds.high: must be above low (140 "
            "mg/dL) (at 08:00, where schedule entries 0 1 overlap), got 130"});
}

TEST_CASE("a schedule window must be HH:MM-HH:MM with different start and end",
          "[adapters][config]") {
  const ConfigLoad load = parse(k_minimal + R"(    schedule:
      - {between: "22:00-07:00"}
      - {between: "25:00-07:00", thresholds: {low: 80}}
      - {between: "07:00-07:00", thresholds: {low: 80}}
      - {between: "22:00-07:00", thresholds: {}}
)");
  CHECK(messages(load.problems) ==
        std::vector<std::string>{
            "scout.yaml:8:9: patients[0].schedule[0]: missing required key 'thresholds'",
            "scout.yaml:9:19: patients[0].schedule[1].between: must be \"HH:MM-HH:MM\" in "
            "24-hour local time (e.g. \"22:00-07:00\"), got '25:00-07:00'",
            "scout.yaml:10:19: patients[0].schedule[2].between: start and end are the same "
            "(07:00); for all day, set the thresholds themselves",
            "scout.yaml:11:46: patients[0].schedule[3].thresholds: sets no threshold (give "
            "urgent_low, low, high or urgent_high)"});
}

TEST_CASE("hysteresis must be smaller than the gap between low and high", "[adapters][config]") {
  CHECK(messages(parse(k_minimal + "    hysteresis: 180\n").problems) ==
        std::vector<std::string>{"scout.yaml:7:17: patients[0].hysteresis: must be smaller than "
                                 "the gap between low (70 mg/dL) and high (250 mg/dL), got 180 "
                                 "mg/dL"});
  CHECK(messages(parse(k_minimal + "    hysteresis: -1\n").problems) ==
        std::vector<std::string>{"scout.yaml:7:17: patients[0].hysteresis: must be 0 or more"});
}

TEST_CASE("escalation chains must be non-empty, in time order, and start urgent at 0s",
          "[adapters][config]") {
  const ConfigLoad load = parse(k_providers + R"(defaults:
  escalation:
    urgent:
      - {after: 1m, call: [patient]}
      - {after: 10m, call: [contacts]}
      - {after: 5m, sms: [contacts]}
    warning: []
patients:
  - name: Alice
    phone: "+33612345678"
    nightscout: {url: https://alice.example.org}
    contacts: [{name: Bob, phone: "+33687654321"}]
)");
  CHECK(messages(load.problems) ==
        std::vector<std::string>{
            "scout.yaml:6:17: defaults.escalation.urgent[0].after: the first urgent step must be "
            "after: 0s (an urgent alarm acts at once), got 1m",
            "scout.yaml:8:17: defaults.escalation.urgent[2].after: must not be earlier than the "
            "step before (10m), got 5m",
            "scout.yaml:9:14: defaults.escalation.warning: needs at least one step (e.g. {after: "
            "0s, call: [patient]})"});
}

TEST_CASE("a warning chain may start after a delay", "[adapters][config]") {
  const ConfigLoad load = parse(k_minimal + R"(    escalation:
      warning:
        - {after: 10m, sms: [patient]}
)");
  CHECK(messages(load.problems) == k_none);
  CHECK(load.config->patients[0].settings.escalation.warning.front().after == 10min);
}

TEST_CASE("an escalation step must do something and have an `after`", "[adapters][config]") {
  const ConfigLoad load = parse(k_minimal + R"(    escalation:
      warning:
        - {after: 0s}
        - {call: [patient]}
        - {after: 5m, call: [], sms: []}
)");
  CHECK(messages(load.problems) ==
        std::vector<std::string>{
            "scout.yaml:9:11: patients[0].escalation.warning[0]: does nothing: give call and/or "
            "sms targets",
            "scout.yaml:10:11: patients[0].escalation.warning[1]: missing required key 'after'",
            "scout.yaml:11:11: patients[0].escalation.warning[2]: does nothing: its call and sms "
            "lists are empty"});
}

TEST_CASE("an escalation target naming a contact must exist for every patient using it",
          "[adapters][config]") {
  // Given a default chain that calls Carol, and two patients of whom only one has Carol
  const ConfigLoad load = parse(k_providers + R"(defaults:
  escalation:
    urgent:
      - {after: 0s, call: [patient, Carol]}
patients:
  - name: Alice
    phone: "+33612345678"
    nightscout: {url: https://alice.example.org}
    contacts: [{name: Carol, phone: "+33611112222"}]
  - name: Dan
    phone: "+33612345679"
    nightscout: {url: https://dan.example.org}
    contacts: [{name: Eve, phone: "+33611112223"}]
)");
  // Then the target is reported once, for Dan, at the target
  CHECK(messages(load.problems) ==
        std::vector<std::string>{"scout.yaml:6:37: defaults.escalation.urgent[0].call[1]: "
                                 "'Carol' is not a contact of patients[1] (Dan); use patient, "
                                 "contacts or one of: Eve"});
}

TEST_CASE("contact names are unique per patient and may not be a reserved target",
          "[adapters][config]") {
  const ConfigLoad load = parse(k_minimal + R"(    contacts:
      - {name: Bob, phone: "+33687654321"}
      - {name: Bob, phone: "+33687654322"}
      - {name: contacts, phone: "+33687654323"}
      - {name: Eve}
)");
  CHECK(messages(load.problems) ==
        std::vector<std::string>{
            "scout.yaml:9:16: patients[0].contacts[1].name: duplicate contact name 'Bob' (also "
            "patients[0].contacts[0])",
            "scout.yaml:10:16: patients[0].contacts[2].name: 'contacts' is reserved for "
            "escalation targets; pick another name",
            "scout.yaml:11:9: patients[0].contacts[3]: missing required key 'phone'"});
}

TEST_CASE("phone numbers must be E.164 with '+'", "[adapters][config]") {
  const ConfigLoad load = parse(R"(providers:
  - type: twilio
    account_sid: AC0123456789abcdef0123456789abcdef
    auth_token: t
    from: "+1 415 555 0101"
patients:
  - name: Alice
    phone: "+0612345678"
    nightscout: {url: https://alice.example.org}
    contacts: [{name: Bob, phone: "0687654321"}]
)");
  CHECK(messages(load.problems) ==
        std::vector<std::string>{
            "scout.yaml:5:11: providers[0].from: must have only digits after '+' (no spaces, "
            "dashes or parentheses) (E.164, e.g. \"+14155550100\"; quote it in YAML)",
            "scout.yaml:8:12: patients[0].phone: must be '+' followed by 2 to 15 digits, the "
            "first not 0 (E.164, e.g. \"+14155550100\"; quote it in YAML)",
            "scout.yaml:10:35: patients[0].contacts[0].phone: must start with '+' and the "
            "country code (E.164, e.g. \"+14155550100\"; quote it in YAML)"});
}

TEST_CASE("an unquoted E.164 number is read as text", "[adapters][config]") {
  const ConfigLoad load = parse(R"(providers: [{type: console}]
patients:
  - name: Alice
    phone: +33612345678
    nightscout: {url: https://alice.example.org}
)");
  REQUIRE(messages(load.problems) == k_none);
  CHECK(load.config->patients[0].phone == "+33612345678");
}

TEST_CASE("a patient needs a name, a phone and a Nightscout, reported at the patient",
          "[adapters][config]") {
  const ConfigLoad load = parse(k_providers + R"(patients:
  - timezone: UTC
)");
  CHECK(messages(load.problems) ==
        std::vector<std::string>{"scout.yaml:4:5: patients[0]: missing required key 'name'",
                                 "scout.yaml:4:5: patients[0]: missing required key 'phone'",
                                 "scout.yaml:4:5: patients[0]: missing required key 'nightscout'"});
}

TEST_CASE("patients must be a non-empty list with unique names", "[adapters][config]") {
  CHECK(messages(parse(k_providers + "patients: []\n").problems) ==
        std::vector<std::string>{"scout.yaml:3:11: patients: needs at least one patient"});
  const ConfigLoad load = parse(k_minimal + R"(  - name: Alice
    phone: "+33612345679"
    nightscout: {url: https://alice2.example.org}
)");
  CHECK(messages(load.problems) ==
        std::vector<std::string>{"scout.yaml:7:11: patients[1].name: duplicate patient name "
                                 "'Alice' (also patients[0])"});
}

TEST_CASE("an unknown timezone is an error", "[adapters][config]") {
  const ConfigLoad load = parse(k_minimal + "    timezone: Europe/Pariss\n");
  CHECK(messages(load.problems) ==
        std::vector<std::string>{"scout.yaml:7:15: patients[0].timezone: unknown timezone "
                                 "'Europe/Pariss' (an IANA name such as Europe/Paris or "
                                 "America/New_York)"});
}

TEST_CASE("the Nightscout URL must be http(s) without a query string, and is kept without '/'",
          "[adapters][config]") {
  const auto url_problem = [](const std::string& url) {
    return messages(parse(k_providers +
                          "patients:\n  - name: Alice\n    phone: \"+33612345678\"\n"
                          "    nightscout: {url: \"" +
                          url + "\"}\n")
                        .problems);
  };
  CHECK(url_problem("https://alice.example.org?token=abc") ==
        std::vector<std::string>{"scout.yaml:6:23: patients[0].nightscout.url: must not carry a "
                                 "query string (give the token as nightscout.token)"});
  CHECK(url_problem("alice.example.org") ==
        std::vector<std::string>{
            "scout.yaml:6:23: patients[0].nightscout.url: must start with https:// or http://"});
  CHECK(url_problem("https://") ==
        std::vector<std::string>{"scout.yaml:6:23: patients[0].nightscout.url: has no host name"});
  CHECK(url_problem("https://alice.example.org:99999") ==
        std::vector<std::string>{
            "scout.yaml:6:23: patients[0].nightscout.url: has an invalid port (1..65535)"});
  const ConfigLoad load = parse(k_providers + R"(patients:
  - name: Alice
    phone: "+33612345678"
    nightscout: {url: "HTTPS://alice.example.org:8443/ns//"}
)");
  REQUIRE(messages(load.problems) == k_none);
  CHECK(load.config->patients[0].nightscout.url == "HTTPS://alice.example.org:8443/ns");
}

TEST_CASE("a Nightscout site takes a token or an api_secret, not both", "[adapters][config]") {
  const ConfigLoad load = parse(k_providers + R"(patients:
  - name: Alice
    phone: "+33612345678"
    nightscout:
      url: https://alice.example.org
      token: abc
      api_secret: a-long-api-secret
)");
  CHECK(messages(load.problems) ==
        std::vector<std::string>{"scout.yaml:9:19: patients[0].nightscout: give either a token "
                                 "or an api_secret, not both"});
}

TEST_CASE("an api_secret shorter than 12 characters is an error", "[adapters][config]") {
  const ConfigLoad load = parse(k_providers + R"(patients:
  - name: Alice
    phone: "+33612345678"
    nightscout: {url: https://alice.example.org, api_secret: short}
)");
  CHECK(messages(load.problems) ==
        std::vector<std::string>{"scout.yaml:6:62: patients[0].nightscout.api_secret: must be at "
                                 "least 12 characters (Nightscout ignores a shorter API_SECRET)"});
}

TEST_CASE("providers must be a non-empty list of known types", "[adapters][config]") {
  const std::string patients = R"(patients:
  - name: Alice
    phone: "+33612345678"
    nightscout: {url: https://alice.example.org}
)";
  CHECK(messages(parse("providers: []\n" + patients).problems) ==
        std::vector<std::string>{"scout.yaml:1:12: providers: needs at least one provider "
                                 "(vonage, twilio, or console for a dry run)"});
  CHECK(messages(parse("providers:\n  - {answer: ack}\n  - {type: sip}\n" + patients).problems) ==
        std::vector<std::string>{
            "scout.yaml:2:5: providers[0]: missing required key 'type' (vonage, twilio or "
            "console)",
            "scout.yaml:3:12: providers[1].type: must be vonage, twilio or console, got 'sip'"});
  CHECK(messages(
            parse("providers:\n  - {type: console, answer: sometimes, from: \"+14155550100\"}\n" +
                  patients)
                .problems) ==
        std::vector<std::string>{
            "scout.yaml:2:29: providers[0].answer: must be never, ack or noack, got 'sometimes'",
            "scout.yaml:2:40: providers[0].from: unknown key for a console provider (allowed: "
            "type, answer)"});
}

TEST_CASE("a vonage provider needs its application, key, API credentials and number",
          "[adapters][config]") {
  const ConfigLoad load = parse(R"(providers:
  - type: vonage
    application_id: my-app
    account_sid: AC0123456789abcdef0123456789abcdef
patients:
  - name: Alice
    phone: "+33612345678"
    nightscout: {url: https://alice.example.org}
)");
  CHECK(messages(load.problems) ==
        std::vector<std::string>{
            "scout.yaml:2:5: providers[0]: missing required key 'private_key' (or "
            "private_key_file)",
            "scout.yaml:2:5: providers[0]: missing required key 'api_key' (or api_key_file)",
            "scout.yaml:2:5: providers[0]: missing required key 'api_secret' (or "
            "api_secret_file)",
            "scout.yaml:2:5: providers[0]: missing required key 'from'",
            "scout.yaml:3:21: providers[0].application_id: must be the Vonage application's UUID "
            "(8-4-4-4-12 hex digits)",
            "scout.yaml:4:5: providers[0].account_sid: unknown key for a vonage provider "
            "(allowed: type, application_id, private_key, private_key_file, api_key, "
            "api_key_file, api_secret, api_secret_file, signature_secret, "
            "signature_secret_file, from, base_url)"});
}

TEST_CASE("a twilio provider needs an AC account SID, an auth token and a number",
          "[adapters][config]") {
  const ConfigLoad load = parse(R"(providers:
  - type: twilio
    base_url: api.twilio.com
patients:
  - name: Alice
    phone: "+33612345678"
    nightscout: {url: https://alice.example.org}
)");
  CHECK(messages(load.problems) ==
        std::vector<std::string>{
            "scout.yaml:2:5: providers[0]: missing required key 'account_sid'",
            "scout.yaml:2:5: providers[0]: missing required key 'auth_token' (or "
            "auth_token_file)",
            "scout.yaml:2:5: providers[0]: missing required key 'from'",
            "scout.yaml:3:15: providers[0].base_url: must start with https:// or http://"});
}

TEST_CASE("listener bind must be HOST:PORT and TLS needs both readable files",
          "[adapters][config]") {
  FakeEnvironment fake;
  fake.files = {{"/etc/scout/cert.pem", "cert"}};
  const ConfigLoad load = parse(R"(listener:
  bind: 127.0.0.1:0
  public_url: https://scout.example.org?x=1
  tls: {cert_file: /etc/scout/cert.pem}
)" + k_minimal,
                                fake);
  CHECK(messages(load.problems) ==
        std::vector<std::string>{
            "scout.yaml:2:9: listener.bind: must be HOST:PORT with a port in 1..65535 (e.g. "
            "127.0.0.1:8787 or [::1]:8787), got '127.0.0.1:0'",
            "scout.yaml:3:15: listener.public_url: must not carry a query string",
            "scout.yaml:4:8: listener.tls: missing required key 'key_file'"});
  const ConfigLoad unreadable = parse(R"(listener:
  public_url: https://scout.example.org
  tls: {cert_file: /etc/scout/cert.pem, key_file: /etc/scout/key.pem}
)" + k_minimal,
                                      fake);
  CHECK(messages(unreadable.problems) ==
        std::vector<std::string>{
            "scout.yaml:3:51: listener.tls.key_file: cannot read file '/etc/scout/key.pem'"});
  CHECK(messages(parse("listener: {bind: 127.0.0.1:8787}\n" + k_minimal).problems) ==
        std::vector<std::string>{"scout.yaml:1:11: listener: missing required key 'public_url'"});
}

TEST_CASE("heartbeat_url must be an http(s) URL, a query string is allowed", "[adapters][config]") {
  CHECK(messages(parse("heartbeat_url: hc-ping.com/uuid\n" + k_minimal).problems) ==
        std::vector<std::string>{
            "scout.yaml:1:16: heartbeat_url: must start with https:// or http://"});
  const ConfigLoad load =
      parse("heartbeat_url: https://kuma.example.org/api/push/x?status=up\n" + k_minimal);
  REQUIRE(messages(load.problems) == k_none);
  CHECK(load.config->heartbeat_url == "https://kuma.example.org/api/push/x?status=up");
}

TEST_CASE("a problem without a position prints as FILE: message", "[adapters][config]") {
  CHECK(
      ConfigProblem{"/etc/scout/scout.yaml", 0, 0, "cannot read: Permission denied"}.to_string() ==
      "/etc/scout/scout.yaml: cannot read: Permission denied");
  CHECK(ConfigProblem{"scout.yaml", 12, 5, "units: bad"}.to_string() ==
        "scout.yaml:12:5: units: bad");
}

TEST_CASE("load_config reports an unreadable file as one problem without a position",
          "[adapters][config]") {
  const std::string path = data_path("no-such-file.yaml");
  const ConfigLoad load = load_config(path, FakeEnvironment{}.get());
  CHECK_FALSE(load.config.has_value());
  CHECK(messages(load.problems) ==
        std::vector<std::string>{path + ": cannot read: No such file or directory"});
  const ConfigLoad directory =
      load_config(std::string{SCOUT_TEST_DATA_DIR}, FakeEnvironment{}.get());
  CHECK(messages(directory.problems) == std::vector<std::string>{std::string{SCOUT_TEST_DATA_DIR} +
                                                                 ": cannot read: Is a directory"});
}

TEST_CASE("load_config reads and parses a file", "[adapters][config]") {
  const ConfigLoad load = load_config(data_path("mmol.yaml"), FakeEnvironment{}.get());
  CHECK(messages(load.problems) == k_none);
  REQUIRE(load.config.has_value());
  CHECK(load.config->source_path == data_path("mmol.yaml"));
}

TEST_CASE("the config path comes from SCOUT_CONFIG first", "[adapters][config]") {
  FakeEnvironment fake;
  fake.vars = {{"SCOUT_CONFIG", "/srv/my-scout.yaml"}};
  CHECK(default_config_path(fake.get()) == "/srv/my-scout.yaml");
}

TEST_CASE("without SCOUT_CONFIG the config path is ./scout.yaml if it exists, else /etc",
          "[adapters][config]") {
  // Given an empty temporary directory as the working directory
  const auto dir =
      std::filesystem::temp_directory_path() / ("scout-config-path-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  {
    WorkingDirectory cwd(dir);
    // Then /etc/scout/scout.yaml is used
    CHECK(default_config_path(FakeEnvironment{}.get()) == "/etc/scout/scout.yaml");
    // And once ./scout.yaml exists, it is used
    std::ofstream(dir / "scout.yaml") << "units: mg/dL\n";
    CHECK(default_config_path(FakeEnvironment{}.get()) == "scout.yaml");
  }
  std::filesystem::remove_all(dir);
}

// ---- examples -------------------------------------------------------------------------------

TEST_CASE("each example config is valid with no environment at all", "[adapters][config]") {
  const auto name = GENERATE(as<std::string>{}, "one_patient.yaml", "two_patients_mmol.yaml");
  const std::string path = std::string{SCOUT_SOURCE_DIR} + "/examples/configs/" + name;
  // Given the real filesystem and tz database but no variables
  ConfigEnvironment env = system_config_environment();
  env.getenv = [](const std::string&) -> std::optional<std::string> { return std::nullopt; };
  const ConfigLoad load = load_config(path, env);
  INFO(path);
  CHECK(messages(load.problems) == k_none);
  CHECK(messages(load.warnings) == k_none);
  CHECK(load.config.has_value());
}

TEST_CASE("scout.yaml.example is valid when its variables and files exist", "[adapters][config]") {
  // Given the variables and files that scout.yaml.example documents
  FakeEnvironment fake;
  fake.vars = {{"VONAGE_API_KEY", "abcd1234"},
               {"VONAGE_API_SECRET", "vonage-api-secret"},
               {"VONAGE_SIGNATURE_SECRET", "vonage-signature-secret"},
               {"TWILIO_AUTH_TOKEN", "twilio-auth-token"},
               {"ALICE_NS_TOKEN", "scout-0123456789abcdef"},
               {"CREDENTIALS_DIRECTORY", "/run/credentials/scout.service"}};
  fake.files = {{"/etc/scout/vonage.key", k_pem},
                {"/run/credentials/scout.service/bob_ns_secret", "a-long-api-secret\n"}};
  const std::string path = std::string{SCOUT_SOURCE_DIR} + "/scout.yaml.example";
  // When it is loaded
  const ConfigLoad load = load_config(path, fake.get());
  // Then it is valid
  CHECK(messages(load.problems) == k_none);
  REQUIRE(load.config.has_value());
  CHECK(load.config->providers.size() == 3);
  CHECK(load.config->patients.size() == 2);
  // And without its variables every one of them is named
  const ConfigLoad bare = load_config(path, FakeEnvironment{}.get());
  const auto all = messages(bare.problems);
  for (const auto* variable : {"VONAGE_API_KEY", "VONAGE_API_SECRET", "VONAGE_SIGNATURE_SECRET",
                               "TWILIO_AUTH_TOKEN", "ALICE_NS_TOKEN", "CREDENTIALS_DIRECTORY"}) {
    INFO(variable);
    CHECK(std::any_of(all.begin(), all.end(), [&](const std::string& m) {
      return m.find(std::string{"environment variable "} + variable + " is not set") !=
             std::string::npos;
    }));
  }
}

TEST_CASE("an empty secret is an error", "[adapters][config]") {
  FakeEnvironment fake;
  fake.vars = {{"EMPTY", ""}};
  const ConfigLoad load = parse(R"(providers:
  - type: twilio
    account_sid: AC0123456789abcdef0123456789abcdef
    auth_token: ${EMPTY}
    from: "+14155550101"
patients:
  - name: Alice
    phone: "+33612345678"
    nightscout: {url: https://alice.example.org, token: ""}
)",
                                fake);
  CHECK(messages(load.problems) ==
        std::vector<std::string>{
            "scout.yaml:4:17: providers[0].auth_token: must not be empty",
            "scout.yaml:9:57: patients[0].nightscout.token: must not be empty"});
}

TEST_CASE("secret values never appear in problems", "[adapters][config]") {
  // Given secrets that are each wrong in some way, from variables and files
  FakeEnvironment fake;
  fake.vars = {{"SHORT_SECRET", "s3cr3t-A"}, {"AUTH", "s3cr3t-B"}};
  fake.files = {{"/k", "s3cr3t-C"}};
  const ConfigLoad load = parse(R"(providers:
  - type: vonage
    application_id: 0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0
    private_key_file: /k
    api_key: s3cr3t-D
    api_key_file: /k
    api_secret: s3cr3t-E
    from: "+14155550100"
  - type: twilio
    account_sid: AC0123456789abcdef0123456789abcdef
    auth_token: ${AUTH}
    auth_token_file: /k
    from: "+14155550101"
patients:
  - name: Alice
    phone: "+33612345678"
    nightscout: {url: https://alice.example.org, api_secret: "${SHORT_SECRET}"}
)",
                                fake);
  // Then each problem is reported
  CHECK(load.problems.size() == 4);
  // And none of them shows a secret
  for (const auto& m : messages(load.problems)) {
    INFO(m);
    CHECK(m.find("s3cr3t") == std::string::npos);
  }
}

TEST_CASE("an escalation target list may be a single name", "[adapters][config]") {
  const ConfigLoad load = parse(k_minimal + R"(    contacts: [{name: Bob, phone: "+33687654321"}]
    escalation:
      warning:
        - {after: 0s, call: patient, sms: Bob}
)");
  REQUIRE(messages(load.problems) == k_none);
  CHECK(load.config->patients[0].settings.escalation.warning ==
        std::vector<core::EscalationStep>{{0s, {"patient"}, {"Bob"}}});
}

TEST_CASE("broken contacts are reported once, not again through escalation targets",
          "[adapters][config]") {
  const ConfigLoad load = parse(k_minimal + R"(    contacts: [Bob]
    escalation:
      warning:
        - {after: 0s, call: [patient, Bob]}
)");
  CHECK(messages(load.problems) ==
        std::vector<std::string>{"scout.yaml:7:16: patients[0].contacts[0]: must be a map of "
                                 "keys (name, phone), got a single value"});
}

TEST_CASE("vonage without a listener is a warning: voicemail cannot be told from a person",
          "[adapters][config]") {
  FakeEnvironment fake;
  fake.vars = {{"VONAGE_KEY", k_pem}};
  const std::string providers = R"(providers:
  - type: vonage
    application_id: 0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0
    private_key: ${VONAGE_KEY}
    api_key: k
    api_secret: s
    from: "+14155550100"
patients:
  - name: Alice
    phone: "+33612345678"
    nightscout: {url: https://alice.example.org}
)";
  const auto vonage_warnings = [](const ConfigLoad& load) {
    std::vector<std::string> found;
    for (const auto& m : messages(load.warnings)) {
      if (m.find("vonage without a `listener`") != std::string::npos) found.push_back(m);
    }
    return found;
  };
  const ConfigLoad without = parse(providers, fake);
  REQUIRE(messages(without.problems) == k_none);
  const auto warned = vonage_warnings(without);
  REQUIRE(warned.size() == 1);
  CHECK(warned.front().find("scout.yaml:2:3: providers: vonage without a `listener`") == 0);

  const ConfigLoad with =
      parse("listener: {public_url: https://scout.example.org}\n" + providers, fake);
  REQUIRE(messages(with.problems) == k_none);
  CHECK(vonage_warnings(with).empty());
}
