#include "scout/adapters/nightscout.hpp"

#include <curl/curl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <string_view>
#include <system_error>
#include <thread>
#include <unordered_map>
#include <utility>

#include "scout/adapters/crypto.hpp"
#include "scout/adapters/encoding.hpp"

#ifdef SCOUT_VERSION
#define SCOUT_NIGHTSCOUT_USER_AGENT "scout/" SCOUT_VERSION
#else
#define SCOUT_NIGHTSCOUT_USER_AGENT "scout"
#endif

namespace scout::adapters {
namespace {

using core::Entry;
using core::Error;
using core::ErrorKind;
using core::Result;
using nlohmann::json;

// An entries list for 36 readings is about 10 KiB; anything this large is not one.
constexpr std::size_t k_max_body_bytes = std::size_t{4} << 20;
// At most this much is set aside for an answer before it comes in (Content-Length).
constexpr std::size_t k_max_body_reserve_bytes = std::size_t{64} << 10;
// At most this many requests at once to one host:port (see Poller::Impl::run).
constexpr long k_max_per_host = 256;
// Answers arriving within this long of each other are handed over together (fetch_each).
constexpr auto k_hand_over_every = std::chrono::milliseconds{5};

// A bound on the wait loop in fetch_all beyond the per-request timeout. libcurl enforces the
// timeout itself; this only guarantees the loop ends even if it somehow did not.
constexpr core::Duration k_loop_grace = std::chrono::seconds{5};
// How long one curl_multi_poll may sleep before the loop re-checks its own deadline.
constexpr int k_poll_slice_ms = 1000;
// When the hard limit on open files is "unlimited", raise the soft limit to this.
constexpr rlim_t k_nofile_when_unlimited = 65536;

std::string_view trim_left(std::string_view text) {
  std::size_t i = 0;
  while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i])) != 0) {
    ++i;
  }
  return text.substr(i);
}

// A string holding a number ("120", " 5", "1716580000000") as a double.
std::optional<double> number_in(std::string_view text) {
  text = trim_left(text);
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back())) != 0) {
    text.remove_suffix(1);
  }
  if (text.empty()) {
    return std::nullopt;
  }
  double parsed = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), parsed);
  if (ec != std::errc{} || end != text.data() + text.size()) {
    return std::nullopt;
  }
  return parsed;
}

// sgv as whole mg/dL; nothing for values no sensor could send (keeps the int conversion safe).
std::optional<int> sgv_from(std::optional<double> value) {
  if (!value || !std::isfinite(*value) || std::fabs(*value) > 1e6) {
    return std::nullopt;
  }
  return static_cast<int>(std::lround(*value));
}

// date as ms since the epoch; nothing when not a number, or outside 1970..~2286.
std::optional<core::TimePoint> date_from(std::optional<double> value) {
  if (!value || !std::isfinite(*value) || *value <= 0 || *value > 1e16) {
    return std::nullopt;
  }
  return core::TimePoint{core::Duration{static_cast<std::int64_t>(std::llround(*value))}};
}

// Reads an entries answer as the parser walks it (nlohmann's SAX interface), keeping only the
// four fields scout uses of each top-level object: no tree of the whole answer is built. Reads
// what a parsed document would give: the last of duplicate keys wins; `sgv` and `date` are a
// number or a numeric string; keys of nested objects are not the record's.
class EntriesReader final : public nlohmann::json_sax<json> {
 public:
  std::vector<Entry> entries;
  std::string top_type;         // JSON type name of the document ("array" for an answer)
  std::string first_type;       // type name of the array's first element
  std::size_t elements = 0;     // elements of the top-level array
  std::size_t objects = 0;      // of which objects
  bool overflow = false;        // stopped at a number beyond double (1e400)
  std::string error;            // the parser's message when it stopped

  bool null() override { return scalar("null", std::nullopt, nullptr); }
  bool boolean(bool) override { return scalar("boolean", std::nullopt, nullptr); }
  bool number_integer(number_integer_t v) override {
    return scalar("number", static_cast<double>(v), nullptr);
  }
  bool number_unsigned(number_unsigned_t v) override {
    return scalar("number", static_cast<double>(v), nullptr);
  }
  bool number_float(number_float_t v, const string_t&) override {
    return scalar("number", v, nullptr);
  }
  bool string(string_t& v) override { return scalar("string", std::nullopt, &v); }
  bool binary(binary_t&) override { return scalar("binary", std::nullopt, nullptr); }

  bool start_object(std::size_t) override {
    if (depth_ == 1) {
      element("object");
      ++objects;
      record_ = Record{};
    } else {
      container("object");
    }
    ++depth_;
    return true;
  }
  bool key(string_t& name) override {
    if (depth_ == 2) {
      field_ = name == "sgv"         ? Field::sgv
               : name == "date"      ? Field::date
               : name == "type"      ? Field::type
               : name == "direction" ? Field::direction
                                     : Field::other;
    }
    return true;
  }
  bool end_object() override {
    --depth_;
    if (depth_ == 1) {
      finish_record();
    }
    return true;
  }
  bool start_array(std::size_t) override {
    container("array");
    ++depth_;
    return true;
  }
  bool end_array() override {
    --depth_;
    return true;
  }
  bool parse_error(std::size_t, const std::string&,
                   const nlohmann::detail::exception& e) override {
    overflow = e.id == 406;  // out_of_range.406: number overflow
    error = e.what();
    return false;
  }

 private:
  enum class Field { other, sgv, date, type, direction };
  struct Record {
    std::optional<double> sgv;
    std::optional<double> date;
    bool other_type = false;  // `type` is a string other than "sgv"
    std::string direction;
  };

  // The type of the document (depth 0) or of an element of the top-level array (depth 1).
  void element(const char* type) {
    if (depth_ == 0) {
      top_type = type;
    } else if (depth_ == 1 && top_type == "array") {
      if (elements++ == 0) first_type = type;
    }
  }
  // An object or array starting as a value: of a record's field, it is not a usable value.
  void container(const char* type) {
    if (depth_ <= 1) {
      element(type);
    } else if (depth_ == 2) {
      assign(std::nullopt, nullptr);
    }
  }
  bool scalar(const char* type, std::optional<double> number, const std::string* text) {
    if (depth_ <= 1) {
      element(type);
    } else if (depth_ == 2) {
      assign(number, text);
    }
    return true;
  }
  // The value of the record's current key: the last one given wins, as in a parsed object.
  void assign(std::optional<double> number, const std::string* text) {
    switch (field_) {
      case Field::sgv:
        record_.sgv = text != nullptr ? number_in(*text) : number;
        break;
      case Field::date:
        record_.date = text != nullptr ? number_in(*text) : number;
        break;
      case Field::type:
        record_.other_type = text != nullptr && *text != "sgv";
        break;
      case Field::direction:
        record_.direction = text != nullptr ? *text : std::string{};
        break;
      case Field::other:
        break;
    }
    field_ = Field::other;
  }
  // In-memory typing in Nightscout: a record is an sgv when it has the key `sgv`
  // (nightscout/cgm-remote-monitor:lib/api/entries/index.js, query_models); mbg and cal
  // records and those without a usable date are dropped.
  void finish_record() {
    if (record_.other_type) return;
    const auto sgv = sgv_from(record_.sgv);
    const auto date = date_from(record_.date);
    if (!sgv || !date) return;
    Entry entry;
    entry.date = *date;
    entry.sgv = *sgv;
    entry.direction = std::move(record_.direction);
    entries.push_back(std::move(entry));
  }

