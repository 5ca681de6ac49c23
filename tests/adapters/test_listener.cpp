// The webhook listener (adapters/listener.hpp; SPEC §5; protocols.md §2.4-2.6, §4.3-4.6) on
// loopback, driven with httplib::Client and, for slow clients, a raw socket.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <httplib.h>

#include <nlohmann/json.hpp>
#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>

#include <cctype>
#include <chrono>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <variant>
#include <vector>

#include "scout/adapters/call_script.hpp"
#include "scout/adapters/crypto.hpp"
#include "scout/adapters/listener.hpp"

namespace {

using scout::adapters::base64url_encode;
using scout::adapters::hmac_sha256;
using scout::adapters::sha256_hex;
using scout::adapters::start_listener;
using scout::adapters::twilio_signature;
using scout::adapters::WebhookListener;
using scout::adapters::WebhookSecrets;
using scout::core::CallProgress;
using scout::core::CallUpdate;
using scout::core::ErrorKind;
using scout::core::Event;
using scout::core::Keypress;
using scout::core::KeypressReply;
using nlohmann::json;
using namespace std::chrono_literals;

constexpr auto k_public_url = "https://scout.example";
constexpr auto k_url_token = "0123456789abcdef0123456789abcdef";
// protocols.md §2.6 (the python SDK's test secret).
constexpr auto k_vonage_secret = "qwertyuiopasdfghjklzxcvbnm123456";
// protocols.md §4.6 (twilio-python tests/unit/test_request_validator.py).
constexpr auto k_twilio_token = "12345";

constexpr auto k_answered_body =
    R"({"from":"447700900000","to":"447700900001","uuid":"aaaaaaaa-bbbb-cccc-dddd-0123456789ab",)"
    R"("conversation_uuid":"CON-aaaaaaaa-bbbb-cccc-dddd-0123456789ab","status":"answered",)"
    R"("direction":"outbound","timestamp":"2023-11-14T22:13:20.000Z"})";

using Params = std::vector<std::pair<std::string, std::string>>;

// Records the events the listener delivers and answers keypresses with a preset reply. A call
// whose call_key is "block" waits (bounded) until release().
class Recorder {
 public:
  std::optional<KeypressReply> operator()(const Event& event) {
    std::unique_lock lock{m_mutex};
    m_events.push_back(event);
    const std::string key = std::visit(
        [](const auto& e) -> std::string {
          if constexpr (requires { e.call_key; }) {
            return e.call_key;
          } else {
            return {};
          }
        },
        event);
    if (key == "throw") {
      throw std::runtime_error{"handler exploded"};
    }
    if (key == "block") {
      ++m_blocked;
      m_changed.notify_all();
      m_changed.wait_for(lock, 10s, [this] { return m_released; });
    }
    return m_reply;
  }

  void set_reply(std::optional<KeypressReply> reply) {
    const std::lock_guard lock{m_mutex};
    m_reply = std::move(reply);
  }
  std::vector<Event> events() const {
    const std::lock_guard lock{m_mutex};
    return m_events;
  }
  bool wait_blocked(std::chrono::milliseconds limit) {
    std::unique_lock lock{m_mutex};
    return m_changed.wait_for(lock, limit, [this] { return m_blocked > 0; });
  }
  void release() {
    {
      const std::lock_guard lock{m_mutex};
      m_released = true;
    }
    m_changed.notify_all();
  }

 private:
  mutable std::mutex m_mutex;
  std::condition_variable m_changed;
  std::vector<Event> m_events;
  std::optional<KeypressReply> m_reply;
  int m_blocked = 0;
  bool m_released = false;
};

WebhookSecrets secrets(std::string vonage_secret = "", std::string public_url = k_public_url) {
  WebhookSecrets s;
  s.public_url = std::move(public_url);
  s.url_token = k_url_token;
  s.vonage_signature_secret = std::move(vonage_secret);
  s.twilio_auth_token = k_twilio_token;
  return s;
}

scout::core::Listener loopback() {
  scout::core::Listener listener;
  listener.bind_host = "127.0.0.1";
  listener.bind_port = 0;
  listener.public_url = k_public_url;
  return listener;
}

// A listener on loopback that hands events to a Recorder. The recorder outlives the listener.
struct Fixture {
  explicit Fixture(WebhookSecrets s = secrets()) {
    auto started = start_listener(loopback(), std::move(s),
                                  [this](const Event& event) { return recorder(event); });
    REQUIRE(started);
    listener = std::move(*started);
    REQUIRE(listener->port() > 0);
  }

  httplib::Client client() const {
    httplib::Client cli{"127.0.0.1", listener->port()};
    cli.set_connection_timeout(5s);
    cli.set_read_timeout(5s);
    cli.set_write_timeout(5s);
    return cli;
  }

  Recorder recorder;
  std::unique_ptr<WebhookListener> listener;
};

// An HS256 JWT as Vonage signs webhooks (protocols.md §2.6), over header/payload written here.
std::string vonage_jwt(const std::string& body, const std::string& secret,
                       std::optional<std::int64_t> iat = std::nullopt) {
  const std::int64_t issued =
      iat.value_or(std::chrono::duration_cast<std::chrono::seconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count());
  const std::string header = R"({"alg":"HS256","typ":"JWT"})";
  std::string payload = R"({"iat":)";
  payload += std::to_string(issued);
  payload += R"(,"jti":"c5ba8f24-1a14-4c10-bfdf-3fbe8ce511b5","iss":"Vonage","payload_hash":")";
  payload += sha256_hex(body);
  payload += R"(","api_key":"a1b2c3d","application_id":"aaaaaaaa-bbbb-cccc-dddd-0123456789ab"})";
  std::string signing_input = base64url_encode(header);
  signing_input += '.';
  signing_input += base64url_encode(payload);
  std::string token = signing_input;
  token += '.';
  token += base64url_encode(hmac_sha256(secret, signing_input));
  return token;
}

