// The real CGM traces of ../shared/data/cgm (see its README.md) replayed through scout's own
// evaluation and alarm machine (app::simulate_trace, app::trace_config: SPEC §2 built-in
// defaults, console provider), once with nobody answering and once with the patient
// acknowledging every call: every episode below 54 mg/dL lasting 15 minutes or more must raise
// a low alarm. The per-trace numbers go to stdout for the CI log (tools/trace-alarms prints the
// same as a table). Skipped with a warning when ../shared is absent.

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "scout/adapters/nightscout.hpp"
#include "scout/app/simulate.hpp"

namespace {

namespace fs = std::filesystem;
using scout::core::ConsoleAnswer;

const fs::path k_cgm_dir = fs::path(SCOUT_SOURCE_DIR "/../shared/data/cgm");

std::vector<fs::path> trace_files() {
  std::vector<fs::path> files;
  std::error_code ec;
  for (fs::directory_iterator it(k_cgm_dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->path().extension() == ".json") files.push_back(it->path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

std::vector<scout::core::Entry> load(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream body;
  body << in.rdbuf();
  auto entries = scout::adapters::parse_entries(body.str());
  if (!entries) FAIL(path.string() << ": " << entries.error().message);
  return std::move(*entries);
}

std::string iso(scout::core::TimePoint t) {
  const auto seconds = std::chrono::floor<std::chrono::seconds>(t);
  const auto day = std::chrono::floor<std::chrono::days>(seconds);
  const std::chrono::year_month_day ymd{day};
  const std::chrono::hh_mm_ss hms{seconds - day};
  char buffer[40];
  std::snprintf(buffer, sizeof buffer, "%04d-%02u-%02uT%02lld:%02lldZ",
                static_cast<int>(ymd.year()), static_cast<unsigned>(ymd.month()),
                static_cast<unsigned>(ymd.day()), static_cast<long long>(hms.hours().count()),
                static_cast<long long>(hms.minutes().count()));
  return buffer;
}

std::string one_decimal(double value) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.1f", value);
  return buffer;
}

std::string per_day(int count, double days) { return one_decimal(days > 0 ? count / days : 0.0); }

}  // namespace

TEST_CASE("traces: every episode below 54 mg/dL of the real CGM traces raises an alarm",
          "[traces]") {
  const auto files = trace_files();
  if (files.empty()) {
    WARN("no CGM traces in " << k_cgm_dir.string() << ": skipped");
    return;
  }
  const auto started = std::chrono::steady_clock::now();
  int episodes = 0;
  for (const auto& file : files) {
    const auto entries = load(file);
    REQUIRE_FALSE(entries.empty());
    for (const auto answer : {ConsoleAnswer::never, ConsoleAnswer::ack}) {
      const char* mode = answer == ConsoleAnswer::never ? "never" : "ack";
      const auto config = scout::app::trace_config(answer);
      scout::app::SimulationOptions options;
      options.answer = answer;
      options.lead_in = scout::core::Duration::zero();  // see every reading
      options.tail = scout::core::Duration::zero();     // the end of a file is not a failure
      const auto r = scout::app::simulate_trace(config, config.patients.front(), entries, options);

      std::cout << "[traces] " << file.stem().string() << " answer " << mode << ": "
                << per_day(r.calls, r.days) << " calls/day, " << per_day(r.sms, r.days)
                << " SMS/day, " << per_day(r.alarms_raised, r.days) << " alarms/day over "
                << one_decimal(r.days) << " days; "
                << r.episodes.size() << " episodes <54 >=15 min, "
                << std::count_if(r.episodes.begin(), r.episodes.end(),
                                 [](const auto& e) { return e.alarmed; })
                << " alarmed\n";
      CHECK(r.days > 1.0);
      CHECK(r.calls > 0);  // every trace has lows, highs or gaps
      for (const auto& episode : r.episodes) {
        INFO(file.stem().string() << " answer " << mode << ": episode " << iso(episode.start)
                                  << " .. " << iso(episode.end) << ", nadir " << episode.nadir
                                  << " mg/dL");
        CHECK(episode.alarmed);
        if (answer == ConsoleAnswer::never) {
          // Nobody acknowledges, so every low alarm keeps calling: the episode reaches someone.
          CHECK(episode.reached_after.has_value());
        }
      }
      if (answer == ConsoleAnswer::never) episodes += static_cast<int>(r.episodes.size());
    }
  }
  // data/cgm/README.md lists 6 + 2 + 19 + 2 such episodes in its four traces.
  CHECK(episodes > 0);
  const auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - started);
  std::cout << "[traces] " << files.size() << " traces x 2 modes replayed in " << elapsed.count()
            << " ms\n";
}
