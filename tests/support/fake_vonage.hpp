#pragma once
// An in-process fake of the Vonage Voice API (calls) and Messages API (SMS) for integration
// tests (protocols.md §2, §3, §5.2). It checks what the real service checks, answers like it,
// records every request, and then drives each call on its own thread by a per-number script,
// POSTing (signed) event and input webhooks to the URLs scout gave it and parsing scout's NCCO
// replies.
//
//   FakeVonage vonage{{.public_key_pem = read_text(".../test_public_key.pem")}};
//   REQUIRE(vonage.start());
//   vonage.script("15555551000", {Answer::human, {"1"}});
//   ... point scout's config at vonage.base_url() ...
//   REQUIRE(vonage.wait_for([](const VonageLog& l) { return l.count_calls_to("15555551000") == 1; },
//                           std::chrono::seconds{10}));
//
// Crypto is the fakes' own (fake_common.hpp), not scout's, so the checks are independent. The
// scaffolding (scripts, fault knobs, the log, webhook retries, call threads) is
// fake::FakeProvider's.

#include <algorithm>
#include <map>
#include <set>

#include "support/fake_common.hpp"

namespace scout::test {

using fake::Answer;
using fake::CallScript;

// How the fake authenticates the webhooks it sends (protocols.md §2.6, §5.2).
enum class VonageSigning {
  signed_jwt,    // Authorization: Bearer HS256 JWT with payload_hash of the exact body
  unsigned_,     // no Authorization header (scout must rely on its URL token)
  tampered,      // a correct JWT for one body, sent with a different body
  wrong_secret,  // a JWT signed with another secret
};

struct VonageOptions {
  std::string application_id = "aaaaaaaa-bbbb-cccc-dddd-0123456789ab";
  std::string public_key_pem;  // the application's public key (RS256 API JWTs); required
  std::string api_key = "a1b2c3d";
  std::string api_secret = "fake-api-secret";
  std::string signature_secret = "fake-signature-secret-0123456789";  // signs webhooks
  VonageSigning signing = VonageSigning::signed_jwt;
  bool reject_reused_jti = true;     // optional strictness of §5.2
  int max_creates_per_second = 0;    // 0: no limit; Vonage's is 3 (protocols.md §2.7)
  std::chrono::milliseconds event_gap{50};  // between consecutive call events
  int webhook_attempts = 3;  // tries per webhook when scout does not answer or answers 5xx/429
};

// A call the fake accepted.
struct VonageCall {
  std::chrono::system_clock::time_point created;
  std::string uuid;
  std::string conversation_uuid;
  std::string to;    // digits, as sent
  std::string from;  // digits, as sent
  std::string status = "started";  // latest event status sent
  nlohmann::json request;          // the create-call body
  std::vector<std::string> events; // every event status sent, in order
  std::vector<nlohmann::json> replies;  // every NCCO scout answered to an input webhook
  std::vector<std::string> digits_sent; // digits posted to input webhooks, in order
  bool ended = false;
  bool hung_up = false;  // PUT {"action":"hangup"}

  const std::string& id() const { return uuid; }
};

struct VonageSms {
  std::chrono::system_clock::time_point at;
  std::string message_uuid;
  std::string to;
  std::string from;
  std::string text;
};

using VonageLog = fake::ProviderLog<VonageCall, VonageSms>;

// An RFC 7807 problem (protocols.md §2.7) with the HTTP status to answer it with.
struct VonageProblem {
  int status = 400;
  nlohmann::json body;
};

// start(), script(), default_script(), set_signing(), fail_calls() (POST /v1/calls),
// fail_messages() (POST /v1/messages), log() and wait_for() are fake::FakeProvider's.
class FakeVonage : public fake::FakeProvider<VonageOptions, VonageCall, VonageSms> {
 public:
  explicit FakeVonage(VonageOptions options)
      : FakeProvider(std::move(options),
                     [this](const httplib::Request& req, httplib::Response& res) { route(req, res); }) {}
  ~FakeVonage() { stop(); }
  FakeVonage(const FakeVonage&) = delete;
  FakeVonage& operator=(const FakeVonage&) = delete;

  // ---- Checks, public so that test_fakes.cpp can exercise them directly ----