httplib::Headers bearer(const std::string& jwt) {
  return {{"Authorization", "Bearer " + jwt}};
}

// application/x-www-form-urlencoded, as Twilio sends it.
std::string form_encode(const Params& params) {
  static constexpr char k_hex[] = "0123456789ABCDEF";
  std::string out;
  for (const auto& [name, value] : params) {
    if (!out.empty()) {
      out += '&';
    }
    for (const std::string* part : {&name, &value}) {
      for (const char c : *part) {
        const auto u = static_cast<unsigned char>(c);
        if (std::isalnum(u) != 0 || c == '-' || c == '_' || c == '.' || c == '~') {
          out += c;
        } else if (c == ' ') {
          out += '+';
        } else {
          out += '%';
          out += k_hex[u >> 4];
          out += k_hex[u & 15];
        }
      }
      if (part == &name) {
        out += '=';
      }
    }
  }
  return out;
}

// POSTs a form signed as Twilio signs it: over public_url + target, with the body params only.
httplib::Result post_twilio(httplib::Client& cli, const std::string& target, const Params& params,
                            const std::string& public_url = k_public_url,
                            const std::string& token = k_twilio_token) {
  const httplib::Headers headers{
      {"X-Twilio-Signature", twilio_signature(token, public_url + target, params)}};
  return cli.Post(target.c_str(), headers, form_encode(params),
                  "application/x-www-form-urlencoded");
}

const CallUpdate& update_at(const std::vector<Event>& events, std::size_t i) {
  REQUIRE(events.size() > i);
  REQUIRE(std::holds_alternative<CallUpdate>(events[i]));
  return std::get<CallUpdate>(events[i]);
}

const Keypress& keypress_at(const std::vector<Event>& events, std::size_t i) {
  REQUIRE(events.size() > i);
  REQUIRE(std::holds_alternative<Keypress>(events[i]));
  return std::get<Keypress>(events[i]);
}

const std::string k_token_query = std::string{"&token="} + k_url_token;

}  // namespace

TEST_CASE("listener: a signed Vonage event reaches the handler as a CallUpdate", "[listener]") {
  Fixture fx{secrets(k_vonage_secret)};
  auto cli = fx.client();
  const std::string body = k_answered_body;
  auto res = cli.Post("/webhooks/vonage/event?call=c17", bearer(vonage_jwt(body, k_vonage_secret)),
                      body, "application/json");
  REQUIRE(res);
  CHECK(res->status == 200);
  CHECK(res->body.empty());
  const auto events = fx.recorder.events();
  REQUIRE(events.size() == 1);
  const CallUpdate& update = update_at(events, 0);
  CHECK(update.call_key == "c17");
  CHECK(update.call_id == "aaaaaaaa-bbbb-cccc-dddd-0123456789ab");
  CHECK(update.progress == CallProgress::answered);
  CHECK(update.detail == "answered");
}

TEST_CASE("listener: Vonage event statuses map to CallProgress", "[listener]") {
  Fixture fx;
  auto cli = fx.client();
  const std::string target = "/webhooks/vonage/event?call=c1" + k_token_query;
  const std::vector<std::pair<std::string, CallProgress>> cases = {
      {R"({"status":"started","uuid":"u1"})", CallProgress::ringing},
      {R"({"status":"ringing","uuid":"u1"})", CallProgress::ringing},
      {R"({"status":"human","call_uuid":"u1"})", CallProgress::human},
      {R"({"status":"machine","call_uuid":"u1","sub_state":"beep_start"})", CallProgress::machine},
      {R"({"status":"completed","uuid":"u1","duration":"2"})", CallProgress::completed},
      {R"({"status":"busy","uuid":"u1","detail":"busy","sip_code":486})", CallProgress::busy},
      {R"({"status":"cancelled","uuid":"u1"})", CallProgress::cancelled},
      {R"({"status":"failed","uuid":"u1","detail":"cannot_route"})", CallProgress::failed},
      {R"({"status":"rejected","uuid":"u1"})", CallProgress::rejected},
      {R"({"status":"timeout","uuid":"u1"})", CallProgress::timeout},
      {R"({"status":"unanswered","uuid":"u1"})", CallProgress::unanswered},
  };
  for (const auto& [body, progress] : cases) {
    CAPTURE(body);
    auto res = cli.Post(target.c_str(), body, "application/json");
    REQUIRE(res);
    CHECK(res->status == 200);
  }
  const auto events = fx.recorder.events();
  REQUIRE(events.size() == cases.size());
  for (std::size_t i = 0; i < cases.size(); ++i) {
    CAPTURE(cases[i].first);
    const CallUpdate& update = update_at(events, i);
    CHECK(update.call_key == "c1");
    CHECK(update.call_id == "u1");
    CHECK(update.progress == cases[i].second);
  }
  CHECK(update_at(events, 7).detail == "failed: cannot_route");

  SECTION("statuses scout does not use are acknowledged and ignored") {
    for (const char* body : {R"({"status":"transfer","uuid":"u1"})",
                             R"({"reason":"x","conversation_uuid":"CON-1"})"}) {
      auto res = cli.Post(target.c_str(), body, "application/json");
      REQUIRE(res);
      CHECK(res->status == 200);
    }
    CHECK(fx.recorder.events().size() == cases.size());
  }
}

