#include "replay.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <algorithm>
#include <limits>
#include <array>
#include <cctype>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <stdexcept>

namespace replay {
namespace {

using nlohmann::json;
namespace chr = std::chrono;

constexpr std::array<const char*, 7> k_weekdays{"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
constexpr std::array<const char*, 12> k_months{"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                               "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

struct Civil {
  int year = 1970;
  unsigned month = 1;
  unsigned day = 1;
  unsigned weekday = 4;  // 0 = Sunday
  Millis ms_of_day = 0;
};

Civil civil_of(Millis ms) {
  const chr::sys_time<chr::milliseconds> at{chr::milliseconds{ms}};
  const auto day = chr::floor<chr::days>(at);
  const chr::year_month_day ymd{day};
  return Civil{static_cast<int>(ymd.year()), static_cast<unsigned>(ymd.month()),
               static_cast<unsigned>(ymd.day()), chr::weekday{day}.c_encoding(),
               (at - day).count()};
}

std::optional<Millis> millis_of(int year, unsigned month, unsigned day, Millis ms_of_day) {
  const chr::year_month_day ymd{chr::year{year}, chr::month{month}, chr::day{day}};
  if (!ymd.ok()) {
    return std::nullopt;
  }
  return chr::sys_days{ymd}.time_since_epoch() / chr::milliseconds{1} + ms_of_day;
}

// Reads exactly `digits` decimal digits at `pos`.
std::optional<int> fixed_digits(std::string_view text, std::size_t& pos, std::size_t digits) {
  if (pos + digits > text.size()) {
    return std::nullopt;
  }
  int value = 0;
  for (std::size_t i = 0; i < digits; ++i) {
    const char c = text[pos + i];
    if (c < '0' || c > '9') {
      return std::nullopt;
    }
    value = value * 10 + (c - '0');
  }
  pos += digits;
  return value;
}

bool all_digits(std::string_view text) {
  return !text.empty() &&
         std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
}

std::string_view trimmed(std::string_view text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front())) != 0) {
    text.remove_prefix(1);
  }
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back())) != 0) {
    text.remove_suffix(1);
  }
  return text;
}

// A number or numeric string, as Nightscout's `date` may be either.
std::optional<double> number_of(const json& value) {
  if (value.is_number()) {
    return value.get<double>();
  }
  if (!value.is_string()) {
    return std::nullopt;
  }
  const std::string_view text = trimmed(value.get_ref<const std::string&>());
  double parsed = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), parsed);
  if (text.empty() || ec != std::errc{} || end != text.data() + text.size()) {
    return std::nullopt;
  }
  return parsed;
}

std::string type_of(const json& record) {
  const auto type = record.find("type");
  if (type != record.end() && type->is_string()) {
    return type->get<std::string>();
  }
  // In-memory typing in Nightscout (lib/api/entries/index.js query_models).
  if (record.contains("sgv")) {
    return "sgv";
  }
  if (record.contains("mbg")) {
    return "mbg";
  }
  return "";
}

// A find[...] date value: integer ms (optionally with a fraction, truncated like parseInt)
// or ISO 8601.
std::optional<Millis> query_date(std::string text) {
  const std::string_view view = trimmed(text);
  const auto dot = view.find('.');
  if (all_digits(view.substr(0, dot)) &&
      (dot == std::string_view::npos || all_digits(view.substr(dot + 1)))) {
    Millis ms = 0;
    const auto digits = view.substr(0, dot);
    if (std::from_chars(digits.data(), digits.data() + digits.size(), ms).ec != std::errc{}) {
      return std::nullopt;
    }
    return ms;
  }
  return parse_iso(view);
}

std::string digest_hex(const std::string& text, const EVP_MD* md) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int size = 0;
  if (EVP_Digest(text.data(), text.size(), digest.data(), &size, md, nullptr) != 1) {
    return {};
  }
  static constexpr char k_hex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < size; ++i) {
    out.push_back(k_hex[digest[i] >> 4]);
    out.push_back(k_hex[digest[i] & 0x0f]);
  }
  return out;
}

bool same_secret(const std::string& presented, const std::string& expected) {
  return !expected.empty() && presented.size() == expected.size() &&
         CRYPTO_memcmp(presented.data(), expected.data(), expected.size()) == 0;
}

std::string lower(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return text;
}

}  // namespace

// ---- time text --------------------------------------------------------------------------

std::string format_iso(Millis ms) {
  const Civil c = civil_of(ms);
  const Millis t = c.ms_of_day;
  char text[96];  // room for any value the format could print (g++ -O3 -Wformat-truncation)
  std::snprintf(text, sizeof text, "%04d-%02u-%02uT%02lld:%02lld:%02lld.%03lldZ", c.year, c.month,
                c.day, static_cast<long long>(t / k_hour_ms),
                static_cast<long long>(t / k_minute_ms % 60), static_cast<long long>(t / 1000 % 60),
                static_cast<long long>(t % 1000));
  return text;
}

