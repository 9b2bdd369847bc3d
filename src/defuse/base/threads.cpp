#include "defuse/base/threads.h"

#include <omp.h>

#include <algorithm>

namespace defuse {

int resolve_threads(int threads) { return threads > 0 ? threads : std::max(1, omp_get_max_threads()); }

void blas_on_this_thread() { omp_set_num_threads(1); }

}  // namespace defuse
