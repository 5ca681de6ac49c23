#include "scout/adapters/crypto.hpp"

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <memory>
#include <random>
#include <set>

#include "scout/adapters/encoding.hpp"

namespace scout::adapters {
namespace {

using core::ErrorKind;
using nlohmann::json;

const unsigned char* as_bytes(std::string_view text) {
  return reinterpret_cast<const unsigned char*>(text.data());
}

std::string digest_hex(std::string_view bytes, const EVP_MD* md) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int size = 0;
  if (EVP_Digest(bytes.data(), bytes.size(), digest.data(), &size, md, nullptr) != 1) {
    return {};
  }
  return hex_lower(std::string_view(reinterpret_cast<const char*>(digest.data()), size));
}

std::string hmac_raw(std::string_view key, std::string_view message, const EVP_MD* md) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> mac{};
  unsigned int size = 0;
  // HMAC() with a null key pointer misbehaves on some OpenSSL versions: give it a valid one.
  static const unsigned char k_empty = 0;
  const unsigned char* key_bytes = key.empty() ? &k_empty : as_bytes(key);
  if (HMAC(md, key_bytes, static_cast<int>(key.size()), as_bytes(message), message.size(),
           mac.data(), &size) == nullptr) {
    return {};
  }
  return std::string{reinterpret_cast<const char*>(mac.data()), size};
}

// Fills `out` with random bytes: RAND_bytes, or std::random_device if OpenSSL's generator
// cannot be seeded (it practically never fails; ids must still be produced).
void random_bytes(unsigned char* out, std::size_t size) {
  if (RAND_bytes(out, static_cast<int>(size)) == 1) {
    return;
  }
  std::random_device device;
  for (std::size_t i = 0; i < size; ++i) {
    out[i] = static_cast<unsigned char>(device() & 0xffu);
  }
}

struct BioDeleter {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
struct PkeyDeleter {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
struct MdCtxDeleter {
  void operator()(EVP_MD_CTX* ctx) const { EVP_MD_CTX_free(ctx); }
};

// Refuses to prompt for a passphrase (an encrypted key must not block a daemon on a TTY).
int no_passphrase(char* /*buf*/, int /*size*/, int /*rwflag*/, void* /*user*/) { return -1; }

int base64url_value(char c) {
  if (c >= 'A' && c <= 'Z') {
    return c - 'A';
  }
  if (c >= 'a' && c <= 'z') {
    return c - 'a' + 26;
  }
  if (c >= '0' && c <= '9') {
    return c - '0' + 52;
  }
  if (c == '-') {
    return 62;
  }
  if (c == '_') {
    return 63;
  }
  return -1;
}

// The JWT's three dot-separated parts; false unless there are exactly three.
bool split_jwt(std::string_view token, std::string_view& header, std::string_view& payload,
               std::string_view& signature) {
  const auto first = token.find('.');
  if (first == std::string_view::npos) {
    return false;
  }
  const auto second = token.find('.', first + 1);
  if (second == std::string_view::npos || token.find('.', second + 1) != std::string_view::npos) {
    return false;
  }
  header = token.substr(0, first);
  payload = token.substr(first + 1, second - first - 1);
  signature = token.substr(second + 1);
  return true;
}

// scheme://authority/rest split at the authority, with the port (if any) separated.
struct UrlParts {
  std::string scheme;     // lower-case
  std::string prefix;     // "scheme://" + any userinfo and the host
  std::string port;       // digits, "" when absent
  std::string rest;       // path, query, fragment
  bool ok = false;
};

UrlParts split_url(std::string_view url) {
  UrlParts parts;
  const auto scheme_end = url.find("://");
  if (scheme_end == std::string_view::npos) {
    return parts;
  }
  const auto authority_begin = scheme_end + 3;
  auto authority_end = url.find_first_of("/?#", authority_begin);
  if (authority_end == std::string_view::npos) {
    authority_end = url.size();
  }
  const std::string_view authority = url.substr(authority_begin, authority_end - authority_begin);
  // The port follows the last ':' unless that ':' is inside an IPv6 literal ("[::1]").
  const auto colon = authority.rfind(':');
  const auto bracket = authority.rfind(']');
  std::string_view host = authority;
  if (colon != std::string_view::npos && (bracket == std::string_view::npos || colon > bracket)) {
    const std::string_view port = authority.substr(colon + 1);
    if (!std::all_of(port.begin(), port.end(),
                     [](char c) { return std::isdigit(static_cast<unsigned char>(c)) != 0; })) {
      return parts;
    }
    parts.port = std::string{port};
    host = authority.substr(0, colon);
  }
  for (const char c : url.substr(0, scheme_end)) {
    parts.scheme.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  }
  parts.prefix = std::string{url.substr(0, authority_begin)};
  parts.prefix += host;
  parts.rest = std::string{url.substr(authority_end)};
  parts.ok = true;
  return parts;
}

}  // namespace

std::string base64_encode(std::string_view bytes) {
  if (bytes.empty()) {
    return {};
  }
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  const int written = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                      as_bytes(bytes), static_cast<int>(bytes.size()));
  out.resize(written > 0 ? static_cast<std::size_t>(written) : 0);
  return out;
}

