#include "scout/adapters/yaml_config.hpp"

#include "scout/adapters/timezone.hpp"
#include "scout/core/units.hpp"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string_view>
#include <system_error>
#include <tuple>
#include <utility>

namespace scout::adapters {

std::string ConfigProblem::to_string() const {
  if (line <= 0) {
    return file + ": " + message;
  }
  return file + ":" + std::to_string(line) + ":" + std::to_string(column) + ": " + message;
}

core::Escalation default_escalation() {
  using std::chrono::minutes;
  core::Escalation escalation;
  escalation.urgent = {
      core::EscalationStep{core::Duration{0}, {"patient"}, {}},
      core::EscalationStep{minutes{5}, {"contacts"}, {"contacts"}},
  };
  escalation.warning = {
      core::EscalationStep{core::Duration{0}, {"patient"}, {}},
      core::EscalationStep{minutes{15}, {}, {"contacts"}},
  };
  escalation.repeat = minutes{15};
  return escalation;
}

namespace {

using core::Duration;

// Glucose thresholds outside what a CGM reports can never fire (below 40) or never clear
// (above 400): SPEC §3 usable readings are 39..401, 39 meaning LOW and 401 HIGH.
constexpr int k_min_threshold_mgdl = 40;
constexpr int k_max_threshold_mgdl = 400;
// SPEC §2: poll.interval >= 10s.
constexpr Duration k_min_poll_interval = std::chrono::seconds{10};
constexpr Duration k_max_poll_interval = std::chrono::minutes{5};
// AR2 forecasts six 5-minute steps (nightscout/cgm-remote-monitor:lib/plugins/ar2.js), so a
// horizon beyond 30 minutes has nothing to look at.
constexpr Duration k_min_predict_horizon = std::chrono::minutes{5};
constexpr Duration k_max_predict_horizon = std::chrono::minutes{30};
// Nightscout ignores an API_SECRET shorter than 12 characters (lib/server/enclave.js
// setApiKey, protocols.md §1.5), so a shorter one can never authenticate.
constexpr std::size_t k_min_api_secret_length = 12;

constexpr std::array<std::string_view, 4> k_threshold_names = {"urgent_low", "low", "high",
                                                               "urgent_high"};
// Each threshold's safe range in mg/dL (README "Safe configs"): a lower urgent_low or low, or a
// higher high or urgent_high, would let a dangerous value go unannounced; the other ends keep
// the alarms from calling about ordinary glucose.
struct ThresholdBound {
  int lo;
  int hi;
  const char* too_low;   // why below lo is refused
  const char* too_high;  // why above hi is refused
};
constexpr std::array<ThresholdBound, 4> k_threshold_bounds = {{
    {45, 100, "lower and a severe low would be announced only when it is already dangerous",
     "higher and urgent calls would come at ordinary glucose"},
    {55, 150, "lower and a low would be announced only when it is already severe",
     "higher and low alarms would come at ordinary glucose"},
    {120, 300, "lower and high alarms would come at ordinary glucose",
     "higher and a high would be announced hours late"},
    {150, 350, "lower and urgent calls would come at ordinary glucose",
     "higher and a dangerous high would never be announced: CGMs read at most 400 mg/dL"},
}};

// 1-based position in the file; {0, 0} when unknown.
struct Pos {
  int line = 0;
  int column = 0;
};

bool is_after(Pos a, Pos b) { return std::tie(a.line, a.column) > std::tie(b.line, b.column); }

Pos pos_of(const YAML::Mark& mark) {
  if (mark.is_null() || mark.line < 0 || mark.column < 0) {
    return {};
  }
  return {mark.line + 1, mark.column + 1};
}

std::string join(const std::string& path, std::string_view key) {
  if (path.empty()) {
    return std::string{key};
  }
  return path + "." + std::string{key};
}

std::string indexed(const std::string& path, std::size_t i) {
  return path + "[" + std::to_string(i) + "]";
}

std::string in_quotes(std::string_view text) { return "'" + std::string{text} + "'"; }

std::string lower(std::string_view text) {
  std::string out{text};
  for (char& c : out) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return out;
}

std::string hhmm(int minute_of_day) {
  const int hours = minute_of_day / 60;
  const int minutes = minute_of_day % 60;
  return std::string{static_cast<char>('0' + hours / 10), static_cast<char>('0' + hours % 10), ':',
                     static_cast<char>('0' + minutes / 10), static_cast<char>('0' + minutes % 10)};
}

// Optimal string alignment distance: Levenshtein plus adjacent transpositions ("hihg" is one
// edit from "high").
std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::vector<std::size_t>> d(a.size() + 1, std::vector<std::size_t>(b.size() + 1));
  for (std::size_t i = 0; i <= a.size(); ++i) {
    d[i][0] = i;
  }
  for (std::size_t j = 0; j <= b.size(); ++j) {
    d[0][j] = j;
  }
  for (std::size_t i = 1; i <= a.size(); ++i) {
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.size()][b.size()];
}

std::string list_names(const std::vector<std::string_view>& names) {
  std::string out;
  for (const auto name : names) {
    if (!out.empty()) {
      out += ", ";
    }
    out += name;
  }
  return out;
}

const char* kind_of(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map:
      return "a map";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Scalar:
      return "a single value";
    case YAML::NodeType::Null:
      return "nothing";
    case YAML::NodeType::Undefined:
      return "nothing";
  }
  return "something else";
}

// One `key: value` of a YAML map.
struct Entry {
  std::string key;
  Pos key_pos;
  YAML::Node value;
  // Where the value is; a missing value ("key:") has no useful mark of its own.
  Pos value_pos() const {
    if (value.IsNull()) {
      return key_pos;
    }
    const Pos pos = pos_of(value.Mark());
    return pos.line == 0 ? key_pos : pos;
  }
};

// A YAML map whose keys have been checked against the allowed ones.
struct Map {
  std::string path;
  Pos pos;
  std::vector<Entry> entries;
  const Entry* get(std::string_view key) const {
    for (const Entry& e : entries) {
      if (e.key == key) {
        return &e;
      }
    }
    return nullptr;
  }
};

// A list item with its position.
struct Item {
  YAML::Node node;
  Pos pos;
};

// Which thresholds a map set, and where (so that a threshold-order problem points at the value
// that caused it).
struct ThresholdMarks {
  Pos node;
  std::array<std::optional<Pos>, 4> field;
};

int threshold(const core::Thresholds& t, std::size_t i) {
  switch (i) {
    case 0:
      return t.urgent_low;
    case 1:
      return t.low;
    case 2:
      return t.high;
    default:
      return t.urgent_high;
  }
}

std::optional<int>& threshold(core::ThresholdOverrides& t, std::size_t i) {
  switch (i) {
    case 0:
      return t.urgent_low;
    case 1:
      return t.low;
    case 2:
      return t.high;
    default:
      return t.urgent_high;
  }
}

struct ScheduleOrigin {
  std::string path;  // e.g. "defaults.schedule[1]"
  Pos pos;
  ThresholdMarks marks;
};

struct TargetOrigin {
  std::string name;
  std::string path;  // e.g. "defaults.escalation.urgent[1].call[0]"
  Pos pos;
};

// Where the settings in force at one level (defaults, or one patient) came from.
struct Origins {
  std::string level;  // "defaults" or "patients[0]"
  std::string who;    // "" for defaults, else the patient's name
  Pos pos;
  std::optional<ThresholdMarks> thresholds;  // set at this level
  std::optional<Pos> hysteresis;             // set at this level
  bool schedule_here = false;
  std::string schedule_owner;  // the level that wrote the schedule in force
  std::vector<ScheduleOrigin> schedule;
  std::optional<Pos> stale;  // set at this level
  std::vector<TargetOrigin> urgent_targets;
  std::vector<TargetOrigin> warning_targets;
};

// A secret that may be given inline as `name` or as `name_file`.
struct Secret {
  bool given = false;
  std::optional<std::string> value;  // unset when given but invalid (already reported)
  Pos pos;
};

// Checks an http(s) URL. Returns the reason it is wrong, or nullopt. Never echoes the URL: it
// may carry credentials.
std::optional<std::string> url_problem(const std::string& url, bool allow_query) {
  const std::string low = lower(url);
  std::size_t rest = 0;
  if (low.rfind("https://", 0) == 0) {
    rest = 8;
  } else if (low.rfind("http://", 0) == 0) {
    rest = 7;
  } else {
    return "must start with https:// or http://";
  }
  for (const char c : url) {
    if (std::isspace(static_cast<unsigned char>(c)) != 0 ||
        std::iscntrl(static_cast<unsigned char>(c)) != 0) {
      return "must not contain spaces or control characters";
    }
  }
  const std::size_t host_end = url.find_first_of("/?#", rest);
  std::string authority =
      url.substr(rest, host_end == std::string::npos ? std::string::npos : host_end - rest);
  if (const auto at = authority.rfind('@'); at != std::string::npos) {
    authority = authority.substr(at + 1);
  }
  std::string host = authority;
  std::string port;
  bool has_port = false;
  if (!authority.empty() && authority.front() == '[') {
    const auto close = authority.find(']');
    if (close == std::string::npos) {
      return "has an unterminated IPv6 address";
    }
    host = authority.substr(0, close + 1);
    if (close + 1 < authority.size()) {
      if (authority[close + 1] != ':') {
        return "has an invalid host";
      }
      port = authority.substr(close + 2);
      has_port = true;
    }
  } else if (const auto colon = authority.find(':'); colon != std::string::npos) {
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
    has_port = true;
  }
  if (host.empty() || host == "[]") {
    return "has no host name";
  }
  if (has_port &&
      (port.empty() || port.size() > 5 ||
       !std::all_of(port.begin(), port.end(),
                    [](char c) { return std::isdigit(static_cast<unsigned char>(c)) != 0; }) ||
       std::stoi(port) < 1 || std::stoi(port) > 65535)) {
    return "has an invalid port (1..65535)";
  }
  if (url.find('#') != std::string::npos) {
    return "must not carry a #fragment";
  }
  if (!allow_query && url.find('?') != std::string::npos) {
    return "must not carry a query string";
  }
  return std::nullopt;
}

