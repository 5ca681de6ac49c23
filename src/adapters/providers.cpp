// Telephony providers (SPEC §4.7; protocols.md §2–§4): Vonage, Twilio, console, and the chain.
#include "scout/adapters/providers.hpp"

#include <curl/curl.h>
#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <optional>
#include <mutex>
#include <string_view>
#include <utility>

#include "scout/adapters/call_script.hpp"
#include "scout/adapters/crypto.hpp"
#include "scout/adapters/encoding.hpp"
#include "scout/core/redact.hpp"
#include "scout/adapters/wall_clock.hpp"

#ifdef SCOUT_VERSION
#define SCOUT_PROVIDERS_USER_AGENT "scout/" SCOUT_VERSION
#else
#define SCOUT_PROVIDERS_USER_AGENT "scout"
#endif

namespace scout::adapters {
namespace {

using core::CallProgress;
using core::ErrorKind;
using nlohmann::json;

// Provider answers are small JSON objects; anything this large is not one.
constexpr std::size_t k_max_body_bytes = std::size_t{1} << 20;
// How much of a provider's error title/detail goes into a message.
constexpr std::size_t k_max_detail = 300;
// Call settings (protocols.md §2.1, §4.1): ring for 45 s, hang up after 5 minutes.
constexpr int k_ringing_timer_s = 45;
constexpr int k_length_timer_s = 300;
// Messages API text ≤ 1000 characters (§3.1); Twilio Body ≤ 1600 (§4.5). Counted in bytes.
constexpr std::size_t k_vonage_sms_max = 1000;
constexpr std::size_t k_twilio_sms_max = 1600;

// ---------------------------------------------------------------------------------------------
// Small text helpers

std::string trimmed_base(std::string url) {
  while (!url.empty() && url.back() == '/') {
    url.pop_back();
  }
  return url;
}

// Vonage numbers go on the wire without '+' (protocols.md §2.1, §3.1).
std::string without_plus(const std::string& number) {
  return !number.empty() && number.front() == '+' ? number.substr(1) : number;
}

// At most `limit` bytes of `text`, not splitting a UTF-8 character.
std::string utf8_prefix(const std::string& text, std::size_t limit) {
  if (text.size() <= limit) {
    return text;
  }
  std::size_t end = limit;
  while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0u) == 0x80u) {
    --end;
  }
  return text.substr(0, end);
}

void replace_all(std::string& text, const std::string& needle, const std::string& with) {
  if (needle.empty()) {
    return;
  }
  for (auto pos = text.find(needle); pos != std::string::npos; pos = text.find(needle, pos)) {
    text.replace(pos, needle.size(), with);
    pos += with.size();
  }
}

// What must never appear in a message: secrets become ***, phone numbers are masked.
struct Redactions {
  std::vector<std::string> secrets;
  std::vector<std::string> numbers;  // E.164 with '+'

  std::string apply(std::string text) const {
    for (const auto& secret : secrets) {
      replace_all(text, secret, "***");
    }
    for (const auto& number : numbers) {
      if (number.size() < 5) {
        continue;
      }
      const std::string masked = core::mask_phone(number);
      replace_all(text, number, masked);
      replace_all(text, without_plus(number), masked);
    }
    return text;
  }
};

ProviderError provider_error(ErrorKind kind, std::string message, bool retryable,
                             int http_status = 0) {
  return ProviderError{core::Error{kind, std::move(message)}, retryable, http_status};
}

// ---------------------------------------------------------------------------------------------
// One HTTP request with libcurl's easy API

struct HttpRequest {
  const char* method = "GET";  // GET | POST
  std::string url;
  std::vector<std::string> headers;  // "Name: value"
  std::string body;
};

struct HttpResponse {
  long status = 0;
  std::string body;
};

void global_init_once() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

struct CurlEasyDeleter {
  void operator()(CURL* handle) const { curl_easy_cleanup(handle); }
};
struct CurlSlistDeleter {
  void operator()(curl_slist* list) const { curl_slist_free_all(list); }
};

struct Sink {
  std::string body;
  bool too_large = false;
};

std::size_t on_body(char* data, std::size_t size, std::size_t count, void* user) {
  auto* sink = static_cast<Sink*>(user);
  const std::size_t bytes = size * count;
  if (sink->body.size() + bytes > k_max_body_bytes) {
    sink->too_large = true;
    return 0;
  }
  sink->body.append(data, bytes);
  return bytes;
}

std::string format_timeout(std::chrono::milliseconds timeout) {
  if (timeout.count() % 1000 == 0) {
    return std::to_string(timeout.count() / 1000) + "s";
  }
  return std::to_string(timeout.count()) + " ms";
}

