#pragma once
// Durable state and the journal (SPEC §6).
#include <optional>
#include <cstddef>
#include <string>

#include <nlohmann/json.hpp>

#include "scout/core/alarm.hpp"
#include "scout/core/result.hpp"

namespace scout::adapters {

// core::State <-> JSON. Times are ms since the epoch (integers); enums by name. The document
// carries {"version":1, ...}. from_json errors: malformed_json naming the field at fault.
nlohmann::json state_to_json(const core::State& state);
core::Result<core::State> state_from_json(const nlohmann::json& json);

struct LoadedState {
  core::State state;
  // Set when the file existed but could not be used: it was moved to `moved_to` and scout
  // starts clean. The text says why (file, parse error) for an error-level log line.
  std::optional<std::string> problem;
  std::string moved_to;
};

// A state file larger than this is not one scout wrote (10,000 patients mid-escalation take a
// few MiB): load() sets it aside as corrupt without parsing it, reading at most this much.
inline constexpr std::size_t k_max_state_bytes = std::size_t{64} << 20;

class StateStore {
 public:
  explicit StateStore(std::string path);
  const std::string& path() const { return path_; }
  // Reads the state file. Missing file: an empty State. Unreadable JSON or a document
  // state_from_json refuses: the file is renamed to "<path>.corrupt-<UTC yyyymmddThhmmssZ>" and
  // an empty State comes back with `problem` set. Errors (io) only when the corrupt file cannot be
  // moved aside or the file exists but cannot be read.
  core::Result<LoadedState> load() const;
  // Writes atomically: "<path>.tmp" written, fsync'd, renamed over `path`, directory fsync'd.
  // Creates missing parent directories. Errors: io naming the path and errno text.
  core::Status save(const core::State& state) const;

 private:
  std::string path_;
};

// "2026-11-22T03:14:07.123Z": how the journal and the state's reports write a time.
std::string utc_iso8601(core::TimePoint t);

// One journal line (SPEC §6): {"time":"2026-11-22T03:14:07.123Z","type":…,"patient":…,
// "alarm":…, <fields…>} — keys in that order, fields as strings; "level" only when warn/error.
std::string journal_line(const core::JournalEntry& entry);

// Append-only JSON-lines file. Empty path: a journal that writes nothing.
class Journal {
 public:
  explicit Journal(std::string path);
  // Appends one line and flushes it (O_APPEND, one write per line). Errors: io.
  core::Status append(const core::JournalEntry& entry);

 private:
  std::string path_;
};

}  // namespace scout::adapters
