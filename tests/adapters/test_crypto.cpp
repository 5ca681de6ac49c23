// Specification of scout/adapters/crypto.hpp: the vectors of protocols.md §2.2, §2.6, §3.1, §4.6.

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <fstream>
#include <memory>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "scout/adapters/crypto.hpp"

namespace {

using namespace std::chrono_literals;
using scout::core::ErrorKind;
namespace ad = scout::adapters;

std::string read_file(const std::string& path) {
  std::ifstream in{path, std::ios::binary};
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string test_key_path(const char* name) {
  return std::string{SCOUT_TEST_DATA_DIR} + "/vonage/" + name;
}

// Verifies an RS256 JWT's signature with a PEM public key, independently of crypto.cpp's signer.
bool rs256_verifies(const std::string& token, const std::string& public_pem) {
  const auto last_dot = token.rfind('.');
  if (last_dot == std::string::npos) {
    return false;
  }
  const std::string signing_input = token.substr(0, last_dot);
  const auto signature = ad::base64url_decode(token.substr(last_dot + 1));
  if (!signature) {
    return false;
  }
  std::unique_ptr<BIO, decltype(&BIO_free)> bio{
      BIO_new_mem_buf(public_pem.data(), static_cast<int>(public_pem.size())), &BIO_free};
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key{
      PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr), &EVP_PKEY_free};
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx{EVP_MD_CTX_new(), &EVP_MD_CTX_free};
  if (!key || !ctx ||
      EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key.get()) != 1) {
    return false;
  }
  return EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(signature->data()),
                          signature->size(),
                          reinterpret_cast<const unsigned char*>(signing_input.data()),
                          signing_input.size()) == 1;
}

// An HS256 token over exactly these header and payload bytes.
std::string hs256_token(const std::string& header, const std::string& payload,
                        const std::string& secret) {
  std::string input = ad::base64url_encode(header) + "." + ad::base64url_encode(payload);
  const std::string signature = ad::base64url_encode(ad::hmac_sha256(secret, input));
  input += ".";
  input += signature;
  return input;
}

// protocols.md §2.2 [constructed] vector, made with Vonage/vonage-python-sdk's test key.
constexpr auto k_rs256_vector =
    "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9."
    "eyJhcHBsaWNhdGlvbl9pZCI6ImFzZGYxMjM0IiwiaWF0IjoxNzAwMDAwMDAwLCJqdGkiOiIwYjRmM2I4ZS03YTJjLTRjMWUt"
    "OWQ2YS0xZjJlM2Q0YzViNmEiLCJleHAiOjE3MDAwMDA5MDB9."
    "JYeq08F4GEYI2CjxFDkzLEXDHgixTI51PwLDq6duilhYE-ygsJqYWmILR1a90KGYqzCiEIg8TZ5NiNwbJsAkLa3NQqLkqpkEj"
    "Nz_VfjM8WwolkHbmb32WfBEwDwu7OfUZTktCS5Fizp-iq415ZGY5lUfNg3vfKS3N6JPWNsK-0xhmG2WxqSarycxlsjcgJuH4v"
    "hRybcZCG6F5QS_YHtZJaGlRn5n3508fI-PgRAbWYYHyMUKPf8cU9bQXY3E9l9MR7IlHJESFgijVU5DVbB_razEofoqHJxfSQ"
    "driOlOM767rowZyCt4SvtFTrpyt3JM7sE191GxIiSquglR4ptkJQ";
constexpr auto k_rs256_jti = "0b4f3b8e-7a2c-4c1e-9d6a-1f2e3d4c5b6a";

// protocols.md §2.6: Vonage/vonage-python-sdk:jwt/tests/test_verify_jwt.py.
constexpr auto k_sdk_secret = "qwertyuiopasdfghjklzxcvbnm123456";
constexpr auto k_sdk_hs256 =
    "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJPbmxpbmUgSldUIEJ1aWxkZXIiLCJpYXQiOjE2OTc2MzQ2OD"
    "AsImV4cCI6MzMyNTQ1NDA4MjgsImF1ZCI6IiIsInN1YiI6IiJ9.88vJc3I2HhuqEDixHXVhc9R30tA6U_HQHZTC29y6CGM";

