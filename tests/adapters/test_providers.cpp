// Specification of scout/adapters/providers.hpp: the Vonage, Twilio and console providers and
// the ProviderChain (SPEC §4.7; protocols.md §2–§4). The HTTP providers talk to in-process
// cpp-httplib fakes on 127.0.0.1 that check what the real services check (protocols.md §5.2,
// §5.3) and answer errors the way the real services do.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <chrono>
#include <deque>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "scout/adapters/crypto.hpp"
#include "scout/adapters/providers.hpp"
#include "support/fake_nightscout.hpp"

namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using scout::core::CallProgress;
using scout::core::ErrorKind;
using scout::test::FakeNightscout;
namespace ad = scout::adapters;
namespace core = scout::core;

constexpr auto k_patient = "+14155550100";
constexpr auto k_from = "+14155550199";
constexpr auto k_app_id = "aaaaaaaa-bbbb-cccc-dddd-0123456789ab";
constexpr auto k_api_key = "a1b2c3d4";
constexpr auto k_api_secret = "Sup3rS3cretValue";
constexpr auto k_account_sid = "AC0123456789abcdef0123456789abcdef";
constexpr auto k_auth_token = "twilio-auth-token-0123456789abcdef";
constexpr auto k_public_url = "https://scout.example";
constexpr auto k_url_token = "0123456789abcdef0123456789abcdef";

std::string read_file(const std::string& path) {
  std::ifstream in{path, std::ios::binary};
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string key_file(const char* name) {
  return read_file(std::string{SCOUT_TEST_DATA_DIR} + "/vonage/" + name);
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

// Verifies an RS256 signature with a PEM public key (OpenSSL directly, not crypto.cpp's signer).
bool rs256_verifies(const std::string& signing_input, const std::string& signature,
                    const std::string& public_pem) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio{
      BIO_new_mem_buf(public_pem.data(), static_cast<int>(public_pem.size())), &BIO_free};
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key{
      PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr), &EVP_PKEY_free};
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx{EVP_MD_CTX_new(), &EVP_MD_CTX_free};
  if (!key || !ctx ||
      EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key.get()) != 1) {
    return false;
  }
  return EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(signature.data()),
                          signature.size(),
                          reinterpret_cast<const unsigned char*>(signing_input.data()),
                          signing_input.size()) == 1;
}

std::int64_t now_s() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// What a fake saw of one request, for assertions after the call.
struct Seen {
  std::string method;
  std::string path;
  httplib::Headers headers;
  std::string body;
  httplib::Params params;
};

// RFC 7807 problem answer, as Vonage sends them (protocols.md §2.7).
void problem(httplib::Response& res, int status, const std::string& title,
             const std::string& detail, json extra = json::object()) {
  json body{{"type", "https://developer.nexmo.com/api-errors#" + title},
            {"title", title},
            {"detail", detail},
            {"instance", "a813c536-43f6-4568-acbf-f36ef2db955a"}};
  body.update(extra);
  res.status = status;
  res.set_content(body.dump(), "application/problem+json");
}

// Twilio's legacy error answer (protocols.md §4.7).
void twilio_error(httplib::Response& res, int status, int code, const std::string& message) {
  res.status = status;
  res.set_content(json{{"code", code},
                       {"message", message},
                       {"more_info", "https://www.twilio.com/docs/errors/" + std::to_string(code)},
                       {"status", status}}
                      .dump(),
                  "application/json");
}

const std::regex k_vonage_number{R"(^[1-9]\d{6,14}$)"};
const std::regex k_e164{R"(^\+[1-9]\d{1,14}$)"};

bool absolute_url(const json& value) {
  return value.is_string() &&
         std::regex_match(value.get<std::string>(), std::regex{R"(^https?://[^/\s]+\S*$)"});
}

// The §5.2 NCCO checks; "" when acceptable.
std::string ncco_problem(const json& ncco) {
  static const std::set<std::string> actions{"talk",   "input",        "record", "connect",
                                             "stream", "conversation", "notify"};
  if (!ncco.is_array() || ncco.empty()) {
    return "ncco must be a non-empty array";
  }
  for (std::size_t i = 0; i < ncco.size(); ++i) {
    const json& action = ncco[i];
    if (!action.is_object() || !action.contains("action") || !action["action"].is_string() ||
        actions.count(action["action"].get<std::string>()) == 0) {
      return "ncco[" + std::to_string(i) + "].action is invalid";
    }
    const std::string name = action["action"];
    if (name == "talk") {
      if (!action.contains("text") || !action["text"].is_string() ||
          action["text"].get<std::string>().empty() ||
          action["text"].get<std::string>().size() > 1500) {
        return "talk.text must be 1..1500 characters";
      }
      if (action.value("bargeIn", false) &&
          (i + 1 >= ncco.size() || ncco[i + 1].value("action", "") != "input")) {
        return "bargeIn true must be followed by an input action";
      }
    } else if (name == "input") {
      const json type = action.value("type", json());
      if (!type.is_array() || type.empty()) {
        return "input.type must be a non-empty array";
      }
      for (const auto& t : type) {
        if (t != "dtmf" && t != "speech") {
          return "input.type has an unknown value";
        }
      }
      if (action.contains("dtmf")) {
        const json& dtmf = action["dtmf"];
        const int max_digits = dtmf.value("maxDigits", 4);
        const int time_out = dtmf.value("timeOut", 3);
        if (max_digits < 1 || max_digits > 20 || time_out < 0 || time_out > 10) {
          return "input.dtmf maxDigits 1..20, timeOut 0..10";
        }
      }
      if (action.contains("eventUrl") &&
          (!action["eventUrl"].is_array() || action["eventUrl"].empty() ||
           !absolute_url(action["eventUrl"][0]))) {
        return "input.eventUrl must be an array of absolute URLs";
      }
    }
  }
  return {};
}

// The §5.2 create-call body checks; "" when acceptable.
std::string create_call_problem(const json& body) {
  if (!body.is_object()) {
    return "the body is not a JSON object";
  }
  const json to = body.value("to", json());
  if (!to.is_array() || to.empty()) {
    return "to must be a non-empty array";
  }
  for (const auto& endpoint : to) {
    if (endpoint.value("type", "") != "phone" ||
        !std::regex_match(endpoint.value("number", ""), k_vonage_number)) {
      return "to[].number must match ^[1-9]\\d{6,14}$";
    }
  }
  const bool has_from = body.contains("from");
  const bool random_from = body.value("random_from_number", false);
  if (has_from == random_from) {
    return "exactly one of from and random_from_number";
  }
  if (has_from && (body["from"].value("type", "") != "phone" ||
                   !std::regex_match(body["from"].value("number", ""), k_vonage_number))) {
    return "from.number must match ^[1-9]\\d{6,14}$";
  }
  if (body.contains("ncco") == body.contains("answer_url")) {
    return "exactly one of ncco and answer_url";
  }
  if (body.contains("ncco")) {
    if (auto p = ncco_problem(body["ncco"]); !p.empty()) {
      return p;
    }
  }
  if (body.contains("event_url")) {
    const json& urls = body["event_url"];
    if (!urls.is_array() || urls.empty() || !absolute_url(urls[0])) {
      return "event_url must be an array of absolute URLs";
    }
  }
  for (const char* key : {"event_method", "answer_method"}) {
    if (body.contains(key) && body[key] != "GET" && body[key] != "POST") {
      return std::string{key} + " must be GET or POST";
    }
  }
  if (body.contains("machine_detection") && body["machine_detection"] != "continue" &&
      body["machine_detection"] != "hangup") {
    return "machine_detection must be continue or hangup";
  }
  const int ringing = body.value("ringing_timer", 60);
  const int length = body.value("length_timer", 7200);
  if (ringing < 1 || ringing > 120 || length < 1 || length > 7200) {
    return "ringing_timer 1..120, length_timer 1..7200";
  }
  return {};
}