  int depth_ = 0;
  Field field_ = Field::other;
  Record record_;
};

std::string base_url(const core::NightscoutSite& site) {
  std::string url = site.url;
  while (!url.empty() && url.back() == '/') {
    url.pop_back();
  }
  return url;
}

// `url` with any user:password@ replaced by ***@, so it can be shown.
std::string without_userinfo(std::string url) {
  const auto scheme_end = url.find("://");
  if (scheme_end == std::string::npos) {
    return url;
  }
  const auto authority_begin = scheme_end + 3;
  const auto authority_end = url.find_first_of("/?#", authority_begin);
  const auto at = url.rfind('@', authority_end == std::string::npos ? url.size() : authority_end);
  if (at == std::string::npos || at < authority_begin) {
    return url;
  }
  return url.replace(authority_begin, at - authority_begin, "***");
}

std::string url_for(const core::NightscoutSite& site, int count, const std::string& token) {
  std::string url = base_url(site) + "/api/v1/entries/sgv.json?count=" + std::to_string(count);
  if (!site.token.empty()) {
    url += "&token=" + token;
  }
  return url;
}

// Replaces every occurrence of `secret` in `text` by ***.
void scrub(std::string& text, const std::string& secret) {
  if (secret.empty()) {
    return;
  }
  for (auto pos = text.find(secret); pos != std::string::npos; pos = text.find(secret, pos)) {
    text.replace(pos, secret.size(), "***");
    pos += 3;
  }
}

// Belt and braces: no message leaves this file with a credential in it.
std::string scrubbed(std::string text, const core::NightscoutSite& site) {
  scrub(text, site.token);
  if (!site.token.empty()) {
    scrub(text, percent_encode(site.token));
  }
  if (!site.api_secret.empty()) {
    scrub(text, site.api_secret);
    scrub(text, api_secret_header_value(site.api_secret));
  }
  return text;
}

std::string format_timeout(core::Duration timeout) {
  const auto ms = timeout.count();
  if (ms % 1000 == 0) {
    return std::to_string(ms / 1000) + "s";
  }
  return std::to_string(ms) + " ms";
}

void global_init_once() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

// One socket per site must fit under RLIMIT_NOFILE; many systems start with a soft limit of
// 1024. Raising the soft limit up to the hard limit needs no privilege (setrlimit(2)).
void raise_open_file_limit_once() {
  static std::once_flag once;
  std::call_once(once, [] {
    rlimit limit{};
    if (getrlimit(RLIMIT_NOFILE, &limit) != 0) {
      return;
    }
    const rlim_t target =
        limit.rlim_max == RLIM_INFINITY ? k_nofile_when_unlimited : limit.rlim_max;
    if (limit.rlim_cur == RLIM_INFINITY || limit.rlim_cur >= target) {
      return;
    }
    limit.rlim_cur = target;
    (void)setrlimit(RLIMIT_NOFILE, &limit);  // best effort: the old limit still works
  });
}

struct CurlEasyDeleter {
  void operator()(CURL* handle) const { curl_easy_cleanup(handle); }
};
struct CurlMultiDeleter {
  void operator()(CURLM* handle) const { curl_multi_cleanup(handle); }
};
struct CurlSlistDeleter {
  void operator()(curl_slist* list) const { curl_slist_free_all(list); }
};
using EasyPtr = std::unique_ptr<CURL, CurlEasyDeleter>;
using MultiPtr = std::unique_ptr<CURLM, CurlMultiDeleter>;
using SlistPtr = std::unique_ptr<curl_slist, CurlSlistDeleter>;

// Everything one request owns while the multi handle runs it.
struct Transfer {
  const core::NightscoutSite* site = nullptr;
  std::string url;
  std::string shown_url;  // redacted
  std::string if_modified_since;  // an HTTP-date; set for an incremental request only
  // FORBID_REUSE: the host serves other sites of this poll too, or the poller keeps nothing
  bool close_after = false;
  EasyPtr easy;
  SlistPtr headers;
  std::string body;
  bool body_too_large = false;
  std::array<char, CURL_ERROR_SIZE> error_buffer{};
  bool done = false;
  CURLcode code = CURLE_OK;
};

std::size_t on_body(char* data, std::size_t size, std::size_t count, void* user) {
  auto* transfer = static_cast<Transfer*>(user);
  const std::size_t bytes = size * count;
  if (transfer->body.size() + bytes > k_max_body_bytes) {
    transfer->body_too_large = true;
    return 0;  // makes libcurl stop with CURLE_WRITE_ERROR
  }
  if (transfer->body.empty()) {
    // Room for the whole answer at once when the server said how long it is (most do): no
    // doubling of the buffer as pieces come in, thousands of transfers at once. Only up to what
    // an entries answer can be: a length the server claims is not memory it has sent.
    curl_off_t length = -1;
    if (curl_easy_getinfo(transfer->easy.get(), CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &length) ==
            CURLE_OK &&
        length > 0) {
      transfer->body.reserve(
          std::min(static_cast<std::size_t>(length), k_max_body_reserve_bytes));
    }
  }
  transfer->body.append(data, bytes);
  return bytes;
}

// A libcurl easy handle with the options every Nightscout request shares; nullptr when libcurl
// cannot make one. set_up gives it the rest, per request; a handle may serve many requests.
EasyPtr new_handle() {
  EasyPtr easy{curl_easy_init()};
  if (!easy) return easy;
  bool ok = true;
  const auto set = [&](CURLcode code) { ok = ok && code == CURLE_OK; };
  CURL* h = easy.get();
  set(curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https"));
  set(curl_easy_setopt(h, CURLOPT_USERAGENT, SCOUT_NIGHTSCOUT_USER_AGENT));
  set(curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, ""));  // whatever libcurl can decode
  set(curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L));
  // No redirects: following one would resend the token or api-secret to wherever it points.
  // A 3xx is reported with its target so the user can fix the URL.
  set(curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L));
  set(curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L));
  set(curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L));
  // A 1 KiB receive buffer rather than libcurl's 16 KiB: thousands of transfers at once hold one
  // each (an entries answer is read in a few pieces all the same).
  set(curl_easy_setopt(h, CURLOPT_BUFFERSIZE, 1024L));
  set(curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, &on_body));
  if (!ok) easy.reset();
  return easy;
}