std::string strip_trailing_slashes(std::string url) {
  while (!url.empty() && url.back() == '/') {
    url.pop_back();
  }
  return url;
}

bool looks_like_pem_private_key(const std::string& text) {
  return text.find("-----BEGIN ") != std::string::npos &&
         text.find("PRIVATE KEY-----") != std::string::npos;
}

bool is_hex(std::string_view text) {
  return std::all_of(text.begin(), text.end(),
                     [](char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; });
}

bool is_uuid(std::string_view text) {
  // 8-4-4-4-12 hex digits.
  if (text.size() != 36) {
    return false;
  }
  for (std::size_t i = 0; i < text.size(); ++i) {
    const bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? text[i] != '-' : std::isxdigit(static_cast<unsigned char>(text[i])) == 0) {
      return false;
    }
  }
  return true;
}

// "HH:MM" -> minutes since midnight.
std::optional<int> parse_hhmm(std::string_view text) {
  const auto colon = text.find(':');
  if (colon == std::string_view::npos || colon == 0 || colon > 2 || text.size() != colon + 3) {
    return std::nullopt;
  }
  int hours = 0;
  int minutes = 0;
  const auto h = std::from_chars(text.data(), text.data() + colon, hours);
  const auto m = std::from_chars(text.data() + colon + 1, text.data() + text.size(), minutes);
  if (h.ec != std::errc{} || h.ptr != text.data() + colon || m.ec != std::errc{} ||
      m.ptr != text.data() + text.size()) {
    return std::nullopt;
  }
  if (hours < 0 || hours > 23 || minutes < 0 || minutes > 59) {
    return std::nullopt;
  }
  return hours * 60 + minutes;
}

std::string_view trim(std::string_view text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front())) != 0) {
    text.remove_prefix(1);
  }
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back())) != 0) {
    text.remove_suffix(1);
  }
  return text;
}

const std::vector<std::string_view> k_top_keys = {"units",        "poll",          "state_file",
                                                  "journal_file", "heartbeat_url", "listener",
                                                  "providers",    "defaults",      "patients"};
const std::vector<std::string_view> k_settings_keys = {"thresholds",
                                                       "hysteresis",
                                                       "schedule",
                                                       "stale",
                                                       "unreachable",
                                                       "predict",
                                                       "ack",
                                                       "snooze",
                                                       "min_call_gap",
                                                       "max_calls_per_hour",
                                                       "max_sms_per_hour",
                                                       "notify_resolved",
                                                       "escalation"};
const std::vector<std::string_view> k_patient_only_keys = {"name", "timezone", "phone",
                                                           "nightscout", "contacts"};
const std::vector<std::string_view> k_vonage_keys = {"type",
                                                     "application_id",
                                                     "private_key",
                                                     "private_key_file",
                                                     "api_key",
                                                     "api_key_file",
                                                     "api_secret",
                                                     "api_secret_file",
                                                     "signature_secret",
                                                     "signature_secret_file",
                                                     "from",
                                                     "base_url"};
const std::vector<std::string_view> k_twilio_keys = {
    "type", "account_sid", "auth_token", "auth_token_file", "from", "base_url"};
const std::vector<std::string_view> k_console_keys = {"type", "answer"};

const std::vector<std::string_view>& provider_keys(core::ProviderType type) {
  switch (type) {
    case core::ProviderType::vonage:
      return k_vonage_keys;
    case core::ProviderType::twilio:
      return k_twilio_keys;
    case core::ProviderType::console:
      return k_console_keys;
  }
  return k_console_keys;
}

// A config is a page of YAML; anything this large is not one (and would cost memory to parse).
constexpr std::size_t k_max_config_bytes = std::size_t{1} << 20;

// Where a second YAML document of `text` starts, if there is one. At most two documents are
// walked, so an input on which yaml-cpp's parser never reaches the end is still bounded.
std::optional<YAML::Mark> second_document_mark(const std::string& text) {
  struct Marks final : YAML::EventHandler {
    std::vector<YAML::Mark> starts;
    void OnDocumentStart(const YAML::Mark& mark) override { starts.push_back(mark); }
    void OnDocumentEnd() override {}
    void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
    void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
    void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  const std::string&) override {}
    void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                         YAML::EmitterStyle::value) override {}
    void OnSequenceEnd() override {}
    void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                    YAML::EmitterStyle::value) override {}
    void OnMapEnd() override {}
  } marks;
  std::istringstream in(text);
  YAML::Parser parser(in);
  for (int i = 0; i < 2 && parser.HandleNextDocument(marks); ++i) {
  }
  if (marks.starts.size() < 2) return std::nullopt;
  return marks.starts[1];
}

// False when `text` cannot hold a second YAML document: one needs a line starting with `---` or
// `...` (YAML 1.2 §9.1, document markers are at the start of a line) beyond a `---` that opens
// the first document. Saves the second walk of every ordinary config.
bool may_hold_second_document(const std::string& text) {
  bool seen_content = false;
  std::size_t line = 0;
  while (line < text.size()) {
    std::size_t end = text.find_first_of("\r\n", line);
    if (end == std::string::npos) end = text.size();
    const std::string_view view{text.data() + line, end - line};
    const bool marker = view.starts_with("---") || view.starts_with("...");
    const auto first = view.find_first_not_of(" \t");
    const bool blank = first == std::string_view::npos || view[first] == '#';
    if (marker && seen_content) return true;
    if (!blank) seen_content = true;
    line = end + 1;
  }
  return false;
}

// True when `text` has anything but blanks and comments.
bool has_content(const std::string& text) {
  bool comment = false;
  for (const char c : text) {
    if (c == '\n') comment = false;
    else if (c == '#') comment = true;
    else if (!comment && std::isspace(static_cast<unsigned char>(c)) == 0) return true;
  }
  return false;
}

class Loader {
 public:
  Loader(std::string file, const ConfigEnvironment& env) : m_file(std::move(file)), m_env(env) {}

  ConfigLoad load(const std::string& text) {
    if (text.size() > k_max_config_bytes) {
      error({}, "", "the file is " + std::to_string(text.size()) + " bytes; a config is at most " +
                        std::to_string(k_max_config_bytes / 1024) + " KiB");
      return finish(std::nullopt);
    }
    YAML::Node root;
    std::optional<YAML::Mark> second_document;
    try {
      // YAML::LoadAll never returns on some inputs (yaml-cpp 0.7 loops on ",\n"): the first
      // document is loaded alone, and a second one is looked for with a bounded walk.
      root = YAML::Load(text);
      if (may_hold_second_document(text)) second_document = second_document_mark(text);
    } catch (const YAML::Exception& e) {
      error(pos_of(e.mark), "", "invalid YAML: " + e.msg);
      return finish(std::nullopt);
    } catch (const std::exception& e) {
      error({}, "", std::string{"invalid YAML: "} + e.what());
      return finish(std::nullopt);
    }
    if (!root.IsDefined() || root.IsNull()) {
      if (has_content(text)) {
        error({1, 1}, "", "not a YAML map; expected a map with `providers` and `patients`");
      } else {
        error({1, 1}, "", "the file is empty; expected a map with `providers` and `patients`");
      }
      return finish(std::nullopt);
    }
    if (second_document) {
      error(pos_of(*second_document), "",
            "only one YAML document is allowed (remove the second `---`)");
    }
    core::Config config;
    config.source_path = m_file;
    try {
      parse_root(root, config);
    } catch (const std::exception& e) {
      // yaml-cpp conversions are avoided above; this is a last line so that parse_config never
      // throws.
      error({}, "", std::string{"internal error while reading the config: "} + e.what());
    }
    return finish(std::move(config));
  }

 private:
  // ---- reporting -------------------------------------------------------------------------

  void error(Pos pos, const std::string& path, const std::string& message) {
    m_problems.push_back(problem(pos, path, message));
  }

  void warning(Pos pos, const std::string& path, const std::string& message) {
    m_warnings.push_back(problem(pos, path, message));
  }

  ConfigProblem problem(Pos pos, const std::string& path, const std::string& message) const {
    return ConfigProblem{m_file, pos.line, pos.line == 0 ? 0 : pos.column,
                         path.empty() ? message : path + ": " + message};
  }

  static std::vector<ConfigProblem> sorted_unique(std::vector<ConfigProblem> problems) {
    std::stable_sort(problems.begin(), problems.end(),
                     [](const ConfigProblem& a, const ConfigProblem& b) {
                       return std::tie(a.line, a.column) < std::tie(b.line, b.column);
                     });
    // Duplicates dropped, first kept: a set of what was seen, not a search of the output (ten
    // thousand patients with the same warning were 10^8 comparisons).
    std::vector<ConfigProblem> out;
    out.reserve(problems.size());
    std::set<std::tuple<int, int, std::string_view>> seen;
    for (auto& p : problems) {
      if (seen.count({p.line, p.column, p.message}) != 0) continue;
      out.push_back(std::move(p));  // `out` is reserved: its elements never move
      seen.emplace(out.back().line, out.back().column, out.back().message);
    }
    return out;
  }

  ConfigLoad finish(std::optional<core::Config> config) {
    ConfigLoad result;
    result.problems = sorted_unique(std::move(m_problems));
    result.warnings = sorted_unique(std::move(m_warnings));
    if (result.problems.empty()) {
      result.config = std::move(config);
    }
    return result;
  }

  // ---- structure -------------------------------------------------------------------------

