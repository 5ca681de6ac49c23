#pragma once
// Pieces shared by the in-process provider fakes (fake_vonage.hpp, fake_twilio.hpp): their own
// small crypto over OpenSSL libcrypto (deliberately not scout's src/adapters/crypto.cpp, so the
// fakes check scout independently), URL and form helpers, a minimal XML parser for TwiML, a
// recorder with bounded waits, an HTTP server base that routes every method to one handler, and
// FakeProvider, the scaffolding both provider fakes are built on (scripts, fault knobs, the log,
// webhook delivery with retries, call-driving threads).
//
// Wire facts are from /work/shared/protocols.md (§2 Vonage Voice, §3 Messages, §4 Twilio,
// §5.2/§5.3 what a fake must check). Loopback only.

#include <httplib.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <regex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace scout::test::fake {

// ----------------------------------------------------------------------------------------------
// Encoding and hashing

inline std::string base64(std::string_view bytes) {
  static constexpr char k_alphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  std::size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    const auto n = (std::uint32_t(std::uint8_t(bytes[i])) << 16) |
                   (std::uint32_t(std::uint8_t(bytes[i + 1])) << 8) | std::uint8_t(bytes[i + 2]);
    out += k_alphabet[(n >> 18) & 63];
    out += k_alphabet[(n >> 12) & 63];
    out += k_alphabet[(n >> 6) & 63];
    out += k_alphabet[n & 63];
  }
  const auto rest = bytes.size() - i;
  if (rest == 1) {
    const auto n = std::uint32_t(std::uint8_t(bytes[i])) << 16;
    out += k_alphabet[(n >> 18) & 63];
    out += k_alphabet[(n >> 12) & 63];
    out += "==";
  } else if (rest == 2) {
    const auto n = (std::uint32_t(std::uint8_t(bytes[i])) << 16) |
                   (std::uint32_t(std::uint8_t(bytes[i + 1])) << 8);
    out += k_alphabet[(n >> 18) & 63];
    out += k_alphabet[(n >> 12) & 63];
    out += k_alphabet[(n >> 6) & 63];
    out += '=';
  }
  return out;
}

inline std::string base64url(std::string_view bytes) {
  std::string out = base64(bytes);
  while (!out.empty() && out.back() == '=') out.pop_back();
  for (auto& c : out) {
    if (c == '+') c = '-';
    if (c == '/') c = '_';
  }
  return out;
}

// Decodes standard base64 (with optional padding) or base64url (`url` = true, no padding
// required). nullopt on any character outside the alphabet or an impossible length.
inline std::optional<std::string> base64_decode(std::string_view text, bool url) {
  while (!text.empty() && text.back() == '=') text.remove_suffix(1);
  if (text.size() % 4 == 1) return std::nullopt;
  std::string out;
  std::uint32_t acc = 0;
  int bits = 0;
  for (const char c : text) {
    int v = -1;
    if (c >= 'A' && c <= 'Z') v = c - 'A';
    else if (c >= 'a' && c <= 'z') v = c - 'a' + 26;
    else if (c >= '0' && c <= '9') v = c - '0' + 52;
    else if (c == (url ? '-' : '+')) v = 62;
    else if (c == (url ? '_' : '/')) v = 63;
    if (v < 0) return std::nullopt;
    acc = (acc << 6) | std::uint32_t(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += char((acc >> bits) & 0xFF);
    }
  }
  return out;
}

inline std::string to_hex(std::string_view bytes) {
  static constexpr char k_digits[] = "0123456789abcdef";
  std::string out;
  for (const char c : bytes) {
    out += k_digits[(std::uint8_t(c) >> 4) & 15];
    out += k_digits[std::uint8_t(c) & 15];
  }
  return out;
}

inline std::string sha256_hex(std::string_view bytes) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
  unsigned int len = 0;
  EVP_Digest(bytes.data(), bytes.size(), md.data(), &len, EVP_sha256(), nullptr);
  return to_hex(std::string_view(reinterpret_cast<const char*>(md.data()), len));
}

// Raw HMAC with `md` (EVP_sha1(), EVP_sha256()).
inline std::string hmac(const EVP_MD* md, std::string_view key, std::string_view message) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> out{};
  unsigned int len = 0;
  HMAC(md, key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(message.data()), message.size(), out.data(), &len);
  return std::string(reinterpret_cast<const char*>(out.data()), len);
}