  // "" when `ncco` is a valid NCCO (protocols.md §2.3, §5.2), else what is wrong.
  static std::string check_ncco(const nlohmann::json& ncco) {
    static const std::set<std::string> k_actions = {"talk",   "input",   "record", "connect",
                                                    "conversation", "stream", "notify"};
    if (!ncco.is_array() || ncco.empty()) return "ncco must be a non-empty array";
    for (std::size_t i = 0; i < ncco.size(); ++i) {
      const auto& a = ncco[i];
      const std::string at = "ncco[" + std::to_string(i) + "]";
      if (!a.is_object() || !a.contains("action") || !a["action"].is_string()) {
        return at + ": object with a string action expected";
      }
      const auto action = a["action"].get<std::string>();
      if (k_actions.count(action) == 0) return at + ": unknown action " + action;
      // "in all actions, the eventUrl parameter MUST be an array" (ncco-reference).
      if (a.contains("eventUrl")) {
        if (!a["eventUrl"].is_array() || a["eventUrl"].empty()) return at + ".eventUrl must be an array";
        for (const auto& u : a["eventUrl"]) {
          if (!u.is_string() || !fake::is_absolute_url(u.get<std::string>())) {
            return at + ".eventUrl must hold absolute URLs";
          }
        }
      }
      if (a.contains("eventMethod") &&
          !(a["eventMethod"] == "GET" || a["eventMethod"] == "POST")) {
        return at + ".eventMethod must be GET or POST";
      }
      if (action == "talk") {
        if (!a.contains("text") || !a["text"].is_string() || a["text"].get<std::string>().empty()) {
          return at + ".text must be a non-empty string";
        }
        if (fake::utf8_length(a["text"].get<std::string>()) > 1500) {
          return at + ".text is longer than 1500 characters";
        }
        if (a.contains("bargeIn")) {
          if (!a["bargeIn"].is_boolean()) return at + ".bargeIn must be a boolean";
          if (a["bargeIn"].get<bool>()) {
            // The next non-talk action must be an input.
            std::size_t j = i + 1;
            while (j < ncco.size() && ncco[j].is_object() && ncco[j].value("action", "") == "talk") ++j;
            if (j >= ncco.size() || !ncco[j].is_object() || ncco[j].value("action", "") != "input") {
              return at + ": bargeIn true must be followed by an input action";
            }
          }
        }
        if (a.contains("loop") && (!a["loop"].is_number_integer() || a["loop"].get<int>() < 0)) {
          return at + ".loop must be an integer >= 0";
        }
        if (a.contains("level") &&
            (!a["level"].is_number() || a["level"].get<double>() < -1 || a["level"].get<double>() > 1)) {
          return at + ".level must be in -1..1";
        }
        if (a.contains("language") && !a["language"].is_string()) return at + ".language must be a string";
      } else if (action == "input") {
        if (!a.contains("type") || !a["type"].is_array() || a["type"].empty()) {
          return at + ".type must be a non-empty array";
        }
        std::set<std::string> types;
        for (const auto& t : a["type"]) {
          if (!t.is_string() || (t != "dtmf" && t != "speech")) return at + ".type values are dtmf, speech";
          if (!types.insert(t.get<std::string>()).second) return at + ".type has a duplicate";
        }
        if (a.contains("dtmf")) {
          const auto& d = a["dtmf"];
          if (!d.is_object()) return at + ".dtmf must be an object";
          if (d.contains("maxDigits") && (!d["maxDigits"].is_number_integer() ||
                                          d["maxDigits"].get<int>() < 1 || d["maxDigits"].get<int>() > 20)) {
            return at + ".dtmf.maxDigits must be 1..20";
          }
          if (d.contains("timeOut") && (!d["timeOut"].is_number_integer() ||
                                        d["timeOut"].get<int>() < 0 || d["timeOut"].get<int>() > 10)) {
            return at + ".dtmf.timeOut must be 0..10";
          }
          if (d.contains("submitOnHash") && !d["submitOnHash"].is_boolean()) {
            return at + ".dtmf.submitOnHash must be a boolean";
          }
        }
      }
    }
    return "";
  }

