#pragma once
// The configuration model (SPEC §2), after parsing, interpolation, inheritance and unit
// conversion. Plain values; built by adapters/yaml_config and then passed as `const Config&`.
// Every glucose value here is whole mg/dL, whatever `units` the file used.

#include <optional>
#include <string>
#include <vector>

#include "scout/core/units.hpp"

namespace scout::core {

// Glucose thresholds in mg/dL (SPEC §2 `thresholds`). Valid when
// urgent_low < low < high < urgent_high.
struct Thresholds {
  int urgent_low = 55;
  int low = 70;
  int high = 250;
  int urgent_high = 300;
  bool operator==(const Thresholds&) const = default;
};

// A partial set of thresholds, as written in a `schedule` entry or a patient override.
struct ThresholdOverrides {
  std::optional<int> urgent_low;
  std::optional<int> low;
  std::optional<int> high;
  std::optional<int> urgent_high;
  bool operator==(const ThresholdOverrides&) const = default;
};

// Returns `base` with every field set in `overrides` replaced.
Thresholds apply(const Thresholds& base, const ThresholdOverrides& overrides);

// One `schedule` entry: between "HH:MM-HH:MM" local time, thresholds overridden. The window is
// [start, end) in minutes since local midnight; start > end wraps midnight ("22:00-07:00").
// start == end is rejected by validation.
struct ScheduleEntry {
  int start_minute = 0;  // 0..1439
  int end_minute = 0;    // 0..1439
  ThresholdOverrides thresholds;
  bool operator==(const ScheduleEntry&) const = default;
};

// True when `minute_of_day` (0..1439, local) falls in the entry's window.
bool in_window(const ScheduleEntry& entry, int minute_of_day);

struct StaleSettings {
  Duration warn = std::chrono::minutes{15};
  Duration urgent = std::chrono::minutes{30};
  bool operator==(const StaleSettings&) const = default;
};

struct PredictSettings {
  bool enabled = true;
  Duration horizon = std::chrono::minutes{20};  // 5m..30m, the reach of AR2's six 5-minute steps
  bool operator==(const PredictSettings&) const = default;
};

// Quiet time after an acknowledgement, by alarm kind (SPEC §2 `snooze`, §4.12). The defaults
// follow Nightscout's own snooze ladders: urgent lows 15m, low 30m, highs 1h, data alarms 1h.
// `data` covers stale, unreachable and sensor_error. A single duration in the config sets all.
struct SnoozeSettings {
  Duration urgent_low = std::chrono::minutes{15};
  Duration urgent_low_soon = std::chrono::minutes{15};
  Duration low = std::chrono::minutes{30};
  Duration high = std::chrono::hours{1};
  Duration urgent_high = std::chrono::hours{1};
  Duration data = std::chrono::hours{1};
  // Every kind set to `d`.
  static SnoozeSettings all(Duration d) { return {d, d, d, d, d, d}; }
  bool operator==(const SnoozeSettings&) const = default;
};

enum class AckMode { keypress, answer };
const char* to_string(AckMode mode);

// One escalation step (SPEC §2 `escalation.urgent[]` / `warning[]`). Targets are "patient",
// "contacts" or a contact's name, in the order written.
struct EscalationStep {
  Duration after{0};
  std::vector<std::string> call;
  std::vector<std::string> sms;
  bool operator==(const EscalationStep&) const = default;
};

struct Escalation {
  std::vector<EscalationStep> urgent;   // urgent_low, urgent_low_soon, urgent_high, stale (urgent)
  std::vector<EscalationStep> warning;  // low, high, stale (warn), unreachable, sensor_error
  Duration repeat = std::chrono::minutes{15};
  bool operator==(const Escalation&) const = default;
};

// Everything a patient inherits from `defaults` and may override (SPEC §2 `defaults`).
struct AlarmSettings {
  Thresholds thresholds;
  int hysteresis = 5;  // mg/dL
  std::vector<ScheduleEntry> schedule;
  StaleSettings stale;
  Duration unreachable = std::chrono::minutes{30};
  PredictSettings predict;
  AckMode ack = AckMode::keypress;
  SnoozeSettings snooze;
  Duration min_call_gap = std::chrono::minutes{2};
  int max_calls_per_hour = 10;
  int max_sms_per_hour = 20;
  bool notify_resolved = true;
  Escalation escalation;
  bool operator==(const AlarmSettings&) const = default;
};

// The thresholds in force at `minute_of_day` (local): the base thresholds with every matching
// schedule entry applied in file order (a later entry wins on the fields it sets).
Thresholds thresholds_at(const AlarmSettings& settings, int minute_of_day);

struct Contact {
  std::string name;
  std::string phone;  // E.164, with the leading '+'
  bool operator==(const Contact&) const = default;
};

// How to reach a patient's Nightscout (SPEC §2 `nightscout`, protocols.md §1.5).
// At most one of token / api_secret is set. Secrets are never logged or printed.
struct NightscoutSite {
  std::string url;         // base URL, may carry a path prefix; no trailing '/'
  std::string token;       // access token, sent as ?token=
  std::string api_secret;  // plain API_SECRET; sent as header api-secret: sha1hex(secret)
  bool operator==(const NightscoutSite&) const = default;
};

struct Patient {
  std::string name;
  std::string timezone;  // IANA name; empty = the host's zone
  std::string phone;     // E.164, with '+'
  NightscoutSite nightscout;
  std::vector<Contact> contacts;
  AlarmSettings settings;  // defaults with this patient's overrides applied
  bool operator==(const Patient&) const = default;
};

enum class ProviderType { vonage, twilio, console };
const char* to_string(ProviderType type);

enum class ConsoleAnswer { never, ack, noack };

// One telephony provider (SPEC §2 `providers[]`). Only the fields of `type` are meaningful.
struct Provider {
  ProviderType type = ProviderType::console;
  std::string from;      // E.164 with '+' (vonage, twilio)
  std::string base_url;  // https://api.nexmo.com or https://api.twilio.com unless overridden
  // vonage
  std::string application_id;
  std::string private_key_pem;  // contents of private_key_file (or private_key)
  std::string api_key;
  std::string api_secret;
  std::string signature_secret;  // empty: webhooks are authenticated by a URL token instead
  // twilio
  std::string account_sid;
  std::string auth_token;
  // console
  ConsoleAnswer answer = ConsoleAnswer::never;
  bool operator==(const Provider&) const = default;
};

struct ListenerTls {
  std::string cert_file;
  std::string key_file;
  bool operator==(const ListenerTls&) const = default;
};

struct Listener {
  std::string bind_host = "127.0.0.1";
  int bind_port = 8787;
  std::string public_url;  // no trailing '/'
  std::optional<ListenerTls> tls;
  bool operator==(const Listener&) const = default;
};

struct PollSettings {
  Duration interval = std::chrono::seconds{60};  // >= 10s
  Duration timeout = std::chrono::seconds{10};   // per request, connect + transfer
  bool operator==(const PollSettings&) const = default;
};

struct Config {
  std::string source_path;  // the file this came from, for messages
  GlucoseUnit units = GlucoseUnit::mg_dl;
  PollSettings poll;
  std::string state_file = "/var/lib/scout/state.json";
  std::string journal_file;   // empty: no journal
  std::string heartbeat_url;  // empty: no heartbeat
  std::optional<Listener> listener;
  std::vector<Provider> providers;
  AlarmSettings defaults;
  std::vector<Patient> patients;
  bool operator==(const Config&) const = default;
};

// True for "+" followed by 2..15 digits, the first not 0 (ITU-T E.164).
bool is_e164(std::string_view number);

}  // namespace scout::core
