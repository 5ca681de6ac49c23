#include "scout/app/cli.hpp"

#include <cstring>
#include <exception>
#include <iostream>
#include <string>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include "scout/app/check.hpp"
#include "scout/app/control.hpp"
#include "scout/app/drill.hpp"
#include "scout/app/logging.hpp"
#include "scout/app/replay.hpp"
#include "scout/app/run.hpp"
#include "scout/app/validate.hpp"

#ifndef SCOUT_VERSION
#define SCOUT_VERSION "0.0.0"
#endif

namespace scout::app {

namespace {

// The first word of argv that is not an option: the subcommand the user meant, even when
// parsing fails before CLI11 selects it.
std::string subcommand_word(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (argv[i][0] != '-') return argv[i];
    // Global options that take a value: skip it.
    if (std::strcmp(argv[i], "--log-level") == 0 || std::strcmp(argv[i], "--log-format") == 0) {
      ++i;
    }
  }
  return "";
}

}  // namespace

int run_cli(int argc, char** argv) {
  CLI::App app{"scout: watches glucose through Nightscout and wakes someone up when it matters"};
  app.set_version_flag("--version", std::string("scout ") + SCOUT_VERSION);
  app.require_subcommand(1);
  app.fallthrough();

  std::string log_level = "info";
  std::string log_format = "text";
  app.add_option("--log-level", log_level, "trace|debug|info|warn|error")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}));
  app.add_option("--log-format", log_format, "text|json")->check(CLI::IsMember({"text", "json"}));

  int result = k_exit_ok;
  // Every subcommand starts by setting up logging from the global options.
  const auto start_logging = [&] {
    if (auto status = configure_logging(log_level, log_format); !status) {
      throw CLI::ValidationError(status.error().message);
    }
  };

  CheckOptions check;
  std::optional<double> check_sgv_value;
  auto* check_cmd = app.add_subcommand(
      "check", "one-shot dry run: poll every patient once and say what scout would do");
  check_cmd->add_option("--config", check.config_path, "config file");
  check_cmd->add_option("--patient", check.patient, "only this patient");
  check_cmd->add_option("--format", check.format, "text|json")
      ->check(CLI::IsMember({"text", "json"}));
  auto* sgv_opt = check_cmd->add_option(
      "--sgv", check_sgv_value, "evaluate a simulated fresh reading (in the config's units)");
  check_cmd->add_option("--direction", check.direction, "trend of the simulated reading")
      ->needs(sgv_opt);
  check_cmd->callback([&] {
    start_logging();
    check.sgv = check_sgv_value;
    result = run_check(check, std::cout, std::cerr);
  });

  std::string validate_config;
  bool validate_online = false;
  auto* validate_cmd = app.add_subcommand("validate", "check the config and print every problem");
  validate_cmd->add_option("--config", validate_config, "config file");
  validate_cmd->add_flag("--online", validate_online,
                         "also ask every Nightscout and provider whether the credentials work "
                         "(no call is placed)");
  validate_cmd->callback([&] {
    start_logging();
    result = run_validate(validate_config, std::cout, std::cerr, validate_online);
  });

  RunOptions run;
  auto* run_cmd = app.add_subcommand(
      "run", "the service: poll, raise alarms, call and text, listen for call webhooks");
  run_cmd->add_option("--config", run.config_path, "config file");
  run_cmd->add_option("--state", run.state_path, "state file (default: the config's state_file)");
  run_cmd->add_flag("--once", run.once, "run exactly one tick and exit (cron mode)");
  run_cmd->callback([&] {
    start_logging();
    result = run_service(run, std::cout);
  });

  NotifyOptions notify;
  auto* notify_cmd = app.add_subcommand(
      "notify", "place one test call or SMS through the configured providers");
  notify_cmd->add_option("--config", notify.config_path, "config file");
  notify_cmd->add_option("--to", notify.to, "E.164 number, e.g. +14155550100")->required();
  notify_cmd->add_option("--channel", notify.channel, "call|sms")->required();
  notify_cmd->add_option("--text", notify.text, "what to say or write");
  notify_cmd->add_option("--provider", notify.provider,
                         "only this provider type (vonage|twilio|console), to prove each one");
  notify_cmd->callback([&] {
    start_logging();
    result = run_notify(notify, std::cout, std::cout);
  });

  ReplayOptions replay;
  auto* replay_cmd = app.add_subcommand(
      "replay", "what-if: run scout on a simulated clock over a patient's history");
  replay_cmd->add_option("--config", replay.config_path, "config file");
  replay_cmd->add_option("--patient", replay.patient, "the patient (needed with several)");
  replay_cmd->add_option("--from", replay.from, "start: 2026-11-20, 2026-11-20T22:00 or -14d");
  replay_cmd->add_option("--to", replay.to, "end (default: now)");
  replay_cmd->add_option("--entries", replay.entries_file,
                         "a Nightscout entries export (JSON array) instead of --from/--to");
  replay_cmd->add_option("--answer", replay.answer,
                         "who answers how: patient=never,Bob=ack,Carol=noack (also machine, "
                         "busy; *=... for everyone else; default: nobody answers)");
  replay_cmd->add_option("--format", replay.format, "text|json")
      ->check(CLI::IsMember({"text", "json"}));
  replay_cmd->callback([&] {
    start_logging();
    result = run_replay(replay, std::cout, std::cerr);
  });

  StatusOptions status;
  auto* status_cmd = app.add_subcommand(
      "status", "what the running service knows: readings, alarms, snoozes, calls in flight");
  status_cmd->add_option("--config", status.config_path, "config file");
  status_cmd->add_option("--state", status.state_path, "state file (default: the config's)");
  status_cmd->add_option("--format", status.format, "text|json")
      ->check(CLI::IsMember({"text", "json"}));
  status_cmd->callback([&] {
    start_logging();
    result = run_status(status, std::cout, std::cerr);
  });

  // ack / snooze / unsnooze: one request each through the command spool (SPEC §4.13).
  CommandOptions command;
  const auto add_command = [&](const char* name, const char* help,
                               core::ShellCommand::Kind kind) {
    auto* cmd = app.add_subcommand(name, help);
    cmd->add_option("--config", command.config_path, "config file");
    cmd->add_option("--state", command.state_path, "state file (default: the config's)");
    cmd->add_option("PATIENT", command.patient, "the patient, as named in the config")
        ->required();
    if (kind == core::ShellCommand::Kind::snooze) {
      cmd->add_option("DURATION", command.duration, "e.g. 30m, 2h (at most 24h)")->required();
    }
    if (kind == core::ShellCommand::Kind::ack) {
      cmd->add_option("--by", command.by, "who acknowledges (default: the shell user)");
    } else {
      cmd->add_option("--by", command.by, "who asks (default: the shell user)");
    }
    if (kind != core::ShellCommand::Kind::ack) {
      cmd->add_option("--kind", command.only,
                      "only alarms of this kind (urgent_low, low, high, stale, ...) or class "
                      "(glucose, data)");
    }
    cmd->add_option("--wait", command.wait_s,
                    "seconds to wait for the running service's answer (default 5)");
    cmd->callback([&, kind] {
      start_logging();
      command.kind = kind;
      result = run_command(command, std::cout, std::cerr);
    });
  };
  add_command("ack", "acknowledge a patient's active alarms, as pressing 1 would",
              core::ShellCommand::Kind::ack);
  add_command("snooze", "silence a patient's active alarms for a while",
              core::ShellCommand::Kind::snooze);
  add_command("unsnooze", "end a patient's snooze: escalation resumes at once",
              core::ShellCommand::Kind::unsnooze);

  LogOptions log;
  auto* log_cmd = app.add_subcommand("log", "the journal as a human timeline");
  log_cmd->add_option("--config", log.config_path, "config file");
  log_cmd->add_option("--since", log.since,
                      "from when: 'yesterday 22:00', 22:00, -8h, 2026-11-30 (default: -24h)");
  log_cmd->add_option("--patient", log.patient, "only this patient");
  log_cmd->add_option("--format", log.format, "text|json")->check(CLI::IsMember({"text", "json"}));
  log_cmd->callback([&] {
    start_logging();
    result = run_log(log, std::cout, std::cerr);
  });

  DrillOptions drill;
  auto* drill_cmd = app.add_subcommand(
      "drill", "a fire drill: the patient's whole urgent escalation for real, saying it is a test");
  drill_cmd->add_option("--config", drill.config_path, "config file");
  drill_cmd->add_option("PATIENT", drill.patient, "the patient, as named in the config")->required();
  drill_cmd->callback([&] {
    start_logging();
    result = run_drill(drill, std::cout, std::cerr);
  });

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    if (code == 0) return k_exit_ok;  // --help, --version
    const std::string word = subcommand_word(argc, argv);
    return word == "check" || word == "status" ? exit_code(CheckStatus::unknown) : k_exit_usage;
  }
  return result;
}

}  // namespace scout::app
