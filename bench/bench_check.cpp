// bench_check: wall time of one `scout check` over N slow Nightscout sites.
//
// Starts an in-process Nightscout stand-in on loopback whose every answer takes --delay-ms
// (100 ms by default), writes a config with N patients (each at its own path prefix), runs the
// real `scout check --config FILE --format json`, and prints a Markdown table comparing the wall
// time with the one-after-another floor (N x delay). See bench/README.md. Not part of the tests.
//
//   bench_check [--scout PATH] [--delay-ms MS] [--runs R] [N ...]      (default N: 10 100 1000)

#include <fcntl.h>
#include <httplib.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
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

extern char** environ;

namespace {

using Clock = std::chrono::steady_clock;

// Threads beyond one per concurrent slow request, for the accept path and slack.
constexpr int k_spare_threads = 16;
// cpp-httplib listens with a backlog of 5; a burst of 1000 connects needs far more.
constexpr int k_listen_backlog = 4096;

struct Options {
  std::string scout = "./build/scout";
  int delay_ms = 100;
  int runs = 1;
  bool run_once = false;  // --run-once: `scout run --once`, a first tick then a steady one
  std::vector<int> sizes;
};

struct RunResult {
  double seconds = 0;
  double cpu_seconds = 0;  // user + system of the scout process
  long max_rss_kb = 0;
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

long long wall_now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// A slow Nightscout: every GET of .../api/v1/entries/sgv.json sleeps, then answers two fresh
// in-range readings.
class SlowNightscout {
 public:
  SlowNightscout(int threads, int delay_ms) : m_delay_ms{delay_ms} {
    m_server.new_task_queue = [threads] {
      return new httplib::ThreadPool(static_cast<std::size_t>(threads));
    };
    m_server.set_socket_options([this](socket_t sock) {
      httplib::default_socket_options(sock);
      m_socket = sock;
    });
    m_server.Get(R"(/p\d+/api/v1/entries/sgv\.json)", [this](const httplib::Request&,
                                                             httplib::Response& res) {
      std::this_thread::sleep_for(std::chrono::milliseconds{m_delay_ms});
      const long long now = wall_now_ms();
      const nlohmann::json body = nlohmann::json::array(
          {{{"type", "sgv"}, {"sgv", 120}, {"date", now - 30'000}, {"direction", "Flat"}},
           {{"type", "sgv"}, {"sgv", 118}, {"date", now - 330'000}, {"direction", "Flat"}}});
      res.set_content(body.dump(), "application/json");
      ++m_requests;
    });
    m_port = m_server.bind_to_any_port("127.0.0.1");
    if (m_port > 0 && m_socket >= 0) {
      ::listen(m_socket, k_listen_backlog);  // on Linux, only raises the backlog
    }
    m_thread = std::thread{[this] { m_server.listen_after_bind(); }};
    for (int i = 0; i < 1000 && !m_server.is_running(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds{2});
    }
  }
  ~SlowNightscout() {
    m_server.stop();
    m_thread.join();
  }
  SlowNightscout(const SlowNightscout&) = delete;
  SlowNightscout& operator=(const SlowNightscout&) = delete;

  bool running() const { return m_port > 0 && m_server.is_running(); }
  int port() const { return m_port; }
  long take_requests() { return m_requests.exchange(0); }

 private:
  int m_delay_ms;
  httplib::Server m_server;
  socket_t m_socket = -1;
  int m_port = -1;
  std::thread m_thread;
  std::atomic<long> m_requests{0};
};

std::string write_config(const std::filesystem::path& dir, int patients, int port) {
  const auto path = dir / ("scout-" + std::to_string(patients) + ".yaml");
  std::ofstream out{path};
  out << "# bench_check: " << patients << " patients, each at its own path prefix\n"
      << "units: mg/dL\n"
      << "poll: {interval: 60s, timeout: 10s}\n"
      << "providers: [{type: console}]\n"
      << "patients:\n";
  for (int i = 0; i < patients; ++i) {
    char name[32];
    std::snprintf(name, sizeof name, "p%04d", i);
    out << "  - name: " << name << "\n"
        << "    phone: \"+15555550100\"\n"
        << "    nightscout: {url: \"http://127.0.0.1:" << port << "/" << name << "\"}\n";
  }
  return path.string();
}

// Runs `scout check --config CONFIG --format json`, stdout to `out_path`, stderr to `err_path`.
RunResult run_check(const std::string& scout, const std::string& config,
                    const std::string& out_path, const std::string& err_path,
                    const std::string& state_path = "") {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, out_path.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, err_path.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  std::vector<std::string> args{scout, "check", "--config", config, "--format", "json"};
  if (!state_path.empty()) args = {scout, "run", "--once", "--config", config, "--state", state_path};
  std::vector<char*> argv;
  for (auto& arg : args) {
    argv.push_back(arg.data());
  }
  argv.push_back(nullptr);

  RunResult result;
  const auto started = Clock::now();
  pid_t pid = 0;
  const int spawned = posix_spawn(&pid, scout.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (spawned != 0) {
    std::cerr << "bench_check: cannot run " << scout << ": " << std::strerror(spawned) << "\n";
    return result;
  }
  int status = 0;
  rusage usage{};
  wait4(pid, &status, 0, &usage);
  result.seconds = std::chrono::duration<double>(Clock::now() - started).count();
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  result.cpu_seconds = static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
                       static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
  result.max_rss_kb = usage.ru_maxrss;
  if (!state_path.empty()) return result;  // run --once: no report to read

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
    } else if (arg == "--run-once") {
      options.run_once = true;
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

}  // namespace

int main(int argc, char** argv) {
  Options options;
  if (!parse_args(argc, argv, options)) {
    std::cerr << "usage: bench_check [--scout PATH] [--delay-ms MS] [--runs R] [N ...]\n";
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
  const int largest = *std::max_element(options.sizes.begin(), options.sizes.end());
  SlowNightscout server{largest + k_spare_threads, options.delay_ms};
  if (!server.running()) {
    std::cerr << "bench_check: could not start the loopback server\n";
    return 1;
  }

  if (options.run_once) {
    // `scout run --once` twice on one state file: the first tick (every patient new) and a
    // steady one (nothing changed), each with the process's CPU time and peak RSS.
    std::cout << "scout run --once over N Nightscout sites that each take " << options.delay_ms
              << " ms to answer (loopback, " << std::thread::hardware_concurrency() << " cores)\n\n"
              << "| N | first tick: wall | CPU | steady tick: wall | CPU | max RSS |\n"
              << "|---:|---:|---:|---:|---:|---:|\n";
    for (const int n : options.sizes) {
      const std::string config = write_config(dir, n, server.port());
      const std::string stem = (dir / ("run-" + std::to_string(n))).string();
      std::filesystem::remove(stem + ".state.json");
      const auto first = run_check(options.scout, config, stem + ".out", stem + ".err", stem + ".state.json");
      const auto steady = run_check(options.scout, config, stem + ".out", stem + ".err2", stem + ".state.json");
      char line[256];
      std::snprintf(line, sizeof line, "| %d | %.2f s | %.2f s | %.2f s | %.2f s | %ld MiB |\n", n,
                    first.seconds, first.cpu_seconds, steady.seconds, steady.cpu_seconds,
                    std::max(first.max_rss_kb, steady.max_rss_kb) / 1024);
      std::cout << line << std::flush;
      server.take_requests();
    }
    std::filesystem::remove_all(dir);
    return 0;
  }

  std::cout << "scout check over N Nightscout sites that each take " << options.delay_ms
            << " ms to answer (loopback, " << std::thread::hardware_concurrency() << " cores, "
            << options.runs << (options.runs == 1 ? " run" : " runs, median") << ")\n\n"
            << "| N | wall time | one-after-another floor (N x " << options.delay_ms
            << " ms) | speed-up | exit | patients with an error |\n"
            << "|---:|---:|---:|---:|---:|---:|\n";
  bool all_ok = true;
  for (const int n : options.sizes) {
    const std::string config = write_config(dir, n, server.port());
    std::vector<RunResult> runs;
    for (int r = 0; r < options.runs; ++r) {
      const std::string stem = (dir / ("check-" + std::to_string(n))).string();
      runs.push_back(run_check(options.scout, config, stem + ".json", stem + ".err"));
      runs.back().requests = server.take_requests();
    }
    std::sort(runs.begin(), runs.end(),
              [](const RunResult& a, const RunResult& b) { return a.seconds < b.seconds; });
    const RunResult& median = runs[runs.size() / 2];
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
