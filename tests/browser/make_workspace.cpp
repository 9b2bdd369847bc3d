// Writes the tiny scenario workspace that the browser test (scripts/browser_test.sh) labels:
//   defuse_make_annotate_workspace DIR [SCENARIOS]
#include <cstdlib>
#include <exception>
#include <iostream>

#include "support/scenario_support.h"

int main(int argc, char** argv) {
  if (argc < 2 || argc > 3) {
    std::cerr << "usage: " << argv[0] << " DIR [SCENARIOS]\n";
    return 2;
  }
  try {
    defuse::test::ScenarioWorkspaceOptions options;
    if (argc == 3) options.scenarios = std::atoi(argv[2]);
    auto set = defuse::test::make_scenario_workspace(argv[1], options);
    std::cout << set.scenarios.size() << " scenarios in " << argv[1] << "\n";
    return 0;
  } catch (const std::exception& e) {
    std::cerr << argv[0] << ": " << e.what() << "\n";
    return 1;
  }
}
