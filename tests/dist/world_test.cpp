// The c10d/Gloo group: collectives between ranks on threads of one process (an in-process
// store), the data-parallel shard arithmetic, and a C++ rank in one group with a Python rank
// (python3-torch's init_process_group("gloo", "env://")).
#include "defuse/dist/world.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdlib>
#include <fstream>
#include <thread>

#include "defuse/base/local_launch.h"
#include "defuse/dist/data_parallel.h"
#include "support/test_support.h"

namespace defuse::dist {
namespace {

// Runs `body(world)` on `size` ranks, each on its own thread with its world current.
void on_ranks(int size, const std::function<void(World&)>& body) {
  auto store = make_local_store();
  std::vector<std::thread> threads;
  std::vector<std::string> errors(static_cast<size_t>(size));
  for (int r = 0; r < size; ++r)
    threads.emplace_back([&, r] {
      try {
        InitOptions o;
        o.timeout = std::chrono::seconds(30);
        ::setenv("GLOO_SOCKET_IFNAME", "lo", 0);
        auto world = init_world_on_store(store, r, size, o);
        ScopedWorld scope(world.get());
        body(*world);
      } catch (const std::exception& e) {
        errors[static_cast<size_t>(r)] = e.what();
      }
    });
  for (auto& t : threads) t.join();
  for (int r = 0; r < size; ++r) EXPECT_EQ(errors[static_cast<size_t>(r)], "") << "rank " << r;
}

TEST(World, CollectivesBetweenThreeRanks) {
  on_ranks(3, [](World& w) {
    EXPECT_EQ(current_size(), 3);
    EXPECT_EQ(current_rank(), w.rank());
    auto t = torch::full({4}, static_cast<float>(w.rank() + 1));
    std::vector<at::Tensor> list{t, torch::ones({2})};
    w.allreduce_sum(list);
    EXPECT_TRUE(torch::equal(list[0], torch::full({4}, 6.0f)));
    EXPECT_TRUE(torch::equal(list[1], torch::full({2}, 3.0f)));
    auto b = w.is_root() ? torch::arange(5, torch::kLong) : torch::zeros({5}, torch::kLong);
    w.broadcast(b);
    EXPECT_TRUE(torch::equal(b, torch::arange(5, torch::kLong)));
    EXPECT_EQ(w.broadcast_bytes(w.is_root() ? std::string("from rank 0") : std::string("ignored")), "from rank 0");
    auto all = w.allgather_bytes(std::string(static_cast<size_t>(w.rank()), 'x'));
    ASSERT_EQ(all.size(), 3u);
    EXPECT_EQ(all[0], "");
    EXPECT_EQ(all[2], "xx");
    auto tensors = unpack_tensors(pack_tensors({torch::ones({2, 3}), torch::arange(3)}));
    ASSERT_EQ(tensors.size(), 2u);
    EXPECT_TRUE(torch::equal(tensors[1], torch::arange(3)));
    EXPECT_TRUE(unpack_tensors(pack_tensors({})).empty());
    w.barrier();
  });
  EXPECT_EQ(current_world(), nullptr);
  EXPECT_EQ(current_size(), 1);
}

TEST(DataParallel, ShardsCoverTheBatchAndGradientsSum) {
  for (int64_t rows : {0, 1, 7, 128}) {
    int64_t next = 0;
    for (int r = 0; r < 3; ++r) {
      auto [b, e] = shard_range(rows, r, 3);
      EXPECT_EQ(b, next);
      EXPECT_LE(e - b, rows / 3 + 1);
      next = e;
    }
    EXPECT_EQ(next, rows);
  }
  on_ranks(2, [](World& w) {
    // Rank 0's initial weights reach every rank; the summed shard gradients are the batch's.
    torch::manual_seed(100 + w.rank());
    torch::nn::Linear lin(3, 2);
    DataParallel parallel(*lin);
    std::vector<at::Tensor> params = lin->parameters();
    auto x = torch::arange(12, torch::kFloat32).view({4, 3}) / 10.0;
    auto [s0, s1] = shard_range(4);
    auto loss = lin->forward(x.slice(0, s0, s1)).pow(2).sum() / 4.0;
    loss.backward();
    std::vector<double> stats{static_cast<double>(s1 - s0)};
    parallel.sync_gradients(stats);
    EXPECT_EQ(stats[0], 4.0);
    // The whole batch on this rank, from the same (broadcast) weights.
    auto w0 = params[0].detach().clone().requires_grad_(true), b0 = params[1].detach().clone().requires_grad_(true);
    (torch::nn::functional::linear(x, w0, b0).pow(2).sum() / 4.0).backward();
    EXPECT_TRUE(torch::allclose(params[0].grad(), w0.grad(), 1e-5, 1e-6));
    EXPECT_TRUE(torch::allclose(params[1].grad(), b0.grad(), 1e-5, 1e-6));
    EXPECT_GT(parallel.bytes_sent(), 0);
  });
}

// A C++ rank (rank 0, hosting the store) and a Python rank allreduce together.
TEST(World, JoinsAGroupWithAPythonRank) {
  if (std::system("/usr/bin/python3 -c 'import torch.distributed' > /dev/null 2>&1") != 0)
    GTEST_SKIP() << "python3-torch is not installed: the C++/Python group is not tested";
  test::TempDir dir;
  const int port = free_local_port();
  const auto script = dir.path() / "peer.py";
  test::write_file(script, std::string(R"(import torch, torch.distributed as dist
dist.init_process_group("gloo", init_method="env://")
t = torch.tensor([10.0, 20.0])
dist.all_reduce(t)
b = torch.zeros(3, dtype=torch.int64)
dist.broadcast(b, 0)
print(t.tolist(), b.tolist(), dist.get_rank(), dist.get_world_size(), flush=True)
dist.destroy_process_group()
)"));
  const auto out = dir.path() / "peer.out";
  const std::string command = "RANK=1 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=" + std::to_string(port) +
                              " GLOO_SOCKET_IFNAME=lo timeout 60 /usr/bin/python3 " + script.string() + " > " +
                              out.string() + " 2>&1 &";
  ASSERT_EQ(std::system(command.c_str()), 0);
  LaunchEnv env;
  env.rank = 0;
  env.world_size = 2;
  env.master_addr = "127.0.0.1";
  env.master_port = port;
  ::setenv("GLOO_SOCKET_IFNAME", "lo", 0);
  InitOptions o;
  o.timeout = std::chrono::seconds(60);
  auto world = init_world(env, o);
  std::vector<at::Tensor> t{torch::tensor({1.0f, 2.0f})};
  world->allreduce_sum(t);
  EXPECT_TRUE(torch::equal(t[0], torch::tensor({11.0f, 22.0f})));
  auto b = torch::tensor({7, 8, 9}, torch::kLong);
  world->broadcast(b);
  world.reset();
  std::string line;
  for (int i = 0; i < 300 && line.empty(); ++i) {
    std::ifstream in(out);
    std::getline(in, line);
    if (line.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(line, "[11.0, 22.0] [7, 8, 9] 1 2");
}

}  // namespace
}  // namespace defuse::dist