TEST_CASE("listener: Vonage requests that fail authentication get 401", "[listener]") {
  const std::string body = k_answered_body;

  SECTION("signed mode") {
    Fixture fx{secrets(k_vonage_secret)};
    auto cli = fx.client();
    const char* target = "/webhooks/vonage/event?call=c1";
    SECTION("forged signature") {
      auto res = cli.Post(target, bearer(vonage_jwt(body, "asdf")), body, "application/json");
      REQUIRE(res);
      CHECK(res->status == 401);
    }
    SECTION("tampered body") {
      std::string tampered = body;
      tampered.replace(tampered.find("answered"), 8, "rejected");
      auto res =
          cli.Post(target, bearer(vonage_jwt(body, k_vonage_secret)), tampered, "application/json");
      REQUIRE(res);
      CHECK(res->status == 401);
    }
    SECTION("missing Authorization header, even with the URL token") {
      const std::string with_token = std::string{target} + k_token_query;
      auto res = cli.Post(with_token.c_str(), body, "application/json");
      REQUIRE(res);
      CHECK(res->status == 401);
    }
    SECTION("a token issued long ago") {
      auto res = cli.Post(target, bearer(vonage_jwt(body, k_vonage_secret, 1700000000)), body,
                          "application/json");
      REQUIRE(res);
      CHECK(res->status == 401);
    }
    CHECK(fx.recorder.events().empty());
  }

  SECTION("token mode") {
    Fixture fx;
    auto cli = fx.client();
    SECTION("wrong token") {
      auto res = cli.Post("/webhooks/vonage/event?call=c1&token=0123456789abcdef0123456789abcdeX",
                          body, "application/json");
      REQUIRE(res);
      CHECK(res->status == 401);
    }
    SECTION("no token") {
      auto res = cli.Post("/webhooks/vonage/input?call=c1", body, "application/json");
      REQUIRE(res);
      CHECK(res->status == 401);
    }
    SECTION("the token in the body does not count") {
      auto res = cli.Post("/webhooks/vonage/event?call=c1", std::string{"token="} + k_url_token,
                          "application/x-www-form-urlencoded");
      REQUIRE(res);
      CHECK(res->status == 401);
    }
    CHECK(fx.recorder.events().empty());
  }

  SECTION("an empty url_token never matches an empty token") {
    WebhookSecrets s = secrets();
    s.url_token.clear();
    Fixture fx{s};
    auto cli = fx.client();
    auto res = cli.Post("/webhooks/vonage/event?call=c1&token=", body, "application/json");
    REQUIRE(res);
    CHECK(res->status == 401);
    CHECK(fx.recorder.events().empty());
  }
}

TEST_CASE("listener: Vonage input delivers the digits and answers with an NCCO", "[listener]") {
  Fixture fx;
  auto cli = fx.client();
  const std::string target = "/webhooks/vonage/input?call=c5" + k_token_query;
  const std::string body =
      R"({"speech":{},"dtmf":{"digits":"1","timed_out":false},"uuid":"u5",)"
      R"("conversation_uuid":"CON-5","timestamp":"2020-01-01T14:00:00.000Z"})";

  SECTION("acknowledged: a talk-only NCCO with the reply text") {
    fx.recorder.set_reply(
        KeypressReply{KeypressReply::Kind::acknowledged, "Acknowledged. Goodbye."});
    auto res = cli.Post(target.c_str(), body, "application/json");
    REQUIRE(res);
    CHECK(res->status == 200);
    CHECK(res->get_header_value("Content-Type") == "application/json");
    const json ncco = json::parse(res->body);
    CHECK(ncco == scout::adapters::vonage_ncco_say("Acknowledged. Goodbye."));
    REQUIRE(ncco.is_array());
    for (const auto& action : ncco) {
      CHECK(action.at("action") == "talk");
    }
    const auto events = fx.recorder.events();
    const Keypress& keypress = keypress_at(events, 0);
    CHECK(keypress.call_key == "c5");
    CHECK(keypress.call_id == "u5");
    CHECK(keypress.digits == "1");
  }

  SECTION("repeat_prompt: an input action pointing at the same URL") {
    fx.recorder.set_reply(KeypressReply{KeypressReply::Kind::repeat_prompt, "Glucose is 52."});
    auto res = cli.Post(target.c_str(), body, "application/json");
    REQUIRE(res);
    CHECK(res->status == 200);
    const json ncco = json::parse(res->body);
    const std::string same_url = std::string{k_public_url} + target;
    CHECK(ncco == scout::adapters::vonage_ncco("Glucose is 52.", true, same_url));
    bool has_input = false;
    for (const auto& action : ncco) {
      if (action.at("action") == "input") {
        has_input = true;
        CHECK(action.at("eventUrl") == json::array({same_url}));
      }
    }
    CHECK(has_input);
  }

  SECTION("no reply from the handler: a goodbye") {
    fx.recorder.set_reply(std::nullopt);
    auto res = cli.Post(target.c_str(), body, "application/json");
    REQUIRE(res);
    CHECK(res->status == 200);
    CHECK(json::parse(res->body) == scout::adapters::vonage_ncco_say("Thank you. Goodbye."));
  }

  SECTION("digits null or absent are an empty keypress") {
    fx.recorder.set_reply(KeypressReply{KeypressReply::Kind::no_input, "Goodbye."});
    for (const char* no_digits :
         {R"({"dtmf":{"digits":null,"timed_out":true},"uuid":"u5"})",
          R"({"dtmf":{"digits":"","timed_out":true},"uuid":"u5"})",
          R"({"speech":{},"uuid":"u5"})"}) {
      auto res = cli.Post(target.c_str(), no_digits, "application/json");
      REQUIRE(res);
      CHECK(res->status == 200);
    }
    const auto events = fx.recorder.events();
    REQUIRE(events.size() == 3);
    for (std::size_t i = 0; i < events.size(); ++i) {
      CHECK(keypress_at(events, i).digits.empty());
      CHECK(keypress_at(events, i).call_id == "u5");
    }
  }
}

