#include "scout/core/alarm.hpp"

#include <algorithm>
#include <array>
#include <string_view>
#include <unordered_map>

#include "scout/core/message.hpp"
#include "scout/core/redact.hpp"
#include "scout/core/units.hpp"

namespace scout::core {

namespace {

// SPEC §4.6: limits count what happened to a number "in the last hour".
constexpr Duration k_usage_window = std::chrono::hours{1};

using Fields = std::vector<std::pair<std::string, std::string>>;

enum class Side { none, low, high };

Side side_of(AlarmKind kind) {
  switch (kind) {
    case AlarmKind::urgent_low:
    case AlarmKind::urgent_low_soon:
    case AlarmKind::low:
      return Side::low;
    case AlarmKind::urgent_high:
    case AlarmKind::high:
      return Side::high;
    case AlarmKind::stale:
    case AlarmKind::unreachable:
    case AlarmKind::sensor_error:
      return Side::none;
  }
  return Side::none;
}

// True when `a` ranks above `b`: urgent before warning, then the SPEC §4 kind order (the same
// order as Assessment::worst).
bool outranks(const Alarm& a, const Alarm& b) {
  if (a.severity != b.severity) {
    return a.severity == Severity::urgent;
  }
  return static_cast<int>(a.kind) < static_cast<int>(b.kind);
}

// How far a call that is not final has got. Updates that do not move a call forward are
// duplicates or arrived out of order (providers retry and reorder webhooks): they change nothing.
int progress_rank(CallProgress progress) {
  switch (progress) {
    case CallProgress::placing:
      return 0;
    case CallProgress::ringing:
      return 1;
    case CallProgress::answered:
      return 2;
    case CallProgress::human:
      return 3;
    default:
      return 4;  // final
  }
}


// The chain an alarm runs: the most severe kind of the episode picks it (SPEC §4).
const std::vector<EscalationStep>& chain_of(const AlarmSettings& settings, const ActiveAlarm& a) {
  return a.peak.severity == Severity::urgent ? settings.escalation.urgent
                                             : settings.escalation.warning;
}

// True when step next_step-1 of the current run placed at least one call and every call it
// placed has ended without an acknowledgement (SPEC §4.1 item 1).
bool previous_step_unanswered(const ActiveAlarm& a) {
  if (a.next_step <= 0) {
    return false;
  }
  bool any = false;
  for (const auto& call : a.calls) {
    if (call.run != a.run || call.step != a.next_step - 1) {
      continue;
    }
    if (!is_final(call.progress) || call.acknowledged) {
      return false;
    }
    any = true;
  }
  return any;
}

// "30 minutes", "1 minute", or "1m30s" when not whole minutes; for spoken replies.
std::string spoken_duration(Duration d) {
  const auto minutes = std::chrono::duration_cast<std::chrono::minutes>(d);
  if (minutes > std::chrono::minutes{0} && minutes == d) {
    return std::to_string(minutes.count()) + (minutes.count() == 1 ? " minute" : " minutes");
  }
  return format_duration(d);
}

struct Target {
  std::string number;
  std::string label;
};

struct Hold {
  std::string code;  // the setting that held the call back
  std::string text;  // why, for the person reading the SMS
};

struct CallRef {
  const Patient* patient = nullptr;
  ActiveAlarm* alarm = nullptr;
  CallRecord* call = nullptr;
};

// One application of step(): the state being changed and the actions emitted so far.
// What a call or SMS of `a` is about; a data alarm names the glucose alarm it holds (§4.9).
Message message_for(const PatientState& ps, const ActiveAlarm& a,
                    MessagePurpose purpose = MessagePurpose::alarm) {
  Message m;
  m.purpose = purpose;
  m.alarm = a.alarm;
  if (side_of(a.peak.kind) == Side::none && ps.glucose) m.paused = ps.glucose->alarm;
  return m;
}

class Machine {
 public:
  Machine(const Config& config, const PatientIndex& index, State& state, TimePoint now)
      : config_(config), index_(index), state_(state), now_(now) {}

  const Patient* patient_named(const std::string& name) const { return index_.find(name); }

  std::vector<Action> actions;
  // Set by a partial Assessed: the only patients whose time rules run in this event (config
  // order).
  std::optional<std::vector<const Patient*>> advance_only_;
  std::optional<KeypressReply> reply;
  std::optional<CommandOutcome> command;

  void drop_removed_patients() {
    for (auto it = state_.patients.begin(); it != state_.patients.end();) {
      if (patient_named(it->first) != nullptr) {
        ++it;
        continue;
      }
      std::string ids;
      for (const auto* slot : {&it->second.glucose, &it->second.data}) {
        if (*slot) {
          if (!ids.empty()) ids += ",";
          ids += (*slot)->id;
        }
      }
      journal("patient_removed", it->first, "", {{"alarms", ids}});
      std::erase_if(state_.sms_in_flight,
                    [&](const auto& entry) { return entry.second.patient == it->first; });
      it = state_.patients.erase(it);
    }
  }

  void prune_usage() {
    // An SMS whose result never came (a process that died mid-send is recovered at its restart)
    // is not kept for ever.
    std::erase_if(state_.sms_in_flight, [this](const auto& entry) {
      return entry.second.decided_at <= now_ - std::chrono::hours{24};
    });
    const auto cutoff = now_ - k_usage_window;
    const auto old = [cutoff](TimePoint t) { return t <= cutoff; };
    for (auto it = state_.numbers.begin(); it != state_.numbers.end();) {
      auto& usage = it->second;
      usage.calls.erase(std::remove_if(usage.calls.begin(), usage.calls.end(), old),
                        usage.calls.end());
      usage.sms.erase(std::remove_if(usage.sms.begin(), usage.sms.end(), old), usage.sms.end());
      if (usage.calls.empty() && usage.sms.empty()) {
        it = state_.numbers.erase(it);
      } else {
        ++it;
      }
    }
  }