std::string base64url_encode(std::string_view bytes) {
  std::string out = base64_encode(bytes);
  while (!out.empty() && out.back() == '=') {
    out.pop_back();
  }
  for (char& c : out) {
    if (c == '+') {
      c = '-';
    } else if (c == '/') {
      c = '_';
    }
  }
  return out;
}

core::Result<std::string> base64url_decode(std::string_view text) {
  if (text.size() % 4 == 1) {
    return core::fail(ErrorKind::malformed_json, "base64url text has an impossible length");
  }
  std::string out;
  out.reserve(text.size() * 3 / 4);
  std::uint32_t buffer = 0;
  int bits = 0;
  for (const char c : text) {
    const int value = base64url_value(c);
    if (value < 0) {
      return core::fail(ErrorKind::malformed_json, "base64url text has a character outside its alphabet");
    }
    buffer = (buffer << 6) | static_cast<std::uint32_t>(value);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((buffer >> bits) & 0xffu));
    }
  }
  return out;
}

std::string sha256_hex(std::string_view bytes) { return digest_hex(bytes, EVP_sha256()); }

std::string sha1_hex(std::string_view bytes) { return digest_hex(bytes, EVP_sha1()); }

std::string hmac_sha256(std::string_view key, std::string_view message) {
  return hmac_raw(key, message, EVP_sha256());
}

std::string hmac_sha1(std::string_view key, std::string_view message) {
  return hmac_raw(key, message, EVP_sha1());
}

