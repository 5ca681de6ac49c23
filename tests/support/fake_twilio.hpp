#pragma once
// An in-process fake of Twilio's REST API 2010-04-01 (Calls.json, Messages.json) for integration
// tests (protocols.md §4, §5.3). It checks what Twilio checks, answers like it, records every
// request, and drives each call on its own thread by a per-number script: form StatusCallbacks
// signed with X-Twilio-Signature for the subscribed events, and for a <Gather action=…> in the
// TwiML a signed POST of Digits to the action, whose TwiML reply it parses and follows.
//
//   FakeTwilio twilio{{}};
//   REQUIRE(twilio.start());
//   twilio.script("+15555551000", {Answer::human, {"1"}});
//
// Crypto is the fakes' own (fake_common.hpp), not scout's. The scaffolding (scripts, fault knobs,
// the log, webhook retries, call threads) is fake::FakeProvider's.

#include <algorithm>
#include <map>
#include <set>

#include "support/fake_common.hpp"

namespace scout::test {

using fake::Answer;
using fake::CallScript;

enum class TwilioSigning {
  signed_sig,  // X-Twilio-Signature over the exact URL and the sorted params
  unsigned_,   // no X-Twilio-Signature
  wrong_token, // signed with another auth token
  tampered,    // signed for one set of params, sent with a changed one
};

struct TwilioOptions {
  std::string account_sid = "AC0123456789abcdef0123456789abcdef";
  std::string auth_token = "fake-twilio-auth-token-0123456789";
  TwilioSigning signing = TwilioSigning::signed_sig;
  std::chrono::milliseconds event_gap{50};
  int webhook_attempts = 3;
};

struct TwilioCall {
  std::chrono::system_clock::time_point created;
  std::string sid;
  std::string to;    // E.164 with '+', as sent
  std::string from;
  std::string status = "queued";  // the call resource status
  std::string answered_by;
  fake::FormParams request;       // the create-call form
  std::string twiml;              // the Twiml parameter
  std::vector<std::string> callbacks;     // CallStatus of every StatusCallback sent, in order
  std::vector<std::string> replies;       // every TwiML scout answered to a Gather action
  std::vector<std::string> digits_sent;   // Digits posted to Gather actions
  bool ended = false;

  const std::string& id() const { return sid; }
};

struct TwilioSms {
  std::chrono::system_clock::time_point at;
  std::string sid;
  std::string to;
  std::string from;
  std::string body;
};

using TwilioLog = fake::ProviderLog<TwilioCall, TwilioSms>;

// A Twilio error (protocols.md §4.7) with its HTTP status.
struct TwilioError {
  int status = 400;
  int code = 20001;
  std::string message;
  nlohmann::json body() const {
    return {{"code", code},
            {"message", message},
            {"more_info", "https://www.twilio.com/docs/errors/" + std::to_string(code)},
            {"status", status}};
  }
};

// start(), script(), default_script(), set_signing(), fail_calls(), fail_messages(), log() and
// wait_for() are fake::FakeProvider's.
class FakeTwilio : public fake::FakeProvider<TwilioOptions, TwilioCall, TwilioSms> {
 public:
  explicit FakeTwilio(TwilioOptions options)
      : FakeProvider(std::move(options),
                     [this](const httplib::Request& req, httplib::Response& res) { route(req, res); }) {}
  ~FakeTwilio() { stop(); }
  FakeTwilio(const FakeTwilio&) = delete;
  FakeTwilio& operator=(const FakeTwilio&) = delete;

  // ---- Checks and signing, public for test_fakes.cpp ----

  // X-Twilio-Signature (protocols.md §4.6, twilio-python request_validator.py): base64 of
  // HMAC-SHA1(auth_token, url + for each sorted distinct name, its sorted distinct values as
  // name+value).
  static std::string signature(std::string_view auth_token, std::string_view url,
                               const fake::FormParams& params) {
    std::map<std::string, std::set<std::string>> sorted;
    for (const auto& [k, v] : params) sorted[k].insert(v);
    std::string s(url);
    for (const auto& [k, values] : sorted) {
      for (const auto& v : values) s += k + v;
    }
    return fake::base64(fake::hmac(EVP_sha1(), auth_token, s));
  }