inline bool constant_time_equal(std::string_view a, std::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

inline std::string random_hex(std::size_t bytes) {
  std::string raw(bytes, '\0');
  RAND_bytes(reinterpret_cast<unsigned char*>(raw.data()), static_cast<int>(raw.size()));
  return to_hex(raw);
}

// RFC 4122 version-4 UUID.
inline std::string uuid4() {
  std::string h = random_hex(16);
  h[12] = '4';
  h[16] = "89ab"[std::stoi(h.substr(16, 1), nullptr, 16) & 3];
  return h.substr(0, 8) + "-" + h.substr(8, 4) + "-" + h.substr(12, 4) + "-" + h.substr(16, 4) +
         "-" + h.substr(20);
}

// Number of Unicode code points in UTF-8 text (bytes that are not continuation bytes).
inline std::size_t utf8_length(std::string_view text) {
  std::size_t n = 0;
  for (const char c : text) {
    if ((std::uint8_t(c) & 0xC0) != 0x80) ++n;
  }
  return n;
}

// The whole content of a file ("" when it cannot be read).
inline std::string read_text(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return "";
  std::string out;
  char buf[4096];
  std::size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
  std::fclose(f);
  return out;
}

// ----------------------------------------------------------------------------------------------
// Keys and JWTs

struct PkeyDeleter {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyDeleter>;

inline Pkey read_pem_key(std::string_view pem, bool is_private) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  if (bio == nullptr) return nullptr;
  EVP_PKEY* key = is_private ? PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr)
                             : PEM_read_bio_PUBKEY(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  return Pkey{key};
}

// A fresh RSA key pair as PEM {private (PKCS#8), public (SubjectPublicKeyInfo)}, e.g. for a
// "wrong key" test.
inline std::pair<std::string, std::string> generate_rsa_pem(unsigned bits = 2048) {
  Pkey key{EVP_RSA_gen(bits)};
  auto to_string = [](BIO* bio) {
    char* data = nullptr;
    const long len = BIO_get_mem_data(bio, &data);
    std::string s(data, static_cast<std::size_t>(len));
    BIO_free(bio);
    return s;
  };
  BIO* priv = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(priv, key.get(), nullptr, nullptr, 0, nullptr, nullptr);
  BIO* pub = BIO_new(BIO_s_mem());
  PEM_write_bio_PUBKEY(pub, key.get());
  return {to_string(priv), to_string(pub)};
}

// "b64url(header).b64url(payload).b64url(RS256 signature)", the JSON texts used byte for byte.
// "" when the key does not load.
inline std::string sign_rs256(std::string_view header_json, std::string_view payload_json,
                              std::string_view private_pem) {
  const Pkey key = read_pem_key(private_pem, true);
  if (!key) return "";
  const std::string input = base64url(header_json) + "." + base64url(payload_json);
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  std::size_t len = 0;
  std::string sig;
  if (EVP_DigestSignInit(ctx, nullptr, EVP_sha256(), nullptr, key.get()) == 1 &&
      EVP_DigestSign(ctx, nullptr, &len, reinterpret_cast<const unsigned char*>(input.data()),
                     input.size()) == 1) {
    sig.resize(len);
    if (EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(sig.data()), &len,
                       reinterpret_cast<const unsigned char*>(input.data()), input.size()) != 1) {
      len = 0;
    }
    sig.resize(len);
  }
  EVP_MD_CTX_free(ctx);
  if (sig.empty()) return "";
  return input + "." + base64url(sig);
}

// HS256 JWT over the given JSON texts, byte for byte (protocols.md §2.6).
inline std::string sign_hs256(std::string_view header_json, std::string_view payload_json,
                              std::string_view secret) {
  const std::string input = base64url(header_json) + "." + base64url(payload_json);
  return input + "." + base64url(hmac(EVP_sha256(), secret, input));
}

// A JWT split and decoded, before any signature check.
struct DecodedJwt {
  std::string signing_input;  // "header.payload" as received
  std::string signature;      // raw bytes
  nlohmann::json header;
  nlohmann::json claims;
};

inline std::optional<DecodedJwt> decode_jwt(std::string_view token) {
  const auto dot1 = token.find('.');
  if (dot1 == std::string_view::npos) return std::nullopt;
  const auto dot2 = token.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos) {
    return std::nullopt;
  }
  const auto header = base64_decode(token.substr(0, dot1), true);
  const auto claims = base64_decode(token.substr(dot1 + 1, dot2 - dot1 - 1), true);
  const auto sig = base64_decode(token.substr(dot2 + 1), true);
  if (!header || !claims || !sig) return std::nullopt;
  DecodedJwt jwt;
  jwt.signing_input = std::string(token.substr(0, dot2));
  jwt.signature = *sig;
  jwt.header = nlohmann::json::parse(*header, nullptr, false);
  jwt.claims = nlohmann::json::parse(*claims, nullptr, false);
  if (!jwt.header.is_object() || !jwt.claims.is_object()) return std::nullopt;
  return jwt;
}

inline bool verify_rs256_signature(const DecodedJwt& jwt, std::string_view public_pem) {
  const Pkey key = read_pem_key(public_pem, false);
  if (!key) return false;
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  const bool ok =
      EVP_DigestVerifyInit(ctx, nullptr, EVP_sha256(), nullptr, key.get()) == 1 &&
      EVP_DigestVerify(ctx, reinterpret_cast<const unsigned char*>(jwt.signature.data()),
                       jwt.signature.size(),
                       reinterpret_cast<const unsigned char*>(jwt.signing_input.data()),
                       jwt.signing_input.size()) == 1;
  EVP_MD_CTX_free(ctx);
  return ok;
}

