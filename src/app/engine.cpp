#include "scout/app/engine.hpp"
#include "scout/app/logging.hpp"

#include <algorithm>
#include <string>
#include <utility>

#include <spdlog/spdlog.h>

namespace scout::app {

void log_journal_entry(const core::JournalEntry& entry) {
  std::vector<std::pair<std::string, std::string>> fields;
  fields.reserve(entry.fields.size() + 2);
  if (!entry.patient.empty()) fields.emplace_back("patient", entry.patient);
  if (!entry.alarm_id.empty()) fields.emplace_back("alarm", entry.alarm_id);
  for (const auto& field : entry.fields) fields.push_back(field);
  switch (entry.level) {
    case core::JournalEntry::Level::info:
      log_fields(spdlog::level::info, entry.type, fields);
      break;
    case core::JournalEntry::Level::warn:
      log_fields(spdlog::level::warn, entry.type, fields);
      break;
    case core::JournalEntry::Level::error:
      log_fields(spdlog::level::err, entry.type, fields);
      break;
  }
}

Engine::Engine(core::Config config, core::State state, StateStorage& store, JournalSink& journal,
               bool log_journal)
    : config_(std::move(config)),
      index_(config_),
      state_(std::move(state)),
      log_journal_(log_journal),
      store_(store),
      journal_(journal) {
  rebuild_alarmed();
}

void Engine::note_alarmed(const core::Event& event) {
  const auto note = [this](const std::string& name, const core::PatientState* ps) {
    if (ps != nullptr && core::has_alarm(*ps)) {
      alarmed_.insert(name);
    } else {
      alarmed_.erase(name);
    }
  };
  // A batch of answers changes only its own patients (core::step_in_place).
  if (const auto* assessed = std::get_if<core::Assessed>(&event); assessed && assessed->partial) {
    for (const auto& one : assessed->patients) {
      const auto it = state_.patients.find(one.patient);
      note(one.patient, it == state_.patients.end() ? nullptr : &it->second);
    }
    return;
  }
  rebuild_alarmed();
}

void Engine::rebuild_alarmed() {
  alarmed_.clear();
  for (const auto& [name, ps] : state_.patients) {
    if (core::has_alarm(ps)) alarmed_.insert(alarmed_.end(), name);
  }
}

Engine::Applied Engine::apply(const core::Event& event, core::TimePoint now, bool defer_save) {
  const std::lock_guard lock{mutex_};
  // In place (SPEC §7): an event costs what it touches, not a copy of every patient.
  core::Stepped transition = core::step_in_place(config_, index_, state_, event, now);
  note_alarmed(event);
  const bool changed = transition.changed;
  const bool acts = std::any_of(transition.actions.begin(), transition.actions.end(),
                                [](const core::Action& a) {
                                  return !std::holds_alternative<core::JournalEntry>(a);
                                });
  if (transition.facts_only && !acts && !unsaved_ && !deferred_) {
    if (!facts_since_) facts_since_ = now;
    if (facts_due(now)) save_now();
  } else if (changed || unsaved_ || deferred_) {
    if (defer_save && !acts) {
      deferred_ = true;
    } else {
      save_now();
      deferred_ = false;  // a failed save is retried by the next event (unsaved_)
    }
  }
  Applied applied;
  applied.reply = std::move(transition.reply);
  applied.command = std::move(transition.command);
  for (auto& action : transition.actions) {
    if (auto* entry = std::get_if<core::JournalEntry>(&action)) {
      // SPEC §6: the journal carries the glucose value the line is about (the newest reading).
      if (!entry->patient.empty()) {
        const auto ps = state_.patients.find(entry->patient);
        if (ps != state_.patients.end() && ps->second.facts.latest) {
          const auto& latest = *ps->second.facts.latest;
          entry->fields.emplace_back("sgv", std::to_string(latest.sgv));
          if (!latest.direction.empty()) entry->fields.emplace_back("direction", latest.direction);
          entry->fields.emplace_back("reading_at", std::to_string(latest.date.time_since_epoch().count()));
        }
      }
      if (log_journal_) log_journal_entry(*entry);
      if (auto written = journal_.append(*entry); !written) {
        spdlog::error("cannot write the journal: {}", written.error().message);
      }
    } else {
      applied.outbound.push_back(std::move(action));
    }
  }
  return applied;
}

core::State Engine::state() const {
  const std::lock_guard lock{mutex_};
  return state_;
}

std::optional<core::TimePoint> Engine::next_due(core::TimePoint now) const {
  const std::lock_guard lock{mutex_};
  return core::next_due(index_, state_, alarmed_, now);
}

core::Status Engine::save() const {
  const std::lock_guard lock{mutex_};
  return save_now();
}

core::Status Engine::flush(core::TimePoint now) {
  const std::lock_guard lock{mutex_};
  if (!deferred_ && !facts_due(now)) return {};
  return save_now();
}

core::Status Engine::save_now() const {
  auto saved = store_.save(state_);
  note_save(saved);
  if (saved) {
    deferred_ = false;
    facts_since_.reset();
  }
  return saved;
}

bool Engine::facts_due(core::TimePoint now) const {
  // A clock stepped back counts as time gone by: the facts are not held back longer.
  return facts_since_ && (now - *facts_since_ >= k_facts_saved_within || now < *facts_since_);
}

bool Engine::saved() const {
  const std::lock_guard lock{mutex_};
  return !unsaved_;
}

void Engine::mark_unsaved() {
  const std::lock_guard lock{mutex_};
  unsaved_ = true;
  if (failed_saves_ == 0) {
    failed_saves_ = 1;
    failure_logged_ = std::chrono::steady_clock::now();
  }
}

void Engine::note_save(const core::Status& saved) const {
  // Called under the lock. Loud, but one line a minute rather than one per event (SPEC §6).
  constexpr auto k_every = std::chrono::minutes{1};
  const auto now = std::chrono::steady_clock::now();
  if (saved) {
    if (unsaved_) {
      spdlog::warn("the state is saved again (after {} failed save(s))", failed_saves_);
    }
    unsaved_ = false;
    failed_saves_ = 0;
    return;
  }
  unsaved_ = true;
  ++failed_saves_;
  if (failed_saves_ == 1 || now - failure_logged_ >= k_every) {
    spdlog::error("cannot save the state ({} failed save(s)); scout goes on from memory: {}",
                  failed_saves_, saved.error().message);
    failure_logged_ = now;
  }
}

}  // namespace scout::app