  // "" when `text` is TwiML the fake accepts (a <Response> root of known verbs, <Gather> with
  // valid attributes and only Say/Play/Pause inside); `out` receives the parsed document.
  static std::string check_twiml(std::string_view text, fake::XmlElement* out = nullptr) {
    std::string error;
    auto root = fake::XmlParser::parse(text, error);
    if (!root) return "not well-formed XML: " + error;
    if (root->name != "Response") return "the root element must be <Response>, not <" + root->name + ">";
    static const std::set<std::string> k_verbs = {"Say",   "Gather", "Play",   "Pause", "Hangup",
                                                  "Redirect", "Dial", "Record", "Reject", "Sms",
                                                  "Enqueue", "Leave", "Connect", "Refer", "Stream"};
    static const std::set<std::string> k_gather_nested = {"Say", "Play", "Pause"};
    static const std::regex k_positive{R"(^[1-9]\d{0,5}$)"};
    static const std::regex k_nonnegative{R"(^\d{1,6}$)"};
    auto check_say = [&](const fake::XmlElement& say) -> std::string {
      std::string t = say.text;
      t.erase(std::remove_if(t.begin(), t.end(), [](char c) { return std::isspace(std::uint8_t(c)); }), t.end());
      if (t.empty()) return "<Say> needs text";
      if (const auto* loop = say.attribute("loop"); loop && !std::regex_match(*loop, k_nonnegative)) {
        return "<Say loop> must be an integer >= 0";
      }
      if (!say.children.empty()) return "<Say> holds text only here";
      return "";
    };
    for (const auto& verb : root->children) {
      if (k_verbs.count(verb.name) == 0) return "unknown verb <" + verb.name + ">";
      if (verb.name == "Say") {
        if (auto e = check_say(verb); !e.empty()) return e;
      } else if (verb.name == "Gather") {
        static const std::set<std::string> k_attrs = {
            "action", "method", "input", "numDigits", "timeout", "finishOnKey", "speechTimeout",
            "language", "hints", "actionOnEmptyResult", "partialResultCallback",
            "partialResultCallbackMethod", "profanityFilter", "speechModel", "enhanced", "bargeIn"};
        for (const auto& [k, v] : verb.attributes) {
          if (k_attrs.count(k) == 0) return "unknown <Gather> attribute " + k;
        }
        if (const auto* a = verb.attribute("action"); a && !fake::is_absolute_url(*a)) {
          return "<Gather action> must be an absolute URL";
        }
        if (const auto* m = verb.attribute("method"); m && *m != "GET" && *m != "POST") {
          return "<Gather method> must be GET or POST";
        }
        if (const auto* n = verb.attribute("numDigits"); n && !std::regex_match(*n, k_positive)) {
          return "<Gather numDigits> must be a positive integer";
        }
        if (const auto* t = verb.attribute("timeout"); t && !std::regex_match(*t, k_positive)) {
          return "<Gather timeout> must be a positive integer";
        }
        if (const auto* in = verb.attribute("input");
            in && *in != "dtmf" && *in != "speech" && *in != "dtmf speech" && *in != "speech dtmf") {
          return "<Gather input> must be dtmf, speech or both";
        }
        for (const auto& nested : verb.children) {
          if (k_gather_nested.count(nested.name) == 0) return "<" + nested.name + "> cannot nest in <Gather>";
          if (nested.name == "Say") {
            if (auto e = check_say(nested); !e.empty()) return e;
          }
        }
      }
    }
    if (out != nullptr) *out = std::move(*root);
    return "";
  }

