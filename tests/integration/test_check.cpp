// `scout check` end to end: the real binary against tools/nightscout-replay on loopback
// (SPEC §1 check, §3 readings, §4 alarms).

#include <catch2/catch.hpp>

#include "integration/support.hpp"

using namespace scout::test;

namespace {

std::string at(const BackgroundServer& server, std::int64_t moment) {
  return server.url() + "/at/" + std::to_string(moment);
}

// Moments of the demo trace, found by looking at its readings rather than trusting a timeline.
struct DemoMoments {
  std::int64_t in_range = 0;    // a fresh reading 100..180, steady, with 5-minute history
  std::int64_t urgent_low = 0;  // a fresh reading below 55 (and not a LOW code)
  std::int64_t stale = 0;       // 35 minutes into a gap of 40 minutes or more
};

DemoMoments demo_moments(const std::vector<TraceEntry>& t) {
  DemoMoments m;
  m.in_range = find_moment(t, [](const auto& e, std::size_t i) {
                 return e[i].sgv >= 100 && e[i].sgv <= 180 && e[i].direction == "Flat" &&
                        e[i].date - e[i - 1].date == 300'000 &&
                        std::abs(e[i].sgv - e[i - 1].sgv) <= 3 &&
                        std::abs(e[i - 1].sgv - e[i - 2].sgv) <= 3;
               }).value();
  m.urgent_low = find_moment(t, [](const auto& e, std::size_t i) {
                   return e[i].sgv > 39 && e[i].sgv < 55;
                 }).value();
  for (std::size_t i = 1; i < t.size(); ++i) {
    if (t[i].date - t[i - 1].date >= 40 * 60'000) {
      m.stale = t[i - 1].date + 35 * 60'000;
      break;
    }
  }
  REQUIRE(m.stale != 0);
  return m;
}

}  // namespace

TEST_CASE("check reads the replayed demo night and reports in range, urgent low and stale",
          "[integration][check]") {
  // Given the replay server frozen at three moments of the demo trace, one patient each
  const auto trace = read_trace(k_demo_trace);
  const auto moments = demo_moments(trace);
  BackgroundServer replay({k_replay, k_demo_trace, "--port", "0", "--speed", "0"});
  TempDir dir;
  const auto config = dir.write(
      "scout.yaml", make_config({{"InRange", at(replay, moments.in_range)},
                                 {"Low", at(replay, moments.urgent_low)},
                                 {"Stale", at(replay, moments.stale)}}));

  // When scout check runs once over all three
  const auto run = run_check_json(config);

  // Then the overall status is critical (exit 2) and each patient says what holds
  INFO(run.process.out << run.process.err);
  REQUIRE_FALSE(run.doc.is_discarded());
  CHECK(run.process.exit_code == 2);
  CHECK(run.doc.at("status") == "critical");

  const auto& ok = patient_of(run.doc, "InRange");
  CHECK(ok.at("status") == "ok");
  CHECK(ok.at("alarm").is_null());
  CHECK(ok.at("sgv").get<int>() >= 100);
  CHECK(ok.at("direction") == "Flat");
  CHECK(ok.at("age_s").get<int>() >= 55);
  CHECK(ok.at("age_s").get<int>() <= 120);
  CHECK(ok.at("delta").is_number_integer());
  CHECK(ok.at("would") == nlohmann::json::array());
  CHECK(ok.at("error").is_null());

  const auto& low = patient_of(run.doc, "Low");
  CHECK(low.at("status") == "critical");
  CHECK(low.at("alarm") == "urgent_low");
  CHECK(low.at("sgv").get<int>() < 55);
  CHECK(low.at("would") == nlohmann::json::parse(R"([{"channel":"call","to":"patient"}])"));

  const auto& stale = patient_of(run.doc, "Stale");
  CHECK(stale.at("alarm") == "stale");
  CHECK(stale.at("status") == "critical");  // 35 minutes > stale.urgent (30m)
  CHECK(stale.at("age_s").get<int>() >= 35 * 60);
  CHECK(stale.at("message").get<std::string>().find("no new glucose data for 35 min") !=
        std::string::npos);
}

