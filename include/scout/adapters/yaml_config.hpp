#pragma once
// Loads and validates the YAML configuration (SPEC §2). Parse, validate everything, then freeze
// (STYLE.md C6): a config with any problem is never used.

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "scout/core/config.hpp"

namespace scout::adapters {

// One problem, located in the file (yaml-cpp marks are 0-based; these are 1-based).
// to_string() gives "FILE:LINE:COL: message", the format `scout validate` prints, or
// "FILE: message" when line is 0.
struct ConfigProblem {
  std::string file;
  int line = 0;    // 1-based; 0 when the problem has no position (e.g. unreadable file)
  int column = 0;  // 1-based
  std::string message;
  std::string to_string() const;
  bool operator==(const ConfigProblem&) const = default;
};

// Where a config loader gets what lies outside the YAML text, so tests can fake it.
struct ConfigEnvironment {
  // ${NAME} lookup; nullopt when NAME is unset.
  std::function<std::optional<std::string>(const std::string& name)> getenv;
  // Reads a whole file (for *_file secrets and private_key_file); nullopt when unreadable.
  std::function<std::optional<std::string>(const std::string& path)> read_file;
  // True when `name` is a known IANA timezone.
  std::function<bool(const std::string& name)> is_timezone;
};

// The file systemd reads into the service's environment (the unit's EnvironmentFile=).
inline constexpr const char* k_environment_file = "/etc/default/scout";

// NAME=value lines of an environment file (blank lines and # comments skipped, an optional
// `export ` and one pair of surrounding quotes removed), as systemd's EnvironmentFile= reads them.
std::map<std::string, std::string> parse_environment_file(const std::string& text);

// The real environment: ::getenv, then (for a variable the process does not have) the file
// $SCOUT_ENVIRONMENT_FILE or /etc/default/scout when readable, so every command sees the
// variables the service sees; the filesystem; and the system tz database.
ConfigEnvironment system_config_environment();

struct ConfigLoad {
  std::optional<core::Config> config;   // set only when `problems` is empty
  std::vector<ConfigProblem> problems;  // every problem found, in file order
  // Things that work but deserve a look (an http public_url, an escalation to `contacts` for a
  // patient who has none). Never make the config invalid. In file order.
  std::vector<ConfigProblem> warnings;
};

// The escalation used when the config gives none (SPEC §2): urgent = call the patient at once,
// then after 5m call and text the contacts; warning = call the patient at once, then after 15m
// text the contacts; repeat every 15m.
core::Escalation default_escalation();

// Parses and validates YAML `text` as if read from `file_name` (used in messages).
// Never throws. Secret values never appear in problems. Every problem is collected (not only the
// first), each at the 1-based line:column of the offending value (a missing required key: of the
// map that lacks it; an unknown or duplicate key: of the key). Checks (SPEC §2):
// - unknown keys at every level (with a suggestion and the allowed keys), duplicate keys, types;
// - `${NAME}` in any scalar, also inside text; an unset variable is named. `$` alone is literal;
// - `<secret>_file: PATH` for token, api_secret, api_key, private_key, signature_secret and
//   auth_token: the first line of the file (private_key_file: the whole PEM file); giving both
//   forms is an error; an unreadable file or an empty first line is an error naming the path;
// - units mg/dL | mmol/L (any case); thresholds and hysteresis in those units, stored as whole
//   mg/dL (core::to_mgdl); each threshold within 40..400 mg/dL;
// - defaults over built-in values, then per patient: thresholds, stale and predict merge key by
//   key; escalation.urgent / warning / repeat each replace; schedule and the rest replace;
// - threshold order urgent_low < low < high < urgent_high and hysteresis < high - low, per level
//   after inheritance and for every combination of schedule entries in force during the day;
// - poll.interval >= 10s, 0 < poll.timeout < interval; 0 < stale.warn < stale.urgent;
//   unreachable > 0; predict.horizon 5m..30m; max_*_per_hour >= 1; escalation.repeat > 0;
// - schedule `between: "HH:MM-HH:MM"`, start != end (wraps midnight), at least one threshold;
// - escalation chains non-empty, `after` non-decreasing, the urgent chain's first step at 0s
//   (the warning chain may start later), every step with a call or sms target; a named target
//   must be a contact of every patient using that chain; contacts may not be named `patient` or
//   `contacts`, and are unique per patient;
// - phone numbers (patient, contacts, provider `from`) E.164 with '+'; a patient's phone is
//   required;
// - nightscout.url http(s), no query string or fragment, trailing '/' removed; at most one of
//   token / api_secret; api_secret at least 12 characters (Nightscout ignores shorter ones);
// - timezone known to env.is_timezone (empty: the host's);
// - providers: at least one; vonage needs application_id (UUID), private_key, api_key,
//   api_secret, from; twilio needs account_sid (AC + 32 hex), auth_token, from; console takes
//   only `answer` (never | ack | noack, default never); base_url http(s), default per type;
// - listener: public_url required (http is a warning), bind HOST:PORT (default
//   127.0.0.1:8787), tls needs both readable files;
// - heartbeat_url http(s) (a query string is allowed); patients non-empty, names unique.
ConfigLoad parse_config(const std::string& text, const std::string& file_name,
                        const ConfigEnvironment& env);

// Reads `path` and parses it with `env`. An unreadable file is one problem with line 0 and the
// message "cannot read: <reason>", printed as "FILE: cannot read: <reason>".
ConfigLoad load_config(const std::string& path, const ConfigEnvironment& env);

// The config path to use when --config is absent (SPEC §1): $SCOUT_CONFIG, then ./scout.yaml,
// then /etc/scout/scout.yaml (the first that exists; the last when none does).
std::string default_config_path(const ConfigEnvironment& env);

}  // namespace scout::adapters
