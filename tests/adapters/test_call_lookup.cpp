// Provider::find_calls and the chain's lookup before a retry (SPEC §6) against the Vonage and
// Twilio fakes of tests/support, which check the list requests as the services do: a gateway
// error after the provider created the call must not give the callee a second call.

#include <catch2/catch.hpp>

#include <chrono>
#include <string>

#include "scout/adapters/providers.hpp"
#include "scout/adapters/wall_clock.hpp"
#include "support/fake_twilio.hpp"
#include "support/fake_vonage.hpp"

using namespace std::chrono_literals;
namespace ad = scout::adapters;
namespace core = scout::core;
using scout::test::FakeTwilio;
using scout::test::FakeVonage;
using scout::test::TwilioOptions;
using scout::test::VonageOptions;

namespace {

const std::string k_key_dir = std::string(SCOUT_TEST_DATA_DIR) + "/vonage";
const std::string k_alice = "+15555551000";
const std::string k_bob = "+15555559999";

VonageOptions vonage_options() {
  VonageOptions o;
  o.public_key_pem = scout::test::fake::read_text(k_key_dir + "/test_public_key.pem");
  o.event_gap = 10ms;
  return o;
}

core::Provider vonage_config(const FakeVonage& fake) {
  core::Provider p;
  p.type = core::ProviderType::vonage;
  p.from = "+14155550100";
  p.base_url = fake.base_url();
  p.application_id = fake.options().application_id;
  p.private_key_pem = scout::test::fake::read_text(k_key_dir + "/test_private_key.pem");
  p.api_key = fake.options().api_key;
  p.api_secret = fake.options().api_secret;
  return p;
}

core::Provider twilio_config(const FakeTwilio& fake) {
  core::Provider p;
  p.type = core::ProviderType::twilio;
  p.from = "+14155550101";
  p.base_url = fake.base_url();
  p.account_sid = fake.options().account_sid;
  p.auth_token = fake.options().auth_token;
  return p;
}

ad::CallRequest call_to(const std::string& to, core::TimePoint decided) {
  return ad::CallRequest{"c7", to, "Alice: URGENT LOW, 45 mg/dL.", false, decided, {}};
}

}  // namespace

TEST_CASE("Vonage find_calls lists calls since a time and keeps those to the number",
          "[providers][recovery]") {
  FakeVonage fake{vonage_options()};
  REQUIRE(fake.start());
  auto vonage = ad::make_vonage_provider(vonage_config(fake), std::nullopt, ad::HttpSettings{5s});
  const auto before = ad::wall_clock_now() - 2s;
  const auto to_alice = vonage->place_call(call_to(k_alice, before));
  REQUIRE(to_alice);
  REQUIRE(vonage->place_call(call_to(k_bob, before)));
  const auto found = vonage->find_calls(k_alice, before);
  REQUIRE(found);
  REQUIRE(found->size() == 1);
  CHECK(found->at(0).id == *to_alice);
  // Nothing since a later time.
  const auto later = vonage->find_calls(k_alice, ad::wall_clock_now() + 5s);
  REQUIRE(later);
  CHECK(later->empty());
  // The request went out as the Voice API documents it (the fake refuses anything else).
  const auto log = fake.log();
  CHECK(log.count_requests("GET", "/v1/calls") == 2);
}

TEST_CASE("Vonage: a create-call answered 504 after the call was made is not placed twice",
          "[providers][recovery]") {
  FakeVonage fake{vonage_options()};
  REQUIRE(fake.start());
  fake.fail_after_create(1, 504);
  std::vector<std::unique_ptr<ad::Provider>> providers;
  providers.push_back(ad::make_vonage_provider(vonage_config(fake), std::nullopt, ad::HttpSettings{5s}));
  ad::ProviderChain chain{std::move(providers), ad::RetryPolicy{3, 1ms, 2ms}, nullptr};
  const auto sent = chain.place_call(call_to(k_alice, ad::wall_clock_now()));
  REQUIRE(sent);
  const auto log = fake.log();
  CHECK(log.count_calls_to(k_alice) == 1);
  REQUIRE(log.first_call_to(k_alice) != nullptr);
  CHECK(sent->id == log.first_call_to(k_alice)->uuid);
}

TEST_CASE("Vonage: a plain 503 (nothing created) is looked up, found absent, and retried once",
          "[providers][recovery]") {
  FakeVonage fake{vonage_options()};
  REQUIRE(fake.start());
  fake.fail_calls(1, 503);
  std::vector<std::unique_ptr<ad::Provider>> providers;
  providers.push_back(ad::make_vonage_provider(vonage_config(fake), std::nullopt, ad::HttpSettings{5s}));
  ad::ProviderChain chain{std::move(providers), ad::RetryPolicy{3, 1ms, 2ms}, nullptr};
  REQUIRE(chain.place_call(call_to(k_alice, ad::wall_clock_now())));
  const auto log = fake.log();
  CHECK(log.count_calls_to(k_alice) == 1);
  CHECK(log.count_requests("GET", "/v1/calls") == 1);
  CHECK(log.count_requests("POST", "/v1/calls") == 2);
}

TEST_CASE("Twilio find_calls asks Calls.json by To and StartTime and checks date_created",
          "[providers][recovery]") {
  FakeTwilio fake{TwilioOptions{}};
  REQUIRE(fake.start());
  auto twilio = ad::make_twilio_provider(twilio_config(fake), std::nullopt, ad::HttpSettings{5s});
  const auto before = ad::wall_clock_now() - 2s;
  const auto to_alice = twilio->place_call(call_to(k_alice, before));
  REQUIRE(to_alice);
  REQUIRE(twilio->place_call(call_to(k_bob, before)));
  const auto found = twilio->find_calls(k_alice, before);
  REQUIRE(found);
  REQUIRE(found->size() == 1);
  CHECK(found->at(0).id == *to_alice);
  const auto later = twilio->find_calls(k_alice, ad::wall_clock_now() + 5s);
  REQUIRE(later);
  CHECK(later->empty());
}

TEST_CASE("Twilio: a create-call answered 502 after the call was made is not placed twice",
          "[providers][recovery]") {
  FakeTwilio fake{TwilioOptions{}};
  REQUIRE(fake.start());
  fake.fail_after_create(1, 502);
  std::vector<std::unique_ptr<ad::Provider>> providers;
  providers.push_back(ad::make_twilio_provider(twilio_config(fake), std::nullopt, ad::HttpSettings{5s}));
  ad::ProviderChain chain{std::move(providers), ad::RetryPolicy{3, 1ms, 2ms}, nullptr};
  const auto sent = chain.place_call(call_to(k_alice, ad::wall_clock_now()));
  REQUIRE(sent);
  const auto log = fake.log();
  CHECK(log.count_calls_to(k_alice) == 1);
  REQUIRE(log.first_call_to(k_alice) != nullptr);
  CHECK(sent->id == log.first_call_to(k_alice)->sid);
}
