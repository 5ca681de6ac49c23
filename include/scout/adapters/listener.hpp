#pragma once
// The webhook listener (SPEC §5; protocols.md §2.4–2.6, §4.3–4.6): Boost.Beast on
// listener.bind, exactly four routes, every request authenticated before its body is trusted.
// One network thread serves every connection without blocking (a slow client costs a buffer,
// not a thread); handler calls run on two threads of their own.
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "scout/core/alarm.hpp"
#include "scout/core/config.hpp"
#include "scout/core/result.hpp"

namespace scout::adapters {

// How webhooks are authenticated.
struct WebhookSecrets {
  std::string public_url;                // as configured (no trailing '/'); Twilio signs over it
  std::string url_token;                 // per-install token (State::webhook_token)
  std::string vonage_signature_secret;   // "" -> Vonage requests must carry ?token=url_token
  std::string twilio_auth_token;         // "" -> Twilio routes answer 401 (no Twilio provider)
};

// Receives the events the listener decoded (core::CallUpdate or core::Keypress, call_key taken
// from the `call` query parameter). Must be thread-safe and quick (no network I/O). For a
// Keypress it returns the reply to speak; for a CallUpdate its return value is ignored.
using WebhookHandler = std::function<std::optional<core::KeypressReply>(const core::Event&)>;

// Routes (SPEC §5). Anything else: 404; wrong method on a route: 405. Body > 64 KiB: 413.
// A request not complete 10 s after its connection opened (or after the previous answer on a
// kept-alive connection) is cut off without an answer, however slowly its bytes come. At most
// 1024 connections, 256 per client address: past either, the oldest connection still waiting for
// its request is closed to make room. Authentication failure: 401 at once (on the network
// thread, one write), the handler is not called; failures are logged as one summary line a
// minute (the first at once).
//  POST /webhooks/vonage/event   JSON; `status` -> CallProgress (started/ringing -> ringing,
//        answered, human, machine, completed, busy, cancelled, failed, rejected, timeout,
//        unanswered; others ignored); the call id is `uuid` or, for human/machine, `call_uuid`.
//        200 empty.
//  POST /webhooks/vonage/input   JSON {dtmf:{digits,timed_out}, uuid}; digits null/"" -> "".
//        200 with an NCCO (application/json): acknowledged/escalated/no_input/unknown_call ->
//        vonage_ncco_say(reply.text); repeat_prompt -> vonage_ncco(reply.text, true, same URL).
//  POST /webhooks/twilio/status  form; CallStatus (+AnsweredBy) -> CallProgress. 200 empty.
//  POST /webhooks/twilio/gather  form Digits -> Keypress; 200 text/xml TwiML (twilio_twiml_say
//        or twilio_twiml(reply.text, true, same URL)).
// Vonage auth: with a signature secret, verify_vonage_webhook on the Authorization header;
// without, the `token` query parameter must equal url_token (constant time).
// Twilio auth: verify_twilio_signature(auth_token, public_url + path + ("?" + raw query if any),
// form params, X-Twilio-Signature).
// Malformed bodies after authentication: 400, handler not called.
// One webhook request as read off the wire, and the answer to it.
struct WebhookRequest {
  std::string target;  // the request-target exactly as sent ("/webhooks/vonage/event?call=c3&…")
  std::string body;    // at most 64 KiB
  std::string authorization;                    // the Authorization header ("" when absent)
  std::optional<std::string> twilio_signature;  // X-Twilio-Signature, when present
  std::string remote;                           // client address, for logs
};
struct WebhookResponse {
  int status = 200;
  std::string content_type;  // "" with an empty body
  std::string body;
  bool allow_post = false;   // 405: answered with "Allow: POST"
};

// The listener's answer to one request, computed in the calling thread (routing, the 64 KiB
// limit, authentication, decoding, the handler): what start_listener's sessions do, without the
// network. For tests and the webhook fuzz target. Never throws (a throwing handler is a 500).
WebhookResponse answer_webhook(const WebhookSecrets& secrets, const WebhookHandler& handler,
                               const std::string& method, WebhookRequest request);

class WebhookListener {
 public:
  virtual ~WebhookListener() = default;
  // The port actually bound (useful with port 0).
  virtual int port() const = 0;
  // Stops accepting and joins the server thread. Idempotent.
  virtual void stop() = 0;
};

// Binds `listener.bind_host:bind_port` (TLS with listener.tls) and serves on a background
// thread. Errors: io when the address cannot be bound, config when the TLS files do not load.
core::Result<std::unique_ptr<WebhookListener>> start_listener(const core::Listener& listener,
                                                              WebhookSecrets secrets,
                                                              WebhookHandler handler);

}  // namespace scout::adapters
