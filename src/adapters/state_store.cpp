#include "scout/adapters/state_store.hpp"
#include "scout/adapters/wall_clock.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <limits>
#include <string_view>
#include <utility>
#include <vector>

namespace scout::adapters {
namespace {

using core::ActiveAlarm;
using core::Alarm;
using core::AlarmKind;
using core::CallProgress;
using core::CallRecord;
using core::ErrorKind;
using core::NumberUsage;
using core::PatientState;
using core::Result;
using core::Severity;
using core::State;
using core::TimePoint;
using nlohmann::json;

constexpr int k_state_version = 1;
// Owner read-write, group read: the group scout (admins added to it) can run `scout status` and
// `scout log`; nobody else reads phone numbers or the webhook token.
constexpr mode_t k_file_mode = 0640;

constexpr std::array k_alarm_kinds{
    AlarmKind::urgent_low,  AlarmKind::urgent_low_soon,
    AlarmKind::low,         AlarmKind::urgent_high,
    AlarmKind::high,        AlarmKind::stale,
    AlarmKind::unreachable, AlarmKind::sensor_error,
};
constexpr std::array k_severities{Severity::warning, Severity::urgent};

std::string errno_text(int err) { return std::strerror(err); }

// "<what> <path>: <strerror>" as an io error.
tl::unexpected<core::Error> io_error(std::string_view what, const std::string& path, int err) {
  std::string message(what);
  message += ' ';
  message += path;
  message += ": ";
  message += errno_text(err);
  return core::fail(ErrorKind::io, std::move(message));
}

// ---------------------------------------------------------------------------------------------
// State -> JSON

std::int64_t to_ms(TimePoint t) { return t.time_since_epoch().count(); }

json optional_time(const std::optional<TimePoint>& t) {
  return t ? json(to_ms(*t)) : json(nullptr);
}

json times_json(const std::vector<TimePoint>& times) {
  json out = json::array();
  for (const TimePoint t : times) {
    out.push_back(to_ms(t));
  }
  return out;
}

json alarm_json(const Alarm& alarm) {
  return json{{"kind", core::to_string(alarm.kind)}, {"severity", core::to_string(alarm.severity)}};
}

json call_json(const CallRecord& call) {
  json out = json::object();
  out["key"] = call.key;
  out["call_id"] = call.call_id;
  out["provider"] = call.provider;
  out["to"] = call.to;
  out["to_label"] = call.to_label;
  out["run"] = call.run;
  out["step"] = call.step;
  out["placed_at"] = to_ms(call.placed_at);
  out["progress"] = core::to_string(call.progress);
  out["answered"] = call.answered;
  out["acknowledged"] = call.acknowledged;
  out["escalated"] = call.escalated;
  out["ended_at"] = optional_time(call.ended_at);
  return out;
}

const char* purpose_name(core::MessagePurpose purpose) {
  switch (purpose) {
    case core::MessagePurpose::alarm:
      return "alarm";
    case core::MessagePurpose::reminder:
      return "reminder";
    case core::MessagePurpose::held_back:
      return "held_back";
    case core::MessagePurpose::resolved:
      return "resolved";
  }
  return "alarm";
}

std::optional<core::MessagePurpose> purpose_from_name(const std::string& name) {
  for (const auto purpose : {core::MessagePurpose::alarm, core::MessagePurpose::reminder,
                             core::MessagePurpose::held_back, core::MessagePurpose::resolved}) {
    if (name == purpose_name(purpose)) return purpose;
  }
  return std::nullopt;
}

json active_alarm_json(const ActiveAlarm& active) {
  json out = json::object();
  out["id"] = active.id;
  out["alarm"] = alarm_json(active.alarm);
  out["peak"] = alarm_json(active.peak);
  out["raised_at"] = to_ms(active.raised_at);
  out["run"] = active.run;
  out["chain_start"] = to_ms(active.chain_start);
  out["next_step"] = active.next_step;
  out["last_step_at"] = optional_time(active.last_step_at);
  out["snoozed_until"] = optional_time(active.snoozed_until);
  out["acknowledged_at"] = optional_time(active.acknowledged_at);
  out["in_band"] = active.in_band;
  out["acknowledged_by"] = active.acknowledged_by;
  out["notified"] = active.notified;
  json calls = json::array();
  for (const CallRecord& call : active.calls) {
    calls.push_back(call_json(call));
  }
  out["calls"] = std::move(calls);
  return out;
}

json facts_json(const core::ReadingFacts& facts) {
  json out = json::object();
  if (facts.latest) {
    out["latest"] = {{"date", to_ms(facts.latest->date)},
                     {"sgv", facts.latest->sgv},
                     {"direction", facts.latest->direction}};
  } else {
    out["latest"] = nullptr;
  }
  out["forecast_low"] = facts.forecast_low ? json(*facts.forecast_low) : json(nullptr);
  out["status_code"] = facts.status_code ? json(*facts.status_code) : json(nullptr);
  out["status_code_since"] = optional_time(facts.status_code_since);
  out["cadence_ms"] = facts.cadence ? json(facts.cadence->count()) : json(nullptr);
  return out;
}

json optional_alarm(const std::optional<ActiveAlarm>& active) {
  return active ? active_alarm_json(*active) : json(nullptr);
}

// ---------------------------------------------------------------------------------------------
// JSON -> State
//
// A Reader walks the document; the first field that is missing or of the wrong type is kept as
// the error (with its path) and every later read returns a default, so the parsing code reads
// straight through and the caller checks `failed()` once at the end.

class Reader {
 public:
  bool failed() const { return m_error.has_value(); }
  std::string error() const { return m_error.value_or(""); }

