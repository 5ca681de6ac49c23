#include "scout/adapters/wall_clock.hpp"

#include <chrono>

namespace scout::adapters {

core::TimePoint wall_clock_now() {
  return std::chrono::time_point_cast<std::chrono::milliseconds>(std::chrono::system_clock::now());
}

}  // namespace scout::adapters
