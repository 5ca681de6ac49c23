#pragma once
// Shared pieces of the integration tests: paths of the binaries, temporary directories, config
// writing, and moments picked from a Nightscout entries file.

#include <stdlib.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "integration/process.hpp"

namespace scout::test {

inline const std::string k_scout = SCOUT_BINARY;
inline const std::string k_replay = SCOUT_REPLAY_BINARY;
inline const std::string k_demo_trace = std::string(SCOUT_SOURCE_DIR) + "/examples/demo-trace.json";
inline const std::string k_shared_cgm = std::string(SCOUT_SHARED_DIR) + "/data/cgm";

// A directory under $TMPDIR removed (with its contents) at destruction.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "scout-test-XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    m_path = pattern;
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(m_path, ec);
  }
  const std::filesystem::path& path() const { return m_path; }
  // Writes `text` to `name` inside the directory and returns its path.
  std::string write(const std::string& name, const std::string& text) const {
    const auto file = m_path / name;
    std::ofstream(file) << text;
    return file.string();
  }

 private:
  std::filesystem::path m_path;
};

// One entry of a Nightscout entries file.
struct TraceEntry {
  std::int64_t date = 0;  // ms since epoch
  int sgv = 0;
  std::string direction;
};

// Reads a Nightscout entries JSON array and returns it oldest first.
inline std::vector<TraceEntry> read_trace(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot read " + path);
  const auto doc = nlohmann::json::parse(in);
  std::vector<TraceEntry> entries;
  for (const auto& e : doc) {
    if (!e.contains("sgv")) continue;
    entries.push_back({e.at("date").get<std::int64_t>(),
                       e.at("sgv").is_string() ? std::stoi(e.at("sgv").get<std::string>())
                                               : e.at("sgv").get<int>(),
                       e.value("direction", "")});
  }
  std::sort(entries.begin(), entries.end(),
            [](const TraceEntry& a, const TraceEntry& b) { return a.date < b.date; });
  return entries;
}

// The first moment (trace ms) one minute after a reading for which `pred(entries, i)` holds,
// with at least `history` readings before it.
inline std::optional<std::int64_t> find_moment(
    const std::vector<TraceEntry>& entries,
    const std::function<bool(const std::vector<TraceEntry>&, std::size_t)>& pred,
    std::size_t history = 3) {
  for (std::size_t i = history; i < entries.size(); ++i) {
    if (pred(entries, i)) return entries[i].date + 60'000;
  }
  return std::nullopt;
}

// A minimal valid config (SPEC §2) for `patients`, each {name, url}, with the console provider.
struct PatientSpec {
  std::string name;
  std::string url;
  std::string extra = "";  // more YAML lines for this patient, already indented by 4 spaces
};

inline std::string make_config(const std::vector<PatientSpec>& patients,
                               const std::string& top = "", const std::string& defaults = "") {
  std::ostringstream y;
  y << "units: mg/dL\n"
    << "poll: {interval: 60s, timeout: 5s}\n"
    << "state_file: /tmp/scout-test-state.json\n"
    << "providers:\n  - type: console\n"
    << top;
  if (!defaults.empty()) y << "defaults:\n" << defaults;
  y << "patients:\n";
  int n = 0;
  for (const auto& p : patients) {
    y << "  - name: " << p.name << "\n"
      << "    timezone: UTC\n"
      << "    phone: \"+1555555" << 1000 + n++ << "\"\n"
      << "    nightscout:\n      url: " << p.url << "\n"
      << "    contacts:\n      - {name: Bob, phone: \"+15555559999\"}\n"
      << p.extra;
  }
  return y.str();
}

// Runs `scout check --config CONFIG --format json [extra...]` and parses stdout.
struct CheckRun {
  ProcessResult process;
  nlohmann::json doc;
};

inline CheckRun run_check_json(const std::string& config, const std::vector<std::string>& extra = {},
                               std::chrono::milliseconds timeout = std::chrono::seconds{60}) {
  std::vector<std::string> argv = {k_scout, "check", "--config", config, "--format", "json"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  CheckRun run;
  run.process = run_process(argv, timeout);
  run.doc = nlohmann::json::parse(run.process.out, nullptr, /*allow_exceptions=*/false);
  return run;
}

// Finds the patient named `name` in a check JSON document (throws when absent).
inline const nlohmann::json& patient_of(const nlohmann::json& doc, const std::string& name) {
  for (const auto& p : doc.at("patients")) {
    if (p.at("name") == name) return p;
  }
  throw std::runtime_error("no patient " + name + " in check output");
}

}  // namespace scout::test