  // The problem with a create-call form (protocols.md §4.1, §5.3), or nullopt.
  static std::optional<TwilioError> check_create_call(const fake::FormParams& form) {
    static const std::regex k_e164{R"(^\+[1-9]\d{1,14}$)"};
    const auto to = fake::form_values(form, "To");
    const auto from = fake::form_values(form, "From");
    if (to.empty() || to[0].empty()) return TwilioError{400, 21201, "No 'To' number is specified"};
    if (to.size() != 1 || !std::regex_match(to[0], k_e164)) {
      return TwilioError{400, 21211, "The 'To' number " + to[0] + " is not a valid phone number."};
    }
    if (from.empty() || from[0].empty()) return TwilioError{400, 21213, "No 'From' number is specified"};
    if (from.size() != 1 || !std::regex_match(from[0], k_e164)) {
      return TwilioError{400, 21212, "The 'From' number " + from[0] + " is not a valid phone number"};
    }
    const auto url = fake::form_values(form, "Url");
    const auto twiml = fake::form_values(form, "Twiml");
    const auto app = fake::form_values(form, "ApplicationSid");
    const auto sources = url.size() + twiml.size() + app.size();
    if (sources == 0) return TwilioError{400, 21205, "Url, Twiml or ApplicationSid is required"};
    if (sources > 1) return TwilioError{400, 21205, "Give exactly one of Url, Twiml, ApplicationSid"};
    if (!url.empty() && !fake::is_absolute_url(url[0])) return TwilioError{400, 21205, "Url is not a valid URL"};
    if (!twiml.empty()) {
      if (fake::utf8_length(twiml[0]) > 4000) {
        return TwilioError{400, 21218, "Twiml is longer than 4000 characters"};  // [inferred code]
      }
      if (auto e = check_twiml(twiml[0]); !e.empty()) {
        return TwilioError{400, 12100, "Document parse failure: " + e};  // [inferred code]
      }
    }
    for (const auto& cb : fake::form_values(form, "StatusCallback")) {
      if (!fake::is_absolute_url(cb)) return TwilioError{400, 21609, "StatusCallback is not a valid URL"};
    }
    static const std::set<std::string> k_events = {"initiated", "ringing", "answered", "completed"};
    for (const auto& e : fake::form_values(form, "StatusCallbackEvent")) {
      if (k_events.count(e) == 0) return TwilioError{400, 20001, "Invalid StatusCallbackEvent " + e};
    }
    for (const char* key : {"StatusCallbackMethod", "Method"}) {
      for (const auto& m : fake::form_values(form, key)) {
        if (m != "GET" && m != "POST") return TwilioError{400, 20001, std::string(key) + " must be GET or POST"};
      }
    }
    static const std::regex k_int{R"(^\d{1,9}$)"};
    for (const auto& t : fake::form_values(form, "Timeout")) {
      if (!std::regex_match(t, k_int) || std::stoi(t) < 1 || std::stoi(t) > 600) {
        return TwilioError{400, 20001, "Timeout must be 1..600"};
      }
    }
    for (const auto& t : fake::form_values(form, "TimeLimit")) {
      if (!std::regex_match(t, k_int) || std::stoi(t) < 1) return TwilioError{400, 20001, "TimeLimit must be positive"};
    }
    for (const auto& m : fake::form_values(form, "MachineDetection")) {
      if (m != "Enable" && m != "DetectMessageEnd") {
        return TwilioError{400, 20001, "MachineDetection must be Enable or DetectMessageEnd"};
      }
    }
    return std::nullopt;
  }

 private:
  static void reply_error(httplib::Response& res, const TwilioError& e) {
    res.status = e.status;
    res.set_content(e.body().dump(), "application/json");
  }
  static TwilioError authenticate_error() {
    // protocols.md §4.7, §5.3.
    return {401, 20003, "Authenticate"};
  }
  static TwilioError fault_error(int status) {
    if (status == 429) return {429, 20429, "Too Many Requests"};
    return {status, 20500, "Internal Server Error"};
  }

