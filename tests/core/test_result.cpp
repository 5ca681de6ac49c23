// Specification of scout/core/result.hpp: error kinds have stable lower-case names, used in JSON.

#include <string>

#include <catch2/catch.hpp>

#include "scout/core/result.hpp"

using scout::core::ErrorKind;

TEST_CASE("every error kind has its lower-case name", "[core][result]") {
  const auto [kind, name] = GENERATE(table<ErrorKind, std::string>({
      {ErrorKind::config, "config"},
      {ErrorKind::usage, "usage"},
      {ErrorKind::auth, "auth"},
      {ErrorKind::http_status, "http_status"},
      {ErrorKind::timeout, "timeout"},
      {ErrorKind::network, "network"},
      {ErrorKind::not_json, "not_json"},
      {ErrorKind::malformed_json, "malformed_json"},
      {ErrorKind::io, "io"},
      {ErrorKind::internal, "internal"},
  }));
  CHECK(std::string(to_string(kind)) == name);
}

TEST_CASE("fail() builds an unexpected Result carrying the kind and message", "[core][result]") {
  const scout::core::Result<int> r = scout::core::fail(ErrorKind::timeout, "took too long");
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error() == scout::core::Error{ErrorKind::timeout, "took too long"});
}
