#include "scout/adapters/listener.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <exception>
#include <future>
#include <limits>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <string_view>
#include <thread>
#include <utility>
#include <variant>
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

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = boost::asio::ip::tcp;
using SteadyClock = std::chrono::steady_clock;

// SPEC §5: bodies over 64 KiB are refused with 413; a request not complete 10 s after its
// connection opened (or, on a kept-alive connection, after the previous answer) is cut off.
constexpr std::size_t k_max_body_bytes = std::size_t{64} * 1024;
constexpr std::uint32_t k_max_header_bytes = 8 * 1024;
constexpr auto k_request_deadline = std::chrono::seconds{10};
// An answer that the client does not take within this long is dropped with the connection.
constexpr auto k_write_deadline = std::chrono::seconds{5};
// How long a refused body is read and discarded before the connection closes.
constexpr auto k_drain_deadline = std::chrono::seconds{2};
// Requests served on one kept-alive connection before it is closed.
constexpr int k_max_requests_per_connection = 1000;
// Connections held open at once, in total and per client address. At either cap the oldest
// connection still waiting for its request is closed to make room, so a genuine provider that
// connects now is served even when slow or idle clients hold every slot (SPEC §5).
constexpr std::size_t k_max_connections = 1024;
constexpr std::size_t k_max_connections_per_address = 256;
// Threads that call the webhook handler (it takes the engine's lock and saves the state): the
// network thread never waits for it, so a busy engine does not stop 401s or other answers.
constexpr std::size_t k_handler_threads = 2;
// Failed authentications are logged as one summary line per this interval (SPEC §5).
constexpr auto k_failure_log_interval = std::chrono::seconds{60};

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