  void fail(const std::string& path, std::string_view problem) {
    if (m_error) {
      return;
    }
    std::string message = "state field ";
    message += path;
    message += ": ";
    message += problem;
    m_error = std::move(message);
  }

  // The member `key` of `object`, or nullptr (and an error) when absent.
  const json* member(const json& object, const std::string& path, const char* key) {
    const auto it = object.find(key);
    if (it == object.end()) {
      fail(join(path, key), "missing");
      return nullptr;
    }
    return &*it;
  }

  const json* object(const json& parent, const std::string& path, const char* key) {
    const json* value = member(parent, path, key);
    if (value != nullptr && !value->is_object()) {
      fail(join(path, key), "expected an object");
      return nullptr;
    }
    return value;
  }

  const json* array(const json& parent, const std::string& path, const char* key) {
    const json* value = member(parent, path, key);
    if (value != nullptr && !value->is_array()) {
      fail(join(path, key), "expected an array");
      return nullptr;
    }
    return value;
  }

  std::string string(const json& parent, const std::string& path, const char* key) {
    const json* value = member(parent, path, key);
    if (value == nullptr) {
      return {};
    }
    if (!value->is_string()) {
      fail(join(path, key), "expected a string");
      return {};
    }
    return value->get<std::string>();
  }

  bool boolean(const json& parent, const std::string& path, const char* key) {
    const json* value = member(parent, path, key);
    if (value == nullptr) {
      return false;
    }
    if (!value->is_boolean()) {
      fail(join(path, key), "expected true or false");
      return false;
    }
    return value->get<bool>();
  }

  // An integer in [lo, hi] at `value` (named `path`).
  std::int64_t integer_at(const json& value, const std::string& path, std::int64_t lo,
                          std::int64_t hi) {
    if (value.is_number_unsigned()) {
      const auto v = value.get<std::uint64_t>();
      if (v <= static_cast<std::uint64_t>(hi)) {
        return static_cast<std::int64_t>(v);
      }
    } else if (value.is_number_integer()) {
      const auto v = value.get<std::int64_t>();
      if (v >= lo && v <= hi) {
        return v;
      }
    } else {
      fail(path, "expected an integer");
      return 0;
    }
    fail(path, "integer out of range");
    return 0;
  }