  // Reads a map, reporting a wrong type, duplicate keys and unknown keys (which are dropped).
  std::optional<Map> as_map(const YAML::Node& node, Pos pos, const std::string& path,
                            const std::vector<std::string_view>& allowed,
                            const std::string& what = "") {
    if (!node.IsMap()) {
      error(
          pos, path,
          std::string{"must be a map of keys ("} + list_names(allowed) + "), got " + kind_of(node));
      return std::nullopt;
    }
    Map map;
    map.path = path;
    map.pos = pos_of(node.Mark());
    if (map.pos.line == 0) {
      map.pos = pos;
    }
    std::map<std::string, Pos> seen;
    for (auto it = node.begin(); it != node.end(); ++it) {
      const YAML::Node key = it->first;
      const Pos key_pos = pos_of(key.Mark());
      if (!key.IsScalar()) {
        error(key_pos, path, "keys must be plain names");
        continue;
      }
      const std::string name = key.Scalar();
      if (const auto previous = seen.find(name); previous != seen.end()) {
        error(key_pos, join(path, name),
              "duplicate key (first given at line " + std::to_string(previous->second.line) + ")");
        continue;
      }
      seen.emplace(name, key_pos);
      if (std::find(allowed.begin(), allowed.end(), name) == allowed.end()) {
        report_unknown_key(key_pos, path, name, allowed, what);
        continue;
      }
      map.entries.push_back(Entry{name, key_pos, it->second});
    }
    return map;
  }

  void report_unknown_key(Pos pos, const std::string& path, const std::string& name,
                          const std::vector<std::string_view>& allowed, const std::string& what) {
    std::string_view best;
    std::size_t best_distance = std::string::npos;
    for (const auto candidate : allowed) {
      const std::size_t d = edit_distance(lower(name), candidate);
      if (d < best_distance) {
        best_distance = d;
        best = candidate;
      }
    }
    std::string message = "unknown key" + (what.empty() ? std::string{} : " " + what);
    // One edit for short names, two for longer ones: close enough to be a typo, not a guess.
    if (!best.empty() && best_distance <= (best.size() < 6 ? 1U : 2U)) {
      message += "; did you mean " + in_quotes(best) + "?";
    }
    message += " (allowed: " + list_names(allowed) + ")";
    error(pos, join(path, name), message);
  }

  std::optional<std::vector<Item>> as_list(const Entry& entry, const std::string& path) {
    if (!entry.value.IsSequence()) {
      error(entry.value_pos(), path, std::string{"must be a list, got "} + kind_of(entry.value));
      return std::nullopt;
    }
    std::vector<Item> items;
    const Pos list_pos = entry.value_pos();
    for (auto it = entry.value.begin(); it != entry.value.end(); ++it) {
      Pos pos = pos_of(it->Mark());
      if (pos.line == 0 || it->IsNull()) {
        pos = items.empty() ? list_pos : items.back().pos;
      }
      items.push_back(Item{*it, pos});
    }
    return items;
  }

  void require(const Map& map, std::string_view key) {
    if (map.get(key) == nullptr) {
      error(map.pos, map.path, "missing required key " + in_quotes(key));
    }
  }

  // A reader of one scalar value: reports a bad value at `path` and returns nullopt.
  template <typename T>
  using Reader = std::optional<T> (Loader::*)(const Entry&, const std::string&);

  // When `map` has `key`, reads it with `reader` and, if valid, stores it in `out`. Returns the
  // entry when a value was stored.
  template <typename T, typename Out>
  const Entry* read(const Map& map, std::string_view key, Reader<T> reader, Out& out) {
    const Entry* e = map.get(key);
    if (e == nullptr) {
      return nullptr;
    }
    auto value = (this->*reader)(*e, join(map.path, key));
    if (!value) {
      return nullptr;
    }
    out = std::move(*value);
    return e;
  }

  // ---- scalars ---------------------------------------------------------------------------

  // Replaces every ${NAME} in `raw` from the environment. Unset variables are errors.
  std::optional<std::string> interpolate(const std::string& raw, Pos pos, const std::string& path) {
    std::string out;
    bool ok = true;
    std::size_t i = 0;
    while (i < raw.size()) {
      const std::size_t open = raw.find("${", i);
      if (open == std::string::npos) {
        out.append(raw, i, std::string::npos);
        break;
      }
      out.append(raw, i, open - i);
      const std::size_t close = raw.find('}', open + 2);
      if (close == std::string::npos) {
        error(pos, path, "unterminated ${ (write ${NAME})");
        return std::nullopt;
      }
      const std::string name = raw.substr(open + 2, close - open - 2);
      const bool valid_name = !name.empty() &&
                              std::isdigit(static_cast<unsigned char>(name.front())) == 0 &&
                              std::all_of(name.begin(), name.end(), [](char c) {
                                return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_';
                              });
      if (!valid_name) {
        error(pos, path,
              "invalid environment variable name " + in_quotes(name) +
                  " in ${...} (letters, digits and _)");
        ok = false;
      } else if (const auto value = m_env.getenv ? m_env.getenv(name) : std::nullopt; value) {
        out += *value;
      } else {
        error(pos, path, "environment variable " + name + " is not set");
        ok = false;
      }
      i = close + 1;
    }
    if (!ok) {
      return std::nullopt;
    }
    return out;
  }

  // The value of `entry` as text, after ${ENV} interpolation.
  std::optional<std::string> text(const Entry& entry, const std::string& path) {
    return text_of(entry.value, entry.value_pos(), path);
  }

  std::optional<std::string> text_of(const YAML::Node& node, Pos pos, const std::string& path) {
    if (node.IsNull()) {
      error(pos, path, "missing value");
      return std::nullopt;
    }
    if (!node.IsScalar()) {
      error(pos, path, std::string{"must be a single value, got "} + kind_of(node));
      return std::nullopt;
    }
    return interpolate(node.Scalar(), pos, path);
  }

  std::optional<std::string> nonempty_text(const Entry& entry, const std::string& path) {
    auto value = text(entry, path);
    if (value && trim(*value).empty()) {
      error(entry.value_pos(), path, "must not be empty");
      return std::nullopt;
    }
    return value;
  }

  std::optional<Duration> duration(const Entry& entry, const std::string& path) {
    const auto value = text(entry, path);
    if (!value) {
      return std::nullopt;
    }
    const auto parsed = core::parse_duration(*value);
    if (!parsed) {
      error(entry.value_pos(), path,
            "must be a duration like 45s, 15m, 2h or 1h30m, got " + in_quotes(*value));
      return std::nullopt;
    }
    return *parsed;
  }

  // A duration of at least k_min_poll_interval.
  std::optional<Duration> poll_interval(const Entry& entry, const std::string& path) {
    auto value = duration(entry, path);
    if (value && *value < k_min_poll_interval) {
      error(entry.value_pos(), path,
            "must be at least " + core::format_duration(k_min_poll_interval) + ", got " +
                core::format_duration(*value));
      return std::nullopt;
    }
    if (value && *value > k_max_poll_interval) {
      error(entry.value_pos(), path,
            "must be at most " + core::format_duration(k_max_poll_interval) +
                " (a longer loop notices a low too late), got " + core::format_duration(*value));
      return std::nullopt;
    }
    return value;
  }

  // A duration in [lo, hi]; `why` says what a larger value would break (SPEC §2 bounds, README).
  std::optional<Duration> bounded(const Entry& entry, const std::string& path, Duration lo,
                                  Duration hi, const char* why) {
    auto value = duration(entry, path);
    if (!value) return std::nullopt;
    if (*value < lo) {
      error(entry.value_pos(), path,
            "must be at least " + core::format_duration(lo) + ", got " +
                core::format_duration(*value));
      return std::nullopt;
    }
    if (*value > hi) {
      error(entry.value_pos(), path,
            "must be at most " + core::format_duration(hi) + " (" + why + "), got " +
                core::format_duration(*value));
      return std::nullopt;
    }
    return value;
  }
  std::optional<Duration> stale_duration(const Entry& entry, const std::string& path) {
    return bounded(entry, path, std::chrono::minutes{1}, std::chrono::hours{2},
                   "longer and a sensor that stopped would go unnoticed for hours");
  }
  std::optional<Duration> unreachable_duration(const Entry& entry, const std::string& path) {
    return bounded(entry, path, std::chrono::minutes{1}, std::chrono::hours{2},
                   "longer and a Nightscout that is down would go unnoticed for hours");
  }
  std::optional<Duration> snooze_duration(const Entry& entry, const std::string& path) {
    return bounded(entry, path, std::chrono::minutes{1}, std::chrono::hours{4},
                   "longer and an acknowledged low could go on unheard for half a night");
  }
  std::optional<Duration> call_gap(const Entry& entry, const std::string& path) {
    return bounded(entry, path, Duration{0}, std::chrono::minutes{15},
                   "longer and the next urgent call would be held back as a mere SMS");
  }
  std::optional<Duration> repeat_duration(const Entry& entry, const std::string& path) {
    return bounded(entry, path, std::chrono::seconds{1}, std::chrono::hours{2},
                   "longer and an unacknowledged alarm would go quiet for hours");
  }
  std::optional<Duration> step_after(const Entry& entry, const std::string& path) {
    return bounded(entry, path, Duration{0}, std::chrono::hours{2},
                   "longer and the contacts would hear of an alarm hours late");
  }

  std::optional<Duration> positive_duration(const Entry& entry, const std::string& path) {
    auto value = duration(entry, path);
    if (value && *value <= Duration{0}) {
      error(entry.value_pos(), path, "must be longer than 0s");
      return std::nullopt;
    }
    return value;
  }

  std::optional<double> number(const Entry& entry, const std::string& path) {
    const auto value = text(entry, path);
    if (!value) {
      return std::nullopt;
    }
    return number_of(*value, entry.value_pos(), path);
  }

  std::optional<double> number_of(const std::string& value, Pos pos, const std::string& path) {
    const std::string_view t = trim(value);
    double parsed = 0;
    const auto result = std::from_chars(t.data(), t.data() + t.size(), parsed);
    if (t.empty() || result.ec != std::errc{} || result.ptr != t.data() + t.size() ||
        !std::isfinite(parsed)) {
      error(pos, path, "must be a number, got " + in_quotes(value));
      return std::nullopt;
    }
    return parsed;
  }

  std::optional<int> positive_int(const Entry& entry, const std::string& path) {
    const auto value = text(entry, path);
    if (!value) {
      return std::nullopt;
    }
    const std::string_view t = trim(*value);
    long long parsed = 0;
    const auto result = std::from_chars(t.data(), t.data() + t.size(), parsed);
    if (t.empty() || result.ec != std::errc{} || result.ptr != t.data() + t.size()) {
      error(entry.value_pos(), path, "must be a whole number, got " + in_quotes(*value));
      return std::nullopt;
    }
    if (parsed < 1 || parsed > 1'000'000) {
      error(entry.value_pos(), path, "must be between 1 and 1000000, got " + std::string{t});
      return std::nullopt;
    }
    return static_cast<int>(parsed);
  }