std::string format_http_date(Millis ms) {
  const Civil c = civil_of(ms);
  const Millis t = c.ms_of_day;
  char text[48];
  std::snprintf(text, sizeof text, "%s, %02u %s %04d %02lld:%02lld:%02lld GMT",
                k_weekdays[c.weekday], c.day, k_months[c.month - 1], c.year,
                static_cast<long long>(t / k_hour_ms), static_cast<long long>(t / k_minute_ms % 60),
                static_cast<long long>(t / 1000 % 60));
  return text;
}

std::optional<Millis> parse_iso(std::string_view text) {
  text = trimmed(text);
  std::size_t pos = 0;
  const auto year = fixed_digits(text, pos, 4);
  if (!year || pos >= text.size() || text[pos++] != '-') {
    return std::nullopt;
  }
  const auto month = fixed_digits(text, pos, 2);
  if (!month || pos >= text.size() || text[pos++] != '-') {
    return std::nullopt;
  }
  const auto day = fixed_digits(text, pos, 2);
  if (!day) {
    return std::nullopt;
  }
  Millis time_ms = 0;
  if (pos < text.size() && (text[pos] == 'T' || text[pos] == 't' || text[pos] == ' ')) {
    ++pos;
    const auto hour = fixed_digits(text, pos, 2);
    if (!hour || *hour > 23 || pos >= text.size() || text[pos++] != ':') {
      return std::nullopt;
    }
    const auto minute = fixed_digits(text, pos, 2);
    if (!minute || *minute > 59) {
      return std::nullopt;
    }
    int second = 0;
    Millis fraction_ms = 0;
    if (pos < text.size() && text[pos] == ':') {
      ++pos;
      const auto s = fixed_digits(text, pos, 2);
      if (!s || *s > 60) {
        return std::nullopt;
      }
      second = *s;
      if (pos < text.size() && (text[pos] == '.' || text[pos] == ',')) {
        ++pos;
        int digits = 0;
        Millis scale = 100;
        while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') {
          fraction_ms += (text[pos] - '0') * scale;
          scale /= 10;
          ++pos;
          ++digits;
        }
        if (digits == 0) {
          return std::nullopt;
        }
      }
    }
    time_ms = *hour * k_hour_ms + *minute * k_minute_ms + second * Millis{1000} + fraction_ms;
    if (pos < text.size()) {
      const char zone = text[pos];
      if (zone == 'Z' || zone == 'z') {
        ++pos;
      } else if (zone == '+' || zone == '-' || zone == ' ') {
        ++pos;
        const auto zone_hours = fixed_digits(text, pos, 2);
        if (!zone_hours) {
          return std::nullopt;
        }
        if (pos < text.size() && text[pos] == ':') {
          ++pos;
        }
        const auto zone_minutes = fixed_digits(text, pos, 2);
        if (!zone_minutes || *zone_hours > 23 || *zone_minutes > 59) {
          return std::nullopt;
        }
        const Millis offset = *zone_hours * k_hour_ms + *zone_minutes * k_minute_ms;
        time_ms += zone == '-' ? offset : -offset;
      } else {
        return std::nullopt;
      }
    }
  }
  if (pos != text.size()) {
    return std::nullopt;
  }
  return millis_of(*year, static_cast<unsigned>(*month), static_cast<unsigned>(*day), time_ms);
}

std::optional<Millis> parse_http_date(std::string_view text) {
  // "Sun, 06 Nov 1994 08:49:37 GMT"
  text = trimmed(text);
  if (text.size() != 29 || text.substr(3, 2) != ", " || text.substr(25) != " GMT") {
    return std::nullopt;
  }
  std::size_t pos = 5;
  const auto day = fixed_digits(text, pos, 2);
  const auto month_name = text.substr(8, 3);
  const auto month_it = std::find(k_months.begin(), k_months.end(), month_name);
  pos = 12;
  const auto year = fixed_digits(text, pos, 4);
  pos = 17;
  const auto hour = fixed_digits(text, pos, 2);
  pos = 20;
  const auto minute = fixed_digits(text, pos, 2);
  pos = 23;
  const auto second = fixed_digits(text, pos, 2);
  if (!day || month_it == k_months.end() || !year || !hour || !minute || !second ||
      text[7] != ' ' || text[11] != ' ' || text[16] != ' ' || text[19] != ':' || text[22] != ':' ||
      *hour > 23 || *minute > 59 || *second > 60) {
    return std::nullopt;
  }
  const auto month = static_cast<unsigned>(month_it - k_months.begin() + 1);
  return millis_of(*year, month, static_cast<unsigned>(*day),
                   *hour * k_hour_ms + *minute * k_minute_ms + *second * Millis{1000});
}

