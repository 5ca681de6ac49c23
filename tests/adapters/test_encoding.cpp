// Text encodings shared by the HTTP adapters (adapters/encoding.hpp).

#include <catch2/catch.hpp>

#include "scout/adapters/encoding.hpp"

using namespace scout::adapters;

TEST_CASE("hex_lower writes two lower-case digits per byte", "[encoding]") {
  CHECK(hex_lower("") == "");
  CHECK(hex_lower(std::string("\x00\x01\xab\xff", 4)) == "0001abff");
}

TEST_CASE("percent_encode keeps only RFC 3986 unreserved characters", "[encoding]") {
  CHECK(percent_encode("AZaz09-._~") == "AZaz09-._~");
  CHECK(percent_encode("+14155550100") == "%2B14155550100");
  CHECK(percent_encode("a b&c=d/e?f#g%") == "a%20b%26c%3Dd%2Fe%3Ff%23g%25");
  CHECK(percent_encode("é") == "%C3%A9");  // UTF-8 bytes, upper-case hex
}

TEST_CASE("form_encode joins percent-encoded pairs in order", "[encoding]") {
  CHECK(form_encode({}) == "");
  CHECK(form_encode({{"To", "+14155550100"}, {"Body", "52 mg/dL & falling"}}) ==
        "To=%2B14155550100&Body=52%20mg%2FdL%20%26%20falling");
  CHECK(form_encode({{"StatusCallbackEvent", "ringing"}, {"StatusCallbackEvent", "answered"}}) ==
        "StatusCallbackEvent=ringing&StatusCallbackEvent=answered");
}

TEST_CASE("form_decode reads '+' as a space and keeps a broken escape as it is", "[encoding]") {
  CHECK(form_decode("%2B1415+x%20y") == "+1415 x y");
  CHECK(form_decode("100%") == "100%");
  CHECK(form_decode("%zz%4") == "%zz%4");
  CHECK(form_decode("%c3%A9") == "é");
}

TEST_CASE("parse_form splits pairs, keeps order and duplicates, and decodes both sides",
          "[encoding]") {
  const FormFields fields = parse_form("Digits=1&Digits=2&&a&b=&%2Bk=v+w=x");
  const FormFields expected = {{"Digits", "1"}, {"Digits", "2"}, {"a", ""}, {"b", ""},
                               {"+k", "v w=x"}};
  CHECK(fields == expected);
  CHECK(parse_form("").empty());
  // What form_encode writes, parse_form reads back.
  const FormFields round = {{"To", "+33 6 12"}, {"Body", "a&b=c/é"}};
  CHECK(parse_form(form_encode(round)) == round);
}
