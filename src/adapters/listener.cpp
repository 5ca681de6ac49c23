#include "scout/adapters/listener.hpp"

#include <httplib.h>
#include <sys/socket.h>
#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <exception>
#include <mutex>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "scout/adapters/call_script.hpp"
#include "scout/adapters/crypto.hpp"
#include "scout/adapters/encoding.hpp"
#include "scout/adapters/wall_clock.hpp"

namespace scout::adapters {
namespace {

using core::CallProgress;
using core::ErrorKind;
using core::KeypressReply;
using nlohmann::json;

// SPEC §5: bodies over 64 KiB are refused with 413, slow clients are cut off after 10 s.
constexpr std::size_t k_max_body_bytes = std::size_t{64} * 1024;
constexpr time_t k_read_timeout_s = 10;
// Workers serving connections. A slow client holds one for at most the read timeout plus the
// keep-alive wait, an idle keep-alive connection for the keep-alive wait; a handler call is quick.
constexpr std::size_t k_worker_threads = 8;
// How long an idle connection may wait for its next request (cpp-httplib's default is 5 s).
// Short, because each idle connection occupies a worker; webhooks come seconds apart anyway.
constexpr time_t k_keep_alive_s = 1;
// How long start_listener waits for the server thread to accept connections.
constexpr auto k_start_wait = std::chrono::seconds{5};

constexpr std::string_view k_vonage_event = "/webhooks/vonage/event";
constexpr std::string_view k_vonage_input = "/webhooks/vonage/input";
constexpr std::string_view k_twilio_status = "/webhooks/twilio/status";
constexpr std::string_view k_twilio_gather = "/webhooks/twilio/gather";

// What the caller hears when the handler has no reply for a keypress.
constexpr const char* k_fallback_goodbye = "Thank you. Goodbye.";

enum class Route { vonage_event, vonage_input, twilio_status, twilio_gather };

bool is_vonage(Route route) { return route == Route::vonage_event || route == Route::vonage_input; }

using Form = FormFields;

// The first value of `name`, or nullptr.
const std::string* form_find(const Form& form, std::string_view name) {
  for (const auto& [key, value] : form) {
    if (key == name) {
      return &value;
    }
  }
  return nullptr;
}

std::string form_value(const Form& form, std::string_view name) {
  const std::string* value = form_find(form, name);
  return value == nullptr ? std::string{} : *value;
}

// The request target as received: the raw path and, when the target had a '?', the raw query.
struct RawTarget {
  std::string path;
  std::string query;
  bool has_query = false;
};

RawTarget split_target(const httplib::Request& req) {
  // Request::target is the request-target exactly as sent (cpp-httplib 0.11.4 keeps it).
  const std::string& target = req.target.empty() ? req.path : req.target;
  RawTarget raw;
  const std::size_t mark = target.find('?');
  if (mark == std::string::npos) {
    raw.path = target;
  } else {
    raw.path = target.substr(0, mark);
    raw.query = target.substr(mark + 1);
    raw.has_query = true;
  }
  return raw;
}

// public_url + path + ("?" + query): the URL the provider requested, as it signed it, and the
// URL a repeated prompt sends the next keypress to.
std::string request_url(const std::string& public_url, const RawTarget& raw) {
  std::string url = public_url;
  url += raw.path;
  if (raw.has_query) {
    url += '?';
    url += raw.query;
  }
  return url;
}

void set_plain(httplib::Response& res, int status, const char* text) {
  res.status = status;
  res.set_content(text, "text/plain");
}

// Vonage event `status` (protocols.md §2.5) -> progress; nullopt for statuses scout ignores
// (transfer, input, disconnected, ...).
std::optional<CallProgress> vonage_progress(std::string_view status) {
  static constexpr std::pair<std::string_view, CallProgress> k_table[] = {
      {"started", CallProgress::ringing},     {"ringing", CallProgress::ringing},
      {"answered", CallProgress::answered},   {"human", CallProgress::human},
      {"machine", CallProgress::machine},     {"completed", CallProgress::completed},
      {"busy", CallProgress::busy},           {"cancelled", CallProgress::cancelled},
      {"failed", CallProgress::failed},       {"rejected", CallProgress::rejected},
      {"timeout", CallProgress::timeout},     {"unanswered", CallProgress::unanswered},
  };
  for (const auto& [name, progress] : k_table) {
    if (name == status) {
      return progress;
    }
  }
  return std::nullopt;
}

// Twilio AnsweredBy (protocols.md §4.3): human; machine_start, machine_end_beep,
// machine_end_silence, machine_end_other, fax -> machine; unknown or absent -> nullopt.
std::optional<CallProgress> twilio_answered_by(std::string_view answered_by) {
  if (answered_by == "human") {
    return CallProgress::human;
  }
  if (answered_by.substr(0, 8) == "machine_" || answered_by == "fax") {
    return CallProgress::machine;
  }
  return std::nullopt;
}

// Twilio CallStatus (+ AnsweredBy) -> the progress updates to deliver, in order (protocols.md
// §4.2-4.3). in-progress is answered, or human/machine when AMD said so. completed carrying an
// AnsweredBy delivers human/machine first and then completed, so a call whose only callback is
// `completed` still reports who answered. Unknown statuses deliver nothing.
std::vector<CallProgress> twilio_progress(std::string_view status, std::string_view answered_by) {
  const auto who = twilio_answered_by(answered_by);
  if (status == "queued" || status == "initiated" || status == "ringing") {
    return {CallProgress::ringing};
  }
  if (status == "in-progress") {
    return {who.value_or(CallProgress::answered)};
  }
  if (status == "completed") {
    if (who) {
      return {*who, CallProgress::completed};
    }
    return {CallProgress::completed};
  }
  if (status == "busy") {
    return {CallProgress::busy};
  }
  if (status == "failed") {
    return {CallProgress::failed};
  }
  if (status == "no-answer") {
    return {CallProgress::unanswered};
  }
  if (status == "canceled") {
    return {CallProgress::cancelled};
  }
  return {};
}

// A JSON value that should be a string: its text, "" for null or absent, nullopt otherwise.
std::optional<std::string> optional_string(const json& object, const char* key) {
  const auto it = object.find(key);
  if (it == object.end() || it->is_null()) {
    return std::string{};
  }
  if (it->is_string()) {
    return it->get<std::string>();
  }
  return std::nullopt;
}

struct Context {
  WebhookSecrets secrets;
  WebhookHandler handler;
};

class RequestHandler {
 public:
  RequestHandler(const Context& context, Route route, const httplib::Request& req,
                 httplib::Response& res)
      : m_context{context}, m_route{route}, m_req{req}, m_res{res}, m_raw{split_target(req)},
        m_query{parse_form(m_raw.query)} {}

