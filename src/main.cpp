// scout: the executable is the scout_app library plus this main() (ninja's layering).
#include <exception>
#include <iostream>

#include "scout/app/cli.hpp"

#ifdef SCOUT_MIMALLOC
#include <mimalloc.h>
#endif

int main(int argc, char** argv) {
#ifdef SCOUT_MIMALLOC
  // mimalloc serves every malloc of the process once it is linked (CMakeLists.txt); naming one
  // of its functions keeps a linker that drops unused libraries (--as-needed) from dropping it.
  static_cast<void>(mi_version());
#endif
  try {
    return scout::app::run_cli(argc, argv);
  } catch (const std::exception& e) {
    // The single catch-all (STYLE.md C5): anything that reaches here is a bug or an
    // unrecoverable environment failure.
    std::cerr << "scout: fatal: " << e.what() << "\n";
    return scout::app::k_exit_fatal;
  } catch (...) {
    std::cerr << "scout: fatal: unknown error\n";
    return scout::app::k_exit_fatal;
  }
}