  void route(const httplib::Request& req, httplib::Response& res) {
    static const std::regex k_path{R"(^/2010-04-01/Accounts/([^/]+)/(Calls|Messages)(?:/([^/]+))?\.json$)"};
    std::smatch m;
    if (!std::regex_match(req.path, m, k_path)) {
      return reply_error(res, {404, 20404, "The requested resource " + req.path + " was not found"});
    }
    // Basic AccountSid:AuthToken; the path's account must be the authenticated one.
    const auto basic = fake::parse_basic(req.get_header_value("Authorization"));
    if (req.get_header_value_count("Authorization") != 1 || !basic ||
        !fake::constant_time_equal(basic->first, m_options.account_sid) ||
        !fake::constant_time_equal(basic->second, m_options.auth_token) ||
        m[1].str() != m_options.account_sid) {
      return reply_error(res, authenticate_error());
    }
    const bool calls = m[2].str() == "Calls";
    if (m[3].matched) {
      if (!calls || req.method != "GET") return reply_error(res, {405, 20004, "Method not allowed"});
      return get_call(res, m[3].str());
    }
    if (calls && req.method == "GET") return list_calls(req, res);
    if (req.method != "POST") return reply_error(res, {405, 20004, "Method not allowed"});
    if (!fake::media_type_is(req.get_header_value("Content-Type"), "application/x-www-form-urlencoded")) {
      return reply_error(res, {400, 20001, "Content-Type must be application/x-www-form-urlencoded"});
    }
    const int fault = consume_fault(calls ? m_call_fault : m_message_fault);
    if (fault != 0) return reply_error(res, fault_error(fault));
    const auto form = fake::parse_form(req.body);
    if (calls) return create_call(res, form);
    return create_message(res, form);
  }

  nlohmann::json call_resource(const TwilioCall& c) const {
    return {{"sid", c.sid},
            {"account_sid", m_options.account_sid},
            {"to", c.to},
            {"from", c.from},
            {"status", c.status},
            {"direction", "outbound-api"},
            {"answered_by", c.answered_by.empty() ? nlohmann::json(nullptr) : nlohmann::json(c.answered_by)},
            {"api_version", "2010-04-01"},
            {"date_created", fake::rfc2822(c.created)},
            {"date_updated", fake::rfc2822_now()},
            {"start_time", nullptr},
            {"end_time", nullptr},
            {"duration", nullptr},
            {"price", nullptr},
            {"parent_call_sid", nullptr},
            {"uri", "/2010-04-01/Accounts/" + m_options.account_sid + "/Calls/" + c.sid + ".json"}};
  }

  void get_call(httplib::Response& res, const std::string& sid) {
    const auto call = find_call(sid);
    if (!call) return reply_error(res, {404, 20404, "The requested resource was not found"});
    res.status = 200;
    res.set_content(call_resource(*call).dump(), "application/json");
  }

  void create_call(httplib::Response& res, const fake::FormParams& form) {
    if (auto e = check_create_call(form)) return reply_error(res, *e);
    TwilioCall call;
    call.created = std::chrono::system_clock::now();
    call.sid = "CA" + fake::random_hex(16);
    call.to = fake::form_values(form, "To")[0];
    call.from = fake::form_values(form, "From")[0];
    call.request = form;
    const auto twiml = fake::form_values(form, "Twiml");
    call.twiml = twiml.empty() ? "" : twiml[0];
    const auto body = call_resource(call);
    const auto sid = call.sid;
    m_log.update([&](TwilioLog& log) { log.calls.push_back(std::move(call)); });
    res.status = 201;
    res.set_content(body.dump(), "application/json");
    launch([this, sid] { drive(sid); });
    if (const int after = consume_fault(m_after_create_fault); after != 0) {
      reply_error(res, fault_error(after));
    }
  }