// Readies `transfer` on `easy` (a new_handle, fresh or done with an earlier request; a new one
// when null), with `timeout` for connect + transfer. Returns an error message; empty on success.
std::string set_up(Transfer& transfer, core::Duration timeout, EasyPtr easy = nullptr) {
  if (!easy) easy = new_handle();
  if (!easy) {
    return "could not create a libcurl handle";
  }
  transfer.easy = std::move(easy);

  curl_slist* headers = curl_slist_append(nullptr, "Accept: application/json");
  // Appends `line`; on failure frees the list and leaves it null.
  const auto append = [&headers](const std::string& line) {
    if (headers == nullptr) return;
    curl_slist* grown = curl_slist_append(headers, line.c_str());
    if (grown == nullptr) curl_slist_free_all(headers);
    headers = grown;
  };
  if (!transfer.site->api_secret.empty()) {
    append("api-secret: " + api_secret_header_value(transfer.site->api_secret));
  }
  if (!transfer.if_modified_since.empty()) {
    append("If-Modified-Since: " + transfer.if_modified_since);
  }
  if (headers == nullptr) {
    return "could not build the request headers";
  }
  transfer.headers.reset(headers);

  CURL* h = transfer.easy.get();
  const long timeout_ms = std::max<long>(1, static_cast<long>(timeout.count()));
  bool ok = true;
  const auto set = [&](CURLcode code) { ok = ok && code == CURLE_OK; };
  set(curl_easy_setopt(h, CURLOPT_URL, transfer.url.c_str()));
  set(curl_easy_setopt(h, CURLOPT_HTTPHEADER, transfer.headers.get()));
  // The timeout covers connect + transfer; the connect phase gets the same bound so a
  // black-holed host is reported as a timeout, not left to the OS default (minutes).
  set(curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms));
  set(curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms));
  // A site alone on its host keeps its connection alive for the next poll (SPEC §7). One of
  // several sites on a host closes it when done: servers that give each connection a worker
  // (cpp-httplib, Apache prefork) would otherwise have their workers wait on idle kept-alive
  // connections while libcurl opens more, and stall. A poller for one poll closes them all.
  set(curl_easy_setopt(h, CURLOPT_FORBID_REUSE, transfer.close_after ? 1L : 0L));
  set(curl_easy_setopt(h, CURLOPT_WRITEDATA, &transfer));
  set(curl_easy_setopt(h, CURLOPT_ERRORBUFFER, transfer.error_buffer.data()));
  set(curl_easy_setopt(h, CURLOPT_PRIVATE, &transfer));
  if (!ok) {
    return "could not configure the libcurl handle";
  }
  return {};
}

// `transfer`'s handle, done with it (removed from its multi handle), with nothing left pointing
// into `transfer`: ready for set_up of another request.
EasyPtr released(Transfer& transfer) {
  EasyPtr easy = std::move(transfer.easy);
  if (easy) {
    CURL* h = easy.get();
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, nullptr);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, nullptr);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, nullptr);
    curl_easy_setopt(h, CURLOPT_PRIVATE, nullptr);
  }
  transfer.headers.reset();
  return easy;
}

// The Location of a redirect without its query (which may carry a token).
std::string redirect_target(CURL* easy) {
  char* location = nullptr;
  if (curl_easy_getinfo(easy, CURLINFO_REDIRECT_URL, &location) != CURLE_OK ||
      location == nullptr) {
    return {};
  }
  std::string target = without_userinfo(location);
  const auto query = target.find_first_of("?#");
  if (query != std::string::npos) {
    target.erase(query);
  }
  return target;
}

Result<std::vector<Entry>> outcome_of(Transfer& transfer, core::Duration timeout) {
  const std::string who = "Nightscout at " + transfer.shown_url;
  const auto failure = [&](ErrorKind kind, std::string message) {
    return core::fail(kind, scrubbed(std::move(message), *transfer.site));
  };

  if (!transfer.done) {
    return failure(ErrorKind::timeout, who + " did not answer within " + format_timeout(timeout));
  }
  if (transfer.code == CURLE_WRITE_ERROR && transfer.body_too_large) {
    if (trim_left(transfer.body).starts_with('<')) {
      return failure(ErrorKind::not_json,
                     who + " answered an HTML page, not JSON — is the URL right?");
    }
    return failure(ErrorKind::malformed_json, who + " answered more than " +
                                                  std::to_string(k_max_body_bytes >> 20) +
                                                  " MiB, which is not an entries list");
  }
  if (transfer.code != CURLE_OK) {
    std::string detail = transfer.error_buffer.data();
    if (detail.empty()) {
      detail = curl_easy_strerror(transfer.code);
    }
    if (transfer.code == CURLE_OPERATION_TIMEDOUT) {
      return failure(ErrorKind::timeout, who + " did not answer within " + format_timeout(timeout) +
                                             " (" + detail + ")");
    }
    return failure(ErrorKind::network, who + ": " + detail);
  }

  long status = 0;
  curl_easy_getinfo(transfer.easy.get(), CURLINFO_RESPONSE_CODE, &status);
  if (status == 304) {
    // Nothing newer than If-Modified-Since (lib/api/entries/index.js format_entries).
    if (!transfer.if_modified_since.empty()) return std::vector<Entry>{};
    return failure(ErrorKind::http_status,
                   who + " answered HTTP 304 (not modified) to a request without "
                         "If-Modified-Since");
  }
  if (status == 401 || status == 403) {
    return failure(ErrorKind::auth, who + " refused the credentials (HTTP " +
                                        std::to_string(status) + "): check token/api_secret");
  }
  if (status >= 300 && status < 400) {
    const std::string target = redirect_target(transfer.easy.get());
    return failure(
        ErrorKind::http_status,
        who + " answered HTTP " + std::to_string(status) +
            (target.empty() ? std::string{" (a redirect)"} : " redirecting to " + target) +
            ": scout does not follow redirects, put the final address in the url");
  }
  if (status == 404) {
    return failure(ErrorKind::http_status,
                   who + " answered HTTP 404 (not found) — is the URL right?");
  }
  if (status < 200 || status >= 300) {
    return failure(ErrorKind::http_status, who + " answered HTTP " + std::to_string(status));
  }

  auto parsed = parse_entries(transfer.body);
  if (!parsed) {
    return failure(parsed.error().kind, who + " " + parsed.error().message);
  }
  return parsed;
}

// `text` (JSON) with every number that does not fit a double (1e400, -1e999) written as null.
// Strings are left alone. One pass, no allocation beyond the copy.
std::string nulled_overflowing_numbers(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  bool in_string = false;
  for (std::size_t i = 0; i < text.size();) {
    const char c = text[i];
    if (in_string) {
      out += c;
      if (c == '\\' && i + 1 < text.size()) {
        out += text[i + 1];
        i += 2;
        continue;
      }
      if (c == '"') in_string = false;
      ++i;
      continue;
    }
    if (c == '"') {
      in_string = true;
      out += c;
      ++i;
      continue;
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
      std::size_t end = i + 1;
      while (end < text.size() && (std::isdigit(static_cast<unsigned char>(text[end])) != 0 ||
                                   text[end] == '.' || text[end] == 'e' || text[end] == 'E' ||
                                   text[end] == '+' || text[end] == '-')) {
        ++end;
      }
      const std::string token = text.substr(i, end - i);
      // strtod gives ±HUGE_VAL (infinite) on overflow; an underflow (1e-400) parses as 0.
      const double value = std::strtod(token.c_str(), nullptr);
      out += std::isfinite(value) ? token : std::string{"null"};
      i = end;
      continue;
    }
    out += c;
    ++i;
  }
  return out;
}

}  // namespace