// A compact XML check for TwiML: declaration, one <Response> root, balanced tags, entities.
std::string twiml_problem(const std::string& xml) {
  const std::string declaration = R"(<?xml version="1.0" encoding="UTF-8"?>)";
  if (xml.rfind(declaration, 0) != 0) {
    return "no XML declaration";
  }
  const std::string rest = xml.substr(declaration.size());
  const std::regex tag{R"(<(/?)([A-Za-z]+)((?:\s+[A-Za-z]+="[^"<&]*(?:&(?:amp|lt|gt|quot|apos);[^"<&]*)*")*)\s*(/?)>)"};
  std::vector<std::string> stack;
  std::size_t pos = 0;
  bool seen_root = false;
  for (std::sregex_iterator it{rest.begin(), rest.end(), tag}, end; it != end; ++it) {
    const auto& m = *it;
    const std::string text = rest.substr(pos, static_cast<std::size_t>(m.position()) - pos);
    if (text.find('<') != std::string::npos ||
        std::regex_search(text, std::regex{R"(&(?!(amp|lt|gt|quot|apos);))"})) {
      return "bad character data";
    }
    if (!text.empty() && stack.empty()) {
      return "text outside the root";
    }
    const std::string name = m[2];
    if (m[1] == "/") {
      if (stack.empty() || stack.back() != name) {
        return "mismatched </" + name + ">";
      }
      stack.pop_back();
    } else {
      if (stack.empty()) {
        if (seen_root || name != "Response") {
          return "the root must be one <Response>";
        }
        seen_root = true;
      }
      if (m[4] != "/") {
        stack.push_back(name);
      }
    }
    pos = static_cast<std::size_t>(m.position() + m.length());
  }
  if (pos != rest.size()) {
    return "trailing or malformed content";
  }
  if (!stack.empty() || !seen_root) {
    return "unbalanced elements";
  }
  return {};
}

// Shared by the fakes: recorded requests and scripted answers that override the normal one.
class Script {
 public:
  // Statuses to answer (in order) before answering normally; 0 means "answer normally".
  void queue(std::vector<int> statuses) {
    const std::lock_guard lock{mutex_};
    forced_.insert(forced_.end(), statuses.begin(), statuses.end());
  }
  int next_forced() {
    const std::lock_guard lock{mutex_};
    if (forced_.empty()) {
      return 0;
    }
    const int status = forced_.front();
    forced_.pop_front();
    return status;
  }
  void record(const httplib::Request& req) {
    const std::lock_guard lock{mutex_};
    seen_.push_back(Seen{req.method, req.path, req.headers, req.body, req.params});
  }
  std::vector<Seen> seen() const {
    const std::lock_guard lock{mutex_};
    return seen_;
  }
  // False when `jti` was used before (the fake rejects replays).
  bool fresh_jti(const std::string& jti) {
    const std::lock_guard lock{mutex_};
    return jtis_.insert(jti).second;
  }

 private:
  mutable std::mutex mutex_;
  std::deque<int> forced_;
  std::vector<Seen> seen_;
  std::set<std::string> jtis_;
};

// Fake Vonage (protocols.md §5.2): Voice create/get call with RS256 JWT, Messages with Basic.
class FakeVonage {
 public:
  FakeVonage() : public_pem_(key_file("test_public_key.pem")) {
    auto& server = fake_.server();
    server.Post("/v1/calls", [this](const httplib::Request& req, httplib::Response& res) {
      script_.record(req);
      if (const auto p = jwt_problem(req); !p.empty()) {
        return problem(res, 401, "Unauthorized", p);
      }
      if (forced(res)) {
        return;
      }
      if (req.get_header_value("Content-Type") != "application/json") {
        return problem(res, 415, "Unsupported Media Type", "Content-Type must be application/json");
      }
      const json body = json::parse(req.body, nullptr, false);
      if (const auto p = create_call_problem(body); !p.empty()) {
        return problem(res, 400, "Bad Request", p);
      }
      res.status = 201;
      res.set_content(json{{"uuid", "63f61863-4a51-4f6b-86e1-46edebcf9356"},
                           {"status", "started"},
                           {"direction", "outbound"},
                           {"conversation_uuid", "CON-f972836a-550f-45fa-956c-12a2ab5b7d22"}}
                          .dump(),
                      "application/json");
    });
    // The call list (looked up after an ambiguous create-call failure): none of them exist.
    server.Get("/v1/calls", [this](const httplib::Request& req, httplib::Response& res) {
      script_.record(req);
      if (const auto p = jwt_problem(req); !p.empty()) {
        return problem(res, 401, "Unauthorized", p);
      }
      res.set_content(R"({"count":0,"page_size":100,"record_index":0})", "application/json");
    });
    server.Get(R"(/v1/calls/([^/]+))", [this](const httplib::Request& req, httplib::Response& res) {
      script_.record(req);
      if (const auto p = jwt_problem(req); !p.empty()) {
        return problem(res, 401, "Unauthorized", p);
      }
      if (forced(res)) {
        return;
      }
      // The uuid names the status to answer with ("uuid-busy" -> busy), for the mapping tests.
      const std::string uuid = req.matches[1];
      if (uuid.rfind("uuid-", 0) != 0) {
        return problem(res, 404, "Not Found", "no such call");
      }
      res.set_content(json{{"uuid", uuid}, {"status", uuid.substr(5)}, {"direction", "outbound"}}
                          .dump(),
                      "application/json");
    });
    server.Post("/v1/messages", [this](const httplib::Request& req, httplib::Response& res) {
      script_.record(req);
      const std::string expected =
          "Basic " + ad::base64_encode(std::string{k_api_key} + ":" + k_api_secret);
      if (req.get_header_value("Authorization") != expected) {
        return problem(res, 401, "Unauthorized", "You did not provide correct credentials.");
      }
      if (forced(res)) {
        return;
      }
      const json body = json::parse(req.body, nullptr, false);
      const std::string text = body.is_object() ? body.value("text", "") : "";
      if (req.get_header_value("Content-Type") != "application/json" || !body.is_object() ||
          body.value("channel", "") != "sms" || body.value("message_type", "") != "text" ||
          text.empty() || text.size() > 1000 ||
          !std::regex_match(body.value("to", ""), k_vonage_number) ||
          body.value("from", "").empty()) {
        return problem(res, 422, "Invalid params", "The value of one or more parameters is invalid.",
                       {{"invalid_parameters", json::array({{{"name", "to"}, {"reason", "bad"}}})}});
      }
      res.status = 202;
      res.set_content(R"({"message_uuid":"aaaaaaaa-bbbb-cccc-dddd-0123456789ab"})",
                      "application/json");
    });
    REQUIRE(fake_.ok());
    REQUIRE(fake_.start());
  }

  std::string base_url() const { return fake_.base_url(); }
  Script& script() { return script_; }
  FakeNightscout& fake() { return fake_; }

  core::Provider config() const {
    core::Provider config;
    config.type = core::ProviderType::vonage;
    config.from = k_from;
    config.base_url = base_url();
    config.application_id = k_app_id;
    config.private_key_pem = key_file("test_private_key.pem");
    config.api_key = k_api_key;
    config.api_secret = k_api_secret;
    return config;
  }

 private:
  bool forced(httplib::Response& res) {
    const int status = script_.next_forced();
    if (status == 0) {
      return false;
    }
    if (status == 429) {
      problem(res, 429, "Rate Limit Hit", "Please wait, then retry your request");
    } else if (status == 401) {
      problem(res, 401, "Unauthorized", "You did not provide correct credentials.");
    } else {
      problem(res, status, "Forced", "status " + std::to_string(status));
    }
    return true;
  }