RawTarget split_target(const std::string& target) {
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

using Outgoing = WebhookResponse;
using Incoming = WebhookRequest;

void set_plain(Outgoing& res, int status, const char* text) {
  res.status = status;
  res.content_type = "text/plain";
  res.body = text;
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

// Failed authentications, logged as a rate-limited summary (SPEC §5): the first of a quiet
// period at once, then one line per k_failure_log_interval with the count and the latest
// reason. Used on the network thread only.
class FailureLog {
 public:
  void note(const std::string& path, const std::string& remote, std::string_view reason) {
    const auto now = SteadyClock::now();
    ++count_;
    last_ = path + " from " + remote + ": " + std::string{reason};
    if (!logged_once_ || now - last_logged_ >= k_failure_log_interval) flush(now);
  }
  // Logs what was counted since the last line (the periodic timer calls it).
  void flush(SteadyClock::time_point now) {
    if (count_ == 0) return;
    if (count_ == 1) {
      spdlog::warn("webhook authentication failed: {}", last_);
    } else {
      spdlog::warn("webhook authentication failed {} times in the last {}s (latest: {})", count_,
                   std::chrono::duration_cast<std::chrono::seconds>(now - last_logged_).count(),
                   last_);
    }
    count_ = 0;
    logged_once_ = true;
    last_logged_ = now;
  }

 private:
  std::uint64_t count_ = 0;
  std::string last_;
  bool logged_once_ = false;
  SteadyClock::time_point last_logged_{};
};

struct Context {
  WebhookSecrets secrets;
  WebhookHandler handler;
};

// One authenticated-or-not webhook request on one of the four routes. authenticate() runs on
// the network thread (cheap: an HMAC or a token comparison, no lock); serve() calls the handler
// and runs on a handler thread.
class RequestHandler {
 public:
  RequestHandler(const Context& context, Route route, Incoming req)
      : m_context{&context}, m_route{route}, m_req{std::move(req)}, m_raw{split_target(m_req.target)},
        m_query{parse_form(m_raw.query)} {}

  // False when the request is refused (401); `reason` then says why (never a secret).
  bool authenticate(std::string& reason) {
    if (is_vonage(m_route)) return authenticate_vonage(reason);
    m_form = parse_form(m_req.body);
    return authenticate_twilio(reason);
  }

  Outgoing serve() {
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
    return std::move(m_res);
  }

  const std::string& path() const { return m_raw.path; }

 private:
  bool authenticate_vonage(std::string& reason) {
    const WebhookSecrets& secrets = m_context->secrets;
    if (!secrets.vonage_signature_secret.empty()) {
      const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                           wall_clock_now().time_since_epoch())
                           .count();
      const auto verified =
          verify_vonage_webhook(m_req.authorization, m_req.body, secrets.vonage_signature_secret,
                                static_cast<std::int64_t>(now));
      if (!verified) {
        reason = verified.error().message;
        return false;
      }
      return true;
    }
    const std::string* token = form_find(m_query, "token");
    if (secrets.url_token.empty()) {
      reason = "no webhook token is configured";
      return false;
    }
    if (token == nullptr) {
      reason = "missing token parameter";
      return false;
    }
    if (!constant_time_equal(*token, secrets.url_token)) {
      reason = "wrong token parameter";
      return false;
    }
    return true;
  }

  bool authenticate_twilio(std::string& reason) {
    const WebhookSecrets& secrets = m_context->secrets;
    if (secrets.twilio_auth_token.empty()) {
      reason = "no Twilio provider is configured";
      return false;
    }
    if (!m_req.twilio_signature) {
      reason = "missing X-Twilio-Signature";
      return false;
    }
    // protocols.md §4.6: the URL as Twilio requested it, and only the body's form parameters.
    if (!verify_twilio_signature(secrets.twilio_auth_token, request_url(secrets.public_url, m_raw),
                                 m_form, *m_req.twilio_signature)) {
      reason = "X-Twilio-Signature does not match";
      return false;
    }
    return true;
  }

  std::string call_key() const { return form_value(m_query, "call"); }

  // Calls the handler; on an exception answers 500 and returns false.
  bool deliver(const core::Event& event, std::optional<KeypressReply>& reply) {
    try {
      reply = m_context->handler(event);
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
      ncco = vonage_ncco((*reply)->text, true, request_url(m_context->secrets.public_url, m_raw));
    } else {
      ncco = vonage_ncco_say((*reply)->text.empty() ? std::string{k_fallback_goodbye}
                                                    : (*reply)->text);
    }
    m_res.status = 200;
    m_res.content_type = "application/json";
    // Replace, never throw: the call key in the URL is the caller's bytes (fuzz found it).
    m_res.body = ncco.dump(-1, ' ', false, json::error_handler_t::replace);
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
      twiml = twilio_twiml((*reply)->text, true, request_url(m_context->secrets.public_url, m_raw));
    } else {
      twiml = twilio_twiml_say((*reply)->text.empty() ? std::string{k_fallback_goodbye}
                                                      : (*reply)->text);
    }
    m_res.status = 200;
    m_res.content_type = "text/xml";
    m_res.body = std::move(twiml);
  }

  const Context* m_context;
  Route m_route;
  Incoming m_req;
  RawTarget m_raw;
  Form m_query;  // decoded query parameters (call, token)
  Form m_form;   // decoded body form parameters (Twilio routes)
  Outgoing m_res;
};

// The route of a path, or nullopt (404).
std::optional<Route> route_of(std::string_view path) {
  if (path == k_vonage_event) return Route::vonage_event;
  if (path == k_vonage_input) return Route::vonage_input;
  if (path == k_twilio_status) return Route::twilio_status;
  if (path == k_twilio_gather) return Route::twilio_gather;
  return std::nullopt;
}

// ---------------------------------------------------------------------------------------------
// The server: Boost.Beast on one network thread (asio, non-blocking: a slow client costs a
// buffer, never a thread), handler calls on a small pool.

class Server;

// What the server knows of every open connection (network thread only).
struct ConnectionSlot {
  SteadyClock::time_point opened;
  std::string address;
  bool waiting = true;  // reading a request (evictable), not being answered
  std::function<void()> close;
};
using Slots = std::list<ConnectionSlot>;

class Server : public std::enable_shared_from_this<Server> {
 public:
  Server(std::unique_ptr<Context> context, std::optional<net::ssl::context> tls)
      : context_(std::move(context)), tls_(std::move(tls)), acceptor_(io_), failure_timer_(io_) {}