Result<std::vector<Entry>> parse_entries(const std::string& body) {
  const std::string_view start = trim_left(body);
  if (start.empty()) {
    return core::fail(ErrorKind::not_json, "answered an empty body, not JSON");
  }
  if (start.front() == '<') {
    return core::fail(ErrorKind::not_json, "answered an HTML page, not JSON — is the URL right?");
  }
  // Anything JSON can start with; other text (e.g. a plain "Unauthorized") is not JSON.
  static constexpr std::string_view k_json_starts = "[{\"-0123456789tfn";
  if (k_json_starts.find(start.front()) == std::string_view::npos) {
    const std::string excerpt{start.substr(0, std::min<std::size_t>(start.size(), 40))};
    return core::fail(ErrorKind::not_json, "answered text that is not JSON (\"" + excerpt + "\")");
  }

  EntriesReader reader;
  bool parsed = json::sax_parse(body, &reader);
  if (!parsed && reader.overflow) {
    // A number beyond double (1e400) stops the parser; it is read as null instead, so only the
    // entry holding it is dropped.
    reader = EntriesReader{};
    parsed = json::sax_parse(nulled_overflowing_numbers(body), &reader);
  }
  if (!parsed) {
    return core::fail(ErrorKind::malformed_json, "answered malformed JSON: " + reader.error);
  }
  if (reader.top_type != "array") {
    return core::fail(ErrorKind::malformed_json, "answered a JSON " + reader.top_type +
                                                     " where an array of entries was expected");
  }
  // An array of which no element is an object is not an entries answer at all; single
  // elements that are not objects are dropped.
  if (reader.elements > 0 && reader.objects == 0) {
    return core::fail(ErrorKind::malformed_json, "answered an array of " + reader.first_type +
                                                     " values, not entry objects");
  }
  std::vector<Entry> entries = std::move(reader.entries);
  std::stable_sort(entries.begin(), entries.end(),
                   [](const Entry& a, const Entry& b) { return a.date > b.date; });
  return entries;
}

std::string api_secret_header_value(const std::string& secret) {
  // "" only if OpenSSL has no SHA-1: the request then fails with auth, which says why.
  return sha1_hex(secret);
}

std::string redacted_site_url(const core::NightscoutSite& site) {
  return without_userinfo(base_url(site));
}

namespace {

// "Sun, 06 Nov 1994 08:49:37 GMT" (RFC 9110 §5.6.7 IMF-fixdate) of `t`, rounded up to the second:
// Nightscout compares it with the newest date it would send (ms), so rounding down would make a
// reading scout already holds count as newer.
std::string http_date(core::TimePoint t) {
  static constexpr std::array<const char*, 7> k_days{"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static constexpr std::array<const char*, 12> k_months{"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                        "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  const auto ms = t.time_since_epoch().count();
  const std::time_t seconds = static_cast<std::time_t>(ms / 1000 + (ms % 1000 > 0 ? 1 : 0));
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char text[40];
  std::snprintf(text, sizeof text, "%s, %02d %s %04d %02d:%02d:%02d GMT",
                k_days[static_cast<std::size_t>(tm.tm_wday % 7)], tm.tm_mday,
                k_months[static_cast<std::size_t>(tm.tm_mon % 12)], tm.tm_year + 1900, tm.tm_hour,
                tm.tm_min, tm.tm_sec);
  return text;
}

std::string after_query(std::optional<core::TimePoint> after) {
  return after ? "&find[date][$gt]=" + std::to_string(after->time_since_epoch().count())
               : std::string{};
}

}  // namespace

std::string entries_url(const core::NightscoutSite& site, std::optional<core::TimePoint> after) {
  return url_for(site, k_entries_count, percent_encode(site.token)) + after_query(after);
}

std::string redacted_entries_url(const core::NightscoutSite& site,
                                 std::optional<core::TimePoint> after) {
  return without_userinfo(url_for(site, k_entries_count, "***")) + after_query(after);
}

// ----------------------------------------------------------------------------------------------
// Poller: libcurl multi handles kept for the life of the poller, driven through the multi_socket
// API (curl_multi_socket_action with one epoll): the work per event is that transfer's, not a
// walk over every transfer of the poll as curl_multi_perform does. The sites are split by host
// over k_shards multi handles, because libcurl 7.88 walks its whole DNS cache at the end of every
// transfer (Curl_hostcache_prune from multi_done): one multi handle over ten thousand hosts is
// N² per poll, k_shards of them are N²/k_shards. Each shard's connection cache keeps connections
// alive from one poll to the next (keep-alive; HTTP/2 where a server offers it over TLS), with
// its DNS cache; sites on one host share a shard, so they share its connections and its
// per-host limit.

constexpr std::size_t k_shards = 64;

// scheme://[userinfo@]host[:port] of `url` (lower case), for the shard.
std::string authority_of(const std::string& url) {
  const auto scheme_end = url.find("://");
  const auto begin = scheme_end == std::string::npos ? 0 : scheme_end + 3;
  const auto end = url.find_first_of("/?#", begin);
  std::string authority = url.substr(0, end == std::string::npos ? url.size() : end);
  const auto at = authority.rfind('@');
  if (at != std::string::npos && at >= begin) authority.erase(begin, at + 1 - begin);
  std::transform(authority.begin(), authority.end(), authority.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return authority;
}

// The shards are split over lanes, one thread each (at most one per core, Poller::k_max_lanes),
// each with its own epoll: a poll of thousands of new connections is bound by libcurl's and the
// kernel's work per request, which one core alone cannot do fast enough (README "Benchmark").
// The thread that called fetch_each runs a lane too and is the only one that hands answers over.
// The limit on requests in flight holds over all lanes together.

// epoll_event.data of a lane's eventfd (no shard has this index).
constexpr std::uint64_t k_wake = ~std::uint64_t{0};

unsigned default_lanes() {
  return std::clamp(std::thread::hardware_concurrency(), 1u, Poller::k_max_lanes);
}

struct Poller::Impl {
  // One thread's share of the shards: their epoll, and an eventfd in it that wakes the lane (the
  // calling thread's, when another lane has finished or the poll stops early).
  struct Lane {
    int epoll_fd = -1;
    int wake_fd = -1;
    // Easy handles done with a request, for the lane's next ones (new_handle's options kept).
    std::vector<EasyPtr> idle;
    Lane() {
      epoll_fd = epoll_create1(EPOLL_CLOEXEC);
      wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
      if (epoll_fd >= 0 && wake_fd >= 0) {
        epoll_event event{};
        event.events = EPOLLIN;
        event.data.u64 = k_wake;
        epoll_ctl(epoll_fd, EPOLL_CTL_ADD, wake_fd, &event);
      }
    }
    ~Lane() {
      if (wake_fd >= 0) ::close(wake_fd);
      if (epoll_fd >= 0) ::close(epoll_fd);
    }
    Lane(const Lane&) = delete;
    Lane& operator=(const Lane&) = delete;
    void wake() const {
      const std::uint64_t one = 1;
      if (wake_fd >= 0) static_cast<void>(!::write(wake_fd, &one, sizeof one));
    }
    void drain() const {
      std::uint64_t count = 0;
      if (wake_fd >= 0) static_cast<void>(!::read(wake_fd, &count, sizeof count));
    }
  };
  struct Shard {
    Impl* owner = nullptr;
    std::uint32_t index = 0;
    std::uint32_t lane = 0;  // index % lanes.size(): the lane whose thread alone drives it
    // When libcurl wants curl_multi_socket_action(CURL_SOCKET_TIMEOUT) next (TIMERFUNCTION).
    std::optional<std::chrono::steady_clock::time_point> timer;
    long max_connects = 0;
    int running = 0;
    MultiPtr multi;  // last: destroyed first, while its callbacks can still reach the rest
  };
  std::vector<std::unique_ptr<Lane>> lanes;  // destroyed after the shards (their sockets' epoll)
  std::vector<std::unique_ptr<Shard>> shards;
  // At most this many requests at once over all lanes (Poller::k_max_in_flight by default).
  std::size_t max_in_flight = Poller::k_max_in_flight;
  // Connections are kept for the next poll; false closes each when its answer is in.
  bool keep_alive = true;

  explicit Impl(unsigned lane_count = default_lanes()) {
    global_init_once();
    raise_open_file_limit_once();
    lane_count = std::clamp(lane_count, 1u, Poller::k_max_lanes);
    for (unsigned l = 0; l < lane_count; ++l) lanes.push_back(std::make_unique<Lane>());
    shards.resize(k_shards);
  }
  ~Impl() {
    for (auto& lane : lanes) lane->idle.clear();
    shards.clear();  // closes the cached connections, which unregister their sockets first
    lanes.clear();
  }
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;

  // The shard for `site`, created on first use; nullptr if libcurl cannot make one. Called before
  // the lanes start.
  Shard* shard_for(const core::NightscoutSite& site) {
    const std::size_t index = std::hash<std::string>{}(authority_of(site.url)) % k_shards;
    auto& shard = shards[index];
    if (!shard) {
      auto made = std::make_unique<Shard>();
      made->owner = this;
      made->index = static_cast<std::uint32_t>(index);
      made->lane = static_cast<std::uint32_t>(index % lanes.size());
      made->multi.reset(curl_multi_init());
      if (!made->multi || lanes[made->lane]->epoll_fd < 0 || lanes[made->lane]->wake_fd < 0) {
        return nullptr;
      }
      CURLM* multi = made->multi.get();
      curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, &Impl::on_socket);
      curl_multi_setopt(multi, CURLMOPT_SOCKETDATA, made.get());
      curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, &Impl::on_timer);
      curl_multi_setopt(multi, CURLMOPT_TIMERDATA, made.get());
      // Many sites on one host:port (a clinic's shared Nightscout host): libcurl searches that
      // host's connections for every new transfer, so thousands at once cost N². run() starts at
      // most this many per host at once (the rest wait their turn, their timeout running
      // meanwhile); libcurl is told the same limit.
      curl_multi_setopt(multi, CURLMOPT_MAX_HOST_CONNECTIONS, k_max_per_host);
      curl_multi_setopt(multi, CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);
      shard = std::move(made);
    }
    return shard.get();
  }

