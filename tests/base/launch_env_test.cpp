#include "defuse/base/launch_env.h"

#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <sstream>

#include "defuse/base/error.h"
#include "defuse/base/local_launch.h"
#include "support/test_support.h"

namespace defuse {
namespace {

LaunchEnv from(const std::map<std::string, std::string>& vars) {
  return launch_env_from([&](const char* name) -> const char* {
    auto it = vars.find(name);
    return it == vars.end() ? nullptr : it->second.c_str();
  });
}

TEST(LaunchEnv, NoVariablesIsOneProcess) {
  auto e = from({});
  EXPECT_FALSE(e.distributed());
  EXPECT_EQ(e.rank, 0);
  EXPECT_EQ(e.world_size, 1);
  EXPECT_EQ(e.source, "none");
}

TEST(LaunchEnv, ReadsTorchrunsVariables) {
  auto e = from({{"RANK", "3"},
                 {"WORLD_SIZE", "8"},
                 {"LOCAL_RANK", "1"},
                 {"LOCAL_WORLD_SIZE", "2"},
                 {"MASTER_ADDR", "10.0.0.7"},
                 {"MASTER_PORT", "29400"},
                 {"TORCHELASTIC_USE_AGENT_STORE", "True"},
                 {"TORCHELASTIC_RESTART_COUNT", "2"}});
  EXPECT_TRUE(e.distributed());
  EXPECT_EQ(e.rank, 3);
  EXPECT_EQ(e.world_size, 8);
  EXPECT_EQ(e.local_rank, 1);
  EXPECT_EQ(e.local_world_size, 2);
  EXPECT_EQ(e.master_addr, "10.0.0.7");
  EXPECT_EQ(e.master_port, 29400);
  EXPECT_TRUE(e.agent_store);
  EXPECT_EQ(e.restart_count, "2");
  EXPECT_EQ(e.source, "env");
}

TEST(LaunchEnv, SlurmStandsInForUnsetVariables) {
  auto e = from({{"SLURM_PROCID", "5"},
                 {"SLURM_NTASKS", "6"},
                 {"SLURM_LOCALID", "2"},
                 {"SLURM_NTASKS_PER_NODE", "3"},
                 {"MASTER_ADDR", "node1"}});
  EXPECT_EQ(e.source, "slurm");
  EXPECT_EQ(e.rank, 5);
  EXPECT_EQ(e.world_size, 6);
  EXPECT_EQ(e.local_rank, 2);
  EXPECT_EQ(e.local_world_size, 3);
  // RANK and WORLD_SIZE win over Slurm's.
  auto both = from({{"SLURM_PROCID", "5"}, {"SLURM_NTASKS", "6"}, {"RANK", "0"}, {"WORLD_SIZE", "1"}});
  EXPECT_EQ(both.source, "env");
  EXPECT_FALSE(both.distributed());
}

TEST(LaunchEnv, BadValuesNameTheVariable) {
  auto message = [](const std::map<std::string, std::string>& vars) {
    return test::error_message<ConfigError>([&] { from(vars); });
  };
  EXPECT_TRUE(test::contains(message({{"RANK", "1"}}), "$RANK is set but $WORLD_SIZE is not"));
  EXPECT_TRUE(test::contains(message({{"RANK", "x"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "h"}}), "$RANK is 'x'"));
  EXPECT_TRUE(test::contains(message({{"RANK", "2"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "h"}}), "from 0 to 1"));
  EXPECT_TRUE(test::contains(message({{"RANK", "0"}, {"WORLD_SIZE", "2"}}), "$MASTER_ADDR is not set"));
  EXPECT_TRUE(test::contains(
      message({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "h"}, {"MASTER_PORT", "70000"}}), "$MASTER_PORT"));
  EXPECT_THROW(from({{"RANK", "0"}, {"WORLD_SIZE", "0"}}), ConfigError);
}

TEST(LocalLaunch, StartsEveryRankWithItsVariablesAndReportsAFailure) {
  test::TempDir dir;
  const auto script = dir.path() / "rank.sh";
  // Each rank writes its variables; rank 1 fails.
  test::write_file(script,
                   std::string("#!/bin/sh\necho \"$RANK $WORLD_SIZE $LOCAL_RANK $MASTER_ADDR $OMP_NUM_THREADS\" > ") +
                       dir.path().string() + "/rank-$RANK\n[ \"$RANK\" = 1 ] && exit 3\nexit 0\n");
  std::filesystem::permissions(script, std::filesystem::perms::owner_all);
  LocalLaunch launch;
  launch.executable = script.string();
  launch.argv = {script.string()};
  launch.nproc = 3;
  launch.threads_per_rank = 2;
  std::ostringstream err;
  EXPECT_EQ(launch_local_ranks(launch, err), 3);
  for (int r = 0; r < 3; ++r) {
    std::ifstream in(dir.path() / ("rank-" + std::to_string(r)));
    std::string line;
    std::getline(in, line);
    EXPECT_EQ(line, std::to_string(r) + " 3 " + std::to_string(r) + " 127.0.0.1 2");
  }
  EXPECT_GT(free_local_port(), 0);
}

}  // namespace
}  // namespace defuse