  int small_int(const json& parent, const std::string& path, const char* key) {
    const json* value = member(parent, path, key);
    if (value == nullptr) {
      return 0;
    }
    return static_cast<int>(
        integer_at(*value, join(path, key), 0, std::numeric_limits<int>::max()));
  }

  std::uint64_t counter(const json& parent, const std::string& path, const char* key) {
    const json* value = member(parent, path, key);
    if (value == nullptr) {
      return 0;
    }
    const std::string where = join(path, key);
    if (value->is_number_unsigned()) {
      return value->get<std::uint64_t>();
    }
    if (value->is_number_integer() && value->get<std::int64_t>() >= 0) {
      return static_cast<std::uint64_t>(value->get<std::int64_t>());
    }
    fail(where, value->is_number_integer() ? "integer out of range" : "expected an integer");
    return 0;
  }

  // Times are ms since the epoch between 2000 and 2200 (0 stands for unset in older files):
  // outside that a file is not scout's, and adding a config duration to any time it holds
  // cannot overflow.
  TimePoint time_at(const json& value, const std::string& path) {
    constexpr std::int64_t k_earliest = 946'684'800'000;   // 2000-01-01T00:00:00Z
    constexpr std::int64_t k_latest = 7'258'118'400'000;   // 2200-01-01T00:00:00Z
    const std::int64_t ms = integer_at(value, path, std::numeric_limits<std::int64_t>::min(),
                                       std::numeric_limits<std::int64_t>::max());
    if (ms != 0 && (ms < k_earliest || ms > k_latest)) {
      fail(path, "time out of range (ms since the epoch between 2000 and 2200)");
      return TimePoint{};
    }
    return TimePoint{core::Duration{ms}};
  }

  TimePoint time(const json& parent, const std::string& path, const char* key) {
    const json* value = member(parent, path, key);
    if (value == nullptr) {
      return {};
    }
    return time_at(*value, join(path, key));
  }

  // An optional time: null (or absent, as older files may omit it) means unset.
  std::optional<TimePoint> optional_time(const json& parent, const std::string& path,
                                         const char* key) {
    const auto it = parent.find(key);
    if (it == parent.end() || it->is_null()) {
      return std::nullopt;
    }
    return time_at(*it, join(path, key));
  }

  std::vector<TimePoint> times(const json& parent, const std::string& path, const char* key) {
    std::vector<TimePoint> out;
    const json* list = array(parent, path, key);
    if (list == nullptr) {
      return out;
    }
    const std::string where = join(path, key);
    for (std::size_t i = 0; i < list->size(); ++i) {
      out.push_back(time_at((*list)[i], index(where, i)));
    }
    return out;
  }

  std::vector<std::string> strings(const json& parent, const std::string& path, const char* key) {
    std::vector<std::string> out;
    const json* list = array(parent, path, key);
    if (list == nullptr) {
      return out;
    }
    const std::string where = join(path, key);
    for (std::size_t i = 0; i < list->size(); ++i) {
      const json& item = (*list)[i];
      if (!item.is_string()) {
        fail(index(where, i), "expected a string");
        return out;
      }
      out.push_back(item.get<std::string>());
    }
    return out;
  }

  static std::string join(const std::string& path, std::string_view key) {
    if (path.empty()) {
      return std::string(key);
    }
    std::string out = path;
    out += '.';
    out += key;
    return out;
  }

  static std::string index(const std::string& path, std::size_t i) {
    std::string out = path;
    out += '[';
    out += std::to_string(i);
    out += ']';
    return out;
  }

