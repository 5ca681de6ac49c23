// adapters::RecentEntries (what scout holds of each site between polls) and adapters::Poller
// (incremental requests, 304, kept-alive connections) against a fake that answers as
// Nightscout 15 does (lib/api/entries/index.js format_entries).

#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <ctime>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "scout/adapters/nightscout.hpp"
#include "support/fake_nightscout.hpp"

namespace {

using scout::adapters::EntriesRequest;
using scout::adapters::k_entries_count;
using scout::adapters::Poller;
using scout::adapters::RecentEntries;
using scout::core::Duration;
using scout::core::Entry;
using scout::core::ErrorKind;
using scout::core::NightscoutSite;
using scout::core::TimePoint;
using namespace std::chrono_literals;

const TimePoint k_now{Duration{1716580000000}};

Entry reading(Duration before_now, int sgv) { return Entry{k_now - before_now, sgv, "Flat"}; }

// `count` readings every 5 minutes, the newest `newest_age` old, newest first.
std::vector<Entry> every_five_minutes(int count, Duration newest_age = 1min, int sgv = 120) {
  std::vector<Entry> out;
  for (int i = 0; i < count; ++i) out.push_back(reading(newest_age + i * 5min, sgv + i));
  return out;
}

}  // namespace

TEST_CASE("RecentEntries asks in full first, then only for what is newer than it holds",
          "[nightscout][adapters]") {
  // Given a site scout has never read
  const std::vector<NightscoutSite> sites{{"https://alice.example.org", "", ""}};
  RecentEntries recent;
  // Then the first request is in full
  auto requests = recent.requests(sites, k_now);
  REQUIRE(requests.size() == 1);
  CHECK(requests[0].site == &sites[0]);
  CHECK_FALSE(requests[0].after.has_value());
  // When the full answer comes, it goes on unchanged
  const auto full = every_five_minutes(k_entries_count);
  const auto first = recent.fold(0, full);
  REQUIRE(first.has_value());
  CHECK(*first == full);
  // Then the next request asks only after the newest reading held
  requests = recent.requests(sites, k_now + 1min);
  REQUIRE(requests[0].after.has_value());
  CHECK(*requests[0].after == full.front().date);
  // When nothing is newer (an empty answer, or a 304), the answer is what a full request gives
  const auto none = recent.fold(0, std::vector<Entry>{});
  REQUIRE(none.has_value());
  CHECK(*none == full);
  // When one newer reading comes, it leads, and the window keeps k_entries_count readings
  recent.requests(sites, k_now + 5min);
  const Entry newer{k_now + 4min, 99, "SingleDown"};
  const auto merged = recent.fold(0, std::vector<Entry>{newer});
  REQUIRE(merged.has_value());
  REQUIRE(merged->size() == static_cast<std::size_t>(k_entries_count));
  CHECK(merged->front() == newer);
  CHECK((*merged)[1] == full[0]);
  CHECK(merged->back() == full[static_cast<std::size_t>(k_entries_count) - 2]);
}

TEST_CASE("RecentEntries takes a reading answered again from the newer answer",
          "[nightscout][adapters]") {
  // Given a held window
  const std::vector<NightscoutSite> sites{{"https://alice.example.org", "", ""}};
  RecentEntries recent;
  recent.requests(sites, k_now);
  const auto full = every_five_minutes(3);
  REQUIRE(recent.fold(0, full));
  // When a server that ignores find[date][$gt] answers the same dates again, one with a new value
  recent.requests(sites, k_now);
  auto again = full;
  again[1].sgv = 77;
  const auto merged = recent.fold(0, again);
  // Then each date is there once, with the newer answer's value
  REQUIRE(merged.has_value());
  REQUIRE(merged->size() == 3);
  CHECK((*merged)[1].sgv == 77);
}

TEST_CASE("RecentEntries does not anchor on a reading from the future", "[nightscout][adapters]") {
  // Given a window whose newest entry is two hours ahead (a phone with a wrong clock)
  const std::vector<NightscoutSite> sites{{"https://alice.example.org", "", ""}};
  RecentEntries recent;
  recent.requests(sites, k_now);
  std::vector<Entry> held = every_five_minutes(3);
  held.insert(held.begin(), Entry{k_now + 2h, 180, "Flat"});
  REQUIRE(recent.fold(0, held));
  // Then the next request asks after the newest reading that is not in the future, so real
  // readings that come after it are not hidden behind the wrong one
  const auto requests = recent.requests(sites, k_now);
  REQUIRE(requests[0].after.has_value());
  CHECK(*requests[0].after == held[1].date);
}

