// nightscout-replay: serves a Nightscout entries file through the v1 API, replaying it through a
// moving cursor in trace time. See README.md beside this file.

#include <httplib.h>
#include <signal.h>
#include <sys/socket.h>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>

#include "replay.hpp"

namespace {

using nlohmann::json;
using replay::Millis;

// sysexits.h
constexpr int k_exit_usage = 64;
constexpr int k_exit_data = 65;
constexpr int k_exit_no_input = 66;

// Nightscout ignores an API_SECRET shorter than this (lib/server/enclave.js setApiKey).
constexpr std::size_t k_min_api_secret = 12;
// Longest a "hang" fault holds a request when the server is not stopped.
constexpr auto k_hang_limit = std::chrono::hours{1};
// Listen backlog: cpp-httplib's is 5, too small for a burst of a thousand connects (the
// benchmark); the kernel caps it at net.core.somaxconn.
constexpr int k_listen_backlog = 4096;

enum class Fault { none, status_500, html, hang, truncated, status_401 };

struct Options {
  std::string file;
  std::string bind = "127.0.0.1";
  int port = 0;
  std::string start = "+1h";
  double speed = 1.0;
  int delay_ms = 0;
  int threads = 8;
  Fault fault = Fault::none;
  bool sgv_as_string = false;
  std::vector<std::string> tokens;
  std::string api_secret;
  // With --token/--api-secret: still readable by anyone (AUTH_DEFAULT_ROLES=readable), as a
  // public Nightscout is: a wrong token reads entries, only verifyauth tells.
  bool public_site = false;
  bool verbose = false;
};

// Lets handlers wait (delay, hang) and still end at once when the server stops.
class Stopping {
 public:
  // Waits up to `limit`; returns true when the server is stopping.
  template <typename Duration>
  bool wait_for(Duration limit) {
    std::unique_lock lock{m_mutex};
    return m_cv.wait_for(lock, limit, [this] { return m_stopping; });
  }
  void stop() {
    {
      const std::lock_guard lock{m_mutex};
      m_stopping = true;
    }
    m_cv.notify_all();
  }
  bool stopping() {
    const std::lock_guard lock{m_mutex};
    return m_stopping;
  }

 private:
  std::mutex m_mutex;
  std::condition_variable m_cv;
  bool m_stopping = false;
};

// The moving cursor: trace time = start + speed x (real time elapsed since the server started).
class Cursor {
 public:
  Cursor(Millis start, double speed)
      : m_start{start}, m_speed{speed}, m_started{std::chrono::steady_clock::now()} {}
  Millis now() const {
    const auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - m_started);
    return m_start + std::llround(m_speed * static_cast<double>(elapsed.count()));
  }

 private:
  Millis m_start;
  double m_speed;
  std::chrono::steady_clock::time_point m_started;
};

Millis wall_now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

void send_json_status(httplib::Response& res, int status, const std::string& message,
                      const std::string& extra_key = "", const std::string& extra_value = "") {
  // Nightscout's sendJSONStatus shape (lib/middleware/send-json-status.js).
  json body{{"status", status}, {"message", message}};
  if (!extra_key.empty()) {
    body[extra_key] = extra_value;
  }
  res.status = status;
  res.set_content(body.dump(), "application/json; charset=utf-8");
}

void send_unauthorized(httplib::Response& res) {
  // protocols.md §1.5: exactly this body.
  res.status = 401;
  res.set_content(R"({"status":401,"message":"Unauthorized","description":"Invalid/Missing"})",
                  "application/json; charset=utf-8");
}

// What a path asks for, after the prefix.
struct Route {
  enum class Kind { entries, current, status, verifyauth } kind = Kind::entries;
  std::optional<std::string> spec_type;  // /entries/<spec>
};