 private:
  std::optional<std::string> m_error;
};

std::string quoted(const std::string& text) {
  std::string out = "\"";
  out += text;
  out += '"';
  return out;
}

// Reads the string at `key` and maps it back through core::to_string over `values`; an unknown
// name fails the read ("unknown <what> \"name\"") and gives `fallback`.
template <typename Enum, std::size_t N>
Enum read_enum(Reader& r, const json& parent, const std::string& path, const char* key,
               const std::array<Enum, N>& values, Enum fallback, const char* what) {
  const std::string name = r.string(parent, path, key);
  if (r.failed()) {
    return fallback;
  }
  for (const Enum value : values) {
    if (name == core::to_string(value)) {
      return value;
    }
  }
  std::string problem = "unknown ";
  problem += what;
  problem += ' ';
  problem += quoted(name);
  r.fail(Reader::join(path, key), problem);
  return fallback;
}

Alarm read_alarm(Reader& r, const json& parent, const std::string& path, const char* key) {
  Alarm alarm;
  const json* object = r.object(parent, path, key);
  if (object == nullptr) {
    return alarm;
  }
  const std::string where = Reader::join(path, key);
  alarm.kind = read_enum(r, *object, where, "kind", k_alarm_kinds, AlarmKind::low, "alarm kind");
  alarm.severity =
      read_enum(r, *object, where, "severity", k_severities, Severity::warning, "severity");
  return alarm;
}

CallProgress read_progress(Reader& r, const json& parent, const std::string& path) {
  const std::string name = r.string(parent, path, "progress");
  if (r.failed()) {
    return CallProgress::placing;
  }
  const auto progress = core::call_progress_from_string(name);
  if (!progress) {
    std::string problem = "unknown call progress ";
    problem += quoted(name);
    r.fail(Reader::join(path, "progress"), problem);
    return CallProgress::placing;
  }
  return *progress;
}

CallRecord read_call(Reader& r, const json& value, const std::string& path) {
  CallRecord call;
  if (!value.is_object()) {
    r.fail(path, "expected an object");
    return call;
  }
  call.key = r.string(value, path, "key");
  call.call_id = r.string(value, path, "call_id");
  call.provider = r.string(value, path, "provider");
  call.to = r.string(value, path, "to");
  call.to_label = r.string(value, path, "to_label");
  call.run = r.small_int(value, path, "run");
  call.step = r.small_int(value, path, "step");
  call.placed_at = r.time(value, path, "placed_at");
  call.progress = read_progress(r, value, path);
  call.answered = r.boolean(value, path, "answered");
  call.acknowledged = r.boolean(value, path, "acknowledged");
  call.escalated = r.boolean(value, path, "escalated");
  call.ended_at = r.optional_time(value, path, "ended_at");
  return call;
}

std::optional<ActiveAlarm> read_active_alarm(Reader& r, const json& parent, const std::string& path,
                                             const char* key) {
  const auto it = parent.find(key);
  if (it == parent.end() || it->is_null()) {
    return std::nullopt;
  }
  const std::string where = Reader::join(path, key);
  if (!it->is_object()) {
    r.fail(where, "expected an object or null");
    return std::nullopt;
  }
  const json& value = *it;
  ActiveAlarm active;
  active.id = r.string(value, where, "id");
  active.alarm = read_alarm(r, value, where, "alarm");
  active.peak = read_alarm(r, value, where, "peak");
  active.raised_at = r.time(value, where, "raised_at");
  active.run = r.small_int(value, where, "run");
  active.chain_start = r.time(value, where, "chain_start");
  active.next_step = r.small_int(value, where, "next_step");
  active.last_step_at = r.optional_time(value, where, "last_step_at");
  active.snoozed_until = r.optional_time(value, where, "snoozed_until");
  active.acknowledged_at = r.optional_time(value, where, "acknowledged_at");
  if (const auto band = value.find("in_band"); band != value.end()) {
    active.in_band = r.boolean(value, where, "in_band");
  }
  active.acknowledged_by = r.string(value, where, "acknowledged_by");
  active.notified = r.strings(value, where, "notified");
  if (const json* calls = r.array(value, where, "calls"); calls != nullptr) {
    const std::string calls_path = Reader::join(where, "calls");
    for (std::size_t i = 0; i < calls->size() && !r.failed(); ++i) {
      active.calls.push_back(read_call(r, (*calls)[i], Reader::index(calls_path, i)));
    }
  }
  return active;
}

// PatientState::facts; absent in state files written before SPEC §4.8 (then empty).
core::ReadingFacts read_facts(Reader& r, const json& parent, const std::string& path) {
  core::ReadingFacts facts;
  const auto it = parent.find("facts");
  if (it == parent.end() || it->is_null()) return facts;
  const std::string where = Reader::join(path, "facts");
  if (!it->is_object()) {
    r.fail(where, "expected an object");
    return facts;
  }
  const json& value = *it;
  const auto small = [&](const char* key) -> std::optional<int> {
    const auto f = value.find(key);
    if (f == value.end() || f->is_null()) return std::nullopt;
    return static_cast<int>(r.integer_at(*f, Reader::join(where, key), 0, 1000));
  };
  if (const auto latest = value.find("latest"); latest != value.end() && !latest->is_null()) {
    const std::string at = Reader::join(where, "latest");
    if (!latest->is_object()) {
      r.fail(at, "expected an object or null");
      return facts;
    }
    core::Entry e;
    e.date = r.time(*latest, at, "date");
    e.sgv = r.small_int(*latest, at, "sgv");
    e.direction = r.string(*latest, at, "direction");
    facts.latest = e;
  }
  facts.forecast_low = small("forecast_low");
  facts.status_code = small("status_code");
  facts.status_code_since = r.optional_time(value, where, "status_code_since");
  if (const auto c = value.find("cadence_ms"); c != value.end() && !c->is_null()) {
    facts.cadence = core::Duration{
        r.integer_at(*c, Reader::join(where, "cadence_ms"), 0, 7LL * 24 * 3600 * 1000)};
  }
  return facts;
}

PatientState read_patient(Reader& r, const json& value, const std::string& path) {
  PatientState patient;
  if (!value.is_object()) {
    r.fail(path, "expected an object");
    return patient;
  }
  patient.glucose = read_active_alarm(r, value, path, "glucose");
  patient.data = read_active_alarm(r, value, path, "data");
  patient.failing_since = r.optional_time(value, path, "failing_since");
  patient.facts = read_facts(r, value, path);
  return patient;
}

NumberUsage read_usage(Reader& r, const json& value, const std::string& path) {
  NumberUsage usage;
  if (!value.is_object()) {
    r.fail(path, "expected an object");
    return usage;
  }
  usage.calls = r.times(value, path, "calls");
  usage.sms = r.times(value, path, "sms");
  return usage;
}

// ---------------------------------------------------------------------------------------------
// Files

// The UTC time now as yyyymmddThhmmssZ (the suffix of a corrupt state file's new name).
std::string utc_stamp_now() {
  const std::time_t now = std::chrono::system_clock::to_time_t(
      std::chrono::time_point_cast<std::chrono::seconds>(wall_clock_now()));
  std::tm parts{};
  gmtime_r(&now, &parts);
  std::array<char, 32> buffer{};
  const std::size_t n = std::strftime(buffer.data(), buffer.size(), "%Y%m%dT%H%M%SZ", &parts);
  return std::string(buffer.data(), n);
}

bool path_exists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

// Writes all of `data` to `fd`, retrying partial writes and EINTR. Returns 0 or an errno value.
int write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return errno;
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return 0;
}

// Reads the whole file: its text, or nullopt when it does not exist.
Result<std::optional<std::string>> read_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    if (err == ENOENT) {
      return std::optional<std::string>{};
    }
    return io_error("cannot open state file", path, err);
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    return io_error("cannot stat state file", path, err);
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return core::fail(ErrorKind::io, "state file " + path + " is not a regular file");
  }
  std::string text;
  std::array<char, 65536> buffer{};
  for (;;) {
    const ssize_t n = ::read(fd, buffer.data(), buffer.size());
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      const int err = errno;
      ::close(fd);
      return io_error("cannot read state file", path, err);
    }
    if (n == 0) {
      break;
    }
    text.append(buffer.data(), static_cast<std::size_t>(n));
    if (text.size() > k_max_state_bytes) {
      break;  // load() refuses it; nothing more is read
    }
  }
  ::close(fd);
  return std::optional<std::string>{std::move(text)};
}

