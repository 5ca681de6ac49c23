#pragma once
// Nightscout API v1 client (SPEC §3, protocols.md §1): the pure parser and the concurrent poller.

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "scout/core/config.hpp"
#include "scout/core/reading.hpp"
#include "scout/core/result.hpp"

namespace scout::adapters {

// How many entries scout asks for: enough for the delta, the AR2 forecast and a run of sensor
// status codes longer than stale.urgent at a 5-minute cadence (3 hours).
inline constexpr int k_entries_count = 36;

// Parses the body of GET /api/v1/entries/sgv.json: a JSON array of entry objects, read as it is
// parsed (no document tree: memory is the entries kept, not the size of the answer).
// Accepts `sgv` as a number or a numeric string; `date` as a number (ms since epoch) or a
// numeric string; ignores unknown fields (e.g. `mills`, `_id`); skips entries without `sgv`
// (mbg/cal records) or without a `date`. Errors: ErrorKind::not_json when the body does not
// look like JSON (an HTML page), ErrorKind::malformed_json when it does not parse or is not an
// array. Returned entries are newest first.
[[nodiscard]] core::Result<std::vector<core::Entry>> parse_entries(const std::string& body);

// sha1 hex (lower case) of `secret`, the value of the api-secret header (protocols.md §1.5).
std::string api_secret_header_value(const std::string& secret);

// The URL scout fetches for `site`: {url}/api/v1/entries/sgv.json?count=k_entries_count
// [&token=...][&find[date][$gt]=AFTER] (AFTER in ms since the epoch: only entries newer than it).
std::string entries_url(const core::NightscoutSite& site,
                        std::optional<core::TimePoint> after = std::nullopt);

// The same URL with the token replaced by "***", for logs and messages. A user:password in the
// URL is replaced by "***" too.
std::string redacted_entries_url(const core::NightscoutSite& site,
                                 std::optional<core::TimePoint> after = std::nullopt);

// The site's base URL (no trailing '/'), with any user:password replaced by "***", for logs.
std::string redacted_site_url(const core::NightscoutSite& site);

// Polls every site at once with libcurl's multi interface: each request has `timeout`
// (connect + transfer); one hung site costs its own timeout and nothing else. The result has
// one element per site, in order. Each error names the site by its redacted URL and says
// what happened: auth (401/403), http_status (other non-2xx, with the code), timeout, network,
// not_json (HTML page), malformed_json. TLS certificates are verified. Redirects are not
// followed (a 3xx is http_status naming the target): following one would resend the
// credentials to wherever it points. All sites are asked at once (at most 2,048 at a time, and 256
// per host:port, the rest queued as Poller's); the first call raises the soft RLIMIT_NOFILE to
// the hard limit so 10,000 sites fit. A one-shot poll (a Poller for one call). Returns after at
// most about `timeout` (+ a few seconds of grace that only a libcurl bug could use). Requires: timeout > 0 (smaller is taken as 1 ms).
// Thread-safety: may be called from any one thread at a time per process.
std::vector<core::Result<std::vector<core::Entry>>> fetch_all(
    const std::vector<core::NightscoutSite>& sites, core::Duration timeout);

// Answers of fetch_each: (index into `sites`, outcome), every answer that came in together.
using AnswersCallback = std::function<void(
    std::vector<std::pair<std::size_t, core::Result<std::vector<core::Entry>>>>&&)>;

// fetch_all, handing each site's outcome to `on_answers` (on the calling thread) as soon as it is
// in rather than all at the end: a slow or hung Nightscout delays nobody else (SPEC §3). Every
// site gets exactly one outcome; those still running at the timeout come last, as timeouts.
void fetch_each(const std::vector<core::NightscoutSite>& sites, core::Duration timeout,
                const AnswersCallback& on_answers);

// One request of Poller::fetch_each. `site` must outlive the call.
struct EntriesRequest {
  const core::NightscoutSite* site = nullptr;
  // The newest reading date scout holds from the site, or nullopt for the newest
  // k_entries_count. With it the request is incremental: `find[date][$gt]=AFTER` and
  // `If-Modified-Since: AFTER` (rounded up to the second), and the answer holds only what is
  // newer: empty when nothing is, a 304 included (Nightscout 15 answers 304 when the newest date
  // it would send is at or before If-Modified-Since: lib/api/entries/index.js format_entries).
  std::optional<core::TimePoint> after;
};

// A poller that lives as long as the service (SPEC §7): libcurl multi handles (the sites spread
// over 64 by host) driven through curl_multi_socket_action and epoll, so a poll's work grows
// with its transfers and nothing else; connections (keep-alive for a site alone on its host,
// HTTP/2 multiplexing over TLS where offered) and the DNS cache are kept from one poll to the
// next. The multi handles are split over `lanes` threads (one per core by default, at most
// k_max_lanes), each with its own epoll: the calling thread runs one lane, a poll starts a
// thread for each other lane that has requests, and all are joined before fetch_each returns.
// Answers are parsed on the lane's thread and handed over on the calling thread only.
// Thread-safety: one thread at a time calls it.
class Poller {
 public:
  // At most this many requests run at once over all hosts (and at most 256 per host:port), each
  // holding a libcurl easy handle (about 6-9 KiB with its buffers); the rest wait for a free
  // slot, hosts taken in turn, within the same poll timeout: a request started late gets what is
  // left of it, and one never started by then is a timeout. So one hung site holds one slot and
  // delays nobody; only thousands of hung sites at once would. Finished handles serve the next
  // requests (libcurl keeps their options), at most this many kept between polls.
  static constexpr std::size_t k_max_in_flight = 2048;
  static constexpr unsigned k_max_lanes = 4;
  // max_in_flight 0 is taken as 1; lanes 0 is one per core (std::thread::hardware_concurrency),
  // and any number is clamped to 1..k_max_lanes.
  explicit Poller(std::size_t max_in_flight = k_max_in_flight, unsigned lanes = 0);
  ~Poller();
  // Whether a site alone on its host keeps its connection for the next poll (true by default).
  // A poller for one poll (scout check) closes each connection as its answer is in, on the
  // lane's thread, rather than all ten thousand at once when it is destroyed.
  void keep_connections(bool keep);
  Poller(const Poller&) = delete;
  Poller& operator=(const Poller&) = delete;
  // fetch_each over `requests`: every answer handed to `on_answers` as it arrives, exactly one per
  // request (index into `requests`), errors as fetch_all's.
  void fetch_each(const std::vector<EntriesRequest>& requests, core::Duration timeout,
                  const AnswersCallback& on_answers);
  struct Impl;  // defined in nightscout.cpp only