  // CURLMOPT_SOCKETFUNCTION, on the shard's lane's thread. A socket libcurl hands over for the
  // first time (or again after a CURL_POLL_REMOVE, which drops what curl_multi_assign kept) has a
  // null `assigned`: it is added to the lane's epoll set and marked; a marked one is modified.
  // One epoll_ctl per change (a kept-alive connection is removed and handed over again with every
  // request); the other operation is the fallback should the mark and the epoll set ever
  // disagree.
  static int on_socket(CURL*, curl_socket_t socket, int what, void* user, void* assigned) {
    auto* shard = static_cast<Shard*>(user);
    const int epoll_fd = shard->owner->lanes[shard->lane]->epoll_fd;
    if (what == CURL_POLL_REMOVE) {
      epoll_ctl(epoll_fd, EPOLL_CTL_DEL, socket, nullptr);
      return 0;
    }
    epoll_event event{};
    event.data.u64 = (std::uint64_t{shard->index} << 32) | static_cast<std::uint32_t>(socket);
    event.events = ((what & CURL_POLL_IN) != 0 ? EPOLLIN : 0u) |
                   ((what & CURL_POLL_OUT) != 0 ? EPOLLOUT : 0u);
    const bool added = assigned != nullptr;
    if (epoll_ctl(epoll_fd, added ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, socket, &event) != 0) {
      epoll_ctl(epoll_fd, added ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, socket, &event);
    }
    if (!added) curl_multi_assign(shard->multi.get(), socket, shard);
    return 0;
  }
  static int on_timer(CURLM*, long timeout_ms, void* user) {
    auto* shard = static_cast<Shard*>(user);
    if (timeout_ms < 0) {
      shard->timer.reset();
    } else {
      shard->timer = std::chrono::steady_clock::now() + std::chrono::milliseconds{timeout_ms};
    }
    return 0;
  }

  // Runs every transfer at once; answers as fetch_each (on_answers set) or returned in order.
  std::vector<Result<std::vector<Entry>>> run(std::vector<Transfer>& transfers,
                                              core::Duration timeout,
                                              const AnswersCallback& on_answers);
};

