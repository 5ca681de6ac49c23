// `scout run` end to end (SPEC §1 run, §4 alarms and escalation, §5 webhooks, §6 state): the real
// binary against an in-process Nightscout and the Vonage / Twilio fakes, which check every
// request as the real services would and drive each call by a per-number script.
//
// Timing: poll.interval is 10 s (the minimum); the contacts step is due `step1_after` after the
// alarm. A scenario that expects the contacts "at once" waits far less than that step time.

#include <catch2/catch.hpp>

#include "integration/run_support.hpp"

using namespace scout::test;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {


bool vonage_calls(const Scenario& s, const std::string& number, std::size_t n, std::chrono::milliseconds limit) {
  return s.vonage->wait_for([&](const VonageLog& l) { return l.count_calls_to(number) >= n; }, limit);
}

bool vonage_sms(const Scenario& s, const std::string& number, std::size_t n, std::chrono::milliseconds limit) {
  return s.vonage->wait_for([&](const VonageLog& l) { return l.count_sms_to(number) >= n; }, limit);
}

// Seconds between two instants.
double seconds(std::chrono::system_clock::time_point a, std::chrono::system_clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// Every webhook the fake sent was answered 200 by scout.
void check_webhooks_accepted(const std::vector<fake::WebhookExchange>& webhooks) {
  for (const auto& w : webhooks) {
    INFO(w.kind << " " << w.url << " -> " << w.reply_status << " " << w.reply_body);
    CHECK(w.reply_status == 200);
    CHECK(w.reply_error == "");
  }
}

}  // namespace

TEST_CASE("run: urgent low, the patient does not answer, contacts are called and texted at once",
          "[run]") {
  Scenario s({.step1_after = "60s"});
  REQUIRE(s.start_fakes());
  s.glucose.sgv = 48;
  s.vonage->script(k_patient_phone, {Answer::no, {}, 500ms});
  s.vonage->script(k_contact_phone, {Answer::no, {}, 500ms});

  REQUIRE_RUN(s, s.start_scout());

  // The patient is called first, through Vonage, with an NCCO that gathers one digit.
  REQUIRE_RUN(s, vonage_calls(s, k_patient_phone, 1, 10s));
  // The call ends unanswered: step 1 runs long before its 60 s.
  REQUIRE_RUN(s, vonage_calls(s, k_contact_phone, 1, 10s));
  REQUIRE_RUN(s, vonage_sms(s, k_contact_phone, 1, 5s));
  const auto log = s.vonage->log();
  const auto* patient_call = log.first_call_to(k_patient_phone);
  const auto* contact_call = log.first_call_to(k_contact_phone);
  CHECK(seconds(patient_call->created, contact_call->created) < 15.0);
  CHECK(log.count_calls_to(k_patient_phone) == 1);

  const auto& req = patient_call->request;
  CHECK(req.at("event_url").at(0).get<std::string>().rfind(s.listener_url() + "/webhooks/vonage/event?call=", 0) == 0);
  bool has_input = false;
  for (const auto& action : req.at("ncco")) {
    if (action.at("action") == "input") {
      has_input = true;
      CHECK(action.at("eventUrl").at(0).get<std::string>().rfind(s.listener_url() + "/webhooks/vonage/input?call=", 0) == 0);
    }
  }
  CHECK(has_input);
  CHECK(req.value("machine_detection", "") != "");
  CHECK(patient_call->events.back() == "unanswered");

  REQUIRE_RUN(s, s.wait_journal("sms", {{"to_label", "Bob"}}, 5s));
  const auto journal = s.journal();
  CHECK(journal_of(journal, "alarm_raised", {{"kind", "urgent_low"}}).size() == 1);
  CHECK(journal_of(journal, "call_placed", {{"to_label", "patient"}, {"provider", "vonage"}}).size() == 1);
  CHECK(journal_of(journal, "call_outcome", {{"to_label", "patient"}, {"progress", "unanswered"}}).size() == 1);
  CHECK(journal_of(journal, "call", {{"to_label", "Bob"}}).size() == 1);
  check_webhooks_accepted(s.vonage->log().webhooks);
  CHECK(s.scout->terminate(10s) == 0);
}

TEST_CASE("run: the patient presses 1, the alarm is acknowledged and nobody else is called", "[run]") {
  Scenario s({.step1_after = "6s"});
  REQUIRE(s.start_fakes());
  s.glucose.sgv = 48;
  s.vonage->script(k_patient_phone, {Answer::human, {"1"}, 300ms, 200ms});

  REQUIRE_RUN(s, s.start_scout());
  REQUIRE_RUN(s, vonage_calls(s, k_patient_phone, 1, 10s));
  REQUIRE_RUN(s, s.wait_journal("acknowledged", {{"to_label", "patient"}}, 10s));

  // scout answered the keypress with an NCCO that the fake accepted.
  REQUIRE_RUN(s, s.vonage->wait_for([](const VonageLog& l) { return !l.calls.empty() && l.calls[0].ended; }, 10s));
  const auto call = *s.vonage->log().first_call_to(k_patient_phone);
  CHECK(call.digits_sent == std::vector<std::string>{"1"});
  REQUIRE(call.replies.size() == 1);
  CHECK(call.replies[0].at(0).at("action") == "talk");

  // No escalation within a window well past the step time (6 s after the alarm).
  const auto step_due = call.created + 6s;
  const auto window = std::chrono::duration_cast<std::chrono::milliseconds>(step_due + 4s - std::chrono::system_clock::now());
  CHECK_FALSE(s.vonage->wait_for(
      [](const VonageLog& l) { return l.count_calls_to(k_contact_phone) > 0 || l.count_sms_to(k_contact_phone) > 0; },
      std::max(window, 1000ms)));
  CHECK(s.vonage->log().count_calls_to(k_patient_phone) == 1);
  const auto journal = s.journal();
  CHECK(journal_of(journal, "keypress", {{"digits", "1"}}).size() == 1);
  CHECK(journal_of(journal, "call", {{"to_label", "Bob"}}).empty());
  check_webhooks_accepted(s.vonage->log().webhooks);
}

TEST_CASE("run: the patient presses 2, the contacts are called now", "[run]") {
  Scenario s({.step1_after = "60s"});
  REQUIRE(s.start_fakes());
  s.glucose.sgv = 48;
  s.vonage->script(k_patient_phone, {Answer::human, {"2"}, 300ms, 200ms});

  REQUIRE_RUN(s, s.start_scout());
  REQUIRE_RUN(s, vonage_calls(s, k_patient_phone, 1, 10s));
  REQUIRE_RUN(s, vonage_calls(s, k_contact_phone, 1, 10s));
  REQUIRE_RUN(s, vonage_sms(s, k_contact_phone, 1, 5s));
  const auto log = s.vonage->log();
  CHECK(seconds(log.first_call_to(k_patient_phone)->created, log.first_call_to(k_contact_phone)->created) < 15.0);
  REQUIRE_RUN(s, s.wait_journal("keypress", {{"digits", "2"}}, 5s));
  CHECK(journal_of(s.journal(), "acknowledged").empty());
}

TEST_CASE("run: a machine answers (URL-token webhooks), the alarm escalates", "[run]") {
  // Without a signature_secret scout authenticates Vonage webhooks by its token in the URLs.
  Scenario s({.vonage_signed = false, .step1_after = "60s"});
  REQUIRE(s.start_fakes());
  s.glucose.sgv = 48;
  s.vonage->script(k_patient_phone, {Answer::machine, {}, 300ms, 200ms});

  REQUIRE_RUN(s, s.start_scout());
  REQUIRE_RUN(s, vonage_calls(s, k_patient_phone, 1, 10s));
  REQUIRE_RUN(s, vonage_calls(s, k_contact_phone, 1, 10s));
  const auto log = s.vonage->log();
  const auto* call = log.first_call_to(k_patient_phone);
  const auto event_url = call->request.at("event_url").at(0).get<std::string>();
  CHECK(event_url.find("token=") != std::string::npos);
  for (const auto& w : log.webhooks) {
    CHECK(w.headers.count("Authorization") == 0);
    CHECK(w.url.find("token=") != std::string::npos);
  }
  REQUIRE_RUN(s, s.wait_journal("call_outcome", {{"to_label", "patient"}, {"progress", "machine"}}, 5s));
  CHECK(journal_of(s.journal(), "acknowledged").empty());
}

TEST_CASE("run: Nightscout stale for 40 minutes raises a stale alarm that calls and escalates", "[run]") {
  Scenario s({.step1_after = "60s"});
  REQUIRE(s.start_fakes());
  s.glucose.sgv = 110;
  s.glucose.age_s = 40 * 60;
  s.vonage->script(k_patient_phone, {Answer::no, {}, 300ms});

  REQUIRE_RUN(s, s.start_scout());
  REQUIRE_RUN(s, vonage_calls(s, k_patient_phone, 1, 10s));
  REQUIRE_RUN(s, vonage_calls(s, k_contact_phone, 1, 10s));
  const auto journal = s.journal();
  CHECK(journal_of(journal, "alarm_raised", {{"kind", "stale"}}).size() == 1);
  CHECK(journal_of(journal, "alarm_raised", {{"kind", "urgent_low"}}).empty());
  // The call says how old the data is and the last value (SPEC §4).
  const auto log = s.vonage->log();
  const auto& ncco = log.first_call_to(k_patient_phone)->request.at("ncco");
  const auto text = ncco.at(0).at("text").get<std::string>();
  CHECK(text.find("110") != std::string::npos);
  CHECK(text.find("40") != std::string::npos);
}

TEST_CASE("run: Vonage answers 500 to every call, scout retries and fails over to Twilio", "[run]") {
  Scenario s({.twilio = true, .step1_after = "60s"});
  REQUIRE(s.start_fakes());
  s.glucose.sgv = 48;
  s.vonage->fail_calls(-1, 500);
  s.twilio->script(k_patient_phone, {Answer::no, {}, 300ms});

  REQUIRE_RUN(s, s.start_scout());
  REQUIRE_RUN(s, s.twilio->wait_for([](const TwilioLog& l) { return l.count_calls_to(k_patient_phone) == 1; }, 15s));
  REQUIRE_RUN(s, s.wait_journal("call_placed", {{"to_label", "patient"}, {"provider", "twilio"}}, 5s));

  // Three tries at Vonage, 1 s then 2 s apart, before Twilio.
  const auto vlog = s.vonage->log();
  std::vector<std::chrono::system_clock::time_point> tries;
  for (const auto& r : vlog.requests) {
    if (r.method == "POST" && r.path == "/v1/calls") tries.push_back(r.at);
  }
  REQUIRE(tries.size() >= 3);
  CHECK(seconds(tries[0], tries[1]) >= 0.9);
  CHECK(seconds(tries[1], tries[2]) >= 1.9);
  const auto tcall = *s.twilio->log().first_call_to(k_patient_phone);
  CHECK(seconds(tries[2], tcall.created) < 5.0);
  CHECK(tcall.to == k_patient_phone);
  CHECK_FALSE(tcall.twiml.empty());
  CHECK(fake::form_values(tcall.request, "StatusCallback").at(0).rfind(s.listener_url() + "/webhooks/twilio/status?call=", 0) == 0);

  // The no-answer reached scout through Twilio's signed callback and escalated.
  REQUIRE_RUN(s, s.twilio->wait_for([](const TwilioLog& l) { return l.count_calls_to(k_contact_phone) == 1; }, 15s));
  check_webhooks_accepted(s.twilio->log().webhooks);
}

TEST_CASE("run: SIGKILL mid-escalation and a restart neither repeat the call nor miss the next step",
          "[run]") {
  Scenario s({.step1_after = "12s", .min_call_gap = "2m"});
  REQUIRE(s.start_fakes());
  s.glucose.sgv = 48;
  // The patient's phone rings for a minute: the call is still in flight when scout dies.
  s.vonage->script(k_patient_phone, {Answer::no, {}, 60s});

  REQUIRE_RUN(s, s.start_scout());
  REQUIRE_RUN(s, vonage_calls(s, k_patient_phone, 1, 10s));
  REQUIRE_RUN(s, s.wait_journal("call_placed", {{"to_label", "patient"}}, 5s));
  REQUIRE_RUN(s, s.vonage->wait_for([](const VonageLog& l) {
    return std::any_of(l.webhooks.begin(), l.webhooks.end(),
                       [](const auto& w) { return w.kind == "ringing" && w.reply_status == 200; });
  }, 5s));
  const auto placed = s.vonage->log().first_call_to(k_patient_phone)->created;

  s.scout->kill9();
  REQUIRE_RUN(s, s.start_scout());

  // The contacts step comes on time (12 s after the alarm), and the patient is not called again.
  REQUIRE_RUN(s, vonage_calls(s, k_contact_phone, 1, 20s));
  const auto contact = s.vonage->log().first_call_to(k_contact_phone)->created;
  CHECK(seconds(placed, contact) >= 11.0);
  CHECK(seconds(placed, contact) <= 16.0);
  CHECK_FALSE(vonage_calls(s, k_patient_phone, 2, 2s));
  const auto journal = s.journal();
  CHECK(journal_of(journal, "alarm_raised").size() == 1);
  CHECK(journal_of(journal, "call", {{"to_label", "patient"}}).size() == 1);
  CHECK(s.scout->terminate(10s) == 0);
}

TEST_CASE("run: forged, unsigned and tampered webhooks get 401 and change no state", "[run]") {
  Scenario s({.twilio = true, .step1_after = "60s"});
  REQUIRE(s.start_fakes());
  s.glucose.sgv = 48;
  s.vonage->script(k_patient_phone, {Answer::no, {}, 60s});

  REQUIRE_RUN(s, s.start_scout());
  REQUIRE_RUN(s, vonage_calls(s, k_patient_phone, 1, 10s));
  REQUIRE_RUN(s, s.vonage->wait_for([](const VonageLog& l) {
    return std::any_of(l.webhooks.begin(), l.webhooks.end(),
                       [](const auto& w) { return w.kind == "ringing" && w.reply_status == 200; });
  }, 5s));
  const auto call = *s.vonage->log().first_call_to(k_patient_phone);
  const auto event_url = call.request.at("event_url").at(0).get<std::string>();
  std::string input_url;
  for (const auto& a : call.request.at("ncco")) {
    if (a.at("action") == "input") input_url = a.at("eventUrl").at(0).get<std::string>();
  }
  REQUIRE(!input_url.empty());
  const auto key = call_key_of(event_url);
  REQUIRE(!key.empty());
  // Let the state settle after the ringing event, then take it.
  REQUIRE(poll_until([&] { return !fake::read_text(s.state_path()).empty(); }, 2s));
  std::this_thread::sleep_for(300ms);
  const auto state_before = fake::read_text(s.state_path());
  const auto journal_before = s.journal().size();

  httplib::Client listener{"127.0.0.1", s.listener_port};
  const auto target = [](const std::string& url) { return fake::parse_url(url)->target; };
  const json answered = {{"uuid", call.uuid}, {"conversation_uuid", call.conversation_uuid}, {"status", "answered"},
                         {"direction", "outbound"}, {"from", call.from}, {"to", call.to},
                         {"timestamp", fake::iso8601_now()}};
  const json keypress = {{"dtmf", {{"digits", "1"}, {"timed_out", false}}}, {"uuid", call.uuid},
                         {"conversation_uuid", call.conversation_uuid}, {"timestamp", fake::iso8601_now()}};
  const auto& o = s.vonage->options();
  const auto jwt_for = [&](const std::string& body, const std::string& secret) {
    return "Bearer " + FakeVonage::webhook_jwt(body, fake::unix_now(), fake::uuid4(), o.api_key, o.application_id, secret);
  };

  std::vector<std::pair<std::string, httplib::Result>> results;
  results.emplace_back("unsigned event", listener.Post(target(event_url).c_str(), answered.dump(), "application/json"));
  results.emplace_back("unsigned input", listener.Post(target(input_url).c_str(), keypress.dump(), "application/json"));
  results.emplace_back("input signed with another secret",
                       listener.Post(target(input_url).c_str(), {{"Authorization", jwt_for(keypress.dump(), "forged-secret")}},
                                     keypress.dump(), "application/json"));
  results.emplace_back("input with a tampered body",
                       listener.Post(target(input_url).c_str(),
                                     {{"Authorization", jwt_for(answered.dump(), o.signature_secret)}},
                                     keypress.dump(), "application/json"));
  const fake::FormParams gather = {{"CallSid", "CA" + fake::random_hex(16)}, {"Digits", "1"}, {"CallStatus", "in-progress"}};
  const auto gather_path = "/webhooks/twilio/gather?call=" + key;
  results.emplace_back("Twilio gather without signature",
                       listener.Post(gather_path.c_str(), fake::encode_form(gather), "application/x-www-form-urlencoded"));
  results.emplace_back(
      "Twilio gather signed with another token",
      listener.Post(gather_path.c_str(),
                    {{"X-Twilio-Signature", FakeTwilio::signature("forged-token", s.listener_url() + gather_path, gather)}},
                    fake::encode_form(gather), "application/x-www-form-urlencoded"));
  for (const auto& [what, res] : results) {
    INFO(what);
    REQUIRE(res);
    CHECK(res->status == 401);
  }

  // Nothing changed: the state file is byte for byte the same and the journal has no keypress.
  std::this_thread::sleep_for(500ms);
  CHECK(fake::read_text(s.state_path()) == state_before);
  const auto journal = s.journal();
  CHECK(journal.size() == journal_before);
  CHECK(journal_of(journal, "keypress").empty());
  CHECK(journal_of(journal, "acknowledged").empty());

  // A correctly signed keypress for the same call is accepted (the 401s were about the auth).
  const auto ok = listener.Post(target(input_url).c_str(), {{"Authorization", jwt_for(keypress.dump(), o.signature_secret)}},
                                keypress.dump(), "application/json");
  REQUIRE(ok);
  CHECK(ok->status == 200);
  CHECK(FakeVonage::check_ncco(json::parse(ok->body, nullptr, false)) == "");
  CHECK_RUN(s, s.wait_journal("acknowledged", {}, 5s));
}

TEST_CASE("run: glucose back in range sends the all-clear SMS to everyone notified", "[run]") {
  Scenario s({.step1_after = "60s"});
  REQUIRE(s.start_fakes());
  s.glucose.sgv = 48;
  s.vonage->script(k_patient_phone, {Answer::no, {}, 300ms});
  s.vonage->script(k_contact_phone, {Answer::no, {}, 300ms});

  REQUIRE_RUN(s, s.start_scout());
  REQUIRE_RUN(s, vonage_calls(s, k_contact_phone, 1, 15s));
  REQUIRE_RUN(s, vonage_sms(s, k_contact_phone, 1, 5s));
  CHECK(s.vonage->log().count_sms_to(k_patient_phone) == 0);

  s.glucose.sgv = 120;
  // The next poll (10 s interval) resolves the alarm and texts both numbers.
  REQUIRE_RUN(s, s.wait_journal("alarm_resolved", {{"kind", "urgent_low"}}, 15s));
  REQUIRE_RUN(s, vonage_sms(s, k_patient_phone, 1, 5s));
  REQUIRE_RUN(s, vonage_sms(s, k_contact_phone, 2, 5s));
  const auto log = s.vonage->log();
  for (const auto& sms : log.sms) {
    CHECK(sms.text.find("http") == std::string::npos);  // SMS never carry a URL (SPEC §4)
  }
  CHECK(log.count_calls_to(k_patient_phone) == 1);
  CHECK(log.count_calls_to(k_contact_phone) == 1);
}

TEST_CASE("run: Twilio only, the patient presses 1 in the Gather, the alarm is acknowledged", "[run]") {
  Scenario s({.vonage = false, .twilio = true, .step1_after = "8s"});
  REQUIRE(s.start_fakes());
  s.glucose.sgv = 48;
  s.twilio->script(k_patient_phone, {Answer::human, {"1"}, 300ms, 200ms});

  REQUIRE_RUN(s, s.start_scout());
  REQUIRE_RUN(s, s.twilio->wait_for([](const TwilioLog& l) { return l.count_calls_to(k_patient_phone) == 1; }, 10s));
  REQUIRE_RUN(s, s.wait_journal("acknowledged", {{"to_label", "patient"}}, 10s));
  REQUIRE_RUN(s, s.twilio->wait_for([](const TwilioLog& l) { return !l.calls.empty() && l.calls[0].ended; }, 10s));
  const auto call = *s.twilio->log().first_call_to(k_patient_phone);
  CHECK(call.digits_sent == std::vector<std::string>{"1"});
  REQUIRE(call.replies.size() == 1);
  CHECK(FakeTwilio::check_twiml(call.replies[0]) == "");
  CHECK(call.answered_by == "human");
  check_webhooks_accepted(s.twilio->log().webhooks);

  const auto window = std::chrono::duration_cast<std::chrono::milliseconds>(call.created + 8s + 4s - std::chrono::system_clock::now());
  CHECK_FALSE(s.twilio->wait_for(
      [](const TwilioLog& l) { return l.count_calls_to(k_contact_phone) > 0 || l.count_sms_to(k_contact_phone) > 0; },
      std::max(window, 1000ms)));
  CHECK(s.scout->terminate(10s) == 0);
}

TEST_CASE("run: Vonage webhooks whose body does not match the signed payload_hash are refused",
          "[run]") {
  Scenario s({.step1_after = "60s"});
  REQUIRE(s.start_fakes());
  s.glucose.sgv = 48;
  s.vonage->set_signing(VonageSigning::tampered);
  s.vonage->script(k_patient_phone, {Answer::no, {}, 300ms});

  REQUIRE_RUN(s, s.start_scout());
  REQUIRE_RUN(s, vonage_calls(s, k_patient_phone, 1, 10s));
  // Every event (started, ringing, unanswered) is answered 401 ...
  REQUIRE_RUN(s, s.vonage->wait_for([](const VonageLog& l) { return !l.calls.empty() && l.calls[0].ended; }, 10s));
  const auto log = s.vonage->log();
  REQUIRE(!log.webhooks.empty());
  for (const auto& w : log.webhooks) {
    INFO(w.kind << " " << w.reply_status);
    CHECK(w.reply_status == 401);
  }
  // ... so scout never learns the call went unanswered and does not escalate early.
  CHECK_FALSE(vonage_calls(s, k_contact_phone, 1, 2s));
  const auto journal = s.journal();
  CHECK(journal_of(journal, "call_outcome", {{"progress", "unanswered"}}).empty());
  CHECK(journal_of(journal, "call_placed", {{"to_label", "patient"}}).size() == 1);
}