bool constant_time_equal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) {
    return false;
  }
  if (a.empty()) {
    return true;
  }
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string random_uuid() {
  std::array<unsigned char, 16> bytes{};
  random_bytes(bytes.data(), bytes.size());
  bytes[6] = static_cast<unsigned char>((bytes[6] & 0x0fu) | 0x40u);  // version 4
  bytes[8] = static_cast<unsigned char>((bytes[8] & 0x3fu) | 0x80u);  // RFC 4122 variant
  const std::string hex =
      hex_lower(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
  std::string out;
  out.reserve(36);
  out += hex.substr(0, 8);
  out += '-';
  out += hex.substr(8, 4);
  out += '-';
  out += hex.substr(12, 4);
  out += '-';
  out += hex.substr(16, 4);
  out += '-';
  out += hex.substr(20, 12);
  return out;
}

std::string random_hex(std::size_t bytes) {
  std::string raw(bytes, '\0');
  random_bytes(reinterpret_cast<unsigned char*>(raw.data()), raw.size());
  return hex_lower(raw);
}

core::Result<std::string> sign_jwt_rs256(std::string_view header_json, std::string_view payload_json,
                                         std::string_view private_key_pem) {
  std::unique_ptr<BIO, BioDeleter> bio{
      BIO_new_mem_buf(private_key_pem.data(), static_cast<int>(private_key_pem.size()))};
  if (!bio) {
    return core::fail(ErrorKind::internal, "could not read the private key into memory");
  }
  std::unique_ptr<EVP_PKEY, PkeyDeleter> key{
      PEM_read_bio_PrivateKey(bio.get(), nullptr, &no_passphrase, nullptr)};
  if (!key) {
    return core::fail(ErrorKind::config,
                      "the private key is not a readable unencrypted PEM key (PKCS#1 or PKCS#8)");
  }
  if (EVP_PKEY_get_base_id(key.get()) != EVP_PKEY_RSA) {
    return core::fail(ErrorKind::config, "the private key is not an RSA key (RS256 needs RSA)");
  }

  std::string signing_input = base64url_encode(header_json);
  signing_input += '.';
  signing_input += base64url_encode(payload_json);

  std::unique_ptr<EVP_MD_CTX, MdCtxDeleter> ctx{EVP_MD_CTX_new()};
  if (!ctx) {
    return core::fail(ErrorKind::internal, "could not create a signing context");
  }
  // RSA keys sign with PKCS#1 v1.5 padding by default, which is what RS256 is (RFC 7518 §3.3).
  if (EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key.get()) != 1) {
    return core::fail(ErrorKind::internal, "could not start an RS256 signature");
  }
  std::size_t size = 0;
  if (EVP_DigestSign(ctx.get(), nullptr, &size, as_bytes(signing_input), signing_input.size()) !=
      1) {
    return core::fail(ErrorKind::internal, "could not size the RS256 signature");
  }
  std::string signature(size, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(signature.data()), &size,
                     as_bytes(signing_input), signing_input.size()) != 1) {
    return core::fail(ErrorKind::internal, "RS256 signing failed");
  }
  signature.resize(size);
  signing_input += '.';
  signing_input += base64url_encode(signature);
  return signing_input;
}

core::Result<std::string> vonage_api_jwt(std::string_view application_id, std::int64_t iat,
                                         std::string_view jti, std::string_view private_key_pem) {
  // Built by hand so the key order and spacing are exactly the Python SDK's (protocols.md §2.2);
  // json::dump of a single string gives the escaped, quoted value.
  std::string payload = "{\"application_id\":";
  payload += json(std::string{application_id}).dump();
  payload += ",\"iat\":";
  payload += std::to_string(iat);
  payload += ",\"jti\":";
  payload += json(std::string{jti}).dump();
  payload += ",\"exp\":";
  payload += std::to_string(iat + 900);  // 15 minutes, as the SDKs emit
  payload += '}';
  return sign_jwt_rs256(R"({"alg":"RS256","typ":"JWT"})", payload, private_key_pem);
}

core::Result<std::string> verify_jwt_hs256(std::string_view token, std::string_view secret) {
  std::string_view header_part;
  std::string_view payload_part;
  std::string_view signature_part;
  if (!split_jwt(token, header_part, payload_part, signature_part)) {
    return core::fail(ErrorKind::auth, "the JWT does not have three parts");
  }
  const auto header_text = base64url_decode(header_part);
  if (!header_text) {
    return core::fail(ErrorKind::auth, "the JWT header is not base64url");
  }
  const json header = json::parse(*header_text, nullptr, false);
  if (!header.is_object()) {
    return core::fail(ErrorKind::auth, "the JWT header is not a JSON object");
  }
  const auto alg = header.find("alg");
  if (alg == header.end() || !alg->is_string() || alg->get_ref<const std::string&>() != "HS256") {
    return core::fail(ErrorKind::auth, "the JWT is not signed with HS256");
  }
  const auto signature = base64url_decode(signature_part);
  if (!signature) {
    return core::fail(ErrorKind::auth, "the JWT signature is not base64url");
  }
  const std::string_view signing_input =
      token.substr(0, header_part.size() + 1 + payload_part.size());
  const std::string expected = hmac_sha256(secret, signing_input);
  if (expected.empty() || !constant_time_equal(expected, *signature)) {
    return core::fail(ErrorKind::auth, "the JWT signature does not verify with the signature secret");
  }
  auto payload = base64url_decode(payload_part);
  if (!payload) {
    return core::fail(ErrorKind::auth, "the JWT payload is not base64url");
  }
  return payload;
}