inline bool verify_hs256_signature(const DecodedJwt& jwt, std::string_view secret) {
  return constant_time_equal(hmac(EVP_sha256(), secret, jwt.signing_input), jwt.signature);
}

// ----------------------------------------------------------------------------------------------
// URLs and forms

inline std::string percent_encode(std::string_view text) {
  static constexpr char k_digits[] = "0123456789ABCDEF";
  std::string out;
  for (const char c : text) {
    const auto u = std::uint8_t(c);
    if (std::isalnum(u) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += c;
    } else {
      out += '%';
      out += k_digits[u >> 4];
      out += k_digits[u & 15];
    }
  }
  return out;
}

// Decodes %XX and, for forms, '+' as space.
inline std::string percent_decode(std::string_view text, bool plus_is_space = true) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '+' && plus_is_space) {
      out += ' ';
    } else if (c == '%' && i + 2 < text.size() && std::isxdigit(std::uint8_t(text[i + 1])) && std::isxdigit(std::uint8_t(text[i + 2]))) {
      out += char(std::stoi(std::string(text.substr(i + 1, 2)), nullptr, 16));
      i += 2;
    } else {
      out += c;
    }
  }
  return out;
}

using FormParams = std::vector<std::pair<std::string, std::string>>;

// application/x-www-form-urlencoded (also a URL query), in order, repeated keys kept.
inline FormParams parse_form(std::string_view body) {
  FormParams params;
  while (!body.empty()) {
    const auto amp = body.find('&');
    const auto part = body.substr(0, amp);
    if (!part.empty()) {
      const auto eq = part.find('=');
      params.emplace_back(percent_decode(part.substr(0, eq)),
                          eq == std::string_view::npos ? "" : percent_decode(part.substr(eq + 1)));
    }
    if (amp == std::string_view::npos) break;
    body.remove_prefix(amp + 1);
  }
  return params;
}

inline std::string encode_form(const FormParams& params) {
  std::string out;
  for (const auto& [k, v] : params) {
    if (!out.empty()) out += '&';
    out += percent_encode(k) + "=" + percent_encode(v);
  }
  return out;
}

// Every value of `key`, in order.
inline std::vector<std::string> form_values(const FormParams& params, std::string_view key) {
  std::vector<std::string> values;
  for (const auto& [k, v] : params) {
    if (k == key) values.push_back(v);
  }
  return values;
}

// An absolute http(s) URL split for httplib::Client.
struct Url {
  std::string scheme;  // "http" | "https"
  std::string host;
  int port = 0;
  std::string target;  // path + optional "?query", at least "/"
  std::string origin() const { return scheme + "://" + host + ":" + std::to_string(port); }
};

inline std::optional<Url> parse_url(std::string_view text) {
  static const std::regex k_url{R"(^(https?)://([A-Za-z0-9.\-]+|\[[0-9a-fA-F:]+\])(?::(\d{1,5}))?([/?][^\s#]*)?$)"};
  std::match_results<std::string_view::const_iterator> m;
  if (!std::regex_match(text.begin(), text.end(), m, k_url)) return std::nullopt;
  Url url;
  url.scheme = m[1].str();
  url.host = m[2].str();
  url.port = m[3].matched ? std::stoi(m[3].str()) : (url.scheme == "https" ? 443 : 80);
  if (url.port < 1 || url.port > 65535) return std::nullopt;
  url.target = m[4].matched ? m[4].str() : "/";
  if (url.target.front() == '?') url.target.insert(0, "/");
  return url;
}

inline bool is_absolute_url(std::string_view text) { return parse_url(text).has_value(); }

// Seconds since the epoch, now.
inline std::int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// "2020-01-01T12:00:00.000Z" (protocols.md §2.5).
inline std::string iso8601_now() {
  const auto now = std::chrono::system_clock::now();
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
  const std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[40];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  char out[48];
  std::snprintf(out, sizeof out, "%s.%03dZ", buf, static_cast<int>(ms % 1000));
  return out;
}

// "Tue, 31 Aug 2010 20:36:28 +0000" (protocols.md §4.1).
inline std::string rfc2822(std::chrono::system_clock::time_point at) {
  const std::time_t secs = std::chrono::system_clock::to_time_t(at);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[48];
  std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S +0000", &tm);
  return buf;
}

// "2026-12-01T13:40:05Z" / "2026-12-01T13:40:05.000Z" (Vonage's times, protocols.md §2).
inline std::optional<std::chrono::system_clock::time_point> parse_iso8601_utc(const std::string& text) {
  static const std::regex k_iso{R"(^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d{1,3})?Z$)"};
  std::smatch m;
  if (!std::regex_match(text, m, k_iso)) return std::nullopt;
  std::tm tm{};
  tm.tm_year = std::stoi(m[1]) - 1900;
  tm.tm_mon = std::stoi(m[2]) - 1;
  tm.tm_mday = std::stoi(m[3]);
  tm.tm_hour = std::stoi(m[4]);
  tm.tm_min = std::stoi(m[5]);
  tm.tm_sec = std::stoi(m[6]);
  if (tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 || tm.tm_min > 59 ||
      tm.tm_sec > 60) {
    return std::nullopt;
  }
  return std::chrono::system_clock::from_time_t(timegm(&tm));
}