// Performs `request`; a transport failure is a retryable network/timeout error. `who` names the
// provider and request ("vonage POST /v1/calls") for messages.
ProviderResult<HttpResponse> perform(const HttpRequest& request, const HttpSettings& http,
                                     const std::string& who) {
  global_init_once();
  std::unique_ptr<CURL, CurlEasyDeleter> easy{curl_easy_init()};
  if (!easy) {
    return tl::make_unexpected(
        provider_error(ErrorKind::internal, who + ": could not create a libcurl handle", true));
  }
  curl_slist* list = nullptr;
  bool headers_ok = true;
  for (const auto& line : request.headers) {
    curl_slist* grown = curl_slist_append(list, line.c_str());
    if (grown == nullptr) {
      headers_ok = false;
      break;
    }
    list = grown;
  }
  std::unique_ptr<curl_slist, CurlSlistDeleter> headers{list};
  if (!headers_ok) {
    return tl::make_unexpected(
        provider_error(ErrorKind::internal, who + ": could not build the request headers", true));
  }

  Sink sink;
  std::array<char, CURL_ERROR_SIZE> error_buffer{};
  const long timeout_ms = std::max<long>(1, static_cast<long>(http.timeout.count()));
  CURL* handle = easy.get();
  bool ok = true;
  const auto set = [&](CURLcode code) { ok = ok && code == CURLE_OK; };
  set(curl_easy_setopt(handle, CURLOPT_URL, request.url.c_str()));
  set(curl_easy_setopt(handle, CURLOPT_PROTOCOLS_STR, "http,https"));
  set(curl_easy_setopt(handle, CURLOPT_HTTPHEADER, headers.get()));
  set(curl_easy_setopt(handle, CURLOPT_USERAGENT, SCOUT_PROVIDERS_USER_AGENT));
  set(curl_easy_setopt(handle, CURLOPT_TIMEOUT_MS, timeout_ms));
  set(curl_easy_setopt(handle, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms));
  set(curl_easy_setopt(handle, CURLOPT_NOSIGNAL, 1L));
  // No redirects: following one would resend the credentials to wherever it points.
  set(curl_easy_setopt(handle, CURLOPT_FOLLOWLOCATION, 0L));
  set(curl_easy_setopt(handle, CURLOPT_SSL_VERIFYPEER, 1L));
  set(curl_easy_setopt(handle, CURLOPT_SSL_VERIFYHOST, 2L));
  set(curl_easy_setopt(handle, CURLOPT_WRITEFUNCTION, &on_body));
  set(curl_easy_setopt(handle, CURLOPT_WRITEDATA, &sink));
  set(curl_easy_setopt(handle, CURLOPT_ERRORBUFFER, error_buffer.data()));
  if (std::string_view{request.method} == "POST") {
    set(curl_easy_setopt(handle, CURLOPT_POST, 1L));
    set(curl_easy_setopt(handle, CURLOPT_POSTFIELDSIZE_LARGE,
                         static_cast<curl_off_t>(request.body.size())));
    set(curl_easy_setopt(handle, CURLOPT_POSTFIELDS, request.body.c_str()));
  } else {
    set(curl_easy_setopt(handle, CURLOPT_HTTPGET, 1L));
  }
  if (!ok) {
    return tl::make_unexpected(
        provider_error(ErrorKind::internal, who + ": could not configure the libcurl handle", true));
  }

  const CURLcode code = curl_easy_perform(handle);
  if (code == CURLE_WRITE_ERROR && sink.too_large) {
    return tl::make_unexpected(provider_error(
        ErrorKind::malformed_json, who + ": the answer is larger than 1 MiB", false));
  }
  if (code != CURLE_OK) {
    std::string detail = error_buffer.data();
    if (detail.empty()) {
      detail = curl_easy_strerror(code);
    }
    // Nothing reached the provider when no connection was made; anything later may have.
    curl_off_t connect_us = 0;
    curl_easy_getinfo(handle, CURLINFO_CONNECT_TIME_T, &connect_us);
    const bool before_sending = code == CURLE_COULDNT_CONNECT ||
                                code == CURLE_COULDNT_RESOLVE_HOST ||
                                code == CURLE_COULDNT_RESOLVE_PROXY || connect_us == 0;
    if (code == CURLE_OPERATION_TIMEDOUT) {
      auto error = provider_error(
          ErrorKind::timeout,
          who + ": no answer within " + format_timeout(http.timeout) + " (" + detail + ")", true);
      error.ambiguous = !before_sending;
      return tl::make_unexpected(std::move(error));
    }
    auto error = provider_error(ErrorKind::network, who + ": " + detail, true);
    error.ambiguous = !before_sending;
    return tl::make_unexpected(std::move(error));
  }
  HttpResponse response;
  curl_easy_getinfo(handle, CURLINFO_RESPONSE_CODE, &response.status);
  response.body = std::move(sink.body);
  return response;
}

