// The provider fakes' own checks (tests/support/fake_vonage.hpp, fake_twilio.hpp): they reject
// what the real services reject (protocols.md §5.2, §5.3), their signers reproduce the published
// vectors (§2.6, §4.6), and they drive calls against a stand-in webhook receiver.

#include <catch2/catch.hpp>

#include "support/fake_twilio.hpp"
#include "support/fake_vonage.hpp"

using namespace scout::test;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

const std::string k_key_dir = std::string(SCOUT_TEST_DATA_DIR) + "/vonage";

std::string private_key() { return fake::read_text(k_key_dir + "/test_private_key.pem"); }
std::string public_key() { return fake::read_text(k_key_dir + "/test_public_key.pem"); }

VonageOptions vonage_options() {
  VonageOptions o;
  o.public_key_pem = public_key();
  o.event_gap = 10ms;
  return o;
}

// Claims for an API JWT; tests remove or change some before signing.
json api_claims(const std::string& application_id) {
  const auto now = fake::unix_now();
  return {{"application_id", application_id}, {"iat", now}, {"jti", fake::uuid4()}, {"exp", now + 900}};
}

std::string api_jwt(const json& claims, const std::string& private_pem = private_key(),
                    const std::string& header = R"({"alg":"RS256","typ":"JWT"})") {
  return fake::sign_rs256(header, claims.dump(), private_pem);
}

json call_body(const std::string& to, const std::string& event_url = "http://127.0.0.1:9/webhooks/vonage/event") {
  return {{"to", {{{"type", "phone"}, {"number", to}}}},
          {"from", {{"type", "phone"}, {"number", "14155550100"}}},
          {"ncco",
           {{{"action", "talk"}, {"text", "Glucose is 48. Press 1."}, {"bargeIn", true}, {"loop", 2}},
            {{"action", "input"},
             {"type", {"dtmf"}},
             {"dtmf", {{"maxDigits", 1}, {"timeOut", 5}}},
             {"eventUrl", {"http://127.0.0.1:9/webhooks/vonage/input"}},
             {"eventMethod", "POST"}}}},
          {"event_url", {event_url}},
          {"event_method", "POST"},
          {"machine_detection", "continue"},
          {"ringing_timer", 45},
          {"length_timer", 300}};
}

httplib::Result post_call(const FakeVonage& vonage, const std::string& jwt, const json& body) {
  httplib::Client client{"127.0.0.1", vonage.port()};
  httplib::Headers headers;
  if (!jwt.empty()) headers.emplace("Authorization", "Bearer " + jwt);
  return client.Post("/v1/calls", headers, body.dump(), "application/json");
}

// The names in an RFC 7807 invalid_parameters list.
std::string invalid_names(const std::string& body) {
  const auto doc = json::parse(body, nullptr, false);
  std::string names;
  if (doc.is_object() && doc.contains("invalid_parameters")) {
    for (const auto& p : doc["invalid_parameters"]) names += p.value("name", "") + " ";
  }
  return names;
}

// A stand-in for scout's listener: records what arrives and answers with `reply`.
struct Receiver {
  struct Hit {
    std::string path;
    std::string target;
    httplib::Headers headers;
    std::string body;
  };
  fake::FakeHttpServer server;
  fake::Recorder<std::vector<Hit>> hits;
  std::function<void(const httplib::Request&, httplib::Response&)> reply;

  Receiver() {
    server.set_handler([this](const httplib::Request& req, httplib::Response& res) {
      res.status = 200;
      if (reply) reply(req, res);
      hits.update([&](std::vector<Hit>& h) { h.push_back({req.path, req.target, req.headers, req.body}); });
    });
  }
  std::string url(const std::string& path) const { return server.base_url() + path; }
};

}  // namespace

// ---------------------------------------------------------------------------------------------
// Vonage: API JWT (protocols.md §2.2, §5.2)

TEST_CASE("fake Vonage accepts a well-formed call with a valid RS256 JWT", "[fakes]") {
  FakeVonage vonage{vonage_options()};
  REQUIRE(!vonage.options().public_key_pem.empty());
  REQUIRE(vonage.start());

  const auto res = post_call(vonage, api_jwt(api_claims(vonage.options().application_id)), call_body("15555551000"));

  REQUIRE(res);
  CHECK(res->status == 201);
  const auto doc = json::parse(res->body);
  CHECK(doc.at("status") == "started");
  CHECK(doc.at("direction") == "outbound");
  CHECK(doc.at("uuid").get<std::string>().size() == 36);
  CHECK(doc.at("conversation_uuid").get<std::string>().rfind("CON-", 0) == 0);
  CHECK(vonage.log().count_calls_to("+15555551000") == 1);
}

