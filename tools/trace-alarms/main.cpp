// trace-alarms: replays every real CGM trace in SHARED/data/cgm through scout's own evaluation
// and alarm machine (app::simulate_trace) with the SPEC §2 default settings and the console
// provider, once with nobody answering (answer: never) and once with the patient acknowledging
// every call (answer: ack), and prints per trace the calls and SMS per day, the alarms raised per
// day, and whether every episode below 54 mg/dL lasting 15 minutes or more raised an alarm.
//
//   trace-alarms [--shared DIR] [--markdown] [--by-kind]
//
// "reached after" and "call after" are app::LowEpisode::reached_after and ::called_after, in
// minutes, as "median / max" over the trace's episodes.
//
// Settings: app::trace_config (built-in defaults, patient P with contacts Bob and Carol, UTC);
// 1-minute ticks from the first reading to the last.
//
// Exit status: 0 when every episode alarmed in both modes, 1 when one did not (each is listed
// on stderr), 64 usage error, 66 no trace found or a trace unreadable.

#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "scout/adapters/nightscout.hpp"
#include "scout/app/simulate.hpp"

namespace {

namespace fs = std::filesystem;
using scout::app::LowEpisode;
using scout::app::SimulationResult;

// sysexits.h
constexpr int k_exit_usage = 64;
constexpr int k_exit_no_input = 66;

#ifdef SCOUT_SHARED_DIR
const char* const k_default_shared = SCOUT_SHARED_DIR;
#else
const char* const k_default_shared = "../shared";
#endif

struct TraceRow {
  std::string name;
  SimulationResult never;
  SimulationResult ack;
};

std::optional<std::vector<scout::core::Entry>> load_trace(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::cerr << "trace-alarms: cannot read " << path.string() << "\n";
    return std::nullopt;
  }
  std::ostringstream body;
  body << in.rdbuf();
  auto entries = scout::adapters::parse_entries(body.str());
  if (!entries) {
    std::cerr << "trace-alarms: " << path.string() << ": " << entries.error().message << "\n";
    return std::nullopt;
  }
  return std::move(*entries);
}

std::string fixed(double value, int decimals) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.*f", decimals, value);
  return buffer;
}

double minutes(scout::core::Duration d) { return static_cast<double>(d.count()) / 60000.0; }

int alarmed_count(const SimulationResult& r) {
  return static_cast<int>(std::count_if(r.episodes.begin(), r.episodes.end(),
                                        [](const LowEpisode& e) { return e.alarmed; }));
}

// "median / max" in minutes of `field` over the episodes that have it, plus how many have
// none; "-" without episodes.
std::string median_max(const SimulationResult& r,
                       std::optional<scout::core::Duration> LowEpisode::*field) {
  std::vector<double> values;
  for (const auto& e : r.episodes) {
    if (e.*field) values.push_back(minutes(*(e.*field)));
  }
  if (values.empty()) return r.episodes.empty() ? "-" : "none";
  std::sort(values.begin(), values.end());
  const std::size_t n = values.size();
  const double median = n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2.0;
  std::string text = fixed(median, 1) + " / " + fixed(values.back(), 1);
  const std::size_t missing = r.episodes.size() - n;
  if (missing > 0) text += " (" + std::to_string(missing) + " none)";
  return text;
}

std::vector<std::vector<std::string>> table(const std::vector<TraceRow>& rows) {
  std::vector<std::vector<std::string>> cells;
  cells.push_back({"trace", "days", "calls/day never", "calls/day ack", "SMS/day never",
                   "SMS/day ack", "alarms/day", "episodes <54 >=15 min", "alarmed never/ack",
                   "reached after never", "call after never", "call after ack"});
  for (const auto& row : rows) {
    const double days = row.never.days > 0 ? row.never.days : 1.0;
    const double ack_days = row.ack.days > 0 ? row.ack.days : 1.0;
    cells.push_back({row.name, fixed(row.never.days, 1), fixed(row.never.calls / days, 1),
                     fixed(row.ack.calls / ack_days, 1), fixed(row.never.sms / days, 1),
                     fixed(row.ack.sms / ack_days, 1), fixed(row.never.alarms_raised / days, 1),
                     std::to_string(row.never.episodes.size()),
                     std::to_string(alarmed_count(row.never)) + "/" +
                         std::to_string(alarmed_count(row.ack)),
                     median_max(row.never, &LowEpisode::reached_after),
                     median_max(row.never, &LowEpisode::called_after),
                     median_max(row.ack, &LowEpisode::called_after)});
  }
  return cells;
}

void print_text(const std::vector<std::vector<std::string>>& cells) {
  std::vector<std::size_t> widths(cells.front().size(), 0);
  for (const auto& line : cells) {
    for (std::size_t i = 0; i < line.size(); ++i) widths[i] = std::max(widths[i], line[i].size());
  }
  for (const auto& line : cells) {
    std::string out;
    for (std::size_t i = 0; i < line.size(); ++i) {
      if (i > 0) out += "  ";
      out += line[i];
      if (i + 1 < line.size()) out += std::string(widths[i] - line[i].size(), ' ');
    }
    std::cout << out << "\n";
  }
}

void print_markdown(const std::vector<std::vector<std::string>>& cells) {
  for (std::size_t r = 0; r < cells.size(); ++r) {
    std::string out = "|";
    for (const auto& cell : cells[r]) out += " " + cell + " |";
    std::cout << out << "\n";
    if (r == 0) {
      std::string rule = "|";
      for (std::size_t i = 0; i < cells[r].size(); ++i) rule += i == 0 ? "---|" : "---:|";
      std::cout << rule << "\n";
    }
  }
}

