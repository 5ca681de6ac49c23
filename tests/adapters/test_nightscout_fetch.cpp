// fetch_all (adapters/nightscout.hpp) against in-process Nightscout fakes on loopback.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "scout/adapters/nightscout.hpp"
#include "support/fake_nightscout.hpp"

namespace {

using scout::adapters::fetch_all;
using scout::core::Entry;
using scout::core::ErrorKind;
using scout::core::NightscoutSite;
using scout::test::FakeNightscout;
using namespace std::chrono_literals;

constexpr auto k_entries_path = R"(/api/v1/entries/sgv\.json)";
constexpr auto k_two_entries =
    R"([{"_id":"a","type":"sgv","sgv":142,"date":1716580000000,"direction":"FortyFiveDown",)"
    R"("mills":1716580000000},{"type":"sgv","sgv":"147","date":1716579700000,"direction":"Flat"}])";

std::vector<Entry> two_entries() {
  using scout::core::Duration;
  using scout::core::TimePoint;
  return {Entry{TimePoint{Duration{1716580000000}}, 142, "FortyFiveDown"},
          Entry{TimePoint{Duration{1716579700000}}, 147, "Flat"}};
}

void answer_entries(const httplib::Request&, httplib::Response& res) {
  res.set_content(k_two_entries, "application/json");
}

// A loopback port that refuses connections: bound once, then closed.
int closed_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
  socklen_t size = sizeof address;
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &size) == 0);
  ::close(fd);
  return ntohs(address.sin_port);
}

}  // namespace

TEST_CASE("fetch_all reads a site's entries, sending the token in the query",
          "[nightscout][adapters]") {
  // Given a site that requires ?token=
  FakeNightscout ns;
  ns.server().Get(k_entries_path, [](const httplib::Request& req, httplib::Response& res) {
    if (req.get_param_value("token") != "scout-0123456789abcdef") {
      res.status = 401;
      return;
    }
    answer_entries(req, res);
  });
  REQUIRE(ns.start());
  // When scout fetches it with that token
  const auto results = fetch_all({NightscoutSite{ns.base_url(), "scout-0123456789abcdef", ""}}, 5s);
  // Then the entries come back, newest first
  REQUIRE(results.size() == 1);
  REQUIRE(results[0].has_value());
  CHECK(*results[0] == two_entries());
  // And exactly one request asked for sgv.json with the count, as JSON, from scout
  const auto requests = ns.requests();
  REQUIRE(requests.size() == 1);
  CHECK(requests[0].method == "GET");
  CHECK(requests[0].path == "/api/v1/entries/sgv.json");
  CHECK(requests[0].params.find("count")->second == "36");
  CHECK(requests[0].headers.find("Accept")->second == "application/json");
  CHECK_THAT(requests[0].headers.find("User-Agent")->second, Catch::StartsWith("scout"));
}

TEST_CASE("fetch_all sends api_secret as its SHA-1 in the api-secret header",
          "[nightscout][adapters]") {
  // Given a locked site that checks the api-secret header as Nightscout does
  // (sha1 hex, case-insensitive: nightscout/cgm-remote-monitor:lib/server/enclave.js isApiKey)
  FakeNightscout ns;
  ns.server().Get(k_entries_path, [](const httplib::Request& req, httplib::Response& res) {
    if (req.get_header_value("api-secret") != "06dd94d71c66e21c58cf49d84e5a8045461f28de") {
      res.status = 401;
      return;
    }
    answer_entries(req, res);
  });
  REQUIRE(ns.start());
  // When scout fetches it with the plain secret configured
  const auto results = fetch_all({NightscoutSite{ns.base_url(), "", "scout-test-secret"}}, 5s);
  // Then the site accepted the header and the entries come back
  REQUIRE(results.size() == 1);
  REQUIRE(results[0].has_value());
  CHECK(*results[0] == two_entries());
  // And the secret itself never went over the wire in the query
  const auto requests = ns.requests();
  REQUIRE(requests.size() == 1);
  CHECK(requests[0].params.count("secret") == 0);
  CHECK(requests[0].params.count("token") == 0);
}

TEST_CASE("fetch_all keeps the path prefix of the site URL", "[nightscout][adapters]") {
  // Given a site served under /alice (many sites behind one host)
  FakeNightscout ns;
  ns.server().Get(R"(/alice/api/v1/entries/sgv\.json)", answer_entries);
  REQUIRE(ns.start());
  // When scout fetches {base}/alice
  const auto results = fetch_all({NightscoutSite{ns.base_url() + "/alice", "", ""}}, 5s);
  // Then the request went to /alice/api/v1/entries/sgv.json and succeeded
  REQUIRE(results.size() == 1);
  REQUIRE(results[0].has_value());
  CHECK(*results[0] == two_entries());
  REQUIRE(ns.requests().size() == 1);
  CHECK(ns.requests()[0].path == "/alice/api/v1/entries/sgv.json");
}