TEST_CASE("fake Vonage rejects bad API JWTs with 401 problem+json", "[fakes]") {
  FakeVonage vonage{vonage_options()};
  REQUIRE(vonage.start());
  const auto app = vonage.options().application_id;
  const auto now = fake::unix_now();
  const auto body = call_body("15555551000");

  std::string jwt;
  SECTION("signed with another key") { jwt = api_jwt(api_claims(app), fake::generate_rsa_pem().first); }
  SECTION("expired") {
    auto c = api_claims(app);
    c["iat"] = now - 1000;
    c["exp"] = now - 10;
    jwt = api_jwt(c);
  }
  SECTION("exp more than 24 h after iat") {
    auto c = api_claims(app);
    c["exp"] = now + 25 * 3600;
    jwt = api_jwt(c);
  }
  SECTION("application_id missing") {
    auto c = api_claims(app);
    c.erase("application_id");
    jwt = api_jwt(c);
  }
  SECTION("another application") { jwt = api_jwt(api_claims("bbbbbbbb-bbbb-cccc-dddd-0123456789ab")); }
  SECTION("jti missing") {
    auto c = api_claims(app);
    c.erase("jti");
    jwt = api_jwt(c);
  }
  SECTION("iat missing") {
    auto c = api_claims(app);
    c.erase("iat");
    jwt = api_jwt(c);
  }
  SECTION("nbf in the future") {
    auto c = api_claims(app);
    c["nbf"] = now + 600;
    jwt = api_jwt(c);
  }
  SECTION("alg HS256 in the header") { jwt = api_jwt(api_claims(app), private_key(), R"({"alg":"HS256","typ":"JWT"})"); }
  SECTION("signature altered") {
    jwt = api_jwt(api_claims(app));
    // A character in the middle (the last one also carries unused padding bits).
    auto& c = jwt[jwt.size() - 20];
    c = c == 'A' ? 'B' : 'A';
  }
  SECTION("no token") { jwt = ""; }

  const auto res = post_call(vonage, jwt, body);
  REQUIRE(res);
  CHECK(res->status == 401);
  CHECK(fake::media_type_is(res->get_header_value("Content-Type"), "application/problem+json"));
  CHECK(json::parse(res->body).at("title") == "Unauthorized");
  CHECK(vonage.log().calls.empty());
}

TEST_CASE("fake Vonage rejects a reused jti", "[fakes]") {
  FakeVonage vonage{vonage_options()};
  REQUIRE(vonage.start());
  const auto jwt = api_jwt(api_claims(vonage.options().application_id));
  const auto first = post_call(vonage, jwt, call_body("15555551000"));
  const auto second = post_call(vonage, jwt, call_body("15555551000"));
  REQUIRE(first);
  REQUIRE(second);
  CHECK(first->status == 201);
  CHECK(second->status == 401);
}

// ---------------------------------------------------------------------------------------------
// Vonage: create-call body and NCCO (protocols.md §2.1, §2.3, §5.2)

TEST_CASE("fake Vonage rejects invalid create-call bodies with invalid_parameters", "[fakes]") {
  FakeVonage vonage{vonage_options()};
  REQUIRE(vonage.start());
  auto body = call_body("15555551000");
  std::string bad;
  SECTION("'+' in the number") {
    body["to"][0]["number"] = "+15555551000";
    bad = "to";
  }
  SECTION("leading 0") {
    body["to"][0]["number"] = "05555551000";
    bad = "to";
  }
  SECTION("too short") {
    body["to"][0]["number"] = "123456";
    bad = "to";
  }
  SECTION("empty to") {
    body["to"] = json::array();
    bad = "to";
  }
  SECTION("from and random_from_number") {
    body["random_from_number"] = true;
    bad = "from";
  }
  SECTION("both ncco and answer_url") {
    body["answer_url"] = {"http://127.0.0.1:9/answer"};
    bad = "ncco";
  }
  SECTION("neither ncco nor answer_url") {
    body.erase("ncco");
    bad = "ncco";
  }
  SECTION("event_url a string") {
    body["event_url"] = "http://127.0.0.1:9/event";
    bad = "event_url";
  }
  SECTION("event_url relative") {
    body["event_url"] = {"/webhooks/vonage/event"};
    bad = "event_url";
  }
  SECTION("machine_detection unknown") {
    body["machine_detection"] = "detect";
    bad = "machine_detection";
  }
  SECTION("ringing_timer 0") {
    body["ringing_timer"] = 0;
    bad = "ringing_timer";
  }
  SECTION("length_timer too long") {
    body["length_timer"] = 7201;
    bad = "length_timer";
  }
  SECTION("talk text too long") {
    body["ncco"][0]["text"] = std::string(1501, 'a');
    bad = "ncco";
  }
  SECTION("maxDigits 21") {
    body["ncco"][1]["dtmf"]["maxDigits"] = 21;
    bad = "ncco";
  }
  SECTION("timeOut 11") {
    body["ncco"][1]["dtmf"]["timeOut"] = 11;
    bad = "ncco";
  }
  SECTION("input eventUrl a string") {
    body["ncco"][1]["eventUrl"] = "http://127.0.0.1:9/input";
    bad = "ncco";
  }
  SECTION("bargeIn without an input after it") {
    body["ncco"].erase(1);
    bad = "ncco";
  }
  SECTION("unknown action") {
    body["ncco"][0]["action"] = "say";
    bad = "ncco";
  }

  const auto res = post_call(vonage, api_jwt(api_claims(vonage.options().application_id)), body);
  REQUIRE(res);
  CHECK(res->status == 400);
  CHECK(fake::media_type_is(res->get_header_value("Content-Type"), "application/problem+json"));
  CHECK(invalid_names(res->body).find(bad + " ") != std::string::npos);
  CHECK(vonage.log().calls.empty());
}

