#pragma once
// `scout check` (SPEC §1): a one-shot dry run. Polls every patient once (or evaluates a simulated
// reading), evaluates, and prints per patient the latest glucose, trend, delta, age, the alarm it
// would raise and what it would do. It never calls, texts or writes state.

#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "scout/core/config.hpp"
#include "scout/app/service.hpp"
#include "scout/core/evaluate.hpp"

namespace scout::app {

// Monitoring-plugins status (SPEC §1): exit codes 0, 1, 2, 3.
enum class CheckStatus { ok, warning, critical, unknown };
const char* to_string(CheckStatus status);  // "ok", "warning", "critical", "unknown"
int exit_code(CheckStatus status);
// The worse of two statuses in SPEC §1's order: critical > unknown > warning > ok.
CheckStatus worse(CheckStatus a, CheckStatus b);

// One action of the first escalation step (SPEC §1 `would`): `to` is "patient" or a contact
// name; `phones` are the E.164 numbers it reaches.
struct WouldAction {
  std::string channel;  // "call" | "sms"
  std::string to;
  std::vector<std::string> phones;
  bool operator==(const WouldAction&) const = default;
};

// What check says about one patient.
struct PatientReport {
  std::string name;
  CheckStatus status = CheckStatus::unknown;
  core::Assessment assessment;
  std::optional<core::Alarm> alarm;  // assessment.worst()
  std::vector<WouldAction> would;
  std::string message;                // the alarm sentence as it would go out, "" when none
  std::optional<std::string> error;   // why the patient could not be evaluated
  core::StaleSettings configured_stale;  // the config's; assessment.stale is what is in force
};

// Builds the report of one patient from its assessment and what the Service would send for it
// from an empty state (`outbound`: the calls and SMS of its first step, in order; others'
// entries are ignored). `would` lists them by channel and person (calls first, then SMS); the
// message is the first one's text, or the alarm sentence at `now` when nobody would be reached.
// Status: an urgent alarm is critical, a warning alarm warning; a failed poll without an alarm
// is unknown; else ok.
PatientReport make_report(const core::Patient& patient, const core::Assessment& assessment,
                          const std::vector<Outbound>& outbound, core::GlucoseUnit unit,
                          core::TimePoint now);

// The worst status of all reports (ok when there are none).
CheckStatus overall_status(const std::vector<PatientReport>& reports);

// The SPEC §1 JSON document (plus fields: unit, glucose (display string), arrow, severity,
// message, thresholds in mg/dL, stale thresholds in force and cadence in seconds, forecast,
// checked_at).
nlohmann::json render_json(const std::vector<PatientReport>& reports, core::GlucoseUnit unit,
                           core::TimePoint now);

// Writes render_json(reports, unit, now) as `dump(2)` would, byte for byte, one patient's object
// at a time (10,000 patients are not held as one document). With `service_error`, the document
// gains "service_error" and its "status" is at least unknown (SPEC §6). No trailing newline.
// Invalid UTF-8 is replaced with U+FFFD, as in dump's error_handler_t::replace.
void write_json(std::ostream& out, const std::vector<PatientReport>& reports,
                core::GlucoseUnit unit, core::TimePoint now,
                const std::optional<std::string>& service_error = std::nullopt);

// The human table followed by one line per alarm or error, and the overall status.
std::string render_text(const std::vector<PatientReport>& reports, core::GlucoseUnit unit);

struct CheckOptions {
  std::string config_path;  // empty: SPEC §1 lookup
  std::string patient;      // empty: every patient
  std::string format = "text";
  std::optional<double> sgv;  // simulated reading, in the config's units
  std::string direction;      // with sgv; "" = NONE
};

// Runs the command; returns the exit code (0..3). Output goes to `out`, diagnostics to `err`.
int run_check(const CheckOptions& options, std::ostream& out, std::ostream& err);

}  // namespace scout::app