inline std::string iso8601_utc(std::chrono::system_clock::time_point at) {
  const std::time_t secs = std::chrono::system_clock::to_time_t(at);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S.000Z", &tm);
  return buf;
}

inline std::string rfc2822_now() {
  const std::time_t secs = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[48];
  std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S +0000", &tm);
  return buf;
}

// The credentials of an "Authorization: Basic …" header value; nullopt when not Basic.
inline std::optional<std::pair<std::string, std::string>> parse_basic(std::string_view header) {
  if (header.substr(0, 6) != "Basic ") return std::nullopt;
  const auto decoded = base64_decode(header.substr(6), false);
  if (!decoded) return std::nullopt;
  const auto colon = decoded->find(':');
  if (colon == std::string::npos) return std::nullopt;
  return std::make_pair(decoded->substr(0, colon), decoded->substr(colon + 1));
}

inline bool media_type_is(const std::string& content_type, std::string_view type) {
  const auto semi = content_type.find(';');
  std::string base = content_type.substr(0, semi);
  while (!base.empty() && base.back() == ' ') base.pop_back();
  for (auto& c : base) c = static_cast<char>(std::tolower(std::uint8_t(c)));
  return base == type;
}

// ----------------------------------------------------------------------------------------------
// Minimal XML (enough to check TwiML is well-formed and to walk it)

struct XmlElement {
  std::string name;
  std::vector<std::pair<std::string, std::string>> attributes;
  std::vector<XmlElement> children;
  std::string text;  // concatenated character data directly inside this element

  const std::string* attribute(std::string_view key) const {
    for (const auto& [k, v] : attributes) {
      if (k == key) return &v;
    }
    return nullptr;
  }
};

class XmlParser {
 public:
  // Parses a whole document: optional <?xml …?> prolog, comments, exactly one root element.
  // nullopt with `error` set when the text is not well-formed.
  static std::optional<XmlElement> parse(std::string_view text, std::string& error) {
    XmlParser p{text};
    p.skip_misc();
    if (p.at_end() || p.peek() != '<') {
      error = "no root element";
      return std::nullopt;
    }
    auto root = p.element();
    if (!root) {
      error = p.m_error;
      return std::nullopt;
    }
    p.skip_misc();
    if (!p.at_end()) {
      error = "content after the root element";
      return std::nullopt;
    }
    return root;
  }

 private:
  explicit XmlParser(std::string_view text) : m_text(text) {}

  bool at_end() const { return m_pos >= m_text.size(); }
  char peek() const { return m_text[m_pos]; }
  bool starts(std::string_view s) const { return m_text.substr(m_pos, s.size()) == s; }
  void skip_space() {
    while (!at_end() && std::isspace(std::uint8_t(peek()))) ++m_pos;
  }
  bool fail(std::string message) {
    if (m_error.empty()) m_error = std::move(message) + " at offset " + std::to_string(m_pos);
    return false;
  }

  void skip_misc() {
    for (;;) {
      skip_space();
      if (starts("<?")) {
        const auto end = m_text.find("?>", m_pos);
        if (end == std::string_view::npos) return;
        m_pos = end + 2;
      } else if (starts("<!--")) {
        const auto end = m_text.find("-->", m_pos);
        if (end == std::string_view::npos) return;
        m_pos = end + 3;
      } else {
        return;
      }
    }
  }

  static bool name_char(char c, bool first) {
    const auto u = std::uint8_t(c);
    if (std::isalpha(u) || c == '_' || c == ':' || u >= 0x80) return true;
    return !first && (std::isdigit(u) || c == '-' || c == '.');
  }

  std::string name() {
    const auto start = m_pos;
    while (!at_end() && name_char(peek(), m_pos == start)) ++m_pos;
    return std::string(m_text.substr(start, m_pos - start));
  }

  // Appends the decoded character data up to `stop` (not consumed); false on a bad entity or
  // a stray '<' inside an attribute value.
  bool char_data(std::string& out, char stop) {
    while (!at_end() && peek() != stop) {
      const char c = peek();
      if (c == '<') return stop == '<' || fail("'<' in an attribute value");
      if (c == '&') {
        const auto semi = m_text.find(';', m_pos);
        if (semi == std::string_view::npos || semi - m_pos > 10) return fail("bad entity");
        const auto entity = m_text.substr(m_pos + 1, semi - m_pos - 1);
        if (entity == "amp") out += '&';
        else if (entity == "lt") out += '<';
        else if (entity == "gt") out += '>';
        else if (entity == "quot") out += '"';
        else if (entity == "apos") out += '\'';
        else if (entity.size() > 1 && entity[0] == '#') {
          const bool hex = entity[1] == 'x';
          const auto digits = std::string(entity.substr(hex ? 2 : 1));
          if (digits.empty() || digits.find_first_not_of(hex ? "0123456789abcdefABCDEF" : "0123456789") != std::string::npos) {
            return fail("bad character reference");
          }
          const long cp = std::stol(digits, nullptr, hex ? 16 : 10);
          if (cp < 0x80) {
            out += char(cp);
          } else {
            out += '?';  // not needed for TwiML checks
          }
        } else {
          return fail("unknown entity &" + std::string(entity) + ";");
        }
        m_pos = semi + 1;
      } else {
        out += c;
        ++m_pos;
      }
    }
    return true;
  }