  core::Status bind(const std::string& host, int port) {
    beast::error_code ec;
    const auto address = net::ip::make_address(host, ec);
    if (ec) return core::fail(ErrorKind::io, "listener: cannot bind " + host + ":" +
                                                 std::to_string(port) + ": not an IP address");
    const tcp::endpoint endpoint{address, static_cast<unsigned short>(port)};
    acceptor_.open(endpoint.protocol(), ec);
    // SO_REUSEADDR only (quick restarts); no SO_REUSEPORT, which would let a second scout take
    // part of the webhooks.
    if (!ec) acceptor_.set_option(net::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_.bind(endpoint, ec);
    if (!ec) acceptor_.listen(net::socket_base::max_listen_connections, ec);
    if (ec) {
      return core::fail(ErrorKind::io, "listener: cannot bind " + host + ":" +
                                           std::to_string(port) + ": " + ec.message());
    }
    port_ = acceptor_.local_endpoint().port();
    return {};
  }

  int port() const { return port_; }

  void start() {
    accept();
    arm_failure_timer();
    thread_ = std::thread{[self = shared_from_this()] {
      // An exception out of a completion handler is logged and the loop goes on (asio allows
      // run() again); the listener never takes scout down.
      for (;;) {
        try {
          self->io_.run();
          self->finished_.set_value();
          return;
        } catch (const std::exception& e) {
          spdlog::error("listener: unexpected error: {}", e.what());
        } catch (...) {
          spdlog::error("listener: unexpected error");
        }
      }
    }};
  }

  void stop() {
    const std::lock_guard lock{stop_mutex_};
    if (stopped_) return;
    stopped_ = true;
    net::post(io_, [self = shared_from_this()] {
      beast::error_code ec;
      self->acceptor_.close(ec);
      self->failure_timer_.cancel();
      self->failures_.flush(SteadyClock::now());
      // Closing a slot's socket completes its pending operation; the session then ends.
      for (auto& slot : self->slots_) slot.close();
    });
    handlers_.join();
    // With the acceptor, the timer and every socket closed, run() returns once the last
    // session has ended; a session stuck past that is stopped (and its handlers run below).
    if (finished_future_.wait_for(std::chrono::seconds{3}) != std::future_status::ready) {
      io_.stop();
    }
    if (thread_.joinable()) thread_.join();
    // What is left (a stopped loop's pending handlers) runs now, so no session outlives stop().
    io_.restart();
    io_.poll();
  }

  // Network thread ------------------------------------------------------------------------------
  net::io_context& io() { return io_; }
  const Context& context() const { return *context_; }
  FailureLog& failures() { return failures_; }

  // Runs `work` on a handler thread, then `done(result)` back on the network thread.
  template <typename Work, typename Done>
  void run_handler(Work work, Done done) {
    net::post(handlers_, [this, self = shared_from_this(), work = std::move(work),
                          done = std::move(done)]() mutable {
      Outgoing result;
      try {
        result = work();
      } catch (const std::exception& e) {
        // Whatever a request did, the listener answers 500 and goes on (never terminate).
        spdlog::error("webhook: unexpected error while serving a request: {}", e.what());
        result = Outgoing{500, "text/plain", "internal error", false};
      } catch (...) {
        spdlog::error("webhook: unexpected error while serving a request");
        result = Outgoing{500, "text/plain", "internal error", false};
      }
      net::post(io_, [result = std::move(result), done = std::move(done)]() mutable {
        done(std::move(result));
      });
    });
  }

  Slots::iterator add_slot(std::string address, std::function<void()> close) {
    make_room(address);
    ++per_address_[address];
    slots_.push_back(ConnectionSlot{SteadyClock::now(), std::move(address), true, std::move(close)});
    return std::prev(slots_.end());
  }

  void remove_slot(Slots::iterator slot) {
    auto count = per_address_.find(slot->address);
    if (count != per_address_.end() && --count->second == 0) per_address_.erase(count);
    slots_.erase(slot);
  }

 private:
  void accept();
  void arm_failure_timer() {
    failure_timer_.expires_after(k_failure_log_interval);
    failure_timer_.async_wait([self = shared_from_this()](beast::error_code ec) {
      if (ec) return;
      self->failures_.flush(SteadyClock::now());
      self->arm_failure_timer();
    });
  }

  // Closes the oldest connection still waiting for its request when a cap is reached: of the
  // same address when that address is at its cap, else of any address.
  void make_room(const std::string& address) {
    const auto at = per_address_.find(address);
    const bool address_full = at != per_address_.end() && at->second >= k_max_connections_per_address;
    if (!address_full && slots_.size() < k_max_connections) return;
    for (auto& slot : slots_) {  // oldest first
      if (!slot.waiting || (address_full && slot.address != address)) continue;
      ++evicted_;
      if (evicted_ == 1 || evicted_ % 1000 == 0) {
        spdlog::warn("listener: connection limit reached; closed {} waiting connection(s) so far "
                     "(latest from {})", evicted_, slot.address);
      }
      slot.waiting = false;  // closing: not chosen twice
      slot.close();
      return;
    }
  }

  std::unique_ptr<Context> context_;
  std::optional<net::ssl::context> tls_;
  net::io_context io_{1};
  tcp::acceptor acceptor_;
  net::steady_timer failure_timer_;
  net::thread_pool handlers_{k_handler_threads};
  std::thread thread_;
  std::mutex stop_mutex_;
  bool stopped_ = false;
  std::promise<void> finished_;  // set when the network loop has returned
  std::future<void> finished_future_ = finished_.get_future();
  int port_ = 0;
  FailureLog failures_;
  Slots slots_;
  std::map<std::string, std::size_t> per_address_;
  std::uint64_t evicted_ = 0;

  template <typename Stream>
  friend class Session;
};

// One connection. `Stream` is beast::tcp_stream or beast::ssl_stream<beast::tcp_stream>.
template <typename Stream>
class Session : public std::enable_shared_from_this<Session<Stream>> {
 public:
  Session(Server& server, Stream stream, std::string address)
      : server_(server.shared_from_this()), stream_(std::move(stream)), address_(std::move(address)),
        opened_(SteadyClock::now()) {}

