// Thin entry point: everything lives in the library so the tests can link it.
#include "controller/cli.h"

int main(int argc, char** argv) {
  return drawbridge::run_controller_cli(argc, argv);
}