  std::optional<XmlElement> element() {
    ++m_pos;  // '<'
    XmlElement el;
    el.name = name();
    if (el.name.empty()) {
      fail("element name expected");
      return std::nullopt;
    }
    for (;;) {
      const auto before = m_pos;
      skip_space();
      if (at_end()) {
        fail("unterminated start tag");
        return std::nullopt;
      }
      if (starts("/>")) {
        m_pos += 2;
        return el;
      }
      if (peek() == '>') {
        ++m_pos;
        break;
      }
      if (m_pos == before) {
        fail("space expected before an attribute");
        return std::nullopt;
      }
      std::string key = name();
      if (key.empty()) {
        fail("attribute name expected");
        return std::nullopt;
      }
      if (el.attribute(key) != nullptr) {
        fail("duplicate attribute " + key);
        return std::nullopt;
      }
      skip_space();
      if (at_end() || peek() != '=') {
        fail("'=' expected");
        return std::nullopt;
      }
      ++m_pos;
      skip_space();
      if (at_end() || (peek() != '"' && peek() != '\'')) {
        fail("quoted attribute value expected");
        return std::nullopt;
      }
      const char quote = peek();
      ++m_pos;
      std::string value;
      if (!char_data(value, quote)) return std::nullopt;
      if (at_end()) {
        fail("unterminated attribute value");
        return std::nullopt;
      }
      ++m_pos;
      el.attributes.emplace_back(std::move(key), std::move(value));
    }
    // Content.
    for (;;) {
      if (!char_data(el.text, '<')) return std::nullopt;
      if (at_end()) {
        fail("missing </" + el.name + ">");
        return std::nullopt;
      }
      if (starts("<!--")) {
        const auto end = m_text.find("-->", m_pos);
        if (end == std::string_view::npos) {
          fail("unterminated comment");
          return std::nullopt;
        }
        m_pos = end + 3;
      } else if (starts("</")) {
        m_pos += 2;
        const auto closing = name();
        skip_space();
        if (closing != el.name || at_end() || peek() != '>') {
          fail("mismatched end tag </" + closing + "> for <" + el.name + ">");
          return std::nullopt;
        }
        ++m_pos;
        return el;
      } else if (starts("<![CDATA[")) {
        const auto end = m_text.find("]]>", m_pos);
        if (end == std::string_view::npos) {
          fail("unterminated CDATA");
          return std::nullopt;
        }
        el.text += m_text.substr(m_pos + 9, end - m_pos - 9);
        m_pos = end + 3;
      } else {
        auto child = element();
        if (!child) return std::nullopt;
        el.children.push_back(std::move(*child));
      }
    }
  }

  std::string_view m_text;
  std::size_t m_pos = 0;
  std::string m_error;
};

// ----------------------------------------------------------------------------------------------
// Recording with bounded waits

// A request a fake received, and what it answered.
struct RecordedRequest {
  std::chrono::system_clock::time_point at;
  std::string method;
  std::string path;    // without the query
  std::string target;  // path and query as sent
  httplib::Headers headers;
  std::string body;
  int status = 0;             // the fake's answer
  std::string response_body;  // the fake's answer
};

// A webhook a fake sent to scout, and scout's answer.
struct WebhookExchange {
  std::chrono::system_clock::time_point at;
  std::string call_id;  // Vonage uuid / Twilio CallSid
  std::string kind;     // Vonage: event status or "input"; Twilio: "status:<CallStatus>" or "gather"
  std::string url;
  httplib::Headers headers;
  std::string body;
  int reply_status = 0;  // 0: no HTTP answer (connection refused, timeout)
  std::string reply_content_type;
  std::string reply_body;
  std::string reply_error;  // why the reply is unusable ("" when fine or not parsed)
};

// Holds a log `L` behind a mutex; every change wakes waiters.
template <typename L>
class Recorder {
 public:
  template <typename F>
  void update(F&& change) {
    {
      const std::lock_guard lock{m_mutex};
      change(m_log);
    }
    m_changed.notify_all();
  }
  template <typename F>
  auto read(F&& reader) const {
    const std::lock_guard lock{m_mutex};
    return reader(m_log);
  }
  L snapshot() const {
    const std::lock_guard lock{m_mutex};
    return m_log;
  }
  // Waits until pred(log) holds, at most `limit`; returns whether it holds.
  bool wait_for(const std::function<bool(const L&)>& pred, std::chrono::milliseconds limit) const {
    std::unique_lock lock{m_mutex};
    return m_changed.wait_for(lock, limit, [&] { return pred(m_log); });
  }
  // Wakes waiters without a change (e.g. at shutdown).
  void poke() const { m_changed.notify_all(); }