std::string utc_iso(scout::core::TimePoint t) {
  const auto seconds = std::chrono::floor<std::chrono::seconds>(t);
  const auto day = std::chrono::floor<std::chrono::days>(seconds);
  const std::chrono::year_month_day ymd{day};
  const std::chrono::hh_mm_ss hms{seconds - day};
  char buffer[40];
  std::snprintf(buffer, sizeof buffer, "%04d-%02u-%02uT%02lld:%02lld:%02lldZ",
                static_cast<int>(ymd.year()), static_cast<unsigned>(ymd.month()),
                static_cast<unsigned>(ymd.day()), static_cast<long long>(hms.hours().count()),
                static_cast<long long>(hms.minutes().count()),
                static_cast<long long>(hms.seconds().count()));
  return buffer;
}

// 1-minute ticks from the first reading (no episode lies before the first tick) to the last (the
// end of a file is not a sensor failure, so it raises no stale alarm).
scout::app::SimulationOptions options(scout::core::ConsoleAnswer answer) {
  scout::app::SimulationOptions o;
  o.answer = answer;
  o.tick = std::chrono::minutes{1};
  o.lead_in = scout::core::Duration::zero();
  o.tail = scout::core::Duration::zero();
  return o;
}

// Alarms, calls and SMS per alarm kind (the peak kind and severity), for both modes.
std::vector<std::vector<std::string>> by_kind(const std::vector<TraceRow>& rows) {
  std::vector<std::vector<std::string>> cells;
  cells.push_back({"trace", "alarm (peak)", "alarms", "calls never", "calls ack", "SMS never",
                   "SMS ack"});
  for (const auto& row : rows) {
    struct Counts {
      int alarms = 0, calls_never = 0, calls_ack = 0, sms_never = 0, sms_ack = 0;
    };
    std::map<std::string, Counts> counts;
    const auto key = [](const scout::app::SimulatedAlarm& a) {
      std::string k = scout::core::to_string(a.peak.kind);
      if (a.peak.kind == scout::core::AlarmKind::stale) {
        k += "/";
        k += scout::core::to_string(a.peak.severity);
      }
      return k;
    };
    for (const auto& a : row.never.alarms) {
      auto& c = counts[key(a)];
      ++c.alarms;
      c.calls_never += a.calls;
      c.sms_never += a.sms;
    }
    for (const auto& a : row.ack.alarms) {
      auto& c = counts[key(a)];
      c.calls_ack += a.calls;
      c.sms_ack += a.sms;
    }
    for (const auto& [kind, c] : counts) {
      cells.push_back({row.name, kind, std::to_string(c.alarms), std::to_string(c.calls_never),
                       std::to_string(c.calls_ack), std::to_string(c.sms_never),
                       std::to_string(c.sms_ack)});
    }
  }
  return cells;
}

// Lists every episode that did not alarm; returns how many.
int report_unalarmed(const std::string& trace, const char* mode, const SimulationResult& r) {
  int missed = 0;
  for (const auto& e : r.episodes) {
    if (e.alarmed) continue;
    ++missed;
    std::cerr << "trace-alarms: " << trace << " (answer " << mode << "): episode "
              << utc_iso(e.start) << " .. " << utc_iso(e.end) << " nadir " << e.nadir
              << " mg/dL raised no low alarm\n";
  }
  return missed;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"trace-alarms: replay the real CGM traces through scout's alarm machine"};
  std::string shared = k_default_shared;
  bool markdown = false;
  bool kinds = false;
  app.add_option("--shared", shared, "the shared directory holding data/cgm/*.json")
      ->capture_default_str();
  app.add_flag("--markdown", markdown, "print a README-ready markdown table");
  app.add_flag("--by-kind", kinds, "also print alarms, calls and SMS per alarm kind");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : k_exit_usage;
  }

  const fs::path dir = fs::path(shared) / "data" / "cgm";
  std::vector<fs::path> files;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->path().extension() == ".json") files.push_back(it->path());
  }
  std::sort(files.begin(), files.end());
  if (files.empty()) {
    std::cerr << "trace-alarms: no *.json trace in " << dir.string() << "\n";
    return k_exit_no_input;
  }

  const auto never_config = scout::app::trace_config(scout::core::ConsoleAnswer::never);
  const auto ack_config = scout::app::trace_config(scout::core::ConsoleAnswer::ack);
  const auto started = std::chrono::steady_clock::now();
  std::vector<TraceRow> rows;
  int missed = 0;
  for (const auto& file : files) {
    const auto entries = load_trace(file);
    if (!entries) return k_exit_no_input;
    TraceRow row;
    row.name = file.stem().string();
    row.never = scout::app::simulate_trace(never_config, never_config.patients.front(), *entries,
                                           options(scout::core::ConsoleAnswer::never));
    row.ack = scout::app::simulate_trace(ack_config, ack_config.patients.front(), *entries,
                                         options(scout::core::ConsoleAnswer::ack));
    missed += report_unalarmed(row.name, "never", row.never);
    missed += report_unalarmed(row.name, "ack", row.ack);
    rows.push_back(std::move(row));
  }
  const auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - started);

  const auto print = [markdown](const std::vector<std::vector<std::string>>& cells) {
    if (markdown) {
      print_markdown(cells);
    } else {
      print_text(cells);
    }
  };
  print(table(rows));
  if (kinds) {
    std::cout << "\n";
    print(by_kind(rows));
  }
  std::cerr << "trace-alarms: " << rows.size() << " traces, 2 modes, 1-minute ticks, "
            << elapsed.count() << " ms\n";
  return missed == 0 ? 0 : 1;
}