  std::optional<bool> boolean(const Entry& entry, const std::string& path) {
    const auto value = text(entry, path);
    if (!value) {
      return std::nullopt;
    }
    const std::string v = lower(trim(*value));
    if (v == "true" || v == "yes" || v == "on") {
      return true;
    }
    if (v == "false" || v == "no" || v == "off") {
      return false;
    }
    error(entry.value_pos(), path, "must be true or false, got " + in_quotes(*value));
    return std::nullopt;
  }

  // One of a fixed set of names, in any case. The error lists the names: "must be A, B or C".
  template <typename E>
  std::optional<E> choice(const Entry& entry, const std::string& path,
                          std::initializer_list<std::pair<std::string_view, E>> choices) {
    const auto value = text(entry, path);
    if (!value) {
      return std::nullopt;
    }
    const std::string v = lower(trim(*value));
    std::string names;
    std::size_t i = 0;
    for (const auto& [name, result] : choices) {
      if (v == lower(name)) {
        return result;
      }
      names += (i == 0 ? "" : i + 1 == choices.size() ? " or " : ", ") + std::string{name};
      ++i;
    }
    error(entry.value_pos(), path, "must be " + names + ", got " + in_quotes(*value));
    return std::nullopt;
  }

  std::optional<core::GlucoseUnit> units(const Entry& entry, const std::string& path) {
    return choice<core::GlucoseUnit>(
        entry, path, {{"mg/dL", core::GlucoseUnit::mg_dl}, {"mmol/L", core::GlucoseUnit::mmol_l}});
  }

  std::optional<core::AckMode> ack_mode(const Entry& entry, const std::string& path) {
    return choice<core::AckMode>(
        entry, path, {{"keypress", core::AckMode::keypress}, {"answer", core::AckMode::answer}});
  }

  std::optional<core::ConsoleAnswer> console_answer(const Entry& entry, const std::string& path) {
    return choice<core::ConsoleAnswer>(entry, path,
                                       {{"never", core::ConsoleAnswer::never},
                                        {"ack", core::ConsoleAnswer::ack},
                                        {"noack", core::ConsoleAnswer::noack}});
  }

  std::optional<core::ProviderType> provider_type(const Entry& entry, const std::string& path) {
    return choice<core::ProviderType>(entry, path,
                                      {{"vonage", core::ProviderType::vonage},
                                       {"twilio", core::ProviderType::twilio},
                                       {"console", core::ProviderType::console}});
  }

  std::optional<std::string> phone(const Entry& entry, const std::string& path) {
    return phone_of(entry.value, entry.value_pos(), path);
  }

  // Phone numbers are not echoed back: logs mask them (SPEC §6) and the position is enough.
  std::optional<std::string> phone_of(const YAML::Node& node, Pos pos, const std::string& path) {
    auto value = text_of(node, pos, path);
    if (!value) {
      return std::nullopt;
    }
    if (core::is_e164(*value)) {
      return value;
    }
    std::string why;
    if (value->empty() || value->front() != '+') {
      why = "must start with '+' and the country code";
    } else if (value->find_first_of(" -().") != std::string::npos) {
      why = "must have only digits after '+' (no spaces, dashes or parentheses)";
    } else {
      why = "must be '+' followed by 2 to 15 digits, the first not 0";
    }
    error(pos, path, why + " (E.164, e.g. \"+14155550100\"; quote it in YAML)");
    return std::nullopt;
  }

  // A glucose value in the config's units, as whole mg/dL within the CGM's range.
  std::optional<int> glucose(const Entry& entry, const std::string& path) {
    const auto raw = text(entry, path);
    if (!raw) {
      return std::nullopt;
    }
    const auto value = number_of(*raw, entry.value_pos(), path);
    if (!value) {
      return std::nullopt;
    }
    if (*value <= 0) {
      error(entry.value_pos(), path, "must be above 0, got " + std::string{trim(*raw)});
      return std::nullopt;
    }
    const int mgdl = core::to_mgdl(*value, m_units);
    if (m_units_ok && (mgdl < k_min_threshold_mgdl || mgdl > k_max_threshold_mgdl)) {
      std::string message = "must be between " + display(k_min_threshold_mgdl, false) + " and " +
                            display(k_max_threshold_mgdl) + ", got " + std::string{trim(*raw)};
      if (m_units == core::GlucoseUnit::mg_dl && *value < 40) {
        message += " (units is mg/dL; is this mmol/L?)";
      } else if (m_units == core::GlucoseUnit::mmol_l && *value > 22.2) {
        message += " (units is mmol/L; is this mg/dL?)";
      }
      error(entry.value_pos(), path, message);
      return std::nullopt;
    }
    return mgdl;
  }

  // An mg/dL value shown in the config's units: "250 mg/dL", "13.9 mmol/L".
  std::string display(int mgdl, bool with_unit = true) const {
    std::string out = core::format_glucose(mgdl, m_units);
    if (with_unit) {
      out += " ";
      out += core::to_string(m_units);
    }
    return out;
  }

  // `name` or `name_file` (the first line of that file; the whole file when `whole_file`).
  Secret secret(const Map& map, const std::string& name, bool whole_file = false) {
    Secret result;
    const Entry* inline_entry = map.get(name);
    const Entry* file_entry = map.get(name + "_file");
    if (inline_entry != nullptr && file_entry != nullptr) {
      const Entry* later =
          is_after(file_entry->key_pos, inline_entry->key_pos) ? file_entry : inline_entry;
      error(later->key_pos, join(map.path, later->key),
            "give either " + name + " or " + name + "_file, not both");
      result.given = true;
      result.pos = later->key_pos;
      return result;
    }
    if (inline_entry != nullptr) {
      result.given = true;
      result.pos = inline_entry->value_pos();
      result.value = text(*inline_entry, join(map.path, name));
    } else if (file_entry != nullptr) {
      result.given = true;
      result.pos = file_entry->value_pos();
      const std::string path = join(map.path, file_entry->key);
      const auto file = text(*file_entry, path);
      if (!file) {
        return result;
      }
      if (trim(*file).empty()) {
        error(result.pos, path, "must not be empty");
        return result;
      }
      const auto contents = m_env.read_file ? m_env.read_file(*file) : std::nullopt;
      if (!contents) {
        error(result.pos, path, "cannot read file " + in_quotes(*file));
        return result;
      }
      if (whole_file) {
        result.value = *contents;
      } else {
        std::string first = contents->substr(0, contents->find('\n'));
        if (!first.empty() && first.back() == '\r') {
          first.pop_back();
        }
        if (first.empty()) {
          error(result.pos, path, "the first line of " + in_quotes(*file) + " is empty");
          return result;
        }
        result.value = std::move(first);
      }
      return result;
    }
    if (result.value && result.value->empty()) {
      error(result.pos, join(map.path, name), "must not be empty");
      result.value.reset();
    }
    return result;
  }

  Secret required_secret(const Map& map, const std::string& name, bool whole_file = false) {
    Secret s = secret(map, name, whole_file);
    if (!s.given) {
      error(map.pos, map.path,
            "missing required key " + in_quotes(name) + " (or " + name + "_file)");
    }
    return s;
  }

  // Stores the secret's value in `out` when it was given and valid.
  static void store(const Secret& given, std::string& out) {
    if (given.value) {
      out = *given.value;
    }
  }

  std::optional<std::string> url(const Entry& entry, const std::string& path, bool allow_query) {
    auto value = text(entry, path);
    if (!value) {
      return std::nullopt;
    }
    if (const auto why = url_problem(*value, allow_query)) {
      error(entry.value_pos(), path, *why);
      return std::nullopt;
    }
    return strip_trailing_slashes(*value);
  }

  std::optional<std::string> url_with_query(const Entry& entry, const std::string& path) {
    return url(entry, path, true);
  }

  std::optional<std::string> url_without_query(const Entry& entry, const std::string& path) {
    return url(entry, path, false);
  }

  // ---- sections --------------------------------------------------------------------------

  void parse_root(const YAML::Node& root, core::Config& config) {
    const auto map = as_map(root, {1, 1}, "", k_top_keys, "at the top level");
    if (!map) {
      return;
    }
    require(*map, "providers");
    require(*map, "patients");

    if (map->get("units") != nullptr) {
      m_units_ok = read(*map, "units", &Loader::units, m_units) != nullptr;
    }
    config.units = m_units;

    if (const Entry* e = map->get("poll")) {
      parse_poll(*e, config.poll);
    }
    read(*map, "state_file", &Loader::nonempty_text, config.state_file);
    read(*map, "journal_file", &Loader::text, config.journal_file);
    read(*map, "heartbeat_url", &Loader::url_with_query, config.heartbeat_url);
    if (const Entry* e = map->get("listener")) {
      config.listener = parse_listener(*e);
    }
    if (const Entry* e = map->get("providers")) {
      parse_providers(*e, config.providers);
      const bool has_vonage =
          std::any_of(config.providers.begin(), config.providers.end(),
                      [](const core::Provider& p) { return p.type == core::ProviderType::vonage; });
      if (has_vonage && !config.listener) {
        // Vonage reports answering machines only in its event webhooks; its call resource has no
        // verdict, so without a listener a voicemail pickup looks like a person answering.
        warning(e->value_pos(), "providers",
                "vonage without a `listener`: scout learns call outcomes by polling, where "
                "Vonage cannot tell voicemail from a person, so a call picked up by voicemail "
                "counts as acknowledged; configure a listener (or use twilio) to avoid that");
      }
    }

    core::AlarmSettings defaults;
    defaults.escalation = default_escalation();
    Origins origins;
    origins.level = "defaults";
    origins.pos = map->pos;
    origins.schedule_owner = "defaults";
    if (const Entry* e = map->get("defaults")) {
      origins.pos = e->value_pos();
      if (const auto defaults_map = as_map(e->value, e->value_pos(), "defaults", k_settings_keys)) {
        origins.pos = defaults_map->pos;
        parse_settings(*defaults_map, defaults, origins);
        check_settings(defaults, origins, true, true, true);
      }
    }
    config.defaults = defaults;

    if (const Entry* e = map->get("patients")) {
      parse_patients(*e, defaults, origins, config.patients);
    }
  }

