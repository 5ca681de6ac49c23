#include "scout/app/service.hpp"
#include "scout/app/logging.hpp"

#include <algorithm>
#include <set>
#include <string>
#include <utility>

#include <spdlog/spdlog.h>

#include "scout/adapters/timezone.hpp"
#include "scout/core/message.hpp"
#include "scout/core/redact.hpp"
#include "scout/core/units.hpp"

namespace scout::app {

namespace {

using namespace std::chrono_literals;

// With a listener, a call still not final this long after it was placed is polled as well, in
// case its webhooks never arrive (a wrong public_url, a proxy down).
constexpr core::Duration k_webhook_grace = 90s;
// advance() applies at most this many Ticks per call: next_due only moves on when a Tick acts,
// so this bounds a machine that reports a due time it then does not act on.
constexpr int k_max_ticks_per_advance = 8;
// A call decided by an earlier process and never placed is placed when scout starts again within
// this long of the decision; later it counts as failed and the chain goes on (a call that would
// ring after its step's moment has passed helps less than the next step).
constexpr core::Duration k_redispatch_window = std::chrono::minutes{5};
// The wall clock moving this much more or less than the monotonic clock between two looks is a
// jump (an NTP step, a board without RTC setting its time), not drift.
constexpr core::Duration k_clock_jump = std::chrono::seconds{5};

int utc_minute_of_day(core::TimePoint at) {
  constexpr std::int64_t k_day = 24 * 60;
  const auto minutes = std::chrono::floor<std::chrono::minutes>(at).time_since_epoch().count();
  return static_cast<int>(((minutes % k_day) + k_day) % k_day);
}

}  // namespace

core::Assessment assess(const core::Patient& patient, const core::PollOutcome& outcome,
                        core::TimePoint now) {
  const auto local = adapters::local_minute_of_day(patient.timezone, now);
  const int minute = local ? *local : utc_minute_of_day(now);
  return core::evaluate(outcome, patient.settings, now, minute);
}

std::string render(const core::Config& config, const core::Patient& patient,
                   const core::PatientState& state, const core::Message& message,
                   core::TimePoint now) {
  // "since HH:MM": the sensor codes' start for a sensor error, the failure streak's for
  // unreachable (core::render_message uses it for those two kinds only).
  const auto since = message.alarm.kind == core::AlarmKind::sensor_error
                         ? state.facts.status_code_since
                         : state.failing_since;
  const std::string since_local = since ? adapters::local_hhmm(patient.timezone, *since) : "";
  return core::render_message(patient.name, message, state.facts, patient.settings, config.units,
                              now, since_local);
}

// ---------------------------------------------------------------------------------------------
// Worker threads

struct Service::Workers {
  explicit Workers(Service& service, int count) : service_(service) {
    for (int i = 0; i < count; ++i) threads_.emplace_back([this] { work(); });
  }
  ~Workers() { stop(); }

  void submit(std::vector<core::Action> actions) {
    if (actions.empty()) return;
    {
      const std::lock_guard lock{mutex_};
      for (auto& action : actions) queue_.push_back(std::move(action));
    }
    work_cv_.notify_all();
  }

  void drain() {
    std::unique_lock lock{mutex_};
    idle_cv_.wait(lock, [this] { return queue_.empty() && busy_ == 0; });
  }

  void stop() {
    {
      const std::lock_guard lock{mutex_};
      if (stopping_) return;
      stopping_ = true;
    }
    work_cv_.notify_all();
    for (auto& thread : threads_) thread.join();
  }

 private:
  void work() {
    for (;;) {
      core::Action action;
      {
        std::unique_lock lock{mutex_};
        work_cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
        if (queue_.empty()) return;  // stopping, nothing left
        action = std::move(queue_.front());
        queue_.pop_front();
        ++busy_;
      }
      submit(service_.carry_out(action));
      {
        const std::lock_guard lock{mutex_};
        --busy_;
      }
      idle_cv_.notify_all();
      if (service_.options_.on_change) service_.options_.on_change();
    }
  }

