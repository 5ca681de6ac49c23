#include "scout/app/drill.hpp"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <ostream>
#include <set>
#include <thread>

#include <spdlog/spdlog.h>

#include "scout/adapters/crypto.hpp"
#include "scout/adapters/listener.hpp"
#include "scout/adapters/providers.hpp"
#include "scout/adapters/state_store.hpp"
#include "scout/adapters/yaml_config.hpp"
#include "scout/app/cli.hpp"
#include "scout/app/control.hpp"
#include "scout/app/seams.hpp"
#include "scout/app/service.hpp"
#include "scout/core/redact.hpp"

namespace scout::app {

using namespace std::chrono_literals;

namespace {

// A fresh reading at `sgv` mg/dL, dated 30 s before every fetch: the drill's urgent low.
class DrillSource final : public CgmSource {
 public:
  DrillSource(const Clock& clock, int sgv) : clock_(clock), sgv_(sgv) {}
  std::vector<FetchResult> fetch(const std::vector<const core::Patient*>& patients) override {
    std::vector<FetchResult> answers;
    for (std::size_t i = 0; i < patients.size(); ++i) {
      answers.emplace_back(std::vector<core::Entry>{
          core::Entry{clock_.now() - core::Duration{30s}, sgv_, "Flat"}});
    }
    return answers;
  }

