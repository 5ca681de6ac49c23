#pragma once
// The command line (SPEC §1): subcommands, global options and exit codes.

namespace scout::app {

// Exit codes of SPEC §1 for `run` and `validate` (sysexits.h values).
inline constexpr int k_exit_ok = 0;
inline constexpr int k_exit_fatal = 1;
inline constexpr int k_exit_usage = 64;   // EX_USAGE
inline constexpr int k_exit_config = 78;  // EX_CONFIG

// Parses argv and runs the chosen subcommand; returns the process exit code. A usage error is
// 64, except for `check`, which follows the monitoring-plugins convention (3, UNKNOWN).
// Never throws.
int run_cli(int argc, char** argv);

}  // namespace scout::app
