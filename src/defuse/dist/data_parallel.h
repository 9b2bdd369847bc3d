// Data-parallel training over the ranks of the current World (DESIGN §6): every rank holds
// the whole model, computes the gradient of its shard of each global batch, and one
// allreduce per step sums the shards' gradients, so a step sees the same global batch, the
// same schedule and the same number of steps as one process. Without a world (or with one
// rank) every function is a no-op and a shard is the whole batch.
//
// A shard's loss must be its share of the global mean (sum over the shard / global batch),
// so that the summed gradient is the gradient of the global batch's mean loss. Batch norm
// uses each shard's own statistics in the forward pass (as DistributedDataParallel does
// without SyncBatchNorm); its running statistics are averaged over the ranks at the end.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <utility>
#include <vector>

namespace defuse::dist {

// This rank's rows [begin, end) of a global batch of `rows`: contiguous, sizes differ by at
// most one, the first ranks take the extra rows.
std::pair<int64_t, int64_t> shard_range(int64_t rows, int rank, int size);
// The rows of the current world's rank.
std::pair<int64_t, int64_t> shard_range(int64_t rows);

class DataParallel {
 public:
  // A model's parameters and buffers (Classifier, Vae): sent from rank 0 to every rank at
  // once, so that every rank starts from rank 0's initialisation.
  DataParallel(std::vector<at::Tensor> parameters, std::vector<at::Tensor> buffers);
  template <class Model>
  explicit DataParallel(Model& model) : DataParallel(model.parameters(), model.buffers()) {}

  bool active() const { return size_ > 1; }

  // After backward: sums every parameter's gradient over the ranks (undefined gradients as
  // zeros), together with `stats` (figures such as this shard's loss sum and hit count,
  // summed in the same collective). In buckets of about `bucket_bytes`.
  void sync_gradients(std::vector<double>& stats);

  // Averages the floating-point buffers (batch-norm running statistics) over the ranks and
  // sets integer ones (batch counts) to rank 0's, so every rank ends with the same model.
  void sync_buffers();

  // Bytes and seconds spent in the gradient allreduce so far (this rank).
  int64_t bytes_sent() const { return bytes_; }
  double comm_seconds() const { return seconds_; }

 private:
  std::vector<at::Tensor> params_, buffers_;
  int size_ = 1;
  int64_t bytes_ = 0;
  double seconds_ = 0;
  int64_t bucket_bytes_ = 25 << 20;  // PyTorch DDP's default bucket cap
};

}  // namespace defuse::dist