TEST_CASE("check prints a human table with the glucose, arrow, alarm and who it would call",
          "[integration][check]") {
  const auto moments = demo_moments(read_trace(k_demo_trace));
  BackgroundServer replay({k_replay, k_demo_trace, "--port", "0", "--speed", "0"});
  TempDir dir;
  const auto config =
      dir.write("scout.yaml", make_config({{"Alice", at(replay, moments.urgent_low)}}));

  const auto run = run_process({k_scout, "check", "--config", config});

  INFO(run.out << run.err);
  CHECK(run.exit_code == 2);
  CHECK(run.out.find("PATIENT") != std::string::npos);
  CHECK(run.out.find("mg/dL") != std::string::npos);
  CHECK(run.out.find("urgent_low") != std::string::npos);
  CHECK(run.out.find("call Alice (\u20261000)") != std::string::npos);  // masked phone
  CHECK(run.out.find("Alice: URGENT LOW") != std::string::npos);
  CHECK(run.out.find("status: CRITICAL") != std::string::npos);
}

TEST_CASE("check shows glucose in mmol/L when the config uses mmol/L", "[integration][check]") {
  const auto trace = read_trace(k_demo_trace);
  const auto moments = demo_moments(trace);
  BackgroundServer replay({k_replay, k_demo_trace, "--port", "0", "--speed", "0"});
  TempDir dir;
  auto yaml = make_config({{"Alice", at(replay, moments.urgent_low)}});
  yaml.replace(yaml.find("units: mg/dL"), 12, "units: mmol/L");
  const auto config = dir.write("scout.yaml", yaml);

  const auto run = run_check_json(config);

  INFO(run.process.out << run.process.err);
  const auto& alice = patient_of(run.doc, "Alice");
  // sgv stays mg/dL in JSON (SPEC §1); the display string is mmol/L with one decimal.
  const int sgv = alice.at("sgv").get<int>();
  char expected[16];
  std::snprintf(expected, sizeof expected, "%.1f", std::round(sgv / 18.01559 * 10) / 10);
  CHECK(alice.at("glucose") == expected);
  CHECK(alice.at("unit") == "mmol/L");
  CHECK(alice.at("message").get<std::string>().find(std::string(expected) + " mmol/L") !=
        std::string::npos);
}

TEST_CASE("check authenticates with a token or an api-secret and reports refused credentials",
          "[integration][check]") {
  const auto moments = demo_moments(read_trace(k_demo_trace));
  BackgroundServer replay({k_replay, k_demo_trace, "--port", "0", "--speed", "0",
                           "--token", "scout-0123456789abcdef", "--api-secret",
                           "scout-test-secret"});
  TempDir dir;
  const auto url = at(replay, moments.in_range);
  // Four patients on the same locked site: right token, right secret, wrong token, nothing.
  std::string yaml = make_config({{"Token", url}, {"Secret", url}, {"Wrong", url}, {"None", url}});
  const auto add_after = [&](const std::string& name, const std::string& line) {
    const auto p = yaml.find("name: " + name);
    const auto u = yaml.find("      url: ", p);
    const auto eol = yaml.find('\n', u);
    yaml.insert(eol + 1, line);
  };
  add_after("Token", "      token: scout-0123456789abcdef\n");
  add_after("Secret", "      api_secret: scout-test-secret\n");
  add_after("Wrong", "      token: scout-ffffffffffffffff\n");
  const auto config = dir.write("scout.yaml", yaml);

  const auto run = run_check_json(config);

  INFO(run.process.out << run.process.err);
  CHECK(patient_of(run.doc, "Token").at("status") == "ok");
  CHECK(patient_of(run.doc, "Secret").at("status") == "ok");
  const auto& wrong = patient_of(run.doc, "Wrong");
  CHECK(wrong.at("status") == "unknown");
  CHECK(wrong.at("sgv").is_null());
  CHECK(wrong.at("error").get<std::string>().find("401") != std::string::npos);
  CHECK(patient_of(run.doc, "None").at("status") == "unknown");
  // The token never appears in what check prints.
  CHECK(run.process.out.find("ffffffffffffffff") == std::string::npos);
  CHECK(run.process.err.find("ffffffffffffffff") == std::string::npos);
  CHECK(run.process.exit_code == 3);
}