  void operator()(const Assessed& e) {
    for (const auto& patient : e.patients) (*this)(patient);
    if (e.partial) {
      std::vector<std::pair<std::size_t, const Patient*>> named;
      named.reserve(e.patients.size());
      for (const auto& patient : e.patients) {
        if (const auto* p = index_.find(patient.patient)) {
          named.emplace_back(index_.position(patient.patient), p);
        }
      }
      std::sort(named.begin(), named.end());
      named.erase(std::unique(named.begin(), named.end()), named.end());
      advance_only_.emplace();
      advance_only_->reserve(named.size());
      for (const auto& [position, p] : named) advance_only_->push_back(p);
    }
  }

  void operator()(const PatientAssessed& e) {
    const Patient* patient = patient_named(e.patient);
    if (patient == nullptr) {
      journal("unknown_call", e.patient, "", {{"reason", "unknown patient"}},
              JournalEntry::Level::warn);
      return;
    }
    auto& ps = state_.patients[e.patient];
    const Assessment& as = e.assessment;

    if (as.poll_error) {
      if (!ps.failing_since) ps.failing_since = now_;
    } else {
      ps.failing_since.reset();
    }
    ps.facts = update_facts(ps.facts, as, patient->settings);

    // SPEC §4.5: only a fresh usable reading from a successful poll resolves anything.
    const bool fresh = as.fresh();
    // (The value itself, not an optional copy: g++ 12 -O2 misreads the optional's payload as
    // maybe-uninitialized in resolve(); -1 = no reading.)
    const int sgv_or_none = as.latest ? as.latest->sgv : -1;
    const auto sgv = [sgv_or_none] {
      return sgv_or_none < 0 ? std::optional<int>{} : std::optional<int>{sgv_or_none};
    };

    // Data class first: when it resolves on fresh data, a glucose alarm that still holds
    // restarts its chain (SPEC §4.10).
    bool data_returned = false;
    if (!ps.data) {
      if (as.data) raise(*patient, ps.data, *as.data, {}, nullptr);
    } else if (as.data) {
      hold_or_replace(*patient, ps.data, *as.data);
    } else if (fresh) {
      resolve(*patient, ps.data, sgv(), "data_back");
      data_returned = true;
    }

    // Glucose class.
    const std::string held_id = ps.glucose ? ps.glucose->id : "";
    if (!ps.glucose) {
      if (as.glucose) raise(*patient, ps.glucose, *as.glucose, {}, nullptr);
    } else {
      const Side side = side_of(ps.glucose->peak.kind);
      if (as.glucose && side_of(as.glucose->kind) != side) {
        resolve(*patient, ps.glucose, sgv(), "other_side");
        raise(*patient, ps.glucose, *as.glucose, {}, nullptr);
      } else if (as.glucose) {
        hold_or_replace(*patient, ps.glucose, *as.glucose);
        if (ps.glucose) ps.glucose->in_band = false;
      } else if (fresh) {
        const int hysteresis = patient->settings.hysteresis;
        const int value = as.latest->sgv;
        const bool back = side == Side::low
                              ? value >= as.thresholds.low + hysteresis
                              : (side == Side::high && value <= as.thresholds.high - hysteresis);
        if (back) {
          resolve(*patient, ps.glucose, sgv(), "back_in_range");
        } else {
          ps.glucose->in_band = true;
        }
      }
    }
    // SPEC §4.10: fresh data after a data alarm and the same glucose alarm still holds: its
    // chain starts again from the first step, and a snooze given meanwhile ends.
    if (data_returned && ps.glucose && ps.glucose->id == held_id) {
      ActiveAlarm& a = *ps.glucose;
      if (a.snoozed_until) {
        journal("snooze_ended", patient->name, a.id,
                {{"by", a.acknowledged_by}, {"reason", "data_returned"}});
        a.snoozed_until.reset();
        a.acknowledged_at.reset();
        a.acknowledged_by.clear();
      }
      restart(*patient, a, "data_returned");
    }
  }

  void operator()(const CallPlaced& e) {
    const CallRef ref = find_call(e.call_key, "");
    if (ref.call == nullptr) {
      unknown_call(e.call_key, e.call_id, {{"event", "call_placed"}});
      return;
    }
    CallRecord& call = *ref.call;
    if (call.call_id == e.call_id && call.provider == e.provider) {
      return;  // a repeat
    }
    call.call_id = e.call_id;
    call.provider = e.provider;
    // A webhook may have moved the call on before the provider's answer reached us.
    if (call.progress == CallProgress::placing) call.progress = CallProgress::ringing;
    Fields fields{{"provider", e.provider}, {"call_id", e.call_id}};
    if (!e.text.empty()) fields.emplace_back("text", e.text);
    journal("call_placed", ref.patient->name, ref.alarm->id, with_call(call, std::move(fields)));
  }

  void operator()(const CallNotPlaced& e) {
    const CallRef ref = find_call(e.call_key, "");
    if (ref.call == nullptr) {
      unknown_call(e.call_key, "", {{"event", "call_not_placed"}});
      return;
    }
    CallRecord& call = *ref.call;
    if (is_final(call.progress)) return;
    call.progress = CallProgress::failed;
    call.ended_at = now_;
    Fields fields{{"error", e.error}};
    if (!e.text.empty()) fields.emplace_back("text", e.text);
    journal("call_not_placed", ref.patient->name, ref.alarm->id, with_call(call, std::move(fields)),
            JournalEntry::Level::error);
  }

  void operator()(const CallUpdate& e) {
    const CallRef ref = find_call(e.call_key, e.call_id);
    if (ref.call == nullptr) {
      unknown_call(e.call_key, e.call_id,
                   {{"event", "call_update"}, {"progress", to_string(e.progress)}});
      return;
    }
    CallRecord& call = *ref.call;
    if (is_final(call.progress) || call.progress == e.progress) return;
    if (!is_final(e.progress) && progress_rank(e.progress) <= progress_rank(call.progress)) return;
    const bool was_answered = call.answered;
    call.progress = e.progress;
    if (e.progress == CallProgress::answered || e.progress == CallProgress::human) {
      call.answered = true;
    }
    if (is_final(e.progress)) call.ended_at = now_;
    Fields fields{{"progress", to_string(e.progress)}};
    if (!e.detail.empty()) fields.emplace_back("detail", e.detail);
    journal("call_outcome", ref.patient->name, ref.alarm->id, with_call(call, std::move(fields)));
    // SPEC §4.2: with ack: answer a person answering is the acknowledgement; a machine never is.
    if (ref.patient->settings.ack == AckMode::answer &&
        (e.progress == CallProgress::human ||
         (e.progress == CallProgress::completed && was_answered))) {
      acknowledge(*ref.patient, *ref.alarm, call);
    }
  }