// protocols.md §2.6 [constructed] signed-webhook vector.
constexpr auto k_webhook_body =
    R"({"from":"447700900000","to":"447700900001","uuid":"aaaaaaaa-bbbb-cccc-dddd-0123456789ab",)"
    R"("conversation_uuid":"CON-aaaaaaaa-bbbb-cccc-dddd-0123456789ab","status":"answered",)"
    R"("direction":"outbound","timestamp":"2023-11-14T22:13:20.000Z"})";
constexpr auto k_webhook_hash = "0c4c6cb54dfe571aa739bedeb655808516ad247500b8c7e2ec72a671d3e5321b";
constexpr auto k_webhook_token =
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpYXQiOjE3MDAwMDAwMDAsImp0aSI6ImM1YmE4ZjI0LTFhMTQtNGMxMC"
    "1iZmRmLTNmYmU4Y2U1MTFiNSIsImlzcyI6IlZvbmFnZSIsInBheWxvYWRfaGFzaCI6IjBjNGM2Y2I1NGRmZTU3MWFhNzM5Y"
    "mVkZWI2NTU4MDg1MTZhZDI0NzUwMGI4YzdlMmVjNzJhNjcxZDNlNTMyMWIiLCJhcGlfa2V5IjoiYTFiMmMzZCIsImFwcGxp"
    "Y2F0aW9uX2lkIjoiYWFhYWFhYWEtYmJiYi1jY2NjLWRkZGQtMDEyMzQ1Njc4OWFiIn0.ocswvm_QlNXUueT4LLXwvMc4vJHy"
    "TFvt4uLAbDWQJJ0";
constexpr std::int64_t k_webhook_now = 1700000100;  // the token is from 1700000000

// protocols.md §4.6: twilio/twilio-python:tests/unit/test_request_validator.py.
constexpr auto k_twilio_token = "12345";
constexpr auto k_twilio_url = "https://mycompany.com/myapp.php?foo=1&bar=2";
const std::vector<std::pair<std::string, std::string>> k_twilio_params{
    {"CallSid", "CA1234567890ABCDE"},
    {"Digits", "1234"},
    {"From", "+14158675309"},
    {"To", "+18005551212"},
    {"Caller", "+14158675309"}};

}  // namespace

TEST_CASE("base64 and base64url follow RFC 4648", "[crypto]") {
  CHECK(ad::base64_encode("") == "");
  CHECK(ad::base64_encode("f") == "Zg==");
  CHECK(ad::base64_encode("fo") == "Zm8=");
  CHECK(ad::base64_encode("foo") == "Zm9v");
  CHECK(ad::base64_encode("foobar") == "Zm9vYmFy");
  // protocols.md §3.1: the Vonage docs' Basic example.
  CHECK(ad::base64_encode("aaa012:abc123456789") == "YWFhMDEyOmFiYzEyMzQ1Njc4OQ==");

  const std::string bytes{"\xfb\xff\xbf\x00\x01", 5};
  CHECK(ad::base64_encode(bytes) == "+/+/AAE=");
  CHECK(ad::base64url_encode(bytes) == "-_-_AAE");
  const auto decoded = ad::base64url_decode("-_-_AAE");
  REQUIRE(decoded);
  CHECK(*decoded == bytes);
  CHECK(ad::base64url_decode("") == std::string{});
  CHECK(ad::base64url_decode("Zm9vYmFy") == std::string{"foobar"});
  CHECK(ad::base64url_decode("Zm8") == std::string{"fo"});

  CHECK_FALSE(ad::base64url_decode("Zm9v+mFy"));  // '+' is not base64url
  CHECK_FALSE(ad::base64url_decode("Zm9v="));     // no padding in JWTs
  CHECK_FALSE(ad::base64url_decode("Zm9vY"));     // 4n+1 characters cannot be base64
}

