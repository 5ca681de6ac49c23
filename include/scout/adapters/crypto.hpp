#pragma once
// Small cryptographic helpers over OpenSSL (libcrypto) for the provider adapters and the webhook
// listener: JWT signing (Vonage Voice API, RS256, protocols.md §2.2), JWT verification (Vonage
// signed webhooks, HS256 + payload_hash, §2.6), and Twilio's X-Twilio-Signature (§4.6).
// Secrets are never logged; errors carry no key material.
#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "scout/core/result.hpp"

namespace scout::adapters {

// Base64 (RFC 4648 §4, with '=' padding) and base64url (§5, no padding).
std::string base64_encode(std::string_view bytes);
std::string base64url_encode(std::string_view bytes);
// Decodes base64url without padding (as JWT uses); nullopt-like error on bad input.
core::Result<std::string> base64url_decode(std::string_view text);

// Lower-case hex of SHA-256 / SHA-1 of `bytes` ("" only if OpenSSL lacks the digest).
std::string sha256_hex(std::string_view bytes);
std::string sha1_hex(std::string_view bytes);
// Raw HMAC digests.
std::string hmac_sha256(std::string_view key, std::string_view message);
std::string hmac_sha1(std::string_view key, std::string_view message);

// Constant-time comparison (CRYPTO_memcmp); false when the lengths differ.
bool constant_time_equal(std::string_view a, std::string_view b);

// A random RFC 4122 version-4 UUID ("0b4f3b8e-7a2c-4c1e-9d6a-1f2e3d4c5b6a"), from RAND_bytes.
std::string random_uuid();
// `bytes` random bytes as lower-case hex (RAND_bytes), e.g. for the per-install webhook token.
std::string random_hex(std::size_t bytes);

// Signs a JWT with RS256 (RSASSA-PKCS1-v1_5, SHA-256) using the PEM private key (PKCS#1 or
// PKCS#8). `header_json` and `payload_json` are used byte for byte, so the result is
// reproducible: the protocols.md §2.2 vector must come out exactly.
// Errors: config (the key does not parse or is not RSA), internal (signing failed).
core::Result<std::string> sign_jwt_rs256(std::string_view header_json, std::string_view payload_json,
                                         std::string_view private_key_pem);

// The Vonage Voice API JWT (protocols.md §2.2, as the Python SDK emits it): header
// {"alg":"RS256","typ":"JWT"}, payload {"application_id":…,"iat":…,"jti":…,"exp":iat+900} in that
// key order. `iat` is seconds since the epoch.
core::Result<std::string> vonage_api_jwt(std::string_view application_id, std::int64_t iat,
                                         std::string_view jti, std::string_view private_key_pem);

// Verifies an HS256 JWT (header alg must be "HS256") with `secret` and returns its payload JSON
// text. Errors: auth (malformed token, wrong alg, bad signature).
core::Result<std::string> verify_jwt_hs256(std::string_view token, std::string_view secret);

// Verifies a Vonage signed webhook (protocols.md §2.6): `authorization` is the whole header
// value ("Bearer <jwt>"); the JWT must verify with `signature_secret` (HS256), its payload must
// carry `payload_hash` == sha256_hex(body) (compared in constant time), and `iat` must be within
// `max_skew` of `now_s` (seconds since the epoch) when iat is present. Errors: auth, with a
// message naming what failed (never the secret).
core::Status verify_vonage_webhook(std::string_view authorization, std::string_view body,
                                   std::string_view signature_secret, std::int64_t now_s,
                                   std::chrono::seconds max_skew = std::chrono::hours{24});

// Twilio's request signature (protocols.md §4.6): base64(HMAC-SHA1(auth_token, url + for each
// param name in sorted order, for each of its values in sorted order, name + value)). Duplicate
// (name, value) pairs count once. `params` are the decoded form parameters in any order.
std::string twilio_signature(std::string_view auth_token, std::string_view url,
                             const std::vector<std::pair<std::string, std::string>>& params);

// True when `signature` matches `url` as given, or `url` with the default port added
// (":443" for https, ":80" for http) or removed (protocols.md §4.6 step 4). Constant time.
bool verify_twilio_signature(std::string_view auth_token, std::string_view url,
                             const std::vector<std::pair<std::string, std::string>>& params,
                             std::string_view signature);

}  // namespace scout::adapters