  void operator()(const Keypress& e) {
    const CallRef ref = find_call(e.call_key, e.call_id);
    if (ref.call == nullptr) {
      unknown_call(e.call_key, e.call_id, {{"event", "keypress"}, {"digits", e.digits}});
      // The alarm may have been replaced by a more severe one: never say that all is well.
      reply = KeypressReply{KeypressReply::Kind::unknown_call,
                            "This call is out of date. Scout will call again if there is still "
                            "an alarm. Goodbye."};
      return;
    }
    const Patient& patient = *ref.patient;
    ActiveAlarm& alarm = *ref.alarm;
    CallRecord& call = *ref.call;
    journal("keypress", patient.name, alarm.id, with_call(call, {{"digits", e.digits}}));
    if (!e.digits.empty()) call.answered = true;

    if (e.digits == "1") {
      acknowledge(patient, alarm, call);
      reply = KeypressReply{KeypressReply::Kind::acknowledged,
                            "Acknowledged. Snoozed for " +
                                spoken_duration(snooze_for(patient.settings, alarm.alarm.kind)) +
                                ". Goodbye.",
                            std::nullopt, patient.name};
    } else if (e.digits == "2") {
      std::string text = "Alerting your contacts now. Goodbye.";
      if (!call.escalated) {
        call.escalated = true;
        // While a glucose alarm is paused (SPEC §4.9) the data alarm speaks for the patient.
        PatientState& ps = state_.patients[patient.name];
        ActiveAlarm* target = &alarm;
        if (ps.glucose && ref.alarm == &*ps.glucose) {
          if (ps.data) {
            target = &*ps.data;
          } else if (glucose_paused(ps, patient.settings, now_)) {
            target = nullptr;
            text = "The glucose data are out of date. Scout will call again when new data "
                   "arrive. Goodbye.";
          }
        }
        if (target != nullptr) {
          const auto& steps = chain_of(patient.settings, *target);
          if (!steps.empty()) {
            const auto last = static_cast<int>(steps.size()) - 1;
            run_step(patient, *target, std::min(target->next_step, last), "keypress");
          }
        }
      }
      reply = KeypressReply{KeypressReply::Kind::escalated, text, std::nullopt, patient.name};
    } else if (e.digits.empty()) {
      reply = KeypressReply{KeypressReply::Kind::no_input, "Goodbye.", std::nullopt, patient.name};
    } else {
      reply = KeypressReply{KeypressReply::Kind::repeat_prompt, "",
                            message_for(state_.patients[patient.name], alarm), patient.name};
    }
  }

  void operator()(const SmsResult& e) {
    // Done either way: sent, or given up on by every provider (journaled, SPEC §4.7).
    state_.sms_in_flight.erase(e.sms_key);
    if (e.sent) {
      Fields fields{{"sms", e.sms_key}, {"to", mask_phone(e.to)}, {"provider", e.provider}};
      if (!e.text.empty()) fields.emplace_back("text", e.text);
      journal("sms_sent", e.patient, e.alarm_id, std::move(fields));
    } else {
      Fields fields{{"sms", e.sms_key}, {"to", mask_phone(e.to)}, {"error", e.error}};
      if (!e.text.empty()) fields.emplace_back("text", e.text);
      journal("sms_failed", e.patient, e.alarm_id, std::move(fields), JournalEntry::Level::error);
    }
  }

  void operator()(const Tick&) {}

  // SPEC §1, §4.13: `scout ack|snooze|unsnooze` from the shell.
  void operator()(const ShellCommand& e) {
    CommandOutcome outcome;
    const std::string verb = to_string(e.kind);
    const auto ignored = [&](const std::string& why) {
      journal("command_ignored", e.patient, "",
              {{"command", verb}, {"request", e.id}, {"by", e.by}, {"reason", why}},
              JournalEntry::Level::warn);
      outcome.lines.push_back(why);
      command = std::move(outcome);
    };
    const Patient* patient = patient_named(e.patient);
    if (patient == nullptr) return ignored("no patient named " + e.patient);
    const auto it = state_.patients.find(e.patient);
    std::vector<ActiveAlarm*> alarms;
    if (it != state_.patients.end()) {
      for (auto* slot : {&it->second.glucose, &it->second.data}) {
        if (!*slot) continue;
        ActiveAlarm& a = **slot;
        const bool glucose = slot == &it->second.glucose;
        if (!e.only.empty() && e.only != to_string(a.alarm.kind) &&
            e.only != (glucose ? "glucose" : "data")) {
          continue;
        }
        alarms.push_back(&a);
      }
    }
    if (alarms.empty()) {
      return ignored(e.patient + " has no active " + (e.only.empty() ? "" : e.only + " ") +
                     "alarm");
    }
    const std::string by = e.by.empty() ? "shell" : e.by;
    const auto name_of = [](const ActiveAlarm& a) { return alarm_title(a.alarm); };
    for (ActiveAlarm* a : alarms) {
      switch (e.kind) {
        case ShellCommand::Kind::ack: {
          if (a->snoozed_until) {
            outcome.lines.push_back(name_of(*a) + " was already snoozed for " +
                                    format_duration(std::chrono::ceil<std::chrono::seconds>(
                                        *a->snoozed_until - now_)) +
                                    " more");
            break;
          }
          const Duration snooze = snooze_for(patient->settings, a->alarm.kind);
          a->snoozed_until = now_ + snooze;
          a->acknowledged_at = now_;
          a->acknowledged_by = by;
          journal("acknowledged", patient->name, a->id,
                  {{"by", by}, {"via", "shell"}, {"request", e.id},
                   {"snooze", format_duration(snooze)}});
          outcome.changed = true;
          outcome.lines.push_back(name_of(*a) + " acknowledged by " + by + ", snoozed for " +
                                  format_duration(snooze));
          break;
        }
        case ShellCommand::Kind::snooze: {
          a->snoozed_until = now_ + e.duration;
          a->acknowledged_at.reset();  // a fixed end: a change of kind does not move it
          a->acknowledged_by = by;
          journal("snoozed", patient->name, a->id,
                  {{"by", by}, {"via", "shell"}, {"request", e.id},
                   {"snooze", format_duration(e.duration)}});
          outcome.changed = true;
          outcome.lines.push_back(name_of(*a) + " snoozed for " + format_duration(e.duration) +
                                  " by " + by);
          break;
        }
        case ShellCommand::Kind::unsnooze: {
          if (!a->snoozed_until) {
            outcome.lines.push_back(name_of(*a) + " was not snoozed");
            break;
          }
          // The snooze ends now: advance() ends it and restarts the chain in this event.
          a->snoozed_until = now_;
          journal("unsnoozed", patient->name, a->id,
                  {{"by", by}, {"via", "shell"}, {"request", e.id}});
          outcome.changed = true;
          outcome.lines.push_back(name_of(*a) + " unsnoozed by " + by +
                                  ": its escalation starts again now");
          break;
        }
      }
    }
    if (!outcome.changed) {
      journal("command_ignored", e.patient, "",
              {{"command", verb}, {"request", e.id}, {"by", by}, {"reason", "nothing to change"}},
              JournalEntry::Level::info);
    }
    command = std::move(outcome);
  }