std::vector<Result<std::vector<Entry>>> Poller::Impl::run(std::vector<Transfer>& transfers,
                                                          core::Duration timeout,
                                                          const AnswersCallback& on_answers) {
  std::vector<Result<std::vector<Entry>>> results;
  if (transfers.empty()) return results;
  const auto started = std::chrono::steady_clock::now();
  const auto deadline = started + timeout + k_loop_grace;
  const std::size_t lane_count = lanes.size();
  // Handles kept between polls: as many as can be in flight, over all lanes.
  const std::size_t idle_per_lane = (max_in_flight + lane_count - 1) / lane_count;

  // Each transfer's host, its shard, and each host's queue of transfers waiting for a slot. A
  // host's sites share a shard, so a host and its transfers belong to one lane, and only that
  // lane's thread touches them while the lanes run.
  struct Host {
    std::vector<std::size_t> waiting;  // transfer indices, taken from `next` on
    std::size_t next = 0;
    long in_flight = 0;
    bool ready = false;  // in its lane's ready_hosts
    std::size_t lane = 0;
  };
  std::vector<Host> hosts;
  std::vector<std::size_t> host_of(transfers.size());
  std::vector<Shard*> shard_of(transfers.size(), nullptr);
  {
    std::unordered_map<std::string, std::size_t> host_index;
    for (std::size_t i = 0; i < transfers.size(); ++i) {
      const auto [it, added] = host_index.try_emplace(authority_of(transfers[i].site->url),
                                                      hosts.size());
      if (added) hosts.emplace_back();
      host_of[i] = it->second;
      hosts[it->second].waiting.push_back(i);
    }
  }
  std::vector<long> sites_per_shard(k_shards, 0);
  std::vector<std::vector<std::size_t>> lane_hosts(lane_count);
  std::vector<std::vector<std::size_t>> lane_transfers(lane_count);
  for (std::size_t i = 0; i < transfers.size(); ++i) {
    transfers[i].close_after = hosts[host_of[i]].waiting.size() > 1 || !keep_alive;
    shard_of[i] = shard_for(*transfers[i].site);
    if (shard_of[i] != nullptr) ++sites_per_shard[shard_of[i]->index];
    // A transfer without a shard fails at once, on lane 0.
    const std::size_t lane = shard_of[i] != nullptr ? shard_of[i]->lane : 0;
    Host& host = hosts[host_of[i]];
    if (host.waiting.front() == i) {
      host.lane = lane;
      lane_hosts[lane].push_back(host_of[i]);
    }
    lane_transfers[host.lane].push_back(i);
  }
  for (auto& shard : shards) {
    if (shard && sites_per_shard[shard->index] > shard->max_connects) {
      // Room to keep one connection per site alive until the next poll.
      shard->max_connects = sites_per_shard[shard->index];
      curl_multi_setopt(shard->multi.get(), CURLMOPT_MAXCONNECTS, shard->max_connects);
    }
  }
  if (!on_answers) results.resize(transfers.size(), core::fail(ErrorKind::internal, "not asked"));

  // What the lanes share while they run. Answers wait in `pending` for the calling thread.
  std::mutex mutex;  // guards pending
  std::vector<std::pair<std::size_t, Result<std::vector<Entry>>>> pending;
  std::atomic<std::size_t> in_flight{0};  // over all lanes: at most max_in_flight
  std::atomic<bool> stop{false};
  std::atomic<std::size_t> others_running{0};  // lanes run by other threads, not finished
  std::atomic<std::size_t> caller_lane{0};     // the lane the calling thread runs now

  // On the calling thread only: answers that came in within k_hand_over_every of each other go
  // together, so that a thousand sites answering at once are a few batches, not a thousand.
  auto last_hand_over = std::chrono::steady_clock::now() - k_hand_over_every;
  const auto hand_over = [&](bool now_or_never) {
    if (!on_answers) return;
    const auto now = std::chrono::steady_clock::now();
    if (!now_or_never && now - last_hand_over < k_hand_over_every) return;
    std::vector<std::pair<std::size_t, Result<std::vector<Entry>>>> batch;
    {
      const std::lock_guard lock{mutex};
      batch.swap(pending);
    }
    if (batch.empty()) return;
    on_answers(std::move(batch));
    last_hand_over = now;
  };
  const auto answers_waiting = [&] {
    const std::lock_guard lock{mutex};
    return !pending.empty();
  };

  // One lane's transfers from start to end, on the thread that runs it; `caller` is the thread
  // that called run(), which hands the answers over and waits for the other lanes.
  const auto work = [&](std::size_t l, bool caller) {
    Lane& lane = *lanes[l];
    if (caller) caller_lane = l;
    std::deque<std::size_t> ready_hosts;  // hosts with a transfer waiting and a per-host slot
    for (const std::size_t h : lane_hosts[l]) {
      hosts[h].ready = true;
      ready_hosts.push_back(h);
    }
    std::size_t mine_in_flight = 0;
    std::size_t waiting = lane_transfers[l].size();

    // A finished transfer's outcome, for the calling thread (fetch_each) or kept in order
    // (fetch_all); its handle goes back to `idle` for the lane's next request.
    const auto finish = [&](std::size_t index) {
      Transfer& transfer = transfers[index];
      auto outcome = outcome_of(transfer, timeout);
      transfer.body = std::string{};
      if (EasyPtr easy = released(transfer); easy && lane.idle.size() < idle_per_lane) {
        lane.idle.push_back(std::move(easy));
      }
      if (!on_answers) {
        results[index] = std::move(outcome);
        return;
      }
      // The calling thread looks at least every k_hand_over_every while other lanes run.
      const std::lock_guard lock{mutex};
      pending.emplace_back(index, std::move(outcome));
    };
    // A lane that found no free slot (all held, some by other lanes) tries again at least every
    // k_hand_over_every: no signal per freed slot between the lanes.
    bool starved = false;
    const auto make_ready = [&](std::size_t h) {
      Host& host = hosts[h];
      if (!host.ready && host.next < host.waiting.size() && host.in_flight < k_max_per_host) {
        host.ready = true;
        ready_hosts.push_back(h);
      }
    };
    // Starts waiting transfers while slots are free, hosts taken in turn: one host with
    // thousands of sites cannot hold every slot while others wait. A transfer started late gets
    // what is left of the poll's timeout; when nothing is left, the rest are not started (they
    // time out).
    const auto admit = [&] {
      while (!ready_hosts.empty()) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            started + timeout - std::chrono::steady_clock::now());
        if (left.count() <= 0) {
          ready_hosts.clear();
          waiting = 0;
          break;
        }
        if (in_flight.fetch_add(1) >= max_in_flight) {
          in_flight.fetch_sub(1);
          starved = true;
          return;
        }
        const std::size_t h = ready_hosts.front();
        ready_hosts.pop_front();
        Host& host = hosts[h];
        host.ready = false;
        if (host.next >= host.waiting.size() || host.in_flight >= k_max_per_host) {
          in_flight.fetch_sub(1);
          continue;
        }
        const std::size_t i = host.waiting[host.next++];
        --waiting;
        Transfer& transfer = transfers[i];
        EasyPtr easy;
        if (!lane.idle.empty()) {
          easy = std::move(lane.idle.back());
          lane.idle.pop_back();
        }
        std::string setup_error =
            shard_of[i] != nullptr ? set_up(transfer, core::Duration{left.count()}, std::move(easy))
                                   : "could not create a libcurl multi handle";
        if (setup_error.empty() &&
            curl_multi_add_handle(shard_of[i]->multi.get(), transfer.easy.get()) != CURLM_OK) {
          setup_error = "could not start the request";
        }
        if (!setup_error.empty()) {
          transfer.done = true;
          transfer.code = CURLE_FAILED_INIT;
          std::snprintf(transfer.error_buffer.data(), transfer.error_buffer.size(), "%s",
                        setup_error.c_str());
          finish(i);
          in_flight.fetch_sub(1);
        } else {
          ++host.in_flight;
          ++mine_in_flight;
        }
        make_ready(h);
      }
      starved = false;
    };
    const auto collect = [&](Shard& shard) {
      int queued = 0;
      while (CURLMsg* message = curl_multi_info_read(shard.multi.get(), &queued)) {
        if (message->msg != CURLMSG_DONE) continue;
        void* owner = nullptr;
        curl_easy_getinfo(message->easy_handle, CURLINFO_PRIVATE, &owner);
        auto* transfer = static_cast<Transfer*>(owner);
        transfer->done = true;
        transfer->code = message->data.result;
        const auto index = static_cast<std::size_t>(transfer - transfers.data());
        // Removed now: its connection goes back to the cache for the next poll.
        curl_multi_remove_handle(shard.multi.get(), transfer->easy.get());
        // Handed over as soon as it is in (SPEC §3: no patient waits for another's Nightscout).
        finish(index);
        --mine_in_flight;
        in_flight.fetch_sub(1);
        --hosts[host_of[index]].in_flight;
        make_ready(host_of[index]);
      }
    };
    const auto mine = [&](const std::unique_ptr<Shard>& shard) {
      return shard && shard->lane == l;
    };

    admit();
    if (caller) hand_over(true);  // failed set-ups are answers too
    for (auto& shard : shards) {
      if (!mine(shard) || mine_in_flight == 0) continue;
      curl_multi_socket_action(shard->multi.get(), CURL_SOCKET_TIMEOUT, 0, &shard->running);
      collect(*shard);
    }
    admit();
    if (caller) hand_over(false);
    std::vector<epoll_event> events(1024);
    const auto busy = [&] {
      return mine_in_flight > 0 || waiting > 0 || (caller && others_running.load() > 0);
    };
    while (busy() && !stop.load() && std::chrono::steady_clock::now() < deadline) {
      const auto now = std::chrono::steady_clock::now();
      auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now);
      for (const auto& shard : shards) {
        if (!mine(shard) || !shard->timer) continue;
        wait = std::min(wait, std::chrono::ceil<std::chrono::milliseconds>(std::max(
                                  *shard->timer - now, std::chrono::steady_clock::duration{0})));
      }
      // Answers held back to travel together, or coming from other lanes, wait no longer than
      // k_hand_over_every; so does a lane waiting for a free slot.
      if (starved || (caller && on_answers && (others_running.load() > 0 || answers_waiting()))) {
        wait = std::min(wait, k_hand_over_every);
      }
      const int wait_ms =
          static_cast<int>(std::clamp<std::int64_t>(wait.count(), 0, k_poll_slice_ms));
      const int ready =
          epoll_wait(lane.epoll_fd, events.data(), static_cast<int>(events.size()), wait_ms);
      if (ready < 0 && errno != EINTR) {
        // Should not happen; avoid a hot loop and let libcurl's timeouts move things on.
        std::this_thread::sleep_for(std::chrono::milliseconds{10});
        for (auto& shard : shards) {
          if (mine(shard)) shard->timer = std::chrono::steady_clock::now();
        }
      }
      for (int i = 0; i < ready; ++i) {
        const epoll_event& event = events[static_cast<std::size_t>(i)];
        if (event.data.u64 == k_wake) {
          lane.drain();
          continue;
        }
        const auto index = static_cast<std::size_t>(event.data.u64 >> 32);
        const auto socket = static_cast<curl_socket_t>(event.data.u64 & 0xffffffffu);
        if (index >= shards.size() || !mine(shards[index])) continue;
        const int mask = ((event.events & EPOLLIN) != 0 ? CURL_CSELECT_IN : 0) |
                         ((event.events & EPOLLOUT) != 0 ? CURL_CSELECT_OUT : 0) |
                         ((event.events & (EPOLLERR | EPOLLHUP)) != 0 ? CURL_CSELECT_ERR : 0);
        Shard& shard = *shards[index];
        curl_multi_socket_action(shard.multi.get(), socket, mask, &shard.running);
        collect(shard);
      }
      const auto after = std::chrono::steady_clock::now();
      for (auto& shard : shards) {
        if (!mine(shard) || !shard->timer || after < *shard->timer) continue;
        curl_multi_socket_action(shard->multi.get(), CURL_SOCKET_TIMEOUT, 0, &shard->running);
        collect(*shard);
      }
      admit();
      if (caller) hand_over(false);
    }

    // Whatever of the lane's has not finished by now timed out (or was never started: no time was
    // left).
    for (const std::size_t i : lane_transfers[l]) {
      Transfer& transfer = transfers[i];
      if (transfer.done) continue;  // finished, and answered by finish()
      if (transfer.easy) {
        curl_multi_remove_handle(shard_of[i]->multi.get(), transfer.easy.get());
        in_flight.fetch_sub(1);
      }
      auto outcome = outcome_of(transfer, timeout);
      transfer.easy.reset();  // stopped mid-transfer: not reused
      if (on_answers) {
        const std::lock_guard lock{mutex};
        pending.emplace_back(i, std::move(outcome));
      } else {
        results[i] = std::move(outcome);
      }
    }
  };

  // The other lanes with work run on threads of their own; should a thread not start, the
  // calling thread runs that lane after its own (late, but every transfer still gets its
  // outcome).
  std::vector<std::size_t> inline_lanes;
  struct {
    std::mutex mutex;
    std::exception_ptr error;
  } failure;
  std::vector<std::thread> threads;
  struct Joiner {
    std::vector<std::thread>& threads;
    std::atomic<bool>& stop;
    const std::vector<std::unique_ptr<Lane>>& lanes;
    ~Joiner() {
      bool joining = false;
      for (const auto& thread : threads) joining = joining || thread.joinable();
      if (!joining) return;
      // Only when an exception (from on_answers) leaves run() early: the lanes stop at once.
      stop = true;
      for (const auto& lane : lanes) lane->wake();
      for (auto& thread : threads) {
        if (thread.joinable()) thread.join();
      }
    }
  } joiner{threads, stop, lanes};
  for (std::size_t l = 1; l < lane_count; ++l) {
    if (lane_transfers[l].empty()) continue;
    ++others_running;
    try {
      threads.emplace_back([this, &work, &others_running, &caller_lane, &failure, l] {
        try {
          work(l, false);
        } catch (...) {
          // Handed to the calling thread, which raises it once every lane has stopped.
          const std::lock_guard lock{failure.mutex};
          if (!failure.error) failure.error = std::current_exception();
        }
        --others_running;
        lanes[caller_lane.load()]->wake();
      });
    } catch (const std::system_error&) {
      --others_running;
      inline_lanes.push_back(l);
    }
  }
  work(0, true);
  for (const std::size_t l : inline_lanes) work(l, true);
  for (auto& thread : threads) thread.join();
  if (failure.error) std::rethrow_exception(failure.error);
  hand_over(true);
  return results;
}