 private:
  const Clock& clock_;
  int sgv_;
};

// How the drill stands: nullopt while it goes on, else why it ended.
std::optional<std::string> drill_over(const core::State& state, const core::Patient& patient) {
  const auto it = state.patients.find(patient.name);
  if (it == state.patients.end() || !it->second.glucose) return std::nullopt;
  const core::ActiveAlarm& a = *it->second.glucose;
  const bool in_flight = std::any_of(a.calls.begin(), a.calls.end(), [](const core::CallRecord& c) {
    return !core::is_final(c.progress);
  });
  if (in_flight) return std::nullopt;
  if (a.snoozed_until) return "acknowledged by " + a.acknowledged_by;
  const auto& steps = patient.settings.escalation.urgent;
  if (a.run > 0 || a.next_step >= static_cast<int>(steps.size())) {
    return std::string("every step ran and nobody acknowledged");
  }
  return std::nullopt;
}

}  // namespace

std::string drill_words(const std::string& patient, const core::Message& message) {
  if (message.purpose == core::MessagePurpose::resolved) {
    return "The scout fire drill for " + patient + " is over.";
  }
  return "This is a scout fire drill for " + patient +
         ", a test of the alarm calls. It is not a real alarm.";
}

int run_drill(const DrillOptions& options, std::ostream& out, std::ostream& err) {
  const auto loaded = load_config_for(options.config_path, err, "drill");
  if (!loaded) return k_exit_config;
  const core::Config& config = *loaded;
  const auto found = std::find_if(config.patients.begin(), config.patients.end(),
                                  [&](const core::Patient& p) { return p.name == options.patient; });
  if (found == config.patients.end()) {
    err << "scout drill: no patient named '" << options.patient << "' in the config; the "
        << "patients are:";
    for (const auto& p : config.patients) err << " " << p.name;
    err << "\n";
    return k_exit_usage;
  }
  core::Config drill = config;
  drill.patients = {*found};
  core::Patient& patient = drill.patients.front();
  // No repeat within the drill: it ends when the chain has run once.
  patient.settings.escalation.repeat = std::chrono::hours{2};
  patient.settings.notify_resolved = false;
  const int sgv = std::max(40, patient.settings.thresholds.urgent_low - 10);

  SystemClock clock;
  DrillSource source(clock, sgv);
  MemoryStateStorage storage;
  RecordingJournal journal;
  core::State state;
  state.webhook_token = adapters::random_hex(16);

  // The listener when its port is free (no service running on this machine holds it).
  const core::Provider* vonage = nullptr;
  const core::Provider* twilio = nullptr;
  for (const auto& provider : drill.providers) {
    if (provider.type == core::ProviderType::vonage && vonage == nullptr) vonage = &provider;
    if (provider.type == core::ProviderType::twilio && twilio == nullptr) twilio = &provider;
  }
  std::mutex wake_mutex;
  std::condition_variable wake_cv;
  bool woken = false;
  const auto wake = [&] {
    {
      const std::lock_guard lock{wake_mutex};
      woken = true;
    }
    wake_cv.notify_all();
  };
  std::optional<adapters::WebhookBase> webhooks;
  std::unique_ptr<adapters::WebhookListener> listener;
  std::unique_ptr<Service> service;
  bool listening = false;
  if (drill.listener) {
    webhooks = adapters::WebhookBase{drill.listener->public_url,
                                     vonage != nullptr && vonage->signature_secret.empty()
                                         ? state.webhook_token
                                         : ""};
    adapters::WebhookSecrets secrets;
    secrets.public_url = drill.listener->public_url;
    secrets.url_token = state.webhook_token;
    secrets.vonage_signature_secret = vonage != nullptr ? vonage->signature_secret : "";
    secrets.twilio_auth_token = twilio != nullptr ? twilio->auth_token : "";
    auto started = adapters::start_listener(
        *drill.listener, secrets, [&service](const core::Event& event) {
          return service ? service->deliver(event) : std::optional<core::KeypressReply>{};
        });
    if (started) {
      listener = std::move(*started);
      listening = true;
    } else {
      out << "note: the listener's address is taken (is the scout service running?): in this "
             "drill a person answering counts as the acknowledgement, keys are not heard\n";
      webhooks.reset();
    }
  }
  adapters::ProviderChain chain(
      adapters::make_providers(drill, webhooks, adapters::HttpSettings{}, out),
      adapters::RetryPolicy{}, [](std::chrono::milliseconds wait) { std::this_thread::sleep_for(wait); });
  ProviderTelephony telephony(chain);
  ServiceOptions service_options;
  service_options.listening = listening;
  service_options.workers = 2;
  service_options.log_journal = false;
  service_options.on_change = wake;
  service_options.words = drill_words;
  service = std::make_unique<Service>(drill, std::move(state), clock, source, telephony, storage,
                                      journal, service_options);

  const auto& steps = patient.settings.escalation.urgent;
  const core::Duration last_after = steps.empty() ? core::Duration{0} : steps.back().after;
  const core::TimePoint started = clock.now();
  const core::TimePoint deadline = started + last_after + core::k_call_outcome_timeout + 1min;
  out << "drill for " << patient.name << ": the urgent escalation, for real (" << steps.size()
      << " step(s)); every call and SMS says: \"" << drill_words(patient.name, {}) << "\"\n";

  service->tick();
  auto next_tick = clock.now() + drill.poll.interval;
  auto last_call_poll = clock.now();
  std::string ended = "the drill's time ran out (" +
                      core::format_duration(last_after + core::k_call_outcome_timeout + 1min) + ")";
  while (clock.now() < deadline) {
    if (const auto over = drill_over(service->state(), patient)) {
      ended = *over;
      break;
    }
    if (!listening && clock.now() - last_call_poll >= core::Duration{5s}) {
      service->poll_calls();
      last_call_poll = clock.now();
    }
    service->advance();
    if (clock.now() >= next_tick) {
      service->tick();
      next_tick = clock.now() + drill.poll.interval;
    }
    auto wake_at = next_tick;
    if (const auto due = service->next_due(); due) wake_at = std::min(wake_at, *due);
    const auto wait = std::clamp<core::Duration>(wake_at - clock.now(), 0ms, 1000ms);
    std::unique_lock lock{wake_mutex};
    wake_cv.wait_for(lock, wait, [&] { return woken; });
    woken = false;
  }
  service->drain();
  if (listener) listener->stop();
  service->stop();

  // The story, as `scout log` tells it, and who was reached.
  std::vector<nlohmann::json> entries;
  bool failed = false;
  for (const auto& entry : journal.entries()) {
    auto line = nlohmann::json::parse(adapters::journal_line(entry), nullptr, false);
    // The drill's own reading is no glucose of the patient's: the story does not say it.
    line.erase("sgv");
    line.erase("direction");
    if (line.contains("kind")) line["kind"] = "FIRE DRILL";
    entries.push_back(std::move(line));
    failed = failed || entry.type == "call_not_placed" || entry.type == "sms_failed" ||
             entry.type == "sms_suppressed";
  }
  out << narrate_alarm(entries, drill.units, patient.timezone) << "\n";
  const core::State final_state = service->state();
  std::set<std::string> answered;
  std::set<std::string> unreached;
  std::string acknowledged_by;
  if (const auto it = final_state.patients.find(patient.name);
      it != final_state.patients.end() && it->second.glucose) {
    for (const auto& call : it->second.glucose->calls) {
      const std::string who = call.to_label == "patient" ? patient.name : call.to_label;
      (call.answered ? answered : unreached).insert(who);
      if (call.acknowledged) acknowledged_by = who;
    }
    if (acknowledged_by.empty()) acknowledged_by = it->second.glucose->acknowledged_by;
  }
  for (const auto& who : answered) unreached.erase(who);
  const auto join = [](const std::set<std::string>& names) {
    std::string text;
    for (const auto& n : names) text += (text.empty() ? "" : ", ") + n;
    return text.empty() ? std::string("nobody") : text;
  };
  out << "answered: " << join(answered) << "; not reached: " << join(unreached) << "\n";
  out << "result: " << ended
      << (failed ? "; some calls or SMS could not be sent (see above)" : "") << "\n";
  return !acknowledged_by.empty() && !failed ? k_exit_ok : k_exit_fatal;
}

}  // namespace scout::app
