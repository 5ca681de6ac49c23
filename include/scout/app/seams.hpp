#pragma once
// The seams through which app::Service meets the world (STYLE.md §2; ninja's DiskInterface,
// leveldb's Env, Envoy's TimeSource): the clock, the CGM source, telephony, the state store and
// the journal. Each has its real adapter here and a fake beside it; app/simulated.hpp has the
// simulated CGM source and telephony that `scout replay`, `scout check` and the tests use.
//
// Times are core::TimePoint (ms since the epoch, UTC). Thread-safety is stated per class.
#include <atomic>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "scout/adapters/nightscout.hpp"
#include "scout/adapters/providers.hpp"
#include "scout/adapters/state_store.hpp"
#include "scout/core/alarm.hpp"
#include "scout/core/config.hpp"
#include "scout/core/reading.hpp"
#include "scout/core/result.hpp"

namespace scout::app {

// ---------------------------------------------------------------------------------------------
// Clock

// What time it is. Thread-safe.
class Clock {
 public:
  virtual ~Clock() = default;
  // The wall clock: what times in the state, the journal and messages are.
  virtual core::TimePoint now() const = 0;
  // A monotonic reading (ms from an arbitrary origin) that no wall clock jump moves: the Service
  // compares the two to detect a jump and rebase its times (SPEC §6).
  virtual core::Duration monotonic() const = 0;
};

// The wall clock (std::chrono::system_clock, to the millisecond): the one place scout reads it;
// monotonic() is std::chrono::steady_clock.
class SystemClock final : public Clock {
 public:
  core::TimePoint now() const override;
  core::Duration monotonic() const override;
};

// A clock that moves only when told: replays and tests. set() and advance() move time (both
// readings); jump() moves only the wall clock, as an NTP step or a wrong RTC does. Thread-safe.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(core::TimePoint start) : now_(start.time_since_epoch().count()) {}
  core::TimePoint now() const override { return core::TimePoint{core::Duration{now_.load()}}; }
  core::Duration monotonic() const override { return core::Duration{now_.load() - jumped_.load()}; }
  void set(core::TimePoint t) { now_ = t.time_since_epoch().count(); }
  void advance(core::Duration d) { now_ += d.count(); }
  void jump(core::Duration d) {
    now_ += d.count();
    jumped_ += d.count();
  }

 private:
  std::atomic<core::Duration::rep> now_;
  std::atomic<core::Duration::rep> jumped_{0};
};

// ---------------------------------------------------------------------------------------------
// CGM source

using FetchResult = core::Result<std::vector<core::Entry>>;

// Where readings come from: one answer per patient, in order (entries any order, sgv mg/dL).
// Called by one thread at a time.
// Answers handed over as they come in: (index into `patients`, answer), several at once when
// they arrived together.
using Answers = std::vector<std::pair<std::size_t, FetchResult>>;

class CgmSource {
 public:
  virtual ~CgmSource() = default;
  virtual std::vector<FetchResult> fetch(const std::vector<const core::Patient*>& patients) = 0;
  // Every patient's answer, handed to `on_answers` as soon as it is in (SPEC §3: a slow source
  // delays nobody else); exactly one answer per patient. By default: fetch(), then all at once.
  virtual void fetch_each(const std::vector<const core::Patient*>& patients,
                          const std::function<void(Answers&&)>& on_answers) {
    auto all = fetch(patients);
    Answers answers;
    answers.reserve(patients.size());
    for (std::size_t i = 0; i < patients.size(); ++i) {
      answers.emplace_back(i, i < all.size() ? std::move(all[i])
                                             : FetchResult{core::fail(core::ErrorKind::internal,
                                                                      "no answer")});
    }
    on_answers(std::move(answers));
  }
};

// Each patient's Nightscout, through one adapters::Poller for the life of the source (connections
// kept alive across polls) and adapters::RecentEntries (after the first poll a site is asked only
// for what is newer than what scout holds, SPEC §7): each answer is the site's newest
// adapters::k_entries_count entries, as a full request would be. `timeout` per request; errors
// as adapters::fetch_all documents them. `clock` (the wall clock: which held entries are in the
// future) must outlive the source.
class NightscoutSource final : public CgmSource {
 public:
  // keep_alive false: for one poll only (scout check), see adapters::Poller::keep_connections.
  NightscoutSource(core::Duration timeout, const Clock& clock, bool keep_alive = true)
      : timeout_(timeout), clock_(clock) {
    poller_.keep_connections(keep_alive);
  }
  std::vector<FetchResult> fetch(const std::vector<const core::Patient*>& patients) override;
  // Each answer as it arrives.
  void fetch_each(const std::vector<const core::Patient*>& patients,
                  const std::function<void(Answers&&)>& on_answers) override;