// fsyncs a directory so a rename inside it is durable. Some file systems refuse fsync on a
// directory (EINVAL); that is not an error worth failing a save for.
int fsync_directory(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    return errno;
  }
  int err = 0;
  if (::fsync(fd) != 0 && errno != EINVAL) {
    err = errno;
  }
  ::close(fd);
  return err;
}

std::string parent_dir(const std::string& path) {
  const std::string parent = std::filesystem::path(path).parent_path().string();
  return parent.empty() ? std::string(".") : parent;
}

// Creates the parent directories of `path` when missing. Returns 0 or an errno value.
int make_parent_dirs(const std::string& path) {
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  if (parent.empty()) {
    return 0;
  }
  std::error_code ec;
  std::filesystem::create_directories(parent, ec);
  return ec ? ec.value() : 0;
}

std::string iso8601_utc(TimePoint t) {
  using namespace std::chrono;
  const auto day = floor<days>(t);
  const year_month_day ymd{day};
  const hh_mm_ss<milliseconds> time_of_day{t - day};
  std::array<char, 40> buffer{};
  const int n =
      std::snprintf(buffer.data(), buffer.size(), "%04d-%02u-%02uT%02d:%02d:%02d.%03dZ",
                    static_cast<int>(ymd.year()), static_cast<unsigned>(ymd.month()),
                    static_cast<unsigned>(ymd.day()), static_cast<int>(time_of_day.hours().count()),
                    static_cast<int>(time_of_day.minutes().count()),
                    static_cast<int>(time_of_day.seconds().count()),
                    static_cast<int>(time_of_day.subseconds().count()));
  return std::string(buffer.data(), n > 0 ? static_cast<std::size_t>(n) : 0);
}

