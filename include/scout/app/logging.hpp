#pragma once
// Logging set-up for every command (SPEC §1 global options, §6): spdlog to stderr, text or one
// JSON object per line. Callers never log secrets and mask phone numbers (core/redact.hpp).

#include <string>
#include <utility>
#include <vector>

#include <spdlog/common.h>

#include "scout/core/result.hpp"

namespace scout::app {

// Configures the default spdlog logger: `level` is trace|debug|info|warn|error, `format` is
// text|json. Errors: ErrorKind::usage naming the bad value.
// Text lines carry the syslog priority prefix ("<4>warn ...", sd-daemon(3)) instead of a time
// stamp when JOURNAL_STREAM is set (stderr is the journal, SPEC §6).
[[nodiscard]] core::Status configure_logging(const std::string& level, const std::string& format);

// Logs `message` with key/value fields: in text as `message key=value key="two words"`, in JSON
// as {"time","level","msg": message, key: value, ...} (each field its own key, SPEC §6; a field
// named time, level or msg is left out). Thread-safe.
void log_fields(spdlog::level::level_enum level, const std::string& message,
                const std::vector<std::pair<std::string, std::string>>& fields);

}  // namespace scout::app