  void start() {
    auto self = this->shared_from_this();
    // Weak: the server's slot list must not keep the session alive (nor, through it, itself).
    slot_ = server_->add_slot(address_, [weak = this->weak_from_this()] {
      if (auto session = weak.lock()) session->close_socket();
    });
    registered_ = true;
    // The first request must be complete k_request_deadline after the connection opened,
    // however slowly its bytes (or a TLS handshake) trickle in.
    lowest().expires_at(opened_ + k_request_deadline);
    if constexpr (std::is_same_v<Stream, beast::tcp_stream>) {
      read_header();
    } else {
      stream_.async_handshake(net::ssl::stream_base::server, [self](beast::error_code ec) {
        if (ec) return self->finish();
        self->read_header();
      });
    }
  }

 private:
  beast::tcp_stream& lowest() { return beast::get_lowest_layer(stream_); }

  void close_socket() {
    beast::error_code ec;
    lowest().socket().shutdown(tcp::socket::shutdown_both, ec);
    lowest().socket().close(ec);
  }

  void finish() {
    if (!registered_) return;
    registered_ = false;
    close_socket();
    server_->remove_slot(slot_);
  }

  void read_header() {
    parser_.emplace();
    // Content-Length is checked in on_header (to answer 413); the limit itself is set for the
    // body (chunked bodies) once the header is in.
    parser_->body_limit(std::numeric_limits<std::uint64_t>::max());
    parser_->header_limit(k_max_header_bytes);
    slot_->waiting = true;
    http::async_read_header(
        stream_, buffer_, *parser_,
        [self = this->shared_from_this()](beast::error_code ec, std::size_t) { self->on_header(ec); });
  }

  void on_header(beast::error_code ec) {
    if (ec) return finish();  // deadline, closed, evicted, malformed: no answer
    const auto& req = parser_->get();
    const RawTarget raw = split_target(std::string{req.target()});
    route_ = route_of(raw.path);
    if (!route_) return answer_now(Outgoing{404, "text/plain", "not found", false}, false);
    if (req.method() != http::verb::post) {
      return answer_now(Outgoing{405, "text/plain", "method not allowed", true}, false);
    }
    if (const auto length = parser_->content_length(); length && *length > k_max_body_bytes) {
      return answer_now(Outgoing{413, "text/plain", "payload too large", false}, true);
    }
    if (beast::iequals(req[http::field::expect], "100-continue")) {
      auto cont = std::make_shared<http::response<http::empty_body>>(http::status::continue_, req.version());
      http::async_write(stream_, *cont, [self = this->shared_from_this(), cont](beast::error_code e, std::size_t) {
        if (e) return self->finish();
        self->read_body();
      });
      return;
    }
    read_body();
  }

