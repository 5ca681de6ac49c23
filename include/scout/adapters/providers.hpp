#pragma once
// Telephony providers (SPEC §2 `providers`, §4.7; protocols.md §2–§4) behind one interface, and
// the chain that tries them in config order with retries and fail-over.
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "scout/core/alarm.hpp"
#include "scout/core/config.hpp"
#include "scout/core/result.hpp"

namespace scout::adapters {

// A failed provider request. `retryable` for network errors, timeouts, HTTP 5xx and 429 (SPEC
// §4.7); other 4xx (bad credentials, bad number, low balance) are configuration problems and not
// retried. `error.message` names the provider, request and status, never a secret.
struct ProviderError {
  core::Error error;
  bool retryable = false;
  int http_status = 0;  // 0 when no HTTP answer
  // The request may have reached the provider and taken effect although no success came back: a
  // timeout or a connection lost after sending, or a 5xx (SPEC §6). A create-call that failed so
  // is looked up (Provider::find_calls) before it is tried again.
  bool ambiguous = false;
};
template <typename T>
using ProviderResult = tl::expected<T, ProviderError>;

// Where the provider sends call progress and keypresses (SPEC §5). Built by the app from
// `listener.public_url`. Each URL carries `?call=<call_key>` and, when `token` is not empty,
// `&token=<token>` (the per-install secret that authenticates Vonage webhooks without a
// signature_secret). Absent (no listener, or `scout run --once`): no webhooks are requested,
// calls do not gather digits, and outcomes are learned with poll_call().
struct WebhookBase {
  std::string public_url;  // no trailing '/'
  std::string token;       // "" when webhooks are signed
};

// URLs for one call: {public_url}{path}?call=KEY[&token=TOKEN], path one of
// /webhooks/vonage/event, /webhooks/vonage/input, /webhooks/twilio/status, /webhooks/twilio/gather.
std::string webhook_url(const WebhookBase& base, const std::string& path,
                        const std::string& call_key);

struct CallRequest {
  std::string call_key;  // scout's key, put in the webhook URLs
  std::string to;        // E.164 with '+'
  std::string text;      // the alarm sentence (call_script adds the greeting and prompt)
  bool gather = true;    // ask for keypress 1/2 (ignored, i.e. false, without a WebhookBase)
  // When scout decided the call (core::CallRecord::placed_at, ms since the epoch) and the
  // provider ids of the calls scout already knows to this number: a create-call that failed
  // ambiguously is looked up among the provider's calls to `to` since decided_at − k_lookup_slack
  // that are not in known_call_ids (SPEC §6).
  core::TimePoint decided_at{};
  std::vector<std::string> known_call_ids;
};

// How far before the decision a provider's call list is searched (provider and local clocks
// differ by seconds; the list's times are the provider's).
inline constexpr std::chrono::seconds k_lookup_slack{60};

// A call found in a provider's call list (find_calls).
struct FoundCall {
  std::string id;      // Vonage uuid, Twilio CA…
  std::string status;  // the provider's status name, for the log
};

// What polling a call's resource says (GET /v1/calls/{uuid}, GET Calls/{sid}.json, console).
struct CallStatus {
  core::CallProgress progress = core::CallProgress::ringing;
  std::string detail;    // provider's raw status / AnsweredBy, for the journal
  std::string digits;    // console only: the simulated keypress ("1" for answer: ack)
};

class Provider {
 public:
  virtual ~Provider() = default;
  // "vonage" | "twilio" | "console".
  virtual std::string name() const = 0;
  // Places one call; returns the provider's call id (Vonage uuid, Twilio CA…, "console-N").
  virtual ProviderResult<std::string> place_call(const CallRequest& request) = 0;
  // Sends one SMS to `to` (E.164 with '+'); returns the provider's message id.
  virtual ProviderResult<std::string> send_sms(const std::string& to, const std::string& text) = 0;
  // The call's current status.
  virtual ProviderResult<CallStatus> poll_call(const std::string& call_id) = 0;
  // The calls to `to` (E.164 with '+') that the provider created at or after `since` (SPEC §6):
  // Vonage GET /v1/calls?date_start=…&order=desc&page_size=100, filtered on `to.number` here (the
  // Voice API has no `to` filter); Twilio GET Calls.json?To=…&StartTime>=YYYY-MM-DD&PageSize=100
  // filtered on date_created here. Console keeps no list: always empty. Newest first, at most one
  // page (100): more calls to one number in the window than that is not a state scout makes.
  virtual ProviderResult<std::vector<FoundCall>> find_calls(const std::string& to,
                                                            core::TimePoint since) = 0;
};

// HTTP settings shared by the HTTP providers.
struct HttpSettings {
  std::chrono::milliseconds timeout{10000};  // per request, connect + transfer
};

// Vonage (protocols.md §2, §3): POST {base_url}/v1/calls with `Authorization: Bearer` RS256 JWT
// (vonage_api_jwt, fresh iat/jti per request), body {to:[{type:"phone",number}], from:{type:
// "phone",number}, ncco, event_url:[…], event_method:"POST", machine_detection:"continue",
// ringing_timer:45, length_timer:300} (numbers without '+'; event_url only with a WebhookBase);
// 201 {uuid}. GET {base_url}/v1/calls/{uuid} -> status. SMS: POST {base_url}/v1/messages with
// Basic api_key:api_secret, {message_type:"text", text, to, from, channel:"sms"} -> 202
// {message_uuid}. Vonage status names map to CallProgress by name (started -> ringing).
std::unique_ptr<Provider> make_vonage_provider(const core::Provider& config,
                                               std::optional<WebhookBase> webhooks,
                                               HttpSettings http);

// Twilio (protocols.md §4): POST {base_url}/2010-04-01/Accounts/{sid}/Calls.json, Basic
// sid:auth_token, form To, From (with '+'), Twiml (twilio_twiml), StatusCallback,
// StatusCallbackEvent × {initiated, ringing, answered, completed}, StatusCallbackMethod=POST,
// Timeout=45, MachineDetection=Enable, TimeLimit=300 -> 201 {sid}. GET Calls/{sid}.json ->
// status (queued/initiated/ringing -> ringing, in-progress -> answered (human/machine from
// answered_by), completed, busy, failed, no-answer -> unanswered, canceled -> cancelled).
// SMS: POST Messages.json form To, From, Body -> 201 {sid}.
std::unique_ptr<Provider> make_twilio_provider(const core::Provider& config,
                                               std::optional<WebhookBase> webhooks,
                                               HttpSettings http);

// Console: prints each call and SMS to `out` as one line (numbers masked), e.g.
//   [console] CALL …5678 (c3): This is scout. Alice: URGENT LOW, 52 mg/dL, … Press 1 …
//   [console] SMS  …4321: Alice: URGENT LOW, …
// and simulates the outcome (`answer`): poll_call of a console call returns, from the first poll
// on: never -> unanswered; ack -> completed with digits "1"; noack -> completed, no digits.
// Never fails. Call ids are "console-<n>".
std::unique_ptr<Provider> make_console_provider(const core::Provider& config, std::ostream& out);

// Builds every configured provider in order.
std::vector<std::unique_ptr<Provider>> make_providers(const core::Config& config,
                                                      std::optional<WebhookBase> webhooks,
                                                      HttpSettings http, std::ostream& console_out);

// Retry policy (SPEC §4.7): `attempts` tries per provider for retryable failures, waiting
// `initial_backoff`, then ×2 each time (capped at `max_backoff`) between tries.
struct RetryPolicy {
  int attempts = 3;
  std::chrono::milliseconds initial_backoff{1000};
  std::chrono::milliseconds max_backoff{8000};
};

// The outcome of a chain request: which provider did it and its id, or why every one failed.
struct Sent {
  std::string provider;  // Provider::name()
  std::string id;        // call id or message id
};

// Tries providers in order. For each: up to policy.attempts tries while the error is retryable
// (sleeping through `sleep`, injectable for tests), then the next provider. A create-call that
// failed ambiguously (ProviderError::ambiguous) is first looked up at that provider (find_calls
// since request.decided_at − k_lookup_slack, ids in known_call_ids left out): a call found there is
// the result, and is never placed again; when the lookup itself fails, that provider is not tried
// again (a second real call is worse than the next provider's one). A non-retryable
// error also moves to the next provider (the next one may be configured correctly) but is logged
// at error level as a configuration problem. Every failed try is logged (warn) with the provider
// and status; giving up returns an error whose message lists each provider's last error.
class ProviderChain {
 public:
  using Sleep = std::function<void(std::chrono::milliseconds)>;
  ProviderChain(std::vector<std::unique_ptr<Provider>> providers, RetryPolicy policy, Sleep sleep);
  core::Result<Sent> place_call(const CallRequest& request);
  core::Result<Sent> send_sms(const std::string& to, const std::string& text);
  // Polls through the provider named `provider` (the one that placed the call), one try.
  ProviderResult<CallStatus> poll_call(const std::string& provider, const std::string& call_id);
  // Whether a call decided at `request.decided_at` to `request.to` exists at any provider (a
  // call in its list since decided_at − k_lookup_slack whose id is not in known_call_ids): the
  // provider and id of the newest such call, nullopt when every provider answered and none has
  // one. Errors: the first provider that could not be asked (nothing is known then).
  core::Result<std::optional<Sent>> find_call(const CallRequest& request);
  bool empty() const { return providers_.empty(); }

 private:
  std::vector<std::unique_ptr<Provider>> providers_;
  RetryPolicy policy_;
  Sleep sleep_;
};

}  // namespace scout::adapters