const char* level_name(core::JournalEntry::Level level) {
  switch (level) {
    case core::JournalEntry::Level::info:
      return "info";
    case core::JournalEntry::Level::warn:
      return "warn";
    case core::JournalEntry::Level::error:
      return "error";
  }
  return "info";
}

}  // namespace

// ---------------------------------------------------------------------------------------------

json state_to_json(const State& state) {
  json doc = json::object();
  doc["version"] = k_state_version;
  doc["next_id"] = state.next_id;
  doc["webhook_token"] = state.webhook_token;
  json patients = json::object();
  for (const auto& [name, patient] : state.patients) {
    json p = json::object();
    p["glucose"] = optional_alarm(patient.glucose);
    p["data"] = optional_alarm(patient.data);
    p["failing_since"] = optional_time(patient.failing_since);
    p["facts"] = facts_json(patient.facts);
    patients[name] = std::move(p);
  }
  doc["patients"] = std::move(patients);
  json numbers = json::object();
  for (const auto& [number, usage] : state.numbers) {
    numbers[number] = json{{"calls", times_json(usage.calls)}, {"sms", times_json(usage.sms)}};
  }
  doc["numbers"] = std::move(numbers);
  json sms = json::object();
  for (const auto& [key, pending] : state.sms_in_flight) {
    json message{{"purpose", purpose_name(pending.message.purpose)},
                 {"alarm", alarm_json(pending.message.alarm)},
                 {"paused", pending.message.paused ? alarm_json(*pending.message.paused) : json()},
                 {"held_detail", pending.message.held_detail}};
    sms[key] = json{{"patient", pending.patient},   {"alarm_id", pending.alarm_id},
                    {"to", pending.to},             {"to_label", pending.to_label},
                    {"message", std::move(message)}, {"decided_at", to_ms(pending.decided_at)}};
  }
  doc["sms_in_flight"] = std::move(sms);
  return doc;
}