// Parses the part after "/api/v1/"; nothing for an unknown route.
std::optional<Route> route_of(std::string rest) {
  const auto strip = [&](std::string_view ext) {
    if (rest.size() > ext.size() && rest.compare(rest.size() - ext.size(), ext.size(), ext) == 0) {
      rest.erase(rest.size() - ext.size());
    }
  };
  strip(".json");
  if (rest == "entries") {
    return Route{Route::Kind::entries, std::nullopt};
  }
  if (rest == "entries/current") {
    return Route{Route::Kind::current, std::nullopt};
  }
  if (rest == "status") {
    return Route{Route::Kind::status, std::nullopt};
  }
  if (rest == "verifyauth") {
    return Route{Route::Kind::verifyauth, std::nullopt};
  }
  constexpr std::string_view k_entries_slash = "entries/";
  if (rest.rfind(k_entries_slash, 0) == 0) {
    const std::string spec = rest.substr(k_entries_slash.size());
    if (!spec.empty() && spec.find_first_of("/.") == std::string::npos) {
      return Route{Route::Kind::entries, spec};
    }
  }
  return std::nullopt;
}

class ReplayServer {
 public:
  ReplayServer(const Options& options, replay::Trace trace, Millis start)
      : m_options{options},
        m_trace{std::move(trace)},
        m_cursor{start, options.speed},
        m_auth{options.tokens, options.api_secret} {}

  httplib::Server& server() { return m_server; }
  Stopping& stopping() { return m_stopping; }

  void install() {
    const int threads = m_options.threads;
    m_server.new_task_queue = [threads] {
      return new httplib::ThreadPool(static_cast<std::size_t>(threads));
    };
    m_server.set_socket_options([this](int sock) {
      httplib::default_socket_options(sock);
      m_listen_socket = sock;
    });
    m_server.Get(".*", [this](const httplib::Request& req, httplib::Response& res) {
      handle_get(req, res);
    });
    const auto wrong_method = [](const httplib::Request& req, httplib::Response& res) {
      const auto api = req.path.find("/api/v1/");
      if (api != std::string::npos && route_of(req.path.substr(api + 8))) {
        res.set_header("Allow", "GET, HEAD");
        send_json_status(res, 405, "Method Not Allowed", "type", "internal");
      } else {
        send_json_status(res, 404, "Not found", "type", "internal");
      }
    };
    m_server.Post(".*", wrong_method);
    m_server.Put(".*", wrong_method);
    m_server.Patch(".*", wrong_method);
    m_server.Delete(".*", wrong_method);
    m_server.Options(".*", wrong_method);
    if (m_options.verbose) {
      m_server.set_logger([](const httplib::Request& req, const httplib::Response& res) {
        std::string line = req.method + " " + req.path;
        for (const auto& [key, value] : req.params) {
          const bool secret = key == "token" || key == "secret";
          line += " " + key + "=" + (secret ? std::string{"***"} : value);
        }
        line += " -> " + std::to_string(res.status) + "\n";
        std::fputs(line.c_str(), stderr);
      });
    }
  }

  // Raises the listen backlog after cpp-httplib's listen(fd, 5): on Linux a second listen()
  // on a listening socket only updates its backlog.
  void widen_backlog() const {
    if (m_listen_socket >= 0) {
      ::listen(m_listen_socket, k_listen_backlog);
    }
  }

