#pragma once
// `scout validate` (SPEC §1): parse and check the config, print every problem as
// FILE:LINE:COL: message.

#include <iosfwd>
#include <string>

namespace scout::app {

// Returns 0 for a valid config (and prints a one-line summary to `out`), 78 otherwise (every
// problem on `err`, one per line). With `online` (validate --online) it also asks every
// Nightscout once (reachable; with a token or api_secret, GET /api/v1/verifyauth must say OK,
// since a public site serves readings even to a wrong token; the newest usable reading, a
// warning when older than stale.warn) and every provider once with a read-only request that
// needs the call credentials (Vonage GET /v1/calls, Twilio GET Calls.json); nothing is placed
// or sent. Any online problem exits 78 too.
int run_validate(const std::string& config_path, std::ostream& out, std::ostream& err,
                 bool online = false);

}  // namespace scout::app
