#pragma once
// Logging set-up for every command (SPEC §1 global options, §6): spdlog to stderr, text or one
// JSON object per line. Callers never log secrets and mask phone numbers (core/redact.hpp).

#include <string>

#include "scout/core/result.hpp"

namespace scout::app {

// Configures the default spdlog logger: `level` is trace|debug|info|warn|error, `format` is
// text|json. Errors: ErrorKind::usage naming the bad value.
[[nodiscard]] core::Status configure_logging(const std::string& level, const std::string& format);

}  // namespace scout::app
