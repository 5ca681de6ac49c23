// parse_entries, api_secret_header_value and the URL builders (adapters/nightscout.hpp).

#include <catch2/catch.hpp>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "scout/adapters/nightscout.hpp"

namespace {

using scout::adapters::api_secret_header_value;
using scout::adapters::entries_url;
using scout::adapters::parse_entries;
using scout::adapters::redacted_entries_url;
using scout::adapters::redacted_site_url;
using scout::core::Entry;
using scout::core::ErrorKind;
using scout::core::NightscoutSite;

std::string read_data(const std::string& name) {
  std::ifstream in{std::string{SCOUT_TEST_DATA_DIR} + "/nightscout/" + name, std::ios::binary};
  REQUIRE(in.good());
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

scout::core::TimePoint at_ms(long long ms) {
  return scout::core::TimePoint{scout::core::Duration{ms}};
}

Entry entry(long long date_ms, int sgv, std::string direction) {
  return Entry{at_ms(date_ms), sgv, std::move(direction)};
}

}  // namespace

TEST_CASE("parse_entries reads numeric sgv, date and direction and ignores unknown fields",
          "[nightscout][adapters]") {
  // Given a Nightscout body with _id, mills, delta, noise, filtered... besides the known fields
  const std::string body = read_data("entries_sample.json");
  // When it is parsed
  const auto parsed = parse_entries(body);
  // Then the three readings come back with their values, newest first
  REQUIRE(parsed.has_value());
  CHECK(*parsed == std::vector<Entry>{entry(1716580000000, 142, "FortyFiveDown"),
                                      entry(1716579700000, 147, "Flat"),
                                      entry(1716579400000, 150, "")});
}

TEST_CASE("parse_entries accepts sgv and date given as numeric strings", "[nightscout][adapters]") {
  // Given entries whose sgv ("120", "5") and date are strings, as in Nightscout's own fixture
  // (nightscout/cgm-remote-monitor:tests/fixtures/example.json has "sgv": "5")
  const std::string body = read_data("entries_sgv_strings.json");
  // When it is parsed
  const auto parsed = parse_entries(body);
  // Then they are read as numbers; the status code 5 is kept for evaluation to judge
  REQUIRE(parsed.has_value());
  CHECK(*parsed == std::vector<Entry>{entry(1716580000000, 120, "Flat"),
                                      entry(1716579700000, 5, "NONE"),
                                      entry(1716579400000, 118, "")});
}

TEST_CASE("parse_entries skips mbg and cal records and entries without sgv or date",
          "[nightscout][adapters]") {
  // Given a mix of sgv, mbg and cal records, one sgv without a value and one without a date
  const std::string body = read_data("entries_with_mbg_cal.json");
  // When it is parsed
  const auto parsed = parse_entries(body);
  // Then only the two complete sgv entries remain
  REQUIRE(parsed.has_value());
  CHECK(*parsed ==
        std::vector<Entry>{entry(1716580000000, 101, "Flat"), entry(1716579700000, 104, "Flat")});
}

TEST_CASE("parse_entries returns no entries for an empty array", "[nightscout][adapters]") {
  // Given a site with no recent data
  // When its empty array is parsed
  const auto parsed = parse_entries(" [ ]\n");
  // Then the result is an empty list, not an error
  REQUIRE(parsed.has_value());
  CHECK(parsed->empty());
}

TEST_CASE("parse_entries returns entries newest first, keeping the order of equal dates",
          "[nightscout][adapters]") {
  // Given entries out of order, two of them with the same date (121 listed before 125)
  const std::string body = read_data("entries_unordered.json");
  // When it is parsed
  const auto parsed = parse_entries(body);
  // Then they are sorted by date descending, and the tie keeps the order of the body
  REQUIRE(parsed.has_value());
  CHECK(*parsed == std::vector<Entry>{entry(1716580000000, 130, "FortyFiveUp"),
                                      entry(1716579700000, 121, "FortyFiveUp"),
                                      entry(1716579700000, 125, "Flat"),
                                      entry(1716579400000, 110, "Flat")});
}

TEST_CASE("parse_entries rounds a fractional sgv to whole mg/dL", "[nightscout][adapters]") {
  // Given an uploader that sent a float sgv and a float date
  const auto parsed = parse_entries(R"([{"sgv":120.6,"date":1716580000000.0}])");
  // Then the value is rounded to the nearest mg/dL
  REQUIRE(parsed.has_value());
  CHECK(*parsed == std::vector<Entry>{entry(1716580000000, 121, "")});
}

TEST_CASE("parse_entries says an HTML page is not JSON", "[nightscout][adapters]") {
  // Given the HTML a misconfigured URL returns (the Nightscout web app, or a proxy error page)
  const std::string body = "\n  <!DOCTYPE html><html><head><title>Nightscout</title></head></html>";
  // When it is parsed
  const auto parsed = parse_entries(body);
  // Then the error is not_json and asks about the URL
  REQUIRE_FALSE(parsed.has_value());
  CHECK(parsed.error().kind == ErrorKind::not_json);
  CHECK(parsed.error().message == "answered an HTML page, not JSON — is the URL right?");
}

TEST_CASE("parse_entries says plain text and an empty body are not JSON",
          "[nightscout][adapters]") {
  // Given bodies that cannot start a JSON document
  const std::string body =
      GENERATE(std::string{"Unauthorized"}, std::string{""}, std::string{"  \r\n"});
  // When parsed
  const auto parsed = parse_entries(body);
  // Then the error kind is not_json
  REQUIRE_FALSE(parsed.has_value());
  CHECK(parsed.error().kind == ErrorKind::not_json);
}

TEST_CASE("parse_entries reports truncated JSON as malformed", "[nightscout][adapters]") {
  // Given a body cut off in the middle of an entry
  const std::string body = read_data("entries_truncated.json");
  // When it is parsed
  const auto parsed = parse_entries(body);
  // Then the error is malformed_json, not an exception
  REQUIRE_FALSE(parsed.has_value());
  CHECK(parsed.error().kind == ErrorKind::malformed_json);
  CHECK_THAT(parsed.error().message, Catch::StartsWith("answered malformed JSON: "));
}

TEST_CASE("parse_entries reports an object instead of an array as malformed",
          "[nightscout][adapters]") {
  // Given Nightscout's 401 body, an object (what a proxy might pass on with status 200)
  const std::string body = read_data("status_error_object.json");
  // When it is parsed
  const auto parsed = parse_entries(body);
  // Then the error is malformed_json and names what came instead
  REQUIRE_FALSE(parsed.has_value());
  CHECK(parsed.error().kind == ErrorKind::malformed_json);
  CHECK(parsed.error().message == "answered a JSON object where an array of entries was expected");
}

TEST_CASE("parse_entries reports an array of non-objects as malformed", "[nightscout][adapters]") {
  // Given an array of numbers
  const auto parsed = parse_entries("[120, 118]");
  // Then it is malformed_json
  REQUIRE_FALSE(parsed.has_value());
  CHECK(parsed.error().kind == ErrorKind::malformed_json);
}

TEST_CASE("api_secret_header_value is the lower-case SHA-1 hex of the secret",
          "[nightscout][adapters]") {
  // Given the vector of protocols.md §1.5 (checked there with openssl)
  // Then the header value matches it
  CHECK(api_secret_header_value("scout-test-secret") == "06dd94d71c66e21c58cf49d84e5a8045461f28de");
  // And the empty string gives the well-known SHA-1 of nothing
  CHECK(api_secret_header_value("") == "da39a3ee5e6b4b0d3255bfef95601890afd80709");
}

TEST_CASE("entries_url asks for sgv.json with the count, and only what is newer when told",
          "[nightscout][adapters]") {
  // Given a site without credentials, its URL with a trailing slash by mistake
  const NightscoutSite site{"https://alice.example.org/", "", ""};
  // Then the URL is the v1 sgv endpoint with count, and there is nothing to redact
  CHECK(entries_url(site) == "https://alice.example.org/api/v1/entries/sgv.json?count=36");
  CHECK(redacted_entries_url(site) == entries_url(site));
  // And an incremental request asks for entries after the newest held date (ms), exclusive
  const scout::core::TimePoint newest{std::chrono::milliseconds{1716580000123}};
  CHECK(entries_url(site, newest) ==
        "https://alice.example.org/api/v1/entries/sgv.json?count=36&find[date][$gt]=1716580000123");
}

TEST_CASE("entries_url keeps a path prefix and url-encodes the token", "[nightscout][adapters]") {
  // Given a site behind a path prefix with a token that needs escaping
  const NightscoutSite site{"https://ns.example.org/alice", "scout-a1b2+c/d", ""};
  // Then the token goes in the query, percent-encoded
  CHECK(entries_url(site) ==
        "https://ns.example.org/alice/api/v1/entries/sgv.json?count=36&token=scout-a1b2%2Bc%2Fd");
}

TEST_CASE("redacted_entries_url hides the token and any user:password", "[nightscout][adapters]") {
  // Given a token and a URL that carries credentials
  const NightscoutSite site{"https://user:pw@ns.example.org/alice", "scout-0123456789abcdef", ""};
  // Then neither appears in the redacted forms
  CHECK(redacted_entries_url(site) ==
        "https://***@ns.example.org/alice/api/v1/entries/sgv.json?count=36&token=***");
  CHECK(redacted_site_url(site) == "https://***@ns.example.org/alice");
}

TEST_CASE("entries_url never puts the api_secret in the URL", "[nightscout][adapters]") {
  // Given a site using api_secret (sent as a header)
  const NightscoutSite site{"https://bob.example.org", "", "scout-test-secret"};
  // Then the URL carries no credential
  CHECK(entries_url(site) == "https://bob.example.org/api/v1/entries/sgv.json?count=36");
}

TEST_CASE("parse_entries: one entry with a number beyond double drops that entry only",
          "[nightscout][adapters]") {
  const std::string body =
      R"([{"sgv":1e400,"date":1716580300000,"direction":"Flat","note":"1e400 in a string"},)"
      R"({"sgv":104,"date":1716580000000,"direction":"Flat","delta":-1e999},)"
      R"({"sgv":101,"date":1716579700000,"direction":"Flat","tiny":1e-400}])";
  const auto entries = parse_entries(body);
  REQUIRE(entries);
  REQUIRE(entries->size() == 2);
  CHECK(entries->at(0).sgv == 104);
  CHECK(entries->at(1).sgv == 101);
}

TEST_CASE("parse_entries: an element that is not an object is dropped, not the answer",
          "[nightscout][adapters]") {
  const auto entries =
      parse_entries(R"([42, "x", null, {"sgv":99,"date":1716580000000,"direction":"Flat"}])");
  REQUIRE(entries);
  REQUIRE(entries->size() == 1);
  CHECK(entries->at(0).sgv == 99);
}

TEST_CASE("parse_entries reads each record's own keys: the last of a duplicate wins, nested keys "
          "are not the record's",
          "[nightscout][adapters]") {
  // Given records with repeated keys and objects nested inside them
  const auto entries = parse_entries(
      R"([{"sgv":100,"date":1716580000000,"sgv":{"a":1}},)"
      R"({"sgv":"120","date":"1716579700000","x":{"sgv":1,"date":2,"direction":"Up"},)"
      R"("direction":"Flat","direction":7,"type":5},)"
      R"({"sgv":130,"date":1716579400000,"direction":"Up","direction":"SingleDown"},)"
      R"({"meta":{"sgv":140,"date":1716579100000}}])");
  REQUIRE(entries);
  // Then the first record is dropped (its last sgv is an object), the nested object's keys are
  // not read as the record's, a non-string direction or type is no direction or type
  REQUIRE(entries->size() == 2);
  CHECK(entries->at(0).sgv == 120);
  CHECK(entries->at(0).direction.empty());
  CHECK(entries->at(1).sgv == 130);
  CHECK(entries->at(1).direction == "SingleDown");
}

TEST_CASE("parse_entries names the type of an answer that is not an array of entries",
          "[nightscout][adapters]") {
  const auto number = parse_entries("42");
  REQUIRE_FALSE(number);
  CHECK(number.error().message == "answered a JSON number where an array of entries was expected");
  const auto strings = parse_entries(R"(["a", {"sgv": 1}])");
  REQUIRE(strings);  // one object among the elements: an answer, the string is dropped
  const auto nested = parse_entries("[[1], [2]]");
  REQUIRE_FALSE(nested);
  CHECK(nested.error().message == "answered an array of array values, not entry objects");
  const auto trailing = parse_entries(R"([{"sgv":100,"date":1716580000000}] x)");
  REQUIRE_FALSE(trailing);
  CHECK(trailing.error().kind == scout::core::ErrorKind::malformed_json);
}