TEST_CASE("sha256_hex and the HMACs match known digests", "[crypto]") {
  CHECK(ad::sha256_hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(ad::sha256_hex(k_webhook_body) == k_webhook_hash);
  // protocols.md §4.6 JSON-body vector.
  CHECK(ad::sha256_hex(R"({"property": "value", "boolean": true})") ==
        "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620");
  // RFC 4231 test case 2 and RFC 2202 test case 2.
  CHECK(ad::base64_encode(ad::hmac_sha256("Jefe", "what do ya want for nothing?")) ==
        ad::base64_encode(std::string{"\x5b\xdc\xc1\x46\xbf\x60\x75\x4e\x6a\x04\x24\x26\x08\x95\x75"
                                      "\xc7\x5a\x00\x3f\x08\x9d\x27\x39\x83\x9d\xec\x58\xb9\x64\xec"
                                      "\x38\x43",
                                      32}));
  CHECK(ad::base64_encode(ad::hmac_sha1("Jefe", "what do ya want for nothing?")) ==
        "7/zfauXrL6LSdBbV8YTfnCWafHk=");
}

TEST_CASE("constant_time_equal compares contents and lengths", "[crypto]") {
  CHECK(ad::constant_time_equal("abc", "abc"));
  CHECK(ad::constant_time_equal("", ""));
  CHECK_FALSE(ad::constant_time_equal("abc", "abd"));
  CHECK_FALSE(ad::constant_time_equal("abc", "abcd"));
  CHECK_FALSE(ad::constant_time_equal("", "a"));
}

TEST_CASE("random_uuid is a fresh RFC 4122 version 4 UUID and random_hex has the asked size",
          "[crypto]") {
  const std::regex uuid_v4{"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$"};
  std::set<std::string> seen;
  for (int i = 0; i < 50; ++i) {
    const std::string uuid = ad::random_uuid();
    CHECK(std::regex_match(uuid, uuid_v4));
    seen.insert(uuid);
  }
  CHECK(seen.size() == 50);

  const std::string hex = ad::random_hex(16);
  CHECK(std::regex_match(hex, std::regex{"^[0-9a-f]{32}$"}));
  CHECK(ad::random_hex(16) != hex);
  CHECK(ad::random_hex(0).empty());
}

TEST_CASE("vonage_api_jwt emits the SDK's header and claims byte for byte", "[crypto]") {
  const std::string private_pem = read_file(test_key_path("test_private_key.pem"));
  const std::string public_pem = read_file(test_key_path("test_public_key.pem"));
  REQUIRE_FALSE(private_pem.empty());
  REQUIRE_FALSE(public_pem.empty());

  const auto token = ad::vonage_api_jwt("asdf1234", 1700000000, k_rs256_jti, private_pem);
  REQUIRE(token);
  // Header and payload do not depend on the key: they must equal the §2.2 vector's first two
  // parts exactly (same JSON bytes, same key order).
  const std::string vector{k_rs256_vector};
  const std::string signed_part = vector.substr(0, vector.rfind('.') + 1);
  CHECK(token->substr(0, signed_part.size()) == signed_part);
  CHECK(rs256_verifies(*token, public_pem));

  const auto payload = ad::base64url_decode(token->substr(token->find('.') + 1,
                                                          signed_part.size() - token->find('.') - 2));
  REQUIRE(payload);
  const auto claims = nlohmann::json::parse(*payload);
  CHECK(claims.at("exp").get<std::int64_t>() - claims.at("iat").get<std::int64_t>() == 900);
}

TEST_CASE("sign_jwt_rs256 is deterministic, verifies with the public key, reads PKCS#1 and #8",
          "[crypto]") {
  const std::string pkcs8 = read_file(test_key_path("test_private_key.pem"));
  const std::string pkcs1 = read_file(test_key_path("test_private_key_pkcs1.pem"));
  const std::string public_pem = read_file(test_key_path("test_public_key.pem"));
  REQUIRE(pkcs8.find("BEGIN PRIVATE KEY") != std::string::npos);
  REQUIRE(pkcs1.find("BEGIN RSA PRIVATE KEY") != std::string::npos);

  const std::string header = R"({"alg":"RS256","typ":"JWT"})";
  const std::string payload = R"({"application_id":"app","iat":1,"jti":"j","exp":901})";
  const auto first = ad::sign_jwt_rs256(header, payload, pkcs8);
  const auto second = ad::sign_jwt_rs256(header, payload, pkcs1);
  REQUIRE(first);
  REQUIRE(second);
  CHECK(*first == *second);  // PKCS#1 v1.5 signatures are deterministic
  CHECK(rs256_verifies(*first, public_pem));

  // A token whose payload was changed after signing does not verify.
  std::string tampered = *first;
  const auto payload_start = tampered.find('.') + 1;
  tampered[payload_start + 3] = tampered[payload_start + 3] == 'A' ? 'B' : 'A';
  CHECK_FALSE(rs256_verifies(tampered, public_pem));
}

TEST_CASE("sign_jwt_rs256 reports an unusable key as a config error without key material",
          "[crypto]") {
  const auto garbage = ad::sign_jwt_rs256("{}", "{}", "-----BEGIN PRIVATE KEY-----\nnope\n");
  REQUIRE_FALSE(garbage);
  CHECK(garbage.error().kind == ErrorKind::config);

  const std::string public_pem = read_file(test_key_path("test_public_key.pem"));
  const auto public_only = ad::sign_jwt_rs256("{}", "{}", public_pem);
  REQUIRE_FALSE(public_only);
  CHECK(public_only.error().kind == ErrorKind::config);
  CHECK(public_only.error().message.find("MII") == std::string::npos);
}

TEST_CASE("sign_jwt_rs256 reproduces the protocols.md §2.2 vector with the SDK's test key",
          "[crypto]") {
  // The Vonage python SDK's public test key (jwt/tests/data/private_key.txt). It is only present
  // when someone has fetched it (tests/data/vonage/README.md); without it, this vector is skipped.
  const std::string sdk_pem = read_file(test_key_path("sdk_test_private_key.pem"));
  if (sdk_pem.empty()) {
    WARN("tests/data/vonage/sdk_test_private_key.pem absent: the §2.2 signature vector is skipped");
    return;
  }
  const auto token = ad::vonage_api_jwt("asdf1234", 1700000000, k_rs256_jti, sdk_pem);
  REQUIRE(token);
  CHECK(*token == k_rs256_vector);
}

TEST_CASE("verify_jwt_hs256 accepts the SDK vector and rejects a wrong secret or algorithm",
          "[crypto]") {
  const auto payload = ad::verify_jwt_hs256(k_sdk_hs256, k_sdk_secret);
  REQUIRE(payload);
  CHECK(nlohmann::json::parse(*payload).at("iss") == "Online JWT Builder");

  const auto wrong = ad::verify_jwt_hs256(k_sdk_hs256, "asdf");
  REQUIRE_FALSE(wrong);
  CHECK(wrong.error().kind == ErrorKind::auth);
  CHECK(wrong.error().message.find("asdf") == std::string::npos);

  // alg must be HS256 even when the HMAC itself is right (no alg confusion, no "none").
  const std::string claims = R"({"iat":1})";
  CHECK(ad::verify_jwt_hs256(hs256_token(R"({"alg":"HS256","typ":"JWT"})", claims, "s"), "s"));
  CHECK_FALSE(ad::verify_jwt_hs256(hs256_token(R"({"alg":"HS512","typ":"JWT"})", claims, "s"), "s"));
  CHECK_FALSE(ad::verify_jwt_hs256(hs256_token(R"({"alg":"none"})", claims, "s"), "s"));
  CHECK_FALSE(ad::verify_jwt_hs256(ad::base64url_encode(R"({"alg":"none"})") + "." +
                                       ad::base64url_encode(claims) + ".",
                                   "s"));
  // Malformed tokens.
  CHECK_FALSE(ad::verify_jwt_hs256("", "s"));
  CHECK_FALSE(ad::verify_jwt_hs256("a.b", "s"));
  CHECK_FALSE(ad::verify_jwt_hs256("a.b.c.d", "s"));
  CHECK_FALSE(ad::verify_jwt_hs256("!!.??.**", "s"));
}

TEST_CASE("verify_vonage_webhook checks signature, payload_hash, Bearer and iat", "[crypto]") {
  const std::string bearer = std::string{"Bearer "} + k_webhook_token;

  SECTION("the §2.6 vector verifies with a pinned now") {
    CHECK(ad::verify_vonage_webhook(bearer, k_webhook_body, k_sdk_secret, k_webhook_now));
  }
  SECTION("a tampered body fails on the payload hash") {
    std::string body{k_webhook_body};
    body.replace(body.find("answered"), 8, "complete");
    const auto result = ad::verify_vonage_webhook(bearer, body, k_sdk_secret, k_webhook_now);
    REQUIRE_FALSE(result);
    CHECK(result.error().kind == ErrorKind::auth);
    CHECK(result.error().message.find("payload_hash") != std::string::npos);
  }
  SECTION("a wrong secret fails on the signature") {
    const auto result = ad::verify_vonage_webhook(bearer, k_webhook_body, "asdf", k_webhook_now);
    REQUIRE_FALSE(result);
    CHECK(result.error().kind == ErrorKind::auth);
    CHECK(result.error().message.find("signature") != std::string::npos);
  }
  SECTION("without the Bearer scheme it fails") {
    CHECK_FALSE(ad::verify_vonage_webhook(k_webhook_token, k_webhook_body, k_sdk_secret,
                                          k_webhook_now));
    CHECK_FALSE(ad::verify_vonage_webhook(std::string{"Basic "} + k_webhook_token, k_webhook_body,
                                          k_sdk_secret, k_webhook_now));
    CHECK_FALSE(ad::verify_vonage_webhook("", k_webhook_body, k_sdk_secret, k_webhook_now));
    CHECK_FALSE(ad::verify_vonage_webhook("Bearer ", k_webhook_body, k_sdk_secret, k_webhook_now));
  }
  SECTION("an iat older than max_skew fails; one within it passes") {
    const std::int64_t two_days_later = 1700000000 + 2 * 86400;
    const auto stale = ad::verify_vonage_webhook(bearer, k_webhook_body, k_sdk_secret, two_days_later);
    REQUIRE_FALSE(stale);
    CHECK(stale.error().message.find("iat") != std::string::npos);
    CHECK(ad::verify_vonage_webhook(bearer, k_webhook_body, k_sdk_secret, two_days_later, 72h));
    CHECK_FALSE(ad::verify_vonage_webhook(bearer, k_webhook_body, k_sdk_secret, k_webhook_now, 60s));
    // An iat in the future by more than max_skew fails too.
    CHECK_FALSE(ad::verify_vonage_webhook(bearer, k_webhook_body, k_sdk_secret, 1700000000 - 86401));
  }
  SECTION("a token without payload_hash fails") {
    const std::string token = hs256_token(R"({"alg":"HS256","typ":"JWT"})",
                                          R"({"iat":1700000000,"iss":"Vonage"})", k_sdk_secret);
    CHECK_FALSE(ad::verify_vonage_webhook("Bearer " + token, k_webhook_body, k_sdk_secret,
                                          k_webhook_now));
  }
  SECTION("a token without iat is accepted when the hash matches") {
    const std::string token =
        hs256_token(R"({"alg":"HS256","typ":"JWT"})",
                    std::string{R"({"payload_hash":")"} + k_webhook_hash + "\"}", k_sdk_secret);
    CHECK(ad::verify_vonage_webhook("Bearer " + token, k_webhook_body, k_sdk_secret, k_webhook_now));
  }
}

TEST_CASE("twilio_signature reproduces twilio-python's vectors", "[crypto]") {
  CHECK(ad::twilio_signature(k_twilio_token, k_twilio_url, k_twilio_params) ==
        "RSOYDt4T1cUTdK1PDd93/VVr8B8=");
  CHECK(ad::twilio_signature(k_twilio_token, "https://mycompany.com:443/myapp.php?foo=1&bar=2",
                             k_twilio_params) == "kvajT1Ptam85bY51eRf/AJRuM3w=");
  CHECK(ad::twilio_signature(k_twilio_token, "http://mycompany.com:1234/myapp.php?foo=1&bar=2",
                             k_twilio_params) == "Zmvh+3yNM1Phv2jhDCwEM3q5ebU=");
  CHECK(ad::twilio_signature(k_twilio_token, "http://mycompany.com:80/myapp.php?foo=1&bar=2",
                             k_twilio_params) == "0ZXoZLH/DfblKGATFgpif+LLRf4=");
  // Duplicate keys: values sorted, a repeated (name, value) pair counted once.
  const std::vector<std::pair<std::string, std::string>> duplicates{
      {"Sid", "CA123"}, {"SidAccount", "AC123"}, {"Digits", "5678"}, {"Digits", "1234"},
      {"Digits", "1234"}};
  CHECK(ad::twilio_signature(k_twilio_token, k_twilio_url, duplicates) ==
        "IK+Dwps556ElfBT0I3Rgjkr1wJU=");
  // JSON bodies: only the URL (with bodySHA256) is signed.
  CHECK(ad::twilio_signature(k_twilio_token,
                             "https://mycompany.com/myapp.php?foo=1&bar=2&bodySHA256="
                             "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620",
                             {}) == "a9nBmqA0ju/hNViExpshrM61xv4=");
  // The parameter order does not matter.
  auto reversed = k_twilio_params;
  std::reverse(reversed.begin(), reversed.end());
  CHECK(ad::twilio_signature(k_twilio_token, k_twilio_url, reversed) ==
        "RSOYDt4T1cUTdK1PDd93/VVr8B8=");
}

TEST_CASE("verify_twilio_signature accepts the URL with or without its port", "[crypto]") {
  const auto verify = [](const std::string& url, const std::string& signature) {
    return ad::verify_twilio_signature(k_twilio_token, url, k_twilio_params, signature);
  };
  CHECK(verify(k_twilio_url, "RSOYDt4T1cUTdK1PDd93/VVr8B8="));
  // Signed with :443, scout configured without the port, and the reverse.
  CHECK(verify(k_twilio_url, "kvajT1Ptam85bY51eRf/AJRuM3w="));
  CHECK(verify("https://mycompany.com:443/myapp.php?foo=1&bar=2", "RSOYDt4T1cUTdK1PDd93/VVr8B8="));
  // http: the port 80 is added; an explicit non-default port is matched as given or removed.
  CHECK(verify("http://mycompany.com/myapp.php?foo=1&bar=2", "0ZXoZLH/DfblKGATFgpif+LLRf4="));
  CHECK(verify("http://mycompany.com:1234/myapp.php?foo=1&bar=2", "Zmvh+3yNM1Phv2jhDCwEM3q5ebU="));
  CHECK(verify("https://mycompany.com:1234/myapp.php?foo=1&bar=2", "RSOYDt4T1cUTdK1PDd93/VVr8B8="));

  CHECK_FALSE(verify(k_twilio_url, "RSOYDt4T1cUTdK1PDd93/VVr8B9="));
  CHECK_FALSE(verify(k_twilio_url, ""));
  CHECK_FALSE(verify("https://mycompany.com/myapp.php?foo=1&bar=3", "RSOYDt4T1cUTdK1PDd93/VVr8B8="));
  // An https signature does not validate the http URL.
  CHECK_FALSE(verify("http://mycompany.com/myapp.php?foo=1&bar=2", "RSOYDt4T1cUTdK1PDd93/VVr8B8="));
  CHECK_FALSE(ad::verify_twilio_signature("54321", k_twilio_url, k_twilio_params,
                                          "RSOYDt4T1cUTdK1PDd93/VVr8B8="));
  auto extra = k_twilio_params;
  extra.emplace_back("Digits", "9");
  CHECK_FALSE(ad::verify_twilio_signature(k_twilio_token, k_twilio_url, extra,
                                          "RSOYDt4T1cUTdK1PDd93/VVr8B8="));
}
