#pragma once
// `scout validate` (SPEC §1): parse and check the config, print every problem as
// FILE:LINE:COL: message.

#include <iosfwd>
#include <string>

namespace scout::app {

// Returns 0 for a valid config (and prints a one-line summary to `out`), 78 otherwise (every
// problem on `err`, one per line).
int run_validate(const std::string& config_path, std::ostream& out, std::ostream& err);

}  // namespace scout::app