TEST_CASE("fetch_all reports 401 as an auth error that does not show the token",
          "[nightscout][adapters]") {
  // Given a site that refuses the token with Nightscout's 401 body
  FakeNightscout ns;
  ns.server().Get(k_entries_path, [](const httplib::Request&, httplib::Response& res) {
    res.status = 401;
    res.set_content(R"({"status":401,"message":"Unauthorized","description":"Invalid/Missing"})",
                    "application/json");
  });
  REQUIRE(ns.start());
  // When scout fetches it
  const auto results = fetch_all({NightscoutSite{ns.base_url(), "wrong-0123456789abcdef", ""}}, 5s);
  // Then the error is auth, names the site and the status, and hides the token
  REQUIRE(results.size() == 1);
  REQUIRE_FALSE(results[0].has_value());
  CHECK(results[0].error().kind == ErrorKind::auth);
  CHECK(results[0].error().message ==
        "Nightscout at " + ns.base_url() +
            "/api/v1/entries/sgv.json?count=36&token=*** refused the credentials (HTTP 401): "
            "check token/api_secret");
}

TEST_CASE("fetch_all reports 403 as an auth error", "[nightscout][adapters]") {
  // Given a site that answers 403 (e.g. a token whose role cannot read entries)
  FakeNightscout ns;
  ns.server().Get(k_entries_path,
                  [](const httplib::Request&, httplib::Response& res) { res.status = 403; });
  REQUIRE(ns.start());
  // When scout fetches it
  const auto results = fetch_all({NightscoutSite{ns.base_url(), "", "scout-test-secret"}}, 5s);
  // Then the error is auth
  REQUIRE_FALSE(results.at(0).has_value());
  CHECK(results[0].error().kind == ErrorKind::auth);
}

TEST_CASE("fetch_all reports 500 as http_status with the code", "[nightscout][adapters]") {
  // Given a site with a server error
  FakeNightscout ns;
  ns.server().Get(k_entries_path, [](const httplib::Request&, httplib::Response& res) {
    res.status = 500;
    res.set_content(R"({"status":500,"message":"Mongo Error"})", "application/json");
  });
  REQUIRE(ns.start());
  // When scout fetches it
  const auto results = fetch_all({NightscoutSite{ns.base_url(), "", ""}}, 5s);
  // Then the error is http_status and says 500
  REQUIRE_FALSE(results.at(0).has_value());
  CHECK(results[0].error().kind == ErrorKind::http_status);
  CHECK(results[0].error().message ==
        "Nightscout at " + ns.base_url() + "/api/v1/entries/sgv.json?count=36 answered HTTP 500");
}

TEST_CASE("fetch_all does not follow a redirect and names its target without the query",
          "[nightscout][adapters]") {
  // Given a site that redirects elsewhere, carrying the token along
  FakeNightscout ns;
  ns.server().Get(k_entries_path, [](const httplib::Request&, httplib::Response& res) {
    res.set_redirect("https://elsewhere.example/api/v1/entries/sgv.json?token=tok-0123456789", 302);
  });
  REQUIRE(ns.start());
  // When scout fetches it
  const auto results = fetch_all({NightscoutSite{ns.base_url(), "tok-0123456789", ""}}, 5s);
  // Then the error is http_status naming the target, and no token appears
  REQUIRE_FALSE(results.at(0).has_value());
  CHECK(results[0].error().kind == ErrorKind::http_status);
  CHECK_THAT(results[0].error().message,
             Catch::Contains("HTTP 302 redirecting to https://elsewhere.example/api/v1/entries/"
                             "sgv.json:"));
  CHECK_THAT(results[0].error().message, !Catch::Contains("tok-0123456789"));
}

TEST_CASE("fetch_all reports an HTML page as not_json", "[nightscout][adapters]") {
  // Given a URL that serves a web page with status 200
  FakeNightscout ns;
  ns.server().Get(k_entries_path, [](const httplib::Request&, httplib::Response& res) {
    res.set_content("<!DOCTYPE html>\n<html><body>Welcome to nginx!</body></html>", "text/html");
  });
  REQUIRE(ns.start());
  // When scout fetches it
  const auto results = fetch_all({NightscoutSite{ns.base_url(), "", ""}}, 5s);
  // Then the error is not_json with the hint about the URL
  REQUIRE_FALSE(results.at(0).has_value());
  CHECK(results[0].error().kind == ErrorKind::not_json);
  CHECK(
      results[0].error().message ==
      "Nightscout at " + ns.base_url() +
          "/api/v1/entries/sgv.json?count=36 answered an HTML page, not JSON — is the URL right?");
}