TEST_CASE("RecentEntries asks in full again after a failure, a changed site, and every cycle",
          "[nightscout][adapters]") {
  std::vector<NightscoutSite> sites{{"https://alice.example.org", "tok-0123456789", ""}};
  RecentEntries recent;
  recent.requests(sites, k_now);
  REQUIRE(recent.fold(0, every_five_minutes(5)));
  // When a poll fails, the error is returned as it is, and the next request is in full
  REQUIRE(recent.requests(sites, k_now)[0].after.has_value());
  const auto failed =
      recent.fold(0, scout::core::Result<std::vector<Entry>>{
                         scout::core::fail(ErrorKind::timeout, "did not answer")});
  REQUIRE_FALSE(failed.has_value());
  CHECK(failed.error().kind == ErrorKind::timeout);
  CHECK_FALSE(recent.requests(sites, k_now)[0].after.has_value());
  REQUIRE(recent.fold(0, every_five_minutes(5)));
  // When the token changes (a reloaded config), the next request is in full
  REQUIRE(recent.requests(sites, k_now)[0].after.has_value());
  REQUIRE(recent.fold(0, std::vector<Entry>{}));
  sites[0].token = "tok-new-0123456789";
  CHECK_FALSE(recent.requests(sites, k_now)[0].after.has_value());
  REQUIRE(recent.fold(0, every_five_minutes(5)));
  // And after k_full_every incremental polls (site 0 starts its cycle at once), one is in full
  int incremental = 0;
  for (unsigned i = 0; i < 2 * RecentEntries::k_full_every; ++i) {
    const auto request = recent.requests(sites, k_now);
    if (!request[0].after) break;
    ++incremental;
    REQUIRE(recent.fold(0, std::vector<Entry>{}));
  }
  CHECK(incremental == static_cast<int>(RecentEntries::k_full_every));
}

TEST_CASE("RecentEntries spreads the full requests of many sites over the cycle",
          "[nightscout][adapters]") {
  // Given as many sites as polls in a cycle, all read in full once
  std::vector<NightscoutSite> sites;
  for (unsigned i = 0; i < RecentEntries::k_full_every; ++i) {
    sites.push_back({"https://p" + std::to_string(i) + ".example.org", "", ""});
  }
  RecentEntries recent;
  recent.requests(sites, k_now);
  for (std::size_t i = 0; i < sites.size(); ++i) REQUIRE(recent.fold(i, every_five_minutes(3)));
  // Then, after the first poll (where every site has just been read in full), each poll of a
  // whole cycle asks exactly one site in full
  for (unsigned poll = 0; poll <= RecentEntries::k_full_every; ++poll) {
    const auto requests = recent.requests(sites, k_now);
    int full = 0;
    for (std::size_t i = 0; i < sites.size(); ++i) {
      full += requests[i].after ? 0 : 1;
      REQUIRE(recent.fold(i, requests[i].after ? std::vector<Entry>{} : every_five_minutes(3)));
    }
    if (poll > 0) CHECK(full == 1);
  }
}