TEST_CASE("fake Vonage NCCO check accepts scout-like NCCOs and rejects malformed ones", "[fakes]") {
  CHECK(FakeVonage::check_ncco(json::parse(R"([{"action":"talk","text":"Acknowledged. Goodbye."}])")) == "");
  CHECK(FakeVonage::check_ncco(call_body("15555551000")["ncco"]) == "");
  CHECK(FakeVonage::check_ncco(json::object()) != "");
  CHECK(FakeVonage::check_ncco(json::array()) != "");
  CHECK(FakeVonage::check_ncco(json::parse(R"([{"action":"talk","text":""}])")) != "");
  CHECK(FakeVonage::check_ncco(json::parse(R"([{"action":"input","type":[]}])")) != "");
  CHECK(FakeVonage::check_ncco(json::parse(R"([{"action":"input","type":["dtmf","dtmf"]}])")) != "");
  CHECK(FakeVonage::check_ncco(json::parse(R"([{"action":"input","type":["dtmf"],"dtmf":{"maxDigits":0}}])")) != "");
  // 1500 characters (not bytes) is the limit.
  std::string text;
  for (int i = 0; i < 1500; ++i) text += "\xc3\xa9";  // é
  CHECK(FakeVonage::check_ncco(json::array({{{"action", "talk"}, {"text", text}}})) == "");
}

// ---------------------------------------------------------------------------------------------
// Vonage: Messages API (protocols.md §3.1, §5.2)

TEST_CASE("fake Vonage sends SMS with Basic auth and rejects bad ones", "[fakes]") {
  FakeVonage vonage{vonage_options()};
  REQUIRE(vonage.start());
  httplib::Client client{"127.0.0.1", vonage.port()};
  const auto good_auth = "Basic " + fake::base64(vonage.options().api_key + ":" + vonage.options().api_secret);
  json body = {{"message_type", "text"}, {"text", "Alice: URGENT LOW 48 mg/dL"}, {"to", "15555559999"},
               {"from", "14155550100"}, {"channel", "sms"}};

  SECTION("valid") {
    const auto res = client.Post("/v1/messages", {{"Authorization", good_auth}}, body.dump(), "application/json");
    REQUIRE(res);
    CHECK(res->status == 202);
    CHECK(json::parse(res->body).at("message_uuid").get<std::string>().size() == 36);
    CHECK(vonage.log().count_sms_to("+15555559999") == 1);
  }
  SECTION("wrong secret") {
    const auto res = client.Post("/v1/messages",
                                 {{"Authorization", "Basic " + fake::base64(vonage.options().api_key + ":nope")}},
                                 body.dump(), "application/json");
    REQUIRE(res);
    CHECK(res->status == 401);
  }
  SECTION("Basic and Bearer together") {
    const auto res = client.Post(
        "/v1/messages",
        {{"Authorization", good_auth},
         {"Authorization", "Bearer " + api_jwt(api_claims(vonage.options().application_id))}},
        body.dump(), "application/json");
    REQUIRE(res);
    CHECK(res->status == 401);
  }
  SECTION("'+' in to") {
    body["to"] = "+15555559999";
    const auto res = client.Post("/v1/messages", {{"Authorization", good_auth}}, body.dump(), "application/json");
    REQUIRE(res);
    CHECK(res->status == 422);
    CHECK(invalid_names(res->body) == "to ");
  }
  SECTION("text too long") {
    body["text"] = std::string(1001, 'x');
    const auto res = client.Post("/v1/messages", {{"Authorization", good_auth}}, body.dump(), "application/json");
    REQUIRE(res);
    CHECK(res->status == 422);
    CHECK(invalid_names(res->body) == "text ");
  }
  SECTION("wrong channel") {
    body["channel"] = "whatsapp";
    const auto res = client.Post("/v1/messages", {{"Authorization", good_auth}}, body.dump(), "application/json");
    REQUIRE(res);
    CHECK(res->status == 422);
  }
  if (vonage.log().sms.empty()) {
    // Every rejected request was still recorded.
    CHECK(vonage.log().requests.size() == 1);
  }
}

TEST_CASE("fake Vonage answers unknown routes 404 and wrong methods 405", "[fakes]") {
  FakeVonage vonage{vonage_options()};
  REQUIRE(vonage.start());
  httplib::Client client{"127.0.0.1", vonage.port()};
  const auto del = client.Delete("/v1/calls");
  const auto other = client.Get("/v2/whatever");
  REQUIRE(del);
  REQUIRE(other);
  CHECK(del->status == 405);
  CHECK(other->status == 404);
  // GET /v1/calls is the call list, and needs the API JWT like every Voice request.
  const auto list = client.Get("/v1/calls");
  REQUIRE(list);
  CHECK(list->status == 401);
}

TEST_CASE("fake Vonage fault knob answers 500 then 429 then recovers", "[fakes]") {
  FakeVonage vonage{vonage_options()};
  REQUIRE(vonage.start());
  const auto app = vonage.options().application_id;
  vonage.fail_calls(1, 500);
  const auto a = post_call(vonage, api_jwt(api_claims(app)), call_body("15555551000"));
  vonage.fail_calls(1, 429);
  const auto b = post_call(vonage, api_jwt(api_claims(app)), call_body("15555551000"));
  const auto c = post_call(vonage, api_jwt(api_claims(app)), call_body("15555551000"));
  REQUIRE(a);
  REQUIRE(b);
  REQUIRE(c);
  CHECK(a->status == 500);
  CHECK(b->status == 429);
  CHECK(json::parse(b->body).at("title") == "Rate Limit Hit");
  CHECK(c->status == 201);
}