 private:
  std::unique_ptr<Impl> impl_;
};

// What scout holds of each site between polls, so that a poll asks only for what is new (SPEC §7,
// issue 8: ten thousand full answers a minute are ~90 MB of JSON): each site's newest
// k_entries_count entries. Pure (no I/O); one per poller. Thread-safety: one thread at a time.
class RecentEntries {
 public:
  // Every this many polls a site is asked for its newest k_entries_count in full all the same
  // (spread over the sites): that catches entries an uploader backfilled behind the newest (a
  // phone sending the hour it missed) and entries deleted or corrected on the site.
  static constexpr unsigned k_full_every = 30;
  // A site whose newest held reading is older than this is read in full at every poll: late
  // data (a sensor warming up, a phone out of range, an uploader backfilling a gap) are when
  // what a full request answers matters most, and cost full answers only while they last.
  static constexpr core::Duration k_incremental_while = std::chrono::minutes{10};
  // The requests of one poll of `sites` (index i for sites[i]) at `now`: incremental after the
  // newest held entry that is not in the future (at most core::k_max_future_skew ahead of `now`,
  // so one entry from a phone with a wrong clock cannot hide the real ones), else in full: when
  // nothing is held, when that entry is older than k_incremental_while, after a failed poll,
  // when the site's URL or credentials changed, and every k_full_every polls. `sites` must
  // outlive the requests.
  std::vector<EntriesRequest> requests(const std::vector<core::NightscoutSite>& sites,
                                       core::TimePoint now);
  // Folds sites[i]'s answer to the last requests() in and returns the site's newest
  // k_entries_count entries (newest first; for an entry date answered again, the newer answer's),
  // what a full request would have answered; an error is returned as it is and drops what was
  // held.
  core::Result<std::vector<core::Entry>> fold(std::size_t i,
                                              core::Result<std::vector<core::Entry>> answer);

 private:
  struct Held {
    core::NightscoutSite site;  // the url, token and api_secret it was read with
    std::vector<core::Entry> entries;
    bool valid = false;
    bool incremental = false;  // the last request was
    bool ever = false;
    unsigned since_full = 0;
  };
  std::vector<Held> held_;
};

// The history of `site` between `from` and `to` (inclusive), for `scout replay`: GET
// {url}/api/v1/entries/sgv.json?find[date][$gte]=FROM&find[date][$lte]=TO&count=k_history_page,
// paged downwards (the next page's $lte is the oldest date seen minus 1 ms) until a page comes
// back short or k_history_max_pages pages were read. Newest first, duplicates dropped. Errors as
// fetch_all's.
inline constexpr int k_history_page = 2000;
inline constexpr int k_history_max_pages = 50;  // 100,000 readings: a year at 5 minutes
[[nodiscard]] core::Result<std::vector<core::Entry>> fetch_history(const core::NightscoutSite& site,
                                                                   core::TimePoint from,
                                                                   core::TimePoint to,
                                                                   core::Duration timeout);

// What GET {url}/api/v1/verifyauth says of the site's credentials (protocols.md §1.5,
// lib/api/verifyauth.js; Nightscout 15 nests it as {"status":200,"message":{...}}, a flat
// object is read too): message "OK" when the token or api-secret was accepted,
// "UNAUTHORIZED" when it was not (or none was given). A public site (AUTH_DEFAULT_ROLES
// readable) serves entries to anyone, so only this tells a wrong token apart. A 401/403 answer
// is {false, false, "UNAUTHORIZED"}. Errors: network, timeout, http_status, not_json.
struct VerifyAuth {
  bool can_read = false;
  bool is_admin = false;
  std::string message;
};
[[nodiscard]] core::Result<VerifyAuth> verify_auth(const core::NightscoutSite& site,
                                                   core::Duration timeout);

}  // namespace scout::adapters