  void run() {
    // cpp-httplib enforces the limit on Content-Length; this also covers chunked bodies.
    if (m_req.body.size() > k_max_body_bytes) {
      set_plain(m_res, 413, "payload too large");
      return;
    }
    if (is_vonage(m_route)) {
      if (!authenticate_vonage()) {
        return;
      }
    } else {
      m_form = parse_form(m_req.body);
      if (!authenticate_twilio()) {
        return;
      }
    }
    switch (m_route) {
      case Route::vonage_event:
        vonage_event();
        break;
      case Route::vonage_input:
        vonage_input();
        break;
      case Route::twilio_status:
        twilio_status();
        break;
      case Route::twilio_gather:
        twilio_gather();
        break;
    }
  }

 private:
  void unauthorized(std::string_view reason) {
    // The reason names what failed, never a secret; the query (it may carry the token) is not
    // logged.
    spdlog::warn("webhook {}: authentication failed from {}: {}", m_raw.path, m_req.remote_addr,
                 reason);
    set_plain(m_res, 401, "unauthorized");
  }

  bool authenticate_vonage() {
    const WebhookSecrets& secrets = m_context.secrets;
    if (!secrets.vonage_signature_secret.empty()) {
      const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                           wall_clock_now().time_since_epoch())
                           .count();
      const auto verified =
          verify_vonage_webhook(m_req.get_header_value("Authorization"), m_req.body,
                                secrets.vonage_signature_secret, static_cast<std::int64_t>(now));
      if (!verified) {
        unauthorized(verified.error().message);
        return false;
      }
      return true;
    }
    const std::string* token = form_find(m_query, "token");
    if (secrets.url_token.empty()) {
      unauthorized("no webhook token is configured");
      return false;
    }
    if (token == nullptr) {
      unauthorized("missing token parameter");
      return false;
    }
    if (!constant_time_equal(*token, secrets.url_token)) {
      unauthorized("wrong token parameter");
      return false;
    }
    return true;
  }