Poller::Poller(std::size_t max_in_flight, unsigned lanes)
    : impl_(std::make_unique<Impl>(lanes == 0 ? default_lanes() : lanes)) {
  impl_->max_in_flight = std::max<std::size_t>(1, max_in_flight);
}
Poller::~Poller() = default;

void Poller::keep_connections(bool keep) { impl_->keep_alive = keep; }

void Poller::fetch_each(const std::vector<EntriesRequest>& requests, core::Duration timeout,
                        const AnswersCallback& on_answers) {
  std::vector<Transfer> transfers(requests.size());
  for (std::size_t i = 0; i < requests.size(); ++i) {
    const EntriesRequest& request = requests[i];
    transfers[i].site = request.site;
    transfers[i].url = entries_url(*request.site, request.after);
    transfers[i].shown_url = redacted_entries_url(*request.site, request.after);
    if (request.after) transfers[i].if_modified_since = http_date(*request.after);
  }
  impl_->run(transfers, timeout, on_answers);
}

namespace {

std::vector<Transfer> full_transfers(const std::vector<core::NightscoutSite>& sites) {
  std::vector<Transfer> transfers(sites.size());
  for (std::size_t i = 0; i < sites.size(); ++i) {
    transfers[i].site = &sites[i];
    transfers[i].url = entries_url(sites[i]);
    transfers[i].shown_url = redacted_entries_url(sites[i]);
  }
  return transfers;
}

}  // namespace

void fetch_each(const std::vector<core::NightscoutSite>& sites, core::Duration timeout,
                const AnswersCallback& on_answers) {
  auto transfers = full_transfers(sites);
  Poller::Impl impl;
  impl.keep_alive = false;  // one poll: nothing to keep them for
  impl.run(transfers, timeout, on_answers);
}