// The provider's own words about an error: RFC 7807 title/detail (+ invalid_parameters) for
// Vonage (protocols.md §2.7, §3.1), {code, message} for Twilio (§4.7). "" when neither.
std::string error_detail(const std::string& body) {
  const json document = json::parse(body, nullptr, false);
  if (!document.is_object()) {
    return {};
  }
  const auto text_of = [&](const char* key) -> std::string {
    const auto it = document.find(key);
    if (it == document.end()) {
      return {};
    }
    if (it->is_string()) {
      return it->get<std::string>();
    }
    if (it->is_number_integer()) {
      return std::to_string(it->get<long long>());
    }
    return {};
  };
  std::string detail;
  const std::string title = text_of("title");
  const std::string description = text_of("detail");
  if (!title.empty() || !description.empty()) {
    detail = title;
    if (!description.empty()) {
      detail += detail.empty() ? "" : ": ";
      detail += description;
    }
    const auto params = document.find("invalid_parameters");
    if (params != document.end() && params->is_array()) {
      std::string names;
      for (const auto& param : *params) {
        if (param.is_object() && param.contains("name") && param["name"].is_string()) {
          names += names.empty() ? "" : ", ";
          names += param["name"].get<std::string>();
          if (param.contains("reason") && param["reason"].is_string()) {
            names += " (" + param["reason"].get<std::string>() + ")";
          }
        }
      }
      if (!names.empty()) {
        detail += " [" + names + "]";
      }
    }
  } else {
    const std::string message = text_of("message");
    const std::string code = text_of("code");
    if (!message.empty() || !code.empty()) {
      detail = message;
      if (!code.empty()) {
        detail += detail.empty() ? "code " + code : " (code " + code + ")";
      }
    }
  }
  return utf8_prefix(detail, k_max_detail);
}

// Maps a non-2xx answer to a ProviderError (SPEC §4.7): 401/403 auth, 429 and 5xx retryable,
// any other status a configuration problem.
ProviderError status_error(const HttpResponse& response, const std::string& who,
                           const Redactions& redactions) {
  const int status = static_cast<int>(response.status);
  std::string message = who + ": HTTP " + std::to_string(status);
  const std::string detail = error_detail(response.body);
  if (!detail.empty()) {
    message += " (" + detail + ")";
  }
  message = redactions.apply(std::move(message));
  if (status == 401 || status == 403) {
    return provider_error(ErrorKind::auth, message + ": check the credentials", false, status);
  }
  const bool retryable = status == 429 || status >= 500;
  if (status >= 300 && status < 400) {
    message += ": redirects are not followed, check base_url";
  }
  auto error = provider_error(ErrorKind::http_status, message, retryable, status);
  // A 5xx may come from a gateway after the provider acted; a 429 or 4xx acted on nothing.
  error.ambiguous = status >= 500;
  return error;
}

// The JSON object of a 2xx answer, or an error (not retryable: the request may have worked).
ProviderResult<json> json_object(const HttpResponse& response, const std::string& who) {
  json document = json::parse(response.body, nullptr, false);
  if (!document.is_object()) {
    auto error = provider_error(
        ErrorKind::malformed_json,
        who + ": HTTP " + std::to_string(response.status) + " with a body that is not a JSON object",
        false, static_cast<int>(response.status));
    error.ambiguous = true;  // a 2xx: the provider acted
    return tl::make_unexpected(std::move(error));
  }
  return document;
}

bool is_success(long status) { return status >= 200 && status < 300; }

// Performs `request` and returns the JSON object of its 2xx answer. Errors are redacted with
// `redactions` plus the phone numbers in `numbers` (masked).
ProviderResult<json> send_for_json(const HttpRequest& request, const HttpSettings& http,
                                   const std::string& who, Redactions redactions,
                                   std::vector<std::string> numbers) {
  redactions.numbers = std::move(numbers);
  auto response = perform(request, http, who);
  if (!response) {
    ProviderError error = response.error();
    error.error.message = redactions.apply(std::move(error.error.message));
    return tl::make_unexpected(std::move(error));
  }
  if (!is_success(response->status)) {
    return tl::make_unexpected(status_error(*response, who, redactions));
  }
  return json_object(*response, who);
}

ProviderResult<std::string> string_field(const json& document, const char* key,
                                         const std::string& who, long status) {
  const auto it = document.find(key);
  if (it == document.end() || !it->is_string() || it->get_ref<const std::string&>().empty()) {
    auto error = provider_error(
        ErrorKind::malformed_json,
        who + ": HTTP " + std::to_string(status) + " without \"" + key + "\" in the answer", false,
        static_cast<int>(status));
    error.ambiguous = true;  // a 2xx: the provider acted
    return tl::make_unexpected(std::move(error));
  }
  return it->get<std::string>();
}

std::int64_t now_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(wall_clock_now().time_since_epoch())
      .count();
}

