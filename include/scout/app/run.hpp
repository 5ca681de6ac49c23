#pragma once
// `scout run` and `scout notify` (SPEC §1, §4–§7).
#include <ostream>
#include <string>

namespace scout::app {

struct RunOptions {
  std::string config_path;  // "" = SPEC §1 lookup
  std::string state_path;   // "" = config.state_file
  bool once = false;        // cron mode: one tick, no listener, then exit
};

// The service. Loads the config (invalid: problems on stderr, exit 78) and the state (corrupt:
// moved aside, error logged, clean start), starts the webhook listener when configured (not with
// --once), then loops: every poll.interval all patients are polled at once and evaluated, the
// machine runs, calls and SMS go out through the providers on worker threads; between polls it
// wakes when a step, repeat or snooze is due, and (without a listener) every 5 s while calls are
// in flight to poll their status. systemd: READY=1 after the first tick, then WATCHDOG=1 every 10 s
// (NOTIFY_SOCKET). SIGTERM/SIGINT: the tick in flight finishes, outstanding provider requests
// complete, the state is saved, exit 0. Exit codes: 0, 64 usage, 78 config, 1 other fatal
// (state file unusable, listener cannot bind).
// `console_out` receives the console provider's lines.
int run_service(const RunOptions& options, std::ostream& console_out);

struct NotifyOptions {
  std::string config_path;
  std::string to;       // E.164
  std::string channel;  // call | sms
  std::string text;     // "" = a default test sentence
  std::string provider; // "" = the configured chain in order; else only providers of this type
                        // (vonage | twilio | console), so each one is proven on its own
};

// Places one test call or SMS through the configured providers (in order, with fail-over), so a
// user can prove the credentials work. Prints which provider accepted it and its id. Exit 0 when
// a provider accepted it, 1 when every provider failed, 64 bad --to/--channel, 78 bad config.
int run_notify(const NotifyOptions& options, std::ostream& out, std::ostream& console_out);

// Sends `state` ("READY=1", "WATCHDOG=1", "STOPPING=1") to $NOTIFY_SOCKET (sd_notify(3) wire
// protocol: one datagram on an AF_UNIX socket; '@' = abstract namespace). No-op without it.
void sd_notify_send(const std::string& state);

}  // namespace scout::app