  // GET Calls.json (twilio_api_v2010.json ListCall): To, From, Status, StartTime, StartTime<,
  // StartTime> (YYYY-MM-DD, UTC; "StartTime>=" on the wire), PageSize 1..1000 (default 50);
  // newest first. The fake dates a call by its creation (its start_time stays null).
  void list_calls(const httplib::Request& req, httplib::Response& res) {
    if (const int fault = consume_fault(m_list_fault); fault != 0) return reply_error(res, fault_error(fault));
    static const std::regex k_date{R"(^(\d{4})-(\d{2})-(\d{2})$)"};
    const auto day_of = [](std::chrono::system_clock::time_point t) {
      return fake::iso8601_utc(t).substr(0, 10);
    };
    std::string on, after, before;
    for (const auto& [name, target] : {std::pair<const char*, std::string*>{"StartTime", &on},
                                       {"StartTime>", &after}, {"StartTime<", &before}}) {
      if (!req.has_param(name)) continue;
      *target = req.get_param_value(name);
      if (!std::regex_match(*target, k_date)) {
        return reply_error(res, {400, 20001, std::string{name} + " must be a date YYYY-MM-DD"});
      }
    }
    int page_size = 50;
    if (req.has_param("PageSize")) {
      const auto v = req.get_param_value("PageSize");
      static const std::regex k_int{R"(^\d{1,4}$)"};
      if (!std::regex_match(v, k_int) || std::stoi(v) < 1 || std::stoi(v) > 1000) {
        return reply_error(res, {400, 20001, "PageSize must be 1..1000"});
      }
      page_size = std::stoi(v);
    }
    const std::string to = req.has_param("To") ? req.get_param_value("To") : "";
    auto calls = m_log.read([&](const TwilioLog& log) {
      std::vector<TwilioCall> out;
      for (auto it = log.calls.rbegin(); it != log.calls.rend(); ++it) {
        const std::string day = day_of(it->created);
        if (!to.empty() && it->to != to) continue;
        if (!on.empty() && day != on) continue;
        if (!after.empty() && day < after) continue;
        if (!before.empty() && day >= before) continue;
        out.push_back(*it);
      }
      return out;
    });
    nlohmann::json page = nlohmann::json::array();
    for (std::size_t i = 0; i < calls.size() && static_cast<int>(i) < page_size; ++i) {
      page.push_back(call_resource(calls[i]));
    }
    const nlohmann::json body = {{"calls", page},
                                 {"page", 0},
                                 {"page_size", page_size},
                                 {"start", 0},
                                 {"end", page.empty() ? 0 : static_cast<int>(page.size()) - 1},
                                 {"first_page_uri", req.path},
                                 {"next_page_uri", nullptr},
                                 {"previous_page_uri", nullptr},
                                 {"uri", req.path}};
    res.status = 200;
    res.set_content(body.dump(), "application/json");
  }

  void create_message(httplib::Response& res, const fake::FormParams& form) {
    static const std::regex k_e164{R"(^\+[1-9]\d{1,14}$)"};
    static const std::regex k_mg{R"(^MG[0-9a-fA-F]{32}$)"};
    const auto to = fake::form_values(form, "To");
    const auto from = fake::form_values(form, "From");
    const auto service = fake::form_values(form, "MessagingServiceSid");
    const auto body = fake::form_values(form, "Body");
    if (to.empty() || to[0].empty()) return reply_error(res, {400, 21604, "A 'To' phone number is required."});
    if (!std::regex_match(to[0], k_e164)) {
      return reply_error(res, {400, 21211, "The 'To' number " + to[0] + " is not a valid phone number."});
    }
    if (from.size() + service.size() != 1) {
      return reply_error(res, {400, 21603, "Exactly one of 'From' and 'MessagingServiceSid' is required."});
    }
    if (!service.empty() && !std::regex_match(service[0], k_mg)) {
      return reply_error(res, {400, 21701, "The Messaging Service Sid is invalid."});
    }
    if (!from.empty() && from[0].empty()) return reply_error(res, {400, 21603, "A 'From' phone number is required."});
    const bool media = !fake::form_values(form, "MediaUrl").empty() || !fake::form_values(form, "ContentSid").empty();
    if ((body.empty() || body[0].empty()) && !media) {
      return reply_error(res, {400, 21602, "Message body is required."});
    }
    if (!body.empty() && fake::utf8_length(body[0]) > 1600) {
      return reply_error(res, {400, 21617, "The concatenated message body exceeds the 1600 character limit."});
    }
    TwilioSms sms{std::chrono::system_clock::now(), "SM" + fake::random_hex(16), to[0],
                  from.empty() ? service[0] : from[0], body.empty() ? "" : body[0]};
    const nlohmann::json reply = {{"sid", sms.sid},
                                  {"account_sid", m_options.account_sid},
                                  {"to", sms.to},
                                  {"from", sms.from},
                                  {"body", sms.body},
                                  {"status", "queued"},
                                  {"direction", "outbound-api"},
                                  {"num_segments", "1"},
                                  {"error_code", nullptr},
                                  {"error_message", nullptr},
                                  {"api_version", "2010-04-01"},
                                  {"date_created", fake::rfc2822_now()}};
    m_log.update([&](TwilioLog& log) { log.sms.push_back(std::move(sms)); });
    res.status = 201;
    res.set_content(reply.dump(), "application/json");
  }