TEST_CASE("fake Vonage rate limit answers 429 above the configured creates per second", "[fakes]") {
  auto options = vonage_options();
  options.max_creates_per_second = 2;
  FakeVonage vonage{options};
  REQUIRE(vonage.start());
  std::vector<int> statuses;
  for (int i = 0; i < 3; ++i) {
    const auto r = post_call(vonage, api_jwt(api_claims(options.application_id)), call_body("15555551000"));
    REQUIRE(r);
    statuses.push_back(r->status);
  }
  CHECK(statuses == std::vector<int>{201, 201, 429});
}

// ---------------------------------------------------------------------------------------------
// Vonage: webhook signing (protocols.md §2.6)

TEST_CASE("fake Vonage webhook signer reproduces the protocols.md §2.6 token", "[fakes]") {
  // protocols.md §2.6 [constructed] vector; secret from vonage-python-sdk jwt/tests/test_verify_jwt.py.
  const std::string body =
      R"({"from":"447700900000","to":"447700900001","uuid":"aaaaaaaa-bbbb-cccc-dddd-0123456789ab","conversation_uuid":"CON-aaaaaaaa-bbbb-cccc-dddd-0123456789ab","status":"answered","direction":"outbound","timestamp":"2023-11-14T22:13:20.000Z"})";
  CHECK(fake::sha256_hex(body) == "0c4c6cb54dfe571aa739bedeb655808516ad247500b8c7e2ec72a671d3e5321b");
  const auto token = FakeVonage::webhook_jwt(body, 1700000000, "c5ba8f24-1a14-4c10-bfdf-3fbe8ce511b5", "a1b2c3d",
                                             "aaaaaaaa-bbbb-cccc-dddd-0123456789ab",
                                             "qwertyuiopasdfghjklzxcvbnm123456");
  CHECK(token ==
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpYXQiOjE3MDAwMDAwMDAsImp0aSI6ImM1YmE4ZjI0LTFhMTQtNGMxMC1iZmRmLTNmYmU4Y2U1MTFiNSIsImlzcyI6IlZvbmFnZSIsInBheWxvYWRfaGFzaCI6IjBjNGM2Y2I1NGRmZTU3MWFhNzM5YmVkZWI2NTU4MDg1MTZhZDI0NzUwMGI4YzdlMmVjNzJhNjcxZDNlNTMyMWIiLCJhcGlfa2V5IjoiYTFiMmMzZCIsImFwcGxpY2F0aW9uX2lkIjoiYWFhYWFhYWEtYmJiYi1jY2NjLWRkZGQtMDEyMzQ1Njc4OWFiIn0.ocswvm_QlNXUueT4LLXwvMc4vJHyTFvt4uLAbDWQJJ0");

  // The SDK's own vector verifies with its secret and not with another.
  const auto sdk = fake::decode_jwt(
      "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJPbmxpbmUgSldUIEJ1aWxkZXIiLCJpYXQiOjE2OTc2MzQ2ODAsImV4cCI6MzMyNTQ1NDA4MjgsImF1ZCI6IiIsInN1YiI6IiJ9.88vJc3I2HhuqEDixHXVhc9R30tA6U_HQHZTC29y6CGM");
  REQUIRE(sdk);
  CHECK(fake::verify_hs256_signature(*sdk, "qwertyuiopasdfghjklzxcvbnm123456"));
  CHECK_FALSE(fake::verify_hs256_signature(*sdk, "asdf"));
}

TEST_CASE("fake RS256 signer output verifies with the public key and only with it", "[fakes]") {
  const auto token = api_jwt(api_claims("x"));
  const auto jwt = fake::decode_jwt(token);
  REQUIRE(jwt);
  CHECK(fake::verify_rs256_signature(*jwt, public_key()));
  CHECK_FALSE(fake::verify_rs256_signature(*jwt, fake::generate_rsa_pem().second));
}

// ---------------------------------------------------------------------------------------------
// Vonage: driving calls

TEST_CASE("fake Vonage drives an answered call: signed events, input with digits, NCCO reply", "[fakes]") {
  Receiver scout;
  scout.reply = [](const httplib::Request& req, httplib::Response& res) {
    if (req.path == "/webhooks/vonage/input") {
      res.set_content(R"([{"action":"talk","text":"Acknowledged. Goodbye."}])", "application/json");
    }
  };
  REQUIRE(scout.server.start());
  FakeVonage vonage{vonage_options()};
  REQUIRE(vonage.start());
  vonage.script("15555551000", {Answer::human, {"1"}, 20ms, 10ms});
  auto body = call_body("15555551000", scout.url("/webhooks/vonage/event?call=c1"));
  body["ncco"][1]["eventUrl"] = {scout.url("/webhooks/vonage/input?call=c1")};

  const auto res = post_call(vonage, api_jwt(api_claims(vonage.options().application_id)), body);
  REQUIRE(res);
  REQUIRE(res->status == 201);
  const auto uuid = json::parse(res->body).at("uuid").get<std::string>();

  REQUIRE(vonage.wait_for([](const VonageLog& l) { return !l.calls.empty() && l.calls[0].ended; }, 5s));
  const auto log = vonage.log();
  CHECK(log.calls[0].events == std::vector<std::string>{"started", "ringing", "answered", "human", "completed"});
  CHECK(log.calls[0].digits_sent == std::vector<std::string>{"1"});
  REQUIRE(log.calls[0].replies.size() == 1);
  CHECK(log.calls[0].replies[0][0].at("action") == "talk");

  // Every webhook carried a valid HS256 JWT whose payload_hash is the body's SHA-256.
  const auto hits = scout.hits.snapshot();
  REQUIRE(hits.size() == 6);
  for (const auto& hit : hits) {
    INFO(hit.target << " " << hit.body);
    const auto auth = hit.headers.find("Authorization");
    REQUIRE(auth != hit.headers.end());
    const auto jwt = fake::decode_jwt(std::string_view(auth->second).substr(7));
    REQUIRE(jwt);
    CHECK(jwt->header.at("alg") == "HS256");
    CHECK(fake::verify_hs256_signature(*jwt, vonage.options().signature_secret));
    CHECK(jwt->claims.at("payload_hash") == fake::sha256_hex(hit.body));
    CHECK(jwt->claims.at("iss") == "Vonage");
    CHECK(jwt->claims.at("api_key") == vonage.options().api_key);
    CHECK(jwt->claims.at("application_id") == vonage.options().application_id);
  }
  const auto input = std::find_if(hits.begin(), hits.end(), [](const auto& h) { return h.path == "/webhooks/vonage/input"; });
  REQUIRE(input != hits.end());
  CHECK(input->target == "/webhooks/vonage/input?call=c1");
  const auto dtmf = json::parse(input->body);
  CHECK(dtmf.at("dtmf").at("digits") == "1");
  CHECK(dtmf.at("dtmf").at("timed_out") == false);
  CHECK(dtmf.at("uuid") == uuid);
  const auto human = json::parse(hits[3].body);
  CHECK(human.at("status") == "human");
  CHECK(human.at("call_uuid") == uuid);
  CHECK_FALSE(human.contains("uuid"));

  // GET /v1/calls/{uuid} reports the final status.
  httplib::Client client{"127.0.0.1", vonage.port()};
  const auto got = client.Get(("/v1/calls/" + uuid).c_str(),
                              {{"Authorization", "Bearer " + api_jwt(api_claims(vonage.options().application_id))}});
  REQUIRE(got);
  CHECK(got->status == 200);
  CHECK(json::parse(got->body).at("status") == "completed");
}

TEST_CASE("fake Vonage drives unanswered, busy and machine calls and records a bad NCCO reply", "[fakes]") {
  Receiver scout;
  scout.reply = [](const httplib::Request& req, httplib::Response& res) {
    if (req.path == "/webhooks/vonage/input") res.set_content("<html>oops</html>", "text/html");
  };
  REQUIRE(scout.server.start());
  FakeVonage vonage{vonage_options()};
  REQUIRE(vonage.start());
  vonage.script("15555551001", {Answer::no, {}, 20ms, 10ms});
  vonage.script("15555551002", {Answer::busy, {}, 20ms, 10ms});
  vonage.script("15555551003", {Answer::machine, {}, 20ms, 10ms});
  for (const auto* n : {"15555551001", "15555551002", "15555551003"}) {
    auto body = call_body(n, scout.url("/webhooks/vonage/event"));
    body["ncco"][1]["eventUrl"] = {scout.url("/webhooks/vonage/input")};
    const auto res = post_call(vonage, api_jwt(api_claims(vonage.options().application_id)), body);
    REQUIRE(res);
    REQUIRE(res->status == 201);
  }
  REQUIRE(vonage.wait_for(
      [](const VonageLog& l) {
        return l.calls.size() == 3 && std::all_of(l.calls.begin(), l.calls.end(), [](const auto& c) { return c.ended; });
      },
      5s));
  const auto log = vonage.log();
  CHECK(log.first_call_to("15555551001")->events == std::vector<std::string>{"started", "ringing", "unanswered"});
  CHECK(log.first_call_to("15555551002")->events == std::vector<std::string>{"started", "busy"});
  CHECK(log.first_call_to("15555551003")->events ==
        std::vector<std::string>{"started", "ringing", "answered", "machine", "completed"});
  // The machine's input timed out; the HTML reply is recorded as unusable.
  const auto input = std::find_if(log.webhooks.begin(), log.webhooks.end(), [](const auto& w) { return w.kind == "input"; });
  REQUIRE(input != log.webhooks.end());
  CHECK(json::parse(input->body).at("dtmf").at("timed_out") == true);
  CHECK(input->reply_error.find("not application/json") != std::string::npos);
}

TEST_CASE("fake Vonage unsigned and tampered modes", "[fakes]") {
  Receiver scout;
  REQUIRE(scout.server.start());
  FakeVonage vonage{vonage_options()};
  REQUIRE(vonage.start());
  vonage.script("15555551001", {Answer::no, {}, 10ms, 10ms});
  SECTION("unsigned: no Authorization header") {
    vonage.set_signing(VonageSigning::unsigned_);
    REQUIRE(post_call(vonage, api_jwt(api_claims(vonage.options().application_id)),
                      call_body("15555551001", scout.url("/e?token=abc")))->status == 201);
    REQUIRE(scout.hits.wait_for([](const auto& h) { return h.size() == 3; }, 5s));
    for (const auto& hit : scout.hits.snapshot()) {
      CHECK(hit.headers.count("Authorization") == 0);
      CHECK(hit.target == "/e?token=abc");
    }
  }
  SECTION("tampered: the JWT's payload_hash does not match the body") {
    vonage.set_signing(VonageSigning::tampered);
    REQUIRE(post_call(vonage, api_jwt(api_claims(vonage.options().application_id)),
                      call_body("15555551001", scout.url("/e")))->status == 201);
    REQUIRE(scout.hits.wait_for([](const auto& h) { return h.size() == 3; }, 5s));
    for (const auto& hit : scout.hits.snapshot()) {
      const auto jwt = fake::decode_jwt(std::string_view(hit.headers.find("Authorization")->second).substr(7));
      REQUIRE(jwt);
      CHECK(fake::verify_hs256_signature(*jwt, vonage.options().signature_secret));
      CHECK(jwt->claims.at("payload_hash") != fake::sha256_hex(hit.body));
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Twilio: signature (protocols.md §4.6)

TEST_CASE("fake Twilio signer reproduces the twilio-python request validator vectors", "[fakes]") {
  // protocols.md §4.6, twilio/twilio-python tests/unit/test_request_validator.py.
  const fake::FormParams params = {{"CallSid", "CA1234567890ABCDE"},
                                   {"Caller", "+14158675309"},
                                   {"Digits", "1234"},
                                   {"From", "+14158675309"},
                                   {"To", "+18005551212"}};
  CHECK(FakeTwilio::signature("12345", "https://mycompany.com/myapp.php?foo=1&bar=2", params) ==
        "RSOYDt4T1cUTdK1PDd93/VVr8B8=");
  CHECK(FakeTwilio::signature("12345", "https://mycompany.com:443/myapp.php?foo=1&bar=2", params) ==
        "kvajT1Ptam85bY51eRf/AJRuM3w=");
  CHECK(FakeTwilio::signature("12345", "http://mycompany.com:1234/myapp.php?foo=1&bar=2", params) ==
        "Zmvh+3yNM1Phv2jhDCwEM3q5ebU=");
  CHECK(FakeTwilio::signature("12345", "http://mycompany.com:80/myapp.php?foo=1&bar=2", params) ==
        "0ZXoZLH/DfblKGATFgpif+LLRf4=");
  // Order of params does not matter; duplicates count once.
  const fake::FormParams dup = {{"Sid", "CA123"}, {"SidAccount", "AC123"}, {"Digits", "5678"},
                                {"Digits", "1234"}, {"Digits", "1234"}};
  CHECK(FakeTwilio::signature("12345", "https://mycompany.com/myapp.php?foo=1&bar=2", dup) ==
        "IK+Dwps556ElfBT0I3Rgjkr1wJU=");
  // JSON body: only the URL with bodySHA256 is signed.
  const auto hash = fake::sha256_hex(R"({"property": "value", "boolean": true})");
  CHECK(hash == "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620");
  CHECK(FakeTwilio::signature("12345", "https://mycompany.com/myapp.php?foo=1&bar=2&bodySHA256=" + hash, {}) ==
        "a9nBmqA0ju/hNViExpshrM61xv4=");
}

// ---------------------------------------------------------------------------------------------
// Twilio: REST checks (protocols.md §4.1, §4.5, §5.3)

namespace {

const std::string k_twiml_gather =
    R"(<?xml version="1.0" encoding="UTF-8"?><Response><Gather input="dtmf" numDigits="1" timeout="10" action="ACTION" method="POST"><Say loop="2">Alice: URGENT LOW 48 mg/dL. Press 1 to acknowledge.</Say></Gather><Say>No key pressed. Goodbye.</Say></Response>)";

fake::FormParams twilio_call_form(const std::string& to, const std::string& status_url,
                                  const std::string& action_url) {
  std::string twiml = k_twiml_gather;
  twiml.replace(twiml.find("ACTION"), 6, action_url);
  return {{"To", to},
          {"From", "+14155550101"},
          {"Twiml", twiml},
          {"StatusCallback", status_url},
          {"StatusCallbackEvent", "initiated"},
          {"StatusCallbackEvent", "ringing"},
          {"StatusCallbackEvent", "answered"},
          {"StatusCallbackEvent", "completed"},
          {"StatusCallbackMethod", "POST"},
          {"Timeout", "45"},
          {"MachineDetection", "Enable"},
          {"TimeLimit", "300"}};
}

httplib::Result twilio_post(const FakeTwilio& twilio, const std::string& resource, const fake::FormParams& form,
                            const std::string& user, const std::string& password,
                            const std::string& account = "") {
  httplib::Client client{"127.0.0.1", twilio.port()};
  const auto sid = account.empty() ? twilio.options().account_sid : account;
  const auto path = "/2010-04-01/Accounts/" + sid + "/" + resource;
  return client.Post(path.c_str(), {{"Authorization", "Basic " + fake::base64(user + ":" + password)}},
                     fake::encode_form(form), "application/x-www-form-urlencoded");
}

}  // namespace

TEST_CASE("fake Twilio accepts a well-formed call and a message", "[fakes]") {
  FakeTwilio twilio{{}};
  REQUIRE(twilio.start());
  const auto& o = twilio.options();
  const auto call = twilio_post(twilio, "Calls.json",
                                twilio_call_form("+15555551000", "http://127.0.0.1:9/s", "http://127.0.0.1:9/g"),
                                o.account_sid, o.auth_token);
  REQUIRE(call);
  CHECK(call->status == 201);
  const auto doc = json::parse(call->body);
  CHECK(std::regex_match(doc.at("sid").get<std::string>(), std::regex{"^CA[0-9a-f]{32}$"}));
  CHECK(doc.at("status") == "queued");
  CHECK(doc.at("direction") == "outbound-api");

  const auto sms = twilio_post(twilio, "Messages.json",
                               {{"To", "+15555559999"}, {"From", "+14155550101"}, {"Body", "Alice: low"}},
                               o.account_sid, o.auth_token);
  REQUIRE(sms);
  CHECK(sms->status == 201);
  CHECK(std::regex_match(json::parse(sms->body).at("sid").get<std::string>(), std::regex{"^SM[0-9a-f]{32}$"}));
  CHECK(twilio.log().count_sms_to("+15555559999") == 1);
}

TEST_CASE("fake Twilio rejects bad credentials, numbers and TwiML", "[fakes]") {
  FakeTwilio twilio{{}};
  REQUIRE(twilio.start());
  const auto& o = twilio.options();
  auto form = twilio_call_form("+15555551000", "http://127.0.0.1:9/s", "http://127.0.0.1:9/g");
  auto set = [&](const std::string& key, const std::string& value) {
    for (auto& [k, v] : form) {
      if (k == key) v = value;
    }
  };
  std::string user = o.account_sid;
  std::string password = o.auth_token;
  std::string account;
  int status = 400;
  int code = 0;
  SECTION("wrong auth token") {
    password = "nope";
    status = 401;
    code = 20003;
  }
  SECTION("another account in the path") {
    account = "AC" + std::string(32, 'f');
    status = 401;
    code = 20003;
  }
  SECTION("To without '+'") {
    set("To", "15555551000");
    code = 21211;
  }
  SECTION("From without '+'") {
    set("From", "14155550101");
    code = 21212;
  }
  SECTION("To missing") {
    form.erase(form.begin());
    code = 21201;
  }
  SECTION("Url and Twiml") {
    form.emplace_back("Url", "http://127.0.0.1:9/twiml");
    code = 21205;
  }
  SECTION("malformed TwiML") {
    set("Twiml", "<Response><Say>unclosed</Response>");
    code = 12100;
  }
  SECTION("TwiML without a Response root") {
    set("Twiml", "<Say>hello</Say>");
    code = 12100;
  }
  SECTION("TwiML with a bad Gather") {
    set("Twiml", R"(<Response><Gather numDigits="0"><Say>x</Say></Gather></Response>)");
    code = 12100;
  }
  SECTION("TwiML over 4000 characters") {
    set("Twiml", "<Response><Say>" + std::string(4000, 'a') + "</Say></Response>");
    code = 21218;
  }
  SECTION("unknown StatusCallbackEvent") {
    form.emplace_back("StatusCallbackEvent", "in-progress");
    code = 20001;
  }
  SECTION("MachineDetection unknown") {
    set("MachineDetection", "Yes");
    code = 20001;
  }

  const auto res = twilio_post(twilio, "Calls.json", form, user, password, account);
  REQUIRE(res);
  CHECK(res->status == status);
  const auto doc = json::parse(res->body);
  CHECK(doc.at("code") == code);
  CHECK(doc.at("status") == status);
  CHECK(twilio.log().calls.empty());
}

TEST_CASE("fake Twilio rejects bad messages", "[fakes]") {
  FakeTwilio twilio{{}};
  REQUIRE(twilio.start());
  const auto& o = twilio.options();
  fake::FormParams form = {{"To", "+15555559999"}, {"From", "+14155550101"}, {"Body", "hello"}};
  int code = 0;
  SECTION("To without '+'") {
    form[0].second = "15555559999";
    code = 21211;
  }
  SECTION("no body") {
    form.pop_back();
    code = 21602;
  }
  SECTION("body over 1600") {
    form[2].second = std::string(1601, 'b');
    code = 21617;
  }
  SECTION("From and MessagingServiceSid") {
    form.emplace_back("MessagingServiceSid", "MG" + std::string(32, 'a'));
    code = 21603;
  }
  const auto res = twilio_post(twilio, "Messages.json", form, o.account_sid, o.auth_token);
  REQUIRE(res);
  CHECK(res->status == 400);
  CHECK(json::parse(res->body).at("code") == code);
}

TEST_CASE("minimal XML parser: well-formedness", "[fakes]") {
  std::string error;
  CHECK(fake::XmlParser::parse(R"(<?xml version="1.0"?><a x="1" y='2'>t &amp; u<b/><!-- c --></a>)", error));
  const auto doc = fake::XmlParser::parse(R"(<a x="&lt;1&gt;">t &amp; u</a>)", error);
  REQUIRE(doc);
  CHECK(*doc->attribute("x") == "<1>");
  CHECK(doc->text == "t & u");
  CHECK_FALSE(fake::XmlParser::parse("<a><b></a></b>", error));
  CHECK_FALSE(fake::XmlParser::parse("<a x=1></a>", error));
  CHECK_FALSE(fake::XmlParser::parse(R"(<a x="1" x="2"></a>)", error));
  CHECK_FALSE(fake::XmlParser::parse("<a>&nbsp;</a>", error));
  CHECK_FALSE(fake::XmlParser::parse("<a></a><b></b>", error));
  CHECK_FALSE(fake::XmlParser::parse("<a>", error));
  CHECK_FALSE(fake::XmlParser::parse("", error));
}

// ---------------------------------------------------------------------------------------------
// Twilio: driving calls

TEST_CASE("fake Twilio drives a call: signed status callbacks, Gather digits, TwiML reply", "[fakes]") {
  Receiver scout;
  scout.reply = [](const httplib::Request& req, httplib::Response& res) {
    if (req.path == "/webhooks/twilio/gather") {
      res.set_content(R"(<?xml version="1.0" encoding="UTF-8"?><Response><Say>Acknowledged. Goodbye.</Say></Response>)",
                      "text/xml");
    }
  };
  REQUIRE(scout.server.start());
  FakeTwilio twilio{{}};
  REQUIRE(twilio.start());
  twilio.script("+15555551000", {Answer::human, {"1"}, 20ms, 10ms});
  const auto& o = twilio.options();
  const auto status_url = scout.url("/webhooks/twilio/status?call=c1");
  const auto gather_url = scout.url("/webhooks/twilio/gather?call=c1");
  const auto res = twilio_post(twilio, "Calls.json", twilio_call_form("+15555551000", status_url, gather_url),
                               o.account_sid, o.auth_token);
  REQUIRE(res);
  REQUIRE(res->status == 201);

  REQUIRE(twilio.wait_for([](const TwilioLog& l) { return !l.calls.empty() && l.calls[0].ended; }, 5s));
  const auto log = twilio.log();
  CHECK(log.calls[0].callbacks == std::vector<std::string>{"initiated", "ringing", "in-progress", "completed"});
  CHECK(log.calls[0].digits_sent == std::vector<std::string>{"1"});
  CHECK(log.calls[0].answered_by == "human");
  REQUIRE(log.calls[0].replies.size() == 1);

  // Every webhook is signed over the exact URL it was sent to, with its form params.
  const auto hits = scout.hits.snapshot();
  REQUIRE(hits.size() == 5);
  int sequence = 0;
  for (const auto& hit : hits) {
    INFO(hit.target << " " << hit.body);
    const auto params = fake::parse_form(hit.body);
    const auto url = scout.server.base_url() + hit.target;
    const auto sig = hit.headers.find("X-Twilio-Signature");
    REQUIRE(sig != hit.headers.end());
    CHECK(sig->second == FakeTwilio::signature(o.auth_token, url, params));
    if (hit.path == "/webhooks/twilio/status") {
      CHECK(fake::form_values(params, "SequenceNumber") == std::vector<std::string>{std::to_string(sequence++)});
    } else {
      CHECK(fake::form_values(params, "Digits") == std::vector<std::string>{"1"});
    }
  }
  const auto last = fake::parse_form(hits.back().body);
  CHECK(fake::form_values(last, "CallStatus") == std::vector<std::string>{"completed"});
  CHECK(fake::form_values(last, "AnsweredBy") == std::vector<std::string>{"human"});
  CHECK(fake::form_values(last, "CallDuration").size() == 1);
}

TEST_CASE("fake Twilio sends only subscribed events and no-answer / busy outcomes", "[fakes]") {
  Receiver scout;
  REQUIRE(scout.server.start());
  FakeTwilio twilio{{}};
  REQUIRE(twilio.start());
  twilio.script("+15555551001", {Answer::no, {}, 10ms, 10ms});
  twilio.script("+15555551002", {Answer::busy, {}, 10ms, 10ms});
  const auto& o = twilio.options();
  for (const auto* n : {"+15555551001", "+15555551002"}) {
    auto form = twilio_call_form(n, scout.url("/s"), scout.url("/g"));
    form.erase(std::remove_if(form.begin(), form.end(), [](const auto& p) { return p.first == "StatusCallbackEvent"; }),
               form.end());
    REQUIRE(twilio_post(twilio, "Calls.json", form, o.account_sid, o.auth_token)->status == 201);
  }
  REQUIRE(twilio.wait_for([](const TwilioLog& l) { return l.calls.size() == 2 && l.calls[0].ended && l.calls[1].ended; }, 5s));
  const auto log = twilio.log();
  // Without StatusCallbackEvent only `completed` is sent (protocols.md §4.1).
  CHECK(log.first_call_to("+15555551001")->callbacks == std::vector<std::string>{"no-answer"});
  CHECK(log.first_call_to("+15555551002")->callbacks == std::vector<std::string>{"busy"});
}

TEST_CASE("wait_for gives up at its limit", "[fakes]") {
  FakeTwilio twilio{{}};
  const auto start = std::chrono::steady_clock::now();
  CHECK_FALSE(twilio.wait_for([](const TwilioLog& l) { return !l.calls.empty(); }, 50ms));
  CHECK(std::chrono::steady_clock::now() - start >= 50ms);
}