std::optional<Millis> parse_span(std::string_view text) {
  if (text.empty()) {
    return std::nullopt;
  }
  // Units in the order they may appear.
  constexpr std::array<std::pair<std::string_view, Millis>, 4> k_units{
      {{"h", k_hour_ms}, {"m", k_minute_ms}, {"s", 1000}, {"ms", 1}}};
  std::size_t next_unit = 0;
  Millis total = 0;
  std::size_t pos = 0;
  while (pos < text.size()) {
    const std::size_t digits_begin = pos;
    while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') {
      ++pos;
    }
    if (pos == digits_begin || pos - digits_begin > 12) {
      return std::nullopt;
    }
    Millis value = 0;
    std::from_chars(text.data() + digits_begin, text.data() + pos, value);
    const std::string_view unit = text.substr(pos, text.substr(pos, 2) == "ms" ? 2 : 1);
    const auto match = std::find_if(k_units.begin() + static_cast<std::ptrdiff_t>(next_unit),
                                    k_units.end(), [&](const auto& u) { return u.first == unit; });
    if (unit.empty() || match == k_units.end()) {
      return std::nullopt;
    }
    total += value * match->second;
    next_unit = static_cast<std::size_t>(match - k_units.begin()) + 1;
    pos += unit.size();
  }
  return total;
}

std::optional<Millis> parse_moment(std::string_view text, Millis trace_first) {
  text = trimmed(text);
  if (all_digits(text)) {
    Millis ms = 0;
    if (std::from_chars(text.data(), text.data() + text.size(), ms).ec != std::errc{}) {
      return std::nullopt;
    }
    return ms;
  }
  if (!text.empty() && text.front() == '+') {
    const auto span = parse_span(text.substr(1));
    if (!span) {
      return std::nullopt;
    }
    return trace_first + *span;
  }
  return parse_iso(text);
}

// ---- the trace --------------------------------------------------------------------------

Trace Trace::from_json(const std::string& text) {
  json document;
  try {
    document = json::parse(text);
  } catch (const json::exception& e) {
    throw std::runtime_error(std::string{"not valid JSON: "} + e.what());
  }
  if (!document.is_array()) {
    throw std::runtime_error(std::string{"expected a JSON array of entries, found a "} +
                             document.type_name());
  }
  Trace trace;
  for (auto& record : document) {
    if (!record.is_object()) {
      ++trace.m_dropped;
      continue;
    }
    const auto date_it = record.find("date");
    const auto date = date_it == record.end() ? std::nullopt : number_of(*date_it);
    if (!date || !std::isfinite(*date) || *date <= 0) {
      ++trace.m_dropped;
      continue;
    }
    TraceEntry entry;
    entry.date = static_cast<Millis>(std::llround(*date));
    entry.type = type_of(record);
    entry.record = std::move(record);
    trace.m_entries.push_back(std::move(entry));
  }
  if (trace.m_entries.empty()) {
    throw std::runtime_error("the array holds no entry with a numeric `date`");
  }
  std::stable_sort(trace.m_entries.begin(), trace.m_entries.end(),
                   [](const TraceEntry& a, const TraceEntry& b) { return a.date < b.date; });
  return trace;
}

// ---- queries ----------------------------------------------------------------------------

QueryParse parse_entries_query(const std::multimap<std::string, std::string>& params) {
  QueryParse result;
  EntriesQuery& query = result.query;
  for (const auto& [key, raw_value] : params) {
    if (key == "count") {
      long long count = 0;
      const std::string_view value = trimmed(raw_value);
      const char* end = value.data() + value.size();
      const auto parsed = std::from_chars(value.data(), end, count);
      // parseInt semantics: leading digits count, garbage after them is ignored; no digits
      // at all falls back to the default.
      if (parsed.ec == std::errc{}) {
        query.count = static_cast<int>(std::min<long long>(std::llabs(count), 1'000'000));
      }
      continue;
    }
    if (key == "find[type]") {
      query.type = raw_value;
      continue;
    }
    std::string field;
    for (const char* name : {"find[date]", "find[dateString]"}) {
      if (key.rfind(name, 0) == 0) {
        field = name;
      }
    }
    if (field.empty()) {
      continue;  // other fields are not filtered on (README.md)
    }
    const std::string op = key.substr(field.size());
    // Nightscout turns a single ' ' into '+', because clients often leave '+' unescaped
    // (nightscout/cgm-remote-monitor:lib/server/query.js enforceDateFilter).
    std::string value = raw_value;
    if (const auto space = value.find(' '); space != std::string::npos) {
      value[space] = '+';
    }
    const auto ms = query_date(value);
    if (!ms) {
      result.error = "Cannot parse " + raw_value + " as a valid ISO-8601 date";
      return result;
    }
    if (op == "[$gte]") {
      query.gte = *ms;
    } else if (op == "[$gt]") {
      query.gt = *ms;
    } else if (op == "[$lte]") {
      query.lte = *ms;
    } else if (op == "[$lt]") {
      query.lt = *ms;
    } else if (op.empty()) {
      query.gte = *ms;
      query.lte = *ms;
    } else {
      continue;  // an operator the replay does not know: ignored
    }
    query.has_date_filter = true;
  }
  return result;
}