  bool authenticate_twilio() {
    const WebhookSecrets& secrets = m_context.secrets;
    if (secrets.twilio_auth_token.empty()) {
      unauthorized("no Twilio provider is configured");
      return false;
    }
    if (!m_req.has_header("X-Twilio-Signature")) {
      unauthorized("missing X-Twilio-Signature");
      return false;
    }
    // protocols.md §4.6: the URL as Twilio requested it, and only the body's form parameters.
    if (!verify_twilio_signature(secrets.twilio_auth_token, request_url(secrets.public_url, m_raw),
                                 m_form, m_req.get_header_value("X-Twilio-Signature"))) {
      unauthorized("X-Twilio-Signature does not match");
      return false;
    }
    return true;
  }

  std::string call_key() const { return form_value(m_query, "call"); }

  // Calls the handler; on an exception answers 500 and returns false.
  bool deliver(const core::Event& event, std::optional<KeypressReply>& reply) {
    try {
      reply = m_context.handler(event);
      return true;
    } catch (const std::exception& e) {
      spdlog::error("webhook {}: handler failed: {}", m_raw.path, e.what());
    } catch (...) {
      spdlog::error("webhook {}: handler failed with an unknown exception", m_raw.path);
    }
    set_plain(m_res, 500, "internal error");
    return false;
  }

  void deliver_update(core::CallUpdate update) {
    spdlog::debug("webhook {}: call {} ({}) {}", m_raw.path, update.call_key, update.call_id,
                  update.detail);
    std::optional<KeypressReply> ignored;
    if (deliver(core::Event{std::move(update)}, ignored)) {
      m_res.status = 200;
    }
  }

  // The reply to a keypress, or nullopt when the handler failed (500 already set).
  std::optional<std::optional<KeypressReply>> deliver_keypress(core::Keypress keypress) {
    spdlog::debug("webhook {}: call {} ({}) keypress '{}'", m_raw.path, keypress.call_key,
                  keypress.call_id, keypress.digits);
    std::optional<KeypressReply> reply;
    if (!deliver(core::Event{std::move(keypress)}, reply)) {
      return std::nullopt;
    }
    return reply;
  }

  // The JSON object body, or nullopt after answering 400.
  std::optional<json> json_body() {
    json body = json::parse(m_req.body, nullptr, false);
    if (body.is_discarded() || !body.is_object()) {
      set_plain(m_res, 400, "body is not a JSON object");
      return std::nullopt;
    }
    return body;
  }

  void bad_request(const char* what) {
    spdlog::warn("webhook {}: {}", m_raw.path, what);
    set_plain(m_res, 400, what);
  }

  void vonage_event() {
    const auto body = json_body();
    if (!body) {
      return;
    }
    const auto status = optional_string(*body, "status");
    const auto uuid = optional_string(*body, "uuid");
    const auto call_uuid = optional_string(*body, "call_uuid");
    const auto detail = optional_string(*body, "detail");
    if (!status || !uuid || !call_uuid || !detail) {
      bad_request("event fields have the wrong type");
      return;
    }
    const auto progress = vonage_progress(*status);
    if (!progress) {
      spdlog::debug("webhook {}: ignoring status '{}'", m_raw.path, *status);
      m_res.status = 200;
      return;
    }
    core::CallUpdate update;
    update.call_key = call_key();
    update.call_id = uuid->empty() ? *call_uuid : *uuid;
    update.progress = *progress;
    update.detail = *status;
    if (!detail->empty()) {
      update.detail += ": ";
      update.detail += *detail;
    }
    deliver_update(std::move(update));
  }