std::vector<Result<std::vector<Entry>>> fetch_all(const std::vector<core::NightscoutSite>& sites,
                                                  core::Duration timeout) {
  auto transfers = full_transfers(sites);
  Poller::Impl impl;
  impl.keep_alive = false;  // one poll: nothing to keep them for
  return impl.run(transfers, timeout, nullptr);
}

std::vector<EntriesRequest> RecentEntries::requests(const std::vector<core::NightscoutSite>& sites,
                                                    core::TimePoint now) {
  held_.resize(sites.size());
  std::vector<EntriesRequest> out(sites.size());
  for (std::size_t i = 0; i < sites.size(); ++i) {
    const core::NightscoutSite& site = sites[i];
    Held& held = held_[i];
    if (!(held.site == site)) held = Held{site, {}, false, false, false, 0};
    out[i].site = &site;
    held.incremental = false;
    if (!held.valid || held.since_full >= k_full_every) continue;
    std::optional<core::TimePoint> newest;
    for (const auto& entry : held.entries) {
      if (entry.date <= now + core::k_max_future_skew && (!newest || entry.date > *newest)) {
        newest = entry.date;
      }
    }
    // Late data are read in full: when a reading is overdue, what a full request answers (a
    // backfill after a gap, a server that does not filter by date) matters most.
    if (!newest || *newest < now - RecentEntries::k_incremental_while) continue;
    out[i].after = newest;
    held.incremental = true;
  }
  return out;
}

core::Result<std::vector<Entry>> RecentEntries::fold(std::size_t i,
                                                     core::Result<std::vector<Entry>> answer) {
  if (i >= held_.size()) return answer;
  Held& held = held_[i];
  if (!answer) {
    held.valid = false;
    held.entries.clear();
    return answer;
  }
  const auto newest_first = [](const Entry& a, const Entry& b) { return a.date > b.date; };
  held.valid = true;
  if (!held.incremental) {
    // A full answer goes on as it came. The first one starts each site at its own point of the
    // cycle, so that the full requests of ten thousand sites are spread over k_full_every polls.
    held.since_full = held.ever ? 0 : static_cast<unsigned>(i % k_full_every);
    held.ever = true;
    held.entries = *answer;
    std::stable_sort(held.entries.begin(), held.entries.end(), newest_first);
    return answer;
  }
  std::vector<Entry> entries = std::move(*answer);
  entries.insert(entries.end(), held.entries.begin(), held.entries.end());
  ++held.since_full;
  std::stable_sort(entries.begin(), entries.end(), newest_first);
  entries.erase(std::unique(entries.begin(), entries.end(),
                            [](const Entry& a, const Entry& b) { return a.date == b.date; }),
                entries.end());
  if (entries.size() > static_cast<std::size_t>(k_entries_count)) {
    entries.resize(static_cast<std::size_t>(k_entries_count));
  }
  held.entries = entries;
  return entries;
}

Result<VerifyAuth> verify_auth(const core::NightscoutSite& site, core::Duration timeout) {
  global_init_once();
  Transfer transfer;
  transfer.site = &site;
  transfer.url = base_url(site) + "/api/v1/verifyauth";
  transfer.shown_url = without_userinfo(base_url(site)) + "/api/v1/verifyauth";
  if (!site.token.empty()) {
    transfer.url += "?token=" + percent_encode(site.token);
    transfer.shown_url += "?token=***";
  }
  if (const std::string problem = set_up(transfer, timeout); !problem.empty()) {
    return core::fail(ErrorKind::internal, problem);
  }
  transfer.code = curl_easy_perform(transfer.easy.get());
  transfer.done = true;
  const std::string who = "Nightscout at " + transfer.shown_url;
  if (transfer.code != CURLE_OK) {
    std::string detail = transfer.error_buffer.data();
    if (detail.empty()) detail = curl_easy_strerror(transfer.code);
    return core::fail(transfer.code == CURLE_OPERATION_TIMEDOUT ? ErrorKind::timeout
                                                                : ErrorKind::network,
                      scrubbed(who + ": " + detail, site));
  }
  long status = 0;
  curl_easy_getinfo(transfer.easy.get(), CURLINFO_RESPONSE_CODE, &status);
  if (status == 401 || status == 403) {
    return VerifyAuth{false, false, "UNAUTHORIZED"};
  }
  if (status < 200 || status >= 300) {
    return core::fail(ErrorKind::http_status,
                      scrubbed(who + " answered HTTP " + std::to_string(status), site));
  }
  const json doc = json::parse(transfer.body, nullptr, false);
  if (!doc.is_object()) {
    return core::fail(ErrorKind::not_json, scrubbed(who + " did not answer JSON", site));
  }
  // Nightscout 15 wraps the answer in sendJSONStatus: {"status":200,"message":{canRead, canWrite,
  // isAdmin, message:"OK"|"UNAUTHORIZED", rolefound, permissions}} (lib/api/verifyauth.js,
  // lib/middleware/send-json-status.js); the inner object is taken when present.
  const json& body = doc.contains("message") && doc["message"].is_object() ? doc["message"] : doc;
  VerifyAuth result;
  result.can_read = body.value("canRead", false);
  result.is_admin = body.value("isAdmin", false);
  result.message = body.contains("message") && body["message"].is_string()
                       ? body["message"].get<std::string>()
                       : "";
  return result;
}

Result<std::vector<Entry>> fetch_history(const core::NightscoutSite& site, core::TimePoint from,
                                         core::TimePoint to, core::Duration timeout) {
  std::vector<Entry> all;
  core::TimePoint upper = to;
  Poller::Impl poller;  // one connection for every page
  for (int page = 0; page < k_history_max_pages && upper >= from; ++page) {
    const std::string query = "/api/v1/entries/sgv.json?find[date][$gte]=" +
                              std::to_string(from.time_since_epoch().count()) +
                              "&find[date][$lte]=" +
                              std::to_string(upper.time_since_epoch().count()) +
                              "&count=" + std::to_string(k_history_page);
    std::string url = base_url(site) + query;
    std::string shown = without_userinfo(base_url(site)) + query;
    if (!site.token.empty()) {
      url += "&token=" + percent_encode(site.token);
      shown += "&token=***";
    }
    std::vector<Transfer> one(1);
    one[0].site = &site;
    one[0].url = std::move(url);
    one[0].shown_url = std::move(shown);
    auto fetched = poller.run(one, timeout, nullptr);
    if (!fetched[0]) return tl::unexpected(fetched[0].error());
    auto& entries = *fetched[0];
    if (entries.empty()) break;
    core::TimePoint oldest = entries.front().date;
    for (auto& e : entries) {
      oldest = std::min(oldest, e.date);
      all.push_back(std::move(e));
    }
    if (static_cast<int>(entries.size()) < k_history_page) break;
    upper = oldest - core::Duration{1};
  }
  std::stable_sort(all.begin(), all.end(),
                   [](const Entry& a, const Entry& b) { return a.date > b.date; });
  all.erase(std::unique(all.begin(), all.end()), all.end());
  return all;
}

}  // namespace scout::adapters
