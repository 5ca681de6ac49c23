// bench_listener: throughput and latency of the webhook listener (SPEC §5).
//
// Starts adapters::start_listener on loopback (Vonage signature secret set, so every request
// carries an HS256 JWT over its body that the listener verifies) with a handler that answers at
// once, then runs C client threads, each on one kept-alive connection, sending signed Vonage
// events for D seconds; then the same with forged ones (a JWT signed with the wrong secret:
// 401). Prints a Markdown table: requests/s and p50/p99 latency per connection count. The floor
// it is compared with in the README is the same loop against a server that answers without
// verifying anything (--floor). Not part of the tests.
//
//   bench_listener [--seconds D] [--floor] [C ...]      (default C: 1 16 256, D: 3)

#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "scout/adapters/crypto.hpp"
#include "scout/adapters/listener.hpp"

namespace {

using Clock = std::chrono::steady_clock;
namespace ad = scout::adapters;

constexpr const char* k_secret = "qwertyuiopasdfghjklzxcvbnm123456";
constexpr const char* k_body =
    R"({"status":"answered","uuid":"aaaaaaaa-bbbb-cccc-dddd-0123456789ab","conversation_uuid":"CON-1"})";

std::string jwt(const std::string& body, const std::string& secret) {
  const auto iat = std::chrono::duration_cast<std::chrono::seconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  const std::string header = R"({"alg":"HS256","typ":"JWT"})";
  const std::string payload = R"({"iat":)" + std::to_string(iat) +
                              R"(,"jti":"c5ba8f24","iss":"Vonage","payload_hash":")" +
                              ad::sha256_hex(body) + R"("})";
  const std::string input = ad::base64url_encode(header) + "." + ad::base64url_encode(payload);
  return input + "." + ad::base64url_encode(ad::hmac_sha256(secret, input));
}

struct Result {
  double per_second = 0;
  double p50_ms = 0;
  double p99_ms = 0;
  long failures = 0;
};

Result hammer(int port, int connections, double seconds, const std::string& token, int expect) {
  std::atomic<bool> stop{false};
  std::vector<std::vector<double>> latencies(static_cast<std::size_t>(connections));
  std::atomic<long> failures{0};
  std::vector<std::thread> threads;
  for (int c = 0; c < connections; ++c) {
    threads.emplace_back([&, c] {
      httplib::Client cli{"127.0.0.1", port};
      cli.set_keep_alive(true);
      cli.set_tcp_nodelay(true);  // else its two writes meet the server's delayed ACK (40 ms)
      cli.set_read_timeout(std::chrono::seconds{10});
      const httplib::Headers headers{{"Authorization", "Bearer " + token}};
      auto& mine = latencies[static_cast<std::size_t>(c)];
      while (!stop) {
        const auto start = Clock::now();
        auto res = cli.Post("/webhooks/vonage/event?call=c1", headers, k_body, "application/json");
        const auto took = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
        if (!res || res->status != expect) {
          ++failures;
          continue;
        }
        mine.push_back(took);
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  for (auto& t : threads) t.join();
  std::vector<double> all;
  for (auto& l : latencies) all.insert(all.end(), l.begin(), l.end());
  std::sort(all.begin(), all.end());
  Result r;
  r.failures = failures;
  if (all.empty()) return r;
  r.per_second = static_cast<double>(all.size()) / seconds;
  r.p50_ms = all[all.size() / 2];
  r.p99_ms = all[std::min(all.size() - 1, all.size() * 99 / 100)];
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = 3;
  bool floor = false;
  std::vector<int> sizes;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--seconds" && i + 1 < argc) {
      seconds = std::atof(argv[++i]);
    } else if (arg == "--floor") {
      floor = true;
    } else {
      sizes.push_back(std::atoi(arg.c_str()));
    }
  }
  if (sizes.empty()) sizes = {1, 16, 256};

  int port = 0;
  std::unique_ptr<ad::WebhookListener> listener;
  httplib::Server floor_server;
  std::thread floor_thread;
  if (floor) {
    // The floor: cpp-httplib answering 200 at once, verifying nothing.
    floor_server.new_task_queue = [] { return new httplib::ThreadPool(300); };
    floor_server.Post("/webhooks/vonage/event",
                      [](const httplib::Request&, httplib::Response& res) { res.status = 200; });
    port = floor_server.bind_to_any_port("127.0.0.1");
    floor_thread = std::thread{[&] { floor_server.listen_after_bind(); }};
    while (!floor_server.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds{1});
  } else {
    scout::core::Listener config;
    config.bind_host = "127.0.0.1";
    config.bind_port = 0;
    config.public_url = "https://scout.example";
    ad::WebhookSecrets secrets;
    secrets.public_url = config.public_url;
    secrets.url_token = "0123456789abcdef0123456789abcdef";
    secrets.vonage_signature_secret = k_secret;
    auto started = ad::start_listener(config, secrets, [](const scout::core::Event&) {
      return std::optional<scout::core::KeypressReply>{};
    });
    if (!started) {
      std::fprintf(stderr, "cannot start the listener: %s\n", started.error().message.c_str());
      return 1;
    }
    listener = std::move(*started);
    port = listener->port();
  }

  std::printf("| connections | signed req/s | p50 | p99 | forged req/s | p50 | p99 |\n");
  std::printf("|---:|---:|---:|---:|---:|---:|---:|\n");
  for (const int c : sizes) {
    const auto good = hammer(port, c, seconds, jwt(k_body, k_secret), 200);
    const auto bad = hammer(port, c, seconds, jwt(k_body, "wrong-secret"), floor ? 200 : 401);
    std::printf("| %d | %.0f | %.2f ms | %.2f ms | %.0f | %.2f ms | %.2f ms |\n", c,
                good.per_second, good.p50_ms, good.p99_ms, bad.per_second, bad.p50_ms, bad.p99_ms);
    if (good.failures + bad.failures > 0) {
      std::printf("(%ld failed requests)\n", good.failures + bad.failures);
    }
    std::fflush(stdout);
  }
  if (listener) listener->stop();
  if (floor) {
    floor_server.stop();
    floor_thread.join();
  }
  return 0;
}
