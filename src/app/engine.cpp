#include "scout/app/engine.hpp"

#include <string>
#include <utility>

#include <spdlog/spdlog.h>

namespace scout::app {

void log_journal_entry(const core::JournalEntry& entry) {
  std::string text = entry.type;
  if (!entry.patient.empty()) {
    text += " patient=";
    text += entry.patient;
  }
  if (!entry.alarm_id.empty()) {
    text += " alarm=";
    text += entry.alarm_id;
  }
  for (const auto& [key, value] : entry.fields) {
    text += ' ';
    text += key;
    text += '=';
    const bool quote = value.find(' ') != std::string::npos;
    if (quote) text += '"';
    text += value;
    if (quote) text += '"';
  }
  switch (entry.level) {
    case core::JournalEntry::Level::info:
      spdlog::info("{}", text);
      break;
    case core::JournalEntry::Level::warn:
      spdlog::warn("{}", text);
      break;
    case core::JournalEntry::Level::error:
      spdlog::error("{}", text);
      break;
  }
}

Engine::Engine(core::Config config, core::State state, StateStorage& store, JournalSink& journal,
               bool log_journal)
    : config_(std::move(config)),
      state_(std::move(state)),
      log_journal_(log_journal),
      store_(store),
      journal_(journal) {}

Engine::Applied Engine::apply(const core::Event& event, core::TimePoint now) {
  const std::lock_guard lock{mutex_};
  core::Transition transition = core::step(config_, state_, event, now);
  const bool changed = !(transition.state == state_);
  state_ = std::move(transition.state);
  if (changed || unsaved_) {
    const auto saved = store_.save(state_);
    if (!saved) spdlog::error("cannot save the state: {}", saved.error().message);
    unsaved_ = !saved;
  }
  Applied applied;
  applied.reply = std::move(transition.reply);
  for (auto& action : transition.actions) {
    if (const auto* entry = std::get_if<core::JournalEntry>(&action)) {
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
  return core::next_due(config_, state_, now);
}

core::Status Engine::save() const {
  const std::lock_guard lock{mutex_};
  return store_.save(state_);
}

}  // namespace scout::app