  // The invalid parameters of a create-call body (protocols.md §2.1, §5.2); empty when valid.
  static std::vector<std::pair<std::string, std::string>> check_create_call(const nlohmann::json& body) {
    std::vector<std::pair<std::string, std::string>> bad;
    static const std::regex k_number{R"(^[1-9]\d{6,14}$)"};
    auto phone_ok = [&](const nlohmann::json& ep) {
      return ep.is_object() && ep.value("type", "") == "phone" && ep.contains("number") &&
             ep["number"].is_string() && std::regex_match(ep["number"].get<std::string>(), k_number);
    };
    if (!body.is_object()) return {{"body", "must be a JSON object"}};
    if (!body.contains("to") || !body["to"].is_array() || body["to"].empty()) {
      bad.emplace_back("to", "must be a non-empty array");
    } else {
      for (const auto& ep : body["to"]) {
        if (!phone_ok(ep)) bad.emplace_back("to", "phone endpoint with number ^[1-9]\\d{6,14}$ expected");
      }
    }
    const bool has_from = body.contains("from");
    const bool random_from = body.value("random_from_number", false) == true;
    if (has_from == random_from) {
      bad.emplace_back("from", "exactly one of from / random_from_number:true");
    } else if (has_from && !phone_ok(body["from"])) {
      bad.emplace_back("from", "phone endpoint with number ^[1-9]\\d{6,14}$ expected");
    }
    const bool has_ncco = body.contains("ncco");
    const bool has_answer = body.contains("answer_url");
    if (has_ncco == has_answer) {
      bad.emplace_back("ncco", "exactly one of ncco / answer_url");
    } else if (has_ncco) {
      const auto problem = check_ncco(body["ncco"]);
      if (!problem.empty()) bad.emplace_back("ncco", problem);
    } else if (!body["answer_url"].is_array() || body["answer_url"].empty()) {
      bad.emplace_back("answer_url", "must be a non-empty array of URLs");
    }
    if (body.contains("event_url")) {
      const auto& e = body["event_url"];
      if (!e.is_array() || e.empty()) {
        bad.emplace_back("event_url", "must be an array");
      } else {
        for (const auto& u : e) {
          if (!u.is_string() || !fake::is_absolute_url(u.get<std::string>())) {
            bad.emplace_back("event_url", "must hold absolute URLs");
          }
        }
      }
    }
    for (const char* key : {"event_method", "answer_method"}) {
      if (body.contains(key) && !(body[key] == "GET" || body[key] == "POST")) {
        bad.emplace_back(key, "must be GET or POST");
      }
    }
    if (body.contains("machine_detection") &&
        !(body["machine_detection"] == "continue" || body["machine_detection"] == "hangup")) {
      bad.emplace_back("machine_detection", "must be continue or hangup");
    }
    auto int_in = [&](const char* key, int lo, int hi) {
      if (!body.contains(key)) return;
      const auto& v = body[key];
      if (!v.is_number_integer() || v.get<long long>() < lo || v.get<long long>() > hi) {
        bad.emplace_back(key, "must be an integer in " + std::to_string(lo) + ".." + std::to_string(hi));
      }
    };
    int_in("ringing_timer", 1, 120);
    int_in("length_timer", 1, 7200);
    return bad;
  }

  // The Vonage signed-webhook JWT (protocols.md §2.6): header {"alg":"HS256","typ":"JWT"}, claims
  // in the order iat, jti, iss, payload_hash, api_key, application_id.
  static std::string webhook_jwt(std::string_view body, std::int64_t iat, const std::string& jti,
                                 const std::string& api_key, const std::string& application_id,
                                 std::string_view secret) {
    nlohmann::ordered_json claims;
    claims["iat"] = iat;
    claims["jti"] = jti;
    claims["iss"] = "Vonage";
    claims["payload_hash"] = fake::sha256_hex(body);
    claims["api_key"] = api_key;
    claims["application_id"] = application_id;
    return fake::sign_hs256(R"({"alg":"HS256","typ":"JWT"})", claims.dump(), secret);
  }