TEST_CASE("check reports an unreachable Nightscout as unknown, and critical wins over unknown",
          "[integration][check]") {
  const auto moments = demo_moments(read_trace(k_demo_trace));
  BackgroundServer replay({k_replay, k_demo_trace, "--port", "0", "--speed", "0"});
  TempDir dir;
  // Port 1 on loopback: nothing listens there, the connection is refused at once.
  const auto config = dir.write(
      "scout.yaml", make_config({{"Dead", "http://127.0.0.1:1"},
                                 {"Low", at(replay, moments.urgent_low)}}));

  const auto run = run_check_json(config);
  INFO(run.process.out << run.process.err);
  CHECK(run.process.exit_code == 2);
  CHECK(run.doc.at("status") == "critical");
  const auto& dead = patient_of(run.doc, "Dead");
  CHECK(dead.at("status") == "unknown");
  CHECK(dead.at("error").is_string());

  // And alone, the unreachable patient makes the whole check unknown (exit 3).
  const auto alone = run_check_json(config, {"--patient", "Dead"});
  CHECK(alone.process.exit_code == 3);
  CHECK(alone.doc.at("status") == "unknown");
  CHECK(alone.doc.at("patients").size() == 1);
}

TEST_CASE("check polls patients concurrently: a hung Nightscout costs only its own timeout",
          "[integration][check]") {
  const auto moments = demo_moments(read_trace(k_demo_trace));
  BackgroundServer replay({k_replay, k_demo_trace, "--port", "0", "--speed", "0"});
  BackgroundServer hung({k_replay, k_demo_trace, "--port", "0", "--speed", "0",
                         "--fault", "hang"});
  TempDir dir;
  std::vector<PatientSpec> patients;
  for (int i = 0; i < 3; ++i) {
    patients.push_back({"Hung" + std::to_string(i), at(hung, moments.in_range)});
    patients.push_back({"Fine" + std::to_string(i), at(replay, moments.in_range)});
  }
  auto yaml = make_config(patients);
  yaml.replace(yaml.find("timeout: 5s"), 11, "timeout: 2s");
  const auto config = dir.write("scout.yaml", yaml);

  const auto started = std::chrono::steady_clock::now();
  const auto run = run_check_json(config);
  const auto took = std::chrono::steady_clock::now() - started;

  INFO(run.process.out << run.process.err);
  for (int i = 0; i < 3; ++i) {
    CHECK(patient_of(run.doc, "Fine" + std::to_string(i)).at("status") == "ok");
    const auto& h = patient_of(run.doc, "Hung" + std::to_string(i));
    CHECK(h.at("status") == "unknown");
    CHECK(h.at("error").get<std::string>().find("timed out") != std::string::npos);
  }
  // Three hung sites polled one after another would take at least 6 s.
  CHECK(took < std::chrono::milliseconds{5500});
}

TEST_CASE("check --sgv simulates a reading in the config's units without polling",
          "[integration][check]") {
  TempDir dir;
  // The Nightscout URL is unreachable: a simulation must not need it.
  const auto config = dir.write("scout.yaml", make_config({{"Alice", "http://127.0.0.1:1"}}));

  SECTION("52 falling is an urgent low that calls the patient") {
    const auto run = run_check_json(config, {"--sgv", "52", "--direction", "SingleDown"});
    INFO(run.process.out << run.process.err);
    CHECK(run.process.exit_code == 2);
    const auto& alice = patient_of(run.doc, "Alice");
    CHECK(alice.at("alarm") == "urgent_low");
    CHECK(alice.at("sgv") == 52);
    CHECK(alice.at("direction") == "SingleDown");
    CHECK(alice.at("age_s") == 0);
    CHECK(alice.at("would") == nlohmann::json::parse(R"([{"channel":"call","to":"patient"}])"));
  }
  SECTION("65 is a low: warning, exit 1") {
    const auto run = run_check_json(config, {"--sgv", "65"});
    CHECK(run.process.exit_code == 1);
    CHECK(patient_of(run.doc, "Alice").at("alarm") == "low");
  }
  SECTION("120 is ok, exit 0") {
    const auto run = run_check_json(config, {"--sgv", "120"});
    CHECK(run.process.exit_code == 0);
    CHECK(run.doc.at("status") == "ok");
  }
  SECTION("260 is high; 320 is urgent high") {
    CHECK(patient_of(run_check_json(config, {"--sgv", "260"}).doc, "Alice").at("alarm") == "high");
    CHECK(patient_of(run_check_json(config, {"--sgv", "320"}).doc, "Alice").at("alarm") ==
          "urgent_high");
  }
  SECTION("an unknown direction is refused as UNKNOWN (exit 3)") {
    const auto run = run_process({k_scout, "check", "--config", config, "--sgv", "52",
                                  "--direction", "Sideways"});
    CHECK(run.exit_code == 3);
    CHECK(run.err.find("Sideways") != std::string::npos);
  }
}

