#pragma once
// A slow Nightscout stand-in for the benchmarks: an event loop (Boost.Asio, one thread), so that
// ten thousand concurrent slow requests cost the load generator a timer each, not a thread each,
// and the two cores are left to scout.
//
// Every GET .../api/v1/entries/sgv.json waits `delay_ms`, then answers as Nightscout 15 does
// (lib/api/entries/index.js format_entries): the patient's readings newest first, `count` of
// them (default 10), filtered by find[date][$gt|$gte|$lt|$lte], a Last-Modified header with the
// newest returned date, and 304 {"status":304,...} when If-Modified-Since is at or after it.
// Which patient: the number in the Host ("p0042.localhost") or in the path ("/p0042/api/...").
// Each patient's sensor reads every 5 minutes at its own phase, 100-139 mg/dL, Flat: in range,
// fresh, so a steady tick raises nothing. Connections are kept alive (HTTP/1.1) until the client
// closes them or they sit idle `idle_s` (as nginx's keepalive_timeout, 75 s by default).
#include <boost/asio.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <ctime>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace bench {

namespace asio = boost::asio;

inline long long wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

inline constexpr long long k_cadence_ms = 5 * 60 * 1000;

// The newest reading date of patient `index` at `now_ms`: a 5-minute grid at the patient's phase.
inline long long newest_reading(int index, long long now_ms) {
  const long long phase = (static_cast<long long>(index) * 7'919) % k_cadence_ms;
  return ((now_ms - phase) / k_cadence_ms) * k_cadence_ms + phase;
}

inline std::string http_date(long long ms) {
  const std::time_t seconds = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char text[64];
  std::strftime(text, sizeof text, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  return text;
}

inline std::optional<long long> parse_http_date(const std::string& text) {
  std::tm tm{};
  const char* end = strptime(text.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm);
  if (end == nullptr) return std::nullopt;
  return static_cast<long long>(timegm(&tm)) * 1000;
}

inline std::string percent_decoded(std::string_view text) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%' && i + 2 < text.size()) {
      out += static_cast<char>(std::strtol(std::string(text.substr(i + 1, 2)).c_str(), nullptr, 16));
      i += 2;
    } else {
      out += text[i];
    }
  }
  return out;
}

struct Counters {
  std::atomic<long> requests{0};
  std::atomic<long> not_modified{0};
  std::atomic<long> connections{0};
  std::atomic<long long> body_bytes{0};
};

class SlowNightscout {
 public:
  SlowNightscout(int delay_ms, int idle_s = 75)
      : delay_ms_(delay_ms), idle_s_(idle_s), acceptor_(io_) {
    const asio::ip::tcp::endpoint at{asio::ip::make_address("127.0.0.1"), 0};
    acceptor_.open(at.protocol());
    acceptor_.set_option(asio::socket_base::reuse_address(true));
    acceptor_.bind(at);
    acceptor_.listen(4096);
    port_ = acceptor_.local_endpoint().port();
    accept();
    thread_ = std::thread{[this] { io_.run(); }};
  }
  ~SlowNightscout() {
    io_.stop();
    thread_.join();
  }
  SlowNightscout(const SlowNightscout&) = delete;
  SlowNightscout& operator=(const SlowNightscout&) = delete;

  int port() const { return port_; }
  Counters& counters() { return counters_; }

 private:
  struct Connection : std::enable_shared_from_this<Connection> {
    Connection(SlowNightscout& owner, asio::ip::tcp::socket accepted)
        : server(owner), socket(std::move(accepted)), timer(owner.io_) {}
    SlowNightscout& server;
    asio::ip::tcp::socket socket;
    asio::steady_timer timer;
    std::string in;
    std::string out;

    void read() {
      auto self = shared_from_this();
      timer.expires_after(std::chrono::seconds{server.idle_s_});
      timer.async_wait([self](const boost::system::error_code& ec) {
        if (!ec) self->socket.close();
      });
      asio::async_read_until(socket, asio::dynamic_buffer(in), "\r\n\r\n",
                             [self](const boost::system::error_code& ec, std::size_t n) {
                               self->timer.cancel();
                               if (ec) return;
                               std::string head = self->in.substr(0, n);
                               self->in.erase(0, n);
                               self->handle(head);
                             });
    }

    static std::string header(const std::string& head, std::string_view name) {
      std::size_t at = 0;
      while ((at = head.find("\r\n", at)) != std::string::npos) {
        at += 2;
        if (head.size() - at < name.size() + 1) break;
        bool same = true;
        for (std::size_t i = 0; i < name.size() && same; ++i) {
          same = std::tolower(static_cast<unsigned char>(head[at + i])) ==
                 std::tolower(static_cast<unsigned char>(name[i]));
        }
        if (same && head[at + name.size()] == ':') {
          const auto end = head.find("\r\n", at);
          std::string value = head.substr(at + name.size() + 1, end - at - name.size() - 1);
          while (!value.empty() && value.front() == ' ') value.erase(0, 1);
          return value;
        }
      }
      return {};
    }