  // The §5.2 JWT checks: RS256 with the app's public key, claims, fresh jti, exp = iat + 900.
  std::string jwt_problem(const httplib::Request& req) {
    const std::string auth = req.get_header_value("Authorization");
    if (auth.rfind("Bearer ", 0) != 0) {
      return "no Bearer token";
    }
    const std::string token = auth.substr(7);
    const auto dot1 = token.find('.');
    const auto dot2 = token.rfind('.');
    if (dot1 == std::string::npos || dot1 == dot2) {
      return "the JWT is malformed";
    }
    const auto header = ad::base64url_decode(token.substr(0, dot1));
    const auto payload = ad::base64url_decode(token.substr(dot1 + 1, dot2 - dot1 - 1));
    const auto signature = ad::base64url_decode(token.substr(dot2 + 1));
    if (!header || !payload || !signature) {
      return "the JWT is not base64url";
    }
    const json h = json::parse(*header, nullptr, false);
    if (!h.is_object() || h.value("alg", "") != "RS256" || h.value("typ", "") != "JWT") {
      return "the JWT header must be alg RS256, typ JWT";
    }
    if (!rs256_verifies(token.substr(0, dot2), *signature, public_pem_)) {
      return "invalid-jwt: the signature does not verify";
    }
    const json claims = json::parse(*payload, nullptr, false);
    if (!claims.is_object() || claims.value("application_id", "") != k_app_id) {
      return "application_id is wrong";
    }
    if (!claims.contains("iat") || !claims["iat"].is_number_integer() || !claims.contains("exp") ||
        !claims["exp"].is_number_integer() || !claims.contains("jti") || !claims["jti"].is_string()) {
      return "iat, exp and jti are required";
    }
    const auto iat = claims["iat"].get<std::int64_t>();
    const auto exp = claims["exp"].get<std::int64_t>();
    if (std::llabs(iat - now_s()) > 60 || exp != iat + 900 || exp <= now_s()) {
      return "jwt-expired: iat must be now and exp = iat + 900";
    }
    if (!std::regex_match(claims["jti"].get<std::string>(),
                          std::regex{"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$"}) ||
        !script_.fresh_jti(claims["jti"].get<std::string>())) {
      return "jti must be a fresh uuid";
    }
    return {};
  }

  std::string public_pem_;
  Script script_;
  FakeNightscout fake_;
};

// Fake Twilio (protocols.md §5.3): Calls.json, Messages.json and GET Calls/{sid}.json.
class FakeTwilio {
 public:
  FakeTwilio() {
    auto& server = fake_.server();
    const std::string account = R"(/2010-04-01/Accounts/([^/]+))";
    server.Post(account + R"(/Calls\.json)", [this](const httplib::Request& req,
                                                    httplib::Response& res) {
      script_.record(req);
      if (!authorised(req, res) || forced(res)) {
        return;
      }
      if (const auto p = create_call_problem(req); !p.empty()) {
        return twilio_error(res, 400, 21211, p);
      }
      res.status = 201;
      res.set_content(json{{"sid", "CA0123456789abcdef0123456789abcdef"},
                           {"status", "queued"},
                           {"direction", "outbound-api"},
                           {"api_version", "2010-04-01"}}
                          .dump(),
                      "application/json");
    });
    server.Post(account + R"(/Messages\.json)", [this](const httplib::Request& req,
                                                       httplib::Response& res) {
      script_.record(req);
      if (!authorised(req, res) || forced(res)) {
        return;
      }
      if (!std::regex_match(req.get_param_value("To"), k_e164) ||
          !std::regex_match(req.get_param_value("From"), k_e164) ||
          req.get_param_value("Body").empty() || req.get_param_value("Body").size() > 1600) {
        return twilio_error(res, 400, 21211, "To, From and Body are required");
      }
      res.status = 201;
      res.set_content(R"({"sid":"SM0123456789abcdef0123456789abcdef","status":"queued"})",
                      "application/json");
    });
    server.Get(account + R"(/Calls\.json)", [this](const httplib::Request& req,
                                                   httplib::Response& res) {
      script_.record(req);
      if (!authorised(req, res)) {
        return;
      }
      res.set_content(R"({"calls":[],"page":0,"page_size":100})", "application/json");
    });
    server.Get(account + R"(/Calls/([^/]+)\.json)", [this](const httplib::Request& req,
                                                           httplib::Response& res) {
      script_.record(req);
      if (!authorised(req, res) || forced(res)) {
        return;
      }
      // The sid names the answer: "CA-<status>" or "CA-<status>-<answered_by>".
      const std::string sid = req.matches[2];
      static const std::regex shape{R"(^CA-([a-z-]+?)(?:-(human|machine_start|machine_end_beep|fax|unknown))?$)"};
      std::smatch m;
      if (!std::regex_match(sid, m, shape)) {
        return twilio_error(res, 404, 20404, "The requested resource was not found");
      }
      json call{{"sid", sid}, {"status", m[1].str()}};
      call["answered_by"] = m[2].matched ? json(m[2].str()) : json(nullptr);
      res.set_content(call.dump(), "application/json");
    });
    REQUIRE(fake_.ok());
    REQUIRE(fake_.start());
  }

  std::string base_url() const { return fake_.base_url(); }
  Script& script() { return script_; }

  core::Provider config() const {
    core::Provider config;
    config.type = core::ProviderType::twilio;
    config.from = k_from;
    config.base_url = base_url();
    config.account_sid = k_account_sid;
    config.auth_token = k_auth_token;
    return config;
  }

 private:
  bool authorised(const httplib::Request& req, httplib::Response& res) {
    const std::string expected =
        "Basic " + ad::base64_encode(std::string{k_account_sid} + ":" + k_auth_token);
    if (req.get_header_value("Authorization") != expected || req.matches[1] != k_account_sid) {
      twilio_error(res, 401, 20003, "Authenticate");
      return false;
    }
    return true;
  }

  bool forced(httplib::Response& res) {
    const int status = script_.next_forced();
    if (status == 0) {
      return false;
    }
    twilio_error(res, status, status == 429 ? 20429 : 20500, "forced " + std::to_string(status));
    return true;
  }

  // The §5.3 create-call checks.
  static std::string create_call_problem(const httplib::Request& req) {
    if (req.get_header_value("Content-Type") != "application/x-www-form-urlencoded") {
      return "Content-Type must be application/x-www-form-urlencoded";
    }
    if (!std::regex_match(req.get_param_value("To"), k_e164) ||
        !std::regex_match(req.get_param_value("From"), k_e164)) {
      return "To and From must be E.164 with +";
    }
    const int sources = static_cast<int>(req.has_param("Url")) +
                        static_cast<int>(req.has_param("Twiml")) +
                        static_cast<int>(req.has_param("ApplicationSid"));
    if (sources != 1) {
      return "exactly one of Url, Twiml, ApplicationSid";
    }
    const std::string twiml = req.get_param_value("Twiml");
    if (twiml.size() > 4000) {
      return "Twiml is longer than 4000 characters";
    }
    if (const auto p = twiml_problem(twiml); !p.empty()) {
      return "Twiml: " + p;
    }
    static const std::set<std::string> events{"initiated", "ringing", "answered", "completed"};
    for (std::size_t i = 0; i < req.get_param_value_count("StatusCallbackEvent"); ++i) {
      if (events.count(req.get_param_value("StatusCallbackEvent", i)) == 0) {
        return "StatusCallbackEvent has an unknown value";
      }
    }
    for (const char* key : {"StatusCallbackMethod", "Method"}) {
      if (req.has_param(key) && req.get_param_value(key) != "GET" &&
          req.get_param_value(key) != "POST") {
        return std::string{key} + " must be GET or POST";
      }
    }
    if (req.has_param("Timeout")) {
      const int timeout = std::stoi(req.get_param_value("Timeout"));
      if (timeout < 1 || timeout > 600) {
        return "Timeout 1..600";
      }
    }
    if (req.has_param("MachineDetection") && req.get_param_value("MachineDetection") != "Enable" &&
        req.get_param_value("MachineDetection") != "DetectMessageEnd") {
      return "MachineDetection must be Enable or DetectMessageEnd";
    }
    return {};
  }

  Script script_;
  FakeNightscout fake_;
};

ad::CallRequest alarm_call(bool gather = true) {
  return ad::CallRequest{"c3", k_patient, "Alice: URGENT LOW, 52 mg/dL, falling.", gather, {}, {}};
}

ad::WebhookBase webhooks() { return ad::WebhookBase{k_public_url, k_url_token}; }

// A provider whose answers are scripted, for the chain's own logic.
class ScriptedProvider final : public ad::Provider {
 public:
  ScriptedProvider(std::string name, std::vector<ad::ProviderResult<std::string>> answers)
      : name_(std::move(name)), answers_(std::move(answers)) {}
  std::string name() const override { return name_; }
  ad::ProviderResult<std::string> place_call(const ad::CallRequest&) override { return next(); }
  ad::ProviderResult<std::string> send_sms(const std::string&, const std::string&) override {
    return next();
  }
  ad::ProviderResult<ad::CallStatus> poll_call(const std::string& call_id) override {
    ++*tries_;
    return ad::CallStatus{CallProgress::answered, name_ + ":" + call_id, ""};
  }
  ad::ProviderResult<std::vector<ad::FoundCall>> find_calls(const std::string&,
                                                            scout::core::TimePoint) override {
    ++*lookups_;
    if (lookup_fails_) {
      return tl::make_unexpected(ad::ProviderError{{ErrorKind::network, "list down"}, true, 0});
    }
    return found_;
  }
  std::shared_ptr<int> tries() const { return tries_; }
  std::shared_ptr<int> lookups() const { return lookups_; }
  void set_found(std::vector<ad::FoundCall> found) { found_ = std::move(found); }
  void set_lookup_fails(bool fails) { lookup_fails_ = fails; }