  // Checks an API JWT (protocols.md §2.2, §5.2). `now` in seconds. nullopt when valid.
  std::optional<VonageProblem> check_api_jwt(const httplib::Request& req, std::int64_t now) {
    if (req.get_header_value_count("Authorization") != 1) {
      return unauthorized("exactly one Authorization header is required");
    }
    const auto auth = req.get_header_value("Authorization");
    if (auth.rfind("Bearer ", 0) != 0) return unauthorized("Bearer token expected");
    const auto jwt = fake::decode_jwt(std::string_view(auth).substr(7));
    if (!jwt) return unauthorized("malformed JWT");
    if (jwt->header.value("alg", "") != "RS256") return unauthorized("alg must be RS256");
    if (jwt->header.value("typ", "") != "JWT") return unauthorized("typ must be JWT");
    if (!fake::verify_rs256_signature(*jwt, m_options.public_key_pem)) {
      return unauthorized("signature does not verify with the application's public key");
    }
    const auto& c = jwt->claims;
    if (!c.contains("application_id") || !c["application_id"].is_string() ||
        !fake::constant_time_equal(c["application_id"].get<std::string>(), m_options.application_id)) {
      return unauthorized("application_id missing or not this application");
    }
    if (!c.contains("iat") || !c["iat"].is_number_integer()) return unauthorized("iat missing");
    if (!c.contains("jti") || !c["jti"].is_string() || c["jti"].get<std::string>().empty()) {
      return unauthorized("jti missing");
    }
    const auto iat = c["iat"].get<std::int64_t>();
    if (iat > now + 300) return unauthorized("iat is in the future");
    // exp is optional; the default lifetime is 15 minutes (authentication.md).
    std::int64_t exp = iat + 900;
    if (c.contains("exp")) {
      if (!c["exp"].is_number_integer()) return unauthorized("exp must be an integer");
      exp = c["exp"].get<std::int64_t>();
      if (exp > iat + 24 * 3600) return unauthorized("exp is more than 24 hours after iat");
    }
    if (exp <= now) {
      auto p = unauthorized("the JWT has expired");
      p.body["type"] = "https://developer.vonage.com/api-errors#jwt-expired";
      return p;
    }
    if (c.contains("nbf") && (!c["nbf"].is_number_integer() || c["nbf"].get<std::int64_t>() > now)) {
      return unauthorized("nbf is in the future");
    }
    if (m_options.reject_reused_jti) {
      const std::lock_guard lock{m_config_mutex};
      if (!m_jtis.insert(c["jti"].get<std::string>()).second) return unauthorized("jti reused");
    }
    return std::nullopt;
  }

 private:
  static nlohmann::json problem_body(const std::string& type, const std::string& title,
                                     const std::string& detail) {
    return {{"type", type}, {"title", title}, {"detail", detail}, {"instance", fake::uuid4()}};
  }
  static VonageProblem unauthorized(const std::string& detail) {
    // protocols.md §2.7, python SDK fixture 401.json.
    return {401, problem_body("https://developer.nexmo.com/api-errors#unauthorized", "Unauthorized",
                              "You did not provide correct credentials. (" + detail + ")")};
  }
  static VonageProblem fault_problem(int status) {
    if (status == 429) {
      return {429, problem_body("https://developer.vonage.com/api-errors#rate-limit", "Rate Limit Hit",
                                "Please wait, then retry your request")};
    }
    return {status, problem_body("https://developer.nexmo.com/api-errors#internal-error",
                                 "Internal Error", "Injected fault")};
  }
  static void reply_problem(httplib::Response& res, const VonageProblem& p) {
    res.status = p.status;
    res.set_content(p.body.dump(), "application/problem+json");
  }
  static VonageProblem invalid_params(int status, const std::string& type,
                                      const std::vector<std::pair<std::string, std::string>>& bad) {
    auto body = problem_body(type, "Invalid params", "The value of one or more parameters is invalid.");
    body["invalid_parameters"] = nlohmann::json::array();
    for (const auto& [name, reason] : bad) {
      body["invalid_parameters"].push_back({{"name", name}, {"reason", reason}});
    }
    return {status, body};
  }

  void route(const httplib::Request& req, httplib::Response& res) {
    static const std::regex k_call_path{R"(^/v1/calls/([0-9a-fA-F\-]{36})$)"};
    std::smatch m;
    if (req.path == "/v1/calls") {
      if (req.method == "GET") return list_calls(req, res);
      if (req.method != "POST") return method_not_allowed(res);
      return create_call(req, res);
    }
    if (std::regex_match(req.path, m, k_call_path)) {
      if (req.method == "GET") return get_call(req, res, m[1].str());
      if (req.method == "PUT") return put_call(req, res, m[1].str());
      return method_not_allowed(res);
    }
    if (req.path == "/v1/messages") {
      if (req.method != "POST") return method_not_allowed(res);
      return send_message(req, res);
    }
    res.status = 404;
    res.set_content(problem_body("https://developer.nexmo.com/api-errors#not-found", "Not Found",
                                 "No such resource")
                        .dump(),
                    "application/problem+json");
  }

  static void method_not_allowed(httplib::Response& res) {
    res.status = 405;
    res.set_content(problem_body("https://developer.nexmo.com/api-errors#method-not-allowed",
                                 "Method Not Allowed", "Method not allowed on this resource")
                        .dump(),
                    "application/problem+json");
  }