 private:
  mutable std::mutex m_mutex;
  mutable std::condition_variable m_changed;
  L m_log;
};

// A stop flag that call-driving threads sleep on, so the fake's destructor never waits for a
// scripted ring time to run out.
class StopFlag {
 public:
  // Sleeps `d`; false when stopped meanwhile (or already).
  bool sleep(std::chrono::milliseconds d) {
    std::unique_lock lock{m_mutex};
    return !m_cv.wait_for(lock, d, [this] { return m_stopped; });
  }
  void stop() {
    {
      const std::lock_guard lock{m_mutex};
      m_stopped = true;
    }
    m_cv.notify_all();
  }
  bool stopped() const {
    const std::lock_guard lock{m_mutex};
    return m_stopped;
  }

 private:
  mutable std::mutex m_mutex;
  std::condition_variable m_cv;
  bool m_stopped = false;
};

// Outcome of sending one webhook.
struct HttpReply {
  int status = 0;  // 0: no answer
  std::string content_type;
  std::string body;
};

// POSTs `body` to an absolute http URL with `headers`; bounded by short timeouts.
inline HttpReply post_webhook(const std::string& url, const httplib::Headers& headers,
                              const std::string& body, const std::string& content_type) {
  const auto parsed = parse_url(url);
  if (!parsed || parsed->scheme != "http") return {};
  httplib::Client client{parsed->host, parsed->port};
  client.set_connection_timeout(std::chrono::seconds{2});
  client.set_read_timeout(std::chrono::seconds{10});
  client.set_write_timeout(std::chrono::seconds{5});
  auto res = client.Post(parsed->target.c_str(), headers, body, content_type.c_str());
  if (!res) return {};
  return HttpReply{res->status, res->get_header_value("Content-Type"), res->body};
}

// ----------------------------------------------------------------------------------------------
// Server base

// Serves 127.0.0.1 on a free port and sends every request, whatever its method, to one handler.
// Register nothing after start().
class FakeHttpServer {
 public:
  using Handler = std::function<void(const httplib::Request&, httplib::Response&)>;

  FakeHttpServer() {
    m_port = m_server.bind_to_any_port("127.0.0.1");
    m_server.set_payload_max_length(1 << 20);
    // Every method reaches the handler; an unknown method gets 405 from it.
    const auto route = [this](const httplib::Request& req, httplib::Response& res) {
      if (m_handler) m_handler(req, res);
    };
    m_server.Get(".*", route);
    m_server.Post(".*", route);
    m_server.Put(".*", route);
    m_server.Patch(".*", route);
    m_server.Delete(".*", route);
    m_server.Options(".*", route);
  }
  FakeHttpServer(const FakeHttpServer&) = delete;
  FakeHttpServer& operator=(const FakeHttpServer&) = delete;
  ~FakeHttpServer() { shutdown(); }

  void set_handler(Handler handler) { m_handler = std::move(handler); }

  // Starts serving on a thread; true once it runs (waits at most ~2 s).
  bool start() {
    if (m_port <= 0) return false;
    m_thread = std::thread{[this] { m_server.listen_after_bind(); }};
    for (int i = 0; i < 1000 && !m_server.is_running(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds{2});
    }
    return m_server.is_running();
  }

  void shutdown() {
    if (m_thread.joinable()) {
      m_server.stop();
      m_thread.join();
    }
  }

  int port() const { return m_port; }
  std::string base_url() const { return "http://127.0.0.1:" + std::to_string(m_port); }

 private:
  httplib::Server m_server;
  int m_port = -1;
  std::thread m_thread;
  Handler m_handler;
};

// Fault injection: the next `count` requests to a route answer `status` (count < 0: forever).
struct Fault {
  int remaining = 0;
  int status = 500;
};

// Consumes one fault; the status to answer, or 0 when none applies.
inline int take_fault(Fault& fault) {
  if (fault.remaining == 0) return 0;
  if (fault.remaining > 0) --fault.remaining;
  return fault.status;
}

// How a scripted callee behaves (both fakes).
enum class Answer {
  no,       // rings for `ring`, then unanswered (Vonage) / no-answer (Twilio)
  busy,     // busy
  human,    // answered by a person, who presses `digits` at the prompts
  machine,  // answered by a voicemail (machine detection reports it); no keys
  fail,     // the call fails (Vonage failed / Twilio failed)
};

inline const char* to_string(Answer a) {
  switch (a) {
    case Answer::no: return "no";
    case Answer::busy: return "busy";
    case Answer::human: return "human";
    case Answer::machine: return "machine";
    case Answer::fail: return "fail";
  }
  return "?";
}

struct CallScript {
  Answer answer = Answer::no;
  // One entry per prompt (Vonage input action / Twilio <Gather>), in order; "" = no key (the
  // prompt times out). Prompts beyond the list time out too.
  std::vector<std::string> digits;
  std::chrono::milliseconds ring{300};  // ringing before the answer / the final no-answer
  std::chrono::milliseconds talk{200};  // per spoken action / before a keypress
};