  void parse_poll(const Entry& entry, core::PollSettings& poll) {
    const auto map = as_map(entry.value, entry.value_pos(), "poll", {"interval", "timeout"});
    if (!map) {
      return;
    }
    read(*map, "interval", &Loader::poll_interval, poll.interval);
    if (map->get("timeout") != nullptr) {
      const Entry* timeout = read(*map, "timeout", &Loader::positive_duration, poll.timeout);
      if (timeout != nullptr && poll.timeout >= poll.interval) {
        error(timeout->value_pos(), "poll.timeout",
              "must be shorter than poll.interval (" + core::format_duration(poll.interval) +
                  "), got " + core::format_duration(poll.timeout));
      }
    } else if (poll.timeout >= poll.interval) {
      error(map->pos, "poll",
            "poll.interval must be longer than the default timeout (" +
                core::format_duration(poll.timeout) + "); set poll.timeout");
    }
  }

  std::optional<core::Listener> parse_listener(const Entry& entry) {
    const auto map =
        as_map(entry.value, entry.value_pos(), "listener", {"bind", "public_url", "tls"});
    if (!map) {
      return std::nullopt;
    }
    core::Listener listener;
    if (const Entry* e = map->get("bind")) {
      if (const auto value = text(*e, "listener.bind")) {
        parse_bind(*value, e->value_pos(), listener);
      }
    }
    require(*map, "public_url");
    if (const Entry* e =
            read(*map, "public_url", &Loader::url_without_query, listener.public_url)) {
      if (lower(listener.public_url).rfind("http://", 0) == 0) {
        warning(e->value_pos(), "listener.public_url",
                "uses http: webhooks (call outcomes, keypresses) travel unencrypted; use "
                "https or a TLS proxy");
      }
    }
    if (const Entry* e = map->get("tls")) {
      if (const auto tls =
              as_map(e->value, e->value_pos(), "listener.tls", {"cert_file", "key_file"})) {
        require(*tls, "cert_file");
        require(*tls, "key_file");
        core::ListenerTls files;
        read(*tls, "cert_file", &Loader::readable_file, files.cert_file);
        read(*tls, "key_file", &Loader::readable_file, files.key_file);
        listener.tls = files;
      }
    }
    return listener;
  }

  // A non-empty file name. An unreadable file is reported, but the name is still returned.
  std::optional<std::string> readable_file(const Entry& entry, const std::string& path) {
    auto value = nonempty_text(entry, path);
    if (value && (!m_env.read_file || !m_env.read_file(*value))) {
      error(entry.value_pos(), path, "cannot read file " + in_quotes(*value));
    }
    return value;
  }

  void parse_bind(const std::string& value, Pos pos, core::Listener& listener) {
    std::string host;
    std::string port;
    if (!value.empty() && value.front() == '[') {
      const auto close = value.find(']');
      if (close != std::string::npos && close + 1 < value.size() && value[close + 1] == ':') {
        host = value.substr(1, close - 1);
        port = value.substr(close + 2);
      }
    } else if (const auto colon = value.rfind(':'); colon != std::string::npos) {
      host = value.substr(0, colon);
      port = value.substr(colon + 1);
    }
    int port_number = 0;
    const auto result = std::from_chars(port.data(), port.data() + port.size(), port_number);
    const bool port_ok = !port.empty() && result.ec == std::errc{} &&
                         result.ptr == port.data() + port.size() && port_number >= 1 &&
                         port_number <= 65535;
    if (host.empty() || !port_ok || host.find_first_of(" \t/") != std::string::npos) {
      error(pos, "listener.bind",
            "must be HOST:PORT with a port in 1..65535 (e.g. 127.0.0.1:8787 or [::1]:8787), "
            "got " +
                in_quotes(value));
      return;
    }
    listener.bind_host = host;
    listener.bind_port = port_number;
  }

  void parse_providers(const Entry& entry, std::vector<core::Provider>& providers) {
    const auto items = as_list(entry, "providers");
    if (!items) {
      return;
    }
    if (items->empty()) {
      error(entry.value_pos(), "providers",
            "needs at least one provider (vonage, twilio, or console for a dry run)");
      return;
    }
    for (std::size_t i = 0; i < items->size(); ++i) {
      if (auto provider = parse_provider((*items)[i], indexed("providers", i))) {
        providers.push_back(std::move(*provider));
      }
    }
  }

  std::optional<core::Provider> parse_provider(const Item& item, const std::string& path) {
    if (!item.node.IsMap()) {
      error(item.pos, path, std::string{"must be a map with a `type`, got "} + kind_of(item.node));
      return std::nullopt;
    }
    // The type decides which keys are allowed, so read it first.
    std::optional<Entry> type_entry;
    for (auto it = item.node.begin(); it != item.node.end(); ++it) {
      if (it->first.IsScalar() && it->first.Scalar() == "type") {
        type_entry = Entry{"type", pos_of(it->first.Mark()), it->second};
        break;
      }
    }
    if (!type_entry) {
      error(item.pos, path, "missing required key 'type' (vonage, twilio or console)");
      return std::nullopt;
    }
    const auto type = provider_type(*type_entry, join(path, "type"));
    if (!type) {
      return std::nullopt;
    }
    core::Provider provider;
    provider.type = *type;
    const auto map = as_map(item.node, item.pos, path, provider_keys(*type),
                            std::string{"for a "} + core::to_string(*type) + " provider");
    if (!map) {
      return provider;
    }
    switch (*type) {
      case core::ProviderType::vonage:
        parse_vonage(*map, provider);
        break;
      case core::ProviderType::twilio:
        parse_twilio(*map, provider);
        break;
      case core::ProviderType::console:
        parse_console(*map, provider);
        break;
    }
    return provider;
  }

  void parse_from_and_base_url(const Map& map, core::Provider& provider,
                               const std::string& default_base_url) {
    require(map, "from");
    read(map, "from", &Loader::phone, provider.from);
    provider.base_url = default_base_url;
    read(map, "base_url", &Loader::url_without_query, provider.base_url);
  }

  std::optional<std::string> application_id(const Entry& entry, const std::string& path) {
    auto value = text(entry, path);
    if (value && !is_uuid(*value)) {
      error(entry.value_pos(), path,
            "must be the Vonage application's UUID (8-4-4-4-12 hex digits)");
      return std::nullopt;
    }
    return value;
  }

  std::optional<std::string> account_sid(const Entry& entry, const std::string& path) {
    auto value = text(entry, path);
    if (value && (value->size() != 34 || value->rfind("AC", 0) != 0 ||
                  !is_hex(std::string_view{*value}.substr(2)))) {
      error(entry.value_pos(), path,
            "must be AC followed by 32 hex digits (the Account SID from the Twilio console)");
      return std::nullopt;
    }
    return value;
  }

  void parse_vonage(const Map& map, core::Provider& provider) {
    require(map, "application_id");
    read(map, "application_id", &Loader::application_id, provider.application_id);
    const Secret key = required_secret(map, "private_key", true);
    if (key.value) {
      if (!looks_like_pem_private_key(*key.value)) {
        error(key.pos, join(map.path, map.get("private_key") ? "private_key" : "private_key_file"),
              "is not a PEM private key (expected -----BEGIN PRIVATE KEY-----)");
      } else {
        provider.private_key_pem = *key.value;
      }
    }
    store(required_secret(map, "api_key"), provider.api_key);
    store(required_secret(map, "api_secret"), provider.api_secret);
    store(secret(map, "signature_secret"), provider.signature_secret);
    parse_from_and_base_url(map, provider, "https://api.nexmo.com");
  }

  void parse_twilio(const Map& map, core::Provider& provider) {
    require(map, "account_sid");
    read(map, "account_sid", &Loader::account_sid, provider.account_sid);
    store(required_secret(map, "auth_token"), provider.auth_token);
    parse_from_and_base_url(map, provider, "https://api.twilio.com");
  }

  void parse_console(const Map& map, core::Provider& provider) {
    provider.answer = core::ConsoleAnswer::never;
    read(map, "answer", &Loader::console_answer, provider.answer);
  }

  // ---- alarm settings --------------------------------------------------------------------

  std::optional<std::pair<core::ThresholdOverrides, ThresholdMarks>> threshold_overrides(
      const Entry& entry, const std::string& path) {
    const std::vector<std::string_view> names(k_threshold_names.begin(), k_threshold_names.end());
    const auto map = as_map(entry.value, entry.value_pos(), path, names);
    if (!map) {
      return std::nullopt;
    }
    core::ThresholdOverrides overrides;
    ThresholdMarks marks;
    marks.node = map->pos;
    for (std::size_t i = 0; i < k_threshold_names.size(); ++i) {
      if (const Entry* e =
              read(*map, k_threshold_names[i], &Loader::glucose, threshold(overrides, i))) {
        marks.field[i] = e->value_pos();
        auto& value = threshold(overrides, i);
        const ThresholdBound& bound = k_threshold_bounds[i];
        if (value && (*value < bound.lo || *value > bound.hi)) {
          const bool low = *value < bound.lo;
          error(e->value_pos(), join(path, k_threshold_names[i]),
                std::string("must be ") + (low ? "at least " : "at most ") +
                    display(low ? bound.lo : bound.hi) + " (" +
                    (low ? bound.too_low : bound.too_high) + "), got " + display(*value, false));
          value.reset();
        }
      }
    }
    return std::make_pair(overrides, marks);
  }

  // A glucose difference in the config's units, as whole mg/dL.
  std::optional<int> hysteresis(const Entry& entry, const std::string& path) {
    const auto value = number(entry, path);
    if (!value) {
      return std::nullopt;
    }
    if (*value < 0) {
      error(entry.value_pos(), path, "must be 0 or more");
      return std::nullopt;
    }
    return core::to_mgdl(*value, m_units);
  }