  std::optional<nlohmann::json> json_body(const httplib::Request& req, httplib::Response& res) {
    if (!fake::media_type_is(req.get_header_value("Content-Type"), "application/json")) {
      reply_problem(res, {415, problem_body("https://developer.nexmo.com/api-errors#unsupported-media-type",
                                            "Unsupported Media Type", "Content-Type must be application/json")});
      return std::nullopt;
    }
    auto body = nlohmann::json::parse(req.body, nullptr, false);
    if (body.is_discarded() || !body.is_object()) {
      reply_problem(res, {400, problem_body("https://developer.nexmo.com/api-errors#invalid-json",
                                            "Invalid JSON", "The request body is not a JSON object")});
      return std::nullopt;
    }
    return body;
  }

  void create_call(const httplib::Request& req, httplib::Response& res) {
    const auto now = fake::unix_now();
    int fault = 0;
    {
      const std::lock_guard lock{m_config_mutex};
      fault = fake::take_fault(m_call_fault);
      if (fault == 0 && m_options.max_creates_per_second > 0) {
        const auto t = std::chrono::steady_clock::now();
        while (!m_creates.empty() && t - m_creates.front() >= std::chrono::seconds{1}) m_creates.erase(m_creates.begin());
        if (static_cast<int>(m_creates.size()) >= m_options.max_creates_per_second) fault = 429;
        else m_creates.push_back(t);
      }
    }
    if (fault != 0) return reply_problem(res, fault_problem(fault));
    if (auto p = check_api_jwt(req, now)) return reply_problem(res, *p);
    const auto body = json_body(req, res);
    if (!body) return;
    const auto bad = check_create_call(*body);
    if (!bad.empty()) {
      return reply_problem(res, invalid_params(400, "https://developer.nexmo.com/api-errors#invalid-params", bad));
    }
    VonageCall call;
    call.created = std::chrono::system_clock::now();
    call.uuid = fake::uuid4();
    call.conversation_uuid = "CON-" + fake::uuid4();
    call.to = (*body)["to"][0]["number"].get<std::string>();
    call.from = body->contains("from") ? (*body)["from"]["number"].get<std::string>() : "15550000000";
    call.request = *body;
    const nlohmann::json created = {{"uuid", call.uuid},
                                    {"status", "started"},
                                    {"direction", "outbound"},
                                    {"conversation_uuid", call.conversation_uuid}};
    const auto uuid = call.uuid;
    m_log.update([&](VonageLog& log) { log.calls.push_back(std::move(call)); });
    res.status = 201;
    res.set_content(created.dump(), "application/json");
    launch([this, uuid] { drive(uuid); });
    if (const int after = consume_fault(m_after_create_fault); after != 0) {
      reply_problem(res, fault_problem(after));
    }
  }

  // GET /v1/calls (voice.yml getCalls): status, date_start, date_end (ISO 8601), page_size
  // 1..100 (default 10), record_index, order asc|desc (default asc), conversation_uuid. No `to`
  // filter: a client filters the page on its side.
  void list_calls(const httplib::Request& req, httplib::Response& res) {
    if (const int fault = consume_fault(m_list_fault); fault != 0) {
      return reply_problem(res, fault_problem(fault));
    }
    if (auto p = check_api_jwt(req, fake::unix_now())) return reply_problem(res, *p);
    std::vector<std::pair<std::string, std::string>> bad;
    std::optional<std::chrono::system_clock::time_point> start, end;
    if (req.has_param("date_start")) {
      start = fake::parse_iso8601_utc(req.get_param_value("date_start"));
      if (!start) bad.emplace_back("date_start", "must be an ISO 8601 date-time");
    }
    if (req.has_param("date_end")) {
      end = fake::parse_iso8601_utc(req.get_param_value("date_end"));
      if (!end) bad.emplace_back("date_end", "must be an ISO 8601 date-time");
    }
    int page_size = 10;
    if (req.has_param("page_size")) {
      const auto v = req.get_param_value("page_size");
      static const std::regex k_int{R"(^\d{1,3}$)"};
      if (!std::regex_match(v, k_int) || std::stoi(v) < 1 || std::stoi(v) > 100) {
        bad.emplace_back("page_size", "must be 1..100");
      } else {
        page_size = std::stoi(v);
      }
    }
    std::string order = req.has_param("order") ? req.get_param_value("order") : "asc";
    if (order != "asc" && order != "desc") bad.emplace_back("order", "must be asc or desc");
    if (!bad.empty()) {
      return reply_problem(res, invalid_params(400, "https://developer.nexmo.com/api-errors#invalid-params", bad));
    }
    const std::string status = req.has_param("status") ? req.get_param_value("status") : "";
    auto calls = m_log.read([&](const VonageLog& log) {
      std::vector<VonageCall> out;
      for (const auto& c : log.calls) {
        // The list has whole-second times: a call made within the second of date_start is in.
        const auto created = std::chrono::floor<std::chrono::seconds>(c.created);
        if (start && created < *start) continue;
        if (end && created > *end) continue;
        if (!status.empty() && c.status != status) continue;
        out.push_back(c);
      }
      return out;
    });
    if (order == "desc") std::reverse(calls.begin(), calls.end());
    nlohmann::json page = nlohmann::json::array();
    for (std::size_t i = 0; i < calls.size() && static_cast<int>(i) < page_size; ++i) {
      page.push_back(call_resource(calls[i]));
    }
    nlohmann::json body = {{"count", calls.size()},
                           {"page_size", page_size},
                           {"record_index", 0},
                           {"_links", {{"self", {{"href", "/calls?page_size=" + std::to_string(page_size)}}}}}};
    if (!page.empty()) body["_embedded"] = {{"calls", page}};
    res.status = 200;
    res.set_content(body.dump(), "application/json");
  }

