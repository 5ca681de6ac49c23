#pragma once
// The one place scout reads the wall clock (std::chrono::system_clock, to the millisecond).
// app::SystemClock is the seam the Service uses; the adapters that need the real time for a
// protocol (JWT iat/exp of Vonage, checking a signed webhook's iat, the suffix of a corrupt
// state file) call this too. Thread-safe.
#include "scout/core/units.hpp"

namespace scout::adapters {

core::TimePoint wall_clock_now();

}  // namespace scout::adapters