  std::optional<Duration> predict_horizon(const Entry& entry, const std::string& path) {
    const auto value = duration(entry, path);
    if (value && (*value < k_min_predict_horizon || *value > k_max_predict_horizon)) {
      error(entry.value_pos(), path,
            "must be between 5m and 30m (AR2 forecasts six 5-minute steps), got " +
                core::format_duration(*value));
      return std::nullopt;
    }
    return value;
  }

  // Applies every settings key present in `map` over `settings`, recording where each came from.
  void parse_settings(const Map& map, core::AlarmSettings& settings, Origins& origins) {
    const std::string& level = map.path;
    if (const Entry* e = map.get("thresholds")) {
      if (const auto parsed = threshold_overrides(*e, join(level, "thresholds"))) {
        settings.thresholds = core::apply(settings.thresholds, parsed->first);
        origins.thresholds = parsed->second;
      } else {
        origins.thresholds = ThresholdMarks{e->value_pos(), {}};
      }
    }
    if (const Entry* e = read(map, "hysteresis", &Loader::hysteresis, settings.hysteresis)) {
      origins.hysteresis = e->value_pos();
    }
    if (const Entry* e = map.get("schedule")) {
      parse_schedule(*e, join(level, "schedule"), settings, origins);
    }
    if (const Entry* e = map.get("stale")) {
      const std::string path = join(level, "stale");
      if (const auto stale = as_map(e->value, e->value_pos(), path, {"warn", "urgent"})) {
        read(*stale, "warn", &Loader::stale_duration, settings.stale.warn);
        read(*stale, "urgent", &Loader::stale_duration, settings.stale.urgent);
        origins.stale = stale->pos;
      }
    }
    read(map, "unreachable", &Loader::unreachable_duration, settings.unreachable);
    if (const Entry* e = map.get("predict")) {
      const std::string path = join(level, "predict");
      if (const auto predict = as_map(e->value, e->value_pos(), path, {"enabled", "horizon"})) {
        read(*predict, "enabled", &Loader::boolean, settings.predict.enabled);
        read(*predict, "horizon", &Loader::predict_horizon, settings.predict.horizon);
      }
    }
    read(map, "ack", &Loader::ack_mode, settings.ack);
    if (const Entry* e = map.get("snooze")) {
      const std::string path = join(level, "snooze");
      if (e->value.IsMap()) {
        // SPEC §2: by kind; keys not given keep what is inherited.
        if (const auto snooze =
                as_map(e->value, e->value_pos(), path,
                       {"urgent_low", "urgent_low_soon", "low", "high", "urgent_high", "data"})) {
          read(*snooze, "urgent_low", &Loader::snooze_duration, settings.snooze.urgent_low);
          read(*snooze, "urgent_low_soon", &Loader::snooze_duration, settings.snooze.urgent_low_soon);
          read(*snooze, "low", &Loader::snooze_duration, settings.snooze.low);
          read(*snooze, "high", &Loader::snooze_duration, settings.snooze.high);
          read(*snooze, "urgent_high", &Loader::snooze_duration, settings.snooze.urgent_high);
          read(*snooze, "data", &Loader::snooze_duration, settings.snooze.data);
        }
      } else if (const auto all = snooze_duration(*e, path)) {
        settings.snooze = core::SnoozeSettings::all(*all);
      }
    }
    read(map, "min_call_gap", &Loader::call_gap, settings.min_call_gap);
    read(map, "max_calls_per_hour", &Loader::positive_int, settings.max_calls_per_hour);
    read(map, "max_sms_per_hour", &Loader::positive_int, settings.max_sms_per_hour);
    read(map, "notify_resolved", &Loader::boolean, settings.notify_resolved);
    if (const Entry* e = map.get("escalation")) {
      parse_escalation(*e, join(level, "escalation"), settings.escalation, origins);
    }
  }

  void parse_schedule(const Entry& entry, const std::string& path, core::AlarmSettings& settings,
                      Origins& origins) {
    const auto items = as_list(entry, path);
    if (!items) {
      return;
    }
    std::vector<core::ScheduleEntry> schedule;
    std::vector<ScheduleOrigin> schedule_origins;
    bool ok = true;
    for (std::size_t i = 0; i < items->size(); ++i) {
      const Item& item = (*items)[i];
      const std::string item_path = indexed(path, i);
      const auto map = as_map(item.node, item.pos, item_path, {"between", "thresholds"});
      if (!map) {
        ok = false;
        continue;
      }
      require(*map, "between");
      require(*map, "thresholds");
      core::ScheduleEntry scheduled;
      ScheduleOrigin origin{item_path, map->pos, {}};
      bool entry_ok = map->get("between") != nullptr && map->get("thresholds") != nullptr;
      if (const Entry* e = map->get("between")) {
        entry_ok = parse_between(*e, join(item_path, "between"), scheduled) && entry_ok;
      }
      if (const Entry* e = map->get("thresholds")) {
        if (const auto parsed = threshold_overrides(*e, join(item_path, "thresholds"))) {
          scheduled.thresholds = parsed->first;
          origin.marks = parsed->second;
          if (e->value.IsMap() && e->value.size() == 0) {
            error(e->value_pos(), join(item_path, "thresholds"),
                  "sets no threshold (give urgent_low, low, high or urgent_high)");
            entry_ok = false;
          }
        } else {
          entry_ok = false;
        }
      }
      if (!entry_ok) {
        ok = false;
        continue;
      }
      schedule.push_back(scheduled);
      schedule_origins.push_back(std::move(origin));
    }
    if (ok) {
      settings.schedule = std::move(schedule);
      origins.schedule = std::move(schedule_origins);
      origins.schedule_here = true;
      origins.schedule_owner = origins.level;
    } else {
      // Do not check threshold order against a half-read schedule.
      settings.schedule.clear();
      origins.schedule.clear();
      origins.schedule_here = false;
    }
  }

  bool parse_between(const Entry& entry, const std::string& path, core::ScheduleEntry& out) {
    const auto value = text(entry, path);
    if (!value) {
      return false;
    }
    const auto dash = value->find('-');
    std::optional<int> start;
    std::optional<int> end;
    if (dash != std::string::npos) {
      start = parse_hhmm(trim(std::string_view{*value}.substr(0, dash)));
      end = parse_hhmm(trim(std::string_view{*value}.substr(dash + 1)));
    }
    if (!start || !end) {
      error(entry.value_pos(), path,
            "must be \"HH:MM-HH:MM\" in 24-hour local time (e.g. \"22:00-07:00\"), got " +
                in_quotes(*value));
      return false;
    }
    if (*start == *end) {
      error(entry.value_pos(), path,
            "start and end are the same (" + hhmm(*start) +
                "); for all day, set the thresholds themselves");
      return false;
    }
    out.start_minute = *start;
    out.end_minute = *end;
    return true;
  }

  void parse_escalation(const Entry& entry, const std::string& path, core::Escalation& escalation,
                        Origins& origins) {
    const auto map = as_map(entry.value, entry.value_pos(), path, {"urgent", "warning", "repeat"});
    if (!map) {
      return;
    }
    if (const Entry* e = map->get("urgent")) {
      std::vector<TargetOrigin> targets;
      if (auto chain = parse_chain(*e, join(path, "urgent"), true, targets)) {
        escalation.urgent = std::move(*chain);
        origins.urgent_targets = std::move(targets);
      }
    }
    if (const Entry* e = map->get("warning")) {
      std::vector<TargetOrigin> targets;
      if (auto chain = parse_chain(*e, join(path, "warning"), false, targets)) {
        escalation.warning = std::move(*chain);
        origins.warning_targets = std::move(targets);
      }
    }
    read(*map, "repeat", &Loader::repeat_duration, escalation.repeat);
  }

  std::optional<std::vector<core::EscalationStep>> parse_chain(const Entry& entry,
                                                               const std::string& path, bool urgent,
                                                               std::vector<TargetOrigin>& targets) {
    const auto items = as_list(entry, path);
    if (!items) {
      return std::nullopt;
    }
    if (items->empty()) {
      error(entry.value_pos(), path, "needs at least one step (e.g. {after: 0s, call: [patient]})");
      return std::nullopt;
    }
    std::vector<core::EscalationStep> steps;
    bool ok = true;
    std::optional<Duration> previous;
    for (std::size_t i = 0; i < items->size(); ++i) {
      const Item& item = (*items)[i];
      const std::string step_path = indexed(path, i);
      const auto map = as_map(item.node, item.pos, step_path, {"after", "call", "sms"});
      if (!map) {
        ok = false;
        continue;
      }
      core::EscalationStep step;
      require(*map, "after");
      if (const Entry* e = read(*map, "after", &Loader::step_after, step.after)) {
        const std::string after = core::format_duration(step.after);
        if (i == 0 && urgent && step.after != Duration{0}) {
          error(e->value_pos(), join(step_path, "after"),
                "the first urgent step must be after: 0s (an urgent alarm acts at once), got " +
                    after);
          ok = false;
        }
        if (previous && step.after < *previous) {
          error(e->value_pos(), join(step_path, "after"),
                "must not be earlier than the step before (" + core::format_duration(*previous) +
                    "), got " + after);
          ok = false;
        }
        previous = step.after;
      } else {
        ok = false;
      }
      for (const char* channel : {"call", "sms"}) {
        if (const Entry* e = map->get(channel)) {
          auto& list = std::string_view{channel} == "call" ? step.call : step.sms;
          ok = parse_targets(*e, join(step_path, channel), list, targets) && ok;
        }
      }
      if (step.call.empty() && step.sms.empty()) {
        const bool listed = map->get("call") != nullptr || map->get("sms") != nullptr;
        error(map->pos, step_path,
              listed ? "does nothing: its call and sms lists are empty"
                     : "does nothing: give call and/or sms targets");
        ok = false;
      }
      steps.push_back(std::move(step));
    }
    if (!ok) {
      return std::nullopt;
    }
    return steps;
  }