  nlohmann::json call_resource(const VonageCall& c) const {
    return {{"uuid", c.uuid},
            {"conversation_uuid", c.conversation_uuid},
            {"to", {{"type", "phone"}, {"number", c.to}}},
            {"from", {{"type", "phone"}, {"number", c.from}}},
            {"status", c.status},
            {"start_time", fake::iso8601_utc(c.created)},
            {"direction", "outbound"},
            {"rate", "0.00450000"},
            {"price", "0.00015000"},
            {"duration", "2"},
            {"network", "65512"}};
  }

  void get_call(const httplib::Request& req, httplib::Response& res, const std::string& uuid) {
    if (auto p = check_api_jwt(req, fake::unix_now())) return reply_problem(res, *p);
    const auto call = find_call(uuid);
    if (!call) {
      return reply_problem(res, {404, problem_body("https://developer.nexmo.com/api-errors#not-found",
                                                   "Not Found", "No call " + uuid)});
    }
    res.status = 200;
    res.set_content(call_resource(*call).dump(), "application/json");
  }

  void put_call(const httplib::Request& req, httplib::Response& res, const std::string& uuid) {
    if (auto p = check_api_jwt(req, fake::unix_now())) return reply_problem(res, *p);
    const auto body = json_body(req, res);
    if (!body) return;
    static const std::set<std::string> k_actions = {"hangup", "mute", "unmute", "earmuff", "unearmuff", "transfer"};
    if (!body->contains("action") || !(*body)["action"].is_string() ||
        k_actions.count((*body)["action"].get<std::string>()) == 0) {
      return reply_problem(res, invalid_params(400, "https://developer.nexmo.com/api-errors#invalid-params",
                                               {{"action", "unknown action"}}));
    }
    bool found = false;
    m_log.update([&](VonageLog& log) {
      for (auto& c : log.calls) {
        if (c.uuid == uuid) {
          found = true;
          if ((*body)["action"] == "hangup") c.hung_up = true;
        }
      }
    });
    if (!found) {
      return reply_problem(res, {404, problem_body("https://developer.nexmo.com/api-errors#not-found",
                                                   "Not Found", "No call " + uuid)});
    }
    res.status = 204;
  }

