// bench_check: `scout check` and `scout run` over N slow Nightscout sites.
//
// Starts an in-process Nightscout stand-in on loopback (slow_nightscout.hpp: an event loop whose
// every answer takes --delay-ms, 100 ms by default), writes a config with N patients, and runs
// the real binary:
//   check mode (default): `scout check --config FILE --format json`, wall time from spawn to exit,
//     against the one-after-another floor (N x delay);
//   --run: a long-lived `scout run`, its first tick and then steady ticks, each with the tick's
//     wall time (the `took_ms` of its tick line), the CPU the process used from one tick line to
//     the next, and the peak RSS (VmHWM).
// Each patient's site is its own host (http://p0042.localhost:PORT, which libcurl resolves to
// loopback itself), as Nightscout sites are; --shared-host puts them all on 127.0.0.1:PORT with
// a path prefix each (a clinic's one host). See bench/README.md. Not part of the tests.
//
//   bench_check [--scout PATH] [--delay-ms MS] [--runs R] [--run [--ticks T]] [--shared-host] [N ...]

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "slow_nightscout.hpp"

extern char** environ;

namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  std::string scout = "./build/scout";
  int delay_ms = 100;
  int runs = 1;
  bool run = false;  // --run: a long-lived `scout run`, first tick and steady ticks
  int ticks = 4;     // steady ticks measured with --run (the median is reported)
  bool shared_host = false;
  std::vector<int> sizes;
};

struct RunResult {
  double seconds = 0;
  int exit_code = -1;
  int patients = 0;   // in scout's JSON
  int errors = 0;     // patients with a non-null "error"
  long requests = 0;  // requests the server answered
};

void raise_open_file_limit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max == RLIM_INFINITY ? 65536 : limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
  }
}

std::string site_url(int index, int port, bool shared_host) {
  char name[32];
  std::snprintf(name, sizeof name, "p%04d", index);
  if (shared_host) return "http://127.0.0.1:" + std::to_string(port) + "/" + name;
  return "http://" + std::string{name} + ".localhost:" + std::to_string(port);
}

std::string write_config(const std::filesystem::path& dir, int patients, int port,
                         bool shared_host, const std::string& interval) {
  const auto path = dir / ("scout-" + std::to_string(patients) + ".yaml");
  std::ofstream out{path};
  out << "# bench_check: " << patients << " patients\n"
      << "units: mg/dL\n"
      << "poll: {interval: " << interval << ", timeout: 9s}\n"
      << "providers: [{type: console}]\n"
      << "patients:\n";
  for (int i = 0; i < patients; ++i) {
    char name[32];
    std::snprintf(name, sizeof name, "p%04d", i);
    out << "  - name: " << name << "\n"
        << "    phone: \"+15555550100\"\n"
        << "    nightscout: {url: \"" << site_url(i, port, shared_host) << "\"}\n";
  }
  return path.string();
}