TEST_CASE("listener: malformed bodies after authentication get 400", "[listener]") {
  SECTION("token mode") {
    Fixture fx;
    auto cli = fx.client();
    const std::vector<std::pair<std::string, std::vector<std::string>>> cases = {
        {"/webhooks/vonage/event",
         {"{not json", "[1,2]", R"({"status":7,"uuid":"u"})", R"({"status":"answered","uuid":5})"}},
        {"/webhooks/vonage/input",
         {"{not json", "", R"({"dtmf":"1","uuid":"u"})", R"({"dtmf":{"digits":1},"uuid":"u"})"}},
    };
    for (const auto& [path, bodies] : cases) {
      const std::string target = path + "?call=c1" + k_token_query;
      for (const std::string& body : bodies) {
        CAPTURE(path, body);
        auto res = cli.Post(target.c_str(), body, "application/json");
        REQUIRE(res);
        CHECK(res->status == 400);
      }
    }
    CHECK(fx.recorder.events().empty());
  }
  SECTION("signed mode: the signature is checked first, then the body") {
    Fixture fx{secrets(k_vonage_secret)};
    auto cli = fx.client();
    const std::string body = "{not json";
    auto res = cli.Post("/webhooks/vonage/event", bearer(vonage_jwt(body, k_vonage_secret)), body,
                        "application/json");
    REQUIRE(res);
    CHECK(res->status == 400);
    CHECK(fx.recorder.events().empty());
  }
  SECTION("Twilio status without CallStatus") {
    Fixture fx;
    auto cli = fx.client();
    auto res = post_twilio(cli, "/webhooks/twilio/status?call=c1", {{"CallSid", "CA1"}});
    REQUIRE(res);
    CHECK(res->status == 400);
    CHECK(fx.recorder.events().empty());
  }
}

TEST_CASE("listener: a signed Twilio status callback reaches the handler", "[listener]") {
  Fixture fx;
  auto cli = fx.client();
  const Params params = {{"CallSid", "CA1234567890ABCDE"}, {"AccountSid", "AC1"},
                         {"From", "+14158675309"},        {"To", "+18005551212"},
                         {"CallStatus", "ringing"},       {"ApiVersion", "2010-04-01"},
                         {"Timestamp", "Sun, 25 Mar 2018 09:53:19 +0000"}};
  auto res = post_twilio(cli, "/webhooks/twilio/status?call=c9", params);
  REQUIRE(res);
  CHECK(res->status == 200);
  CHECK(res->body.empty());
  const auto events = fx.recorder.events();
  const CallUpdate& update = update_at(events, 0);
  CHECK(update.call_key == "c9");
  CHECK(update.call_id == "CA1234567890ABCDE");
  CHECK(update.progress == CallProgress::ringing);
}

TEST_CASE("listener: Twilio CallStatus and AnsweredBy map to CallProgress", "[listener]") {
  Fixture fx;
  auto cli = fx.client();
  struct Case {
    std::string status;
    std::string answered_by;
    std::vector<CallProgress> expected;
  };
  const std::vector<Case> cases = {
      {"queued", "", {CallProgress::ringing}},
      {"initiated", "", {CallProgress::ringing}},
      {"in-progress", "", {CallProgress::answered}},
      {"in-progress", "human", {CallProgress::human}},
      {"in-progress", "machine_start", {CallProgress::machine}},
      {"in-progress", "fax", {CallProgress::machine}},
      {"in-progress", "unknown", {CallProgress::answered}},
      {"completed", "", {CallProgress::completed}},
      {"completed", "machine_end_beep", {CallProgress::machine, CallProgress::completed}},
      {"busy", "", {CallProgress::busy}},
      {"failed", "", {CallProgress::failed}},
      {"no-answer", "", {CallProgress::unanswered}},
      {"canceled", "", {CallProgress::cancelled}},
      {"answered-ish", "", {}},
  };
  for (const Case& c : cases) {
    CAPTURE(c.status, c.answered_by);
    const std::size_t before = fx.recorder.events().size();
    Params params = {{"CallSid", "CA2"}, {"CallStatus", c.status}};
    if (!c.answered_by.empty()) {
      params.emplace_back("AnsweredBy", c.answered_by);
    }
    auto res = post_twilio(cli, "/webhooks/twilio/status?call=c2", params);
    REQUIRE(res);
    CHECK(res->status == 200);
    const auto events = fx.recorder.events();
    REQUIRE(events.size() == before + c.expected.size());
    for (std::size_t i = 0; i < c.expected.size(); ++i) {
      CHECK(update_at(events, before + i).progress == c.expected[i]);
      CHECK(update_at(events, before + i).call_key == "c2");
    }
  }
}