json select_entries(const Trace& trace, Millis cursor, Millis now_ms, const EntriesQuery& query,
                    const Rendering& rendering) {
  const Millis shift = now_ms - cursor;
  const int count = query.count.value_or(k_default_count);
  // Nightscout's implicit 4-day window applies only without a date filter. (A plain lower
  // bound rather than an optional: g++ 12 -O2 misreports the optional as uninitialized.)
  const Millis window_start = query.has_date_filter ? std::numeric_limits<Millis>::min()
                                                    : now_ms - k_implicit_window_ms;

  json out = json::array();
  const auto& entries = trace.entries();
  // Entries are oldest first: start at the newest one not after the cursor and walk back.
  auto end = std::upper_bound(entries.begin(), entries.end(), cursor,
                              [](Millis at, const TraceEntry& e) { return at < e.date; });
  for (auto it = end; it != entries.begin();) {
    --it;
    const Millis shown = it->date + shift;
    if (shown < window_start || (query.gte && shown < *query.gte) ||
        (query.gt && shown <= *query.gt)) {
      break;  // every older entry fails the lower bound too
    }
    if ((query.lte && shown > *query.lte) || (query.lt && shown >= *query.lt) ||
        (query.type && it->type != *query.type)) {
      continue;
    }
    json record = it->record;
    const std::string iso = format_iso(shown);
    record["date"] = shown;
    record["dateString"] = iso;
    record["sysTime"] = iso;
    if (record.contains("mills")) {
      record["mills"] = shown;
    }
    if (!record.contains("utcOffset")) {
      record["utcOffset"] = 0;
    }
    if (!record.contains("_id")) {
      // Stable per trace entry, shaped like a Mongo ObjectId (24 hex digits).
      char id[32];
      std::snprintf(id, sizeof id, "%08llx%016llx",
                    static_cast<unsigned long long>((it->date / 1000) & 0xffffffffLL),
                    static_cast<unsigned long long>(it - entries.begin()));
      record["_id"] = id;
    }
    if (it->type.empty() && !record.contains("type")) {
      record["type"] = "sgv";
    }
    if (rendering.sgv_as_string) {
      const auto sgv = record.find("sgv");
      if (sgv != record.end() && sgv->is_number()) {
        *sgv = std::to_string(sgv->get<long long>());
      }
    }
    out.push_back(std::move(record));
    if (count > 0 && static_cast<int>(out.size()) >= count) {
      break;
    }
  }
  return out;
}

// ---- auth -------------------------------------------------------------------------------

std::string sha1_hex(const std::string& text) { return digest_hex(text, EVP_sha1()); }
std::string sha512_hex(const std::string& text) { return digest_hex(text, EVP_sha512()); }

bool authorized(const AuthConfig& auth, const Credentials& credentials) {
  if (!auth.locked()) {
    return true;  // AUTH_DEFAULT_ROLES=readable, Nightscout's default
  }
  bool ok = false;  // no early return: every check runs, whatever matched
  for (const auto& token : auth.tokens) {
    ok = same_secret(credentials.token_param, token) || ok;
    ok = same_secret(credentials.api_secret_header, token) || ok;
  }
  if (!auth.api_secret.empty()) {
    const std::string sha1 = sha1_hex(auth.api_secret);
    const std::string sha512 = sha512_hex(auth.api_secret);
    for (const std::string* presented :
         {&credentials.api_secret_header, &credentials.secret_param}) {
      // isApiKey: `keyValue.toLowerCase() == sha1 || keyValue == sha512`: only the sha1 is
      // case-insensitive (nightscout/cgm-remote-monitor:lib/server/enclave.js).
      ok = same_secret(lower(*presented), sha1) || ok;
      ok = same_secret(*presented, sha512) || ok;
    }
  }
  return ok;
}

}  // namespace replay