pid_t spawn(std::vector<std::string> args, const std::string& out_path, int stderr_fd,
            const std::string& err_path) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, out_path.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (stderr_fd >= 0) {
    posix_spawn_file_actions_adddup2(&actions, stderr_fd, STDERR_FILENO);
  } else {
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, err_path.c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0644);
  }
  std::vector<char*> argv;
  for (auto& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  const int spawned = posix_spawn(&pid, args[0].c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (spawned != 0) {
    std::cerr << "bench_check: cannot run " << args[0] << ": " << std::strerror(spawned) << "\n";
    return -1;
  }
  return pid;
}

// Runs `scout check --config CONFIG --format json`, stdout to `out_path`, stderr to `err_path`.
RunResult run_check(const std::string& scout, const std::string& config,
                    const std::string& out_path, const std::string& err_path) {
  RunResult result;
  const auto started = Clock::now();
  const pid_t pid =
      spawn({scout, "check", "--config", config, "--format", "json"}, out_path, -1, err_path);
  if (pid < 0) return result;
  int status = 0;
  waitpid(pid, &status, 0);
  result.seconds = std::chrono::duration<double>(Clock::now() - started).count();
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;

  std::ifstream in{out_path};
  std::stringstream text;
  text << in.rdbuf();
  try {
    const auto report = nlohmann::json::parse(text.str());
    for (const auto& patient : report.at("patients")) {
      ++result.patients;
      result.errors += patient.contains("error") && !patient.at("error").is_null();
    }
  } catch (const nlohmann::json::exception& e) {
    std::cerr << "bench_check: scout's output is not the expected JSON (" << e.what() << "); see "
              << out_path << " and " << err_path << "\n";
  }
  return result;
}

// CPU seconds (user + system) the process `pid` has used so far (/proc/PID/stat fields 14, 15).
double cpu_seconds_of(pid_t pid) {
  std::ifstream in{"/proc/" + std::to_string(pid) + "/stat"};
  std::string text;
  std::getline(in, text);
  const auto close = text.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream fields{text.substr(close + 2)};
  std::string field;
  unsigned long long utime = 0, stime = 0;
  for (int i = 3; fields >> field; ++i) {
    if (i == 14) utime = std::stoull(field);
    if (i == 15) {
      stime = std::stoull(field);
      break;
    }
  }
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

long peak_rss_kb(pid_t pid) {
  std::ifstream in{"/proc/" + std::to_string(pid) + "/status"};
  std::string line;
  while (std::getline(in, line)) {
    if (line.starts_with("VmHWM:")) return std::atol(line.c_str() + 6);
  }
  return 0;
}

struct Tick {
  double wall_s = 0;  // took_ms of the tick line
  double cpu_s = 0;   // CPU since the previous tick line (or since spawn)
  long failed = -1;
};

struct RunTicks {
  double startup_s = 0;  // spawn to the first tick line
  std::vector<Tick> ticks;
  long rss_kb = 0;
  std::string problem;
};

// A long-lived `scout run --log-format json`: reads its tick lines (SPEC §6) as they come.
RunTicks run_service(const std::string& scout, const std::string& config, const std::string& stem,
                     int ticks) {
  RunTicks result;
  int pipe_fds[2];
  if (pipe2(pipe_fds, O_CLOEXEC) != 0) {
    result.problem = "pipe failed";
    return result;
  }
  const auto started = Clock::now();
  const pid_t pid = spawn({scout, "run", "--config", config, "--state", stem + ".state.json",
                           "--log-format", "json"},
                          stem + ".out", pipe_fds[1], "");
  ::close(pipe_fds[1]);
  if (pid < 0) {
    ::close(pipe_fds[0]);
    result.problem = "spawn failed";
    return result;
  }
  std::ofstream log{stem + ".log"};
  FILE* in = fdopen(pipe_fds[0], "r");
  char* line = nullptr;
  std::size_t capacity = 0;
  double cpu_before = 0;
  while (static_cast<int>(result.ticks.size()) < ticks + 1 && getline(&line, &capacity, in) > 0) {
    log << line;
    nlohmann::json parsed = nlohmann::json::parse(line, nullptr, false);
    if (!parsed.is_object() || parsed.value("msg", "") != "tick") continue;
    const double cpu = cpu_seconds_of(pid);
    if (result.ticks.empty()) {
      result.startup_s = std::chrono::duration<double>(Clock::now() - started).count();
    }
    Tick tick;
    tick.wall_s = std::atof(parsed.value("took_ms", "0").c_str()) / 1000.0;
    tick.failed = std::atol(parsed.value("failed", "-1").c_str());
    tick.cpu_s = cpu - cpu_before;
    cpu_before = cpu;
    result.ticks.push_back(tick);
  }
  result.rss_kb = peak_rss_kb(pid);
  ::kill(pid, SIGTERM);
  // Keep draining so that a full pipe cannot block its shutdown.
  while (getline(&line, &capacity, in) > 0) log << line;
  std::free(line);
  std::fclose(in);
  int status = 0;
  waitpid(pid, &status, 0);
  if (static_cast<int>(result.ticks.size()) < ticks + 1) {
    result.problem = "scout run stopped after " + std::to_string(result.ticks.size()) +
                     " tick(s); see " + stem + ".log";
  }
  return result;
}

bool parse_args(int argc, char** argv, Options& options) {
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const bool has_value = i + 1 < argc;
    if (arg == "--scout" && has_value) {
      options.scout = argv[++i];
    } else if (arg == "--delay-ms" && has_value) {
      options.delay_ms = std::atoi(argv[++i]);
    } else if (arg == "--runs" && has_value) {
      options.runs = std::max(1, std::atoi(argv[++i]));
    } else if (arg == "--run") {
      options.run = true;
    } else if (arg == "--ticks" && has_value) {
      options.ticks = std::max(1, std::atoi(argv[++i]));
    } else if (arg == "--shared-host") {
      options.shared_host = true;
    } else if (arg == "-h" || arg == "--help") {
      return false;
    } else if (!arg.empty() && arg.find_first_not_of("0123456789") == std::string::npos) {
      options.sizes.push_back(std::atoi(arg.c_str()));
    } else {
      std::cerr << "bench_check: unknown argument " << arg << "\n";
      return false;
    }
  }
  if (options.sizes.empty()) {
    options.sizes = {10, 100, 1000};
  }
  return options.delay_ms >= 0 &&
         std::all_of(options.sizes.begin(), options.sizes.end(), [](int n) { return n > 0; });
}

template <typename T, typename Key>
T median_by(std::vector<T> values, Key key) {
  std::sort(values.begin(), values.end(), [&](const T& a, const T& b) { return key(a) < key(b); });
  return values[values.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  if (!parse_args(argc, argv, options)) {
    std::cerr << "usage: bench_check [--scout PATH] [--delay-ms MS] [--runs R] [--run [--ticks T]]"
                 " [--shared-host] [N ...]\n";
    return 64;
  }
  if (::access(options.scout.c_str(), X_OK) != 0) {
    std::cerr << "bench_check: " << options.scout << " is not an executable (use --scout)\n";
    return 66;
  }
  raise_open_file_limit();

  const auto dir =
      std::filesystem::temp_directory_path() / ("scout-bench-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  bench::SlowNightscout server{options.delay_ms};
  const char* hosts = options.shared_host ? "one host, a path each" : "a host each";

  if (options.run) {
    std::cout << "scout run over N Nightscout sites (" << hosts << ") that each take "
              << options.delay_ms << " ms to answer (loopback, "
              << std::thread::hardware_concurrency() << " cores; steady: median of "
              << options.ticks << " ticks)\n\n"
              << "| N | first tick: wall | CPU (with start-up) | steady tick: wall | CPU | max RSS "
                 "| requests | 304 | bytes/steady tick |\n"
              << "|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
    bool all_ok = true;
    for (const int n : options.sizes) {
      const std::string config = write_config(dir, n, server.port(), options.shared_host, "10s");
      const std::string stem = (dir / ("run-" + std::to_string(n))).string();
      std::filesystem::remove(stem + ".state.json");
      auto& counters = server.counters();
      const long requests_before = counters.requests;
      const long long bytes_before = counters.body_bytes;
      const long not_modified_before = counters.not_modified;
      const RunTicks run = run_service(options.scout, config, stem, options.ticks);
      if (!run.problem.empty()) {
        std::cerr << "bench_check: N=" << n << ": " << run.problem << "\n";
        all_ok = false;
        continue;
      }
      const Tick& first = run.ticks.front();
      const std::vector<Tick> steady_ticks(run.ticks.begin() + 1, run.ticks.end());
      const Tick wall = median_by(steady_ticks, [](const Tick& t) { return t.wall_s; });
      const Tick cpu = median_by(steady_ticks, [](const Tick& t) { return t.cpu_s; });
      const long requests = counters.requests - requests_before;
      const double steady_bytes =
          static_cast<double>(counters.body_bytes - bytes_before) /
          static_cast<double>(run.ticks.size());  // the first tick's full answers included
      char line[320];
      std::snprintf(line, sizeof line,
                    "| %d | %.2f s | %.2f s | %.2f s | %.2f s | %ld MiB | %ld | %ld | %.0f |\n", n,
                    first.wall_s, first.cpu_s, wall.wall_s, cpu.cpu_s, run.rss_kb / 1024, requests,
                    counters.not_modified - not_modified_before, steady_bytes);
      std::cout << line << std::flush;
      for (const auto& tick : run.ticks) {
        if (tick.failed != 0) {
          std::cerr << "bench_check: N=" << n << ": a tick had " << tick.failed
                    << " failed polls; see " << stem << ".log\n";
          all_ok = false;
          break;
        }
      }
    }
    if (all_ok) std::filesystem::remove_all(dir);
    return all_ok ? 0 : 1;
  }

  std::cout << "scout check over N Nightscout sites (" << hosts << ") that each take "
            << options.delay_ms << " ms to answer (loopback, "
            << std::thread::hardware_concurrency() << " cores, " << options.runs
            << (options.runs == 1 ? " run" : " runs, median") << ")\n\n"
            << "| N | wall time | one-after-another floor (N x " << options.delay_ms
            << " ms) | speed-up | exit | patients with an error |\n"
            << "|---:|---:|---:|---:|---:|---:|\n";
  bool all_ok = true;
  for (const int n : options.sizes) {
    const std::string config = write_config(dir, n, server.port(), options.shared_host, "60s");
    std::vector<RunResult> runs;
    for (int r = 0; r < options.runs; ++r) {
      const std::string stem = (dir / ("check-" + std::to_string(n))).string();
      const long before = server.counters().requests;
      runs.push_back(run_check(options.scout, config, stem + ".json", stem + ".err"));
      runs.back().requests = server.counters().requests - before;
    }
    const RunResult median = median_by(runs, [](const RunResult& r) { return r.seconds; });
    const double floor_s = n * options.delay_ms / 1000.0;
    char line[256];
    std::snprintf(line, sizeof line, "| %d | %.2f s | %.1f s | %.0fx | %d | %d of %d |\n", n,
                  median.seconds, floor_s, median.seconds > 0 ? floor_s / median.seconds : 0.0,
                  median.exit_code, median.errors, median.patients);
    std::cout << line << std::flush;
    const bool ok = median.exit_code >= 0 && median.exit_code <= 3 && median.patients == n &&
                    median.errors == 0 && median.requests == n;
    if (!ok) {
      std::cerr << "bench_check: N=" << n << ": scout exited " << median.exit_code << ", reported "
                << median.patients << " patients (" << median.errors << " with an error), "
                << "server answered " << median.requests << " requests; output in " << dir << "\n";
      all_ok = false;
    }
  }
  if (all_ok) {
    std::filesystem::remove_all(dir);
  }
  return all_ok ? 0 : 1;
}
