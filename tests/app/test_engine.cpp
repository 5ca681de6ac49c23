// The engine of `scout run` (app/engine): the machine's result is saved before any action is
// handed out, every journal entry reaches the journal file, and an unchanged state is not
// rewritten.

#include <catch2/catch.hpp>

#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "scout/app/engine.hpp"

using namespace scout;

namespace {

class TempDirectory {
 public:
  TempDirectory() {
    std::string pattern = (std::filesystem::temp_directory_path() / "scout-engine-XXXXXX").string();
    REQUIRE(mkdtemp(pattern.data()) != nullptr);
    path_ = pattern;
  }
  ~TempDirectory() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDirectory(const TempDirectory&) = delete;
  TempDirectory& operator=(const TempDirectory&) = delete;
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

core::Config one_patient() {
  core::Config config;
  core::Patient alice;
  alice.name = "Alice";
  alice.phone = "+33612345678";
  alice.contacts = {{"Bob", "+33687654321"}};
  alice.settings.escalation.urgent = {{std::chrono::seconds{0}, {"patient"}, {}},
                                      {std::chrono::minutes{5}, {"contacts"}, {"contacts"}}};
  alice.settings.escalation.warning = alice.settings.escalation.urgent;
  config.patients = {alice};
  return config;
}

const core::TimePoint k_now{std::chrono::milliseconds{1'763'780'000'000}};

core::PatientAssessed urgent_low(int sgv) {
  core::PatientAssessed event;
  event.patient = "Alice";
  auto& a = event.assessment;
  a.latest = core::Entry{k_now - std::chrono::minutes{1}, sgv, "SingleDown"};
  a.age = std::chrono::minutes{1};
  a.glucose = core::Alarm{core::AlarmKind::urgent_low, core::Severity::urgent};
  return event;
}

std::vector<nlohmann::json> journal_lines(const std::string& path) {
  std::vector<nlohmann::json> lines;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) lines.push_back(nlohmann::json::parse(line));
  return lines;
}

}  // namespace

TEST_CASE("engine saves the state before handing out the call, and journals it", "[app][engine]") {
  TempDirectory dir;
  adapters::StateStore store(dir.file("state.json"));
  app::FileStateStorage storage(store);
  app::FileJournal journal(dir.file("journal.jsonl"));
  app::Engine engine(one_patient(), core::State{}, storage, journal);

  const auto applied = engine.apply(urgent_low(48), k_now);

  REQUIRE(applied.outbound.size() == 1);
  const auto* call = std::get_if<core::PlaceCall>(&applied.outbound[0]);
  REQUIRE(call != nullptr);
  CHECK(call->to == "+33612345678");
  // The saved state already knows about the call: a crash right now cannot repeat it.
  const auto loaded = store.load();
  REQUIRE(loaded);
  CHECK_FALSE(loaded->problem);
  CHECK(loaded->state == engine.state());
  const auto& alarm = loaded->state.patients.at("Alice").glucose;
  REQUIRE(alarm);
  REQUIRE(alarm->calls.size() == 1);
  CHECK(alarm->calls[0].key == call->call_key);

  const auto lines = journal_lines(dir.file("journal.jsonl"));
  REQUIRE_FALSE(lines.empty());
  std::vector<std::string> types;
  for (const auto& line : lines) types.push_back(line.at("type"));
  CHECK(std::find(types.begin(), types.end(), "alarm_raised") != types.end());
  CHECK(std::find(types.begin(), types.end(), "call") != types.end());
  for (const auto& line : lines) {
    // Phone numbers never appear unmasked in the journal.
    CHECK(line.dump().find("33612345678") == std::string::npos);
  }
}

TEST_CASE("engine does not rewrite an unchanged state", "[app][engine]") {
  TempDirectory dir;
  adapters::StateStore store(dir.file("state.json"));
  app::FileStateStorage storage(store);
  app::FileJournal journal(dir.file("journal.jsonl"));
  app::Engine engine(one_patient(), core::State{}, storage, journal);
  engine.apply(urgent_low(48), k_now);
  struct stat before {};
  REQUIRE(::stat(dir.file("state.json").c_str(), &before) == 0);
  std::filesystem::remove(dir.file("state.json"));

  // A Tick with nothing due changes nothing, so nothing is written.
  const auto applied = engine.apply(core::Tick{}, k_now + std::chrono::seconds{1});
  CHECK(applied.outbound.empty());
  CHECK_FALSE(std::filesystem::exists(dir.file("state.json")));

  // The next change writes it again.
  engine.apply(core::CallPlaced{engine.state().patients.at("Alice").glucose->calls[0].key,
                                "console", "console-1", ""},
               k_now + std::chrono::seconds{2});
  CHECK(std::filesystem::exists(dir.file("state.json")));
}