 private:
  ad::ProviderResult<std::string> next() {
    ++*tries_;
    if (answers_.empty()) {
      return tl::make_unexpected(ad::ProviderError{{ErrorKind::internal, "script ran out"}, false, 0});
    }
    auto answer = answers_.front();
    answers_.erase(answers_.begin());
    return answer;
  }
  std::string name_;
  std::vector<ad::ProviderResult<std::string>> answers_;
  std::shared_ptr<int> tries_ = std::make_shared<int>(0);
  std::shared_ptr<int> lookups_ = std::make_shared<int>(0);
  std::vector<ad::FoundCall> found_;
  bool lookup_fails_ = false;
};

tl::unexpected<ad::ProviderError> failure(int status, bool retryable) {
  const ErrorKind kind = status == 401 ? ErrorKind::auth
                         : status == 0 ? ErrorKind::network
                                       : ErrorKind::http_status;
  return tl::make_unexpected(ad::ProviderError{
      {kind, "scripted HTTP " + std::to_string(status)}, retryable, status});
}

// Records the chain's sleeps instead of sleeping.
struct Sleeps {
  std::shared_ptr<std::vector<std::chrono::milliseconds>> taken =
      std::make_shared<std::vector<std::chrono::milliseconds>>();
  ad::ProviderChain::Sleep sleep() const {
    return [taken = taken](std::chrono::milliseconds ms) { taken->push_back(ms); };
  }
};

// Captures spdlog output while alive (the default logger is swapped and restored).
class CapturedLogs {
 public:
  CapturedLogs()
      : sink_(std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(256)),
        previous_(spdlog::default_logger()) {
    auto logger = std::make_shared<spdlog::logger>("captured", sink_);
    logger->set_level(spdlog::level::trace);
    logger->set_pattern("%l %v");
    spdlog::set_default_logger(logger);
  }
  ~CapturedLogs() { spdlog::set_default_logger(previous_); }
  CapturedLogs(const CapturedLogs&) = delete;
  CapturedLogs& operator=(const CapturedLogs&) = delete;
  std::vector<std::string> lines() { return sink_->last_formatted(); }

 private:
  std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt> sink_;
  std::shared_ptr<spdlog::logger> previous_;
};

std::size_t count_starting(const std::vector<std::string>& lines, const std::string& prefix) {
  return static_cast<std::size_t>(std::count_if(lines.begin(), lines.end(), [&](const auto& line) {
    return line.rfind(prefix, 0) == 0;
  }));
}

}  // namespace

// ---------------------------------------------------------------------------------------------

TEST_CASE("webhook_url puts the call key and the token in the query", "[providers]") {
  CHECK(ad::webhook_url(webhooks(), "/webhooks/vonage/event", "c3") ==
        "https://scout.example/webhooks/vonage/event?call=c3&token=" + std::string{k_url_token});
  CHECK(ad::webhook_url(ad::WebhookBase{"https://scout.example/", ""}, "/webhooks/twilio/status",
                        "c17") == "https://scout.example/webhooks/twilio/status?call=c17");
  CHECK(ad::webhook_url(ad::WebhookBase{"http://h:8787/base", ""}, "/webhooks/twilio/gather",
                        "a b") == "http://h:8787/base/webhooks/twilio/gather?call=a%20b");
}

TEST_CASE("Vonage place_call sends a signed, well-formed create-call request", "[providers]") {
  FakeVonage vonage;
  auto provider = ad::make_vonage_provider(vonage.config(), webhooks(), ad::HttpSettings{5s});
  CHECK(provider->name() == "vonage");

  const auto first = provider->place_call(alarm_call());
  REQUIRE(first);  // the fake verified the JWT, headers and body (else it answers 400/401)
  CHECK(*first == "63f61863-4a51-4f6b-86e1-46edebcf9356");
  // A second request signs a fresh JWT (the fake rejects a reused jti).
  REQUIRE(provider->place_call(alarm_call()));

  const auto seen = vonage.script().seen();
  REQUIRE(seen.size() == 2);
  CHECK(seen[0].method == "POST");
  const json body = json::parse(seen[0].body);
  CHECK(body["to"] == json::parse(R"([{"type":"phone","number":"14155550100"}])"));
  CHECK(body["from"] == json::parse(R"({"type":"phone","number":"14155550199"})"));
  CHECK(body["event_url"] ==
        json::array({"https://scout.example/webhooks/vonage/event?call=c3&token=" +
                     std::string{k_url_token}}));
  CHECK(body["event_method"] == "POST");
  CHECK(body["machine_detection"] == "continue");
  CHECK(body["ringing_timer"] == 45);
  CHECK(body["length_timer"] == 300);
  CHECK_FALSE(body.contains("answer_url"));
  const json& ncco = body["ncco"];
  REQUIRE(ncco.size() == 2);
  CHECK(ncco[0]["action"] == "talk");
  CHECK(ncco[0]["bargeIn"] == true);
  CHECK(ncco[0]["loop"] == 2);
  CHECK(ncco[0]["text"].get<std::string>().find("Alice: URGENT LOW, 52 mg/dL") != std::string::npos);
  CHECK(ncco[1]["action"] == "input");
  CHECK(ncco[1]["eventUrl"] == json::array({"https://scout.example/webhooks/vonage/input?call=c3&token=" +
                                            std::string{k_url_token}}));
  CHECK(seen[0].headers.find("Authorization")->second.rfind("Bearer ey", 0) == 0);
}

TEST_CASE("Vonage place_call without a listener asks for no webhooks and gathers no digits",
          "[providers]") {
  FakeVonage vonage;
  auto provider = ad::make_vonage_provider(vonage.config(), std::nullopt, ad::HttpSettings{5s});
  REQUIRE(provider->place_call(alarm_call(true)));
  const json body = json::parse(vonage.script().seen().at(0).body);
  CHECK_FALSE(body.contains("event_url"));
  REQUIRE(body["ncco"].size() == 1);
  CHECK(body["ncco"][0]["action"] == "talk");
  CHECK(body["ncco"][0].value("bargeIn", false) == false);
  CHECK(body["ncco"][0]["text"].get<std::string>().find("Press 1") == std::string::npos);
}

TEST_CASE("Vonage send_sms uses the Messages API with Basic auth", "[providers]") {
  FakeVonage vonage;
  auto provider = ad::make_vonage_provider(vonage.config(), webhooks(), ad::HttpSettings{5s});
  const auto id = provider->send_sms(k_patient, "Alice: URGENT LOW, 52 mg/dL");
  REQUIRE(id);
  CHECK(*id == "aaaaaaaa-bbbb-cccc-dddd-0123456789ab");
  const auto seen = vonage.script().seen();
  REQUIRE(seen.size() == 1);
  CHECK(seen[0].path == "/v1/messages");
  CHECK(json::parse(seen[0].body) ==
        json::parse(R"({"message_type":"text","text":"Alice: URGENT LOW, 52 mg/dL",
                        "to":"14155550100","from":"14155550199","channel":"sms"})"));

  // protocols.md §3.1: the docs' example credentials give exactly this header.
  auto config = vonage.config();
  config.api_key = "aaa012";
  config.api_secret = "abc123456789";
  const auto refused =
      ad::make_vonage_provider(config, std::nullopt, ad::HttpSettings{5s})->send_sms(k_patient, "x");
  REQUIRE_FALSE(refused);
  CHECK(refused.error().error.kind == ErrorKind::auth);
  CHECK(vonage.script().seen().at(1).headers.find("Authorization")->second ==
        "Basic YWFhMDEyOmFiYzEyMzQ1Njc4OQ==");

  // Without api_key/api_secret nothing is sent: a configuration problem.
  config.api_key.clear();
  const auto unconfigured =
      ad::make_vonage_provider(config, std::nullopt, ad::HttpSettings{5s})->send_sms(k_patient, "x");
  REQUIRE_FALSE(unconfigured);
  CHECK(unconfigured.error().error.kind == ErrorKind::config);
  CHECK_FALSE(unconfigured.error().retryable);
  CHECK(vonage.script().seen().size() == 2);
}

