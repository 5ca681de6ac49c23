// `scout replay` end to end (SPEC §1): the real binary over an exported entries file and over a
// Nightscout (tools/nightscout-replay on loopback) between two dates.

#include <catch2/catch.hpp>

#include <regex>
#include <set>

#include "integration/support.hpp"

using namespace scout::test;

namespace {

const std::string k_listener = "listener: {bind: 127.0.0.1:8787, public_url: https://scout.example.org}\n";

nlohmann::json replay_json(const std::vector<std::string>& args, ProcessResult* out = nullptr) {
  std::vector<std::string> argv = {k_scout, "replay"};
  argv.insert(argv.end(), args.begin(), args.end());
  argv.push_back("--format");
  argv.push_back("json");
  const auto run = run_process(argv, std::chrono::seconds{60});
  if (out != nullptr) *out = run;
  INFO(run.err);
  REQUIRE(run.exit_code == 0);
  return nlohmann::json::parse(run.out);
}

}  // namespace

TEST_CASE("replay of an entries file: every message with its time and words, per day and per "
          "episode",
          "[integration][replay-command]") {
  TempDir dir;
  const auto config =
      dir.write("scout.yaml", make_config({{"Alice", "http://127.0.0.1:1"}}, k_listener));
  const auto doc = replay_json({"--config", config, "--entries", k_demo_trace, "--answer",
                                "patient=never,Bob=ack"});
  CHECK(doc.at("patient") == "Alice");
  REQUIRE(doc.at("messages").size() > 0);
  bool bob_called = false;
  for (const auto& m : doc.at("messages")) {
    INFO(m.dump());
    const std::string text = m.at("text");
    CHECK(text.rfind("Alice: ", 0) == 0);
    CHECK(text.find("http") == std::string::npos);
    CHECK(m.at("number").get<std::string>().find("…") == 0);  // masked
    if (m.at("to") == "Bob" && m.at("channel") == "call") bob_called = true;
  }
  CHECK(bob_called);
  // The demo night has an urgent low: it appears per day, and Bob acknowledged it.
  bool urgent = false;
  for (const auto& day : doc.at("per_day")) {
    if (day.at("alarms").contains("urgent_low")) urgent = true;
  }
  CHECK(urgent);
  int calls = 0;
  for (const auto& day : doc.at("per_day")) {
    for (const auto& [who, n] : day.at("calls").items()) calls += n.get<int>();
  }
  CHECK(calls == doc.at("calls"));
  for (const auto& e : doc.at("episodes")) {
    CHECK(e.at("ack_by") == "Bob");
    CHECK(e.at("ack_after_min").get<double>() <= 10.0);
  }

  // The same run as text: the report sections and the acknowledging contact.
  const auto text = run_process({k_scout, "replay", "--config", config, "--entries", k_demo_trace,
                                 "--answer", "patient=never,Bob=ack"});
  REQUIRE(text.exit_code == 0);
  CHECK(text.out.find("per day:") != std::string::npos);
  CHECK(text.out.find("level-2 low episodes") != std::string::npos);
  CHECK(text.out.find("messages:") != std::string::npos);
  CHECK(std::regex_search(text.out, std::regex(R"(call Bob \(…9999\): Alice: URGENT LOW)")));
}

TEST_CASE("replay between two dates fetches the history from the patient's Nightscout",
          "[integration][replay-command]") {
  // The replay server puts the end of the demo night at "now"; scout replays the last 9 hours.
  BackgroundServer ns({k_replay, k_demo_trace, "--port", "0", "--speed", "0", "--start", "+9h"});
  TempDir dir;
  const auto config = dir.write("scout.yaml", make_config({{"Alice", ns.url()}}, k_listener));
  // (Five minutes after the first reading, so that the first tick already has one.)
  const auto from_ns =
      replay_json({"--config", config, "--from", "-8h55m", "--answer", "*=ack"});
  const auto from_file =
      replay_json({"--config", config, "--entries", k_demo_trace, "--answer", "*=ack"});
  // The same readings, the same night. The replay server dates them from the moment of the
  // request, so the one-minute ticks fall at another phase of the readings than in the file's
  // replay: the same alarms and episodes, the words within a minute of each other.
  REQUIRE(from_ns.at("messages").size() > 0);
  CHECK(from_ns.at("days").get<double>() > 8.8 / 24);
  CHECK(from_ns.at("episodes").size() == from_file.at("episodes").size());
  CHECK(std::abs(from_ns.at("calls").get<int>() - from_file.at("calls").get<int>()) <= 2);
  const auto kinds = [](const nlohmann::json& doc) {
    std::set<std::string> out;
    for (const auto& m : doc.at("messages")) out.insert(m.at("kind").get<std::string>());
    return out;
  };
  CHECK(kinds(from_ns) == kinds(from_file));
  for (const auto& m : from_ns.at("messages")) {
    CHECK(m.at("text").get<std::string>().rfind("Alice: ", 0) == 0);
  }
}

TEST_CASE("replay refuses a bad command line with 64 and says why", "[integration][replay-command]") {
  TempDir dir;
  const auto config =
      dir.write("scout.yaml", make_config({{"Alice", "http://127.0.0.1:1"}}, k_listener));
  const auto both = run_process(
      {k_scout, "replay", "--config", config, "--entries", k_demo_trace, "--from", "-1d"});
  CHECK(both.exit_code == 64);
  CHECK(both.err.find("--entries") != std::string::npos);
  const auto neither = run_process({k_scout, "replay", "--config", config});
  CHECK(neither.exit_code == 64);
  const auto bad_answer = run_process(
      {k_scout, "replay", "--config", config, "--entries", k_demo_trace, "--answer", "Bob=maybe"});
  CHECK(bad_answer.exit_code == 64);
  CHECK(bad_answer.err.find("maybe") != std::string::npos);
  const auto stranger = run_process(
      {k_scout, "replay", "--config", config, "--entries", k_demo_trace, "--answer", "Eve=ack"});
  CHECK(stranger.exit_code == 64);
  CHECK(stranger.err.find("Eve") != std::string::npos);
  const auto missing = run_process(
      {k_scout, "replay", "--config", config, "--entries", (dir.path() / "nope.json").string()});
  CHECK(missing.exit_code == 66);
  const auto bad_date =
      run_process({k_scout, "replay", "--config", config, "--from", "yesterday-ish"});
  CHECK(bad_date.exit_code == 64);
}
