// Specification of scout/adapters/state_store.hpp: the state file and the journal (SPEC §6).

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <catch2/catch.hpp>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "scout/adapters/state_store.hpp"

using namespace std::chrono_literals;
using nlohmann::json;
using scout::adapters::Journal;
using scout::adapters::journal_line;
using scout::adapters::state_from_json;
using scout::adapters::state_to_json;
using scout::adapters::StateStore;
using scout::core::ActiveAlarm;
using scout::core::Alarm;
using scout::core::AlarmKind;
using scout::core::CallProgress;
using scout::core::CallRecord;
using scout::core::ErrorKind;
using scout::core::JournalEntry;
using scout::core::NumberUsage;
using scout::core::PatientState;
using scout::core::Severity;
using scout::core::State;
using scout::core::TimePoint;

namespace {

// 2026-11-22T03:14:07.123Z
const TimePoint k_t0{std::chrono::milliseconds{1795317247123}};

// A directory under $TMPDIR removed (with its contents) at destruction.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "scout-state-XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) {
      throw std::runtime_error("mkdtemp failed");
    }
    m_path = pattern;
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
    std::error_code ec;
    std::filesystem::permissions(m_path, std::filesystem::perms::owner_all,
                                 std::filesystem::perm_options::add, ec);
    std::filesystem::remove_all(m_path, ec);
  }
  std::string file(const std::string& name) const { return (m_path / name).string(); }
  std::string write(const std::string& name, const std::string& text) const {
    std::ofstream(m_path / name, std::ios::binary) << text;
    return file(name);
  }
  std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (const auto& e : std::filesystem::directory_iterator(m_path)) {
      out.push_back(e.path().filename().string());
    }
    std::sort(out.begin(), out.end());
    return out;
  }

 private:
  std::filesystem::path m_path;
};

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

CallRecord call(const std::string& key, CallProgress progress, int n) {
  CallRecord c;
  c.key = key;
  c.call_id = "uuid-" + key;
  c.provider = n % 2 == 0 ? "vonage" : "twilio";
  c.to = "+4915112345" + std::to_string(100 + n);
  c.to_label = n == 0 ? "patient" : "Bob";
  c.run = n % 3;
  c.step = n % 4;
  c.placed_at = k_t0 + std::chrono::minutes{n};
  c.progress = progress;
  c.answered = n % 2 == 1;
  c.acknowledged = n % 3 == 1;
  c.escalated = n % 4 == 2;
  if (n % 2 == 0) {
    c.ended_at = k_t0 + std::chrono::minutes{n} + 37s;
  }
  return c;
}