  void send_message(const httplib::Request& req, httplib::Response& res) {
    const int fault = consume_fault(m_message_fault);
    if (fault != 0) return reply_problem(res, fault_problem(fault));
    // "You can use either JWT or Basic authentication, but not both at the same time".
    if (req.get_header_value_count("Authorization") != 1) {
      return reply_problem(res, unauthorized("exactly one Authorization header is required"));
    }
    const auto auth = req.get_header_value("Authorization");
    if (const auto basic = fake::parse_basic(auth)) {
      if (!fake::constant_time_equal(basic->first, m_options.api_key) ||
          !fake::constant_time_equal(basic->second, m_options.api_secret)) {
        return reply_problem(res, unauthorized("bad api_key/api_secret"));
      }
    } else if (auth.rfind("Bearer ", 0) == 0) {
      if (auto p = check_api_jwt(req, fake::unix_now())) return reply_problem(res, *p);
    } else {
      return reply_problem(res, unauthorized("Basic or Bearer expected"));
    }
    const auto body = json_body(req, res);
    if (!body) return;
    std::vector<std::pair<std::string, std::string>> bad;
    static const std::regex k_to{R"(^\d{7,15}$)"};
    if (body->value("channel", "") != "sms") bad.emplace_back("channel", "must be sms");
    if (body->value("message_type", "") != "text") bad.emplace_back("message_type", "must be text");
    const auto& b = *body;
    if (!b.contains("text") || !b["text"].is_string() || b["text"].get<std::string>().empty() ||
        fake::utf8_length(b["text"].get<std::string>()) > 1000) {
      bad.emplace_back("text", "must be 1..1000 characters");
    }
    if (!b.contains("to") || !b["to"].is_string() || !std::regex_match(b["to"].get<std::string>(), k_to)) {
      bad.emplace_back("to", "must be 7..15 digits without '+'");
    }
    if (!b.contains("from") || !b["from"].is_string() || b["from"].get<std::string>().empty()) {
      bad.emplace_back("from", "must be a non-empty string");
    }
    if (b.contains("client_ref") &&
        (!b["client_ref"].is_string() || b["client_ref"].get<std::string>().size() > 100)) {
      bad.emplace_back("client_ref", "must be a string of at most 100 characters");
    }
    if (!bad.empty()) {
      return reply_problem(res, invalid_params(422, "https://developer.vonage.com/api-errors/messages#1150", bad));
    }
    VonageSms sms{std::chrono::system_clock::now(), fake::uuid4(), b["to"].get<std::string>(),
                  b["from"].get<std::string>(), b["text"].get<std::string>()};
    const nlohmann::json reply = {{"message_uuid", sms.message_uuid}};
    m_log.update([&](VonageLog& log) { log.sms.push_back(std::move(sms)); });
    res.status = 202;
    res.set_content(reply.dump(), "application/json");
  }

  // ---- Driving a call ----

  bool hung_up(const std::string& uuid) const {
    return m_log.read([&](const VonageLog& log) {
      for (const auto& c : log.calls) {
        if (c.uuid == uuid) return c.hung_up;
      }
      return false;
    });
  }

  // POSTs one webhook (signed per the mode), retrying like Vonage on no answer / 5xx / 429;
  // records every attempt and returns the last reply.
  fake::HttpReply send(const std::string& uuid, const std::string& kind, const std::string& url,
                       const std::string& body) {
    return deliver(uuid, kind, url, "application/json", [&] {
      Outgoing out;
      out.body = body;
      const auto mode = signing();
      const auto iat = fake::unix_now();
      if (mode == VonageSigning::signed_jwt || mode == VonageSigning::tampered) {
        out.headers.emplace("Authorization",
                            "Bearer " + webhook_jwt(body, iat, fake::uuid4(), m_options.api_key,
                                                    m_options.application_id, m_options.signature_secret));
      } else if (mode == VonageSigning::wrong_secret) {
        out.headers.emplace("Authorization",
                            "Bearer " + webhook_jwt(body, iat, fake::uuid4(), m_options.api_key,
                                                    m_options.application_id, "not-the-signature-secret"));
      }
      if (mode == VonageSigning::tampered) {
        auto j = nlohmann::json::parse(body);
        j["tampered"] = true;
        out.body = j.dump();
      }
      return out;
    });
  }

  // Sends event `status` to the call's event_url (protocols.md §2.5 field sets).
  void event(const VonageCall& call, const std::string& status, nlohmann::json extra = {}) {
    const bool final = status == "completed" || status == "unanswered" || status == "busy" ||
                       status == "failed" || status == "timeout" || status == "rejected" ||
                       status == "cancelled";
    update_call(call.uuid, [&](VonageCall& c) {
      c.status = status;
      c.events.push_back(status);
    });
    // `ended` is set once the final webhook has been answered, so a wait for it sees every hit.
    const EndOnExit end_on_exit{*this, call.uuid, final};
    if (!call.request.contains("event_url")) return;
    const auto method = call.request.value("event_method", std::string("POST"));
    if (method != "POST") return;  // the fake delivers POST only
    nlohmann::json body;
    if (status == "human" || status == "machine") {
      body = {{"call_uuid", call.uuid}};
    } else {
      body = {{"uuid", call.uuid}, {"direction", "outbound"}};
    }
    body["from"] = call.from;
    body["to"] = call.to;
    body["conversation_uuid"] = call.conversation_uuid;
    body["status"] = status;
    body["timestamp"] = fake::iso8601_now();
    if (extra.is_object()) body.update(extra);
    send(call.uuid, status, call.request["event_url"][0].get<std::string>(), body.dump());
  }