  void operator()(const ClockJumped& e) {
    const Duration d = e.offset;
    const auto move = [d](TimePoint& t) { t += d; };
    const auto move_optional = [d](std::optional<TimePoint>& t) {
      if (t) *t += d;
    };
    for (auto& [name, ps] : state_.patients) {
      move_optional(ps.failing_since);
      for (auto* slot : {&ps.glucose, &ps.data}) {
        if (!*slot) continue;
        ActiveAlarm& a = **slot;
        move(a.raised_at);
        move(a.chain_start);
        move_optional(a.last_step_at);
        move_optional(a.snoozed_until);
        move_optional(a.acknowledged_at);
        for (auto& call : a.calls) {
          move(call.placed_at);
          move_optional(call.ended_at);
        }
      }
    }
    for (auto& [number, usage] : state_.numbers) {
      for (auto& t : usage.calls) move(t);
      for (auto& t : usage.sms) move(t);
    }
    for (auto& [key, sms] : state_.sms_in_flight) move(sms.decided_at);
    journal("clock_jumped", "", "", {{"offset", (d < Duration{0} ? "-" : "+") +
                                                    format_duration(d < Duration{0} ? -d : d)}},
            JournalEntry::Level::warn);
  }

  // The time-based rules, for every patient in config order, glucose alarm before data alarm.
  void advance_all() {
    if (advance_only_) {
      for (const Patient* patient : *advance_only_) advance_patient(*patient);
      return;
    }
    for (const auto& patient : config_.patients) advance_patient(patient);
  }

  void advance_patient(const Patient& patient) {
    const auto it = state_.patients.find(patient.name);
    if (it == state_.patients.end()) return;
    PatientState& ps = it->second;
    // SPEC §4.9: a glucose alarm's chain pauses while the data are stale or a data alarm
    // speaks for the patient.
    if (ps.glucose) {
      advance(patient, *ps.glucose, glucose_paused(ps, patient.settings, now_));
      forget_old_calls(*ps.glucose);
    }
    if (ps.data) {
      advance(patient, *ps.data, false);
      forget_old_calls(*ps.data);
    }
  }

  // A call that ended more than k_call_memory ago can no longer get a webhook or a keypress
  // (calls last at most minutes) and has done its part for the escalation: drop it, so a
  // days-long alarm does not grow the state file without bound.
  void forget_old_calls(ActiveAlarm& alarm) {
    std::erase_if(alarm.calls, [this](const CallRecord& call) {
      return is_final(call.progress) && now_ - call.ended_at.value_or(call.placed_at) > k_call_memory;
    });
  }

 private:
  const Config& config_;
  const PatientIndex& index_;
  State& state_;
  TimePoint now_;
  std::vector<std::string> stepped_;  // ids of alarms that ran a step in this event

  std::string new_id(char prefix) {
    std::string id(1, prefix);
    id += std::to_string(state_.next_id++);
    return id;
  }

  void journal(std::string type, std::string patient, std::string alarm_id, Fields fields,
               JournalEntry::Level level = JournalEntry::Level::info) {
    actions.emplace_back(JournalEntry{now_, std::move(type), std::move(patient),
                                      std::move(alarm_id), std::move(fields), level});
  }

  static Fields with_call(const CallRecord& call, Fields extra) {
    Fields fields{{"call", call.key},
                  {"to", mask_phone(call.to)},
                  {"to_label", call.to_label},
                  {"run", std::to_string(call.run)},
                  {"step", std::to_string(call.step)}};
    for (auto& f : extra) fields.push_back(std::move(f));
    return fields;
  }

  static Fields alarm_fields(const Alarm& alarm) {
    return {{"kind", to_string(alarm.kind)}, {"severity", to_string(alarm.severity)}};
  }

  void unknown_call(const std::string& key, const std::string& id, Fields extra) {
    Fields fields{{"call", key}, {"call_id", id}};
    for (auto& f : extra) fields.push_back(std::move(f));
    journal("unknown_call", "", "", std::move(fields), JournalEntry::Level::warn);
  }

  CallRef find_call(const std::string& key, const std::string& id) {
    if (key.empty() && id.empty()) return {};
    for (auto& [name, ps] : state_.patients) {
      for (auto* slot : {&ps.glucose, &ps.data}) {
        if (!*slot) continue;
        for (auto& call : (*slot)->calls) {
          bool match = key.empty() ? call.call_id == id : call.key == key;
          // The key comes from the webhook URL, which a provider's signature does not cover:
          // when both ids are known they must agree (a replayed or stale webhook, or a key
          // reused after the state was reset, must not touch another call).
          if (match && !key.empty() && !id.empty() && !call.call_id.empty() && call.call_id != id) {
            match = false;
          }
          if (match) return CallRef{patient_named(name), &**slot, &call};
        }
      }
    }
    return {};
  }

  // What a call or SMS of `a` is about; a data alarm names the glucose alarm it holds (§4.9).