  // Appends the targets of one `call` or `sms` entry to `list`, and where each was to `targets`.
  // Returns false when any target was invalid (already reported).
  bool parse_targets(const Entry& entry, const std::string& path, std::vector<std::string>& list,
                     std::vector<TargetOrigin>& targets) {
    if (entry.value.IsScalar()) {
      // `call: patient` is read as a one-element list.
      const auto value = nonempty_text(entry, path);
      if (!value) {
        return false;
      }
      list.push_back(std::string{trim(*value)});
      targets.push_back(TargetOrigin{list.back(), path, entry.value_pos()});
      return true;
    }
    const auto items = as_list(entry, path);
    if (!items) {
      return false;
    }
    bool ok = true;
    for (std::size_t i = 0; i < items->size(); ++i) {
      const Item& target = (*items)[i];
      const std::string target_path = indexed(path, i);
      const auto value = text_of(target.node, target.pos, target_path);
      if (!value || trim(*value).empty()) {
        if (value) {
          error(target.pos, target_path, "must not be empty");
        }
        ok = false;
        continue;
      }
      list.push_back(std::string{trim(*value)});
      targets.push_back(TargetOrigin{list.back(), target_path, target.pos});
    }
    return ok;
  }

  // ---- cross-field checks ----------------------------------------------------------------

  // The suffix naming the patient when a check of inherited settings fails for one patient.
  std::string for_whom(const Origins& origins, const std::string& owner) const {
    if (owner == origins.level || origins.who.empty()) {
      return "";
    }
    return " for " + origins.level + " (" + origins.who + ")";
  }

  // Checks threshold order (urgent_low < low < high < urgent_high), hysteresis and stale at one
  // level. `base`: check the level's own thresholds; `hysteresis`: check hysteresis against
  // them; `schedule`: check every combination of schedule entries in force during the day.
  void check_settings(const core::AlarmSettings& s, const Origins& o, bool base, bool hysteresis,
                      bool schedule) {
    if (o.stale && s.stale.warn >= s.stale.urgent) {
      error(*o.stale, join(o.level, "stale"),
            "warn (" + core::format_duration(s.stale.warn) + ") must be shorter than urgent (" +
                core::format_duration(s.stale.urgent) + ")");
    }
    if (!m_units_ok) {
      return;
    }
    const core::Thresholds& t = s.thresholds;
    bool base_ok = true;
    for (std::size_t i = 0; i + 1 < k_threshold_names.size(); ++i) {
      const int lo = threshold(t, i);
      const int hi = threshold(t, i + 1);
      if (lo < hi) {
        continue;
      }
      base_ok = false;
      if (!base || !o.thresholds) {
        continue;
      }
      report_order(*o.thresholds, join(o.level, "thresholds"), i, lo, hi, "");
    }
    if (!base_ok) {
      return;
    }
    if (hysteresis && s.hysteresis >= t.high - t.low) {
      if (o.hysteresis) {
        error(*o.hysteresis, join(o.level, "hysteresis"),
              "must be smaller than the gap between low (" + display(t.low) + ") and high (" +
                  display(t.high) + "), got " + display(s.hysteresis));
      } else if (o.thresholds) {
        error(o.thresholds->node, join(o.level, "thresholds"), gap_too_small(s, t));
      }
    }
    if (schedule) {
      check_schedule(s, o, hysteresis);
    }
  }

  // Reports that threshold `i` (`lo`) is not below threshold `i + 1` (`hi`), at the first of the
  // two that `marks` says was set; `context` follows the bound in the message. Returns false
  // (reporting nothing) when neither was set.
  bool report_order(const ThresholdMarks& marks, const std::string& path, std::size_t i, int lo,
                    int hi, const std::string& context) {
    if (marks.field[i]) {
      error(*marks.field[i], join(path, k_threshold_names[i]),
            "must be below " + std::string{k_threshold_names[i + 1]} + " (" + display(hi) + ")" +
                context + ", got " + display(lo, false));
      return true;
    }
    if (marks.field[i + 1]) {
      error(*marks.field[i + 1], join(path, k_threshold_names[i + 1]),
            "must be above " + std::string{k_threshold_names[i]} + " (" + display(lo) + ")" +
                context + ", got " + display(hi, false));
      return true;
    }
    return false;
  }

  std::string gap_too_small(const core::AlarmSettings& s, const core::Thresholds& t) const {
    return "the gap between low (" + display(t.low) + ") and high (" + display(t.high) +
           ") must be larger than hysteresis (" + display(s.hysteresis) + ")";
  }

  void check_schedule(const core::AlarmSettings& s, const Origins& o, bool hysteresis) {
    if (s.schedule.size() != o.schedule.size()) {
      return;
    }
    // The entries in force change only where a window starts or ends, so checking those minutes
    // checks every combination that ever applies.
    std::set<int> boundaries;
    for (const auto& entry : s.schedule) {
      boundaries.insert(entry.start_minute);
      boundaries.insert(entry.end_minute);
    }
    const std::string suffix = for_whom(o, o.schedule_owner);
    for (const int minute : boundaries) {
      std::vector<std::size_t> active;
      for (std::size_t j = 0; j < s.schedule.size(); ++j) {
        if (core::in_window(s.schedule[j], minute)) {
          active.push_back(j);
        }
      }
      if (active.empty()) {
        continue;
      }
      const core::Thresholds t = core::thresholds_at(s, minute);
      std::string overlap;
      if (active.size() > 1) {
        overlap = " (at " + hhmm(minute) + ", where schedule entries";
        for (const auto j : active) {
          overlap += " " + std::to_string(j);
        }
        overlap += " overlap)";
      }
      bool ok = true;
      for (std::size_t i = 0; i + 1 < k_threshold_names.size(); ++i) {
        const int lo = threshold(t, i);
        const int hi = threshold(t, i + 1);
        if (lo < hi) {
          continue;
        }
        ok = false;
        // Blame the last entry in force that sets either value.
        for (auto it = active.rbegin(); it != active.rend(); ++it) {
          const ScheduleOrigin& origin = o.schedule[*it];
          if (report_order(origin.marks, join(origin.path, "thresholds"), i, lo, hi,
                           suffix + overlap)) {
            break;
          }
        }
      }
      if (ok && hysteresis && s.hysteresis >= t.high - t.low) {
        for (auto it = active.rbegin(); it != active.rend(); ++it) {
          const ScheduleOrigin& origin = o.schedule[*it];
          if (origin.marks.field[1] || origin.marks.field[2]) {
            error(origin.pos, origin.path, gap_too_small(s, t) + suffix + overlap);
            break;
          }
        }
      }
    }
  }

  // ---- patients --------------------------------------------------------------------------

  void parse_patients(const Entry& entry, const core::AlarmSettings& defaults,
                      const Origins& default_origins, std::vector<core::Patient>& patients) {
    const auto items = as_list(entry, "patients");
    if (!items) {
      return;
    }
    if (items->empty()) {
      error(entry.value_pos(), "patients", "needs at least one patient");
      return;
    }
    std::vector<std::string_view> keys = k_patient_only_keys;
    keys.insert(keys.end(), k_settings_keys.begin(), k_settings_keys.end());
    std::map<std::string, std::string> names;  // name -> path of the first patient with it
    for (std::size_t i = 0; i < items->size(); ++i) {
      const Item& item = (*items)[i];
      if (const auto map = as_map(item.node, item.pos, indexed("patients", i), keys)) {
        patients.push_back(parse_patient(*map, defaults, default_origins, names));
      }
    }
  }

  // One patient: their own keys, then the settings they override over `defaults`.
  core::Patient parse_patient(const Map& map, const core::AlarmSettings& defaults,
                              const Origins& default_origins,
                              std::map<std::string, std::string>& names) {
    const std::string& path = map.path;
    core::Patient patient;
    require(map, "name");
    require(map, "phone");
    require(map, "nightscout");
    if (const Entry* e = map.get("name")) {
      if (auto value = nonempty_text(*e, join(path, "name"))) {
        patient.name = std::string{trim(*value)};
        if (const auto [it, inserted] = names.emplace(patient.name, path); !inserted) {
          error(e->value_pos(), join(path, "name"),
                "duplicate patient name " + in_quotes(patient.name) + " (also " + it->second + ")");
        }
      }
    }
    read(map, "timezone", &Loader::timezone, patient.timezone);
    read(map, "phone", &Loader::phone, patient.phone);
    if (const Entry* e = map.get("nightscout")) {
      parse_nightscout(*e, join(path, "nightscout"), patient.nightscout);
    }
    bool contacts_ok = true;
    if (const Entry* e = map.get("contacts")) {
      const std::size_t before = m_problems.size();
      parse_contacts(*e, join(path, "contacts"), patient.contacts);
      contacts_ok = m_problems.size() == before;
    }

    patient.settings = defaults;
    Origins origins = default_origins;
    origins.level = path;
    origins.who = patient.name;
    origins.pos = map.pos;
    origins.thresholds.reset();
    origins.hysteresis.reset();
    origins.stale.reset();
    origins.schedule_here = false;
    parse_settings(map, patient.settings, origins);
    const bool own_thresholds = origins.thresholds.has_value();
    const bool own_hysteresis = origins.hysteresis.has_value();
    check_settings(patient.settings, origins, own_thresholds, own_thresholds || own_hysteresis,
                   own_thresholds || own_hysteresis || origins.schedule_here);
    if (contacts_ok) {
      // With broken contacts, every named target would be reported again as unknown.
      check_targets(patient, origins);
    }
    return patient;
  }

  // An IANA timezone name known to the environment; empty means the host's zone.
  std::optional<std::string> timezone(const Entry& entry, const std::string& path) {
    const auto value = text(entry, path);
    if (!value) {
      return std::nullopt;
    }
    std::string zone{trim(*value)};
    if (!zone.empty() && !(m_env.is_timezone && m_env.is_timezone(zone))) {
      error(entry.value_pos(), path,
            "unknown timezone " + in_quotes(zone) +
                " (an IANA name such as Europe/Paris or America/New_York)");
      return std::nullopt;
    }
    return zone;
  }