// A state with every field set to something other than its default, optional fields both set
// and unset, several patients, and calls in every progress.
State full_state() {
  const std::vector<CallProgress> every_progress{
      CallProgress::placing,    CallProgress::ringing, CallProgress::answered,
      CallProgress::human,      CallProgress::machine, CallProgress::completed,
      CallProgress::unanswered, CallProgress::busy,    CallProgress::timeout,
      CallProgress::rejected,   CallProgress::failed,  CallProgress::cancelled};

  ActiveAlarm glucose;
  glucose.id = "a12";
  glucose.alarm = Alarm{AlarmKind::low, Severity::warning};
  glucose.peak = Alarm{AlarmKind::urgent_low, Severity::urgent};
  glucose.raised_at = k_t0;
  glucose.run = 2;
  glucose.chain_start = k_t0 + 30min;
  glucose.next_step = 1;
  glucose.last_step_at = k_t0 + 31min;
  glucose.snoozed_until = k_t0 + 60min;
  glucose.acknowledged_at = k_t0 + 45min;
  glucose.acknowledged_by = "patient";
  glucose.in_band = true;
  glucose.notified = {"+491511234567", "+15551234567"};
  int n = 0;
  for (const CallProgress p : every_progress) {
    glucose.calls.push_back(call("c" + std::to_string(n + 1), p, n));
    ++n;
  }

  ActiveAlarm data;  // optionals unset, no calls
  data.id = "a13";
  data.alarm = Alarm{AlarmKind::stale, Severity::urgent};
  data.peak = Alarm{AlarmKind::sensor_error, Severity::warning};
  data.raised_at = k_t0 - 5min;
  data.chain_start = k_t0 - 5min;

  ActiveAlarm unreachable = data;
  unreachable.id = "a14";
  unreachable.alarm = Alarm{AlarmKind::unreachable, Severity::warning};
  unreachable.peak = Alarm{AlarmKind::unreachable, Severity::warning};
  ActiveAlarm high = data;
  high.id = "a15";
  high.alarm = Alarm{AlarmKind::high, Severity::warning};
  high.peak = Alarm{AlarmKind::urgent_high, Severity::urgent};
  high.notified = {"+15550000000"};
  ActiveAlarm soon = data;
  soon.id = "a16";
  soon.alarm = Alarm{AlarmKind::urgent_low_soon, Severity::urgent};
  soon.peak = soon.alarm;

  State state;
  scout::core::ReadingFacts facts;
  facts.latest = scout::core::Entry{k_t0 - 3min, 52, "SingleDown"};
  facts.forecast_low = 47;
  facts.status_code = 5;
  facts.status_code_since = k_t0 - 1min;
  facts.cadence = 15min;
  state.patients["Alice"] = PatientState{glucose, data, k_t0 - 10min, facts};
  state.patients["Bob"] = PatientState{high, unreachable, std::nullopt, {}};
  state.patients["Carol Ann"] = PatientState{soon, std::nullopt, std::nullopt, {}};
  state.patients["Dave"] = PatientState{};
  state.numbers["+491511234567"] = NumberUsage{{k_t0, k_t0 + 2min}, {k_t0 + 3min}};
  state.numbers["+15551234567"] = NumberUsage{{}, {}};
  state.next_id = 9'000'000'000ULL;
  state.webhook_token = "tok-0123456789abcdef";
  scout::core::Message held;
  held.purpose = scout::core::MessagePurpose::held_back;
  held.alarm = Alarm{AlarmKind::stale, Severity::urgent};
  held.paused = Alarm{AlarmKind::urgent_low, Severity::urgent};
  held.held_detail = "called 1m ago";
  state.sms_in_flight["s41"] = scout::core::PendingSms{"Alice", "a13", "+491511234567", "patient",
                                                       held, k_t0 + 4min};
  scout::core::Message resolved;
  resolved.purpose = scout::core::MessagePurpose::resolved;
  resolved.alarm = Alarm{AlarmKind::urgent_high, Severity::urgent};
  state.sms_in_flight["s42"] = scout::core::PendingSms{"Bob", "a9", "+15551234567", "Dana",
                                                       resolved, k_t0 + 5min};
  return state;
}

// Applies `edit` to the JSON of full_state() and returns state_from_json's error message.
std::string rejection(const std::function<void(json&)>& edit) {
  json doc = state_to_json(full_state());
  edit(doc);
  const auto result = state_from_json(doc);
  REQUIRE_FALSE(result.has_value());
  CHECK(result.error().kind == ErrorKind::malformed_json);
  return result.error().message;
}

JournalEntry entry(const std::string& type) {
  JournalEntry e;
  e.at = k_t0;
  e.type = type;
  e.patient = "Alice";
  e.alarm_id = "a12";
  return e;
}

std::string utc_stamp(std::time_t t) {
  std::tm parts{};
  gmtime_r(&t, &parts);
  std::array<char, 32> buffer{};
  const std::size_t n = std::strftime(buffer.data(), buffer.size(), "%Y%m%dT%H%M%SZ", &parts);
  return std::string(buffer.data(), n);
}

