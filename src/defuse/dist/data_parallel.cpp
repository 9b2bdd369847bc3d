#include "defuse/dist/data_parallel.h"

#include <torch/torch.h>

#include <chrono>

#include "defuse/base/timing.h"
#include "defuse/dist/world.h"

namespace defuse::dist {

std::pair<int64_t, int64_t> shard_range(int64_t rows, int rank, int size) {
  const int64_t base = rows / size, extra = rows % size;
  const int64_t begin = rank * base + std::min<int64_t>(rank, extra);
  return {begin, begin + base + (rank < extra ? 1 : 0)};
}

std::pair<int64_t, int64_t> shard_range(int64_t rows) { return shard_range(rows, current_rank(), current_size()); }

DataParallel::DataParallel(std::vector<at::Tensor> parameters, std::vector<at::Tensor> buffers)
    : buffers_(std::move(buffers)), size_(current_size()) {
  for (auto& p : parameters)
    if (p.requires_grad()) params_.push_back(p);
  World* world = current_world();
  if (!world || size_ <= 1) return;
  torch::NoGradGuard no_grad;
  // One flat buffer for parameters and buffers: one broadcast instead of one per tensor.
  std::vector<at::Tensor> state;
  for (auto& p : parameters) state.push_back(p);
  for (auto& b : buffers_) state.push_back(b);
  std::vector<at::Tensor> floats, others;
  for (auto& t : state) (t.is_floating_point() ? floats : others).push_back(t);
  if (!floats.empty()) {
    auto flat = torch::cat([&] {
      std::vector<at::Tensor> v;
      for (auto& t : floats) v.push_back(t.detach().to(torch::kCPU, torch::kFloat32).reshape(-1));
      return v;
    }());
    world->broadcast(flat, 0);
    int64_t offset = 0;
    for (auto& t : floats) {
      const int64_t n = t.numel();
      t.copy_(flat.slice(0, offset, offset + n).view(t.sizes()));
      offset += n;
    }
  }
  for (auto& t : others) {
    auto cpu = t.detach().to(torch::kCPU).contiguous();
    world->broadcast(cpu, 0);
    t.copy_(cpu);
  }
}

void DataParallel::sync_gradients(std::vector<double>& stats) {
  World* world = current_world();
  if (!world || size_ <= 1) return;
  const auto start = std::chrono::steady_clock::now();
  // Buckets of parameters in order, each flattened with (in the last one) the stats.
  std::vector<std::vector<size_t>> buckets(1);
  int64_t bytes = 0;
  for (size_t i = 0; i < params_.size(); ++i) {
    const int64_t b = params_[i].numel() * 4;
    if (bytes > 0 && bytes + b > bucket_bytes_) {
      buckets.emplace_back();
      bytes = 0;
    }
    buckets.back().push_back(i);
    bytes += b;
  }
  std::vector<at::Tensor> flats;
  for (size_t k = 0; k < buckets.size(); ++k) {
    std::vector<at::Tensor> parts;
    for (size_t i : buckets[k]) {
      auto& p = params_[i];
      parts.push_back(p.grad().defined() ? p.grad().detach().to(torch::kCPU, torch::kFloat32).reshape(-1)
                                         : torch::zeros({p.numel()}, torch::kFloat32));
    }
    if (k + 1 == buckets.size() && !stats.empty())
      parts.push_back(torch::tensor(std::vector<float>(stats.begin(), stats.end()), torch::kFloat32));
    flats.push_back(torch::cat(parts));
  }
  // The stats ride in the float32 buffer rather than a collective of their own: exact for
  // the hit counts, float32-rounded for the loss sums (which are only logged).
  world->allreduce_sum(flats);
  for (size_t k = 0; k < buckets.size(); ++k) {
    int64_t offset = 0;
    for (size_t i : buckets[k]) {
      auto& p = params_[i];
      const int64_t n = p.numel();
      auto summed = flats[k].slice(0, offset, offset + n).view(p.sizes());
      if (p.grad().defined())
        p.mutable_grad().copy_(summed);
      else
        p.mutable_grad() = summed.to(p.device(), p.scalar_type()).clone();
      offset += n;
    }
    if (k + 1 == buckets.size())
      for (size_t s = 0; s < stats.size(); ++s) stats[s] = flats[k][offset + static_cast<int64_t>(s)].item<double>();
    bytes_ += flats[k].numel() * 4;
  }
  seconds_ += seconds_since(start);
}

void DataParallel::sync_buffers() {
  World* world = current_world();
  if (!world || size_ <= 1) return;
  torch::NoGradGuard no_grad;
  std::vector<at::Tensor> floats, others;
  for (auto& b : buffers_) (b.is_floating_point() ? floats : others).push_back(b);
  if (!floats.empty()) {
    std::vector<at::Tensor> parts;
    for (auto& t : floats) parts.push_back(t.detach().to(torch::kCPU, torch::kFloat64).reshape(-1));
    std::vector<at::Tensor> flat{torch::cat(parts)};
    world->allreduce_sum(flat);
    flat[0].div_(size_);
    int64_t offset = 0;
    for (auto& t : floats) {
      const int64_t n = t.numel();
      t.copy_(flat[0].slice(0, offset, offset + n).view(t.sizes()));
      offset += n;
    }
  }
  for (auto& t : others) {
    auto cpu = t.detach().to(torch::kCPU).contiguous();
    world->broadcast(cpu, 0);
    t.copy_(cpu);
  }
}

}  // namespace defuse::dist
