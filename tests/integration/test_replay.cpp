// tools/nightscout-replay, the Nightscout stand-in used by the other integration tests, the demo
// and the benchmark: it must check and answer what the real Nightscout checks and answers
// (protocols.md §1 and §5.1), or tests passing against it prove little.
//
// Each test starts its own replay of examples/demo-trace.json (synthetic) on 127.0.0.1, port 0,
// with the cursor frozen (`--speed 0`), and talks to it with cpp-httplib.

#include <catch2/catch.hpp>

#include <httplib.h>
#include <openssl/evp.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <memory>

#include "integration/support.hpp"

using namespace scout::test;
using nlohmann::json;

namespace {

constexpr std::int64_t k_minute_ms = 60'000;
constexpr std::int64_t k_hour_ms = 60 * k_minute_ms;
constexpr std::int64_t k_day_ms = 24 * k_hour_ms;
// Slack for "now" on the server against the client's bracket around one request.
constexpr std::int64_t k_clock_slack_ms = 20;

// protocols.md §1.5 (constructed vector).
const std::string k_secret = "scout-test-secret";
const std::string k_secret_sha1 = "06dd94d71c66e21c58cf49d84e5a8045461f28de";
// An access token shaped like Nightscout's `<abbrev>-<16 hex>` (lib/authorization/storage.js).
const std::string k_token = "scoutreader-0123456789abcdef";

const std::string k_unauthorized_body =
    R"({"status":401,"message":"Unauthorized","description":"Invalid/Missing"})";

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// "2024-01-15T22:00:12.000Z", written out here rather than taken from the replay's code.
std::string iso_of(std::int64_t ms) {
  namespace chr = std::chrono;
  const chr::sys_time<chr::milliseconds> at{chr::milliseconds{ms}};
  const auto day = chr::floor<chr::days>(at);
  const chr::year_month_day ymd{day};
  const chr::hh_mm_ss time{at - day};
  char text[40];
  std::snprintf(text, sizeof text, "%04d-%02u-%02uT%02d:%02d:%02d.%03dZ",
                static_cast<int>(ymd.year()), static_cast<unsigned>(ymd.month()),
                static_cast<unsigned>(ymd.day()), static_cast<int>(time.hours().count()),
                static_cast<int>(time.minutes().count()), static_cast<int>(time.seconds().count()),
                static_cast<int>(time.subseconds().count()));
  return text;
}

// "Tue, 16 Jan 2024 07:00:12 GMT" (RFC 7231 IMF-fixdate; milliseconds dropped).
std::string http_date_of(std::int64_t ms) {
  namespace chr = std::chrono;
  static constexpr std::array<const char*, 7> k_weekdays{"Sun", "Mon", "Tue", "Wed",
                                                         "Thu", "Fri", "Sat"};
  static constexpr std::array<const char*, 12> k_months{"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                        "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  const chr::sys_time<chr::milliseconds> at{chr::milliseconds{ms}};
  const auto day = chr::floor<chr::days>(at);
  const chr::year_month_day ymd{day};
  const chr::hh_mm_ss time{chr::floor<chr::seconds>(at - day)};
  char text[48];
  std::snprintf(text, sizeof text, "%s, %02u %s %04d %02d:%02d:%02d GMT",
                k_weekdays[chr::weekday{day}.c_encoding()], static_cast<unsigned>(ymd.day()),
                k_months[static_cast<unsigned>(ymd.month()) - 1], static_cast<int>(ymd.year()),
                static_cast<int>(time.hours().count()), static_cast<int>(time.minutes().count()),
                static_cast<int>(time.seconds().count()));
  return text;
}

std::string hex_digest(const std::string& text, const EVP_MD* md) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int size = 0;
  if (EVP_Digest(text.data(), text.size(), digest.data(), &size, md, nullptr) != 1) {
    throw std::runtime_error("EVP_Digest failed");
  }
  std::string out;
  char pair[3];
  for (unsigned int i = 0; i < size; ++i) {
    std::snprintf(pair, sizeof pair, "%02x", digest[i]);
    out += pair;
  }
  return out;
}

std::string upper(std::string text) {
  for (auto& c : text) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return text;
}

// One replay of the demo trace, frozen (`--speed 0`), plus a client with bounded timeouts.
class Replay {
 public:
  explicit Replay(const std::vector<std::string>& extra = {})
      : m_server{argv_of(extra), std::chrono::seconds{10}}, m_client{m_server.url()} {
    m_client.set_connection_timeout(std::chrono::seconds{2});
    m_client.set_read_timeout(std::chrono::seconds{2});
    m_client.set_write_timeout(std::chrono::seconds{2});
  }

