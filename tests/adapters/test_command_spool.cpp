// Specification of scout/adapters/command_spool.hpp (SPEC §4.13): requests from the shell reach
// the service in order, bad ones are refused without being applied, results come back once.

#include <stdlib.h>
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>

#include "scout/adapters/command_spool.hpp"

using namespace std::chrono_literals;
using scout::adapters::CommandSpool;
using scout::core::ShellCommand;
namespace fs = std::filesystem;

namespace {

struct SpoolDir {
  SpoolDir() {
    std::string pattern = (fs::temp_directory_path() / "scout-spool-XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path = pattern;
  }
  ~SpoolDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string state() const { return (path / "state.json").string(); }
  fs::path path;
};

const scout::core::TimePoint k_now{std::chrono::milliseconds{1'796'000'000'000}};

ShellCommand snooze(const std::string& patient, std::chrono::milliseconds d) {
  ShellCommand c;
  c.kind = ShellCommand::Kind::snooze;
  c.patient = patient;
  c.by = "mum";
  c.duration = d;
  c.only = "glucose";
  return c;
}

void write(const fs::path& file, const std::string& text) {
  std::ofstream(file, std::ios::binary) << text;
}

}  // namespace

TEST_CASE("spool: requests come back in submission order with every field", "[spool]") {
  SpoolDir dir;
  const CommandSpool spool(dir.state());
  const auto first = spool.submit(snooze("Alice", 30min), k_now);
  REQUIRE(first);
  ShellCommand ack;
  ack.kind = ShellCommand::Kind::ack;
  ack.patient = "Bob";
  const auto second = spool.submit(ack, k_now);
  REQUIRE(second);
  CHECK(*first < *second);
  // Readable by a service running as another user.
  struct stat st {};
  REQUIRE(::stat((spool.commands_dir() + "/" + *first + ".json").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0644);

  const auto pending = spool.pending();
  REQUIRE(pending.size() == 2);
  REQUIRE(pending[0].command);
  CHECK(pending[0].id == *first);
  CHECK(pending[0].command->id == *first);
  CHECK(pending[0].command->kind == ShellCommand::Kind::snooze);
  CHECK(pending[0].command->patient == "Alice");
  CHECK(pending[0].command->by == "mum");
  CHECK(pending[0].command->duration == 30min);
  CHECK(pending[0].command->only == "glucose");
  REQUIRE(pending[1].command);
  CHECK(pending[1].command->kind == ShellCommand::Kind::ack);

  // finish: the result is there once, the request is gone.
  REQUIRE(spool.finish(*first, {true, {"URGENT LOW snoozed for 30m by mum"}}, k_now));
  CHECK(spool.pending().size() == 1);
  const auto result = spool.take_result(*first);
  REQUIRE(result);
  CHECK(result->changed);
  CHECK(result->lines == std::vector<std::string>{"URGENT LOW snoozed for 30m by mum"});
  CHECK_FALSE(spool.take_result(*first));
  CHECK_FALSE(spool.take_result(*second));
}

TEST_CASE("spool: a request that is not one scout wrote is refused, not applied", "[spool]") {
  SpoolDir dir;
  const CommandSpool spool(dir.state());
  REQUIRE(spool.prepare());
  const fs::path commands = spool.commands_dir();
  write(commands / "0000000000001-1-0001.json", "{not json");
  write(commands / "0000000000002-1-0002.json",
        R"({"version":1,"command":"snooze","patient":"Alice","duration_ms":999999999999})");
  write(commands / "0000000000003-1-0003.json",
        R"({"version":1,"command":"reboot","patient":"Alice"})");
  write(commands / "0000000000004-1-0004.json", std::string(8192, ' ') + "{}");
  write(commands / "0000000000005-1-0005.json", R"({"version":2,"command":"ack","patient":"A"})");
  write(commands / ".tmp-0000000000006-1-0006.json", R"({"version":1,"command":"ack"})");
  const auto pending = spool.pending();
  REQUIRE(pending.size() == 5);  // the temp file of a request being written is not one
  for (const auto& request : pending) {
    INFO(request.id);
    CHECK_FALSE(request.command);
    CHECK_FALSE(request.error.empty());
  }
  CHECK(pending[1].error.find("duration_ms") != std::string::npos);
  CHECK(pending[2].error.find("reboot") != std::string::npos);
  for (const auto& request : pending) REQUIRE(spool.finish(request.id, {false, {"refused"}}, k_now));
  CHECK(spool.pending().empty());
}

TEST_CASE("spool: at most k_max_requests_per_wake requests per wake", "[spool]") {
  SpoolDir dir;
  const CommandSpool spool(dir.state());
  for (std::size_t i = 0; i < scout::adapters::k_max_requests_per_wake + 5; ++i) {
    REQUIRE(spool.submit(snooze("Alice", 1min), k_now));
  }
  CHECK(spool.pending().size() == scout::adapters::k_max_requests_per_wake);
}

TEST_CASE("spool: the status document round-trips, a missing one is nullopt", "[spool]") {
  SpoolDir dir;
  const CommandSpool spool(dir.state());
  CHECK_FALSE(spool.read_status());
  REQUIRE(spool.write_status({{"version", 1}, {"mode", "run"}}));
  const auto status = spool.read_status();
  REQUIRE(status);
  CHECK((*status)["mode"] == "run");
}
