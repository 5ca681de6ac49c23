#pragma once
// A small in-process HTTP server on loopback for tests (cpp-httplib): bind 127.0.0.1 on port 0,
// serve on a thread, record every request, and let a handler block until the test releases it.
//
//   scout::test::FakeNightscout ns;
//   ns.server().Get(R"(.*/api/v1/entries/sgv\.json)", [](const auto&, auto& res) {
//     res.set_content(R"([{"sgv":120,"date":1716580000000}])", "application/json");
//   });
//   ns.start();                                  // returns once the server accepts requests
//   fetch(ns.base_url() + "/api/v1/entries/sgv.json");
//   CHECK(ns.requests().size() == 1);
//
// Register routes before start(): cpp-httplib reads its route tables without a lock.

#include <httplib.h>
#include <sys/socket.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace scout::test {

// What the fake saw of one request.
struct RecordedRequest {
  std::string method;
  std::string path;  // without the query
  httplib::Params params;
  httplib::Headers headers;
};

class FakeNightscout {
 public:
  // Binds 127.0.0.1 on a free port. REQUIRE(ok()) before use.
  FakeNightscout() {
    m_server.set_socket_options([this](socket_t sock) {
      httplib::default_socket_options(sock);
      m_socket = sock;
    });
    m_port = m_server.bind_to_any_port("127.0.0.1");
    // cpp-httplib listens with a backlog of 5; a burst of hundreds of connects would overflow
    // it and wait for TCP retransmits. On Linux a second listen() only raises the backlog.
    if (m_port > 0 && m_socket >= 0) {
      ::listen(m_socket, k_listen_backlog);
    }
    m_server.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response&) {
      const std::lock_guard lock{m_mutex};
      m_requests.push_back(RecordedRequest{req.method, req.path, req.params, req.headers});
      return httplib::Server::HandlerResponse::Unhandled;
    });
  }

  // Releases held handlers, stops the server and joins its thread.
  ~FakeNightscout() {
    release();
    if (m_thread.joinable()) {
      m_server.stop();
      m_thread.join();
    }
  }

  FakeNightscout(const FakeNightscout&) = delete;
  FakeNightscout& operator=(const FakeNightscout&) = delete;

  // The server, to register routes on before start().
  httplib::Server& server() { return m_server; }

  // Starts serving on a thread; returns true once the server runs (waits at most ~2 s).
  bool start() {
    if (m_port <= 0) {
      return false;
    }
    m_thread = std::thread{[this] { m_server.listen_after_bind(); }};
    // cpp-httplib 0.11.4 has no wait_until_ready(): poll is_running(), with a bound.
    for (int i = 0; i < 1000 && !m_server.is_running(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds{2});
    }
    return m_server.is_running();
  }

  bool ok() const { return m_port > 0; }
  int port() const { return m_port; }
  // "http://127.0.0.1:PORT", no trailing '/'.
  std::string base_url() const { return "http://127.0.0.1:" + std::to_string(m_port); }

  // Every request received so far, in arrival order.
  std::vector<RecordedRequest> requests() const {
    const std::lock_guard lock{m_mutex};
    return m_requests;
  }

  // For a handler: blocks until release() or until `limit` passes (so a failing test cannot
  // hang the suite). Returns true when released.
  bool hold(std::chrono::milliseconds limit) {
    std::unique_lock lock{m_mutex};
    ++m_held;
    m_changed.notify_all();
    const bool released = m_changed.wait_for(lock, limit, [this] { return m_released; });
    --m_held;
    return released;
  }

  // Lets every current and future hold() return at once.
  void release() {
    {
      const std::lock_guard lock{m_mutex};
      m_released = true;
    }
    m_changed.notify_all();
  }

  // Waits until `count` handlers are inside hold() (at most `limit`); true when they are.
  bool wait_for_held(int count, std::chrono::milliseconds limit) {
    std::unique_lock lock{m_mutex};
    return m_changed.wait_for(lock, limit, [&] { return m_held >= count; });
  }

 private:
  static constexpr int k_listen_backlog = 4096;

  httplib::Server m_server;
  socket_t m_socket = -1;
  int m_port = -1;
  std::thread m_thread;
  mutable std::mutex m_mutex;
  std::condition_variable m_changed;
  std::vector<RecordedRequest> m_requests;
  int m_held = 0;
  bool m_released = false;
};

}  // namespace scout::test
