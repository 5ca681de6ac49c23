// `scout validate` end to end (SPEC §1): every problem as FILE:LINE:COL: message, exit 78;
// a good config exits 0.

#include <catch2/catch.hpp>

#include <regex>

#include "integration/support.hpp"

using namespace scout::test;

TEST_CASE("validate accepts a good config and exits 0", "[integration][validate]") {
  TempDir dir;
  const auto config = dir.write("scout.yaml", make_config({{"Alice", "https://alice.example.org"}}));
  const auto run = run_process({k_scout, "validate", "--config", config});
  INFO(run.out << run.err);
  CHECK(run.exit_code == 0);
  CHECK(run.out.find("OK") != std::string::npos);
}

TEST_CASE("validate accepts every example config shipped in examples/configs",
          "[integration][validate]") {
  const auto dir = std::filesystem::path(SCOUT_SOURCE_DIR) / "examples" / "configs";
  int seen = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() != ".yaml") continue;
    ++seen;
    const auto run = run_process({k_scout, "validate", "--config", entry.path().string()});
    INFO(entry.path() << "\n" << run.out << run.err);
    CHECK(run.exit_code == 0);
  }
  CHECK(seen >= 2);
}

TEST_CASE("validate reports every problem with file, line and column and exits 78",
          "[integration][validate]") {
  TempDir dir;
  // Three independent problems: an unknown key (a typo), a bad duration and a bad phone number.
  const auto config = dir.write("bad.yaml",
                                "units: mg/dL\n"
                                "poll: {interval: 60s, timeout: 10s}\n"
                                "providers:\n"
                                "  - type: console\n"
                                "defaults:\n"
                                "  snoze: 30m\n"
                                "  stale: {warn: 15 minutes, urgent: 30m}\n"
                                "patients:\n"
                                "  - name: Alice\n"
                                "    phone: \"0612345678\"\n"
                                "    nightscout: {url: https://alice.example.org}\n");
  const auto run = run_process({k_scout, "validate", "--config", config});
  INFO(run.out << run.err);
  CHECK(run.exit_code == 78);
  const std::regex line_re(R"((^|\n)[^\n]*bad\.yaml:(\d+):(\d+): [^\n]+)");
  std::vector<int> lines;
  for (auto it = std::sregex_iterator(run.err.begin(), run.err.end(), line_re);
       it != std::sregex_iterator(); ++it) {
    lines.push_back(std::stoi((*it)[2]));
  }
  CHECK(std::find(lines.begin(), lines.end(), 6) != lines.end());   // snoze
  CHECK(std::find(lines.begin(), lines.end(), 7) != lines.end());   // 15 minutes
  CHECK(std::find(lines.begin(), lines.end(), 10) != lines.end());  // 0612345678
  CHECK(run.err.find("snoze") != std::string::npos);
}

TEST_CASE("validate names an unset ${VARIABLE} and never starts half-configured",
          "[integration][validate]") {
  TempDir dir;
  auto yaml = make_config({{"Alice", "https://alice.example.org"}});
  yaml.replace(yaml.find("      url: https://alice.example.org"), 36,
               "      url: https://alice.example.org\n      token: ${SCOUT_TEST_UNSET_TOKEN}");
  const auto config = dir.write("scout.yaml", yaml);
  const auto run = run_process({k_scout, "validate", "--config", config});
  INFO(run.out << run.err);
  CHECK(run.exit_code == 78);
  CHECK(run.err.find("SCOUT_TEST_UNSET_TOKEN") != std::string::npos);
}

TEST_CASE("validate of a missing file exits 78 and names the file", "[integration][validate]") {
  TempDir dir;
  const auto run =
      run_process({k_scout, "validate", "--config", (dir.path() / "absent.yaml").string()});
  CHECK(run.exit_code == 78);
  CHECK(run.err.find("absent.yaml") != std::string::npos);
}

TEST_CASE("an unknown subcommand or option is a usage error (64)", "[integration][cli]") {
  CHECK(run_process({k_scout, "frobnicate"}).exit_code == 64);
  CHECK(run_process({k_scout, "validate", "--bogus"}).exit_code == 64);
  const auto version = run_process({k_scout, "--version"});
  CHECK(version.exit_code == 0);
  CHECK(version.out.find("scout ") != std::string::npos);
}