  void read_body() {
    parser_->body_limit(k_max_body_bytes);
    http::async_read(stream_, buffer_, *parser_,
                     [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
                       self->on_body(ec);
                     });
  }

  void on_body(beast::error_code ec) {
    if (ec == http::error::body_limit) {
      return answer_now(Outgoing{413, "text/plain", "payload too large", false}, true);
    }
    if (ec) return finish();
    auto& req = parser_->get();
    Incoming incoming;
    incoming.target = std::string{req.target()};
    incoming.body = std::move(req.body());
    incoming.authorization = std::string{req[http::field::authorization]};
    if (const auto it = req.find("X-Twilio-Signature"); it != req.end()) {
      incoming.twilio_signature = std::string{it->value()};
    }
    incoming.remote = address_;
    auto handler = std::make_shared<RequestHandler>(server_->context(), *route_, std::move(incoming));
    std::string reason;
    if (!handler->authenticate(reason)) {
      // Answered at once, on this thread, in one write; counted for the summary line.
      server_->failures().note(handler->path(), address_, reason);
      return answer_now(Outgoing{401, "text/plain", "unauthorized", false}, false);
    }
    slot_->waiting = false;  // being served: not evicted
    lowest().expires_never();
    server_->run_handler([handler] { return handler->serve(); },
                         [self = this->shared_from_this(), path = handler->path()](Outgoing out) {
                           spdlog::debug("webhook POST {} -> {}", path, out.status);
                           self->answer_now(std::move(out), false);
                         });
  }

  // Writes `out`; closes afterwards when `close` or the client asked, else reads the next request.
  void answer_now(Outgoing out, bool close) {
    const auto& req = parser_->get();
    auto res = std::make_shared<http::response<http::string_body>>(
        static_cast<http::status>(out.status), req.version() == 10 ? 10 : 11);
    res->set(http::field::server, "scout");
    if (!out.content_type.empty()) res->set(http::field::content_type, out.content_type);
    if (out.allow_post) res->set(http::field::allow, "POST");
    res->body() = std::move(out.body);
    ++served_;
    const bool keep = !close && req.keep_alive() && parser_->is_done() &&
                      served_ < k_max_requests_per_connection;
    res->keep_alive(keep);
    res->prepare_payload();
    lowest().expires_after(k_write_deadline);
    http::async_write(stream_, *res,
                      [self = this->shared_from_this(), res, keep, close](beast::error_code ec, std::size_t) {
                        if (ec) return self->finish();
                        if (close) return self->drain();
                        if (!keep) return self->finish();
                        // The next request: k_request_deadline from now.
                        self->lowest().expires_after(k_request_deadline);
                        self->read_header();
                      });
  }

  // After refusing a body unread (413): stops sending and reads what the client still sends,
  // for at most k_drain_deadline, so that it sees the answer rather than a reset.
  void drain() {
    slot_->waiting = true;
    beast::error_code ec;
    lowest().socket().shutdown(tcp::socket::shutdown_send, ec);
    lowest().expires_after(k_drain_deadline);
    drain_more();
  }
  void drain_more() {
    lowest().async_read_some(net::buffer(scratch_),
                             [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
                               if (ec) return self->finish();
                               self->drain_more();
                             });
  }