  // ---- Driving a call ----

  // POSTs a signed form to `url`, retrying on no answer / 5xx / 429; records every attempt.
  fake::HttpReply send(const std::string& sid, const std::string& kind, const std::string& url,
                       const fake::FormParams& params) {
    return deliver(sid, kind, url, "application/x-www-form-urlencoded", [&] {
      const auto mode = signing();
      Outgoing out;
      fake::FormParams sent = params;
      if (mode == TwilioSigning::signed_sig || mode == TwilioSigning::tampered) {
        out.headers.emplace("X-Twilio-Signature", signature(m_options.auth_token, url, params));
      } else if (mode == TwilioSigning::wrong_token) {
        out.headers.emplace("X-Twilio-Signature", signature("not-the-auth-token", url, params));
      }
      if (mode == TwilioSigning::tampered) {
        for (auto& [k, v] : sent) {
          if (k == "CallStatus") v = "completed";
          if (k == "Digits") v = "1";
        }
        sent.emplace_back("Tampered", "true");
      }
      out.body = fake::encode_form(sent);
      return out;
    });
  }

  fake::FormParams base_params(const TwilioCall& call, const std::string& call_status) const {
    return {{"CallSid", call.sid},
            {"AccountSid", m_options.account_sid},
            {"From", call.from},
            {"To", call.to},
            {"Called", call.to},
            {"Caller", call.from},
            {"CallStatus", call_status},
            {"ApiVersion", "2010-04-01"},
            {"Direction", "outbound-api"}};
  }

  // One progress step: updates the resource and, when `event` is subscribed, sends the
  // StatusCallback (protocols.md §4.2-4.3).
  void progress(const TwilioCall& call, const std::string& event, const std::string& call_status,
                const std::string& answered_by, int duration, int& sequence) {
    const bool final = event == "completed";
    update_call(call.sid, [&](TwilioCall& c) {
      c.status = call_status == "initiated" ? "queued" : call_status;
      if (!answered_by.empty()) c.answered_by = answered_by;
    });
    // `ended` is set once the final callback has been answered, so a wait for it sees every hit.
    const EndOnExit end_on_exit{*this, call.sid, final};
    const auto callbacks = fake::form_values(call.request, "StatusCallback");
    if (callbacks.empty()) return;
    auto events = fake::form_values(call.request, "StatusCallbackEvent");
    if (events.empty()) events = {"completed"};
    if (std::find(events.begin(), events.end(), event) == events.end()) return;
    const auto method = fake::form_values(call.request, "StatusCallbackMethod");
    if (!method.empty() && method[0] != "POST") return;  // the fake delivers POST only
    auto params = base_params(call, call_status);
    params.emplace_back("CallbackSource", "call-progress-events");
    params.emplace_back("SequenceNumber", std::to_string(sequence++));
    params.emplace_back("Timestamp", fake::rfc2822_now());
    if (!answered_by.empty()) params.emplace_back("AnsweredBy", answered_by);
    if (final) {
      params.emplace_back("CallDuration", std::to_string(duration));
      params.emplace_back("Duration", std::to_string((duration + 59) / 60));
    }
    update_call(call.sid, [&](TwilioCall& c) { c.callbacks.push_back(call_status); });
    send(call.sid, "status:" + call_status, callbacks[0], params);
  }

