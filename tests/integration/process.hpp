#pragma once
// Running the real binaries from integration tests: a bounded one-shot run that captures
// stdout/stderr, and a background server whose first stdout line announces its address.
// POSIX only (fork/exec/poll). Every wait is bounded in time.

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace scout::test {

struct ProcessResult {
  int exit_code = -1;  // -1 when killed by a signal (e.g. on timeout)
  bool timed_out = false;
  std::string out;
  std::string err;
};

namespace detail {

inline pid_t spawn(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
                   int stdout_fd, int stderr_fd, int close_a, int close_b) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const pid_t pid = fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    for (const auto& [key, value] : env) setenv(key.c_str(), value.c_str(), 1);
    const int devnull = open("/dev/null", O_RDONLY);
    dup2(devnull, 0);
    dup2(stdout_fd, 1);
    dup2(stderr_fd, 2);
    close(close_a);
    close(close_b);
    execv(args[0], args.data());
    _exit(127);
  }
  return pid;
}

inline int decode_status(int status) {
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace detail

// Runs argv[0] (a path) with `argv`, extra environment `env`, stdin from /dev/null, and waits at
// most `timeout`; on timeout the process is killed and `timed_out` is set.
inline ProcessResult run_process(const std::vector<std::string>& argv,
                                 std::chrono::milliseconds timeout = std::chrono::seconds{60},
                                 const std::map<std::string, std::string>& env = {}) {
  int out_pipe[2];
  int err_pipe[2];
  if (pipe(out_pipe) != 0 || pipe(err_pipe) != 0) throw std::runtime_error("pipe failed");
  const pid_t pid = detail::spawn(argv, env, out_pipe[1], err_pipe[1], out_pipe[0], err_pipe[0]);
  close(out_pipe[1]);
  close(err_pipe[1]);
  ProcessResult result;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  int open_fds = 2;
  char buffer[65536];
  while (open_fds > 0) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      result.timed_out = true;
      kill(pid, SIGKILL);
      break;
    }
    if (poll(fds, 2, static_cast<int>(left.count())) < 0 && errno != EINTR) break;
    for (auto& fd : fds) {
      if (fd.fd < 0 || !(fd.revents & (POLLIN | POLLHUP | POLLERR))) continue;
      const ssize_t n = read(fd.fd, buffer, sizeof buffer);
      if (n <= 0) {
        close(fd.fd);
        fd.fd = -1;
        --open_fds;
      } else {
        (&fd == &fds[0] ? result.out : result.err).append(buffer, static_cast<std::size_t>(n));
      }
    }
  }
  for (auto& fd : fds) {
    if (fd.fd >= 0) close(fd.fd);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  result.exit_code = detail::decode_status(status);
  return result;
}

// A server process that prints "listening on http://HOST:PORT" as its first stdout line.
// The destructor stops it with SIGTERM (then SIGKILL after 5 s) and reaps it.
class BackgroundServer {
 public:
  explicit BackgroundServer(const std::vector<std::string>& argv,
                            std::chrono::milliseconds startup = std::chrono::seconds{20}) {
    int out_pipe[2];
    int err_pipe[2];
    if (pipe(out_pipe) != 0 || pipe(err_pipe) != 0) throw std::runtime_error("pipe failed");
    m_pid = detail::spawn(argv, {}, out_pipe[1], err_pipe[1], out_pipe[0], err_pipe[0]);
    close(out_pipe[1]);
    close(err_pipe[1]);
    m_out = out_pipe[0];
    m_err = err_pipe[0];
    const auto deadline = std::chrono::steady_clock::now() + startup;
    std::string line;
    char c = 0;
    while (std::chrono::steady_clock::now() < deadline) {
      pollfd fd{m_out, POLLIN, 0};
      if (poll(&fd, 1, 100) <= 0) continue;
      if (read(m_out, &c, 1) != 1) break;
      if (c == '\n') break;
      line += c;
    }
    const auto at = line.find("http://");
    if (at == std::string::npos) {
      stop();
      throw std::runtime_error("server did not announce its address; first line: '" + line + "'");
    }
    m_url = line.substr(at);
    while (!m_url.empty() && (m_url.back() == '\r' || m_url.back() == ' ')) m_url.pop_back();
  }
  BackgroundServer(const BackgroundServer&) = delete;
  BackgroundServer& operator=(const BackgroundServer&) = delete;
  ~BackgroundServer() { stop(); }

  // "http://127.0.0.1:PORT"
  const std::string& url() const { return m_url; }

 private:
  void stop() {
    if (m_pid <= 0) return;
    kill(m_pid, SIGTERM);
    int status = 0;
    for (int i = 0; i < 500; ++i) {
      if (waitpid(m_pid, &status, WNOHANG) == m_pid) {
        m_pid = -1;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds{10});
    }
    if (m_pid > 0) {
      kill(m_pid, SIGKILL);
      waitpid(m_pid, &status, 0);
      m_pid = -1;
    }
    if (m_out >= 0) close(m_out);
    if (m_err >= 0) close(m_err);
    m_out = m_err = -1;
  }

  pid_t m_pid = -1;
  int m_out = -1;
  int m_err = -1;
  std::string m_url;
};

}  // namespace scout::test