// "2026-12-01T13:40:05Z" (UTC, whole seconds).
std::string iso8601_utc(core::TimePoint at) {
  const std::time_t seconds = static_cast<std::time_t>(
      std::chrono::floor<std::chrono::seconds>(at).time_since_epoch().count());
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  std::array<char, 32> text{};
  std::strftime(text.data(), text.size(), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return text.data();
}

// "2026-12-01" (UTC).
std::string utc_date(core::TimePoint at) { return iso8601_utc(at).substr(0, 10); }

// Twilio's RFC 2822 times ("Tue, 01 Dec 2026 13:40:05 +0000", protocols.md §4); nullopt when the
// text is not one.
std::optional<core::TimePoint> parse_rfc2822(const std::string& text) {
  static constexpr std::array<const char*, 12> k_months = {
      "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  int day = 0;
  int year = 0;
  int hour = 0;
  int minute = 0;
  int second = 0;
  std::array<char, 4> month{};
  std::array<char, 6> zone{};
  if (std::sscanf(text.c_str(), "%*3s, %2d %3s %4d %2d:%2d:%2d %5s", &day, month.data(), &year,
                  &hour, &minute, &second, zone.data()) != 7) {
    return std::nullopt;
  }
  int month_index = -1;
  for (std::size_t i = 0; i < k_months.size(); ++i) {
    if (std::string_view{month.data()} == k_months[i]) month_index = static_cast<int>(i);
  }
  const std::string_view offset{zone.data()};
  if (month_index < 0 || offset.size() != 5 || (offset[0] != '+' && offset[0] != '-') ||
      year < 1970 || year > 9999 || day < 1 || day > 31 || hour > 23 || minute > 59 ||
      second > 60) {
    return std::nullopt;
  }
  int offset_minutes = 0;
  for (std::size_t i = 1; i < 5; ++i) {
    if (offset[i] < '0' || offset[i] > '9') return std::nullopt;
  }
  offset_minutes = ((offset[1] - '0') * 10 + (offset[2] - '0')) * 60 +
                   (offset[3] - '0') * 10 + (offset[4] - '0');
  if (offset[0] == '-') offset_minutes = -offset_minutes;
  std::tm tm{};
  tm.tm_year = year - 1900;
  tm.tm_mon = month_index;
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = minute;
  tm.tm_sec = second;
  const std::time_t utc = timegm(&tm);
  return core::TimePoint{std::chrono::seconds{utc} - std::chrono::minutes{offset_minutes}};
}

// ---------------------------------------------------------------------------------------------
// Vonage (protocols.md §2, §3)

CallProgress vonage_progress(const std::string& status) {
  if (status == "started") {
    return CallProgress::ringing;
  }
  // The other Voice statuses share CallProgress's names (§2.5).
  return core::call_progress_from_string(status).value_or(CallProgress::ringing);
}

class VonageProvider final : public Provider {
 public:
  VonageProvider(core::Provider config, std::optional<WebhookBase> webhooks, HttpSettings http)
      : config_(std::move(config)),
        webhooks_(std::move(webhooks)),
        http_(http),
        base_(trimmed_base(config_.base_url)) {
    redactions_.secrets = {config_.api_secret, config_.signature_secret};
    if (!config_.api_secret.empty()) {
      redactions_.secrets.push_back(base64_encode(config_.api_key + ":" + config_.api_secret));
    }
    if (webhooks_ && !webhooks_->token.empty()) {
      redactions_.secrets.push_back(webhooks_->token);
    }
  }

  std::string name() const override { return "vonage"; }

  ProviderResult<std::string> place_call(const CallRequest& request) override {
    const std::string who = "vonage POST /v1/calls";
    auto auth = bearer(who);
    if (!auth) {
      return tl::make_unexpected(auth.error());
    }
    const bool gather = request.gather && webhooks_.has_value();
    const std::string input_url =
        webhooks_ ? webhook_url(*webhooks_, "/webhooks/vonage/input", request.call_key) : "";
    json body{
        {"to", json::array({json{{"type", "phone"}, {"number", without_plus(request.to)}}})},
        {"from", json{{"type", "phone"}, {"number", without_plus(config_.from)}}},
        {"ncco", vonage_ncco(request.text, gather, input_url)},
        {"machine_detection", "continue"},
        {"ringing_timer", k_ringing_timer_s},
        {"length_timer", k_length_timer_s},
    };
    if (webhooks_) {
      body["event_url"] =
          json::array({webhook_url(*webhooks_, "/webhooks/vonage/event", request.call_key)});
      body["event_method"] = "POST";
    }
    HttpRequest http_request{"POST", base_ + "/v1/calls",
                             {*auth, "Content-Type: application/json", "Accept: application/json",
                              "Expect:"},
                             body.dump(-1, ' ', false, json::error_handler_t::replace)};
    auto answer = send(http_request, who, request.to);
    if (!answer) {
      return tl::make_unexpected(answer.error());
    }
    return string_field(*answer, "uuid", who, 201);
  }

  ProviderResult<std::string> send_sms(const std::string& to, const std::string& text) override {
    const std::string who = "vonage POST /v1/messages";
    if (config_.api_key.empty() || config_.api_secret.empty()) {
      return tl::make_unexpected(provider_error(
          ErrorKind::config, who + ": SMS needs api_key and api_secret in the configuration",
          false));
    }
    const json body{{"message_type", "text"},
                    {"text", utf8_prefix(text, k_vonage_sms_max)},
                    {"to", without_plus(to)},
                    {"from", without_plus(config_.from)},
                    {"channel", "sms"}};
    HttpRequest http_request{
        "POST", base_ + "/v1/messages",
        {"Authorization: Basic " + base64_encode(config_.api_key + ":" + config_.api_secret),
         "Content-Type: application/json", "Accept: application/json", "Expect:"},
        body.dump(-1, ' ', false, json::error_handler_t::replace)};
    auto answer = send(http_request, who, to);
    if (!answer) {
      return tl::make_unexpected(answer.error());
    }
    return string_field(*answer, "message_uuid", who, 202);
  }

  ProviderResult<CallStatus> poll_call(const std::string& call_id) override {
    const std::string who = "vonage GET /v1/calls/" + call_id;
    auto auth = bearer(who);
    if (!auth) {
      return tl::make_unexpected(auth.error());
    }
    HttpRequest http_request{"GET", base_ + "/v1/calls/" + percent_encode(call_id),
                             {*auth, "Accept: application/json"}, ""};
    auto answer = send(http_request, who, "");
    if (!answer) {
      return tl::make_unexpected(answer.error());
    }
    auto status = string_field(*answer, "status", who, 200);
    if (!status) {
      return tl::make_unexpected(status.error());
    }
    return CallStatus{vonage_progress(*status), *status, ""};
  }

  ProviderResult<std::vector<FoundCall>> find_calls(const std::string& to,
                                                    core::TimePoint since) override {
    const std::string who = "vonage GET /v1/calls";
    auto auth = bearer(who);
    if (!auth) {
      return tl::make_unexpected(auth.error());
    }
    const std::string url = base_ + "/v1/calls?date_start=" + percent_encode(iso8601_utc(since)) +
                            "&page_size=100&order=desc";
    auto answer = send(HttpRequest{"GET", url, {*auth, "Accept: application/json"}, ""}, who, to);
    if (!answer) {
      return tl::make_unexpected(answer.error());
    }
    // {count, page_size, _embedded: {calls: [{uuid, to: {type, number}, status, ...}]}}; no
    // calls at all may come without _embedded.
    std::vector<FoundCall> found;
    const auto embedded = answer->find("_embedded");
    if (embedded == answer->end()) return found;
    const json* calls = embedded->is_object() && embedded->contains("calls")
                            ? &(*embedded)["calls"]
                            : nullptr;
    if (calls == nullptr || !calls->is_array()) {
      return tl::make_unexpected(provider_error(
          ErrorKind::malformed_json, who + ": _embedded.calls is not a list", false, 200));
    }
    const std::string digits = without_plus(to);
    for (const auto& call : *calls) {
      if (!call.is_object()) continue;
      const auto uuid = call.find("uuid");
      const auto callee = call.find("to");
      if (uuid == call.end() || !uuid->is_string() || callee == call.end()) continue;
      std::string number;
      if (callee->is_object() && callee->contains("number") && (*callee)["number"].is_string()) {
        number = (*callee)["number"].get<std::string>();
      } else if (callee->is_string()) {
        number = callee->get<std::string>();
      }
      if (without_plus(number) != digits) continue;
      const auto status = call.find("status");
      found.push_back(FoundCall{uuid->get<std::string>(),
                                status != call.end() && status->is_string()
                                    ? status->get<std::string>()
                                    : std::string{}});
    }
    return found;
  }

 private:
  // "Authorization: Bearer <fresh JWT>" (iat now, new jti: protocols.md §2.2).
  ProviderResult<std::string> bearer(const std::string& who) const {
    auto jwt = vonage_api_jwt(config_.application_id, now_seconds(), random_uuid(),
                              config_.private_key_pem);
    if (!jwt) {
      return tl::make_unexpected(provider_error(
          jwt.error().kind, who + ": cannot sign the JWT: " + jwt.error().message, false));
    }
    return "Authorization: Bearer " + *jwt;
  }

  ProviderResult<json> send(const HttpRequest& request, const std::string& who,
                            const std::string& number) const {
    return send_for_json(request, http_, who, redactions_, {number, config_.from});
  }

  core::Provider config_;
  std::optional<WebhookBase> webhooks_;
  HttpSettings http_;
  std::string base_;
  Redactions redactions_;
};

// ---------------------------------------------------------------------------------------------
// Twilio (protocols.md §4)

CallStatus twilio_status(const std::string& status, const std::string& answered_by) {
  CallStatus result;
  result.detail = answered_by.empty() ? status : status + " (" + answered_by + ")";
  const bool machine = answered_by.rfind("machine", 0) == 0 || answered_by == "fax";
  if (status == "queued" || status == "initiated" || status == "ringing") {
    result.progress = CallProgress::ringing;
  } else if (status == "in-progress") {
    result.progress = answered_by == "human" ? CallProgress::human
                      : machine              ? CallProgress::machine
                                             : CallProgress::answered;
  } else if (status == "completed") {
    // A call a machine answered is a machine outcome even once it has ended.
    result.progress = machine ? CallProgress::machine : CallProgress::completed;
  } else if (status == "busy") {
    result.progress = CallProgress::busy;
  } else if (status == "failed") {
    result.progress = CallProgress::failed;
  } else if (status == "no-answer") {
    result.progress = CallProgress::unanswered;
  } else if (status == "canceled") {
    result.progress = CallProgress::cancelled;
  } else {
    result.progress = CallProgress::ringing;
  }
  return result;
}

class TwilioProvider final : public Provider {
 public:
  TwilioProvider(core::Provider config, std::optional<WebhookBase> webhooks, HttpSettings http)
      : config_(std::move(config)),
        webhooks_(std::move(webhooks)),
        http_(http),
        account_base_(trimmed_base(config_.base_url) + "/2010-04-01/Accounts/" +
                      percent_encode(config_.account_sid)) {
    redactions_.secrets = {config_.auth_token};
    if (!config_.auth_token.empty()) {
      redactions_.secrets.push_back(base64_encode(config_.account_sid + ":" + config_.auth_token));
    }
    if (webhooks_ && !webhooks_->token.empty()) {
      redactions_.secrets.push_back(webhooks_->token);
    }
  }

  std::string name() const override { return "twilio"; }

  ProviderResult<std::string> place_call(const CallRequest& request) override {
    const std::string who = "twilio POST Calls.json";
    const bool gather = request.gather && webhooks_.has_value();
    const std::string action =
        webhooks_ ? webhook_url(*webhooks_, "/webhooks/twilio/gather", request.call_key) : "";
    std::vector<std::pair<std::string, std::string>> form{
        {"To", request.to},
        {"From", config_.from},
        {"Twiml", twilio_twiml(request.text, gather, action)},
    };
    if (webhooks_) {
      form.emplace_back("StatusCallback",
                        webhook_url(*webhooks_, "/webhooks/twilio/status", request.call_key));
      for (const char* event : {"initiated", "ringing", "answered", "completed"}) {
        form.emplace_back("StatusCallbackEvent", event);
      }
      form.emplace_back("StatusCallbackMethod", "POST");
    }
    form.emplace_back("Timeout", std::to_string(k_ringing_timer_s));
    form.emplace_back("MachineDetection", "Enable");
    form.emplace_back("TimeLimit", std::to_string(k_length_timer_s));
    auto answer = send(post(account_base_ + "/Calls.json", form), who, request.to);
    if (!answer) {
      return tl::make_unexpected(answer.error());
    }
    return string_field(*answer, "sid", who, 201);
  }

  ProviderResult<std::string> send_sms(const std::string& to, const std::string& text) override {
    const std::string who = "twilio POST Messages.json";
    const std::vector<std::pair<std::string, std::string>> form{
        {"To", to}, {"From", config_.from}, {"Body", utf8_prefix(text, k_twilio_sms_max)}};
    auto answer = send(post(account_base_ + "/Messages.json", form), who, to);
    if (!answer) {
      return tl::make_unexpected(answer.error());
    }
    return string_field(*answer, "sid", who, 201);
  }

  ProviderResult<CallStatus> poll_call(const std::string& call_id) override {
    const std::string who = "twilio GET Calls/" + call_id + ".json";
    HttpRequest request{"GET", account_base_ + "/Calls/" + percent_encode(call_id) + ".json",
                        {authorization(), "Accept: application/json"}, ""};
    auto answer = send(request, who, "");
    if (!answer) {
      return tl::make_unexpected(answer.error());
    }
    auto status = string_field(*answer, "status", who, 200);
    if (!status) {
      return tl::make_unexpected(status.error());
    }
    const auto answered_by = answer->find("answered_by");
    const std::string by = answered_by != answer->end() && answered_by->is_string()
                               ? answered_by->get<std::string>()
                               : std::string{};
    return twilio_status(*status, by);
  }

  ProviderResult<std::vector<FoundCall>> find_calls(const std::string& to,
                                                    core::TimePoint since) override {
    const std::string who = "twilio GET Calls.json";
    // StartTime filters by UTC date only; the exact time is checked on date_created below.
    const std::string url = account_base_ + "/Calls.json?To=" + percent_encode(to) +
                            "&StartTime%3E=" + utc_date(since) + "&PageSize=100";
    auto answer = send(HttpRequest{"GET", url, {authorization(), "Accept: application/json"}, ""},
                       who, to);
    if (!answer) {
      return tl::make_unexpected(answer.error());
    }
    const auto calls = answer->find("calls");
    if (calls == answer->end() || !calls->is_array()) {
      return tl::make_unexpected(provider_error(
          ErrorKind::malformed_json, who + ": the answer has no \"calls\" list", false, 200));
    }
    std::vector<FoundCall> found;
    for (const auto& call : *calls) {
      if (!call.is_object()) continue;
      const auto sid = call.find("sid");
      if (sid == call.end() || !sid->is_string()) continue;
      const auto callee = call.find("to");
      if (callee != call.end() && callee->is_string() && callee->get<std::string>() != to) continue;
      // A call whose creation time cannot be read counts as found: a second call is placed
      // only when the provider shows there is none.
      const auto created = call.find("date_created");
      if (created != call.end() && created->is_string()) {
        const auto at = parse_rfc2822(created->get<std::string>());
        if (at && *at < since) continue;
      }
      const auto status = call.find("status");
      found.push_back(FoundCall{sid->get<std::string>(), status != call.end() && status->is_string()
                                                             ? status->get<std::string>()
                                                             : std::string{}});
    }
    return found;
  }

 private:
  std::string authorization() const {
    return "Authorization: Basic " + base64_encode(config_.account_sid + ":" + config_.auth_token);
  }

  HttpRequest post(std::string url,
                   const std::vector<std::pair<std::string, std::string>>& form) const {
    return HttpRequest{"POST",
                       std::move(url),
                       {authorization(), "Content-Type: application/x-www-form-urlencoded",
                        "Accept: application/json", "Expect:"},
                       form_encode(form)};
  }

  ProviderResult<json> send(const HttpRequest& request, const std::string& who,
                            const std::string& number) const {
    return send_for_json(request, http_, who, redactions_, {number, config_.from});
  }

  core::Provider config_;
  std::optional<WebhookBase> webhooks_;
  HttpSettings http_;
  std::string account_base_;
  Redactions redactions_;
};

// ---------------------------------------------------------------------------------------------
// Console

class ConsoleProvider final : public Provider {
 public:
  ConsoleProvider(core::ConsoleAnswer answer, std::ostream& out) : answer_(answer), out_(out) {}

  std::string name() const override { return "console"; }

  ProviderResult<std::string> place_call(const CallRequest& request) override {
    const std::lock_guard lock{mutex_};
    const std::string id = "console-" + std::to_string(++calls_);
    out_ << "[console] CALL " << core::mask_phone(request.to) << " (" << request.call_key
         << "): " << call_speech(request.text, request.gather) << '\n';
    out_.flush();
    return id;
  }

  ProviderResult<std::string> send_sms(const std::string& to, const std::string& text) override {
    const std::lock_guard lock{mutex_};
    const std::string id = "console-sms-" + std::to_string(++messages_);
    out_ << "[console] SMS  " << core::mask_phone(to) << ": " << text << '\n';
    out_.flush();
    return id;
  }

  ProviderResult<CallStatus> poll_call(const std::string& /*call_id*/) override {
    switch (answer_) {
      case core::ConsoleAnswer::ack:
        return CallStatus{CallProgress::completed, "console: answered, pressed 1", "1"};
      case core::ConsoleAnswer::noack:
        return CallStatus{CallProgress::completed, "console: answered, no key", ""};
      case core::ConsoleAnswer::never:
        break;
    }
    return CallStatus{CallProgress::unanswered, "console: not answered", ""};
  }

  ProviderResult<std::vector<FoundCall>> find_calls(const std::string& /*to*/,
                                                    core::TimePoint /*since*/) override {
    return std::vector<FoundCall>{};  // the console keeps no call list
  }

 private:
  core::ConsoleAnswer answer_;
  std::ostream& out_;
  std::mutex mutex_;
  int calls_ = 0;
  int messages_ = 0;
};

}  // namespace

// ---------------------------------------------------------------------------------------------
// Public functions

std::string webhook_url(const WebhookBase& base, const std::string& path,
                        const std::string& call_key) {
  std::string url = trimmed_base(base.public_url);
  url += path;
  url += "?call=";
  url += percent_encode(call_key);
  if (!base.token.empty()) {
    url += "&token=";
    url += percent_encode(base.token);
  }
  return url;
}

std::unique_ptr<Provider> make_vonage_provider(const core::Provider& config,
                                               std::optional<WebhookBase> webhooks,
                                               HttpSettings http) {
  return std::make_unique<VonageProvider>(config, std::move(webhooks), http);
}

std::unique_ptr<Provider> make_twilio_provider(const core::Provider& config,
                                               std::optional<WebhookBase> webhooks,
                                               HttpSettings http) {
  return std::make_unique<TwilioProvider>(config, std::move(webhooks), http);
}

std::unique_ptr<Provider> make_console_provider(const core::Provider& config, std::ostream& out) {
  return std::make_unique<ConsoleProvider>(config.answer, out);
}

std::vector<std::unique_ptr<Provider>> make_providers(const core::Config& config,
                                                      std::optional<WebhookBase> webhooks,
                                                      HttpSettings http,
                                                      std::ostream& console_out) {
  std::vector<std::unique_ptr<Provider>> providers;
  providers.reserve(config.providers.size());
  for (const core::Provider& provider : config.providers) {
    switch (provider.type) {
      case core::ProviderType::vonage:
        providers.push_back(make_vonage_provider(provider, webhooks, http));
        break;
      case core::ProviderType::twilio:
        providers.push_back(make_twilio_provider(provider, webhooks, http));
        break;
      case core::ProviderType::console:
        providers.push_back(make_console_provider(provider, console_out));
        break;
    }
  }
  return providers;
}

ProviderChain::ProviderChain(std::vector<std::unique_ptr<Provider>> providers, RetryPolicy policy,
                             Sleep sleep)
    : providers_(std::move(providers)), policy_(policy), sleep_(std::move(sleep)) {
  if (!sleep_) {
    sleep_ = [](std::chrono::milliseconds) {};
  }
}

namespace {

// Runs `attempt` through each provider in order with retries (SPEC §4.7). `what` describes the
// request for logs ("call to …5678").
// What looking up an ambiguous failure found: the id of the request's effect, nothing (try
// again), or the lookup failed (leave this provider).
struct Lookup {
  enum class Outcome { found, none, failed } outcome = Outcome::none;
  std::string id;
};
using Resolve = std::function<Lookup(Provider&)>;

template <typename Attempt>
core::Result<Sent> run_chain(const std::vector<std::unique_ptr<Provider>>& providers,
                             const RetryPolicy& policy, const ProviderChain::Sleep& sleep,
                             const std::string& what, Attempt attempt,
                             const Resolve& resolve = nullptr) {
  if (providers.empty()) {
    return core::fail(ErrorKind::config, "no provider is configured for the " + what);
  }
  const int attempts = std::max(1, policy.attempts);
  std::string failures;
  ErrorKind last_kind = ErrorKind::internal;
  for (const auto& provider : providers) {
    const std::string name = provider->name();
    std::chrono::milliseconds backoff = policy.initial_backoff;
    ProviderError last;
    for (int attempt_no = 1; attempt_no <= attempts; ++attempt_no) {
      ProviderResult<std::string> result = attempt(*provider);
      if (result) {
        return Sent{name, *result};
      }
      last = result.error();
      const std::string status =
          last.http_status != 0 ? "HTTP " + std::to_string(last.http_status)
                                : std::string{core::to_string(last.error.kind)};
      spdlog::warn("{} via {} failed (try {}/{}, {}): {}", what, name, attempt_no, attempts,
                   status, last.error.message);
      if (last.ambiguous && resolve) {
        // The request may have worked: ask before trying again (SPEC §6).
        const Lookup lookup = resolve(*provider);
        if (lookup.outcome == Lookup::Outcome::found) {
          spdlog::warn("{} via {}: the provider has it after all ({})", what, name, lookup.id);
          return Sent{name, lookup.id};
        }
        if (lookup.outcome == Lookup::Outcome::failed) {
          spdlog::error("{} via {}: cannot tell whether it was placed; not trying {} again",
                        what, name, name);
          break;
        }
      }
      if (!last.retryable) {
        spdlog::error("{} via {}: configuration problem, not retried: {}", what, name,
                      last.error.message);
        break;
      }
      if (attempt_no < attempts) {
        sleep(backoff);
        backoff = std::min(backoff * 2, policy.max_backoff);
      }
    }
    if (!failures.empty()) {
      failures += "; ";
    }
    failures += name + ": " + last.error.message;
    last_kind = last.error.kind;
  }
  std::string message = "every provider failed for the " + what + ": " + failures;
  spdlog::error("giving up: {}", message);
  return core::fail(last_kind, std::move(message));
}

}  // namespace

core::Result<Sent> ProviderChain::place_call(const CallRequest& request) {
  const std::string what = "call to " + core::mask_phone(request.to) + " (" + request.call_key + ")";
  const Resolve resolve = [&](Provider& provider) {
    auto calls = provider.find_calls(request.to, request.decided_at - k_lookup_slack);
    if (!calls) {
      spdlog::warn("{}: cannot list the calls of {}: {}", what, provider.name(),
                   calls.error().error.message);
      return Lookup{Lookup::Outcome::failed, ""};
    }
    for (const auto& call : *calls) {
      const auto& known = request.known_call_ids;
      if (std::find(known.begin(), known.end(), call.id) == known.end()) {
        return Lookup{Lookup::Outcome::found, call.id};
      }
    }
    return Lookup{Lookup::Outcome::none, ""};
  };
  return run_chain(
      providers_, policy_, sleep_, what,
      [&](Provider& provider) { return provider.place_call(request); }, resolve);
}

core::Result<std::optional<Sent>> ProviderChain::find_call(const CallRequest& request) {
  std::optional<core::Error> failed;
  for (const auto& provider : providers_) {
    auto calls = provider->find_calls(request.to, request.decided_at - k_lookup_slack);
    if (!calls) {
      if (!failed) failed = calls.error().error;
      continue;
    }
    for (const auto& call : *calls) {
      const auto& known = request.known_call_ids;
      if (std::find(known.begin(), known.end(), call.id) == known.end()) {
        return std::optional<Sent>{Sent{provider->name(), call.id}};
      }
    }
  }
  if (failed) return tl::make_unexpected(*failed);
  return std::optional<Sent>{};
}

core::Result<Sent> ProviderChain::send_sms(const std::string& to, const std::string& text) {
  const std::string what = "SMS to " + core::mask_phone(to);
  return run_chain(providers_, policy_, sleep_, what,
                   [&](Provider& provider) { return provider.send_sms(to, text); });
}

ProviderResult<CallStatus> ProviderChain::poll_call(const std::string& provider,
                                                    const std::string& call_id) {
  for (const auto& candidate : providers_) {
    if (candidate->name() == provider) {
      return candidate->poll_call(call_id);
    }
  }
  return tl::make_unexpected(provider_error(
      ErrorKind::config, "no provider \"" + provider + "\" is configured to poll call " + call_id,
      false));
}

}  // namespace scout::adapters