Result<State> state_from_json(const json& doc) {
  if (!doc.is_object()) {
    return core::fail(ErrorKind::malformed_json, "state document: expected a JSON object");
  }
  Reader r;
  const json* version = r.member(doc, "", "version");
  if (version != nullptr) {
    if (!version->is_number_integer()) {
      r.fail("version", "expected an integer");
    } else if (version->get<std::int64_t>() != k_state_version) {
      std::string problem = "unsupported version ";
      problem += std::to_string(version->get<std::int64_t>());
      problem += " (this scout reads version ";
      problem += std::to_string(k_state_version);
      problem += ')';
      r.fail("version", problem);
    }
  }
  if (r.failed()) {
    return core::fail(ErrorKind::malformed_json, r.error());
  }
  State state;
  state.next_id = r.counter(doc, "", "next_id");
  state.webhook_token = r.string(doc, "", "webhook_token");
  if (const json* patients = r.object(doc, "", "patients"); patients != nullptr) {
    for (const auto& [name, value] : patients->items()) {
      if (r.failed()) {
        break;
      }
      state.patients[name] = read_patient(r, value, Reader::join("patients", name));
    }
  }
  if (const json* numbers = r.object(doc, "", "numbers"); numbers != nullptr) {
    for (const auto& [number, value] : numbers->items()) {
      if (r.failed()) {
        break;
      }
      state.numbers[number] = read_usage(r, value, Reader::join("numbers", number));
    }
  }
  // Absent in files written before scout kept decided SMS (SPEC §6): none in flight.
  if (const auto it = doc.find("sms_in_flight"); it != doc.end() && !r.failed()) {
    if (!it->is_object()) {
      r.fail("sms_in_flight", "expected an object");
    } else {
      for (const auto& [key, value] : it->items()) {
        if (r.failed()) break;
        const std::string where = Reader::join("sms_in_flight", key);
        if (!value.is_object()) {
          r.fail(where, "expected an object");
          break;
        }
        core::PendingSms pending;
        pending.patient = r.string(value, where, "patient");
        pending.alarm_id = r.string(value, where, "alarm_id");
        pending.to = r.string(value, where, "to");
        pending.to_label = r.string(value, where, "to_label");
        pending.decided_at = r.time(value, where, "decided_at");
        if (const json* message = r.object(value, where, "message"); message != nullptr) {
          const std::string at = Reader::join(where, "message");
          const std::string purpose = r.string(*message, at, "purpose");
          const auto parsed = purpose_from_name(purpose);
          if (!parsed && !r.failed()) r.fail(Reader::join(at, "purpose"), "unknown purpose");
          pending.message.purpose = parsed.value_or(core::MessagePurpose::alarm);
          pending.message.alarm = read_alarm(r, *message, at, "alarm");
          if (const auto p = message->find("paused"); p != message->end() && !p->is_null()) {
            pending.message.paused = read_alarm(r, *message, at, "paused");
          }
          pending.message.held_detail = r.string(*message, at, "held_detail");
        }
        state.sms_in_flight[key] = std::move(pending);
      }
    }
  }
  if (r.failed()) {
    return core::fail(ErrorKind::malformed_json, r.error());
  }
  return state;
}

// ---------------------------------------------------------------------------------------------

StateStore::StateStore(std::string path) : path_(std::move(path)) {}

Result<LoadedState> StateStore::load() const {
  auto text = read_file(path_);
  if (!text) {
    return tl::make_unexpected(text.error());
  }
  LoadedState loaded;
  if (!text->has_value()) {
    return loaded;  // no state file yet: a first start
  }
  std::string reason;
  if (text->value().size() > k_max_state_bytes) {
    reason = "the file is larger than " + std::to_string(k_max_state_bytes >> 20) +
             " MiB, more than any state scout writes";
  } else if (text->value().find_first_not_of(" \t\r\n") == std::string::npos) {
    reason = "the file is empty";
  } else {
    json doc;
    try {
      doc = json::parse(text->value());
    } catch (const json::exception& e) {
      reason = e.what();
    }
    if (reason.empty()) {
      auto state = state_from_json(doc);
      if (state) {
        loaded.state = std::move(*state);
        return loaded;
      }
      reason = state.error().message;
    }
  }

  // Keep the unusable file for a human to look at and start clean (STYLE.md C18: alerting twice
  // is better than not alerting at all).
  const std::string base = path_ + ".corrupt-" + utc_stamp_now();
  std::string target = base;
  for (int i = 1; path_exists(target); ++i) {
    target = base + "-" + std::to_string(i);
  }
  if (::rename(path_.c_str(), target.c_str()) != 0) {
    const int err = errno;
    std::string message = "state file ";
    message += path_;
    message += " is unusable (";
    message += reason;
    message += ") and cannot be moved to ";
    message += target;
    message += ": ";
    message += errno_text(err);
    return core::fail(ErrorKind::io, std::move(message));
  }
  std::string problem = "state file ";
  problem += path_;
  problem += " is unusable (";
  problem += reason;
  problem += "); moved it to ";
  problem += target;
  problem += " and starting with no active alarms";
  loaded.problem = std::move(problem);
  loaded.moved_to = std::move(target);
  return loaded;
}

