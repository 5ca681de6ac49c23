// An LD_PRELOAD shim for the crash-point tests (tests/integration/test_crash_points.cpp): the
// process that loads it is killed with SIGKILL right after its Nth fsync() returns, where N is
// SCOUT_TEST_KILL_AT_FSYNC (unset or 0: never). Every state save of scout is two fsyncs (the
// temp file, then the directory after the rename), so N walks through every save point: odd N
// dies with the new state written but not renamed into place, even N with it committed. Test
// support only; never linked into scout.
#include <dlfcn.h>
#include <signal.h>

#include <atomic>
#include <cstdlib>

namespace {

int kill_target() {
  static const int target = [] {
    const char* text = std::getenv("SCOUT_TEST_KILL_AT_FSYNC");
    return text != nullptr ? std::atoi(text) : 0;
  }();
  return target;
}

std::atomic<int> g_calls{0};

}  // namespace

extern "C" int fsync(int fd) {
  using Fsync = int (*)(int);
  static const auto real = reinterpret_cast<Fsync>(dlsym(RTLD_NEXT, "fsync"));
  const int result = real(fd);
  const int n = ++g_calls;
  if (kill_target() > 0 && n == kill_target()) raise(SIGKILL);
  return result;
}
