#pragma once
// The engine of `scout run` (SPEC §4, §6): owns the alarm state, applies events to the pure
// machine (core::step_in_place) under one mutex, saves the state after every change, writes the journal
// and logs every transition. Thread-safe: the poll loop, the webhook listener and the workers
// that talk to providers all call apply(); none of them holds the lock during network I/O.
#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "scout/app/seams.hpp"
#include "scout/core/alarm.hpp"
#include "scout/core/config.hpp"

namespace scout::app {

// A change that touches only the reading facts of patients with no alarm active
// (core::Stepped::facts_only: a new reading that raises, ends and advances nothing) is saved with the next save, and at the latest this
// long after it: ten thousand patients' readings do not rewrite the state file every tick, and a
// Pi's SD card is not written every poll. Every other change is saved before its calls go out
// (SPEC §7). A crash loses at most these facts, which the next poll reads again.
inline constexpr core::Duration k_facts_saved_within = std::chrono::minutes{5};

class Engine {
 public:
  // `config` is the machine's view of the config (the caller has already set ack: answer when
  // there is no listener). `store` and `journal` must outlive the engine.
  Engine(core::Config config, core::State state, StateStorage& store, JournalSink& journal,
         bool log_journal = true);

  struct Applied {
    std::vector<core::Action> outbound;  // PlaceCall and SendSms to carry out, in order
    std::optional<core::KeypressReply> reply;
    std::optional<core::CommandOutcome> command;  // for a core::ShellCommand
  };

  // Applies `event` at `now`: core::step_in_place, then (when the state changed, or an earlier save
  // failed) StateStore::save, then one journal line and one log line per JournalEntry
  // (info/warn/error as the entry says). A failed save or journal write is logged at error level
  // and does not stop scout: the state in memory stays authoritative and every later event tries
  // the save again until it succeeds.
  // With `defer_save`, a change that carries no call or SMS to make is saved with the next event
  // instead (one save per tick rather than per batch of answers); one that does is saved now,
  // before anything goes out.
  Applied apply(const core::Event& event, core::TimePoint now, bool defer_save = false);

  // A copy of the current state.
  core::State state() const;
  // Calls `reader(const core::State&)` under the lock and returns its result: a look at the state
  // without copying it. `reader` must be quick and must not call back into the engine.
  template <typename Reader>
  auto read(Reader&& reader) const {
    const std::lock_guard lock{mutex_};
    return reader(static_cast<const core::State&>(state_));
  }
  // As read(), with `reader(const core::State&, const std::set<std::string>& alarmed)`: the
  // names of the patients with an alarm active (core::has_alarm), kept up to date by apply().
  // Only they can have calls in flight or anything due, so a look at them costs what is active,
  // not every patient.
  template <typename Reader>
  auto read_alarmed(Reader&& reader) const {
    const std::lock_guard lock{mutex_};
    return reader(static_cast<const core::State&>(state_), alarmed_);
  }
  // core::next_due of the current state at `now`: O(patients with an alarm active).
  std::optional<core::TimePoint> next_due(core::TimePoint now) const;
  // Saves the current state unconditionally (at shutdown). Errors as StateStore::save.
  core::Status save() const;
  // Saves the current state if a deferred change waits for its save, or if reading facts changed
  // k_facts_saved_within or more before `now` (else does nothing and succeeds). Errors as
  // StateStore::save.
  core::Status flush(core::TimePoint now);
  // False while the newest state is not saved (the last save failed).
  bool saved() const;
  // The state in memory is not saved yet: the next event saves it even if nothing changed.
  void mark_unsaved();
  const core::Config& config() const { return config_; }

 private:
  mutable std::mutex mutex_;
  const core::Config config_;
  const core::PatientIndex index_;  // of config_
  core::State state_;
  // The names of the patients of state_ with an alarm active: after a batch of answers only its
  // patients are looked at again, after any other event all of them (see note_alarmed).
  std::set<std::string> alarmed_;
  // Brings alarmed_ up to date after `event` was applied (under the lock).
  void note_alarmed(const core::Event& event);
  // alarmed_ from a walk over every patient of state_ (at construction, and after any event but
  // a partial batch of answers).
  void rebuild_alarmed();
  // The last save failed (mutable: save() is const): save on the next event even if nothing
  // changed.
  mutable bool unsaved_ = false;
  mutable bool deferred_ = false;  // a deferred change waits for the next save
  // When the oldest change not saved yet that touched only reading facts was made (see
  // k_facts_saved_within); nothing when there is none.
  mutable std::optional<core::TimePoint> facts_since_;
  // Failed saves since the last error line (logged once a minute, SPEC §6), and when it was.
  mutable std::uint64_t failed_saves_ = 0;
  mutable std::chrono::steady_clock::time_point failure_logged_{};
  void note_save(const core::Status& saved) const;
  // Saves state_ now (under the lock). Errors as StateStore::save.
  core::Status save_now() const;
  // The facts-only changes not saved yet are k_facts_saved_within old at `now` (under the lock).
  bool facts_due(core::TimePoint now) const;
  bool log_journal_ = true;
  StateStorage& store_;
  JournalSink& journal_;
};

// Logs one journal entry through spdlog at its level ("alarm_raised patient=Alice alarm=a3
// kind=urgent_low ..."). Phone numbers in entries are already masked by the machine.
void log_journal_entry(const core::JournalEntry& entry);

}  // namespace scout::app
