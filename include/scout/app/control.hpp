#pragma once
// Seeing and steering the running service from the shell (SPEC §1, §4.13):
//   scout status              the state file and the service's last tick, per patient
//   scout ack|snooze|unsnooze a request through the command spool (adapters/command_spool.hpp),
//                             then the service's answer
//   scout log                 the journal as a human timeline
// None of them writes the state file: only the service does.
#include <iosfwd>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "scout/core/alarm.hpp"
#include "scout/core/config.hpp"
#include "scout/core/units.hpp"

namespace scout::app {

// The config at `config_path` (SPEC §1 lookup when empty), or nullopt after printing every
// problem and "scout COMMAND: the config … is not valid" on `err`. For status, ack, snooze,
// unsnooze, log and drill.
std::optional<core::Config> load_config_for(const std::string& config_path, std::ostream& err,
                                            const char* command);

struct StatusOptions {
  std::string config_path;  // empty: SPEC §1 lookup
  std::string state_path;   // empty: the config's state_file
  std::string format = "text";
};
// Exit status as `scout check` (SPEC §1): an active urgent alarm 2, a warning alarm 1; 3 when
// the state cannot be read, the service reported that it cannot save its state, the service
// has not ticked for 3 poll intervals (+ 1 min), or a patient's last poll failed.
int run_status(const StatusOptions& options, std::ostream& out, std::ostream& err);

struct CommandOptions {
  std::string config_path;
  std::string state_path;
  core::ShellCommand::Kind kind = core::ShellCommand::Kind::ack;
  std::string patient;
  std::string by;        // empty: $SUDO_USER, else the shell user
  std::string duration;  // snooze: "30m" (at most 24h)
  std::string only;      // --kind: an alarm kind, "glucose" or "data"
  double wait_s = 5;     // how long to wait for a running service's answer
};
// Exit: 0 applied and changed something, or queued for a service that is not running now
// (cron: the next `run --once`); 1 applied and changed nothing (no active alarm, already
// snoozed); 64 usage (unknown patient, bad duration or kind); 78 config; 1 cannot write.
int run_command(const CommandOptions& options, std::ostream& out, std::ostream& err);

struct LogOptions {
  std::string config_path;
  std::string since;    // "yesterday 22:00", "22:00", "-8h", "2026-11-30T22:00", ""= last 24 h
  std::string patient;  // empty: everyone
  std::string format = "text";
};
// Exit 0; 64 for a --since that cannot be read; 78 config; 1 when the journal cannot be read.
int run_log(const LogOptions& options, std::ostream& out, std::ostream& err);

// --since (local time of the host's zone, or of `zone` when set): "-8h"/"-2d" (before now),
// "HH:MM" (the latest such time not after now), "today HH:MM", "yesterday [HH:MM]",
// "YYYY-MM-DD", "YYYY-MM-DD HH:MM" or "YYYY-MM-DDTHH:MM". Errors: usage naming the forms.
core::Result<core::TimePoint> parse_since(const std::string& text, core::TimePoint now,
                                          const std::string& zone = "");

// One human line for a group of journal entries of one alarm (SPEC §1 `log`): "02:13 Alice
// URGENT LOW 52 mg/dL falling — called Alice, no answer — called Bob, pressed 1 — cleared
// 02:41 at 110 mg/dL". `entries` are journal lines (JSON objects) of one alarm id, in order.
std::string narrate_alarm(const std::vector<nlohmann::json>& entries, core::GlucoseUnit unit,
                          const std::string& zone);

}  // namespace scout::app