TEST_CASE("Vonage poll_call maps each Voice status to a CallProgress", "[providers]") {
  FakeVonage vonage;
  auto provider = ad::make_vonage_provider(vonage.config(), webhooks(), ad::HttpSettings{5s});
  const std::vector<std::pair<std::string, CallProgress>> cases{
      {"started", CallProgress::ringing},    {"ringing", CallProgress::ringing},
      {"answered", CallProgress::answered},  {"human", CallProgress::human},
      {"machine", CallProgress::machine},    {"completed", CallProgress::completed},
      {"busy", CallProgress::busy},          {"cancelled", CallProgress::cancelled},
      {"failed", CallProgress::failed},      {"rejected", CallProgress::rejected},
      {"timeout", CallProgress::timeout},    {"unanswered", CallProgress::unanswered},
      {"something_new", CallProgress::ringing}};
  for (const auto& [status, progress] : cases) {
    INFO(status);
    const auto polled = provider->poll_call("uuid-" + status);
    REQUIRE(polled);
    CHECK(polled->progress == progress);
    CHECK(polled->detail == status);
    CHECK(polled->digits.empty());
  }
  CHECK(vonage.script().seen().back().path == "/v1/calls/uuid-something_new");

  const auto missing = provider->poll_call("nope");
  REQUIRE_FALSE(missing);
  CHECK(missing.error().http_status == 404);
  CHECK_FALSE(missing.error().retryable);
}

TEST_CASE("Vonage errors: 401 is auth, 429/5xx retryable, other 4xx carry the problem detail",
          "[providers]") {
  FakeVonage vonage;
  auto provider = ad::make_vonage_provider(vonage.config(), webhooks(), ad::HttpSettings{5s});

  vonage.script().queue({401});
  const auto unauthorised = provider->place_call(alarm_call());
  REQUIRE_FALSE(unauthorised);
  CHECK(unauthorised.error().error.kind == ErrorKind::auth);
  CHECK_FALSE(unauthorised.error().retryable);
  CHECK(unauthorised.error().http_status == 401);
  CHECK_THAT(unauthorised.error().error.message,
             Catch::Contains("vonage POST /v1/calls") && Catch::Contains("HTTP 401") &&
                 Catch::Contains("You did not provide correct credentials") &&
                 Catch::Contains("check the credentials"));

  vonage.script().queue({429});
  const auto limited = provider->place_call(alarm_call());
  REQUIRE_FALSE(limited);
  CHECK(limited.error().retryable);
  CHECK(limited.error().error.kind == ErrorKind::http_status);
  CHECK_THAT(limited.error().error.message, Catch::Contains("Rate Limit Hit"));

  vonage.script().queue({503});
  const auto unavailable = provider->place_call(alarm_call());
  REQUIRE_FALSE(unavailable);
  CHECK(unavailable.error().retryable);
  CHECK(unavailable.error().http_status == 503);

  // An SMS to a number the API refuses: 422 invalid-params, not retried, detail named.
  const auto invalid = provider->send_sms("+0123", "text");
  REQUIRE_FALSE(invalid);
  CHECK(invalid.error().error.kind == ErrorKind::http_status);
  CHECK_FALSE(invalid.error().retryable);
  CHECK(invalid.error().http_status == 422);
  CHECK_THAT(invalid.error().error.message,
             Catch::Contains("Invalid params") && Catch::Contains("to (bad)"));

  for (const auto* error : {&unauthorised, &limited, &unavailable}) {
    CHECK_THAT(error->error().error.message, !Catch::Contains(k_api_secret) &&
                                                    !Catch::Contains("14155550100") &&
                                                    !Catch::Contains("eyJ"));
  }
}

TEST_CASE("Vonage with an unusable private key fails as configuration without a request",
          "[providers]") {
  FakeVonage vonage;
  auto config = vonage.config();
  config.private_key_pem = "not a key";
  auto provider = ad::make_vonage_provider(config, webhooks(), ad::HttpSettings{5s});
  const auto placed = provider->place_call(alarm_call());
  REQUIRE_FALSE(placed);
  CHECK(placed.error().error.kind == ErrorKind::config);
  CHECK_FALSE(placed.error().retryable);
  CHECK(vonage.script().seen().empty());
}

TEST_CASE("Twilio place_call sends the documented form with valid TwiML", "[providers]") {
  FakeTwilio twilio;
  auto provider = ad::make_twilio_provider(twilio.config(), webhooks(), ad::HttpSettings{5s});
  CHECK(provider->name() == "twilio");
  const auto sid = provider->place_call(alarm_call());
  REQUIRE(sid);  // the fake checked auth, path, form and TwiML (else 400/401)
  CHECK(*sid == "CA0123456789abcdef0123456789abcdef");

  const auto seen = twilio.script().seen();
  REQUIRE(seen.size() == 1);
  const Seen& call = seen[0];
  CHECK(call.path == "/2010-04-01/Accounts/" + std::string{k_account_sid} + "/Calls.json");
  const auto param = [&](const std::string& key) {
    const auto it = call.params.find(key);
    return it == call.params.end() ? std::string{"<absent>"} : it->second;
  };
  CHECK(param("To") == k_patient);
  CHECK(param("From") == k_from);
  CHECK(param("MachineDetection") == "Enable");
  CHECK(param("Timeout") == "45");
  CHECK(param("TimeLimit") == "300");
  CHECK(param("StatusCallbackMethod") == "POST");
  CHECK(param("StatusCallback") ==
        "https://scout.example/webhooks/twilio/status?call=c3&token=" + std::string{k_url_token});
  std::vector<std::string> events;
  for (auto [it, end] = call.params.equal_range("StatusCallbackEvent"); it != end; ++it) {
    events.push_back(it->second);
  }
  CHECK(events == std::vector<std::string>{"initiated", "ringing", "answered", "completed"});
  const std::string twiml = param("Twiml");
  CHECK(twiml_problem(twiml).empty());
  CHECK_THAT(twiml, Catch::Contains(R"(<Gather input="dtmf" numDigits="1")") &&
                        Catch::Contains("action=\"https://scout.example/webhooks/twilio/gather?call=c3&amp;token=") &&
                        Catch::Contains("Alice: URGENT LOW, 52 mg/dL"));
  CHECK_FALSE(call.params.count("Url"));
}

TEST_CASE("Twilio place_call without a listener: no callbacks, no Gather", "[providers]") {
  FakeTwilio twilio;
  auto provider = ad::make_twilio_provider(twilio.config(), std::nullopt, ad::HttpSettings{5s});
  REQUIRE(provider->place_call(alarm_call(true)));
  const Seen call = twilio.script().seen().at(0);
  CHECK(call.params.count("StatusCallback") == 0);
  CHECK(call.params.count("StatusCallbackEvent") == 0);
  const std::string twiml = call.params.find("Twiml")->second;
  CHECK(twiml_problem(twiml).empty());
  CHECK(twiml.find("<Gather") == std::string::npos);
}

TEST_CASE("Twilio send_sms posts To, From and Body", "[providers]") {
  FakeTwilio twilio;
  auto provider = ad::make_twilio_provider(twilio.config(), webhooks(), ad::HttpSettings{5s});
  const auto sid = provider->send_sms(k_patient, "Alice: LOW, 65 mg/dL & falling");
  REQUIRE(sid);
  CHECK(*sid == "SM0123456789abcdef0123456789abcdef");
  const Seen sms = twilio.script().seen().at(0);
  CHECK(sms.path == "/2010-04-01/Accounts/" + std::string{k_account_sid} + "/Messages.json");
  CHECK(sms.params.find("To")->second == k_patient);
  CHECK(sms.params.find("From")->second == k_from);
  CHECK(sms.params.find("Body")->second == "Alice: LOW, 65 mg/dL & falling");
}