 private:
  void handle_get(const httplib::Request& req, httplib::Response& res) {
    if (m_options.delay_ms > 0 &&
        m_stopping.wait_for(std::chrono::milliseconds{m_options.delay_ms})) {
      send_json_status(res, 503, "Shutting down");
      return;
    }
    const auto api = req.path.find("/api/v1/");
    if (api == std::string::npos) {
      send_json_status(res, 404, "Not found", "type", "internal");
      return;
    }
    const auto route = route_of(req.path.substr(api + 8));
    if (!route) {
      send_json_status(res, 404, "Not found", "type", "internal");
      return;
    }

    // A prefix /at/<moment>[/...] freezes the cursor for this request.
    Millis cursor = m_cursor.now();
    const std::string prefix = req.path.substr(0, api);
    constexpr std::string_view k_at = "/at/";
    if (prefix.rfind(k_at, 0) == 0) {
      const std::string rest = prefix.substr(k_at.size());
      const std::string moment = rest.substr(0, rest.find('/'));
      const auto at = replay::parse_moment(moment, m_trace.first());
      if (!at) {
        send_json_status(
            res, 400,
            "Bad /at/ moment '" + moment + "': use ms since the epoch, an ISO time, or +<span>");
        return;
      }
      cursor = *at;
    }

    const replay::Credentials credentials{req.get_param_value("token"),
                                          req.get_param_value("secret"),
                                          req.get_header_value("api-secret")};
    if (route->kind == Route::Kind::verifyauth) {
      serve_verifyauth(res, credentials);
      return;
    }
    if (!m_options.public_site && !replay::authorized(m_auth, credentials)) {
      send_unauthorized(res);
      return;
    }

    switch (m_options.fault) {
      case Fault::none:
      case Fault::truncated:
        break;
      case Fault::status_500:
        send_json_status(res, 500, "Mongo Error", "type", "internal");
        return;
      case Fault::status_401:
        send_unauthorized(res);
        return;
      case Fault::html:
        res.status = 200;
        res.set_content(
            "<!DOCTYPE html>\n<html><head><title>Nightscout</title></head>"
            "<body>nightscout-replay --fault html</body></html>\n",
            "text/html; charset=utf-8");
        return;
      case Fault::hang:
        m_stopping.wait_for(k_hang_limit);
        send_json_status(res, 503, "Shutting down");
        return;
    }

    const Millis now_ms = wall_now_ms();
    switch (route->kind) {
      case Route::Kind::status:
        serve_status(res, cursor, now_ms);
        break;
      case Route::Kind::current:
      case Route::Kind::entries:
        serve_entries(req, res, *route, cursor, now_ms);
        break;
      case Route::Kind::verifyauth:
        break;
    }
    if (m_options.fault == Fault::truncated && res.status == 200) {
      res.body.resize(res.body.size() / 2);
    }
  }

  void serve_entries(const httplib::Request& req, httplib::Response& res, const Route& route,
                     Millis cursor, Millis now_ms) const {
    replay::EntriesQuery query;
    if (route.kind == Route::Kind::current) {
      // entries.list({count: 1}): the query string is not used (lib/api/entries/index.js).
      query.count = 1;
    } else {
      auto parsed = replay::parse_entries_query(req.params);
      if (parsed.error) {
        send_json_status(res, 500, *parsed.error, "type", "internal");
        return;
      }
      query = std::move(parsed.query);
      if (route.spec_type) {
        query.type = route.spec_type;  // the path spec overrides find[type]
      }
    }
    const json entries = replay::select_entries(m_trace, cursor, now_ms, query,
                                                replay::Rendering{m_options.sgv_as_string});
    if (!entries.empty()) {
      const Millis newest = entries.front().at("date").get<Millis>();
      res.set_header("Last-Modified", replay::format_http_date(newest));
      const auto since = replay::parse_http_date(req.get_header_value("If-Modified-Since"));
      if (since && newest <= *since) {
        // lib/api/entries/index.js format_entries
        send_json_status(res, 304, "Not modified", "type", "internal");
        return;
      }
    }
    res.status = 200;
    res.set_content(entries.dump(), "application/json; charset=utf-8");
  }

  // GET /api/v1/verifyauth as Nightscout 15 answers it: always 200, the verdict nested in
  // sendJSONStatus's "message" (lib/api/verifyauth.js, lib/middleware/send-json-status.js).
  void serve_verifyauth(httplib::Response& res, const replay::Credentials& credentials) const {
    const bool presented = !credentials.token_param.empty() || !credentials.secret_param.empty() ||
                           !credentials.api_secret_header.empty();
    const bool valid = m_auth.locked() && presented && replay::authorized(m_auth, credentials);
    const bool admin = valid && !m_auth.api_secret.empty() &&
                       replay::authorized(replay::AuthConfig{{}, m_auth.api_secret}, credentials);
    const bool readable = valid || !m_auth.locked() || m_options.public_site;
    const json verdict{{"canRead", readable},
                       {"canWrite", admin},
                       {"isAdmin", admin},
                       {"message", valid ? "OK" : "UNAUTHORIZED"},
                       {"rolefound", valid && !admin ? "FOUND" : "NOTFOUND"},
                       {"permissions", valid ? "ROLE" : "DEFAULT"}};
    res.status = 200;
    res.set_content(json{{"status", 200}, {"message", verdict}}.dump(), "application/json");
  }