core::Status StateStore::save(const State& state) const {
  if (const int err = make_parent_dirs(path_); err != 0) {
    return io_error("cannot create the directory of state file", path_, err);
  }
  std::string text = state_to_json(state).dump(2, ' ', false, json::error_handler_t::replace);
  text += '\n';

  const std::string tmp = path_ + ".tmp";
  const int fd = ::open(tmp.c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, k_file_mode);
  if (fd < 0) {
    return io_error("cannot create", tmp, errno);
  }
  // A .tmp left by a crash keeps its old mode through O_CREAT; set it explicitly.
  int err = ::fchmod(fd, k_file_mode) != 0 ? errno : 0;
  if (err == 0) {
    err = write_all(fd, text);
  }
  if (err == 0 && ::fsync(fd) != 0) {
    err = errno;
  }
  if (::close(fd) != 0 && err == 0) {
    err = errno;
  }
  if (err != 0) {
    ::unlink(tmp.c_str());
    return io_error("cannot write", tmp, err);
  }
  if (::rename(tmp.c_str(), path_.c_str()) != 0) {
    err = errno;
    ::unlink(tmp.c_str());
    std::string what = "cannot rename ";
    what += tmp;
    what += " to";
    return io_error(what, path_, err);
  }
  if (const int dir_err = fsync_directory(parent_dir(path_)); dir_err != 0) {
    return io_error("cannot fsync the directory of state file", path_, dir_err);
  }
  return {};
}

// ---------------------------------------------------------------------------------------------

std::string utc_iso8601(core::TimePoint t) { return iso8601_utc(t); }

std::string journal_line(const core::JournalEntry& entry) {
  nlohmann::ordered_json line = nlohmann::ordered_json::object();
  line["time"] = iso8601_utc(entry.at);
  line["type"] = entry.type;
  line["patient"] = entry.patient;
  line["alarm"] = entry.alarm_id;
  for (const auto& [key, value] : entry.fields) {
    // The fixed keys (and an earlier field of the same name) win: a field never overwrites them.
    if (line.contains(key) || key == "level") {
      continue;
    }
    line[key] = value;
  }
  if (entry.level != core::JournalEntry::Level::info) {
    line["level"] = level_name(entry.level);
  }
  return line.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

Journal::Journal(std::string path) : path_(std::move(path)) {}

core::Status Journal::append(const core::JournalEntry& entry) {
  if (path_.empty()) {
    return {};
  }
  std::string text = journal_line(entry);
  text += '\n';
  // Opened per line so that a rotated journal (moved away by logrotate) is recreated.
  int fd = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, k_file_mode);
  if (fd < 0 && errno == ENOENT && make_parent_dirs(path_) == 0) {
    fd = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, k_file_mode);
  }
  if (fd < 0) {
    return io_error("cannot open journal", path_, errno);
  }
  int err = write_all(fd, text);
  if (::close(fd) != 0 && err == 0) {
    err = errno;
  }
  if (err != 0) {
    return io_error("cannot write journal", path_, err);
  }
  return {};
}

}  // namespace scout::adapters