 private:
  core::Duration timeout_;
  const Clock& clock_;
  adapters::Poller poller_;
  adapters::RecentEntries recent_;
  std::vector<core::NightscoutSite> sites_;
};

// ---------------------------------------------------------------------------------------------
// Telephony

// Places calls and sends SMS (SPEC §4.2, §4.7). Implementations are thread-safe: worker threads
// call them at once.
class Telephony {
 public:
  virtual ~Telephony() = default;
  // `request.text` is the rendered sentence. Returns which provider took it and its call id.
  virtual core::Result<adapters::Sent> place_call(const adapters::CallRequest& request) = 0;
  virtual core::Result<adapters::Sent> send_sms(const std::string& to, const std::string& text) = 0;
  // The status of a call placed by `provider` (one try).
  virtual adapters::ProviderResult<adapters::CallStatus> poll_call(const std::string& provider,
                                                                   const std::string& call_id) = 0;
  // Whether the call `request` describes (decided at request.decided_at) exists at a provider
  // although scout never learned its id (SPEC §6): as adapters::ProviderChain::find_call.
  virtual core::Result<std::optional<adapters::Sent>> find_call(
      const adapters::CallRequest& request) = 0;
};

// The configured providers (adapters::ProviderChain: retries, fail-over). Thread-safe as the
// chain is.
class ProviderTelephony final : public Telephony {
 public:
  explicit ProviderTelephony(adapters::ProviderChain& chain) : chain_(chain) {}
  core::Result<adapters::Sent> place_call(const adapters::CallRequest& request) override {
    return chain_.place_call(request);
  }
  core::Result<adapters::Sent> send_sms(const std::string& to, const std::string& text) override {
    return chain_.send_sms(to, text);
  }
  adapters::ProviderResult<adapters::CallStatus> poll_call(const std::string& provider,
                                                           const std::string& call_id) override {
    return chain_.poll_call(provider, call_id);
  }
  core::Result<std::optional<adapters::Sent>> find_call(
      const adapters::CallRequest& request) override {
    return chain_.find_call(request);
  }

 private:
  adapters::ProviderChain& chain_;
};

// ---------------------------------------------------------------------------------------------
// State store and journal

// Where the machine's state is saved (SPEC §6). Called under the engine's lock.
class StateStorage {
 public:
  virtual ~StateStorage() = default;
  // Errors: io, with the path and errno text.
  virtual core::Status save(const core::State& state) = 0;
};

// The state file (adapters::StateStore: temp file, fsync, rename).
class FileStateStorage final : public StateStorage {
 public:
  explicit FileStateStorage(const adapters::StateStore& store) : store_(store) {}
  core::Status save(const core::State& state) override { return store_.save(state); }

 private:
  const adapters::StateStore& store_;
};

// Keeps the last state saved in memory (check, replay, tests).
class MemoryStateStorage final : public StateStorage {
 public:
  core::Status save(const core::State& state) override {
    const std::lock_guard lock{mutex_};
    last_ = state;
    ++saves_;
    return {};
  }
  std::optional<core::State> last() const {
    const std::lock_guard lock{mutex_};
    return last_;
  }
  int saves() const {
    const std::lock_guard lock{mutex_};
    return saves_;
  }

 private:
  mutable std::mutex mutex_;
  std::optional<core::State> last_;
  int saves_ = 0;
};

// Where journal entries go (SPEC §6). Called under the engine's lock.
class JournalSink {
 public:
  virtual ~JournalSink() = default;
  virtual core::Status append(const core::JournalEntry& entry) = 0;
};

// The JSON-lines journal file (adapters::Journal; an empty path writes nothing).
class FileJournal final : public JournalSink {
 public:
  explicit FileJournal(std::string path) : journal_(std::move(path)) {}
  core::Status append(const core::JournalEntry& entry) override { return journal_.append(entry); }

 private:
  adapters::Journal journal_;
};

// Keeps every entry in memory, in order (replay, tests). Thread-safe.
class RecordingJournal final : public JournalSink {
 public:
  core::Status append(const core::JournalEntry& entry) override {
    const std::lock_guard lock{mutex_};
    entries_.push_back(entry);
    return {};
  }
  std::vector<core::JournalEntry> entries() const {
    const std::lock_guard lock{mutex_};
    return entries_;
  }

 private:
  mutable std::mutex mutex_;
  std::vector<core::JournalEntry> entries_;
};

}  // namespace scout::app