TEST_CASE("Twilio poll_call maps call status and AnsweredBy", "[providers]") {
  FakeTwilio twilio;
  auto provider = ad::make_twilio_provider(twilio.config(), webhooks(), ad::HttpSettings{5s});
  struct Case {
    std::string sid;
    CallProgress progress;
    std::string detail;
  };
  const std::vector<Case> cases{
      {"queued", CallProgress::ringing, "queued"},
      {"initiated", CallProgress::ringing, "initiated"},
      {"ringing", CallProgress::ringing, "ringing"},
      {"in-progress", CallProgress::answered, "in-progress"},
      {"in-progress-unknown", CallProgress::answered, "in-progress (unknown)"},
      {"in-progress-human", CallProgress::human, "in-progress (human)"},
      {"in-progress-machine_start", CallProgress::machine, "in-progress (machine_start)"},
      {"in-progress-fax", CallProgress::machine, "in-progress (fax)"},
      {"completed", CallProgress::completed, "completed"},
      {"completed-human", CallProgress::completed, "completed (human)"},
      {"completed-machine_end_beep", CallProgress::machine, "completed (machine_end_beep)"},
      {"busy", CallProgress::busy, "busy"},
      {"failed", CallProgress::failed, "failed"},
      {"no-answer", CallProgress::unanswered, "no-answer"},
      {"canceled", CallProgress::cancelled, "canceled"}};
  for (const auto& c : cases) {
    INFO(c.sid);
    const auto polled = provider->poll_call("CA-" + c.sid);
    REQUIRE(polled);
    CHECK(polled->progress == c.progress);
    CHECK(polled->detail == c.detail);
    CHECK(polled->digits.empty());
  }
  CHECK(twilio.script().seen().back().path ==
        "/2010-04-01/Accounts/" + std::string{k_account_sid} + "/Calls/CA-canceled.json");
}

TEST_CASE("Twilio errors: wrong account is auth, 400 names the code and masks the number",
          "[providers]") {
  FakeTwilio twilio;
  auto config = twilio.config();
  config.account_sid = "AC99999999999999999999999999999999";
  const auto wrong_account =
      ad::make_twilio_provider(config, webhooks(), ad::HttpSettings{5s})->place_call(alarm_call());
  REQUIRE_FALSE(wrong_account);
  CHECK(wrong_account.error().error.kind == ErrorKind::auth);
  CHECK_FALSE(wrong_account.error().retryable);
  CHECK_THAT(wrong_account.error().error.message,
             Catch::Contains("Authenticate") && Catch::Contains("20003") &&
                 Catch::Contains("check the credentials") && !Catch::Contains(k_auth_token));

  auto provider = ad::make_twilio_provider(twilio.config(), webhooks(), ad::HttpSettings{5s});
  const auto bad_number = provider->place_call(ad::CallRequest{"c4", "+0555", "text", true, {}, {}});
  REQUIRE_FALSE(bad_number);
  CHECK(bad_number.error().error.kind == ErrorKind::http_status);
  CHECK(bad_number.error().http_status == 400);
  CHECK_FALSE(bad_number.error().retryable);
  CHECK_THAT(bad_number.error().error.message, Catch::Contains("21211"));

  twilio.script().queue({429, 500});
  const auto limited = provider->send_sms(k_patient, "x");
  REQUIRE_FALSE(limited);
  CHECK(limited.error().retryable);
  CHECK_THAT(limited.error().error.message, Catch::Contains("20429"));
  const auto failed = provider->send_sms(k_patient, "x");
  REQUIRE_FALSE(failed);
  CHECK(failed.error().retryable);
}

TEST_CASE("Twilio error text that repeats the number is masked", "[providers]") {
  FakeNightscout fake;
  fake.server().Post(R"(/2010-04-01/Accounts/[^/]+/Messages\.json)",
                     [](const httplib::Request&, httplib::Response& res) {
                       // protocols.md §4.7, third-party gist example.
                       twilio_error(res, 400, 21211,
                                    "The 'To' number +14155550100 is not a valid phone number.");
                     });
  REQUIRE(fake.start());
  core::Provider config;
  config.type = core::ProviderType::twilio;
  config.from = k_from;
  config.base_url = fake.base_url();
  config.account_sid = k_account_sid;
  config.auth_token = k_auth_token;
  const auto result =
      ad::make_twilio_provider(config, std::nullopt, ad::HttpSettings{5s})->send_sms(k_patient, "x");
  REQUIRE_FALSE(result);
  CHECK_THAT(result.error().error.message,
             Catch::Contains("is not a valid phone number") && Catch::Contains("\u20260100") &&
                 !Catch::Contains("14155550100"));
}

TEST_CASE("A closed port is a retryable network error, a hung server a retryable timeout",
          "[providers]") {
  core::Provider vonage;
  vonage.type = core::ProviderType::vonage;
  vonage.from = k_from;
  vonage.base_url = "http://127.0.0.1:" + std::to_string(closed_port());
  vonage.application_id = k_app_id;
  vonage.private_key_pem = key_file("test_private_key.pem");
  const auto refused =
      ad::make_vonage_provider(vonage, webhooks(), ad::HttpSettings{5s})->place_call(alarm_call());
  REQUIRE_FALSE(refused);
  CHECK(refused.error().error.kind == ErrorKind::network);
  CHECK(refused.error().retryable);
  CHECK(refused.error().http_status == 0);
  CHECK_THAT(refused.error().error.message, Catch::StartsWith("vonage POST /v1/calls"));

  FakeNightscout hung;
  hung.server().Post(R"(.*)", [&hung](const httplib::Request&, httplib::Response& res) {
    hung.hold(5s);
    res.status = 201;
  });
  REQUIRE(hung.start());
  core::Provider twilio;
  twilio.type = core::ProviderType::twilio;
  twilio.from = k_from;
  twilio.base_url = hung.base_url();
  twilio.account_sid = k_account_sid;
  twilio.auth_token = k_auth_token;
  const auto timed_out =
      ad::make_twilio_provider(twilio, webhooks(), ad::HttpSettings{200ms})->send_sms(k_patient, "x");
  hung.release();
  REQUIRE_FALSE(timed_out);
  CHECK(timed_out.error().error.kind == ErrorKind::timeout);
  CHECK(timed_out.error().retryable);
  CHECK_THAT(timed_out.error().error.message, Catch::Contains("200 ms"));
}

TEST_CASE("The console provider prints masked lines and simulates the configured outcome",
          "[providers]") {
  const auto console_with = [](core::ConsoleAnswer answer, std::ostream& out) {
    core::Provider config;
    config.type = core::ProviderType::console;
    config.answer = answer;
    return ad::make_console_provider(config, out);
  };
  std::ostringstream out;
  auto provider = console_with(core::ConsoleAnswer::never, out);
  CHECK(provider->name() == "console");
  const auto first = provider->place_call(alarm_call());
  const auto second = provider->place_call(ad::CallRequest{"c4", "+33687654321", "Bob.", false, {}, {}});
  const auto sms = provider->send_sms("+33611114321", "Alice: URGENT LOW, 52 mg/dL");
  REQUIRE(first);
  REQUIRE(second);
  REQUIRE(sms);
  CHECK(*first == "console-1");
  CHECK(*second == "console-2");
  CHECK(out.str() ==
        "[console] CALL \u20260100 (c3): This is scout. Alice: URGENT LOW, 52 mg/dL, falling. "
        "Press 1 to acknowledge. Press 2 to alert your contacts now.\n"
        "[console] CALL \u20264321 (c4): This is scout. Bob.\n"
        "[console] SMS  \u20264321: Alice: URGENT LOW, 52 mg/dL\n");

  const auto never = provider->poll_call(*first);
  REQUIRE(never);
  CHECK(never->progress == CallProgress::unanswered);
  CHECK(never->digits.empty());

  std::ostringstream ignored;
  const auto ack = console_with(core::ConsoleAnswer::ack, ignored)->poll_call("console-1");
  REQUIRE(ack);
  CHECK(ack->progress == CallProgress::completed);
  CHECK(ack->digits == "1");

  const auto noack = console_with(core::ConsoleAnswer::noack, ignored)->poll_call("console-1");
  REQUIRE(noack);
  CHECK(noack->progress == CallProgress::completed);
  CHECK(noack->digits.empty());
}