  // GET `path` (with its query string); fails the test when no answer comes.
  httplib::Result get(const std::string& path, const httplib::Headers& headers = {}) {
    auto result = m_client.Get(path.c_str(), headers);
    INFO("GET " << path << ": " << httplib::to_string(result.error()));
    REQUIRE(result);
    return result;
  }

  httplib::Client& client() { return m_client; }

 private:
  static std::vector<std::string> argv_of(const std::vector<std::string>& extra) {
    std::vector<std::string> argv = {k_replay, k_demo_trace, "--speed", "0"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return argv;
  }

  BackgroundServer m_server;
  httplib::Client m_client;
};

// The body of a 200 answer, parsed; fails the test otherwise.
json json_200(const httplib::Result& result) {
  INFO("status " << result->status << ", body " << result->body);
  REQUIRE(result->status == 200);
  REQUIRE(result->get_header_value("Content-Type").rfind("application/json", 0) == 0);
  const json doc = json::parse(result->body, nullptr, /*allow_exceptions=*/false);
  REQUIRE(!doc.is_discarded());
  return doc;
}

// The index (oldest first) of the newest trace entry dated at or before `moment`.
std::size_t newest_at(const std::vector<TraceEntry>& trace, std::int64_t moment) {
  std::size_t index = 0;
  while (index + 1 < trace.size() && trace[index + 1].date <= moment) ++index;
  REQUIRE(trace[index].date <= moment);
  return index;
}

std::int64_t date_of(const json& entry) { return entry.at("date").get<std::int64_t>(); }

int sgv_of(const json& entry) { return entry.at("sgv").get<int>(); }

const std::string k_sgv_path = "/api/v1/entries/sgv.json";

}  // namespace

// ---- entries and status -------------------------------------------------------------------

TEST_CASE("The replay serves entries newest first, ten unless `count` says otherwise",
          "[integration][replay]") {
  // Given the demo trace frozen at +1h (the default start): 13 readings, +0m .. +60m
  const auto trace = read_trace(k_demo_trace);
  const std::size_t newest = newest_at(trace, trace.front().date + k_hour_ms);
  REQUIRE(newest == 12);
  Replay replay;

  // When entries are asked for without `count`
  const json by_default = json_200(replay.get("/api/v1/entries.json"));
  // Then the ten newest come, newest first, in the trace's order
  REQUIRE(by_default.size() == 10);
  for (std::size_t i = 0; i < by_default.size(); ++i) {
    CHECK(sgv_of(by_default[i]) == trace[newest - i].sgv);
    if (i > 0) CHECK(date_of(by_default[i - 1]) - date_of(by_default[i]) == 5 * k_minute_ms);
  }

  // And `count` limits them, parsed like parseInt; 0 means no limit (Mongo limit(0))
  CHECK(json_200(replay.get("/api/v1/entries.json?count=3")).size() == 3);
  CHECK(json_200(replay.get("/api/v1/entries.json?count=4abc")).size() == 4);
  CHECK(json_200(replay.get("/api/v1/entries.json?count=12")).size() == 12);
  CHECK(json_200(replay.get("/api/v1/entries.json?count=0")).size() == newest + 1);
  CHECK(json_200(replay.get("/api/v1/entries.json?count=1000")).size() == newest + 1);
}

TEST_CASE("The replay answers the three entries routes scout may use", "[integration][replay]") {
  // Given the demo trace frozen at +1h
  const auto trace = read_trace(k_demo_trace);
  const std::size_t newest = newest_at(trace, trace.front().date + k_hour_ms);
  Replay replay;

  // When /entries.json, /entries/sgv.json and /entries/current.json are asked for
  const json all = json_200(replay.get("/api/v1/entries.json?count=5"));
  const json sgv = json_200(replay.get("/api/v1/entries/sgv.json?count=5"));
  const json sgv_bare = json_200(replay.get("/api/v1/entries/sgv?count=5"));
  const json current = json_200(replay.get("/api/v1/entries/current.json?count=5"));

  // Then all answer with the newest readings; current with exactly one, whatever `count` says
  REQUIRE(all.size() == 5);
  REQUIRE(sgv.size() == 5);
  REQUIRE(sgv_bare.size() == 5);
  REQUIRE(current.size() == 1);
  for (std::size_t i = 0; i < 5; ++i) {
    CHECK(all[i].at("_id") == sgv[i].at("_id"));
    CHECK(sgv_bare[i].at("_id") == sgv[i].at("_id"));
    CHECK(sgv[i].at("type") == "sgv");
  }
  CHECK(current[0].at("_id") == all[0].at("_id"));
  CHECK(sgv_of(current[0]) == trace[newest].sgv);

  // And the entry carries the fields of a stored Nightscout entry (protocols.md §1.3, §5.1)
  const json& entry = current[0];
  CHECK(entry.at("_id").get<std::string>().size() == 24);
  CHECK(entry.at("direction") == trace[newest].direction);
  CHECK(entry.at("utcOffset") == 0);
  CHECK(entry.at("sysTime") == entry.at("dateString"));

  // And the path's type overrides find[type]
  CHECK(json_200(replay.get("/api/v1/entries/mbg.json?find%5Btype%5D=sgv")).empty());
}

TEST_CASE("The replay's status.json reports ok, mg/dl units, the thresholds and the server time",
          "[integration][replay]") {
  // Given a replay
  Replay replay;

  // When status.json is asked for
  const std::int64_t before = now_ms();
  const json status = json_200(replay.get("/api/v1/status.json"));
  const std::int64_t after = now_ms();

  // Then it has Nightscout's keys and default settings (protocols.md §1.6)
  CHECK(status.at("status") == "ok");
  CHECK(status.at("settings").at("units") == "mg/dl");
  const json& thresholds = status.at("settings").at("thresholds");
  CHECK(thresholds.at("bgHigh") == 260);
  CHECK(thresholds.at("bgTargetTop") == 180);
  CHECK(thresholds.at("bgTargetBottom") == 80);
  CHECK(thresholds.at("bgLow") == 55);
  CHECK(status.at("settings").at("enable").is_array());
  CHECK(status.contains("version"));
  // And serverTimeEpoch is the real time of the answer, serverTime the same as ISO
  const std::int64_t server_time = status.at("serverTimeEpoch").get<std::int64_t>();
  CHECK(server_time >= before - k_clock_slack_ms);
  CHECK(server_time <= after + k_clock_slack_ms);
  CHECK(status.at("serverTime") == iso_of(server_time));
  // And the bare /status route answers too
  CHECK(json_200(replay.get("/api/v1/status")).at("status") == "ok");
}

// ---- replay semantics ---------------------------------------------------------------------

TEST_CASE("At /at/<trace ms> the newest entry is the reading at or before that moment, as old "
          "as it was then",
          "[integration][replay]") {
  const auto trace = read_trace(k_demo_trace);
  Replay replay;

  // Given moments between two readings and exactly on one (the bound is inclusive), and one
  // 35 minutes into the sensor gap (+190m; the last reading before it is at +155m)
  const std::int64_t first = trace.front().date;
  const std::vector<std::int64_t> moments = {trace[20].date + 123'456, trace[21].date,
                                             first + 190 * k_minute_ms};
  for (const std::int64_t moment : moments) {
    const std::size_t expected = newest_at(trace, moment);
    const std::int64_t age = moment - trace[expected].date;
    INFO("moment " << moment << ", expected reading " << trace[expected].date << ", age " << age);

    // When the entries are asked for at that moment
    const std::int64_t before = now_ms();
    const json entries =
        json_200(replay.get("/at/" + std::to_string(moment) + k_sgv_path + "?count=3"));
    const std::int64_t after = now_ms();

    // Then the newest is that reading, dated so that its age now is its age at the moment
    REQUIRE(entries.size() == 3);
    CHECK(sgv_of(entries[0]) == trace[expected].sgv);
    CHECK(entries[0].at("direction") == trace[expected].direction);
    const std::int64_t date = date_of(entries[0]);
    CHECK(date + age >= before - k_clock_slack_ms);
    CHECK(date + age <= after + k_clock_slack_ms);
    // And the gaps between readings are kept, and dateString/sysTime say the same as date
    CHECK(date - date_of(entries[1]) == trace[expected].date - trace[expected - 1].date);
    for (const json& entry : entries) {
      CHECK(entry.at("dateString") == iso_of(date_of(entry)));
      CHECK(entry.at("sysTime") == iso_of(date_of(entry)));
    }
  }
  CHECK(newest_at(trace, moments[2]) == newest_at(trace, first + 155 * k_minute_ms));
}

TEST_CASE("An /at/+90m moment is 90 minutes after the trace's first reading",
          "[integration][replay]") {
  // Given the trace's first reading and the reading 90 minutes later
  const auto trace = read_trace(k_demo_trace);
  const std::int64_t moment = trace.front().date + 90 * k_minute_ms;
  const std::size_t expected = newest_at(trace, moment);
  Replay replay;

  // When the current entry is asked for at +90m, at +1h30m and at the same moment in ms
  const json relative = json_200(replay.get("/at/+90m/api/v1/entries/current.json"));
  const json hours = json_200(replay.get("/at/+1h30m/api/v1/entries/current.json"));
  const json absolute =
      json_200(replay.get("/at/" + std::to_string(moment) + "/api/v1/entries/current.json"));

  // Then all three serve the same reading, 0 minutes old
  REQUIRE(relative.size() == 1);
  REQUIRE(hours.size() == 1);
  REQUIRE(absolute.size() == 1);
  CHECK(relative[0].at("_id") == absolute[0].at("_id"));
  CHECK(hours[0].at("_id") == absolute[0].at("_id"));
  CHECK(sgv_of(relative[0]) == trace[expected].sgv);
  CHECK(std::llabs(now_ms() - (date_of(relative[0]) + moment - trace[expected].date)) < 1000);
}

TEST_CASE("An unreadable /at/ moment is answered with 400", "[integration][replay]") {
  // Given a replay
  Replay replay;
  // When the moment is not ms, ISO or +SPAN (minutes before hours)
  const auto result = replay.get("/at/+30m2h" + k_sgv_path);
  // Then the answer is 400
  CHECK(result->status == 400);
}

TEST_CASE("Anything before /api/v1 is accepted as a site prefix, also after /at/<moment>",
          "[integration][replay]") {
  // Given a replay
  Replay replay;
  const json plain = json_200(replay.get(k_sgv_path + "?count=4"));
  const json at = json_200(replay.get("/at/+90m30s" + k_sgv_path + "?count=4"));
  REQUIRE(plain.size() == 4);
  REQUIRE(at.size() == 4);

  // When the same requests carry /alice and /bob/site prefixes
  const json alice = json_200(replay.get("/alice" + k_sgv_path + "?count=4"));
  const json bob = json_200(replay.get("/bob/site/api/v1/entries.json?count=4"));
  const json at_alice = json_200(replay.get("/at/+90m30s/alice" + k_sgv_path + "?count=4"));

  // Then they serve the same entries as without the prefix
  REQUIRE(alice.size() == 4);
  REQUIRE(bob.size() == 4);
  REQUIRE(at_alice.size() == 4);
  for (std::size_t i = 0; i < 4; ++i) {
    CHECK(alice[i].at("_id") == plain[i].at("_id"));
    CHECK(bob[i].at("_id") == plain[i].at("_id"));
    CHECK(at_alice[i].at("_id") == at[i].at("_id"));
  }
  CHECK(plain[0].at("_id") != at[0].at("_id"));
  // And the status route takes a prefix too
  CHECK(json_200(replay.get("/alice/api/v1/status.json")).at("status") == "ok");
}

// ---- queries ------------------------------------------------------------------------------

TEST_CASE("find[date][$gte] filters on the dates the client sees, not the trace's",
          "[integration][replay]") {
  // Given the demo trace at +2h: the reading at +2h is 0 minutes old, +1h45m is 15 minutes old
  const auto trace = read_trace(k_demo_trace);
  const std::int64_t moment = trace.front().date + 2 * k_hour_ms;
  const std::size_t newest = newest_at(trace, moment);
  REQUIRE(trace[newest].date == moment);
  Replay replay;
  const std::string at = "/at/" + std::to_string(moment);

  // When entries are asked for since 17.5 minutes ago in client time (between two readings)
  const std::int64_t since = now_ms() - 17 * k_minute_ms - 30'000;
  const json entries = json_200(replay.get(at + k_sgv_path + "?count=0&find%5Bdate%5D%5B%24gte%5D=" +
                                           std::to_string(since)));

  // Then exactly the readings of the last 15 minutes come (+2h, +1h55m, +1h50m, +1h45m)
  REQUIRE(entries.size() == 4);
  for (std::size_t i = 0; i < entries.size(); ++i) {
    CHECK(sgv_of(entries[i]) == trace[newest - i].sgv);
    CHECK(date_of(entries[i]) >= since);
  }

  // And an ISO bound means the same, $gt/$lt/$lte bound the other ends
  const json iso = json_200(replay.get(at + k_sgv_path + "?count=0&find%5Bdate%5D%5B%24gte%5D=" +
                                       iso_of(since)));
  CHECK(iso.size() == 4);
  const std::int64_t until = now_ms() - 7 * k_minute_ms - 30'000;
  const json window = json_200(replay.get(
      at + k_sgv_path + "?count=0&find%5Bdate%5D%5B%24gt%5D=" + std::to_string(since) +
      "&find%5Bdate%5D%5B%24lt%5D=" + std::to_string(until)));
  REQUIRE(window.size() == 2);  // +1h50m and +1h45m
  CHECK(sgv_of(window[0]) == trace[newest - 2].sgv);
  CHECK(sgv_of(window[1]) == trace[newest - 3].sgv);

  // And an unparseable date is Nightscout's 500 (lib/server/query.js)
  const auto bad = replay.get(k_sgv_path + "?find%5Bdate%5D%5B%24gte%5D=yesterday");
  CHECK(bad->status == 500);
  CHECK(bad->body.find("Cannot parse yesterday as a valid ISO-8601 date") != std::string::npos);
}

TEST_CASE("Without a date filter only the last four days are served", "[integration][replay]") {
  // Given a moment 4 days minus 12 minutes after the trace's last reading, which is then
  // 3 days 23h48m old; the readings 5, 10 and 15 minutes before it are 3d23h53m, 3d23h58m and
  // 4d0h3m old (lib/server/query.js: date >= now - 4 days)
  const auto trace = read_trace(k_demo_trace);
  const std::int64_t last = trace.back().date;
  REQUIRE(trace[trace.size() - 4].date == last - 15 * k_minute_ms);
  Replay replay;
  const std::string edge = "/at/" + std::to_string(last + 4 * k_day_ms - 12 * k_minute_ms);

  // When all entries are asked for without a date filter
  const json recent = json_200(replay.get(edge + k_sgv_path + "?count=0"));
  // Then only the three readings younger than 4 days come
  REQUIRE(recent.size() == 3);
  CHECK(sgv_of(recent[2]) == trace[trace.size() - 3].sgv);

  // When the moment is 5 days after the last reading
  const std::string later = "/at/" + std::to_string(last + 5 * k_day_ms);
  // Then nothing comes without a date filter, as on a site whose uploader stopped days ago
  CHECK(json_200(replay.get(later + k_sgv_path)).empty());
  CHECK(json_200(replay.get(later + "/api/v1/entries/current.json")).empty());
  // But a date filter lifts the window
  CHECK(json_200(replay.get(later + k_sgv_path + "?find%5Bdate%5D%5B%24gte%5D=0")).size() == 10);
}

// ---- authentication -----------------------------------------------------------------------

TEST_CASE("Without --token or --api-secret the site is readable without credentials",
          "[integration][replay]") {
  // Given a replay started without credentials (AUTH_DEFAULT_ROLES=readable)
  Replay replay;
  // When entries and status are asked for without credentials
  // Then both answer 200
  CHECK(json_200(replay.get(k_sgv_path)).size() == 10);
  CHECK(json_200(replay.get("/api/v1/status.json")).at("status") == "ok");
}

TEST_CASE("A locked site answers 401 Unauthorized Invalid/Missing to a request without "
          "credentials",
          "[integration][replay]") {
  // Given a replay locked with a token and an API secret
  Replay replay({"--token", k_token, "--api-secret", k_secret});
  for (const std::string& path :
       {k_sgv_path, std::string{"/api/v1/entries/current.json"}, std::string{"/api/v1/status.json"},
        std::string{"/alice/api/v1/entries.json"}, "/at/+90m" + k_sgv_path}) {
    INFO(path);
    // When it is asked without credentials
    const auto result = replay.get(path);
    // Then the answer is 401 with exactly Nightscout's body (lib/middleware/send-json-status.js)
    CHECK(result->status == 401);
    CHECK(json::parse(result->body) == json::parse(k_unauthorized_body));
  }
}

TEST_CASE("A locked site accepts a known access token as ?token= or in the api-secret header",
          "[integration][replay]") {
  // Given a replay locked with a token and an API secret
  Replay replay({"--token", k_token, "--api-secret", k_secret});
  // When the token is given as ?token= or in the api-secret header (enclave doesAccessTokenExist)
  // Then the site answers
  CHECK(json_200(replay.get(k_sgv_path + "?token=" + k_token)).size() == 10);
  CHECK(json_200(replay.get("/api/v1/status.json?token=" + k_token)).at("status") == "ok");
  CHECK(json_200(replay.get(k_sgv_path, {{"api-secret", k_token}})).size() == 10);
  // And an unknown or altered token is refused
  CHECK(replay.get(k_sgv_path + "?token=scoutreader-0123456789abcdee")->status == 401);
  CHECK(replay.get(k_sgv_path + "?token=" + upper(k_token))->status == 401);
}

TEST_CASE("A locked site accepts the api-secret header as the sha1 hex of the secret, in any case",
          "[integration][replay]") {
  // Given a replay locked with API_SECRET "scout-test-secret" (protocols.md §1.5 vector)
  REQUIRE(hex_digest(k_secret, EVP_sha1()) == k_secret_sha1);
  Replay replay({"--api-secret", k_secret});
  // When the header holds its sha1 hex, lower or upper case (enclave isApiKey lowercases it)
  // Then the site answers
  CHECK(json_200(replay.get(k_sgv_path, {{"api-secret", k_secret_sha1}})).size() == 10);
  CHECK(json_200(replay.get(k_sgv_path, {{"api-secret", upper(k_secret_sha1)}})).size() == 10);
  CHECK(json_200(replay.get("/api/v1/status.json", {{"api-secret", k_secret_sha1}}))
            .at("status") == "ok");
  // And the sha1 of another secret is refused
  const auto other = replay.get(k_sgv_path, {{"api-secret", hex_digest("other-secret", EVP_sha1())}});
  CHECK(other->status == 401);
}

TEST_CASE("A locked site accepts the api-secret header as the lower-case sha512 hex of the secret",
          "[integration][replay]") {
  // Given a replay locked with an API secret
  Replay replay({"--api-secret", k_secret});
  const std::string sha512 = hex_digest(k_secret, EVP_sha512());
  // When the header holds its sha512 hex
  // Then the site answers
  CHECK(json_200(replay.get(k_sgv_path, {{"api-secret", sha512}})).size() == 10);
  // And in upper case it is refused: Nightscout compares the sha512 as sent, without lowering
  // it (nightscout/cgm-remote-monitor:lib/server/enclave.js isApiKey)
  CHECK(replay.get(k_sgv_path, {{"api-secret", upper(sha512)}})->status == 401);
  CHECK(replay.get(k_sgv_path + "?secret=" + upper(sha512))->status == 401);
}

TEST_CASE("A locked site refuses the plain API secret", "[integration][replay]") {
  // Given a replay locked with an API secret
  Replay replay({"--api-secret", k_secret});
  // When the plain secret is sent in the header or as ?secret=
  const auto header = replay.get(k_sgv_path, {{"api-secret", k_secret}});
  const auto param = replay.get(k_sgv_path + "?secret=" + k_secret);
  const auto token = replay.get(k_sgv_path + "?token=" + k_secret);
  // Then each is refused with 401
  CHECK(header->status == 401);
  CHECK(param->status == 401);
  CHECK(token->status == 401);
  CHECK(header->body == k_unauthorized_body);
}

TEST_CASE("A locked site accepts ?secret= as the sha1 or sha512 hex of the secret",
          "[integration][replay]") {
  // Given a replay locked with an API secret
  Replay replay({"--api-secret", k_secret});
  // When ?secret= holds its sha1 (any case) or sha512 hex
  // Then the site answers
  CHECK(json_200(replay.get(k_sgv_path + "?secret=" + k_secret_sha1)).size() == 10);
  CHECK(json_200(replay.get(k_sgv_path + "?secret=" + upper(k_secret_sha1))).size() == 10);
  CHECK(json_200(replay.get(k_sgv_path + "?secret=" + hex_digest(k_secret, EVP_sha512()))).size() ==
        10);
  CHECK(json_200(replay.get("/api/v1/status.json?secret=" + k_secret_sha1)).at("status") == "ok");
}

TEST_CASE("An --api-secret shorter than 12 characters is refused at start",
          "[integration][replay]") {
  // Given a secret Nightscout would ignore (lib/server/enclave.js setApiKey: length < 12)
  // When the replay is started with it
  const auto run = run_process({k_replay, k_demo_trace, "--api-secret", "short-12345"},
                               std::chrono::seconds{5});
  // Then it exits 64 before listening
  CHECK_FALSE(run.timed_out);
  CHECK(run.exit_code == 64);
  CHECK(run.out.find("listening") == std::string::npos);
}

// ---- HTTP details -------------------------------------------------------------------------

TEST_CASE("Another method than GET on an API route is answered with 405", "[integration][replay]") {
  // Given a replay
  Replay replay;
  // When entries are POSTed or DELETEd
  auto post = replay.client().Post(k_sgv_path.c_str(), "[]", "application/json");
  auto del = replay.client().Delete("/api/v1/status.json");
  REQUIRE(post);
  REQUIRE(del);
  // Then the answer is 405 with Allow: GET, HEAD
  CHECK(post->status == 405);
  CHECK(post->get_header_value("Allow") == "GET, HEAD");
  CHECK(json::parse(post->body) ==
        json({{"status", 405}, {"message", "Method Not Allowed"}, {"type", "internal"}}));
  CHECK(del->status == 405);
}

TEST_CASE("An unknown path is answered with 404", "[integration][replay]") {
  // Given a replay
  Replay replay;
  const json not_found = {{"status", 404}, {"message", "Not found"}, {"type", "internal"}};
  for (const char* path : {"/", "/api/v1/treatments.json", "/api/v1/entries/sgv/extra.json",
                                 "/api/v2/entries.json", "/entries.json"}) {
    INFO(path);
    // When it is asked for
    const auto result = replay.get(path);
    // Then the answer is Nightscout's 404
    CHECK(result->status == 404);
    CHECK(json::parse(result->body) == not_found);
  }
}

TEST_CASE("Entries answers carry Last-Modified, the newest entry's date", "[integration][replay]") {
  // Given a replay
  Replay replay;
  // When entries are asked for
  const auto result = replay.get(k_sgv_path + "?count=3");
  const json entries = json_200(result);
  REQUIRE(!entries.empty());
  // Then Last-Modified is the newest date as an HTTP date
  CHECK(result->get_header_value("Last-Modified") == http_date_of(date_of(entries[0])));
}

TEST_CASE("If-Modified-Since at or after the newest entry gives 304 with Nightscout's body",
          "[integration][replay]") {
  // Given a replay and the newest entry's date
  Replay replay;
  const json entries = json_200(replay.get(k_sgv_path));
  REQUIRE(!entries.empty());
  const std::int64_t newest = date_of(entries[0]);

  // When If-Modified-Since is a minute after it (a later request sees the newest date moved on
  // by the real time elapsed, well under a minute)
  const auto unchanged = replay.get(k_sgv_path, {{"If-Modified-Since", http_date_of(newest + 60'000)}});
  // Then the answer is 304 with {"status":304,"message":"Not modified","type":"internal"}
  CHECK(unchanged->status == 304);
  CHECK(json::parse(unchanged->body) ==
        json({{"status", 304}, {"message", "Not modified"}, {"type", "internal"}}));

  // When If-Modified-Since is before it
  const auto changed = replay.get(k_sgv_path, {{"If-Modified-Since", http_date_of(newest - 60'000)}});
  // Then the entries come
  CHECK(json_200(changed).size() == 10);
}

// ---- knobs --------------------------------------------------------------------------------

TEST_CASE("replay --fault 500 answers API requests with Nightscout's 500", "[integration][replay]") {
  // Given a replay with --fault 500
  Replay replay({"--fault", "500"});
  for (const std::string& path : {k_sgv_path, std::string{"/api/v1/status.json"}}) {
    INFO(path);
    // When the API is asked
    const auto result = replay.get(path);
    // Then the answer is 500 with a JSON status body
    CHECK(result->status == 500);
    const json body = json::parse(result->body);
    CHECK(body.at("status") == 500);
    CHECK(body.at("message") == "Mongo Error");
  }
}

TEST_CASE("replay --fault html answers API requests with 200 and an HTML page", "[integration][replay]") {
  // Given a replay with --fault html (a proxy or login page in front of the site)
  Replay replay({"--fault", "html"});
  // When entries are asked for
  const auto result = replay.get(k_sgv_path);
  // Then the answer is 200 text/html, not JSON
  CHECK(result->status == 200);
  CHECK(result->get_header_value("Content-Type").rfind("text/html", 0) == 0);
  CHECK(result->body.rfind("<!DOCTYPE html>", 0) == 0);
  CHECK(json::parse(result->body, nullptr, false).is_discarded());
}

TEST_CASE("replay --fault truncated cuts the JSON body in half", "[integration][replay]") {
  // Given a replay with --fault truncated and one without, frozen at the same moment
  Replay truncated({"--fault", "truncated"});
  Replay whole;
  // When the same entries are asked for from both
  const auto cut = truncated.get(k_sgv_path);
  const json full = json_200(whole.get(k_sgv_path));
  // Then the faulty answer is 200 with the first half of the JSON (shifted dates have a fixed
  // width, so the lengths compare)
  CHECK(cut->status == 200);
  CHECK(cut->body.size() == full.dump().size() / 2);
  CHECK(cut->body.rfind("[{", 0) == 0);
  CHECK(json::parse(cut->body, nullptr, false).is_discarded());
}

TEST_CASE("replay --fault 401 answers 401 even to valid credentials, and faults come after auth",
          "[integration][replay]") {
  // Given an open replay with --fault 401, and one with --fault 500 locked with a secret
  Replay unauthorized({"--fault", "401"});
  Replay failing({"--fault", "500", "--api-secret", k_secret});
  // When the first is asked with no credentials needed
  const auto refused = unauthorized.get(k_sgv_path);
  // Then it answers Nightscout's 401
  CHECK(refused->status == 401);
  CHECK(json::parse(refused->body) == json::parse(k_unauthorized_body));
  // And the second answers 401 without credentials, its fault only with them
  CHECK(failing.get(k_sgv_path)->status == 401);
  CHECK(failing.get(k_sgv_path, {{"api-secret", k_secret_sha1}})->status == 500);
}

TEST_CASE("replay --sgv-as-string sends sgv as a numeric string", "[integration][replay]") {
  // Given a replay with --sgv-as-string (Nightscout's own fixture has "sgv": "5")
  const auto trace = read_trace(k_demo_trace);
  const std::size_t newest = newest_at(trace, trace.front().date + k_hour_ms);
  Replay replay({"--sgv-as-string"});
  // When entries are asked for
  const json entries = json_200(replay.get(k_sgv_path + "?count=3"));
  // Then every sgv is a string holding the trace's value
  REQUIRE(entries.size() == 3);
  for (std::size_t i = 0; i < entries.size(); ++i) {
    REQUIRE(entries[i].at("sgv").is_string());
    CHECK(entries[i].at("sgv") == std::to_string(trace[newest - i].sgv));
  }
  // And date stays a number
  CHECK(entries[0].at("date").is_number_integer());
}
