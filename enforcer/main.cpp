// Thin entry point: everything lives in the library so the tests can link it.
#include "enforcer/cli.h"

int main(int argc, char** argv) {
  return drawbridge::run_cli(argc, argv);
}