  std::shared_ptr<Server> server_;
  std::array<char, 4096> scratch_{};
  Stream stream_;
  std::string address_;
  SteadyClock::time_point opened_;
  beast::flat_buffer buffer_{k_max_header_bytes};
  std::optional<http::request_parser<http::string_body>> parser_;
  std::optional<Route> route_;
  Slots::iterator slot_;
  bool registered_ = false;
  int served_ = 0;
};

void Server::accept() {
  acceptor_.async_accept(io_, [self = shared_from_this()](beast::error_code ec, tcp::socket socket) {
    if (ec == net::error::operation_aborted || !self->acceptor_.is_open()) return;
    if (!ec) {
      beast::error_code addr_ec;
      // Small answers go out at once (no Nagle delay behind the client's delayed ACK).
      socket.set_option(tcp::no_delay(true), addr_ec);
      const auto remote = socket.remote_endpoint(addr_ec);
      std::string address = addr_ec ? std::string{"?"} : remote.address().to_string();
      if (self->tls_) {
        std::make_shared<Session<beast::ssl_stream<beast::tcp_stream>>>(
            *self, beast::ssl_stream<beast::tcp_stream>(beast::tcp_stream(std::move(socket)), *self->tls_),
            std::move(address))
            ->start();
      } else {
        std::make_shared<Session<beast::tcp_stream>>(*self, beast::tcp_stream(std::move(socket)),
                                                     std::move(address))
            ->start();
      }
    } else {
      // Out of descriptors and the like: say so, and keep accepting.
      spdlog::warn("listener: accept failed: {}", ec.message());
    }
    self->accept();
  });
}

class BeastWebhookListener final : public WebhookListener {
 public:
  explicit BeastWebhookListener(std::shared_ptr<Server> server) : server_(std::move(server)) {}
  ~BeastWebhookListener() override { stop(); }
  BeastWebhookListener(const BeastWebhookListener&) = delete;
  BeastWebhookListener& operator=(const BeastWebhookListener&) = delete;
  int port() const override { return server_->port(); }
  void stop() override { server_->stop(); }

 private:
  std::shared_ptr<Server> server_;
};

}  // namespace

WebhookResponse answer_webhook(const WebhookSecrets& secrets, const WebhookHandler& handler,
                               const std::string& method, WebhookRequest request) {
  const RawTarget raw = split_target(request.target);
  const auto route = route_of(raw.path);
  if (!route) return WebhookResponse{404, "text/plain", "not found", false};
  if (method != "POST") return WebhookResponse{405, "text/plain", "method not allowed", true};
  if (request.body.size() > k_max_body_bytes) {
    return WebhookResponse{413, "text/plain", "payload too large", false};
  }
  const Context context{secrets, handler};
  try {
    RequestHandler serving{context, *route, std::move(request)};
    std::string reason;
    if (!serving.authenticate(reason)) {
      return WebhookResponse{401, "text/plain", "unauthorized", false};
    }
    return serving.serve();
  } catch (const std::exception& e) {
    spdlog::error("webhook: unexpected error while serving a request: {}", e.what());
    return WebhookResponse{500, "text/plain", "internal error", false};
  }
}

core::Result<std::unique_ptr<WebhookListener>> start_listener(const core::Listener& listener,
                                                              WebhookSecrets secrets,
                                                              WebhookHandler handler) {
  std::optional<net::ssl::context> tls;
  if (listener.tls) {
    tls.emplace(net::ssl::context::tls_server);
    tls->set_options(net::ssl::context::default_workarounds | net::ssl::context::no_sslv2 |
                     net::ssl::context::no_sslv3 | net::ssl::context::no_tlsv1 |
                     net::ssl::context::no_tlsv1_1);
    beast::error_code ec;
    tls->use_certificate_chain_file(listener.tls->cert_file, ec);
    if (!ec) tls->use_private_key_file(listener.tls->key_file, net::ssl::context::pem, ec);
    if (ec) {
      return core::fail(ErrorKind::config, "listener.tls: cannot load the certificate '" +
                                               listener.tls->cert_file + "' and key '" +
                                               listener.tls->key_file + "': " + ec.message());
    }
  }
  auto context = std::make_unique<Context>(Context{std::move(secrets), std::move(handler)});
  auto server = std::make_shared<Server>(std::move(context), std::move(tls));
  if (auto bound = server->bind(listener.bind_host, listener.bind_port); !bound) {
    return tl::make_unexpected(bound.error());
  }
  server->start();
  spdlog::info("listener: serving webhooks on {}://{}:{}", listener.tls ? "https" : "http",
               listener.bind_host, server->port());
  return std::unique_ptr<WebhookListener>{std::make_unique<BeastWebhookListener>(std::move(server))};
}

}  // namespace scout::adapters