core::Status verify_vonage_webhook(std::string_view authorization, std::string_view body,
                                   std::string_view signature_secret, std::int64_t now_s,
                                   std::chrono::seconds max_skew) {
  static constexpr std::string_view k_scheme = "bearer";
  if (authorization.size() <= k_scheme.size() ||
      !std::equal(k_scheme.begin(), k_scheme.end(), authorization.begin(),
                  [](char a, char b) {
                    return a == std::tolower(static_cast<unsigned char>(b));
                  }) ||
      authorization[k_scheme.size()] != ' ') {
    return core::fail(ErrorKind::auth, "no Bearer token in the Authorization header");
  }
  std::string_view token = authorization.substr(k_scheme.size());
  while (!token.empty() && token.front() == ' ') {
    token.remove_prefix(1);
  }
  while (!token.empty() && (token.back() == ' ' || token.back() == '\r' || token.back() == '\n')) {
    token.remove_suffix(1);
  }
  const auto payload_text = verify_jwt_hs256(token, signature_secret);
  if (!payload_text) {
    return tl::make_unexpected(payload_text.error());
  }
  const json payload = json::parse(*payload_text, nullptr, false);
  if (!payload.is_object()) {
    return core::fail(ErrorKind::auth, "the JWT payload is not a JSON object");
  }
  const auto hash = payload.find("payload_hash");
  if (hash == payload.end() || !hash->is_string()) {
    return core::fail(ErrorKind::auth, "the JWT carries no payload_hash");
  }
  if (!constant_time_equal(hash->get_ref<const std::string&>(), sha256_hex(body))) {
    return core::fail(ErrorKind::auth, "the body does not match the JWT payload_hash");
  }
  const auto iat = payload.find("iat");
  if (iat != payload.end()) {
    if (!iat->is_number()) {
      return core::fail(ErrorKind::auth, "the JWT iat is not a number");
    }
    const double issued = iat->get<double>();
    const double skew = std::abs(static_cast<double>(now_s) - issued);
    if (!(skew <= static_cast<double>(max_skew.count()))) {
      return core::fail(ErrorKind::auth, "the JWT iat is too far from now (stale or replayed)");
    }
  }
  return {};
}

std::string twilio_signature(std::string_view auth_token, std::string_view url,
                             const std::vector<std::pair<std::string, std::string>>& params) {
  // Sorted by name, then value; a std::set also drops duplicate pairs (protocols.md §4.6,
  // twilio/twilio-python:twilio/request_validator.py).
  const std::set<std::pair<std::string, std::string>> sorted(params.begin(), params.end());
  std::string message{url};
  for (const auto& [name, value] : sorted) {
    message += name;
    message += value;
  }
  return base64_encode(hmac_sha1(auth_token, message));
}

bool verify_twilio_signature(std::string_view auth_token, std::string_view url,
                             const std::vector<std::pair<std::string, std::string>>& params,
                             std::string_view signature) {
  std::vector<std::string> candidates{std::string{url}};
  const UrlParts parts = split_url(url);
  if (parts.ok) {
    if (parts.port.empty()) {
      const char* port = parts.scheme == "https" ? ":443" : parts.scheme == "http" ? ":80" : nullptr;
      if (port != nullptr) {
        candidates.push_back(parts.prefix + port + parts.rest);
      }
    } else {
      // Like twilio-python's remove_port: any explicit port is dropped.
      candidates.push_back(parts.prefix + parts.rest);
    }
  }
  bool valid = false;
  for (const auto& candidate : candidates) {
    // No early exit: each candidate is checked in constant time.
    valid = constant_time_equal(twilio_signature(auth_token, candidate, params), signature) || valid;
  }
  return valid;
}

}  // namespace scout::adapters