  void raise(const Patient& patient, std::optional<ActiveAlarm>& slot, const Alarm& alarm,
             std::vector<std::string> notified, const ActiveAlarm* replaced) {
    ActiveAlarm a;
    a.id = new_id('a');
    a.alarm = alarm;
    a.peak = alarm;
    a.raised_at = now_;
    a.chain_start = now_;
    a.notified = std::move(notified);
    Fields fields = alarm_fields(alarm);
    if (replaced != nullptr) {
      fields.emplace_back("replaces", replaced->id);
      fields.emplace_back("replaced_kind", to_string(replaced->alarm.kind));
    }
    fields.emplace_back("chain", to_string(alarm.severity));
    journal(replaced != nullptr ? "alarm_replaced" : "alarm_raised", patient.name, a.id,
            std::move(fields), JournalEntry::Level::warn);
    slot = std::move(a);
  }

  void hold_or_replace(const Patient& patient, std::optional<ActiveAlarm>& slot,
                       const Alarm& alarm) {
    // A glucose alarm is replaced by a more severe kind; a data alarm only when it worsens
    // from warning to urgent (SPEC §4.12): unreachable -> stale is no reason to call again.
    const bool glucose = side_of(slot->peak.kind) != Side::none;
    const bool replace = glucose ? outranks(alarm, slot->peak)
                                 : (alarm.severity == Severity::urgent &&
                                    slot->peak.severity != Severity::urgent);
    if (replace) {
      const ActiveAlarm old = std::move(*slot);
      slot.reset();
      raise(patient, slot, alarm, old.notified, &old);
      return;
    }
    ActiveAlarm& a = *slot;
    if (a.alarm != alarm) {
      Fields fields = alarm_fields(alarm);
      fields.emplace_back("from", to_string(a.alarm.kind));
      journal("alarm_updated", patient.name, a.id, std::move(fields));
    }
    a.alarm = alarm;
    if (a.acknowledged_at && a.snoozed_until) {
      a.snoozed_until = *a.acknowledged_at + snooze_for(patient.settings, a.alarm.kind);
    }
  }

  std::string label_for(const Patient& patient, const ActiveAlarm& a, const std::string& number) {
    if (number == patient.phone) return "patient";
    for (const auto& contact : patient.contacts) {
      if (contact.phone == number) return contact.name;
    }
    for (const auto& call : a.calls) {
      if (call.to == number) return call.to_label;
    }
    return "";
  }

  void resolve(const Patient& patient, std::optional<ActiveAlarm>& slot, std::optional<int> sgv,
               const std::string& reason) {
    const ActiveAlarm a = std::move(*slot);
    slot.reset();
    Fields fields = alarm_fields(a.alarm);
    fields.emplace_back("reason", reason);
    if (sgv && side_of(a.peak.kind) != Side::none) fields.emplace_back("sgv", std::to_string(*sgv));
    journal("alarm_resolved", patient.name, a.id, std::move(fields));
    if (!patient.settings.notify_resolved) return;
    // The all-clear names the most severe kind of the episode: what people were called about.
    Message text;
    text.purpose = MessagePurpose::resolved;
    text.alarm = a.peak;
    for (const auto& number : a.notified) {
      send_sms(patient, a.id, Target{number, label_for(patient, a, number)}, text,
               {{"reason", "resolved"}});
    }
  }

  void note_notified(ActiveAlarm& a, const std::string& number) {
    if (std::find(a.notified.begin(), a.notified.end(), number) == a.notified.end()) {
      a.notified.push_back(number);
    }
  }

  // Emits an SMS unless the number had max_sms_per_hour SMS in the last hour. True when sent.
  bool send_sms(const Patient& patient, const std::string& alarm_id, const Target& to,
                const Message& text, Fields extra) {
    const auto it = state_.numbers.find(to.number);
    const auto sent = it == state_.numbers.end() ? std::size_t{0} : it->second.sms.size();
    Fields fields{{"to", mask_phone(to.number)}, {"to_label", to.label}};
    for (auto& f : extra) fields.push_back(std::move(f));
    if (static_cast<long long>(sent) >= patient.settings.max_sms_per_hour) {
      fields.emplace_back("limit",
                          "max_sms_per_hour " + std::to_string(patient.settings.max_sms_per_hour));
      journal("sms_suppressed", patient.name, alarm_id, std::move(fields),
              JournalEntry::Level::error);
      return false;
    }
    SendSms sms{new_id('s'), patient.name, alarm_id, to.number, to.label, text};
    fields.insert(fields.begin(), std::pair<std::string, std::string>{"sms", sms.sms_key});
    state_.numbers[to.number].sms.push_back(now_);
    state_.sms_in_flight[sms.sms_key] =
        PendingSms{patient.name, alarm_id, to.number, to.label, text, now_};
    actions.emplace_back(std::move(sms));
    journal("sms", patient.name, alarm_id, std::move(fields));
    return true;
  }

  std::optional<Hold> call_hold(const AlarmSettings& settings, const std::string& number) const {
    const auto it = state_.numbers.find(number);
    if (it == state_.numbers.end() || it->second.calls.empty()) return std::nullopt;
    const auto& calls = it->second.calls;
    const Duration since = now_ - calls.back();
    if (since < settings.min_call_gap) {
      return Hold{"min_call_gap", "called " + format_duration(since) + " ago"};
    }
    if (static_cast<long long>(calls.size()) >= settings.max_calls_per_hour) {
      return Hold{"max_calls_per_hour", std::to_string(calls.size()) + " calls in the last hour"};
    }
    return std::nullopt;
  }

  // Targets of a step list in order, numbers deduplicated (the first label wins).
  static std::vector<Target> targets(const Patient& patient,
                                     const std::vector<std::string>& names) {
    std::vector<Target> out;
    const auto add = [&out](const std::string& number, const std::string& label) {
      if (number.empty()) return;
      for (const auto& t : out) {
        if (t.number == number) return;
      }
      out.push_back(Target{number, label});
    };
    for (const auto& name : names) {
      if (name == "patient") {
        add(patient.phone, "patient");
      } else if (name == "contacts") {
        for (const auto& contact : patient.contacts) add(contact.phone, contact.name);
      } else {
        for (const auto& contact : patient.contacts) {
          if (contact.name == name) {
            add(contact.phone, contact.name);
            break;
          }
        }
      }
    }
    return out;
  }

