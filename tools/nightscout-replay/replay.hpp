#pragma once
// nightscout-replay: the logic behind the server, free of sockets so it reads on its own.
// A trace (a Nightscout entries file) is replayed through a cursor in trace time; every answer
// is shifted so that the cursor's moment looks like "now" to the client (README.md).

#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace replay {

// Milliseconds since the Unix epoch (UTC), as in Nightscout's `date`.
using Millis = std::int64_t;

inline constexpr Millis k_minute_ms = 60'000;
inline constexpr Millis k_hour_ms = 60 * k_minute_ms;
// Nightscout adds `date >= now - 4 days` when a query has no date filter
// (nightscout/cgm-remote-monitor:lib/server/query.js, default deltaAgo TWO_DAYS * 2).
inline constexpr Millis k_implicit_window_ms = 4 * 24 * k_hour_ms;
// Default `count` (lib/constants.json ENTRIES_DEFAULT_COUNT).
inline constexpr int k_default_count = 10;

// ---- time text --------------------------------------------------------------------------

// "2024-05-24T19:46:40.000Z"
std::string format_iso(Millis ms);
// "Fri, 24 May 2024 19:46:40 GMT" (RFC 7231 IMF-fixdate, as JavaScript's toUTCString)
std::string format_http_date(Millis ms);
// ISO 8601: YYYY-MM-DD, optionally THH:MM[:SS[.fff]] and Z or ±HH[:]MM; no zone means UTC.
// A ' ' before the offset is read as '+' (Nightscout does the same: lib/server/query.js).
std::optional<Millis> parse_iso(std::string_view text);
// IMF-fixdate as sent in If-Modified-Since.
std::optional<Millis> parse_http_date(std::string_view text);
// "90m", "1h30m", "45s", "500ms": h, m, s, ms groups in decreasing order.
std::optional<Millis> parse_span(std::string_view text);
// A trace moment: ms since the epoch (digits), an ISO time, or "+<span>" after `trace_first`.
std::optional<Millis> parse_moment(std::string_view text, Millis trace_first);

// ---- the trace --------------------------------------------------------------------------

struct TraceEntry {
  Millis date = 0;        // trace time
  std::string type;       // "sgv", "mbg", "cal", or "" (from `type`, else the keys present)
  nlohmann::json record;  // the object as in the file
};

class Trace {
 public:
  // Parses a JSON array of entry objects. Records without a numeric `date` are dropped and
  // counted. Throws std::runtime_error with a readable message when the text is not such an
  // array or holds no dated entry.
  static Trace from_json(const std::string& text);

  // Oldest first.
  const std::vector<TraceEntry>& entries() const { return m_entries; }
  Millis first() const { return m_entries.front().date; }
  Millis last() const { return m_entries.back().date; }
  std::size_t dropped() const { return m_dropped; }

 private:
  std::vector<TraceEntry> m_entries;
  std::size_t m_dropped = 0;
};

// ---- queries ----------------------------------------------------------------------------

// The parts of a v1 entries query the replay understands (protocols.md §1.2). Bounds are in
// client time (shifted), as the client sees dates.
struct EntriesQuery {
  std::optional<int> count;         // nullopt: default 10; 0: no limit (Mongo limit(0))
  std::optional<std::string> type;  // from the path spec or find[type]
  std::optional<Millis> gte, gt, lte, lt;
  bool has_date_filter = false;  // find[date] or find[dateString] given
};

// Parses `count`, `find[type]`, `find[date|dateString][$gte|$gt|$lte|$lt]` and `find[date]=x`.
// Errors: a message for a date that is neither a number nor ISO 8601 (Nightscout: "Cannot
// parse <x> as a valid ISO-8601 date").
struct QueryParse {
  EntriesQuery query;
  std::optional<std::string> error;
};
QueryParse parse_entries_query(const std::multimap<std::string, std::string>& params);

struct Rendering {
  bool sgv_as_string = false;
};

// The entries a client sees at real time `now_ms` when the trace cursor is at `cursor`:
// trace dates <= cursor, shifted by (now_ms - cursor), filtered by `query`, newest first,
// at most `count`. `date`, `dateString`, `sysTime` and `mills` (if present) are shifted;
// `_id`, `sysTime`, `utcOffset` are added when the file lacks them.
nlohmann::json select_entries(const Trace& trace, Millis cursor, Millis now_ms,
                              const EntriesQuery& query, const Rendering& rendering);

// ---- auth (protocols.md §1.5, §5.1) -----------------------------------------------------

struct AuthConfig {
  std::vector<std::string> tokens;  // access tokens accepted as ?token= or api-secret header
  std::string api_secret;           // plain API_SECRET; empty: none
  bool locked() const { return !tokens.empty() || !api_secret.empty(); }
};

struct Credentials {
  std::string token_param;   // ?token=
  std::string secret_param;  // ?secret=
  std::string api_secret_header;
};

// True when the site is open (readable by default) or one credential is valid: ?token= a known
// token; api-secret header or ?secret= equal to the sha1 hex of the secret (any case) or to its
// sha512 hex (lower case, compared as sent, as Nightscout does); a known token in the api-secret header (nightscout/cgm-remote-monitor:
// lib/server/enclave.js isApiKey, lib/authorization/index.js). Constant-time comparisons.
bool authorized(const AuthConfig& auth, const Credentials& credentials);

std::string sha1_hex(const std::string& text);
std::string sha512_hex(const std::string& text);

}  // namespace replay