// "+15555551000" and "15555551000" both key the same script.
inline std::string digits_only(std::string_view number) {
  std::string out;
  for (const char c : number) {
    if (std::isdigit(std::uint8_t(c))) out += c;
  }
  return out;
}

// ----------------------------------------------------------------------------------------------
// Provider fake base

// What a provider fake recorded: the requests it received, the webhooks it sent, the calls and
// SMS it accepted. `Call` and `Sms` have `to`, the number as sent.
template <typename Call, typename Sms>
struct ProviderLog {
  std::vector<RecordedRequest> requests;
  std::vector<WebhookExchange> webhooks;
  std::vector<Call> calls;
  std::vector<Sms> sms;

  // Accepted calls / SMS to `number` (with or without '+').
  std::size_t count_calls_to(std::string_view number) const {
    const auto n = digits_only(number);
    return static_cast<std::size_t>(
        std::count_if(calls.begin(), calls.end(), [&](const Call& c) { return digits_only(c.to) == n; }));
  }
  std::size_t count_sms_to(std::string_view number) const {
    const auto n = digits_only(number);
    return static_cast<std::size_t>(
        std::count_if(sms.begin(), sms.end(), [&](const Sms& s) { return digits_only(s.to) == n; }));
  }
  const Call* first_call_to(std::string_view number) const {
    const auto n = digits_only(number);
    for (const auto& c : calls) {
      if (digits_only(c.to) == n) return &c;
    }
    return nullptr;
  }
  std::size_t count_requests(std::string_view method, std::string_view path) const {
    return static_cast<std::size_t>(std::count_if(
        requests.begin(), requests.end(),
        [&](const RecordedRequest& r) { return r.method == method && r.path == path; }));
  }
};

// The scaffolding of a provider fake (FakeVonage, FakeTwilio): a loopback server whose every
// request the derived class's router answers and this records; per-number call scripts and a
// default; fault knobs for creating calls and sending messages; the log with bounded waits;
// webhook delivery with retries; and the threads that drive calls, which stop without waiting for
// scripted times. The derived class keeps every protocol-specific check.
//
// `Options` has `signing` (the webhook signing mode) and `webhook_attempts`; `Call` has `id()`
// (the provider's call id), `to`, `ended` and `replies`; `Sms` has `to`.
// Requires: the derived destructor calls stop() first (the router and the drivers use it).
// Thread-safety: the public members may be called from any thread.
template <typename Options, typename Call, typename Sms>
class FakeProvider {
 public:
  using Log = ProviderLog<Call, Sms>;
  using Signing = decltype(Options::signing);

  FakeProvider(const FakeProvider&) = delete;
  FakeProvider& operator=(const FakeProvider&) = delete;

  bool start() { return m_server.start(); }
  int port() const { return m_server.port(); }
  std::string base_url() const { return m_server.base_url(); }
  const Options& options() const { return m_options; }

  // The script of calls to `number` (with or without '+'); others follow default_script.
  void script(std::string_view number, CallScript script) {
    const std::lock_guard lock{m_config_mutex};
    m_scripts[digits_only(number)] = std::move(script);
  }
  void default_script(CallScript script) {
    const std::lock_guard lock{m_config_mutex};
    m_default_script = std::move(script);
  }
  void set_signing(Signing signing) {
    const std::lock_guard lock{m_config_mutex};
    m_options.signing = signing;
  }
  // The next `count` create-call (or send-message) requests answer `status` (count < 0: all).
  void fail_calls(int count, int status = 500) {
    const std::lock_guard lock{m_config_mutex};
    m_call_fault = {count, status};
  }
  void fail_messages(int count, int status = 500) {
    const std::lock_guard lock{m_config_mutex};
    m_message_fault = {count, status};
  }
  // The next `count` create-call requests place the call (it rings as scripted) but answer
  // `status` (a gateway that timed out after the provider acted): the ambiguous failure of SPEC §6.
  void fail_after_create(int count, int status = 504) {
    const std::lock_guard lock{m_config_mutex};
    m_after_create_fault = {count, status};
  }
  // The next `count` list-calls requests answer `status`.
  void fail_lists(int count, int status = 500) {
    const std::lock_guard lock{m_config_mutex};
    m_list_fault = {count, status};
  }

  Log log() const { return m_log.snapshot(); }
  bool wait_for(const std::function<bool(const Log&)>& pred, std::chrono::milliseconds limit) const {
    return m_log.wait_for(pred, limit);
  }

 protected:
  using Router = std::function<void(const httplib::Request&, httplib::Response&)>;

  // One webhook attempt as it goes out: its headers and exact body.
  struct Outgoing {
    httplib::Headers headers;
    std::string body;
  };