TEST_CASE("make_providers builds every configured provider in order", "[providers]") {
  core::Config config;
  core::Provider twilio;
  twilio.type = core::ProviderType::twilio;
  core::Provider console;
  console.type = core::ProviderType::console;
  core::Provider vonage;
  vonage.type = core::ProviderType::vonage;
  config.providers = {twilio, console, vonage};
  std::ostringstream out;
  const auto providers = ad::make_providers(config, std::nullopt, ad::HttpSettings{}, out);
  REQUIRE(providers.size() == 3);
  CHECK(providers[0]->name() == "twilio");
  CHECK(providers[1]->name() == "console");
  CHECK(providers[2]->name() == "vonage");
  // The console one writes to the given stream.
  REQUIRE(providers[1]->send_sms(k_patient, "hi"));
  CHECK(out.str() == "[console] SMS  \u20260100: hi\n");
}

TEST_CASE("ProviderChain retries retryable failures with doubling backoff, then succeeds",
          "[providers]") {
  CapturedLogs logs;  // keeps the expected warnings out of the test output
  Sleeps sleeps;
  std::vector<std::unique_ptr<ad::Provider>> providers;
  providers.push_back(std::make_unique<ScriptedProvider>(
      "vonage", std::vector<ad::ProviderResult<std::string>>{failure(500, true), failure(0, true),
                                                             std::string{"uuid-1"}}));
  auto tries = static_cast<ScriptedProvider&>(*providers[0]).tries();
  ad::ProviderChain chain{std::move(providers), ad::RetryPolicy{}, sleeps.sleep()};
  CHECK_FALSE(chain.empty());
  const auto sent = chain.place_call(alarm_call());
  REQUIRE(sent);
  CHECK(sent->provider == "vonage");
  CHECK(sent->id == "uuid-1");
  CHECK(*tries == 3);
  CHECK(*sleeps.taken == std::vector<std::chrono::milliseconds>{1000ms, 2000ms});
}

TEST_CASE("ProviderChain caps the backoff and fails over after the last try", "[providers]") {
  CapturedLogs logs;  // keeps the expected warnings out of the test output
  Sleeps sleeps;
  std::vector<std::unique_ptr<ad::Provider>> providers;
  providers.push_back(std::make_unique<ScriptedProvider>(
      "vonage", std::vector<ad::ProviderResult<std::string>>(5, failure(503, true))));
  providers.push_back(std::make_unique<ScriptedProvider>(
      "twilio", std::vector<ad::ProviderResult<std::string>>{std::string{"CA1"}}));
  auto first_tries = static_cast<ScriptedProvider&>(*providers[0]).tries();
  ad::ProviderChain chain{std::move(providers), ad::RetryPolicy{5, 1000ms, 3000ms}, sleeps.sleep()};
  const auto sent = chain.send_sms(k_patient, "text");
  REQUIRE(sent);
  CHECK(sent->provider == "twilio");
  CHECK(sent->id == "CA1");
  CHECK(*first_tries == 5);
  CHECK(*sleeps.taken ==
        std::vector<std::chrono::milliseconds>{1000ms, 2000ms, 3000ms, 3000ms});
}

TEST_CASE("ProviderChain does not retry a configuration problem and logs it as one",
          "[providers]") {
  CapturedLogs logs;
  Sleeps sleeps;
  std::vector<std::unique_ptr<ad::Provider>> providers;
  providers.push_back(std::make_unique<ScriptedProvider>(
      "vonage", std::vector<ad::ProviderResult<std::string>>{failure(400, false)}));
  providers.push_back(std::make_unique<ScriptedProvider>(
      "twilio", std::vector<ad::ProviderResult<std::string>>{std::string{"CA1"}}));
  auto first_tries = static_cast<ScriptedProvider&>(*providers[0]).tries();
  ad::ProviderChain chain{std::move(providers), ad::RetryPolicy{}, sleeps.sleep()};
  const auto sent = chain.place_call(alarm_call());
  REQUIRE(sent);
  CHECK(sent->provider == "twilio");
  CHECK(*first_tries == 1);
  CHECK(sleeps.taken->empty());

  const auto lines = logs.lines();
  CHECK(count_starting(lines, "warning ") == 1);
  CHECK(count_starting(lines, "error ") == 1);
  CHECK_THAT(lines.at(0), Catch::Contains("vonage") && Catch::Contains("HTTP 400") &&
                              Catch::Contains("\u20260100"));
  CHECK_THAT(lines.at(1), Catch::Contains("configuration problem"));
  for (const auto& line : lines) {
    CHECK_THAT(line, !Catch::Contains("14155550100"));
  }
}

TEST_CASE("ProviderChain gives up with every provider's last error, logged at error level",
          "[providers]") {
  CapturedLogs logs;
  Sleeps sleeps;
  std::vector<std::unique_ptr<ad::Provider>> providers;
  providers.push_back(std::make_unique<ScriptedProvider>(
      "vonage", std::vector<ad::ProviderResult<std::string>>{failure(401, false)}));
  providers.push_back(std::make_unique<ScriptedProvider>(
      "twilio", std::vector<ad::ProviderResult<std::string>>(3, failure(500, true))));
  ad::ProviderChain chain{std::move(providers), ad::RetryPolicy{}, sleeps.sleep()};
  const auto sent = chain.place_call(alarm_call());
  REQUIRE_FALSE(sent);
  CHECK_THAT(sent.error().message, Catch::Contains("vonage: scripted HTTP 401") &&
                                       Catch::Contains("twilio: scripted HTTP 500") &&
                                       !Catch::Contains("14155550100"));
  CHECK(*sleeps.taken == std::vector<std::chrono::milliseconds>{1000ms, 2000ms});

  const auto lines = logs.lines();
  CHECK(count_starting(lines, "warning ") == 4);  // one per failed try
  REQUIRE_FALSE(lines.empty());
  CHECK_THAT(lines.back(), Catch::StartsWith("error giving up"));
}

TEST_CASE("ProviderChain without providers fails as configuration, poll_call routes by name",
          "[providers]") {
  ad::ProviderChain empty{{}, ad::RetryPolicy{}, nullptr};
  CHECK(empty.empty());
  const auto none = empty.send_sms(k_patient, "x");
  REQUIRE_FALSE(none);
  CHECK(none.error().kind == ErrorKind::config);

  std::vector<std::unique_ptr<ad::Provider>> providers;
  providers.push_back(std::make_unique<ScriptedProvider>(
      "vonage", std::vector<ad::ProviderResult<std::string>>{}));
  providers.push_back(std::make_unique<ScriptedProvider>(
      "twilio", std::vector<ad::ProviderResult<std::string>>{}));
  auto twilio_tries = static_cast<ScriptedProvider&>(*providers[1]).tries();
  ad::ProviderChain chain{std::move(providers), ad::RetryPolicy{}, nullptr};
  const auto polled = chain.poll_call("twilio", "CA9");
  REQUIRE(polled);
  CHECK(polled->detail == "twilio:CA9");
  CHECK(*twilio_tries == 1);
  const auto unknown = chain.poll_call("console", "console-1");
  REQUIRE_FALSE(unknown);
  CHECK(unknown.error().error.kind == ErrorKind::config);
}

TEST_CASE("ProviderChain over HTTP: 500 then 201 is retried, 429 too", "[providers]") {
  CapturedLogs logs;  // keeps the expected warnings out of the test output
  FakeVonage vonage;
  Sleeps sleeps;
  std::vector<std::unique_ptr<ad::Provider>> providers;
  providers.push_back(ad::make_vonage_provider(vonage.config(), webhooks(), ad::HttpSettings{5s}));
  ad::ProviderChain chain{std::move(providers), ad::RetryPolicy{}, sleeps.sleep()};

  vonage.script().queue({500});
  const auto first = chain.place_call(alarm_call());
  REQUIRE(first);
  CHECK(first->provider == "vonage");
  // POST (500: it may have been placed), GET /v1/calls (it was not), POST again.
  REQUIRE(vonage.script().seen().size() == 3);
  CHECK(vonage.script().seen()[1].method == "GET");
  CHECK(vonage.script().seen()[1].path == "/v1/calls");
  CHECK(*sleeps.taken == std::vector<std::chrono::milliseconds>{1000ms});

  vonage.script().queue({429, 429});
  const auto second = chain.send_sms(k_patient, "x");
  REQUIRE(second);
  CHECK(second->id == "aaaaaaaa-bbbb-cccc-dddd-0123456789ab");
  CHECK(vonage.script().seen().size() == 6);
  CHECK(*sleeps.taken == std::vector<std::chrono::milliseconds>{1000ms, 1000ms, 2000ms});
}