TEST_CASE("listener: Twilio requests that fail authentication get 401", "[listener]") {
  const Params params = {{"CallSid", "CA3"}, {"CallStatus", "completed"}};
  const std::string target = "/webhooks/twilio/status?call=c3";

  SECTION("with an auth token") {
    Fixture fx;
    auto cli = fx.client();
    SECTION("signed with another token") {
      auto res = post_twilio(cli, target, params, k_public_url, "54321");
      REQUIRE(res);
      CHECK(res->status == 401);
    }
    SECTION("signed over another URL") {
      auto res = post_twilio(cli, target, params, "https://evil.example");
      REQUIRE(res);
      CHECK(res->status == 401);
    }
    SECTION("tampered parameter") {
      const httplib::Headers headers{
          {"X-Twilio-Signature", twilio_signature(k_twilio_token, k_public_url + target, params)}};
      auto res = cli.Post(target.c_str(), headers, "CallSid=CA3&CallStatus=busy",
                          "application/x-www-form-urlencoded");
      REQUIRE(res);
      CHECK(res->status == 401);
    }
    SECTION("query parameters are not form parameters") {
      // Signed as if `call` were a body parameter: the listener signs the body params only.
      Params with_call = params;
      with_call.emplace_back("call", "c3");
      const httplib::Headers headers{{"X-Twilio-Signature",
                                      twilio_signature(k_twilio_token, k_public_url + target,
                                                       with_call)}};
      auto res = cli.Post(target.c_str(), headers, form_encode(params),
                          "application/x-www-form-urlencoded");
      REQUIRE(res);
      CHECK(res->status == 401);
    }
    SECTION("missing signature") {
      auto res = cli.Post(target.c_str(), form_encode(params), "application/x-www-form-urlencoded");
      REQUIRE(res);
      CHECK(res->status == 401);
    }
    CHECK(fx.recorder.events().empty());
  }

  SECTION("without a Twilio provider") {
    WebhookSecrets s = secrets();
    s.twilio_auth_token.clear();
    Fixture fx{s};
    auto cli = fx.client();
    auto res = post_twilio(cli, target, params, k_public_url, "");
    REQUIRE(res);
    CHECK(res->status == 401);
    CHECK(fx.recorder.events().empty());
  }
}

TEST_CASE("listener: Twilio signatures over a public_url with a port", "[listener]") {
  const std::string public_url = "https://scout.example:8443";
  Fixture fx{secrets("", public_url)};
  auto cli = fx.client();
  const Params params = {{"CallSid", "CA4"}, {"CallStatus", "busy"}, {"Digits", "1 2&3"}};
  auto res = post_twilio(cli, "/webhooks/twilio/status?call=c4", params, public_url);
  REQUIRE(res);
  CHECK(res->status == 200);
  CHECK(update_at(fx.recorder.events(), 0).progress == CallProgress::busy);

  // The default port may be added or left out (protocols.md §4.6 step 4); another port may not.
  Fixture fx443{secrets("", "https://scout.example")};
  auto cli443 = fx443.client();
  auto with_default = post_twilio(cli443, "/webhooks/twilio/status?call=c4", params,
                                  "https://scout.example:443");
  REQUIRE(with_default);
  CHECK(with_default->status == 200);
  auto other_port = post_twilio(cli443, "/webhooks/twilio/status?call=c4", params,
                                "https://scout.example:8443");
  REQUIRE(other_port);
  CHECK(other_port->status == 401);
}

TEST_CASE("listener: Twilio gather delivers Digits and answers with TwiML", "[listener]") {
  Fixture fx;
  auto cli = fx.client();
  const std::string target = "/webhooks/twilio/gather?call=c6";
  const Params params = {{"CallSid", "CA6"}, {"Digits", "2"}, {"FinishedOnKey", ""}};

  SECTION("escalated: Say only") {
    fx.recorder.set_reply(
        KeypressReply{KeypressReply::Kind::escalated, "Alerting your contacts now. Goodbye."});
    auto res = post_twilio(cli, target, params);
    REQUIRE(res);
    CHECK(res->status == 200);
    CHECK(res->get_header_value("Content-Type") == "text/xml");
    CHECK(res->body == scout::adapters::twilio_twiml_say("Alerting your contacts now. Goodbye."));
    CHECK(res->body.find("<Say") != std::string::npos);
    CHECK(res->body.find("<Gather") == std::string::npos);
    const auto events = fx.recorder.events();
    const Keypress& keypress = keypress_at(events, 0);
    CHECK(keypress.call_key == "c6");
    CHECK(keypress.call_id == "CA6");
    CHECK(keypress.digits == "2");
  }

  SECTION("repeat_prompt: a Gather whose action is the same URL") {
    fx.recorder.set_reply(KeypressReply{KeypressReply::Kind::repeat_prompt, "Glucose is 52."});
    auto res = post_twilio(cli, target, params);
    REQUIRE(res);
    CHECK(res->status == 200);
    const std::string same_url = std::string{k_public_url} + target;
    CHECK(res->body == scout::adapters::twilio_twiml("Glucose is 52.", true, same_url));
    CHECK(res->body.find("<Gather") != std::string::npos);
    CHECK(res->body.find("action=\"" + scout::adapters::xml_escape(same_url) + "\"") !=
          std::string::npos);
  }

  SECTION("no reply from the handler: a goodbye") {
    fx.recorder.set_reply(std::nullopt);
    auto res = post_twilio(cli, target, {{"CallSid", "CA6"}});
    REQUIRE(res);
    CHECK(res->status == 200);
    CHECK(res->body == scout::adapters::twilio_twiml_say("Thank you. Goodbye."));
    CHECK(keypress_at(fx.recorder.events(), 0).digits.empty());
  }
}

TEST_CASE("listener: only the four routes exist", "[listener]") {
  Fixture fx;
  auto cli = fx.client();
  const std::string query = std::string{"?call=c1"} + k_token_query;

  SECTION("unknown paths are 404") {
    for (const char* path : {"/", "/webhooks/vonage/answer", "/webhooks/vonage/event/x",
                             "/webhooks/twilio", "/Webhooks/vonage/event"}) {
      CAPTURE(path);
      auto post = cli.Post((path + query).c_str(), "{}", "application/json");
      REQUIRE(post);
      CHECK(post->status == 404);
      auto get = cli.Get(path);
      REQUIRE(get);
      CHECK(get->status == 404);
    }
  }
  SECTION("other methods on a route are 405") {
    for (const char* path : {"/webhooks/vonage/event", "/webhooks/vonage/input",
                             "/webhooks/twilio/status", "/webhooks/twilio/gather"}) {
      CAPTURE(path);
      const std::string target = path + query;
      auto get = cli.Get(target.c_str());
      REQUIRE(get);
      CHECK(get->status == 405);
      CHECK(get->get_header_value("Allow") == "POST");
      auto put = cli.Put(target.c_str(), "{}", "application/json");
      REQUIRE(put);
      CHECK(put->status == 405);
      auto del = cli.Delete(target.c_str());
      REQUIRE(del);
      CHECK(del->status == 405);
      auto patch = cli.Patch(target.c_str(), "{}", "application/json");
      REQUIRE(patch);
      CHECK(patch->status == 405);
    }
  }
  CHECK(fx.recorder.events().empty());
}

