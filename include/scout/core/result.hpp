#pragma once
// Errors as values (STYLE.md C5): expected failures are Result<T>; exceptions stop at the
// adapter boundary and main() has the single catch-all.

#include <string>
#include <utility>

#include <tl/expected.hpp>

namespace scout::core {

// What went wrong, coarse enough for a caller to act on.
enum class ErrorKind {
  config,          // the configuration is invalid (EX_CONFIG, exit 78)
  usage,           // the command line is wrong (exit 64)
  auth,            // a remote answered 401/403: wrong token or secret
  http_status,     // a remote answered another non-2xx status
  timeout,         // a request exceeded its time limit
  network,         // DNS, connect, TLS or transfer failure
  not_json,        // a remote answered a non-JSON body (e.g. an HTML error page)
  malformed_json,  // the body was JSON-like but did not parse or had the wrong shape
  io,              // a local file could not be read or written
  internal,        // a bug: an invariant did not hold
};

// Returns the lower-case name of `kind` ("auth", "timeout", ...), as used in JSON output.
const char* to_string(ErrorKind kind);

// An expected failure. `message` is already redacted: it never carries a token or secret.
struct Error {
  ErrorKind kind = ErrorKind::internal;
  std::string message;
  bool operator==(const Error&) const = default;
};

template <typename T>
using Result = tl::expected<T, Error>;
using Status = Result<void>;

inline tl::unexpected<Error> fail(ErrorKind kind, std::string message) {
  return tl::make_unexpected(Error{kind, std::move(message)});
}

}  // namespace scout::core