TEST_CASE("ProviderChain over HTTP: 400 and 401 move to the next provider at once, all failing "
          "lists each",
          "[providers]") {
  CapturedLogs logs;  // keeps the expected warnings out of the test output
  FakeVonage vonage;
  FakeTwilio twilio;
  Sleeps sleeps;
  std::vector<std::unique_ptr<ad::Provider>> providers;
  providers.push_back(ad::make_vonage_provider(vonage.config(), webhooks(), ad::HttpSettings{5s}));
  providers.push_back(ad::make_twilio_provider(twilio.config(), webhooks(), ad::HttpSettings{5s}));
  ad::ProviderChain chain{std::move(providers), ad::RetryPolicy{}, sleeps.sleep()};

  vonage.script().queue({400});
  const auto after_400 = chain.place_call(alarm_call());
  REQUIRE(after_400);
  CHECK(after_400->provider == "twilio");
  CHECK(vonage.script().seen().size() == 1);
  CHECK(twilio.script().seen().size() == 1);

  vonage.script().queue({401});
  const auto after_401 = chain.send_sms(k_patient, "x");
  REQUIRE(after_401);
  CHECK(after_401->provider == "twilio");
  CHECK(vonage.script().seen().size() == 2);
  CHECK(sleeps.taken->empty());

  vonage.script().queue({500, 502, 503});
  twilio.script().queue({500, 500, 500});
  const auto failed = chain.place_call(alarm_call());
  REQUIRE_FALSE(failed);
  CHECK_THAT(failed.error().message,
             Catch::Contains("vonage: vonage POST /v1/calls: HTTP 503") &&
                 Catch::Contains("twilio: twilio POST Calls.json: HTTP 500"));
  // Each 5xx create-call is followed by a look at the call list before the next try.
  CHECK(vonage.script().seen().size() == 8);
  CHECK(twilio.script().seen().size() == 8);
  CHECK(*sleeps.taken == std::vector<std::chrono::milliseconds>{1000ms, 2000ms, 1000ms, 2000ms});
}

// ---------------------------------------------------------------------------------------------
// Ambiguous create-call failures (SPEC §6): looked up before any retry.

namespace {

tl::unexpected<ad::ProviderError> ambiguous_failure(int status) {
  ad::ProviderError error{{status == 0 ? ErrorKind::timeout : ErrorKind::http_status,
                           "scripted " + std::to_string(status)},
                          true, status};
  error.ambiguous = true;
  return tl::make_unexpected(error);
}

}  // namespace

TEST_CASE("ProviderChain: a create-call that timed out but exists at the provider is not placed "
          "again",
          "[providers][recovery]") {
  CapturedLogs logs;
  Sleeps sleeps;
  std::vector<std::unique_ptr<ad::Provider>> providers;
  providers.push_back(std::make_unique<ScriptedProvider>(
      "vonage", std::vector<ad::ProviderResult<std::string>>{ambiguous_failure(0),
                                                             std::string{"second-call"}}));
  auto& vonage = static_cast<ScriptedProvider&>(*providers[0]);
  vonage.set_found({{"known-earlier", "completed"}, {"the-lost-one", "ringing"}});
  auto tries = vonage.tries();
  auto lookups = vonage.lookups();
  ad::ProviderChain chain{std::move(providers), ad::RetryPolicy{}, sleeps.sleep()};
  auto request = alarm_call();
  request.known_call_ids = {"known-earlier"};
  const auto sent = chain.place_call(request);
  REQUIRE(sent);
  CHECK(sent->provider == "vonage");
  CHECK(sent->id == "the-lost-one");
  CHECK(*tries == 1);
  CHECK(*lookups == 1);
}

TEST_CASE("ProviderChain: an ambiguous failure with no call at the provider is retried",
          "[providers][recovery]") {
  CapturedLogs logs;
  Sleeps sleeps;
  std::vector<std::unique_ptr<ad::Provider>> providers;
  providers.push_back(std::make_unique<ScriptedProvider>(
      "vonage", std::vector<ad::ProviderResult<std::string>>{ambiguous_failure(502),
                                                             std::string{"uuid-2"}}));
  auto& vonage = static_cast<ScriptedProvider&>(*providers[0]);
  vonage.set_found({{"known-earlier", "completed"}});
  auto tries = vonage.tries();
  ad::ProviderChain chain{std::move(providers), ad::RetryPolicy{}, sleeps.sleep()};
  auto request = alarm_call();
  request.known_call_ids = {"known-earlier"};
  const auto sent = chain.place_call(request);
  REQUIRE(sent);
  CHECK(sent->id == "uuid-2");
  CHECK(*tries == 2);
}

TEST_CASE("ProviderChain: when the call list cannot be read, that provider is not tried again",
          "[providers][recovery]") {
  CapturedLogs logs;
  Sleeps sleeps;
  std::vector<std::unique_ptr<ad::Provider>> providers;
  providers.push_back(std::make_unique<ScriptedProvider>(
      "vonage", std::vector<ad::ProviderResult<std::string>>{ambiguous_failure(0),
                                                             std::string{"never"}}));
  providers.push_back(std::make_unique<ScriptedProvider>(
      "twilio", std::vector<ad::ProviderResult<std::string>>{std::string{"CA9"}}));
  auto& vonage = static_cast<ScriptedProvider&>(*providers[0]);
  vonage.set_lookup_fails(true);
  auto tries = vonage.tries();
  ad::ProviderChain chain{std::move(providers), ad::RetryPolicy{}, sleeps.sleep()};
  const auto sent = chain.place_call(alarm_call());
  REQUIRE(sent);
  CHECK(sent->provider == "twilio");
  CHECK(*tries == 1);
}

TEST_CASE("ProviderChain: a failure that reached nothing (429, refused) is retried without a "
          "lookup, SMS are never looked up",
          "[providers][recovery]") {
  CapturedLogs logs;
  Sleeps sleeps;
  std::vector<std::unique_ptr<ad::Provider>> providers;
  providers.push_back(std::make_unique<ScriptedProvider>(
      "vonage", std::vector<ad::ProviderResult<std::string>>{
                    failure(429, true), failure(0, true), std::string{"u"}, ambiguous_failure(0),
                    std::string{"m"}}));
  auto& vonage = static_cast<ScriptedProvider&>(*providers[0]);
  auto lookups = vonage.lookups();
  ad::ProviderChain chain{std::move(providers), ad::RetryPolicy{}, sleeps.sleep()};
  REQUIRE(chain.place_call(alarm_call()));
  CHECK(*lookups == 0);
  REQUIRE(chain.send_sms(k_patient, "text"));
  CHECK(*lookups == 0);
}

TEST_CASE("ProviderChain::find_call asks every provider and leaves known ids out",
          "[providers][recovery]") {
  std::vector<std::unique_ptr<ad::Provider>> providers;
  providers.push_back(std::make_unique<ScriptedProvider>(
      "vonage", std::vector<ad::ProviderResult<std::string>>{}));
  providers.push_back(std::make_unique<ScriptedProvider>(
      "twilio", std::vector<ad::ProviderResult<std::string>>{}));
  auto& vonage = static_cast<ScriptedProvider&>(*providers[0]);
  auto& twilio = static_cast<ScriptedProvider&>(*providers[1]);
  vonage.set_found({{"known", "completed"}});
  twilio.set_found({{"CA-lost", "queued"}});
  ad::ProviderChain chain{std::move(providers), ad::RetryPolicy{}, nullptr};
  auto request = alarm_call();
  request.known_call_ids = {"known"};
  const auto found = chain.find_call(request);
  REQUIRE(found);
  REQUIRE(*found);
  CHECK((*found)->provider == "twilio");
  CHECK((*found)->id == "CA-lost");
  twilio.set_found({});
  vonage.set_lookup_fails(true);
  const auto unknown = chain.find_call(request);
  CHECK_FALSE(unknown);  // one provider could not be asked: nothing is known
  vonage.set_lookup_fails(false);
  const auto none = chain.find_call(request);
  REQUIRE(none);
  CHECK_FALSE(*none);
}