  void drive(const std::string& sid) {
    const auto call = find_call(sid).value_or(TwilioCall{});
    const auto script = script_for(call.to);
    const auto gap = m_options.event_gap;
    int sequence = 0;
    if (!m_stop.sleep(gap)) return;
    progress(call, "initiated", "initiated", "", 0, sequence);
    if (!m_stop.sleep(gap)) return;
    if (script.answer == Answer::busy || script.answer == Answer::fail) {
      progress(call, "completed", script.answer == Answer::busy ? "busy" : "failed", "", 0, sequence);
      return;
    }
    progress(call, "ringing", "ringing", "", 0, sequence);
    if (!m_stop.sleep(script.ring)) return;
    if (script.answer == Answer::no) {
      progress(call, "completed", "no-answer", "", 0, sequence);
      return;
    }
    const auto started = std::chrono::steady_clock::now();
    const bool amd = !fake::form_values(call.request, "MachineDetection").empty();
    const std::string answered_by = !amd ? "" : script.answer == Answer::human ? "human" : "machine_start";
    progress(call, "answered", "in-progress", answered_by, 0, sequence);
    run_twiml(call, script);
    if (m_stop.stopped()) return;
    const auto secs = static_cast<int>(std::chrono::duration_cast<std::chrono::seconds>(
                                           std::chrono::steady_clock::now() - started).count()) + 1;
    progress(call, "completed", "completed", answered_by, secs, sequence);
  }

  // Executes the TwiML (protocols.md §4.4): Say/Play/Pause take `script.talk`; a Gather with
  // scripted digits posts them to its action and continues with the TwiML scout answers; a Gather
  // without digits falls through to the next verb; Hangup ends.
  void run_twiml(const TwilioCall& call, const CallScript& script) {
    fake::XmlElement doc;
    if (call.twiml.empty() || !check_twiml(call.twiml, &doc).empty()) return;
    std::size_t prompt = 0;
    int replaced = 0;
    for (std::size_t i = 0; i < doc.children.size(); ++i) {
      if (m_stop.stopped()) return;
      const auto verb = doc.children[i];
      if (verb.name == "Hangup" || verb.name == "Redirect" || verb.name == "Reject") return;
      if (verb.name != "Gather") {
        if (!m_stop.sleep(script.talk)) return;
        continue;
      }
      const std::string digits = script.answer == Answer::human && prompt < script.digits.size()
                                     ? script.digits[prompt]
                                     : "";
      ++prompt;
      if (!m_stop.sleep(script.talk)) return;
      if (digits.empty()) continue;  // timeout: execution falls through
      const auto* action = verb.attribute("action");
      const auto url = fake::form_values(call.request, "Url");
      const std::string target = action != nullptr ? *action : url.empty() ? "" : url[0];
      if (target.empty()) return;
      update_call(call.sid, [&](TwilioCall& c) { c.digits_sent.push_back(digits); });
      auto params = base_params(call, "in-progress");
      params.emplace_back("Digits", digits);
      params.emplace_back("FinishedOnKey", "");
      const auto reply = send(call.sid, "gather", target, params);
      std::string error;
      fake::XmlElement next;
      if (reply.status != 200) {
        error = "status " + std::to_string(reply.status);
      } else if (!fake::media_type_is(reply.content_type, "text/xml") &&
                 !fake::media_type_is(reply.content_type, "application/xml")) {
        error = "Content-Type " + reply.content_type + " is not text/xml";
      } else {
        error = check_twiml(reply.body, &next);
      }
      record_reply(call.sid, "gather", error, reply.body);
      if (!error.empty() || ++replaced > 5) return;
      doc = std::move(next);
      i = static_cast<std::size_t>(-1);
    }
  }

};

}  // namespace scout::test