TEST_CASE("check --sgv reads VALUE in mmol/L when the config is in mmol/L", "[integration][check]") {
  TempDir dir;
  auto yaml = make_config({{"Alice", "http://127.0.0.1:1"}});
  yaml.replace(yaml.find("units: mg/dL"), 12, "units: mmol/L");
  const auto config = dir.write("scout.yaml", yaml);

  // 2.9 mmol/L = round(2.9 * 18.01559) = 52 mg/dL: below the built-in urgent_low of 55 mg/dL
  // (the config sets no thresholds of its own).
  const auto run = run_check_json(config, {"--sgv", "2.9"});
  INFO(run.process.out << run.process.err);
  const auto& alice = patient_of(run.doc, "Alice");
  CHECK(alice.at("sgv") == 52);
  CHECK(alice.at("glucose") == "2.9");
  CHECK(alice.at("alarm") == "urgent_low");
}

TEST_CASE("check with an unreadable or invalid config exits UNKNOWN (3)", "[integration][check]") {
  TempDir dir;
  const auto missing = run_process({k_scout, "check", "--config", (dir.path() / "nope.yaml").string()});
  CHECK(missing.exit_code == 3);
  CHECK(missing.err.find("nope.yaml") != std::string::npos);

  const auto bad = dir.write("bad.yaml", "units: furlongs\npatients: []\n");
  const auto run = run_check_json(bad);
  CHECK(run.process.exit_code == 3);
  CHECK(run.doc.at("status") == "unknown");
  CHECK(run.process.err.find("bad.yaml:1:") != std::string::npos);
}

TEST_CASE("check --patient with a name not in the config exits UNKNOWN (3)",
          "[integration][check]") {
  TempDir dir;
  const auto config = dir.write("scout.yaml", make_config({{"Alice", "http://127.0.0.1:1"}}));
  const auto run = run_process({k_scout, "check", "--config", config, "--patient", "Zed"});
  CHECK(run.exit_code == 3);
  CHECK(run.err.find("Zed") != std::string::npos);
}

TEST_CASE("check finds its config through $SCOUT_CONFIG when --config is absent",
          "[integration][check]") {
  TempDir dir;
  const auto config = dir.write("elsewhere.yaml", make_config({{"Alice", "http://127.0.0.1:1"}}));
  const auto run = run_process({k_scout, "check", "--format", "json", "--sgv", "120"},
                               std::chrono::seconds{30}, {{"SCOUT_CONFIG", config}});
  INFO(run.out << run.err);
  CHECK(run.exit_code == 0);
  CHECK(run.out.find("\"Alice\"") != std::string::npos);
}

TEST_CASE("check --sgv refuses a value that cannot be glucose in the config's unit, naming it",
          "[integration][check]") {
  TempDir dir;
  const auto mgdl = dir.write("scout.yaml", make_config({{"Alice", "http://127.0.0.1:1"}}));
  // 2.9 given to a mg/dL config is a mix-up of units, not a reading of 3 mg/dL.
  const auto small = run_process({k_scout, "check", "--config", mgdl, "--sgv", "2.9"});
  CHECK(small.exit_code == 3);
  CHECK(small.err.find("mg/dL") != std::string::npos);
  CHECK(small.err.find("mmol/L") != std::string::npos);
  CHECK(small.out.find("status: UNKNOWN") != std::string::npos);
  auto yaml = make_config({{"Alice", "http://127.0.0.1:1"}});
  yaml.replace(yaml.find("units: mg/dL"), 12, "units: mmol/L");
  const auto mmol = dir.write("mmol.yaml", yaml);
  const auto large = run_process({k_scout, "check", "--config", mmol, "--sgv", "52"});
  CHECK(large.exit_code == 3);
  CHECK(large.err.find("is not a glucose value in mmol/L") != std::string::npos);
  // The sensor's own LOW (39 mg/dL) is still a value one can try.
  CHECK(patient_of(run_check_json(mgdl, {"--sgv", "39"}).doc, "Alice").at("alarm") ==
        "urgent_low");
}