  void serve_status(httplib::Response& res, Millis cursor, Millis now_ms) const {
    // Keys as in lib/api/status.js and lib/settings.js defaults (protocols.md §1.6).
    const json body{
        {"status", "ok"},
        {"name", "nightscout-replay"},
        {"version", "0.1.0-replay"},
        {"serverTime", replay::format_iso(now_ms)},
        {"serverTimeEpoch", now_ms},
        {"apiEnabled", true},
        {"careportalEnabled", false},
        {"boluscalcEnabled", false},
        {"settings",
         {{"units", "mg/dl"},
          {"timeFormat", 12},
          {"customTitle", "Nightscout replay"},
          {"alarmTimeagoWarnMins", 15},
          {"alarmTimeagoUrgentMins", 30},
          {"authDefaultRoles", m_auth.locked() ? "denied" : "readable"},
          {"deNormalizeDates", false},
          {"thresholds",
           {{"bgHigh", 260}, {"bgTargetTop", 180}, {"bgTargetBottom", 80}, {"bgLow", 55}}},
          {"enable", {"careportal",   "basal",
                      "dbsize",       "rawbg",
                      "iob",          "maker",
                      "cob",          "bwp",
                      "cage",         "iage",
                      "sage",         "boluscalc",
                      "pushover",     "treatmentnotify",
                      "loop",         "pump",
                      "profile",      "food",
                      "openaps",      "bage",
                      "alexa",        "override",
                      "cors",         "bgnow",
                      "delta",        "direction",
                      "timeago",      "devicestatus",
                      "upbat",        "errorcodes",
                      "simplealarms", "ar2"}}}},
        {"extendedSettings", json::object()},
        {"authorized", nullptr},
        {"runtimeState", "loaded"},
        // Not in Nightscout: where the replay stands, for humans and tests.
        {"replay",
         {{"cursor", cursor},
          {"cursorString", replay::format_iso(cursor)},
          {"traceFirst", m_trace.first()},
          {"traceLast", m_trace.last()},
          {"speed", m_options.speed}}}};
    res.status = 200;
    res.set_content(body.dump(), "application/json; charset=utf-8");
  }

  const Options& m_options;
  replay::Trace m_trace;
  Cursor m_cursor;
  replay::AuthConfig m_auth;
  httplib::Server m_server;
  Stopping m_stopping;
  std::atomic<int> m_listen_socket{-1};
};

