// The Catch2 v2 runner for every scout test binary.
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
