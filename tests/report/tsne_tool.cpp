// defuse_tsne_tool: runs defuse::tsne on a table of points, for scripts/bench_tsne.py.
//   defuse_tsne_tool POINTS.{npy,csv} OUT.npy [--method auto|exact|barnes_hut]
//       [--perplexity P] [--iterations N] [--theta T] [--init pca|random|INIT.npy] [--seed S]
//       [--threads T]
// Writes the embedding [N, 2] as .npy and prints one JSON line: seconds (tsne() only),
// affinity and optimisation seconds, KL divergence, iterations, method.
#include <chrono>
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>

#include <nlohmann/json.hpp>

#include "defuse/base/atomic_file.h"
#include "defuse/base/error.h"
#include "defuse/distill/points_io.h"
#include "defuse/report/tsne.h"

int main(int argc, char** argv) {
  try {
    if (argc < 3) {
      std::fprintf(stderr,
                   "usage: %s POINTS OUT.npy [--method M] [--perplexity P] [--iterations N] [--theta T] "
                   "[--init I] [--seed S] [--threads T]\n",
                   argv[0]);
      return 2;
    }
    defuse::TsneOptions options;
    for (int i = 3; i + 1 < argc; i += 2) {
      const std::string flag = argv[i], value = argv[i + 1];
      if (flag == "--method")
        options.method = defuse::parse_tsne_method(value);
      else if (flag == "--perplexity")
        options.perplexity = std::stod(value);
      else if (flag == "--iterations")
        options.iterations = std::stoi(value);
      else if (flag == "--theta")
        options.theta = std::stod(value);
      else if (flag == "--init" && value.size() > 4 && value.substr(value.size() - 4) == ".npy") {
        options.init = defuse::TsneInit::kGiven;
        options.init_embedding = defuse::read_points(value).values;
      } else if (flag == "--init")
        options.init = defuse::parse_tsne_init(value);
      else if (flag == "--seed")
        options.seed = std::stoull(value);
      else if (flag == "--threads")
        options.threads = std::stoi(value);
      else
        throw defuse::ConfigError("unknown option " + flag);
    }
    const defuse::Points points = defuse::read_points(argv[1]);
    const auto start = std::chrono::steady_clock::now();
    const defuse::TsneResult r = defuse::tsne(points.values.data(), points.rows, points.cols, options);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    defuse::Points out{r.embedding, points.rows, 2};
    defuse::write_file_atomic(argv[2], defuse::points_npy_bytes(out));
    nlohmann::json j = {{"seconds", seconds},
                        {"affinity_seconds", r.affinity_seconds},
                        {"optimisation_seconds", r.optimisation_seconds},
                        {"kl_divergence", r.kl_divergence},
                        {"iterations", r.iterations},
                        {"method", defuse::to_string(r.method)},
                        {"perplexity", r.perplexity},
                        {"learning_rate", r.learning_rate}};
    std::printf("%s\n", j.dump().c_str());
    return 0;
  } catch (const defuse::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return e.exit_code();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