  Service& service_;
  std::mutex mutex_;
  std::condition_variable work_cv_;
  std::condition_variable idle_cv_;
  std::deque<core::Action> queue_;
  int busy_ = 0;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

// ---------------------------------------------------------------------------------------------
// Service

namespace {

core::Config machine_view(const core::Config& config, bool listening) {
  core::Config view = config;
  // Without a listener nobody can press a key: answering is the acknowledgement (SPEC §4.2).
  if (!listening) {
    for (auto& patient : view.patients) patient.settings.ack = core::AckMode::answer;
  }
  return view;
}

}  // namespace

Service::Service(const core::Config& config, core::State state, Clock& clock, CgmSource& cgm,
                 Telephony& telephony, StateStorage& store, JournalSink& journal,
                 ServiceOptions options)
    : config_(config),
      clock_(clock),
      cgm_(cgm),
      telephony_(telephony),
      options_(std::move(options)) {
  // Calls decided by an earlier process and never confirmed (SPEC §6): recover_calls().
  orphans_ = core::undispatched_calls(machine_view(config, options_.listening), state);
  orphan_sms_ = core::undispatched_sms(state);
  engine_ = std::make_unique<Engine>(machine_view(config, options_.listening), std::move(state),
                                     store, journal, options_.log_journal);
  for (const auto& patient : engine_->config().patients) patients_[patient.name] = &patient;
  if (options_.workers > 0) workers_ = std::make_unique<Workers>(*this, options_.workers);
}

Service::~Service() { stop(); }

void Service::stop() {
  if (workers_) {
    workers_->drain();
    workers_->stop();
  }
}

void Service::drain() {
  if (workers_) workers_->drain();
}

core::Status Service::save() const { return engine_->save(); }

core::State Service::state() const { return engine_->state(); }

std::vector<core::PatientAssessed> Service::last_assessments() const {
  const std::lock_guard lock{assessed_mutex_};
  return last_assessed_;
}

void Service::apply(const core::Event& event, bool defer_save) {
  auto applied = engine_->apply(event, clock_.now(), defer_save);
  dispatch(std::move(applied.outbound));
}

void Service::dispatch(std::vector<core::Action> actions) {
  if (actions.empty()) return;
  if (workers_) {
    workers_->submit(std::move(actions));
    return;
  }
  // Inline: carry out in order, and what each result causes after what is already queued.
  std::deque<core::Action> queue(std::make_move_iterator(actions.begin()),
                                 std::make_move_iterator(actions.end()));
  while (!queue.empty()) {
    const core::Action action = std::move(queue.front());
    queue.pop_front();
    for (auto& next : carry_out(action)) queue.push_back(std::move(next));
    if (options_.on_change) options_.on_change();
  }
}

std::string Service::render_now(const std::string& patient, const core::Message& message,
                                core::TimePoint now) const {
  if (options_.words) return options_.words(patient, message);
  const auto it = patients_.find(patient);
  if (it == patients_.end()) return patient + ": " + core::alarm_title(message.alarm) + ".";
  const core::Patient& p = *it->second;
  return engine_->read([&](const core::State& state) {
    const auto ps = state.patients.find(patient);
    static const core::PatientState k_none{};
    return render(config_, p, ps == state.patients.end() ? k_none : ps->second, message, now);
  });
}

adapters::CallRequest Service::request_for(const core::PlaceCall& call, std::string text) const {
  adapters::CallRequest request{call.call_key, call.to, std::move(text), call.gather, {}, {}};
  engine_->read([&](const core::State& state) {
    for (const auto& [name, patient] : state.patients) {
      for (const auto* alarm : {&patient.glucose, &patient.data}) {
        if (!alarm->has_value()) continue;
        for (const auto& record : (*alarm)->calls) {
          if (record.key == call.call_key) request.decided_at = record.placed_at;
          if (record.to == call.to && !record.call_id.empty()) {
            request.known_call_ids.push_back(record.call_id);
          }
        }
      }
    }
    return 0;
  });
  if (request.decided_at == core::TimePoint{}) request.decided_at = clock_.now();
  return request;
}

void Service::recover_calls() {
  // SMS decided by an earlier process and never reported sent (SPEC §6): sent again, once, now
  // (no provider lets scout look an SMS up by number; a repeat beats a lost alarm text).
  if (!orphan_sms_.empty()) {
    std::vector<core::Action> resend;
    for (auto& sms : orphan_sms_) {
      const bool pending = engine_->read([&](const core::State& state) {
        return state.sms_in_flight.count(sms.sms_key) != 0;
      });
      if (!pending) continue;
      spdlog::warn("sending again an SMS to {} that an earlier scout decided but may not have "
                   "sent (it stopped in between)", core::mask_phone(sms.to));
      resend.emplace_back(std::move(sms));
    }
    orphan_sms_.clear();
    dispatch(std::move(resend));
  }
  if (orphans_.empty()) return;
  std::vector<core::PlaceCall> later;
  for (auto& call : orphans_) {
    auto request = request_for(call, "");
    const bool still_placing = engine_->read([&](const core::State& state) {
      const auto ps = state.patients.find(call.patient);
      if (ps == state.patients.end()) return false;
      for (const auto* alarm : {&ps->second.glucose, &ps->second.data}) {
        if (!alarm->has_value()) continue;
        for (const auto& record : (*alarm)->calls) {
          if (record.key == call.call_key) {
            return record.progress == core::CallProgress::placing && record.call_id.empty();
          }
        }
      }
      return false;
    });
    if (!still_placing) continue;
    const core::TimePoint now = clock_.now();
    if (now - request.decided_at >= k_redispatch_window) {
      // Too late to be the call the step decided: the chain moves on instead (the next step
      // runs once this call counts as ended).
      spdlog::error("call {} to {} was decided {} ago and never reached a provider; counted as "
                    "failed so the escalation goes on", call.call_key, core::mask_phone(call.to),
                    core::format_age(now - request.decided_at));
      apply(core::CallNotPlaced{call.call_key, "scout stopped before placing it", ""});
      continue;
    }
    const auto found = telephony_.find_call(request);
    if (!found) {
      spdlog::warn("call {} to {}: cannot ask the providers whether it was placed ({}); asking "
                   "again at the next tick", call.call_key, core::mask_phone(call.to),
                   found.error().message);
      later.push_back(std::move(call));
      continue;
    }
    if (*found) {
      spdlog::warn("call {} to {} was placed before scout stopped ({} {}); following it",
                   call.call_key, core::mask_phone(call.to), (*found)->provider, (*found)->id);
      apply(core::CallPlaced{call.call_key, (*found)->provider, (*found)->id, ""});
      continue;
    }
    spdlog::warn("call {} to {} was decided but never placed (scout stopped in between); "
                 "placing it now", call.call_key, core::mask_phone(call.to));
    dispatch({core::Action{std::move(call)}});
  }
  orphans_ = std::move(later);
}

std::vector<core::Action> Service::carry_out(const core::Action& action) {
  Engine::Applied applied;
  if (const auto* call = std::get_if<core::PlaceCall>(&action)) {
    const core::TimePoint at = clock_.now();
    Outbound out{at, true, call->patient, call->alarm_id, call->to, call->to_label,
                 call->message, render_now(call->patient, call->message, at)};
    if (options_.on_outbound) options_.on_outbound(out);
    const auto sent = telephony_.place_call(request_for(*call, out.text));
    if (sent) {
      // Saved with the next save (at most about a second later, Service::flush): a restart
      // before that finds the call at the provider (recover_calls), and a mass event does not
      // rewrite the state file once per call.
      applied = engine_->apply(core::CallPlaced{call->call_key, sent->provider, sent->id, out.text},
                               clock_.now(), /*defer_save=*/true);
    } else {
      applied = engine_->apply(core::CallNotPlaced{call->call_key, sent.error().message, out.text},
                               clock_.now());
    }
  } else if (const auto* sms = std::get_if<core::SendSms>(&action)) {
    const core::TimePoint at = clock_.now();
    Outbound out{at, false, sms->patient, sms->alarm_id, sms->to, sms->to_label, sms->message,
                 render_now(sms->patient, sms->message, at)};
    if (options_.on_outbound) options_.on_outbound(out);
    const auto sent = telephony_.send_sms(sms->to, out.text);
    core::SmsResult result;
    result.sms_key = sms->sms_key;
    result.patient = sms->patient;
    result.alarm_id = sms->alarm_id;
    result.to = sms->to;
    result.sent = static_cast<bool>(sent);
    result.text = out.text;
    if (sent) {
      result.provider = sent->provider;
    } else {
      result.error = sent.error().message;
    }
    // Deferred like CallPlaced: a restart before the save sends it again (at least once).
    applied = engine_->apply(result, clock_.now(), /*defer_save=*/true);
  }
  return std::move(applied.outbound);
}

void Service::notice_clock_jump() {
  const std::lock_guard lock{clock_mutex_};
  const core::TimePoint wall = clock_.now();
  const core::Duration monotonic = clock_.monotonic();
  if (clock_anchor_) {
    const core::Duration drift =
        (wall - clock_anchor_->first) - (monotonic - clock_anchor_->second);
    if (drift >= k_clock_jump || drift <= -k_clock_jump) {
      spdlog::warn("the wall clock jumped by {}{}; scout's own times move with it so that gaps, "
                   "snoozes and step timers keep their length",
                   drift < core::Duration{0} ? "-" : "+",
                   core::format_duration(drift < core::Duration{0} ? -drift : drift));
      apply(core::ClockJumped{drift});
    }
  }
  clock_anchor_ = std::pair{wall, monotonic};
}

void Service::tick() {
  notice_clock_jump();
  recover_calls();
  // Calls decided from here on (by this tick's answers) have nothing to tell yet.
  const core::TimePoint started = clock_.now();
  const core::Duration started_monotonic = clock_.monotonic();
  std::string slowest;  // the patient whose answer came last, and after how long
  core::Duration slowest_after{0};
  const auto& patients = engine_->config().patients;
  std::vector<const core::Patient*> wanted;
  wanted.reserve(patients.size());
  for (const auto& patient : patients) wanted.push_back(&patient);

  // What each patient's state already knows, read under one lock.
  std::vector<core::PollOutcome> known = engine_->read([&](const core::State& state) {
    std::vector<core::PollOutcome> out(patients.size());
    for (std::size_t i = 0; i < patients.size(); ++i) {
      const auto it = state.patients.find(patients[i].name);
      if (it == state.patients.end()) continue;
      out[i].failing_since = it->second.failing_since;
      out[i].last_reading = it->second.facts.latest;
      out[i].last_cadence = it->second.facts.cadence;
    }
    return out;
  });

  std::vector<core::PatientAssessed> assessed_all;
  assessed_all.reserve(patients.size());
  // Where each patient's assessment is in assessed_all (config order; past the end when none).
  std::vector<std::size_t> assessed_at(patients.size(), patients.size());
  // Each batch of answers is assessed and applied as soon as it is in (SPEC §3): a patient whose
  // Nightscout answered is raised and called while others are still being read. Only these
  // patients' time rules run now; everyone's run once every answer is in (SPEC §4.11). The
  // state is saved with the batch only when it has calls or SMS to make (save before acting),
  // else once at the end of the tick.
  const auto on_answers = [&](Answers&& answers) {
    // The clock is read when the answers are in hand, so that ages are not understated.
    const core::TimePoint now = clock_.now();
    if (!answers.empty() && answers.back().first < patients.size()) {
      slowest = patients[answers.back().first].name;
      slowest_after = clock_.monotonic() - started_monotonic;
    }
    core::Assessed batch;
    batch.partial = true;
    batch.patients.reserve(answers.size());
    for (auto& [i, fetched] : answers) {
      if (i >= patients.size()) continue;
      const core::Patient& patient = patients[i];
      core::PollOutcome& outcome = known[i];
      bool& reported = reported_failure_[patient.name];
      if (fetched) {
        outcome.entries = std::move(*fetched);
        outcome.failing_since.reset();
        if (reported) spdlog::info("Nightscout of {} answers again", patient.name);
        reported = false;
      } else {
        const core::Error& error = fetched.error();
        outcome.error = error;
        if (!outcome.failing_since) outcome.failing_since = now;
        // SPEC §3: a 401/403 is logged once per streak at error level.
        if (!reported) {
          if (error.kind == core::ErrorKind::auth) {
            spdlog::error("Nightscout of {} refuses scout's credentials (check the token or "
                          "api_secret): {}", patient.name, error.message);
          } else {
            spdlog::warn("cannot read the Nightscout of {}: {}", patient.name, error.message);
          }
          reported = true;
        } else {
          spdlog::debug("cannot read the Nightscout of {}: {}", patient.name, error.message);
        }
      }
      core::PatientAssessed one{patient.name, assess(patient, outcome, now)};
      if (one.assessment.latest) {
        spdlog::debug("{}: {} mg/dL {} age {}", patient.name, one.assessment.latest->sgv,
                      one.assessment.latest->direction, core::format_age(*one.assessment.age));
      }
      // Freed, not cleared: ten thousand patients' answers are not all held until the tick ends.
      outcome.entries = std::vector<core::Entry>{};
      batch.patients.push_back(one);
      assessed_at[i] = assessed_all.size();
      assessed_all.push_back(std::move(one));
    }
    if (!batch.patients.empty()) apply(batch, /*defer_save=*/true);
  };
  cgm_.fetch_each(wanted, on_answers);
  // Every answer is in: the time rules for everyone, and the tick's save.
  apply(core::Tick{});
  {
    // Kept for check's report (config order); moved, not copied, on the run path.
    std::vector<core::PatientAssessed> ordered;
    ordered.reserve(assessed_all.size());
    for (const std::size_t at : assessed_at) {
      if (at < assessed_all.size()) ordered.push_back(std::move(assessed_all[at]));
    }
    const std::lock_guard lock{assessed_mutex_};
    last_assessed_ = std::move(ordered);
  }
  poll_calls_placed_before(started);
  advance();
  if (options_.log_ticks) {
    // SPEC §6: one line per tick at info.
    std::size_t failed = 0;
    {
      const std::lock_guard lock{assessed_mutex_};
      for (const auto& one : last_assessed_) failed += one.assessment.poll_error ? 1 : 0;
    }
    // Only the patients with an alarm active can count (Engine::read_alarmed).
    const auto [alarms, calls] = engine_->read_alarmed([](const core::State& state,
                                                          const std::set<std::string>& alarmed) {
      std::size_t a = 0;
      std::size_t c = 0;
      core::for_each_alarmed(state, alarmed, [&](const std::string&, const core::PatientState& ps) {
        for (const auto* slot : {&ps.glucose, &ps.data}) {
          if (!*slot) continue;
          ++a;
          for (const auto& call : (*slot)->calls) c += core::is_final(call.progress) ? 0 : 1;
        }
      });
      return std::pair{a, c};
    });
    std::vector<std::pair<std::string, std::string>> fields{
        {"patients", std::to_string(patients.size())},
        {"failed", std::to_string(failed)},
        {"alarms", std::to_string(alarms)},
        {"calls_in_flight", std::to_string(calls)},
        {"took_ms", std::to_string((clock_.monotonic() - started_monotonic).count())}};
    if (!slowest.empty()) {
      fields.emplace_back("slowest", slowest);
      fields.emplace_back("slowest_ms", std::to_string(slowest_after.count()));
    }
    log_fields(spdlog::level::info, "tick", fields);
  }
}

namespace {

struct InFlight {
  std::string key;
  std::string provider;
  std::string call_id;
  core::TimePoint placed_at{};
};

// Calls live in active alarms: only the patients in `alarmed` (Engine::read_alarmed) are looked at.
std::vector<InFlight> in_flight(const core::State& state, const std::set<std::string>& alarmed) {
  std::vector<InFlight> calls;
  core::for_each_alarmed(state, alarmed, [&](const std::string&, const core::PatientState& ps) {
    for (const auto* alarm : {&ps.glucose, &ps.data}) {
      if (!alarm->has_value()) continue;
      for (const auto& call : (*alarm)->calls) {
        if (!call.call_id.empty() && !call.provider.empty() && !core::is_final(call.progress)) {
          calls.push_back({call.key, call.provider, call.call_id, call.placed_at});
        }
      }
    }
  });
  return calls;
}

}  // namespace

bool Service::calls_in_flight() const { return !engine_->read_alarmed(in_flight).empty(); }

void Service::poll_calls() {
  notice_clock_jump();
  poll_calls_placed_before(clock_.now() + core::Duration{1});
}

void Service::poll_calls_placed_before(core::TimePoint before) {
  for (const auto& call : engine_->read_alarmed(in_flight)) {
    if (call.placed_at >= before) continue;
    if (options_.listening && clock_.now() - call.placed_at < k_webhook_grace) continue;
    const auto status = telephony_.poll_call(call.provider, call.call_id);
    if (!status) {
      spdlog::warn("cannot ask {} about call {}: {}", call.provider, call.key,
                   status.error().error.message);
      continue;
    }
    if (!status->digits.empty()) {
      apply(core::Keypress{call.key, call.call_id, status->digits});
    }
    // A call resource that says `completed` was answered (an unanswered call ends as
    // unanswered, busy, timeout, ...); polling may never have seen it in progress.
    if (status->progress == core::CallProgress::completed) {
      apply(core::CallUpdate{call.key, call.call_id, core::CallProgress::answered, "polled"},
            /*defer_save=*/true);
    }
    if (status->progress != core::CallProgress::ringing) {
      apply(core::CallUpdate{call.key, call.call_id, status->progress, status->detail},
            /*defer_save=*/true);
    }
  }
}

void Service::advance() {
  notice_clock_jump();
  for (int i = 0; i < k_max_ticks_per_advance; ++i) {
    const core::TimePoint now = clock_.now();
    const auto due = engine_->next_due(now);
    if (!due || *due > now) return;
    apply(core::Tick{});
  }
}

std::optional<core::TimePoint> Service::next_due() const { return engine_->next_due(clock_.now()); }

core::Status Service::flush() { return engine_->flush(clock_.now()); }

std::optional<core::KeypressReply> Service::deliver(const core::Event& event) {
  notice_clock_jump();
  // A call's progress is saved with the next save (a restart asks the provider again); a
  // keypress (an acknowledgement, an escalation) is saved before it is answered.
  const bool progress_only = std::holds_alternative<core::CallUpdate>(event);
  auto applied = engine_->apply(event, clock_.now(), progress_only);
  auto reply = std::move(applied.reply);
  if (reply && reply->message) reply->text = render_now(reply->patient, *reply->message, clock_.now());
  dispatch(std::move(applied.outbound));
  if (options_.on_change) options_.on_change();
  return reply;
}

core::CommandOutcome Service::command(const core::ShellCommand& command) {
  notice_clock_jump();
  auto applied = engine_->apply(command, clock_.now());
  dispatch(std::move(applied.outbound));
  if (options_.on_change) options_.on_change();
  return applied.command.value_or(core::CommandOutcome{});
}

}  // namespace scout::app