namespace {

std::string http_date(long long ms) {
  const std::time_t seconds = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char text[64];
  std::strftime(text, sizeof text, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  return text;
}

long long parse_http_date(const std::string& text) {
  std::tm tm{};
  if (strptime(text.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm) == nullptr) return -1;
  return static_cast<long long>(timegm(&tm)) * 1000;
}

// A site holding `dates` (ms, newest first) that filters by find[date][$gt], sets Last-Modified
// to the newest date it answers, and answers 304 when If-Modified-Since is at or after it, as
// Nightscout 15's format_entries does. Records each request's client port.
struct NightscoutLike {
  std::mutex mutex;
  std::vector<long long> dates;
  std::vector<int> ports;
  void handle(const httplib::Request& req, httplib::Response& res) {
    const std::lock_guard lock{mutex};
    ports.push_back(req.remote_port);
    const long long after = req.has_param("find[date][$gt]")
                                ? std::atoll(req.get_param_value("find[date][$gt]").c_str())
                                : -1;
    std::string body = "[";
    long long newest = -1;
    for (const long long date : dates) {
      if (date <= after) continue;
      if (newest < 0) newest = date;
      if (body.size() > 1) body += ",";
      body += R"({"type":"sgv","sgv":120,"direction":"Flat","date":)" + std::to_string(date) + "}";
    }
    body += "]";
    if (newest >= 0) {
      res.set_header("Last-Modified", http_date(newest));
      const auto since = req.get_header_value("If-Modified-Since");
      if (!since.empty() && newest <= parse_http_date(since)) {
        res.status = 304;
        return;
      }
    }
    res.set_content(body, "application/json");
  }
};

}  // namespace

TEST_CASE("Poller asks only for what is newer, takes a 304 as nothing new, and keeps the "
          "connection alive",
          "[nightscout][adapters]") {
  // Given a site holding two readings, answering as Nightscout 15 does
  NightscoutLike site;
  site.dates = {1716580000500, 1716579700500};
  scout::test::FakeNightscout ns;
  ns.server().Get(R"(/api/v1/entries/sgv\.json)",
                  [&](const httplib::Request& req, httplib::Response& res) { site.handle(req, res); });
  REQUIRE(ns.start());
  const std::vector<NightscoutSite> sites{{ns.base_url(), "", ""}};
  Poller poller;
  const auto poll = [&](std::optional<TimePoint> after) {
    std::vector<scout::core::Result<std::vector<Entry>>> got;
    poller.fetch_each({EntriesRequest{&sites[0], after}}, 5s, [&](auto&& answers) {
      for (auto& [i, answer] : answers) got.push_back(std::move(answer));
    });
    REQUIRE(got.size() == 1);
    return got.front();
  };
  // When scout asks in full, it gets both
  const auto full = poll(std::nullopt);
  REQUIRE(full.has_value());
  CHECK(full->size() == 2);
  // When it asks after the newest it holds
  const TimePoint newest{Duration{1716580000500}};
  const auto nothing = poll(newest);
  // Then the request carried find[date][$gt] and If-Modified-Since rounded up to the second
  const auto requests = ns.requests();
  REQUIRE(requests.size() == 2);
  CHECK(requests[1].params.find("find[date][$gt]")->second == "1716580000500");
  const auto ims = requests[1].headers.find("If-Modified-Since");
  REQUIRE(ims != requests[1].headers.end());
  CHECK(ims->second == http_date(1716580001000));
  // And nothing newer is an empty answer, not an error
  REQUIRE(nothing.has_value());
  CHECK(nothing->empty());
  // When a new reading arrives, the next incremental request brings exactly it
  {
    const std::lock_guard lock{site.mutex};
    site.dates.insert(site.dates.begin(), 1716580300500);
  }
  const auto one = poll(newest);
  REQUIRE(one.has_value());
  REQUIRE(one->size() == 1);
  CHECK(one->front().date == TimePoint{Duration{1716580300500}});
  // And the three requests went over one kept-alive connection
  CHECK(std::set<int>(site.ports.begin(), site.ports.end()).size() == 1);
}

TEST_CASE("Poller answers 304 to a request in full as an error, not as nothing new",
          "[nightscout][adapters]") {
  // Given a server that answers 304 to everything (scout sent no If-Modified-Since)
  scout::test::FakeNightscout ns;
  ns.server().Get(R"(/api/v1/entries/sgv\.json)",
                  [](const httplib::Request&, httplib::Response& res) { res.status = 304; });
  REQUIRE(ns.start());
  const std::vector<NightscoutSite> sites{{ns.base_url(), "", ""}};
  Poller poller;
  std::vector<scout::core::Result<std::vector<Entry>>> got;
  poller.fetch_each({EntriesRequest{&sites[0], std::nullopt}}, 5s, [&](auto&& answers) {
    for (auto& [i, answer] : answers) got.push_back(std::move(answer));
  });
  // Then it is an http_status error naming the code
  REQUIRE(got.size() == 1);
  REQUIRE_FALSE(got[0].has_value());
  CHECK(got[0].error().kind == ErrorKind::http_status);
  CHECK(got[0].error().message.find("304") != std::string::npos);
}

TEST_CASE("RecentEntries reads a site in full while its newest reading is overdue",
          "[nightscout][adapters]") {
  // Given a site whose newest held reading is 9 minutes old
  const std::vector<NightscoutSite> sites{{"https://alice.example.org", "", ""}};
  RecentEntries recent;
  recent.requests(sites, k_now);
  REQUIRE(recent.fold(0, every_five_minutes(6, 9min)));
  // Then the next poll is incremental
  CHECK(recent.requests(sites, k_now)[0].after.has_value());
  REQUIRE(recent.fold(0, std::vector<Entry>{}));
  // When no newer reading came and the newest is now 11 minutes old
  // Then every poll asks in full (a backfill, or a server that does not filter by date)
  CHECK_FALSE(recent.requests(sites, k_now + 2min)[0].after.has_value());
  REQUIRE(recent.fold(0, every_five_minutes(6, 11min)));
  CHECK_FALSE(recent.requests(sites, k_now + 3min)[0].after.has_value());
}

TEST_CASE("Poller runs at most its limit of requests at once, a hung site holding one slot",
          "[nightscout][adapters]") {
  // Given one hung site and five slow ones (50 ms each), each on its own host name, and a poller
  // that runs at most two requests at once
  // (declared before the server, so they outlive the handler the hung request is still in)
  std::mutex mutex;
  int active = 0;
  int most_active = 0;
  scout::test::FakeNightscout ns;
  ns.server().Get(R"(/api/v1/entries/sgv\.json)", [&](const httplib::Request& req,
                                                       httplib::Response& res) {
    {
      const std::lock_guard lock{mutex};
      most_active = std::max(most_active, ++active);
    }
    if (req.get_header_value("Host").starts_with("hung.")) {
      ns.hold(30s);
    } else {
      std::this_thread::sleep_for(50ms);  // a slow server, not a wait for the test
    }
    {
      const std::lock_guard lock{mutex};
      --active;
    }
    res.set_content(R"([{"type":"sgv","sgv":120,"date":1716580000000}])", "application/json");
  });
  REQUIRE(ns.start());
  const std::string port = std::to_string(ns.port());
  std::vector<NightscoutSite> sites{{"http://hung.localhost:" + port, "", ""}};
  for (int i = 1; i <= 5; ++i) {
    sites.push_back({"http://p" + std::to_string(i) + ".localhost:" + port, "", ""});
  }
  std::vector<EntriesRequest> requests;
  for (const auto& site : sites) requests.push_back(EntriesRequest{&site, std::nullopt});
  Poller poller{2};
  // When it polls them with a 3 s timeout
  std::vector<std::pair<std::size_t, bool>> got;  // (site, answered) in arrival order
  poller.fetch_each(requests, 3s, [&](auto&& answers) {
    for (auto& [i, answer] : answers) got.emplace_back(i, answer.has_value());
  });
  ns.release();
  // Then every slow site answered, one after another in the slot the hung one left free, before
  // the hung one timed out, last
  REQUIRE(got.size() == 6);
  for (std::size_t k = 0; k < 5; ++k) {
    CHECK(got[k].first != 0);
    CHECK(got[k].second);
  }
  CHECK(got[5] == std::pair<std::size_t, bool>{0, false});
  // And never more than two requests were at the server at once
  CHECK(most_active == 2);
}

TEST_CASE("Poller gives a request started late only what is left of the poll's timeout",
          "[nightscout][adapters]") {
  // Given two hung sites and a poller that runs one request at a time
  scout::test::FakeNightscout ns;
  ns.server().Get(R"(/api/v1/entries/sgv\.json)",
                  [&](const httplib::Request&, httplib::Response& res) {
                    ns.hold(30s);
                    res.status = 500;
                  });
  REQUIRE(ns.start());
  const std::string port = std::to_string(ns.port());
  const std::vector<NightscoutSite> sites{{"http://a.localhost:" + port, "", ""},
                                          {"http://b.localhost:" + port, "", ""}};
  Poller poller{1};
  // When it polls both with a 800 ms timeout
  std::vector<scout::core::Result<std::vector<Entry>>> got;
  const auto started = std::chrono::steady_clock::now();
  poller.fetch_each({EntriesRequest{&sites[0], std::nullopt}, EntriesRequest{&sites[1], std::nullopt}},
                    800ms, [&](auto&& answers) {
                      for (auto& [i, answer] : answers) got.push_back(std::move(answer));
                    });
  const auto elapsed = std::chrono::steady_clock::now() - started;
  ns.release();
  // Then both are timeouts, after one timeout in all, not two (loose bound for slow machines)
  REQUIRE(got.size() == 2);
  for (const auto& answer : got) {
    REQUIRE_FALSE(answer.has_value());
    CHECK(answer.error().kind == ErrorKind::timeout);
  }
  CHECK(elapsed >= 750ms);
  CHECK(elapsed < 1500ms);
  // And the second was never started: no time was left for it
  CHECK(ns.requests().size() == 1);
}

TEST_CASE("Poller on several lanes answers every site once, on the calling thread, within its "
          "limit over all lanes",
          "[nightscout][adapters]") {
  // Given one hung site and 23 slow ones (20 ms each), each on its own host name (spread over the
  // lanes by host), each answering a reading of its own, on a server that closes each connection
  // (declared before the server, so they outlive the handler the hung request is still in)
  std::mutex mutex;
  int active = 0;
  int most_active = 0;
  scout::test::FakeNightscout ns;
  ns.server().set_keep_alive_max_count(1);
  ns.server().Get(R"(/api/v1/entries/sgv\.json)", [&](const httplib::Request& req,
                                                       httplib::Response& res) {
    {
      const std::lock_guard lock{mutex};
      most_active = std::max(most_active, ++active);
    }
    const std::string host = req.get_header_value("Host");
    if (host.starts_with("hung.")) {
      ns.hold(30s);
    } else {
      std::this_thread::sleep_for(20ms);  // a slow server, not a wait for the test
    }
    {
      const std::lock_guard lock{mutex};
      --active;
    }
    // s<i>.localhost answers sgv 100 + i.
    const int site = host.starts_with("s") ? std::atoi(host.c_str() + 1) : 0;
    res.set_content(R"([{"type":"sgv","sgv":)" + std::to_string(100 + site) +
                        R"(,"date":1716580000000}])",
                    "application/json");
  });
  REQUIRE(ns.start());
  const std::string port = std::to_string(ns.port());
  std::vector<NightscoutSite> sites{{"http://hung.localhost:" + port, "", ""}};
  for (int i = 1; i < 24; ++i) {
    sites.push_back({"http://s" + std::to_string(i) + ".localhost:" + port, "", ""});
  }
  std::vector<EntriesRequest> requests;
  for (const auto& site : sites) requests.push_back(EntriesRequest{&site, std::nullopt});
  // And a poller on four lanes that runs at most three requests at once in all
  Poller poller{3, 4};
  // When it polls them with a 1.5 s timeout
  const auto caller = std::this_thread::get_id();
  bool all_on_caller = true;
  std::vector<std::pair<std::size_t, scout::core::Result<std::vector<Entry>>>> got;
  poller.fetch_each(requests, 1500ms, [&](auto&& answers) {
    all_on_caller = all_on_caller && std::this_thread::get_id() == caller;
    for (auto& answer : answers) got.push_back(std::move(answer));
  });
  ns.release();
  // Then every site answered exactly once, each with its own reading, the hung one last, as a
  // timeout
  REQUIRE(got.size() == sites.size());
  std::set<std::size_t> seen;
  for (std::size_t k = 0; k + 1 < got.size(); ++k) {
    const auto& [i, answer] = got[k];
    CHECK(seen.insert(i).second);
    CHECK(i != 0);
    REQUIRE(answer.has_value());
    REQUIRE(answer->size() == 1);
    CHECK(answer->front().sgv == 100 + static_cast<int>(i));
  }
  CHECK(got.back().first == 0);
  REQUIRE_FALSE(got.back().second.has_value());
  CHECK(got.back().second.error().kind == ErrorKind::timeout);
  // And only on the calling thread, never more than three requests at the server at once
  CHECK(all_on_caller);
  CHECK(most_active <= 3);
  CHECK(most_active >= 2);
}

TEST_CASE("Poller that keeps no connections opens a new one for each poll",
          "[nightscout][adapters]") {
  // Given a site, and a poller for one-shot polls (scout check)
  NightscoutLike site;
  site.dates = {1716580000500};
  scout::test::FakeNightscout ns;
  ns.server().Get(R"(/api/v1/entries/sgv\.json)",
                  [&](const httplib::Request& req, httplib::Response& res) { site.handle(req, res); });
  REQUIRE(ns.start());
  const std::vector<NightscoutSite> sites{{ns.base_url(), "", ""}};
  Poller poller;
  poller.keep_connections(false);
  // When it polls the site twice
  for (int poll = 0; poll < 2; ++poll) {
    std::size_t answered = 0;
    poller.fetch_each({EntriesRequest{&sites[0], std::nullopt}}, 5s, [&](auto&& answers) {
      for (auto& [i, answer] : answers) answered += answer.has_value() ? 1 : 0;
    });
    REQUIRE(answered == 1);
  }
  // Then each poll came over a connection of its own (the first was closed once answered)
  const std::lock_guard lock{site.mutex};
  REQUIRE(site.ports.size() == 2);
  CHECK(site.ports[0] != site.ports[1]);
}