  void run_step(const Patient& patient, ActiveAlarm& a, int index, const std::string& reason) {
    const PatientState& ps = state_.patients[patient.name];
    const auto& steps = chain_of(patient.settings, a);
    const EscalationStep& step = steps[static_cast<std::size_t>(index)];
    stepped_.push_back(a.id);
    a.last_step_at = now_;
    a.next_step = std::max(a.next_step, index + 1);
    Fields fields{{"run", std::to_string(a.run)}, {"step", std::to_string(index)}};
    for (auto& f : alarm_fields(a.alarm)) fields.push_back(std::move(f));
    fields.emplace_back("reason", reason);
    journal("step", patient.name, a.id, std::move(fields));

    const Fields where{{"run", std::to_string(a.run)}, {"step", std::to_string(index)}};
    std::vector<std::string> texted;
    for (const auto& to : targets(patient, step.call)) {
      if (const auto hold = call_hold(patient.settings, to.number)) {
        Fields held{{"to", mask_phone(to.number)},  {"to_label", to.label},
                    {"run", std::to_string(a.run)}, {"step", std::to_string(index)},
                    {"reason", hold->code},         {"detail", hold->text}};
        journal("call_held_back", patient.name, a.id, std::move(held), JournalEntry::Level::warn);
        Message text = message_for(ps, a, MessagePurpose::held_back);
        text.held_detail = hold->text;
        texted.push_back(to.number);
        if (send_sms(patient, a.id, to, text, where)) note_notified(a, to.number);
        continue;
      }
      CallRecord call;
      call.key = new_id('c');
      call.to = to.number;
      call.to_label = to.label;
      call.run = a.run;
      call.step = index;
      call.placed_at = now_;
      actions.emplace_back(PlaceCall{call.key, patient.name, a.id, to.number, to.label,
                                     message_for(ps, a), patient.settings.ack == AckMode::keypress});
      journal("call", patient.name, a.id, with_call(call, alarm_fields(a.alarm)));
      state_.numbers[to.number].calls.push_back(now_);
      note_notified(a, to.number);
      a.calls.push_back(std::move(call));
    }
    const Message sms_text = message_for(
        ps, a, index > 0 || a.run > 0 ? MessagePurpose::reminder : MessagePurpose::alarm);
    for (const auto& to : targets(patient, step.sms)) {
      if (std::find(texted.begin(), texted.end(), to.number) != texted.end()) continue;
      if (send_sms(patient, a.id, to, sms_text, where)) note_notified(a, to.number);
    }
  }

  void restart(const Patient& patient, ActiveAlarm& a, const std::string& reason) {
    a.run += 1;
    a.chain_start = now_;
    a.next_step = 0;
    a.last_step_at.reset();
    journal("chain_restarted", patient.name, a.id,
            {{"run", std::to_string(a.run)}, {"reason", reason}});
  }

  void acknowledge(const Patient& patient, ActiveAlarm& a, CallRecord& call) {
    call.acknowledged = true;
    if (a.snoozed_until) return;
    const Duration snooze = snooze_for(patient.settings, a.alarm.kind);
    a.snoozed_until = now_ + snooze;
    a.acknowledged_at = now_;
    a.acknowledged_by = call.to_label;
    journal("acknowledged", patient.name, a.id,
            with_call(call, {{"by", call.to_label}, {"snooze", format_duration(snooze)}}));
  }