  void parse_nightscout(const Entry& entry, const std::string& path, core::NightscoutSite& site) {
    const auto map = as_map(entry.value, entry.value_pos(), path,
                            {"url", "token", "token_file", "api_secret", "api_secret_file"});
    if (!map) {
      return;
    }
    require(*map, "url");
    if (const Entry* e = map->get("url")) {
      if (const auto value = text(*e, join(path, "url"))) {
        if (const auto why = url_problem(*value, false)) {
          std::string message = *why;
          if (value->find('?') != std::string::npos) {
            message += " (give the token as nightscout.token)";
          }
          error(e->value_pos(), join(path, "url"), message);
        } else {
          site.url = strip_trailing_slashes(*value);
          // scout appends /api/v1/entries/sgv.json itself: a URL that already ends in the API
          // path would ask for .../api/v1/api/v1/... and get 404 (SPEC §3).
          for (const std::string_view suffix : {"/api/v1", "/api/v2", "/api/v3", "/api"}) {
            if (site.url.size() >= suffix.size() &&
                site.url.compare(site.url.size() - suffix.size(), suffix.size(), suffix) == 0) {
              error(e->value_pos(), join(path, "url"),
                    "must be the site's base URL, without " + std::string(suffix) +
                        " (scout adds /api/v1/...): use " +
                        in_quotes(site.url.substr(0, site.url.size() - suffix.size())));
              break;
            }
          }
        }
      }
    }
    const Secret token = secret(*map, "token");
    const Secret api_secret = secret(*map, "api_secret");
    if (token.given && api_secret.given) {
      error(is_after(token.pos, api_secret.pos) ? token.pos : api_secret.pos, path,
            "give either a token or an api_secret, not both");
      return;
    }
    store(token, site.token);
    if (api_secret.value) {
      if (api_secret.value->size() < k_min_api_secret_length) {
        error(api_secret.pos, join(path, map->get("api_secret") ? "api_secret" : "api_secret_file"),
              "must be at least 12 characters (Nightscout ignores a shorter API_SECRET)");
      } else {
        site.api_secret = *api_secret.value;
      }
    }
  }

  void parse_contacts(const Entry& entry, const std::string& path,
                      std::vector<core::Contact>& contacts) {
    const auto items = as_list(entry, path);
    if (!items) {
      return;
    }
    std::map<std::string, std::string> names;
    for (std::size_t i = 0; i < items->size(); ++i) {
      const Item& item = (*items)[i];
      const std::string contact_path = indexed(path, i);
      const auto map = as_map(item.node, item.pos, contact_path, {"name", "phone"});
      if (!map) {
        continue;
      }
      require(*map, "name");
      require(*map, "phone");
      core::Contact contact;
      if (const Entry* e = map->get("name")) {
        if (auto value = nonempty_text(*e, join(contact_path, "name"))) {
          contact.name = std::string{trim(*value)};
          if (contact.name == "patient" || contact.name == "contacts") {
            error(
                e->value_pos(), join(contact_path, "name"),
                in_quotes(contact.name) + " is reserved for escalation targets; pick another name");
          } else if (const auto [it, inserted] = names.emplace(contact.name, contact_path);
                     !inserted) {
            error(
                e->value_pos(), join(contact_path, "name"),
                "duplicate contact name " + in_quotes(contact.name) + " (also " + it->second + ")");
          }
        }
      }
      read(*map, "phone", &Loader::phone, contact.phone);
      contacts.push_back(std::move(contact));
    }
  }

  // Every escalation target must be `patient`, `contacts` or one of this patient's contacts.
  void check_targets(const core::Patient& patient, const Origins& o) {
    std::vector<std::string_view> contact_names;
    for (const auto& c : patient.contacts) {
      contact_names.push_back(c.name);
    }
    bool uses_contacts = false;
    for (const auto* targets : {&o.urgent_targets, &o.warning_targets}) {
      for (const TargetOrigin& target : *targets) {
        if (target.name == "patient") {
          continue;
        }
        if (target.name == "contacts") {
          uses_contacts = true;
          continue;
        }
        if (std::find(contact_names.begin(), contact_names.end(), target.name) !=
            contact_names.end()) {
          continue;
        }
        std::string message = in_quotes(target.name) + " is not a contact of " + o.level + " (" +
                              patient.name + "); use patient, contacts";
        if (!contact_names.empty()) {
          message += " or one of: " + list_names(contact_names);
        }
        error(target.pos, target.path, message);
      }
    }
    // A chain that reaches nobody at all would leave this patient's alarms unheard: an error.
    // (A single step that reaches nobody, in a chain that reaches someone, is the warning below.)
    const auto reaches = [&](const TargetOrigin& target) {
      if (target.name == "patient") return true;  // `phone` is required (checked on its own)
      if (target.name == "contacts") return !patient.contacts.empty();
      return std::find(contact_names.begin(), contact_names.end(), target.name) !=
             contact_names.end();
    };
    for (const auto& [targets, chain] :
         {std::pair{&o.urgent_targets, "urgent"}, std::pair{&o.warning_targets, "warning"}}) {
      if (targets->empty()) continue;
      if (std::none_of(targets->begin(), targets->end(), reaches)) {
        const TargetOrigin& first = targets->front();
        error(first.pos, first.path,
              std::string("the ") + chain + " escalation chain reaches nobody for " +
                  patient.name + (patient.contacts.empty() ? " (who has no contacts)" : "") +
                  ": add a step that calls or texts `patient`, or give " + patient.name +
                  " contacts");
      }
    }
    // The built-in escalation has no origins; it escalates to `contacts`.
    const bool builtin_contacts = o.urgent_targets.empty() || o.warning_targets.empty();
    if ((uses_contacts || builtin_contacts) && patient.contacts.empty()) {
      warning(o.pos, o.level,
              "escalation reaches `contacts` but " + patient.name +
                  " has none: those steps notify nobody");
    }
  }

  std::string m_file;
  const ConfigEnvironment& m_env;
  core::GlucoseUnit m_units = core::GlucoseUnit::mg_dl;
  bool m_units_ok = true;
  std::vector<ConfigProblem> m_problems;
  std::vector<ConfigProblem> m_warnings;
};

}  // namespace

std::map<std::string, std::string> parse_environment_file(const std::string& text) {
  std::map<std::string, std::string> vars;
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string_view line = trim(std::string_view(text).substr(start, end - start));
    start = end + 1;
    if (line.empty() || line.front() == '#' || line.front() == ';') continue;
    if (line.substr(0, 7) == "export ") line = trim(line.substr(7));
    const auto eq = line.find('=');
    if (eq == std::string_view::npos || eq == 0) continue;
    const std::string name{trim(line.substr(0, eq))};
    std::string_view value = trim(line.substr(eq + 1));
    if (value.size() >= 2 && (value.front() == '"' || value.front() == '\'') &&
        value.back() == value.front()) {
      value = value.substr(1, value.size() - 2);
    }
    vars[name] = std::string{value};
  }
  return vars;
}

ConfigEnvironment system_config_environment() {
  ConfigEnvironment env;
  // Variables the process does not have come from the unit's EnvironmentFile (SPEC §7), so a
  // command run from a shell sees what the service sees. Read once, at most 1 MiB.
  const char* override_path = std::getenv("SCOUT_ENVIRONMENT_FILE");
  const std::string file = override_path != nullptr ? override_path : k_environment_file;
  auto from_file = std::make_shared<std::optional<std::map<std::string, std::string>>>();
  env.getenv = [file, from_file](const std::string& name) -> std::optional<std::string> {
    const char* value = std::getenv(name.c_str());
    if (value != nullptr) {
      return std::string{value};
    }
    if (!*from_file) {
      std::ifstream in(file, std::ios::binary);
      std::string text(std::size_t{1} << 20, '\0');
      in.read(text.data(), static_cast<std::streamsize>(text.size()));
      text.resize(in ? text.size() : static_cast<std::size_t>(std::max<std::streamsize>(in.gcount(), 0)));
      *from_file = parse_environment_file(text);
    }
    const auto it = (*from_file)->find(name);
    if (it == (*from_file)->end()) {
      return std::nullopt;
    }
    return it->second;
  };
  env.read_file = [](const std::string& path) -> std::optional<std::string> {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
      return std::nullopt;
    }
    std::string contents{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    if (in.bad()) {
      return std::nullopt;
    }
    return contents;
  };
  env.is_timezone = [](const std::string& name) { return is_known_timezone(name); };
  return env;
}

ConfigLoad parse_config(const std::string& text, const std::string& file_name,
                        const ConfigEnvironment& env) {
  try {
    return Loader(file_name, env).load(text);
  } catch (const std::exception& e) {
    ConfigLoad result;
    result.problems.push_back(
        ConfigProblem{file_name, 0, 0, std::string{"cannot read the config: "} + e.what()});
    return result;
  }
}

ConfigLoad load_config(const std::string& path, const ConfigEnvironment& env) {
  std::string text;
  std::FILE* file = std::fopen(path.c_str(), "rb");
  std::error_code failure;
  if (file == nullptr) {
    failure = std::error_code(errno, std::generic_category());
  } else {
    char buffer[65536];
    std::size_t n = 0;
    while ((n = std::fread(buffer, 1, sizeof buffer, file)) > 0) {
      text.append(buffer, n);
    }
    if (std::ferror(file) != 0) {
      failure = std::error_code(errno, std::generic_category());
    }
    std::fclose(file);
  }
  if (failure) {
    ConfigLoad result;
    result.problems.push_back(ConfigProblem{path, 0, 0, "cannot read: " + failure.message()});
    return result;
  }
  return parse_config(text, path, env);
}

std::string default_config_path(const ConfigEnvironment& env) {
  if (env.getenv) {
    if (const auto from_env = env.getenv("SCOUT_CONFIG"); from_env && !from_env->empty()) {
      return *from_env;
    }
  }
  std::error_code ec;
  if (std::filesystem::exists("scout.yaml", ec)) {
    return "scout.yaml";
  }
  return "/etc/scout/scout.yaml";
}

}  // namespace scout::adapters