TEST_CASE("engine with an unwritable state file keeps running and still hands out actions",
          "[app][engine]") {
  TempDirectory dir;
  // A directory where the file should be: every save fails.
  std::filesystem::create_directories(dir.file("state.json"));
  adapters::StateStore store(dir.file("state.json"));
  app::FileStateStorage storage(store);
  app::FileJournal journal("");
  app::Engine engine(one_patient(), core::State{}, storage, journal);
  const auto applied = engine.apply(urgent_low(48), k_now);
  CHECK(applied.outbound.size() == 1);
  CHECK(engine.state().patients.at("Alice").glucose.has_value());
  CHECK_FALSE(engine.save());
}

TEST_CASE("engine saves again on the next event after a failed save, even with no change",
          "[app][engine]") {
  TempDirectory dir;
  std::filesystem::create_directories(dir.file("state.json"));  // saves fail while this exists
  adapters::StateStore store(dir.file("state.json"));
  app::FileStateStorage storage(store);
  app::FileJournal journal("");
  app::Engine engine(one_patient(), core::State{}, storage, journal);
  engine.apply(urgent_low(48), k_now);  // the call is decided; the save fails
  std::filesystem::remove(dir.file("state.json"));  // the disk is fine again

  // Nothing changes on this Tick, but the unsaved call must reach the disk now.
  engine.apply(core::Tick{}, k_now + std::chrono::seconds{1});
  const auto loaded = store.load();
  REQUIRE(loaded);
  CHECK(loaded->state == engine.state());
  CHECK(loaded->state.patients.at("Alice").glucose.has_value());
}

TEST_CASE("engine keeps the names of the patients with an alarm active through batches, ticks "
          "and calls, and its next_due is the full walk's",
          "[app][engine]") {
  TempDirectory dir;
  adapters::StateStore store(dir.file("state.json"));
  app::FileStateStorage storage(store);
  app::FileJournal journal(dir.file("journal.jsonl"));
  core::Config config = one_patient();
  for (const char* name : {"Bea", "Cy"}) {
    core::Patient other = config.patients[0];
    other.name = name;
    config.patients.push_back(other);
  }
  const auto assessed = [](const std::string& name, int sgv, core::TimePoint at) {
    core::PatientAssessed one;
    one.patient = name;
    one.assessment.latest = core::Entry{at - std::chrono::minutes{1}, sgv, "Flat"};
    one.assessment.age = std::chrono::minutes{1};
    if (sgv < 55) one.assessment.glucose = core::Alarm{core::AlarmKind::urgent_low, core::Severity::urgent};
    return one;
  };
  // The engine's view must be the full walk's after every event.
  const auto agrees = [&config](const app::Engine& engine, core::TimePoint now) {
    const auto state = engine.state();
    std::set<std::string> expected;
    for (const auto& [name, ps] : state.patients) {
      if (core::has_alarm(ps)) expected.insert(name);
    }
    CHECK(engine.read_alarmed([](const core::State&, const std::set<std::string>& alarmed) {
      return alarmed;
    }) == expected);
    CHECK(engine.next_due(now) == core::next_due(config, state, now));
    return expected;
  };

  core::TimePoint now = k_now;
  std::set<std::string> alarmed;
  {
    app::Engine engine(config, core::State{}, storage, journal);
    CHECK(agrees(engine, now).empty());
    // A batch raises Alice and Cy; Bea is fine.
    core::Assessed batch{{assessed("Alice", 48, now), assessed("Bea", 120, now),
                          assessed("Cy", 50, now)}, /*partial=*/true};
    const auto applied = engine.apply(batch, now);
    CHECK(agrees(engine, now) == std::set<std::string>{"Alice", "Cy"});
    REQUIRE_FALSE(applied.outbound.empty());
    CHECK(engine.next_due(now).has_value());
    // Alice's call is placed; the tick's end reaches everyone.
    now += std::chrono::seconds{5};
    engine.apply(core::CallPlaced{engine.state().patients.at("Alice").glucose->calls[0].key,
                                  "console", "console-1", ""},
                 now);
    agrees(engine, now);
    engine.apply(core::Tick{}, now);
    agrees(engine, now);
    // Cy acknowledges from the shell; a later batch with Bea low raises her too.
    engine.apply(core::ShellCommand{core::ShellCommand::Kind::ack, "c1", "Cy", "test", {}, {}}, now);
    agrees(engine, now);
    now += std::chrono::minutes{1};
    engine.apply(core::Assessed{{assessed("Bea", 45, now)}, true}, now);
    alarmed = agrees(engine, now);
    CHECK(alarmed.count("Bea") == 1);
    // Steps fall due as time goes by.
    for (int i = 0; i < 12; ++i) {
      now += std::chrono::minutes{1};
      engine.apply(core::Tick{}, now);
      alarmed = agrees(engine, now);
    }
    CHECK_FALSE(alarmed.empty());
  }
  // A restart in the middle: the engine starts from the saved state with the same names.
  const auto loaded = store.load();
  REQUIRE(loaded);
  app::Engine restarted(config, loaded->state, storage, journal);
  CHECK(agrees(restarted, now) == alarmed);
}