std::optional<std::string> read_file(const std::string& path) {
  std::ifstream in{path, std::ios::binary};
  if (!in) {
    return std::nullopt;
  }
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  CLI::App app{
      "nightscout-replay: serve a Nightscout entries file through the v1 API, replayed "
      "so that the cursor's moment in the trace looks like now"};
  app.add_option("file", options.file, "Nightscout entries JSON file (an array)")->required();
  app.add_option("--bind", options.bind, "address to listen on")->capture_default_str();
  app.add_option("--port", options.port, "port; 0 picks a free one")
      ->check(CLI::Range(0, 65535))
      ->capture_default_str();
  app.add_option("--start", options.start,
                 "trace moment of the cursor at start: ms since epoch, ISO time, or +SPAN "
                 "after the first reading (e.g. +90m)")
      ->capture_default_str();
  app.add_option("--speed", options.speed, "cursor speed in x real time; 0 freezes it")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--delay-ms", options.delay_ms, "answer every request after N ms")
      ->check(CLI::Range(0, 600'000))
      ->capture_default_str();
  app.add_option("--threads", options.threads, "worker threads (concurrent requests)")
      ->check(CLI::Range(1, 20'000))
      ->capture_default_str();
  std::string fault = "none";
  app.add_option("--fault", fault, "answer every API request with a fault")
      ->check(CLI::IsMember({"none", "500", "html", "hang", "truncated", "401"}))
      ->capture_default_str();
  app.add_flag("--sgv-as-string", options.sgv_as_string, "send sgv as a string (\"120\")");
  app.add_option("--token", options.tokens, "lock the site; accept this access token (repeatable)");
  app.add_option("--api-secret", options.api_secret,
                 "lock the site; accept sha1/sha512 hex of this API_SECRET");
  app.add_flag("--public", options.public_site,
               "with --token/--api-secret: readable by anyone all the same "
               "(AUTH_DEFAULT_ROLES=readable); only /api/v1/verifyauth tells a wrong token");
  app.add_flag("-v,--verbose", options.verbose, "log one line per request to stderr");
  CLI11_PARSE(app, argc, argv);

  if (fault == "500") {
    options.fault = Fault::status_500;
  } else if (fault == "html") {
    options.fault = Fault::html;
  } else if (fault == "hang") {
    options.fault = Fault::hang;
  } else if (fault == "truncated") {
    options.fault = Fault::truncated;
  } else if (fault == "401") {
    options.fault = Fault::status_401;
  }
  if (!options.api_secret.empty() && options.api_secret.size() < k_min_api_secret) {
    std::cerr << "nightscout-replay: --api-secret must be at least " << k_min_api_secret
              << " characters (Nightscout ignores shorter ones)\n";
    return k_exit_usage;
  }

  const auto text = read_file(options.file);
  if (!text) {
    std::cerr << "nightscout-replay: cannot read " << options.file << "\n";
    return k_exit_no_input;
  }
  std::optional<replay::Trace> trace;
  try {
    trace = replay::Trace::from_json(*text);
  } catch (const std::exception& e) {
    std::cerr << "nightscout-replay: " << options.file << ": " << e.what() << "\n";
    return k_exit_data;
  }
  const auto start = replay::parse_moment(options.start, trace->first());
  if (!start) {
    std::cerr << "nightscout-replay: --start '" << options.start
              << "' is not ms since the epoch, an ISO time, or +SPAN (e.g. +90m)\n";
    return k_exit_usage;
  }

  // Every thread started from here on inherits this mask; one thread takes the signals.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  const std::size_t entry_count = trace->entries().size();
  const std::size_t dropped = trace->dropped();
  const Millis first = trace->first();
  const Millis last = trace->last();
  ReplayServer replay_server{options, std::move(*trace), *start};
  replay_server.install();
  httplib::Server& server = replay_server.server();
  const int port = options.port == 0
                       ? server.bind_to_any_port(options.bind)
                       : (server.bind_to_port(options.bind, options.port) ? options.port : -1);
  if (port <= 0) {
    std::cerr << "nightscout-replay: cannot listen on " << options.bind << ":" << options.port
              << "\n";
    return k_exit_usage;
  }
  replay_server.widen_backlog();

  const std::string host =
      options.bind.find(':') != std::string::npos ? "[" + options.bind + "]" : options.bind;
  std::cout << "listening on http://" << host << ":" << port << std::endl;  // flushes
  std::cerr << "nightscout-replay: " << options.file << ": " << entry_count << " entries ("
            << dropped << " without a date dropped), " << replay::format_iso(first) << " .. "
            << replay::format_iso(last) << "; cursor starts at " << replay::format_iso(*start)
            << " (" << *start << "), speed " << options.speed << "x"
            << (replay::AuthConfig{options.tokens, options.api_secret}.locked() ? ", locked"
                                                                                : ", readable")
            << (options.fault != Fault::none ? ", fault " + fault : std::string{}) << "\n";

  std::thread signal_thread{[&] {
    int signal_number = 0;
    sigwait(&signals, &signal_number);
    replay_server.stopping().stop();  // first: lets delayed and hung handlers return
    server.stop();
  }};
  server.listen_after_bind();
  if (!replay_server.stopping().stopping()) {
    // The server ended on its own: wake the signal thread so it can be joined.
    pthread_kill(signal_thread.native_handle(), SIGTERM);
  }
  signal_thread.join();
  std::cerr << "nightscout-replay: stopped\n";
  return 0;
}
