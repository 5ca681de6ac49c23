#pragma once
// The command spool (SPEC §1, §4.13): how `scout ack|snooze|unsnooze` reach the service without
// racing it for the state file, and how the service's answer gets back to the shell.
//
// Layout, next to the state file S:
//   S.d/commands/<id>.json   one request each, written by the shell (temp file + rename, 0644)
//   S.d/results/<id>.json    what the service did with it (temp file + rename), read and removed
//                            by the shell that waits for it; the service removes any older than
//                            an hour
//   S.d/status.json          the service's last tick (written after every tick, no fsync):
//                            what `scout status` says about the service itself
// <id> is "<ms since epoch, 13 digits>-<pid, 7 digits>-<counter, 6 digits>", so name order is
// submission order.
// Request document: {"version":1,"command":"ack|snooze|unsnooze","patient":…,"by":…,
// "duration_ms":…,"only":…,"at":ms}. Result: {"version":1,"id":…,"changed":bool,"lines":[…],
// "at":ms}.
//
// Thread-safety: none needed; the service uses one CommandSpool from its driving thread, the
// shell its own. Files are read with a size limit (k_max_request_bytes).
#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "scout/core/alarm.hpp"
#include "scout/core/result.hpp"

namespace scout::adapters {

// A request file larger than this is not one scout wrote: it is refused (and removed).
inline constexpr std::size_t k_max_request_bytes = 4096;
// At most this many requests are taken per wake (the rest wait for the next one).
inline constexpr std::size_t k_max_requests_per_wake = 64;

struct SpooledRequest {
  std::string id;
  // The request, or nullopt when the file could not be read as one (`error` says why).
  std::optional<core::ShellCommand> command;
  std::string error;
};

class CommandSpool {
 public:
  // `state_file`: the state file path the service uses (config state_file or run --state).
  explicit CommandSpool(const std::string& state_file);

  const std::string& commands_dir() const { return commands_; }
  const std::string& results_dir() const { return results_; }
  const std::string& status_path() const { return status_; }

  // Creates S.d/commands and S.d/results when missing (0770: the service's user and group may
  // queue and answer; run as root, the new directories get the owner and group of the state
  // file's directory, so the service can remove what root wrote). Errors: io.
  core::Status prepare() const;

  // Shell side. Writes one request (command.id is ignored: the spool names it) and returns its
  // id. Errors: io naming the directory.
  core::Result<std::string> submit(const core::ShellCommand& command, core::TimePoint now) const;
  // The service's result for `id`, once it exists (then the file is removed); nullopt before.
  std::optional<core::CommandOutcome> take_result(const std::string& id) const;

  // Service side. The pending requests in submission order, at most k_max_requests_per_wake;
  // they stay in the spool until finish(). Never throws.
  std::vector<SpooledRequest> pending() const;
  // Writes the result of request `id` and removes the request. Errors: io (the request is still
  // removed, so a request is never applied twice by the same service).
  core::Status finish(const std::string& id, const core::CommandOutcome& outcome,
                      core::TimePoint now) const;
  // Removes results nobody picked up for an hour.
  void prune_results(core::TimePoint now) const;

  // Writes S.d/status.json atomically (no fsync: it is a report, not state). Errors: io.
  core::Status write_status(const nlohmann::json& status) const;
  // Reads S.d/status.json; nullopt when missing or unreadable.
  std::optional<nlohmann::json> read_status() const;

 private:
  std::string base_;
  std::string commands_;
  std::string results_;
  std::string status_;
};

// A request document <-> ShellCommand. from_json errors: malformed_json naming the field.
nlohmann::json request_to_json(const core::ShellCommand& command, core::TimePoint at);
core::Result<core::ShellCommand> request_from_json(const nlohmann::json& json);

}  // namespace scout::adapters