mode_t file_mode(const std::string& path) {
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  return st.st_mode & 0777;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// state_to_json / state_from_json

TEST_CASE("state JSON: every field round-trips, also through text", "[state]") {
  const State state = full_state();
  const json doc = state_to_json(state);

  const auto back = state_from_json(doc);
  REQUIRE(back.has_value());
  CHECK(*back == state);

  const auto reparsed = state_from_json(json::parse(doc.dump()));
  REQUIRE(reparsed.has_value());
  CHECK(*reparsed == state);

  const auto empty = state_from_json(state_to_json(State{}));
  REQUIRE(empty.has_value());
  CHECK(*empty == State{});
}

TEST_CASE("state JSON: versioned document, times as integer ms, enums by name", "[state]") {
  const json doc = state_to_json(full_state());
  CHECK(doc.at("version") == 1);
  CHECK(doc.at("next_id") == 9'000'000'000ULL);
  const json& alice = doc.at("patients").at("Alice");
  CHECK(alice.at("failing_since") == 1795317247123 - 600'000);
  const json& glucose = alice.at("glucose");
  CHECK(glucose.at("raised_at").is_number_integer());
  CHECK(glucose.at("raised_at") == 1795317247123);
  CHECK(glucose.at("alarm") == json{{"kind", "low"}, {"severity", "warning"}});
  CHECK(glucose.at("peak") == json{{"kind", "urgent_low"}, {"severity", "urgent"}});
  CHECK(glucose.at("calls").at(4).at("progress") == "machine");
  CHECK(alice.at("data").at("snoozed_until").is_null());
  CHECK(doc.at("patients").at("Carol Ann").at("data").is_null());
  CHECK(doc.at("numbers").at("+491511234567").at("calls") ==
        json::array({1795317247123, 1795317247123 + 120'000}));
}

TEST_CASE("state JSON: unknown keys are ignored, absent optional fields are unset", "[state]") {
  json doc = state_to_json(full_state());
  doc["written_by"] = "scout 9.9";
  doc["patients"]["Alice"]["glucose"]["calls"][0]["sip_code"] = 486;
  doc["patients"]["Bob"]["mood"] = json::object();
  doc["patients"]["Alice"]["glucose"].erase("snoozed_until");
  doc["patients"]["Alice"].erase("failing_since");

  State expected = full_state();
  expected.patients["Alice"].glucose->snoozed_until.reset();
  expected.patients["Alice"].failing_since.reset();
  const auto back = state_from_json(doc);
  REQUIRE(back.has_value());
  CHECK(*back == expected);
}

TEST_CASE("state JSON: a missing or mistyped field is malformed_json naming its path", "[state]") {
  using Catch::Matchers::Contains;
  CHECK_THAT(rejection([](json& d) { d.erase("version"); }), Contains("version: missing"));
  CHECK_THAT(rejection([](json& d) { d["version"] = 2; }),
             Contains("version: unsupported version 2"));
  CHECK_THAT(rejection([](json& d) { d["version"] = "1"; }), Contains("version"));
  CHECK_THAT(rejection([](json& d) {
               d["patients"]["Alice"]["glucose"]["calls"][0]["progress"] = "exploded";
             }),
             Contains("patients.Alice.glucose.calls[0].progress: unknown call progress "
                      "\"exploded\""));
  CHECK_THAT(rejection([](json& d) {
               d["patients"]["Alice"]["glucose"]["calls"][3]["placed_at"] = "yesterday";
             }),
             Contains("patients.Alice.glucose.calls[3].placed_at: expected an integer"));
  CHECK_THAT(
      rejection([](json& d) { d["patients"]["Alice"]["glucose"]["calls"][2]["ended_at"] = 1.5; }),
      Contains("patients.Alice.glucose.calls[2].ended_at: expected an integer"));
  CHECK_THAT(rejection([](json& d) { d["patients"]["Alice"]["glucose"].erase("run"); }),
             Contains("patients.Alice.glucose.run: missing"));
  CHECK_THAT(rejection([](json& d) { d["patients"]["Bob"]["glucose"]["run"] = -1; }),
             Contains("patients.Bob.glucose.run: integer out of range"));
  CHECK_THAT(rejection([](json& d) { d["patients"]["Bob"]["data"]["alarm"]["kind"] = "meh"; }),
             Contains("patients.Bob.data.alarm.kind: unknown alarm kind \"meh\""));
  CHECK_THAT(rejection([](json& d) { d["patients"]["Bob"]["data"]["peak"]["severity"] = 1; }),
             Contains("patients.Bob.data.peak.severity: expected a string"));
  CHECK_THAT(rejection([](json& d) { d["patients"]["Alice"]["glucose"]["notified"][1] = 5; }),
             Contains("patients.Alice.glucose.notified[1]: expected a string"));
  CHECK_THAT(
      rejection([](json& d) { d["patients"]["Alice"]["glucose"]["calls"][1]["answered"] = "yes"; }),
      Contains("patients.Alice.glucose.calls[1].answered: expected true or false"));
  CHECK_THAT(rejection([](json& d) { d["patients"]["Alice"]["glucose"]["calls"][1] = 7; }),
             Contains("patients.Alice.glucose.calls[1]: expected an object"));
  CHECK_THAT(rejection([](json& d) { d["patients"]["Carol Ann"]["data"] = "none"; }),
             Contains("patients.Carol Ann.data: expected an object or null"));
  CHECK_THAT(rejection([](json& d) { d["patients"]["Dave"] = json::array(); }),
             Contains("patients.Dave: expected an object"));
  CHECK_THAT(rejection([](json& d) { d["numbers"]["+491511234567"]["sms"][0] = "now"; }),
             Contains("numbers.+491511234567.sms[0]: expected an integer"));
  CHECK_THAT(rejection([](json& d) { d["next_id"] = -3; }),
             Contains("next_id: integer out of range"));
  CHECK_THAT(rejection([](json& d) { d.erase("patients"); }), Contains("patients: missing"));
  CHECK_THAT(rejection([](json& d) { d["numbers"] = json::array(); }),
             Contains("numbers: expected an object"));
  CHECK_THAT(rejection([](json& d) { d = json::array(); }), Contains("expected a JSON object"));
}

// ---------------------------------------------------------------------------------------------
// StateStore

TEST_CASE("StateStore: a missing file loads as an empty state without a problem", "[state]") {
  TempDir dir;
  const auto loaded = StateStore(dir.file("state.json")).load();
  REQUIRE(loaded.has_value());
  CHECK(loaded->state == State{});
  CHECK_FALSE(loaded->problem.has_value());
  CHECK(loaded->moved_to.empty());
  CHECK(dir.names().empty());
}

TEST_CASE("StateStore: save then load round-trips, atomically and privately", "[state]") {
  TempDir dir;
  const std::string path = dir.file("var/lib/scout/state.json");  // parents created by save
  const StateStore store(path);
  CHECK(store.path() == path);

  const State state = full_state();
  REQUIRE(store.save(state).has_value());
  CHECK_FALSE(std::filesystem::exists(path + ".tmp"));
  CHECK(file_mode(path) == 0640);
  CHECK(json::parse(read_text(path)).at("version") == 1);

  auto loaded = store.load();
  REQUIRE(loaded.has_value());
  CHECK(loaded->state == state);
  CHECK_FALSE(loaded->problem.has_value());

  SECTION("a save over an existing file replaces it") {
    State smaller;
    smaller.next_id = 42;
    smaller.patients["Zoe"] = PatientState{};
    REQUIRE(store.save(smaller).has_value());
    loaded = store.load();
    REQUIRE(loaded.has_value());
    CHECK(loaded->state == smaller);
    CHECK_FALSE(std::filesystem::exists(path + ".tmp"));
  }

  SECTION("a .tmp left by a crash is ignored by load and replaced by the next save") {
    std::ofstream(path + ".tmp") << "{\"version\":1,\"half";
    std::filesystem::permissions(path + ".tmp", std::filesystem::perms(0644));
    loaded = store.load();
    REQUIRE(loaded.has_value());
    CHECK(loaded->state == state);
    CHECK_FALSE(loaded->problem.has_value());

    REQUIRE(store.save(State{}).has_value());
    CHECK_FALSE(std::filesystem::exists(path + ".tmp"));
    CHECK(file_mode(path) == 0640);
  }
}

TEST_CASE("StateStore: an unusable file is moved aside and scout starts clean", "[state]") {
  TempDir dir;
  const std::string path = dir.file("state.json");
  std::string text;
  std::string reason;
  SECTION("empty file") {
    text = "";
    reason = "empty";
  }
  SECTION("invalid JSON") {
    text = "{\"version\":1,\"patients\":{";
    reason = "parse error";
  }
  SECTION("a document state_from_json refuses") {
    json doc = state_to_json(full_state());
    doc["version"] = 7;
    text = doc.dump();
    reason = "version: unsupported version 7";
  }
  SECTION("a time beyond any that scout writes (it would overflow when durations are added)") {
    json doc = state_to_json(full_state());
    doc["patients"]["Alice"]["glucose"]["calls"][0]["placed_at"] = 9223372036854775807LL;
    text = doc.dump();
    reason = "patients.Alice.glucose.calls[0].placed_at: time out of range";
  }
  SECTION("a file larger than any state scout writes") {
    text = "{\"version\":1,\"pad\":\"" + std::string(scout::adapters::k_max_state_bytes, 'x') + "\"}";
    reason = "larger than 64 MiB";
  }
  dir.write("state.json", text);

  const auto loaded = StateStore(path).load();
  REQUIRE(loaded.has_value());
  CHECK(loaded->state == State{});
  REQUIRE(loaded->problem.has_value());
  CHECK_THAT(*loaded->problem, Catch::Matchers::Contains(path));
  CHECK_THAT(*loaded->problem, Catch::Matchers::Contains(reason));
  CHECK_THAT(*loaded->problem, Catch::Matchers::Contains(loaded->moved_to));
  CHECK(std::regex_match(
      loaded->moved_to,
      std::regex(std::regex_replace(path, std::regex(R"([.^$|()\[\]{}*+?\\])"), R"(\$&)") +
                 R"(\.corrupt-\d{8}T\d{6}Z)")));
  CHECK_FALSE(std::filesystem::exists(path));
  CHECK(read_text(loaded->moved_to) == text);
}

TEST_CASE("StateStore: a taken corrupt name gets a -1 suffix", "[state]") {
  TempDir dir;
  const std::string path = dir.write("state.json", "not json");
  // The name load() picks is for the second it runs in: this one or (rarely) the next.
  const std::time_t now = std::time(nullptr);
  for (const std::time_t t : {now, now + 1}) {
    dir.write("state.json.corrupt-" + utc_stamp(t), "older");
  }
  const auto loaded = StateStore(path).load();
  REQUIRE(loaded.has_value());
  REQUIRE(loaded->problem.has_value());
  CHECK(
      std::regex_match(loaded->moved_to, std::regex(R"(.*/state\.json\.corrupt-\d{8}T\d{6}Z-1)")));
  CHECK(read_text(loaded->moved_to) == "not json");
  CHECK(read_text(path + ".corrupt-" + utc_stamp(now)) == "older");
}

TEST_CASE("StateStore: I/O failures are io errors naming the path", "[state]") {
  TempDir dir;
  SECTION("a directory at the state path") {
    std::filesystem::create_directory(dir.file("state.json"));
    const auto loaded = StateStore(dir.file("state.json")).load();
    REQUIRE_FALSE(loaded.has_value());
    CHECK(loaded.error().kind == ErrorKind::io);
    CHECK_THAT(loaded.error().message, Catch::Matchers::Contains(dir.file("state.json")));
    CHECK(std::filesystem::is_directory(dir.file("state.json")));  // not moved aside
  }
  SECTION("a parent that is a regular file") {
    dir.write("blocker", "x");
    const std::string path = dir.file("blocker/state.json");
    const auto saved = StateStore(path).save(full_state());
    REQUIRE_FALSE(saved.has_value());
    CHECK(saved.error().kind == ErrorKind::io);
    CHECK_THAT(saved.error().message, Catch::Matchers::Contains(path));
    CHECK_THAT(saved.error().message, Catch::Matchers::Contains("Not a directory"));
  }
  SECTION("an unwritable directory") {
    if (::geteuid() == 0) {
      WARN("skipped: running as root, which can write to any directory");
      return;
    }
    std::filesystem::create_directory(dir.file("ro"));
    std::filesystem::permissions(dir.file("ro"), std::filesystem::perms(0500));
    const std::string path = dir.file("ro/state.json");
    const auto saved = StateStore(path).save(full_state());
    REQUIRE_FALSE(saved.has_value());
    CHECK(saved.error().kind == ErrorKind::io);
    CHECK_THAT(saved.error().message, Catch::Matchers::Contains(path));
    CHECK_THAT(saved.error().message, Catch::Matchers::Contains("Permission denied"));
  }
  SECTION("an unreadable file") {
    if (::geteuid() == 0) {
      WARN("skipped: running as root, which can read any file");
      return;
    }
    const std::string path = dir.write("state.json", "{}");
    std::filesystem::permissions(path, std::filesystem::perms::none);
    const auto loaded = StateStore(path).load();
    REQUIRE_FALSE(loaded.has_value());
    CHECK(loaded.error().kind == ErrorKind::io);
    CHECK_THAT(loaded.error().message, Catch::Matchers::Contains(path));
    CHECK(std::filesystem::exists(path));
  }
}

// ---------------------------------------------------------------------------------------------
// Journal

TEST_CASE("journal_line: fixed keys first, fields in order, level only when not info", "[state]") {
  JournalEntry e = entry("call");
  e.fields = {{"to", "****4567"}, {"label", "Bob"}, {"step", "1"}};
  CHECK(journal_line(e) ==
        R"({"time":"2026-11-22T03:14:07.123Z","type":"call","patient":"Alice","alarm":"a12",)"
        R"("to":"****4567","label":"Bob","step":"1"})");

  e = entry("call_held_back");
  e.level = JournalEntry::Level::warn;
  e.fields = {{"reason", "min_call_gap"}};
  CHECK(journal_line(e) == R"({"time":"2026-11-22T03:14:07.123Z","type":"call_held_back",)"
                           R"("patient":"Alice","alarm":"a12","reason":"min_call_gap",)"
                           R"("level":"warn"})");

  e = entry("call_not_placed");
  e.level = JournalEntry::Level::error;
  CHECK(journal_line(e) == R"({"time":"2026-11-22T03:14:07.123Z","type":"call_not_placed",)"
                           R"("patient":"Alice","alarm":"a12","level":"error"})");
}

TEST_CASE("journal_line: times in UTC with milliseconds, strings escaped", "[state]") {
  JournalEntry e;
  e.type = "unknown_call";
  e.fields = {{"detail", "say \"hi\"\n"}, {"time", "not me"}, {"level", "nor me"}};
  CHECK(journal_line(e) == R"({"time":"1970-01-01T00:00:00.000Z","type":"unknown_call",)"
                           R"("patient":"","alarm":"","detail":"say \"hi\"\n"})");
  e.fields.clear();
  e.at = TimePoint{std::chrono::milliseconds{951782400007}};  // a leap day
  CHECK(journal_line(e).substr(0, 35) == R"({"time":"2000-02-29T00:00:00.007Z",)");
  e.at = TimePoint{std::chrono::milliseconds{1767225599999}};
  CHECK(journal_line(e).substr(0, 35) == R"({"time":"2025-12-31T23:59:59.999Z",)");
}

TEST_CASE("Journal: appends one parseable line per entry, in order", "[state]") {
  TempDir dir;
  const std::string path = dir.file("log/journal.jsonl");
  Journal journal(path);
  const std::vector<std::string> types{"alarm_raised", "step", "call", "call_outcome",
                                       "acknowledged"};
  for (const auto& type : types) {
    REQUIRE(journal.append(entry(type)).has_value());
  }
  CHECK(file_mode(path) == 0640);

  // A second Journal on the same file appends rather than truncating.
  REQUIRE(Journal(path).append(entry("alarm_resolved")).has_value());

  std::ifstream in(path);
  std::vector<std::string> seen;
  for (std::string line; std::getline(in, line);) {
    const json parsed = json::parse(line);
    CHECK(parsed.at("patient") == "Alice");
    CHECK(line == journal_line(entry(parsed.at("type").get<std::string>())));
    seen.push_back(parsed.at("type").get<std::string>());
  }
  std::vector<std::string> expected = types;
  expected.push_back("alarm_resolved");
  CHECK(seen == expected);
  CHECK(read_text(path).back() == '\n');
}

TEST_CASE("Journal: an empty path writes nothing, an unopenable one is an io error", "[state]") {
  TempDir dir;
  Journal none("");
  CHECK(none.append(entry("call")).has_value());
  CHECK(dir.names().empty());

  dir.write("blocker", "x");
  Journal blocked(dir.file("blocker/journal.jsonl"));
  const auto appended = blocked.append(entry("call"));
  REQUIRE_FALSE(appended.has_value());
  CHECK(appended.error().kind == ErrorKind::io);
  CHECK_THAT(appended.error().message,
             Catch::Matchers::Contains(dir.file("blocker/journal.jsonl")));
}

TEST_CASE("StateStore: SMS in flight round-trip, a file without them loads with none, a bad one "
          "is refused", "[state]") {
  const State state = full_state();
  json doc = state_to_json(state);
  const auto back = state_from_json(doc);
  REQUIRE(back);
  CHECK(back->sms_in_flight == state.sms_in_flight);
  doc.erase("sms_in_flight");
  const auto older = state_from_json(doc);
  REQUIRE(older);
  CHECK(older->sms_in_flight.empty());
  CHECK(rejection([](json& d) { d["sms_in_flight"]["s41"]["message"]["purpose"] = "gossip"; })
            .find("sms_in_flight.s41.message.purpose") != std::string::npos);
  CHECK(rejection([](json& d) { d["sms_in_flight"] = json::array(); })
            .find("sms_in_flight") != std::string::npos);
}