TEST_CASE("fetch_all reports a truncated body as malformed_json", "[nightscout][adapters]") {
  // Given a site whose JSON is cut short
  FakeNightscout ns;
  ns.server().Get(k_entries_path, [](const httplib::Request&, httplib::Response& res) {
    res.set_content(R"([{"sgv":142,"date":1716580000000},{"sgv":14)", "application/json");
  });
  REQUIRE(ns.start());
  // When scout fetches it
  const auto results = fetch_all({NightscoutSite{ns.base_url(), "", ""}}, 5s);
  // Then the error is malformed_json
  REQUIRE_FALSE(results.at(0).has_value());
  CHECK(results[0].error().kind == ErrorKind::malformed_json);
}

TEST_CASE("fetch_all reports a refused connection as a network error", "[nightscout][adapters]") {
  // Given a loopback port where nothing listens
  const std::string url = "http://127.0.0.1:" + std::to_string(closed_port());
  // When scout fetches it
  const auto results = fetch_all({NightscoutSite{url, "", ""}}, 5s);
  // Then the error is network and names the site
  REQUIRE_FALSE(results.at(0).has_value());
  CHECK(results[0].error().kind == ErrorKind::network);
  CHECK_THAT(results[0].error().message, Catch::StartsWith("Nightscout at " + url + "/api/v1/"));
}

TEST_CASE("fetch_all times a hung site out without delaying the others", "[nightscout][adapters]") {
  // Given three sites that never answer (their handlers block until the test ends)
  // and one site that answers at once, all in one poll
  FakeNightscout hung;
  hung.server().Get(R"(/hung\d/api/v1/entries/sgv\.json)",
                    [&hung](const httplib::Request&, httplib::Response& res) {
                      hung.hold(30s);
                      res.status = 500;
                    });
  REQUIRE(hung.start());
  FakeNightscout fast;
  fast.server().Get(k_entries_path, answer_entries);
  REQUIRE(fast.start());
  const std::vector<NightscoutSite> sites{{hung.base_url() + "/hung1", "", ""},
                                          {fast.base_url(), "", ""},
                                          {hung.base_url() + "/hung2", "", ""},
                                          {hung.base_url() + "/hung3", "", ""}};
  const auto timeout = 1000ms;

  // When scout polls them all with a 1 s timeout
  const auto started = std::chrono::steady_clock::now();
  const auto results = fetch_all(sites, timeout);
  const auto elapsed = std::chrono::steady_clock::now() - started;
  hung.release();

  // Then the fast site's entries come back, in its place
  REQUIRE(results.size() == 4);
  REQUIRE(results[1].has_value());
  CHECK(*results[1] == two_entries());
  // And each hung site is a timeout
  for (const std::size_t i : {0U, 2U, 3U}) {
    REQUIRE_FALSE(results[i].has_value());
    CHECK(results[i].error().kind == ErrorKind::timeout);
    CHECK_THAT(results[i].error().message, Catch::Contains("did not answer within 1s"));
  }
  // And the poll took about one timeout, not three (the bound is loose for slow CI machines)
  CHECK(elapsed >= timeout - 50ms);
  CHECK(elapsed < 2500ms);
}

TEST_CASE("fetch_all returns one result per site, in the order of the sites",
          "[nightscout][adapters]") {
  // Given 300 sites behind one host, /site<i>, each answering a reading whose sgv is 40 + i
  FakeNightscout ns;
  ns.server().Get(R"(/site(\d+)/api/v1/entries/sgv\.json)", [](const httplib::Request& req,
                                                               httplib::Response& res) {
    const int i = std::stoi(req.matches[1].str());
    res.set_content(R"([{"sgv":)" + std::to_string(40 + i) + R"(,"date":1716580000000}])",
                    "application/json");
  });
  REQUIRE(ns.start());
  constexpr int k_sites = 300;
  std::vector<NightscoutSite> sites;
  for (int i = 0; i < k_sites; ++i) {
    sites.push_back(NightscoutSite{ns.base_url() + "/site" + std::to_string(i), "", ""});
  }
  // When scout polls them all at once
  const auto results = fetch_all(sites, 10s);
  // Then every site answered, and result i belongs to site i
  REQUIRE(results.size() == sites.size());
  int in_place = 0;
  for (int i = 0; i < k_sites; ++i) {
    const auto& result = results[static_cast<std::size_t>(i)];
    in_place += result.has_value() && result->size() == 1 && result->front().sgv == 40 + i;
  }
  CHECK(in_place == k_sites);
  CHECK(ns.requests().size() == sites.size());
}

TEST_CASE("fetch_all returns nothing for no sites", "[nightscout][adapters]") {
  // Given no sites
  // When scout polls
  const auto results = fetch_all({}, 1s);
  // Then there are no results
  CHECK(results.empty());
}