TEST_CASE("listener: bodies over 64 KiB get 413", "[listener]") {
  Fixture fx;
  auto cli = fx.client();
  const std::string target = std::string{"/webhooks/vonage/event?call=c1"} + k_token_query;
  std::string body = R"({"status":"answered","uuid":"u1","pad":")";
  body.append(65 * 1024, 'x');
  body += "\"}";
  auto res = cli.Post(target.c_str(), body, "application/json");
  REQUIRE(res);
  CHECK(res->status == 413);

  // A body just under the limit is still served.
  std::string fits = R"({"status":"answered","uuid":"u1","pad":")";
  fits.append(60 * 1024, 'x');
  fits += "\"}";
  auto ok = cli.Post(target.c_str(), fits, "application/json");
  REQUIRE(ok);
  CHECK(ok->status == 200);
  CHECK(fx.recorder.events().size() == 1);
}

namespace {

// Sends `request` on a fresh loopback connection and returns what the server answers until it
// closes the connection (at most 10 s).
std::string raw_exchange(int port, const std::string& request) {
  const int sock = ::socket(AF_INET, SOCK_STREAM, 0);
  if (sock < 0) {
    return {};
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval limit{};
  limit.tv_sec = 10;
  std::string answer;
  if (::setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit) == 0 &&
      ::connect(sock, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
    std::size_t sent = 0;
    while (sent < request.size()) {
      const ssize_t n = ::send(sock, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) {
        break;
      }
      sent += static_cast<std::size_t>(n);
    }
    char buffer[4096];
    ssize_t got = 0;
    while ((got = ::recv(sock, buffer, sizeof buffer, 0)) > 0) {
      answer.append(buffer, static_cast<std::size_t>(got));
      if (answer.find("\r\n\r\n") != std::string::npos) {
        break;
      }
    }
  }
  ::close(sock);
  return answer;
}

}  // namespace

TEST_CASE("listener: chunked bodies over 64 KiB get 413", "[listener]") {
  Fixture fx;
  std::string request = std::string{"POST /webhooks/vonage/event?call=c1"} + k_token_query +
                        " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                        "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
  const std::string chunk(8 * 1024, ' ');
  for (int i = 0; i < 9; ++i) {
    request += "2000\r\n";
    request += chunk;
    request += "\r\n";
  }
  request += "0\r\n\r\n";
  const std::string answer = raw_exchange(fx.listener->port(), request);
  CHECK_THAT(answer, Catch::StartsWith("HTTP/1.1 413"));
  CHECK(fx.recorder.events().empty());
}

TEST_CASE("listener: a handler exception is a 500", "[listener]") {
  Fixture fx;
  auto cli = fx.client();
  const std::string target = std::string{"/webhooks/vonage/input?call=throw"} + k_token_query;
  auto res = cli.Post(target.c_str(), R"({"dtmf":{"digits":"1"},"uuid":"u"})", "application/json");
  REQUIRE(res);
  CHECK(res->status == 500);
  // The listener keeps serving.
  const std::string next = std::string{"/webhooks/vonage/event?call=c1"} + k_token_query;
  auto after = cli.Post(next.c_str(), R"({"status":"ringing","uuid":"u"})", "application/json");
  REQUIRE(after);
  CHECK(after->status == 200);
}

TEST_CASE("listener: a blocked handler call does not stop other requests", "[listener]") {
  Fixture fx;
  const std::string blocked_target =
      std::string{"/webhooks/vonage/event?call=block"} + k_token_query;
  auto blocked = std::async(std::launch::async, [&] {
    auto cli = fx.client();
    cli.set_read_timeout(15s);
    auto res = cli.Post(blocked_target.c_str(), R"({"status":"ringing","uuid":"u"})",
                        "application/json");
    return res ? res->status : -1;
  });
  REQUIRE(fx.recorder.wait_blocked(5s));

  auto cli = fx.client();
  const std::string target = std::string{"/webhooks/vonage/event?call=c2"} + k_token_query;
  auto res = cli.Post(target.c_str(), R"({"status":"answered","uuid":"u2"})", "application/json");
  fx.recorder.release();
  REQUIRE(res);
  CHECK(res->status == 200);
  REQUIRE(blocked.wait_for(10s) == std::future_status::ready);
  CHECK(blocked.get() == 200);
}

TEST_CASE("listener: a slow client neither blocks others nor stays connected", "[listener]") {
  Fixture fx;
  const int sock = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(sock >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(fx.listener->port()));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::connect(sock, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  // Headers announce a body that never comes.
  const std::string head = std::string{"POST /webhooks/vonage/event?call=c1"} + k_token_query +
                           " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                           "Content-Length: 100\r\n\r\n{\"status\":";
  REQUIRE(::send(sock, head.data(), head.size(), MSG_NOSIGNAL) ==
          static_cast<ssize_t>(head.size()));

  const auto start = std::chrono::steady_clock::now();
  auto cli = fx.client();
  const std::string target = std::string{"/webhooks/vonage/event?call=c2"} + k_token_query;
  auto res = cli.Post(target.c_str(), R"({"status":"answered","uuid":"u2"})", "application/json");
  REQUIRE(res);
  CHECK(res->status == 200);
  CHECK(std::chrono::steady_clock::now() - start < 5s);

  // SPEC §5: the stalled request is cut off after the 10 s read timeout (bounded wait: 20 s).
  timeval limit{};
  limit.tv_sec = 20;
  REQUIRE(::setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit) == 0);
  char buffer[512];
  ssize_t got = 0;
  std::string answer;
  do {
    got = ::recv(sock, buffer, sizeof buffer, 0);
    if (got > 0) {
      answer.append(buffer, static_cast<std::size_t>(got));
    }
  } while (got > 0);
  const auto elapsed = std::chrono::steady_clock::now() - start;
  ::close(sock);
  CHECK(got == 0);  // closed by the server, not by our receive timeout
  // Cut off without an answer 10 s after the connection opened (SPEC §5).
  CHECK(answer.empty());
  CHECK(elapsed >= 9s);
  CHECK(elapsed < 14s);
  CHECK(update_at(fx.recorder.events(), 0).call_key == "c2");
  CHECK(fx.recorder.events().size() == 1);
}

TEST_CASE("listener: start and stop", "[listener]") {
  Recorder recorder;
  const auto handler = [&recorder](const Event& event) { return recorder(event); };

  SECTION("an address already in use is an io error naming it") {
    auto first = start_listener(loopback(), secrets(), handler);
    REQUIRE(first);
    scout::core::Listener same = loopback();
    same.bind_port = (*first)->port();
    auto second = start_listener(same, secrets(), handler);
    REQUIRE_FALSE(second);
    CHECK(second.error().kind == ErrorKind::io);
    CHECK_THAT(second.error().message,
               Catch::Contains("127.0.0.1:" + std::to_string(same.bind_port)));
  }
  SECTION("an address not on this host is an io error") {
    scout::core::Listener elsewhere = loopback();
    elsewhere.bind_host = "192.0.2.1";  // TEST-NET-1 (RFC 5737)
    auto started = start_listener(elsewhere, secrets(), handler);
    REQUIRE_FALSE(started);
    CHECK(started.error().kind == ErrorKind::io);
  }
  SECTION("TLS files that do not load are a config error") {
    scout::core::Listener tls = loopback();
    tls.tls = scout::core::ListenerTls{"/nonexistent/cert.pem", "/nonexistent/key.pem"};
    auto started = start_listener(tls, secrets(), handler);
    REQUIRE_FALSE(started);
    CHECK(started.error().kind == ErrorKind::config);
    CHECK_THAT(started.error().message, Catch::Contains("/nonexistent/cert.pem"));
  }
  SECTION("stop is idempotent and closes the port") {
    auto started = start_listener(loopback(), secrets(), handler);
    REQUIRE(started);
    const int port = (*started)->port();
    (*started)->stop();
    (*started)->stop();
    httplib::Client cli{"127.0.0.1", port};
    cli.set_connection_timeout(2s);
    auto res = cli.Get("/webhooks/vonage/event");
    CHECK_FALSE(res);
  }
}

namespace {

// A self-signed P-256 certificate for 127.0.0.1 and its key, written as PEM files.
bool write_self_signed(const std::filesystem::path& cert_path,
                       const std::filesystem::path& key_path) {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  X509* cert = X509_new();
  bool ok = key != nullptr && cert != nullptr;
  if (ok) {
    X509_set_version(cert, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
    X509_gmtime_adj(X509_getm_notBefore(cert), -60);
    X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
    X509_set_pubkey(cert, key);
    X509_NAME* name = X509_get_subject_name(cert);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>("127.0.0.1"), -1, -1, 0);
    X509_set_issuer_name(cert, name);
    ok = X509_sign(cert, key, EVP_sha256()) > 0;
  }
  if (ok) {
    FILE* cert_file = std::fopen(cert_path.c_str(), "w");
    FILE* key_file = std::fopen(key_path.c_str(), "w");
    ok = cert_file != nullptr && key_file != nullptr && PEM_write_X509(cert_file, cert) == 1 &&
         PEM_write_PrivateKey(key_file, key, nullptr, nullptr, 0, nullptr, nullptr) == 1;
    if (cert_file != nullptr) {
      std::fclose(cert_file);
    }
    if (key_file != nullptr) {
      std::fclose(key_file);
    }
  }
  X509_free(cert);
  EVP_PKEY_free(key);
  return ok;
}

}  // namespace

TEST_CASE("listener: serves HTTPS with listener.tls", "[listener]") {
  const auto dir = std::filesystem::temp_directory_path() /
                   ("scout-listener-tls-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  REQUIRE(write_self_signed(dir / "cert.pem", dir / "key.pem"));

  Recorder recorder;
  scout::core::Listener tls = loopback();
  tls.tls = scout::core::ListenerTls{(dir / "cert.pem").string(), (dir / "key.pem").string()};
  auto started =
      start_listener(tls, secrets(), [&recorder](const Event& e) { return recorder(e); });
  REQUIRE(started);

  httplib::SSLClient cli{"127.0.0.1", (*started)->port()};
  cli.enable_server_certificate_verification(false);
  cli.set_connection_timeout(5s);
  cli.set_read_timeout(5s);
  const std::string target = std::string{"/webhooks/vonage/event?call=c8"} + k_token_query;
  auto res = cli.Post(target.c_str(), R"({"status":"ringing","uuid":"u8"})", "application/json");
  REQUIRE(res);
  CHECK(res->status == 200);
  CHECK(update_at(recorder.events(), 0).call_key == "c8");
  (*started)->stop();
  std::filesystem::remove_all(dir);
}

// ---------------------------------------------------------------------------------------------
// Slow and hostile clients (SPEC §5)

namespace {

int connect_loopback(int port) {
  const int sock = ::socket(AF_INET, SOCK_STREAM, 0);
  if (sock < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(sock, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(sock);
    return -1;
  }
  return sock;
}

// Captures spdlog's output while alive.
class LogCapture {
 public:
  LogCapture()
      : sink_(std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(4096)),
        previous_(spdlog::default_logger()) {
    auto logger = std::make_shared<spdlog::logger>("capture", sink_);
    logger->set_level(spdlog::level::info);
    spdlog::set_default_logger(logger);
  }
  ~LogCapture() { spdlog::set_default_logger(previous_); }
  LogCapture(const LogCapture&) = delete;
  LogCapture& operator=(const LogCapture&) = delete;
  std::size_t count(const std::string& text) {
    std::size_t n = 0;
    for (const auto& line : sink_->last_formatted()) n += line.find(text) != std::string::npos;
    return n;
  }

 private:
  std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt> sink_;
  std::shared_ptr<spdlog::logger> previous_;
};

}  // namespace

TEST_CASE("listener: a request trickled a byte at a time is cut off 10 s after it connected",
          "[listener][hostile]") {
  Fixture fx;
  const int sock = connect_loopback(fx.listener->port());
  REQUIRE(sock >= 0);
  const auto opened = std::chrono::steady_clock::now();
  timeval slice{};
  slice.tv_usec = 300'000;
  REQUIRE(::setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &slice, sizeof slice) == 0);
  // Headers that never end: one byte every 300 ms would take minutes.
  const std::string trickle = "POST /webhooks/vonage/event?call=c1 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                              "X-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
  bool closed = false;
  for (std::size_t i = 0; i < trickle.size() && !closed; ++i) {
    ::send(sock, &trickle[i], 1, MSG_NOSIGNAL);
    char c = 0;
    const ssize_t got = ::recv(sock, &c, 1, 0);
    closed = got == 0 || (got < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
  }
  const auto elapsed = std::chrono::steady_clock::now() - opened;
  ::close(sock);
  CHECK(closed);
  CHECK(elapsed >= 9s);
  CHECK(elapsed < 13s);
  CHECK(fx.recorder.events().empty());
}

TEST_CASE("listener: 500 slow connections and a flood of forged requests do not keep a signed "
          "webhook waiting",
          "[listener][hostile]") {
  Fixture fx{secrets(k_vonage_secret)};
  std::vector<int> slow;
  for (int i = 0; i < 500; ++i) {
    const int sock = connect_loopback(fx.listener->port());
    if (sock < 0) break;
    const std::string part = "POST /webhooks/vonage/event HTTP/1.1\r\nHost: 127.0.0.1\r\n";
    ::send(sock, part.data(), part.size(), MSG_NOSIGNAL);
    slow.push_back(sock);
  }
  CHECK(slow.size() == 500);
  std::atomic<bool> stop{false};
  std::atomic<int> forged{0};
  std::vector<std::thread> flood;
  for (int t = 0; t < 2; ++t) {
    flood.emplace_back([&] {
      auto cli = fx.client();
      for (int i = 0; i < 3000 && !stop; ++i) {
        auto res = cli.Post("/webhooks/vonage/event?call=c1", bearer("not.a.jwt"),
                            std::string{k_answered_body}, "application/json");
        if (res && res->status == 401) ++forged;
      }
    });
  }
  std::vector<std::chrono::steady_clock::duration> waits;
  for (int i = 0; i < 5; ++i) {
    auto cli = fx.client();
    const std::string body = k_answered_body;
    const auto start = std::chrono::steady_clock::now();
    auto res = cli.Post(("/webhooks/vonage/event?call=g" + std::to_string(i)).c_str(),
                        bearer(vonage_jwt(body, k_vonage_secret)), body, "application/json");
    waits.push_back(std::chrono::steady_clock::now() - start);
    REQUIRE(res);
    CHECK(res->status == 200);
  }
  stop = true;
  for (auto& t : flood) t.join();
  for (const int sock : slow) ::close(sock);
  for (const auto wait : waits) CHECK(wait < 1s);
  CHECK(forged > 0);
  CHECK(fx.recorder.events().size() == 5);
}

TEST_CASE("listener: failed authentications are logged as a summary, not a line each",
          "[listener][hostile]") {
  LogCapture logs;
  Fixture fx{secrets(k_vonage_secret)};
  auto cli = fx.client();
  for (int i = 0; i < 200; ++i) {
    auto res = cli.Post("/webhooks/vonage/event?call=c1", bearer("not.a.jwt"),
                        std::string{k_answered_body}, "application/json");
    REQUIRE(res);
    REQUIRE(res->status == 401);
  }
  // The first failure of a quiet period is logged at once; the rest wait for the summary.
  CHECK(logs.count("webhook authentication failed") == 1);
  fx.listener->stop();  // stopping flushes the summary
  CHECK(logs.count("webhook authentication failed 199 times") == 1);
}

TEST_CASE("listener: a call key that is not UTF-8 gets an answer, not a crash (found by fuzz_webhook)",
          "[listener]") {
  Recorder recorder;
  recorder.set_reply(KeypressReply{KeypressReply::Kind::repeat_prompt, "Glucose is 52."});
  const auto handler = [&recorder](const Event& event) { return recorder(event); };
  scout::adapters::WebhookRequest request;
  request.target = std::string{"/webhooks/vonage/input?call=c\xcb\x31"} + k_token_query;
  request.body = R"({"dtmf":{"digits":"7","timed_out":false},"uuid":"u1"})";
  const auto answer = scout::adapters::answer_webhook(secrets(), handler, "POST", request);
  CHECK(answer.status == 200);
  CHECK(answer.content_type == "application/json");
  CHECK(json::parse(answer.body).is_array());
}