  void vonage_input() {
    const auto body = json_body();
    if (!body) {
      return;
    }
    const auto uuid = optional_string(*body, "uuid");
    std::optional<std::string> digits = std::string{};
    if (const auto dtmf = body->find("dtmf"); dtmf != body->end() && !dtmf->is_null()) {
      if (!dtmf->is_object()) {
        bad_request("dtmf is not an object");
        return;
      }
      digits = optional_string(*dtmf, "digits");
    }
    if (!uuid || !digits) {
      bad_request("input fields have the wrong type");
      return;
    }
    const auto reply = deliver_keypress(core::Keypress{call_key(), *uuid, *digits});
    if (!reply) {
      return;
    }
    json ncco;
    if (!reply->has_value()) {
      ncco = vonage_ncco_say(k_fallback_goodbye);
    } else if ((*reply)->kind == KeypressReply::Kind::repeat_prompt) {
      ncco = vonage_ncco((*reply)->text, true, request_url(m_context.secrets.public_url, m_raw));
    } else {
      ncco = vonage_ncco_say((*reply)->text.empty() ? std::string{k_fallback_goodbye}
                                                    : (*reply)->text);
    }
    m_res.status = 200;
    m_res.set_content(ncco.dump(), "application/json");
  }

  void twilio_status() {
    const std::string* status = form_find(m_form, "CallStatus");
    if (status == nullptr) {
      bad_request("missing CallStatus");
      return;
    }
    const std::string answered_by = form_value(m_form, "AnsweredBy");
    const auto updates = twilio_progress(*status, answered_by);
    if (updates.empty()) {
      spdlog::debug("webhook {}: ignoring CallStatus '{}'", m_raw.path, *status);
      m_res.status = 200;
      return;
    }
    std::string detail = *status;
    if (!answered_by.empty()) {
      detail += " (answered by ";
      detail += answered_by;
      detail += ')';
    }
    for (const CallProgress progress : updates) {
      deliver_update(core::CallUpdate{call_key(), form_value(m_form, "CallSid"), progress, detail});
      if (m_res.status != 200) {
        return;
      }
    }
  }

  void twilio_gather() {
    const auto reply = deliver_keypress(
        core::Keypress{call_key(), form_value(m_form, "CallSid"), form_value(m_form, "Digits")});
    if (!reply) {
      return;
    }
    std::string twiml;
    if (!reply->has_value()) {
      twiml = twilio_twiml_say(k_fallback_goodbye);
    } else if ((*reply)->kind == KeypressReply::Kind::repeat_prompt) {
      twiml = twilio_twiml((*reply)->text, true, request_url(m_context.secrets.public_url, m_raw));
    } else {
      twiml = twilio_twiml_say((*reply)->text.empty() ? std::string{k_fallback_goodbye}
                                                      : (*reply)->text);
    }
    m_res.status = 200;
    m_res.set_content(twiml, "text/xml");
  }

  const Context& m_context;
  Route m_route;
  const httplib::Request& m_req;
  httplib::Response& m_res;
  RawTarget m_raw;
  Form m_query;  // decoded query parameters (call, token)
  Form m_form;   // decoded body form parameters (Twilio routes)
};

class HttpWebhookListener final : public WebhookListener {
 public:
  HttpWebhookListener(std::unique_ptr<Context> context, std::unique_ptr<httplib::Server> server,
                      int port)
      : m_context{std::move(context)}, m_server{std::move(server)}, m_port{port} {}

  ~HttpWebhookListener() override { stop(); }

  HttpWebhookListener(const HttpWebhookListener&) = delete;
  HttpWebhookListener& operator=(const HttpWebhookListener&) = delete;

  int port() const override { return m_port; }

  // Runs the server on its thread; true once it accepts connections.
  bool start() {
    m_thread = std::thread{[this] {
      m_server->listen_after_bind();
      const std::lock_guard lock{m_mutex};
      m_finished = true;
      m_finished_cv.notify_all();
    }};
    return wait_until_running();
  }

  void stop() override {
    const std::lock_guard stop_lock{m_stop_mutex};
    if (!m_thread.joinable()) {
      return;
    }
    // cpp-httplib 0.11.4's stop() does nothing before the accept loop runs, and must not be
    // called twice while it runs: wait (bounded) for the loop, then stop it once.
    if (wait_until_running()) {
      m_server->stop();
    }
    m_thread.join();
  }

 private:
  bool wait_until_running() {
    const auto deadline = std::chrono::steady_clock::now() + k_start_wait;
    std::unique_lock lock{m_mutex};
    while (!m_server->is_running()) {
      if (m_finished || std::chrono::steady_clock::now() >= deadline) {
        return m_server->is_running();
      }
      // is_running() has no notification: poll it in short slices.
      m_finished_cv.wait_for(lock, std::chrono::milliseconds{2});
    }
    return true;
  }

