#include "support/test_support.h"

#include <matio.h>
#include <stdlib.h>
#include <zlib.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <stdexcept>

// stb_image_write's implementation is compiled into defuse_base (base/image_io.cpp); only
// its declarations are needed here, for JPEG files.
#include <stb_image_write.h>

namespace defuse::test {

namespace fs = std::filesystem;

TempDir::TempDir() {
  std::string pattern = (fs::temp_directory_path() / "defuse-test-XXXXXX").string();
  if (!::mkdtemp(pattern.data())) throw std::runtime_error("TempDir: mkdtemp failed");
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ignored;
  fs::remove_all(path_, ignored);
}

const fs::path& TempDir::path() const { return path_; }

fs::path shared_data_dir() {
  if (const char* env = std::getenv("DEFUSE_SHARED_DATA"); env && *env) return env;
  // The shared folder sits beside the repository. (Not derived from __FILE__: with ccache's
  // base directory the compiler sees a relative path.)
  return fs::path(DEFUSE_SOURCE_DIR).parent_path() / "shared" / "data";
}

Dataset make_toy_dataset(int64_t n_train, int64_t n_test, int64_t channels, int64_t height, int64_t width,
                         int64_t num_classes) {
  Dataset dataset;
  dataset.name = "toy";
  dataset.source = "make_toy_dataset";
  dataset.channels = channels;
  dataset.height = height;
  dataset.width = width;
  for (int64_t k = 0; k < num_classes; ++k) dataset.class_names.push_back("class" + std::to_string(k));
  uint32_t state = 12345;  // a fixed LCG, so every run makes the same data
  auto fill = [&](DataSplit& split, int64_t n) {
    split.labels.resize(n);
    split.images.resize(n * dataset.image_size());
    uint8_t* pixel = split.images.data();
    for (int64_t i = 0; i < n; ++i) {
      split.labels[i] = i % num_classes;
      for (int64_t c = 0; c < channels; ++c) {
        for (int64_t y = 0; y < height; ++y) {
          const bool lit = y * num_classes / height == split.labels[i];
          for (int64_t x = 0; x < width; ++x) {
            state = state * 1664525u + 1013904223u;
            *pixel++ = static_cast<uint8_t>((lit ? 180 : 20) + (state >> 26));  // + 0..63
          }
        }
      }
    }
  };
  fill(dataset.train, n_train);
  fill(dataset.test, n_test);
  return dataset;
}

Image split_image(const Dataset& dataset, const DataSplit& split, int64_t index) {
  Image image{dataset.width, dataset.height, dataset.channels, {}};
  const int64_t pixels = dataset.width * dataset.height;
  image.pixels.resize(pixels * dataset.channels);
  const uint8_t* chw = split.images.data() + index * dataset.image_size();
  for (int64_t c = 0; c < dataset.channels; ++c) {
    for (int64_t i = 0; i < pixels; ++i) image.pixels[i * dataset.channels + c] = chw[c * pixels + i];
  }
  return image;
}

void write_file(const fs::path& path, const std::vector<uint8_t>& bytes) {
  write_file(path, std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
}

void write_file(const fs::path& path, std::string_view text) {
  if (path.has_parent_path()) fs::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary);
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
  if (!out.flush()) throw std::runtime_error("write_file: cannot write " + path.string());
}

std::vector<uint8_t> gzip_bytes(const std::vector<uint8_t>& bytes) {
  z_stream stream{};
  if (deflateInit2(&stream, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
    throw std::runtime_error("gzip_bytes: deflateInit2 failed");
  }
  std::vector<uint8_t> out(deflateBound(&stream, bytes.size()) + 32);
  stream.next_in = const_cast<Bytef*>(bytes.data());
  stream.avail_in = static_cast<uInt>(bytes.size());
  stream.next_out = out.data();
  stream.avail_out = static_cast<uInt>(out.size());
  const int rc = deflate(&stream, Z_FINISH);
  out.resize(stream.total_out);
  deflateEnd(&stream);
  if (rc != Z_STREAM_END) throw std::runtime_error("gzip_bytes: deflate failed");
  return out;
}

std::vector<uint8_t> idx_bytes(const std::vector<int64_t>& dims, const std::vector<uint8_t>& data) {
  std::vector<uint8_t> bytes = {0, 0, 0x08, static_cast<uint8_t>(dims.size())};
  for (int64_t dim : dims) {
    for (int shift = 24; shift >= 0; shift -= 8) bytes.push_back(static_cast<uint8_t>(dim >> shift));
  }
  bytes.insert(bytes.end(), data.begin(), data.end());
  return bytes;
}

void write_idx_dataset(const fs::path& dir, const Dataset& dataset, bool gzip, IdxNaming naming) {
  if (dataset.channels != 1) throw std::runtime_error("write_idx_dataset: needs 1 channel");
  const std::string dot = naming == IdxNaming::kOfficial ? "-" : ".";
  const std::string suffix = gzip ? ".gz" : "";
  auto write = [&](const std::string& name, const std::vector<uint8_t>& bytes) {
    write_file(dir / (name + suffix), gzip ? gzip_bytes(bytes) : bytes);
  };
  for (const auto& [prefix, split] :
       {std::pair<std::string, const DataSplit*>{"train", &dataset.train}, {"t10k", &dataset.test}}) {
    write(prefix + "-images" + dot + "idx3-ubyte",
          idx_bytes({split->size(), dataset.height, dataset.width}, split->images));
    std::vector<uint8_t> labels(split->labels.begin(), split->labels.end());
    write(prefix + "-labels" + dot + "idx1-ubyte", idx_bytes({split->size()}, labels));
  }
}

void write_svhn_mat(const fs::path& path, const std::vector<uint8_t>& x, const std::vector<size_t>& x_dims,
                    const std::vector<double>& y) {
  std::unique_ptr<mat_t, int (*)(mat_t*)> mat(Mat_CreateVer(path.string().c_str(), nullptr, MAT_FT_MAT5), &Mat_Close);
  if (!mat) throw std::runtime_error("write_svhn_mat: cannot create " + path.string());
  std::vector<size_t> dims = x_dims;
  size_t y_dims[2] = {y.size(), 1};
  std::unique_ptr<matvar_t, void (*)(matvar_t*)> x_var(
      Mat_VarCreate("X", MAT_C_UINT8, MAT_T_UINT8, static_cast<int>(dims.size()), dims.data(),
                    const_cast<uint8_t*>(x.data()), MAT_F_DONT_COPY_DATA),
      &Mat_VarFree);
  std::unique_ptr<matvar_t, void (*)(matvar_t*)> y_var(
      Mat_VarCreate("y", MAT_C_DOUBLE, MAT_T_DOUBLE, 2, y_dims, const_cast<double*>(y.data()), MAT_F_DONT_COPY_DATA),
      &Mat_VarFree);
  if (!x_var || !y_var || Mat_VarWrite(mat.get(), x_var.get(), MAT_COMPRESSION_ZLIB) != 0 ||
      Mat_VarWrite(mat.get(), y_var.get(), MAT_COMPRESSION_ZLIB) != 0) {
    throw std::runtime_error("write_svhn_mat: cannot write " + path.string());
  }
}

void write_svhn_dataset(const fs::path& dir, const Dataset& dataset) {
  if (dataset.channels != 3) throw std::runtime_error("write_svhn_dataset: needs 3 channels");
  fs::create_directories(dir);
  const size_t h = dataset.height, w = dataset.width, c = 3;
  for (const auto& [file, split] : {std::pair<std::string, const DataSplit*>{"train_32x32.mat", &dataset.train},
                                    {"test_32x32.mat", &dataset.test}}) {
    const size_t n = split->size();
    // [N, C, H, W] to MATLAB's column-major H x W x C x N.
    std::vector<uint8_t> x(n * c * h * w);
    for (size_t i = 0; i < n; ++i) {
      for (size_t ch = 0; ch < c; ++ch) {
        for (size_t r = 0; r < h; ++r) {
          for (size_t col = 0; col < w; ++col) {
            x[r + h * (col + w * (ch + c * i))] = split->images[((i * c + ch) * h + r) * w + col];
          }
        }
      }
    }
    std::vector<double> y;
    for (int64_t label : split->labels) y.push_back(label == 0 ? 10 : static_cast<double>(label));
    write_svhn_mat(dir / file, x, {h, w, c, n}, y);
  }
}

std::vector<uint8_t> encode_ppm(const Image& image) {
  const std::string header = std::string(image.channels == 3 ? "P6" : "P5") + "\n" + std::to_string(image.width) + " " +
                             std::to_string(image.height) + "\n255\n";
  std::vector<uint8_t> bytes(header.begin(), header.end());
  bytes.insert(bytes.end(), image.pixels.begin(), image.pixels.end());
  return bytes;
}

void write_image_file(const fs::path& path, const Image& image) {
  const std::string extension = path.extension().string();
  if (extension == ".png") {
    write_file(path, encode_png(image));
  } else if (extension == ".ppm" || extension == ".pgm") {
    write_file(path, encode_ppm(image));
  } else if (extension == ".jpg" || extension == ".jpeg") {
    std::vector<uint8_t> jpeg;
    auto append = [](void* context, void* data, int size) {
      auto* out = static_cast<std::vector<uint8_t>*>(context);
      out->insert(out->end(), static_cast<uint8_t*>(data), static_cast<uint8_t*>(data) + size);
    };
    if (!stbi_write_jpg_to_func(append, &jpeg, static_cast<int>(image.width), static_cast<int>(image.height),
                                static_cast<int>(image.channels), image.pixels.data(), 95)) {
      throw std::runtime_error("write_image_file: JPEG encoding failed");
    }
    write_file(path, jpeg);
  } else {
    throw std::runtime_error("write_image_file: unknown extension " + path.string());
  }
}

namespace {

std::string five_digits(int64_t v) {
  char text[16];
  std::snprintf(text, sizeof text, "%05lld", static_cast<long long>(v));
  return text;
}

}  // namespace

std::string gtsrb_csv(const std::vector<GtsrbSample>& samples, const std::vector<std::string>& file_names,
                      bool with_class_id) {
  std::string text =
      std::string("Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2") + (with_class_id ? ";ClassId" : "") + "\r\n";
  for (size_t i = 0; i < samples.size(); ++i) {
    const GtsrbSample& s = samples[i];
    text += file_names[i];
    for (int64_t v : {s.csv_width ? s.csv_width : s.image.width, s.csv_height ? s.csv_height : s.image.height, s.x1,
                      s.y1, s.x2, s.y2}) {
      text += ";" + std::to_string(v);
    }
    text += (with_class_id ? ";" + std::to_string(s.class_id) : "") + "\r\n";
  }
  return text;
}

void write_gtsrb_training(const fs::path& dir, const std::vector<GtsrbSample>& train) {
  const fs::path train_root = dir / "Final_Training" / "Images";
  std::vector<std::vector<GtsrbSample>> by_class(gtsrb_classes().size());
  std::vector<std::vector<std::string>> files(gtsrb_classes().size());
  for (size_t i = 0; i < train.size(); ++i) {
    const std::string file = train[i].file.empty() ? five_digits(0) + "_" + five_digits(i) + ".ppm" : train[i].file;
    write_image_file(train_root / five_digits(train[i].class_id) / file, train[i].image);
    by_class[train[i].class_id].push_back(train[i]);
    files[train[i].class_id].push_back(file);
  }
  for (size_t k = 0; k < by_class.size(); ++k) {
    if (!by_class[k].empty()) {
      write_file(train_root / five_digits(k) / ("GT-" + five_digits(k) + ".csv"), gtsrb_csv(by_class[k], files[k]));
    }
  }
}

void write_gtsrb_test(const fs::path& dir, const std::vector<GtsrbSample>& test, const fs::path& csv_dir) {
  const fs::path test_root = dir / "Final_Test" / "Images";
  fs::create_directories(test_root);
  std::vector<std::string> files;
  for (size_t i = 0; i < test.size(); ++i) {
    files.push_back(five_digits(i) + ".ppm");
    write_image_file(test_root / files.back(), test[i].image);
  }
  if (!csv_dir.empty()) write_file(csv_dir / "GT-final_test.csv", gtsrb_csv(test, files));
}

void write_gtsrb_tree(const fs::path& dir, const std::vector<GtsrbSample>& train,
                      const std::vector<GtsrbSample>& test) {
  write_gtsrb_training(dir, train);
  write_gtsrb_test(dir, test, dir / "Final_Test" / "Images");
}

void write_image_folder(const fs::path& dir, const Dataset& dataset, const std::string& extension,
                        const std::string& test_folder) {
  for (const auto& [name, split] :
       {std::pair<std::string, const DataSplit*>{"train", &dataset.train}, {test_folder, &dataset.test}}) {
    for (int64_t i = 0; i < split->size(); ++i) {
      const fs::path path = dir / name / dataset.class_names[split->labels[i]] / (std::to_string(i) + extension);
      write_image_file(path, split_image(dataset, *split, i));
    }
  }
}

void write_class_folders(const fs::path& dir, const Dataset& dataset, const std::string& extension) {
  for (int64_t i = 0; i < dataset.train.size(); ++i) {
    write_image_file(dir / dataset.class_names[dataset.train.labels[i]] / (std::to_string(i) + extension),
                     split_image(dataset, dataset.train, i));
  }
}

std::filesystem::path write_tiny_run(const std::filesystem::path& dir) {
  const auto data = dir / "data";
  write_idx_dataset(data, make_toy_dataset(240, 60, 1, 12, 12, 4), false);
  const auto config = dir / "tiny.toml";
  write_file(config, "# a run that takes seconds\ndata = \"mnist:" + data.string() + "\"\n" + R"(annotate = "seed"
[train-judges]
archs = "mlp"
epochs = 1
[train-classifier]
epochs = 1
batch-size = 32
[train-vae]
epochs = 1
filters = 8
latent = 4
batch-size = 40
[identify]
keep-bad-reconstructions = true
gate = "none"
samples = 24
keep = 4
sigma = 1.0
max-seeds = 60
[distill]
components = 8
samples = 16
shown = 4
neighbours = 2
min-failure-rate = 0
[correct]
confirm = "none"
lambda = [0.1, 1]
batch-size = 32
scenario-batch-size = 16
samples-per-scenario = 32
lr = 0.01
[evaluate]
confirm = "none"
samples-per-scenario = 32
[report]
map-train = 100
map-failures = 60
)");
  return config;
}

}  // namespace defuse::test