    static int patient_of(std::string_view text) {
      const auto p = text.find('p');
      if (p == std::string_view::npos) return -1;
      int value = 0;
      std::size_t i = p + 1;
      if (i >= text.size() || !std::isdigit(static_cast<unsigned char>(text[i]))) return -1;
      for (; i < text.size() && std::isdigit(static_cast<unsigned char>(text[i])); ++i) {
        value = value * 10 + (text[i] - '0');
      }
      return value;
    }

    void handle(const std::string& head) {
      const auto line_end = head.find("\r\n");
      const std::string line = head.substr(0, line_end);
      const auto sp1 = line.find(' ');
      const auto sp2 = line.rfind(' ');
      const std::string target = sp1 == std::string::npos ? "" : line.substr(sp1 + 1, sp2 - sp1 - 1);
      const bool keep_alive = line.ends_with("HTTP/1.1") &&
                              header(head, "Connection").find("close") == std::string::npos;
      const auto query_at = target.find('?');
      const std::string path = target.substr(0, query_at);
      int patient = patient_of(header(head, "Host"));
      if (path.starts_with("/p")) patient = patient_of(path);
      if (!line.starts_with("GET ") || !path.ends_with("/api/v1/entries/sgv.json") || patient < 0) {
        respond(404, "{\"status\":404}", "", keep_alive);
        return;
      }
      int count = 10;
      long long gt = -1, gte = -1, lt = -1, lte = -1;
      if (query_at != std::string::npos) {
        std::string_view query{target};
        query.remove_prefix(query_at + 1);
        while (!query.empty()) {
          const auto amp = query.find('&');
          const std::string pair = percent_decoded(query.substr(0, amp));
          query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
          const auto eq = pair.find('=');
          if (eq == std::string::npos) continue;
          const std::string key = pair.substr(0, eq);
          const long long value = std::atoll(pair.c_str() + eq + 1);
          if (key == "count") count = static_cast<int>(value);
          if (key == "find[date][$gt]") gt = value;
          if (key == "find[date][$gte]") gte = value;
          if (key == "find[date][$lt]") lt = value;
          if (key == "find[date][$lte]") lte = value;
        }
      }
      const long long newest = newest_reading(patient, wall_ms());
      std::string body = "[";
      long long first = -1;
      int n = 0;
      for (long long date = newest; n < count && date > newest - 4 * 24 * 3'600'000LL;
           date -= k_cadence_ms) {
        if ((gt >= 0 && date <= gt) || (gte >= 0 && date < gte)) break;
        if ((lt >= 0 && date >= lt) || (lte >= 0 && date > lte)) continue;
        if (first < 0) first = date;
        const int sgv = 100 + static_cast<int>((date / k_cadence_ms + patient) % 40);
        if (n++ > 0) body += ',';
        body += "{\"_id\":\"" + std::to_string(patient) + "-" + std::to_string(date) +
                "\",\"type\":\"sgv\",\"sgv\":" + std::to_string(sgv) +
                ",\"date\":" + std::to_string(date) + ",\"direction\":\"Flat\"}";
      }
      body += "]";
      std::string last_modified;
      if (first >= 0) {
        last_modified = http_date(first);
        const auto since = parse_http_date(header(head, "If-Modified-Since"));
        if (since && first <= *since) {
          ++server.counters_.not_modified;
          respond(304, "{\"status\":304,\"message\":\"Not modified\",\"type\":\"internal\"}",
                  last_modified, keep_alive);
          return;
        }
      }
      respond(200, body, last_modified, keep_alive);
    }

    void respond(int status, std::string body, const std::string& last_modified, bool keep_alive) {
      ++server.counters_.requests;
      server.counters_.body_bytes += static_cast<long long>(body.size());
      out = "HTTP/1.1 " + std::to_string(status) +
            (status == 200 ? " OK" : status == 304 ? " Not Modified" : " Not Found") +
            "\r\nContent-Type: application/json; charset=utf-8\r\n";
      if (!last_modified.empty()) out += "Last-Modified: " + last_modified + "\r\n";
      if (!keep_alive) out += "Connection: close\r\n";
      // A 304 has no body on the wire (RFC 9110 §15.4.5), whatever Express was handed.
      if (status == 304) body.clear();
      out += "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
      auto self = shared_from_this();
      timer.expires_after(std::chrono::milliseconds{server.delay_ms_});
      timer.async_wait([self, keep_alive](const boost::system::error_code& ec) {
        if (ec) return;
        asio::async_write(self->socket, asio::buffer(self->out),
                          [self, keep_alive](const boost::system::error_code& wec, std::size_t) {
                            if (wec) return;
                            if (keep_alive) {
                              self->read();
                            } else {
                              boost::system::error_code ignored;
                              self->socket.shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
                            }
                          });
      });
    }
  };

  void accept() {
    acceptor_.async_accept([this](const boost::system::error_code& ec, asio::ip::tcp::socket s) {
      if (!ec) {
        ++counters_.connections;
        s.set_option(asio::ip::tcp::no_delay(true));
        std::make_shared<Connection>(*this, std::move(s))->read();
      }
      accept();
    });
  }

  int delay_ms_;
  int idle_s_;
  asio::io_context io_;
  asio::ip::tcp::acceptor acceptor_;
  int port_ = 0;
  Counters counters_;
  std::thread thread_;
};

}  // namespace bench