  std::unique_ptr<Context> m_context;  // outlives the server, whose routes refer to it
  std::unique_ptr<httplib::Server> m_server;
  int m_port = 0;
  std::thread m_thread;
  std::mutex m_mutex;
  std::condition_variable m_finished_cv;
  bool m_finished = false;
  std::mutex m_stop_mutex;
};

void add_routes(httplib::Server& server, const Context& context) {
  const std::pair<std::string_view, Route> routes[] = {
      {k_vonage_event, Route::vonage_event},
      {k_vonage_input, Route::vonage_input},
      {k_twilio_status, Route::twilio_status},
      {k_twilio_gather, Route::twilio_gather},
  };
  const auto not_allowed = [](const httplib::Request&, httplib::Response& res) {
    res.set_header("Allow", "POST");
    set_plain(res, 405, "method not allowed");
  };
  for (const auto& [path, route] : routes) {
    // The paths have no regex metacharacters, so each pattern matches exactly that path.
    const std::string pattern{path};
    server.Post(pattern, [&context, route = route](const httplib::Request& req,
                                                   httplib::Response& res) {
      RequestHandler{context, route, req, res}.run();
    });
    server.Get(pattern, not_allowed);  // also HEAD
    server.Put(pattern, not_allowed);
    server.Patch(pattern, not_allowed);
    server.Delete(pattern, not_allowed);
    server.Options(pattern, not_allowed);
  }
  // Every other path falls through cpp-httplib's routing: 404.
}

}  // namespace

core::Result<std::unique_ptr<WebhookListener>> start_listener(const core::Listener& listener,
                                                              WebhookSecrets secrets,
                                                              WebhookHandler handler) {
  std::unique_ptr<httplib::Server> server;
  if (listener.tls) {
    auto tls_server = std::make_unique<httplib::SSLServer>(listener.tls->cert_file.c_str(),
                                                           listener.tls->key_file.c_str());
    if (!tls_server->is_valid()) {
      return core::fail(ErrorKind::config, "listener.tls: cannot load the certificate '" +
                                               listener.tls->cert_file + "' and key '" +
                                               listener.tls->key_file + "'");
    }
    server = std::move(tls_server);
  } else {
    server = std::make_unique<httplib::Server>();
  }

  auto context = std::make_unique<Context>(Context{std::move(secrets), std::move(handler)});
  server->new_task_queue = [] { return new httplib::ThreadPool(k_worker_threads); };
  // cpp-httplib's default socket options add SO_REUSEPORT, which would let a second scout bind
  // the same port and take part of the webhooks; keep only SO_REUSEADDR (quick restarts).
  server->set_socket_options([](socket_t sock) {
    const int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
  server->set_payload_max_length(k_max_body_bytes);
  server->set_read_timeout(k_read_timeout_s, 0);
  server->set_keep_alive_timeout(k_keep_alive_s);
  server->set_exception_handler(
      [](const httplib::Request& req, httplib::Response& res, std::exception_ptr) {
        spdlog::error("webhook {}: unexpected exception", req.path);
        set_plain(res, 500, "internal error");
      });
  server->set_logger([](const httplib::Request& req, const httplib::Response& res) {
    // req.path has no query: the token never reaches the log.
    spdlog::debug("webhook {} {} -> {}", req.method, req.path, res.status);
  });
  add_routes(*server, *context);

  int port = listener.bind_port;
  bool bound = false;
  if (port == 0) {
    port = server->bind_to_any_port(listener.bind_host);
    bound = port > 0;
  } else {
    bound = server->bind_to_port(listener.bind_host, port);
  }
  if (!bound) {
    return core::fail(ErrorKind::io, "listener: cannot bind " + listener.bind_host + ":" +
                                         std::to_string(listener.bind_port));
  }

  auto running = std::make_unique<HttpWebhookListener>(std::move(context), std::move(server), port);
  if (!running->start()) {
    running->stop();
    return core::fail(ErrorKind::io, "listener: the server on " + listener.bind_host + ":" +
                                         std::to_string(port) + " did not start");
  }
  spdlog::info("listener: serving webhooks on {}://{}:{}", listener.tls ? "https" : "http",
               listener.bind_host, port);
  return std::unique_ptr<WebhookListener>{std::move(running)};
}

}  // namespace scout::adapters