  void drive(const std::string& uuid) {
    const auto call = find_call(uuid).value_or(VonageCall{});
    const auto script = script_for(call.to);
    const auto gap = m_options.event_gap;
    if (!m_stop.sleep(gap)) return;
    event(call, "started");
    if (!m_stop.sleep(gap)) return;
    if (script.answer == Answer::fail) {
      event(call, "failed", {{"detail", "cannot_route"}, {"sip_code", 404}});
      return;
    }
    if (script.answer == Answer::busy) {
      event(call, "busy", {{"detail", "busy"}, {"sip_code", 486}});
      return;
    }
    event(call, "ringing");
    if (!m_stop.sleep(script.ring)) return;
    if (hung_up(uuid)) {
      event(call, "cancelled");
      return;
    }
    if (script.answer == Answer::no) {
      event(call, "unanswered", {{"detail", "unavailable"}, {"sip_code", 480}});
      return;
    }
    const auto started = std::chrono::steady_clock::now();
    event(call, "answered", {{"start_time", nullptr}, {"rate", nullptr}, {"network", nullptr}});
    const auto detection = call.request.value("machine_detection", std::string());
    if (!detection.empty()) {
      if (!m_stop.sleep(gap)) return;
      event(call, script.answer == Answer::human ? "human" : "machine");
    }
    if (!(script.answer == Answer::machine && detection == "hangup")) {
      run_ncco(call, script);
    }
    if (m_stop.stopped()) return;
    const auto secs = std::chrono::duration_cast<std::chrono::seconds>(
                          std::chrono::steady_clock::now() - started).count() + 1;
    event(call, "completed",
          {{"duration", std::to_string(secs)},
           {"rate", "0.00450000"},
           {"price", "0.00015000"},
           {"start_time", fake::iso8601_now()},
           {"end_time", fake::iso8601_now()},
           {"network", "65512"},
           {"disconnected_by", "platform"}});
  }

  // Executes the NCCO (protocols.md §2.3-2.4): talk takes `script.talk`; input posts the next
  // scripted digits (a person) or a time-out (a machine, or no more digits) to its eventUrl and
  // continues with the NCCO scout answers.
  void run_ncco(const VonageCall& call, const CallScript& script) {
    nlohmann::json ncco = call.request.value("ncco", nlohmann::json::array());
    std::size_t prompt = 0;
    int replaced = 0;
    for (std::size_t i = 0; i < ncco.size(); ++i) {
      if (m_stop.stopped() || hung_up(call.uuid)) return;
      const auto& action = ncco[i];
      const auto name = action.value("action", "");
      if (name == "talk") {
        if (!m_stop.sleep(script.talk)) return;
        continue;
      }
      if (name != "input") continue;
      const std::string digits = script.answer == Answer::human && prompt < script.digits.size()
                                     ? script.digits[prompt]
                                     : "";
      ++prompt;
      if (!m_stop.sleep(script.talk)) return;
      std::string url;
      if (action.contains("eventUrl")) {
        url = action["eventUrl"][0].get<std::string>();
      } else if (call.request.contains("event_url")) {
        url = call.request["event_url"][0].get<std::string>();
      } else {
        return;
      }
      const nlohmann::json body = {{"speech", nlohmann::json::object()},
                                   {"dtmf", {{"digits", digits}, {"timed_out", digits.empty()}}},
                                   {"uuid", call.uuid},
                                   {"conversation_uuid", call.conversation_uuid},
                                   {"timestamp", fake::iso8601_now()}};
      update_call(call.uuid, [&](VonageCall& c) { c.digits_sent.push_back(digits); });
      const auto reply = send(call.uuid, "input", url, body.dump());
      // The answer must be 200 with a JSON array NCCO (protocols.md §2.4).
      std::string error;
      auto next = nlohmann::json::parse(reply.body, nullptr, false);
      if (reply.status != 200) {
        error = "status " + std::to_string(reply.status);
      } else if (!fake::media_type_is(reply.content_type, "application/json")) {
        error = "Content-Type " + reply.content_type + " is not application/json";
      } else if (next.is_discarded()) {
        error = "reply is not JSON";
      } else {
        error = check_ncco(next);
      }
      record_reply(call.uuid, "input", error, next);
      if (!error.empty() || ++replaced > 5) return;  // Vonage does not retry an unparsable NCCO
      ncco = next;
      i = static_cast<std::size_t>(-1);  // the reply replaces the NCCO: start at its beginning
    }
  }

  std::set<std::string> m_jtis;                                  // under m_config_mutex
  std::vector<std::chrono::steady_clock::time_point> m_creates;  // under m_config_mutex
};

}  // namespace scout::test