  // Sets the call's `ended` when it goes out of scope, if `final`. Declared before the final
  // webhook is sent, so a wait for `ended` sees every attempt of it.
  class EndOnExit {
   public:
    EndOnExit(FakeProvider& fake, const std::string& id, bool final)
        : m_fake(fake), m_id(id), m_final(final) {}
    EndOnExit(const EndOnExit&) = delete;
    EndOnExit& operator=(const EndOnExit&) = delete;
    ~EndOnExit() {
      if (m_final) m_fake.update_call(m_id, [](Call& c) { c.ended = true; });
    }

   private:
    FakeProvider& m_fake;
    const std::string& m_id;
    bool m_final;
  };

  // `route` answers every request; it runs on the server's threads once start() was called.
  FakeProvider(Options options, Router route) : m_options(std::move(options)), m_route(std::move(route)) {
    m_server.set_handler([this](const httplib::Request& req, httplib::Response& res) {
      m_route(req, res);
      RecordedRequest r{std::chrono::system_clock::now(), req.method, req.path, req.target,
                        req.headers, req.body, res.status, res.body};
      m_log.update([&](Log& log) { log.requests.push_back(std::move(r)); });
    });
  }
  ~FakeProvider() { stop(); }

  // Stops serving and driving calls and joins the driver threads; idempotent.
  void stop() {
    m_stop.stop();
    m_server.shutdown();
    std::vector<std::thread> drivers;
    {
      const std::lock_guard lock{m_threads_mutex};
      drivers.swap(m_drivers);
    }
    for (auto& t : drivers) t.join();
  }

  // Runs `driver` on a thread of its own, joined by stop().
  void launch(std::function<void()> driver) {
    const std::lock_guard lock{m_threads_mutex};
    m_drivers.emplace_back(std::move(driver));
  }

  // The script of calls to `to` (with or without '+').
  CallScript script_for(std::string_view to) const {
    const std::lock_guard lock{m_config_mutex};
    const auto it = m_scripts.find(digits_only(to));
    return it != m_scripts.end() ? it->second : m_default_script;
  }
  Signing signing() const {
    const std::lock_guard lock{m_config_mutex};
    return m_options.signing;
  }
  // Consumes one fault of `fault` (m_call_fault or m_message_fault); the status to answer, or 0.
  int consume_fault(Fault& fault) {
    const std::lock_guard lock{m_config_mutex};
    return take_fault(fault);
  }

  // A copy of the call `id`; nullopt when there is none.
  std::optional<Call> find_call(const std::string& id) const {
    return m_log.read([&](const Log& log) -> std::optional<Call> {
      for (const auto& c : log.calls) {
        if (c.id() == id) return c;
      }
      return std::nullopt;
    });
  }
  void update_call(const std::string& id, const std::function<void(Call&)>& change) {
    m_log.update([&](Log& log) {
      for (auto& c : log.calls) {
        if (c.id() == id) change(c);
      }
    });
  }

  // POSTs a webhook about call `id` to `url`, retrying like the providers on no answer, 5xx or
  // 429 (`webhook_attempts` tries, 500 ms apart); `make` gives each attempt's headers and body.
  // Records every attempt under `kind`; returns the last reply.
  HttpReply deliver(const std::string& id, const std::string& kind, const std::string& url,
                    const std::string& content_type, const std::function<Outgoing()>& make) {
    HttpReply reply;
    for (int attempt = 0; attempt < std::max(1, m_options.webhook_attempts); ++attempt) {
      if (attempt > 0 && !m_stop.sleep(std::chrono::milliseconds{500})) break;
      Outgoing out = make();
      reply = post_webhook(url, out.headers, out.body, content_type);
      WebhookExchange ex{std::chrono::system_clock::now(), id, kind, url, std::move(out.headers),
                         std::move(out.body), reply.status, reply.content_type, reply.body, ""};
      m_log.update([&](Log& log) { log.webhooks.push_back(std::move(ex)); });
      if (reply.status != 0 && reply.status < 500 && reply.status != 429) break;
    }
    return reply;
  }

  // Notes scout's answer to the latest `kind` webhook of call `id`: `error` ("" when usable) on
  // that exchange and, when usable, `reply` in the call's replies.
  template <typename Reply>
  void record_reply(const std::string& id, const std::string& kind, const std::string& error,
                    const Reply& reply) {
    m_log.update([&](Log& log) {
      for (auto it = log.webhooks.rbegin(); it != log.webhooks.rend(); ++it) {
        if (it->call_id == id && it->kind == kind) {
          it->reply_error = error;
          break;
        }
      }
      if (error.empty()) {
        for (auto& c : log.calls) {
          if (c.id() == id) c.replies.push_back(reply);
        }
      }
    });
  }

  Options m_options;
  Recorder<Log> m_log;
  StopFlag m_stop;
  mutable std::mutex m_config_mutex;  // guards m_options.signing, the scripts and the faults
  Fault m_call_fault;
  Fault m_message_fault;
  Fault m_after_create_fault;
  Fault m_list_fault;

 private:
  Router m_route;
  FakeHttpServer m_server;
  std::map<std::string, CallScript> m_scripts;
  CallScript m_default_script;
  std::mutex m_threads_mutex;
  std::vector<std::thread> m_drivers;
};

}  // namespace scout::test::fake