TEST_CASE("validate refuses configs that would notify nobody or wait too long, naming the bound",
          "[integration][validate]") {
  TempDir dir;
  const auto refused = [&](const std::string& name, const std::string& yaml,
                           const std::string& expected) {
    const auto path = dir.write(name, yaml);
    const auto run = run_process({k_scout, "validate", "--config", path});
    INFO(name << ": " << run.out << run.err);
    CHECK(run.exit_code == 78);
    CHECK((run.out + run.err).find(expected) != std::string::npos);
  };
  const std::string head =
      "units: mg/dL\nproviders:\n  - type: console\n";
  const std::string alice =
      "patients:\n  - name: Alice\n    phone: \"+15555550100\"\n"
      "    nightscout: {url: https://alice.example.org}\n";
  refused("nobody.yaml",
          head + "defaults:\n  escalation:\n    urgent:\n      - {after: 0s, call: [contacts]}\n" +
              alice,
          "urgent escalation chain reaches nobody for Alice (who has no contacts)");
  refused("interval.yaml", head + "poll: {interval: 1h}\n" + alice,
          "poll.interval: must be at most 5m");
  refused("stale.yaml", head + "defaults:\n  stale: {warn: 12h}\n" + alice,
          "defaults.stale.warn: must be at most 2h");
  refused("snooze.yaml", head + "defaults:\n  snooze: 24h\n" + alice,
          "defaults.snooze: must be at most 4h");
  refused("snooze_kind.yaml", head + "defaults:\n  snooze: {low: 5h}\n" + alice,
          "defaults.snooze.low: must be at most 4h");
  refused("gap.yaml", head + "defaults:\n  min_call_gap: 6h\n" + alice,
          "defaults.min_call_gap: must be at most 15m");
  refused("api.yaml",
          head + "patients:\n  - name: Alice\n    phone: \"+15555550100\"\n"
                 "    nightscout: {url: https://alice.example.org/api/v1}\n",
          "without /api/v1 (scout adds /api/v1/...): use 'https://alice.example.org'");
  // A snooze map by kind, within bounds, is fine.
  const auto ok = dir.write("ok.yaml", head + "defaults:\n  snooze: {urgent_low: 10m, data: 2h}\n" + alice);
  const auto run = run_process({k_scout, "validate", "--config", ok});
  INFO(run.out << run.err);
  CHECK(run.exit_code == 0);
}

// --- validate --online (SPEC §1): each Nightscout and provider asked once, nothing placed ---

TEST_CASE("validate --online: a wrong token on a public Nightscout is caught by verifyauth, "
          "an unreachable one is named, good credentials pass", "[integration][validate]") {
  // A public site with a token: entries are served to anyone, as Nightscout's default
  // AUTH_DEFAULT_ROLES=readable does; only /api/v1/verifyauth tells a wrong token.
  BackgroundServer replay({k_replay, k_demo_trace, "--port", "0", "--start", "+2h", "--token",
                           "scout-0123456789abcdef", "--public"});
  TempDir dir;
  std::string yaml = make_config({{"Token", replay.url()}, {"Wrong", replay.url()},
                                  {"Open", replay.url()}, {"Down", "http://127.0.0.1:9"}});
  const auto add_after = [&](const std::string& name, const std::string& line) {
    const auto p = yaml.find("name: " + name);
    const auto u = yaml.find("      url: ", p);
    yaml.insert(yaml.find('\n', u) + 1, line);
  };
  add_after("Token", "      token: scout-0123456789abcdef\n");
  add_after("Wrong", "      token: scout-ffffffffffffffff\n");
  const auto config = dir.write("scout.yaml", yaml);

  // Offline the config is valid; online it is not.
  CHECK(run_process({k_scout, "validate", "--config", config}).exit_code == 0);
  const auto run = run_process({k_scout, "validate", "--online", "--config", config});
  INFO(run.out << run.err);
  CHECK(run.exit_code == 78);
  CHECK(run.out.find("Token: Nightscout " + replay.url() + " reachable, credentials accepted, "
                     "newest reading") != std::string::npos);
  CHECK(run.out.find("Open: Nightscout " + replay.url() +
                     " reachable, no credentials configured") != std::string::npos);
  CHECK(run.err.find("patients[1] (Wrong): Nightscout at " + replay.url() +
                     " does not accept the token (verifyauth: UNAUTHORIZED)") != std::string::npos);
  CHECK(run.err.find("patients[3] (Down): ") != std::string::npos);
  CHECK(run.err.find("valid, but 2 problem(s) online") != std::string::npos);
  // The token never appears.
  CHECK((run.out + run.err).find("ffffffffffffffff") == std::string::npos);

  // Only the good ones: exit 0, "checked online".
  TempDir good_dir;
  std::string good = make_config({{"Token", replay.url()}});
  const auto u = good.find("      url: ");
  good.insert(good.find('\n', u) + 1, "      token: scout-0123456789abcdef\n");
  const auto ok = run_process({k_scout, "validate", "--online", "--config",
                               good_dir.write("scout.yaml", good)});
  INFO(ok.out << ok.err);
  CHECK(ok.exit_code == 0);
  CHECK(ok.out.find("checked online") != std::string::npos);
}
