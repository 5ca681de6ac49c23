#include "scout/core/result.hpp"

namespace scout::core {

const char* to_string(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::config:
      return "config";
    case ErrorKind::usage:
      return "usage";
    case ErrorKind::auth:
      return "auth";
    case ErrorKind::http_status:
      return "http_status";
    case ErrorKind::timeout:
      return "timeout";
    case ErrorKind::network:
      return "network";
    case ErrorKind::not_json:
      return "not_json";
    case ErrorKind::malformed_json:
      return "malformed_json";
    case ErrorKind::io:
      return "io";
    case ErrorKind::internal:
      return "internal";
  }
  return "invalid";
}

}  // namespace scout::core