  void advance(const Patient& patient, ActiveAlarm& a, bool paused) {
    // A lost webhook must not stop the escalation.
    for (auto& call : a.calls) {
      if (!is_final(call.progress) && now_ >= call.placed_at + k_call_outcome_timeout) {
        call.progress = CallProgress::timeout;
        call.ended_at = now_;
        journal("call_outcome", patient.name, a.id,
                with_call(call, {{"progress", to_string(call.progress)},
                                 {"detail", "no outcome within " +
                                                format_duration(k_call_outcome_timeout)}}));
      }
    }
    if (paused || a.in_band) return;  // SPEC §4.9: restarts when fresh data return (§4.10)
    if (a.snoozed_until) {
      if (now_ < *a.snoozed_until) return;
      journal("snooze_ended", patient.name, a.id, {{"by", a.acknowledged_by}});
      a.snoozed_until.reset();
      a.acknowledged_at.reset();
      a.acknowledged_by.clear();
      restart(patient, a, "snooze_ended");
    }
    if (std::find(stepped_.begin(), stepped_.end(), a.id) != stepped_.end()) return;
    const auto& steps = chain_of(patient.settings, a);
    if (steps.empty()) return;
    if (a.next_step >= static_cast<int>(steps.size())) {
      if (now_ < a.last_step_at.value_or(a.chain_start) + patient.settings.escalation.repeat) {
        return;
      }
      restart(patient, a, "repeat");
    }
    const auto& next = steps[static_cast<std::size_t>(a.next_step)];
    if (now_ >= a.chain_start + next.after) {
      run_step(patient, a, a.next_step, "time");
    } else if (previous_step_unanswered(a)) {
      run_step(patient, a, a.next_step, "no_ack");
    }
  }
};

}  // namespace

const char* to_string(CallProgress progress) {
  switch (progress) {
    case CallProgress::placing:
      return "placing";
    case CallProgress::ringing:
      return "ringing";
    case CallProgress::answered:
      return "answered";
    case CallProgress::human:
      return "human";
    case CallProgress::machine:
      return "machine";
    case CallProgress::completed:
      return "completed";
    case CallProgress::unanswered:
      return "unanswered";
    case CallProgress::busy:
      return "busy";
    case CallProgress::timeout:
      return "timeout";
    case CallProgress::rejected:
      return "rejected";
    case CallProgress::failed:
      return "failed";
    case CallProgress::cancelled:
      return "cancelled";
  }
  return "invalid";
}

std::optional<CallProgress> call_progress_from_string(std::string_view name) {
  constexpr std::array all{
      CallProgress::placing,    CallProgress::ringing, CallProgress::answered,
      CallProgress::human,      CallProgress::machine, CallProgress::completed,
      CallProgress::unanswered, CallProgress::busy,    CallProgress::timeout,
      CallProgress::rejected,   CallProgress::failed,  CallProgress::cancelled,
  };
  for (const auto progress : all) {
    if (name == to_string(progress)) return progress;
  }
  return std::nullopt;
}

bool is_final(CallProgress progress) {
  switch (progress) {
    case CallProgress::placing:
    case CallProgress::ringing:
    case CallProgress::answered:
    case CallProgress::human:
      return false;
    case CallProgress::machine:
    case CallProgress::completed:
    case CallProgress::unanswered:
    case CallProgress::busy:
    case CallProgress::timeout:
    case CallProgress::rejected:
    case CallProgress::failed:
    case CallProgress::cancelled:
      return true;
  }
  return true;
}

std::vector<PlaceCall> undispatched_calls(const Config& config, const State& state) {
  std::vector<PlaceCall> calls;
  for (const auto& patient : config.patients) {
    const auto it = state.patients.find(patient.name);
    if (it == state.patients.end()) continue;
    const PatientState& ps = it->second;
    for (const auto* slot : {&ps.glucose, &ps.data}) {
      if (!*slot) continue;
      const ActiveAlarm& a = **slot;
      for (const auto& call : a.calls) {
        if (call.progress != CallProgress::placing || !call.call_id.empty()) continue;
        // The same message and gather as run_step gave the call when it decided it.
        calls.push_back(PlaceCall{call.key, patient.name, a.id, call.to, call.to_label,
                                  message_for(ps, a),
                                  patient.settings.ack == AckMode::keypress});
      }
    }
  }
  return calls;
}

PatientIndex::PatientIndex(const Config& config) {
  by_name_.reserve(config.patients.size());
  for (std::size_t i = 0; i < config.patients.size(); ++i) {
    by_name_.emplace(config.patients[i].name, std::pair{&config.patients[i], i});
  }
}

const Patient* PatientIndex::find(std::string_view name) const {
  const auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : it->second.first;
}

std::size_t PatientIndex::position(std::string_view name) const {
  const auto it = by_name_.find(name);
  return it == by_name_.end() ? npos : it->second.second;
}

namespace {

// The events whose rules reach every patient (and the tidying of the whole state with them).
bool reaches_everyone(const Event& event) {
  if (const auto* assessed = std::get_if<Assessed>(&event)) return !assessed->partial;
  return std::holds_alternative<Tick>(event) || std::holds_alternative<ClockJumped>(event);
}

// Runs the machine on `state` in place. `tidy`: drop removed patients and prune the usage (work
// over the whole state), done by every step() and by step_in_place() for reaches_everyone.
Stepped run_machine(const Config& config, const PatientIndex& index, State& state,
                    const Event& event, TimePoint now, bool tidy) {
  Machine machine(config, index, state, now);
  if (tidy) machine.drop_removed_patients();
  if (std::holds_alternative<ClockJumped>(event)) {
    // Times move first: pruning by the jumped clock would forget the last hour's calls.
    std::visit(machine, event);
    if (tidy) machine.prune_usage();
  } else {
    if (tidy) machine.prune_usage();
    std::visit(machine, event);
  }
  machine.advance_all();
  return Stepped{std::move(machine.actions), std::move(machine.reply), std::move(machine.command),
                 false};
}

}  // namespace

Transition step(const Config& config, State state, const Event& event, TimePoint now) {
  const PatientIndex index(config);
  Stepped stepped = run_machine(config, index, state, event, now, /*tidy=*/true);
  return Transition{std::move(state), std::move(stepped.actions), std::move(stepped.reply),
                    std::move(stepped.command)};
}

namespace {

// `a` and `b` differ in their reading facts at most, and neither has an alarm active (while one
// is, its facts are what its calls say: they are saved at once).
bool same_but_facts(const PatientState& a, const PatientState& b) {
  return !a.glucose && !b.glucose && !a.data && !b.data && a.failing_since == b.failing_since;
}

bool decides_something(const std::vector<Action>& actions) {
  return std::any_of(actions.begin(), actions.end(),
                     [](const Action& a) { return !std::holds_alternative<JournalEntry>(a); });
}

// `a` and `b` differ in the reading facts of patients with no alarm active at most.
bool same_but_facts(State& a, State& b) {
  if (a.patients.size() != b.patients.size()) return false;
  for (auto ia = a.patients.begin(), ib = b.patients.begin(); ia != a.patients.end(); ++ia, ++ib) {
    if (ia->first != ib->first) return false;
    if (!(ia->second == ib->second) && !same_but_facts(ia->second, ib->second)) return false;
  }
  // The rest compared without the patients (moved out and back: no copy).
  auto patients_a = std::move(a.patients);
  auto patients_b = std::move(b.patients);
  a.patients.clear();
  b.patients.clear();
  const bool rest = a == b;
  a.patients = std::move(patients_a);
  b.patients = std::move(patients_b);
  return rest;
}

}  // namespace

Stepped step_in_place(const Config& config, const PatientIndex& index, State& state,
                      const Event& event, TimePoint now) {
  if (reaches_everyone(event)) {
    // Once per tick: the whole state is compared (linear, like the rules themselves).
    State before = state;
    Stepped stepped = run_machine(config, index, state, event, now, /*tidy=*/true);
    stepped.changed = !(state == before);
    stepped.facts_only = stepped.changed && !decides_something(stepped.actions) &&
                         same_but_facts(state, before);
    return stepped;
  }
  if (const auto* assessed = std::get_if<Assessed>(&event)) {
    // A batch of answers: only its patients are looked at, so only they (and the ids, the SMS
    // in flight and the numbers' usage, which only grow here) can have changed.
    std::vector<std::pair<const std::string*, std::optional<PatientState>>> before;
    before.reserve(assessed->patients.size());
    for (const auto& one : assessed->patients) {
      const auto it = state.patients.find(one.patient);
      before.emplace_back(&one.patient, it == state.patients.end()
                                            ? std::nullopt
                                            : std::optional<PatientState>{it->second});
    }
    const auto next_id = state.next_id;
    const auto sms = state.sms_in_flight.size();
    const auto numbers = state.numbers.size();
    Stepped stepped = run_machine(config, index, state, event, now, /*tidy=*/false);
    const bool counters = next_id != state.next_id || sms != state.sms_in_flight.size() ||
                          numbers != state.numbers.size();
    // A call or SMS decided means the usage grew even where the sizes did not.
    const bool decided = decides_something(stepped.actions);
    bool facts = false;   // some patient's facts changed
    bool beyond = false;  // something else of a patient changed
    for (const auto& [name, old] : before) {
      if (beyond) break;
      const auto it = state.patients.find(*name);
      if ((it == state.patients.end()) != !old) {
        beyond = true;
      } else if (old && !(it->second == *old)) {
        if (same_but_facts(it->second, *old)) facts = true;
        else beyond = true;
      }
    }
    stepped.changed = counters || decided || facts || beyond;
    stepped.facts_only = facts && !counters && !decided && !beyond;
    return stepped;
  }
  // One call, keypress, SMS or shell command: it changes the state unless it named nothing the
  // state holds (then only a warning is journaled).
  Stepped stepped = run_machine(config, index, state, event, now, /*tidy=*/false);
  stepped.changed = std::any_of(stepped.actions.begin(), stepped.actions.end(), [](const Action& a) {
    const auto* entry = std::get_if<JournalEntry>(&a);
    return entry == nullptr ||
           (entry->type != "unknown_call" && entry->type != "command_ignored");
  });
  if (stepped.actions.empty()) stepped.changed = true;
  return stepped;
}

std::optional<TimePoint> next_due(const Config& config, const State& state, TimePoint now) {
  return next_due(PatientIndex{config}, state, now);
}

namespace {

// What of `ps` (patient `name`, with an alarm active) is due, folded into `due` (next_due).
void consider_due(const PatientIndex& index, const std::string& name, const PatientState& ps,
                  TimePoint now, std::optional<TimePoint>& due) {
  const Patient* found = index.find(name);
  if (found == nullptr) return;  // no longer in the config
  const Patient& patient = *found;
  const auto consider = [&due](TimePoint t) {
    if (!due || t < *due) due = t;
  };
  for (const auto* slot : {&ps.glucose, &ps.data}) {
    if (!*slot) continue;
    const ActiveAlarm& a = **slot;
    for (const auto& call : a.calls) {
      if (!is_final(call.progress)) consider(call.placed_at + k_call_outcome_timeout);
    }
    // SPEC §4.9: a glucose alarm is paused while a data alarm is active, and from the moment
    // its newest reading goes stale; only an assessment (fresh data) resumes it, so nothing
    // of it is due by time. `fresh_until` is the last instant its reading is fresh.
    std::optional<TimePoint> fresh_until;
    if (slot == &ps.glucose) {
      if (a.in_band || glucose_paused(ps, patient.settings, now)) continue;
      fresh_until = readings_fresh_until(ps, patient.settings);
    }
    const auto consider_step = [&](TimePoint t) {
      if (!fresh_until || t <= *fresh_until) consider(t);
    };
    if (a.snoozed_until) {
      consider_step(*a.snoozed_until);
      continue;
    }
    const auto& steps = chain_of(patient.settings, a);
    if (steps.empty()) continue;
    if (a.next_step >= static_cast<int>(steps.size())) {
      consider_step(a.last_step_at.value_or(a.chain_start) + patient.settings.escalation.repeat);
    } else {
      consider_step(a.chain_start + steps[static_cast<std::size_t>(a.next_step)].after);
      // Normally run by the event that made it true; due at once if it is still pending.
      if (previous_step_unanswered(a)) consider_step(a.last_step_at.value_or(a.chain_start));
    }
  }
}

}  // namespace

std::optional<TimePoint> next_due(const PatientIndex& index, const State& state, TimePoint now) {
  std::optional<TimePoint> due;
  // Only patients with an alarm active have anything due: the rest cost a step of the walk.
  for (const auto& [name, ps] : state.patients) {
    if (has_alarm(ps)) consider_due(index, name, ps, now, due);
  }
  return due;
}

std::optional<TimePoint> next_due(const PatientIndex& index, const State& state,
                                  const std::set<std::string>& alarmed, TimePoint now) {
  std::optional<TimePoint> due;
  for_each_alarmed(state, alarmed, [&](const std::string& name, const PatientState& ps) {
    consider_due(index, name, ps, now, due);
  });
  return due;
}

std::vector<SendSms> undispatched_sms(const State& state) {
  std::vector<SendSms> out;
  out.reserve(state.sms_in_flight.size());
  for (const auto& [key, sms] : state.sms_in_flight) {
    out.push_back(SendSms{key, sms.patient, sms.alarm_id, sms.to, sms.to_label, sms.message});
  }
  std::stable_sort(out.begin(), out.end(), [&state](const SendSms& a, const SendSms& b) {
    return state.sms_in_flight.at(a.sms_key).decided_at < state.sms_in_flight.at(b.sms_key).decided_at;
  });
  return out;
}

const char* to_string(ShellCommand::Kind kind) {
  switch (kind) {
    case ShellCommand::Kind::ack:
      return "ack";
    case ShellCommand::Kind::snooze:
      return "snooze";
    case ShellCommand::Kind::unsnooze:
      return "unsnooze";
  }
  return "ack";
}

Duration snooze_for(const AlarmSettings& settings, AlarmKind kind) {
  switch (kind) {
    case AlarmKind::urgent_low:
      return settings.snooze.urgent_low;
    case AlarmKind::urgent_low_soon:
      return settings.snooze.urgent_low_soon;
    case AlarmKind::low:
      return settings.snooze.low;
    case AlarmKind::urgent_high:
      return settings.snooze.urgent_high;
    case AlarmKind::high:
      return settings.snooze.high;
    case AlarmKind::stale:
    case AlarmKind::unreachable:
    case AlarmKind::sensor_error:
      return settings.snooze.data;
  }
  return settings.snooze.data;
}

std::optional<TimePoint> readings_fresh_until(const PatientState& patient,
                                              const AlarmSettings& settings) {
  if (!patient.facts.latest) return std::nullopt;
  return patient.facts.latest->date + stale_in_force(settings.stale, patient.facts.cadence).warn;
}

bool glucose_paused(const PatientState& patient, const AlarmSettings& settings, TimePoint now) {
  const auto fresh_until = readings_fresh_until(patient, settings);
  return patient.data.has_value() || !fresh_until || now > *fresh_until;
}

}  // namespace scout::core
