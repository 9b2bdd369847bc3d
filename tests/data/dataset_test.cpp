#include "defuse/data/dataset.h"

#include <gtest/gtest.h>

#include "defuse/base/error.h"
#include "support/test_support.h"

namespace defuse {
namespace {

TEST(DataSpec, UnknownDatasetIsConfigError) {
  const std::string message = test::error_message<ConfigError>([] { load_dataset("cifar:/tmp"); });
  EXPECT_EQ(message.rfind("data: unknown dataset 'cifar:/tmp'", 0), 0u) << message;
}

TEST(DataSpec, MissingDirectoryIsConfigError) {
  EXPECT_THROW(load_dataset("mnist"), ConfigError);
  EXPECT_THROW(load_dataset("svhn:"), ConfigError);
  EXPECT_THROW(load_dataset("fashion-mnist:"), ConfigError);
}

TEST(DataSpec, ImageSizeOutOfRangeIsConfigError) {
  DataOptions options;
  options.image_size = 0;
  EXPECT_THROW(load_dataset("gtsrb:/nonexistent", options), ConfigError);
  options.image_size = 5000;
  EXPECT_THROW(options.validate(), ConfigError);
}

TEST(DataSpec, NonexistentDirectoryIsIoError) {
  const std::string message =
      test::error_message<IoError>([] { load_dataset("mnist:/nonexistent/dir"); });
  EXPECT_NE(message.find("/nonexistent/dir"), std::string::npos) << message;
}

TEST(DataSpec, DispatchesMnistAndFashionMnistWithTheirClassNames) {
  test::TempDir tmp;
  test::write_idx_dataset(tmp.path(), test::make_toy_dataset(20, 10, 1, 6, 5, 10), true);
  const Dataset mnist = load_dataset("mnist:" + tmp.path().string());
  EXPECT_EQ(mnist.name, "mnist");
  EXPECT_EQ(mnist.class_names, digit_classes());
  const Dataset fashion = load_dataset("fashion-mnist:" + tmp.path().string());
  EXPECT_EQ(fashion.name, "fashion-mnist");
  EXPECT_EQ(fashion.class_names, fashion_mnist_classes());
  EXPECT_EQ(fashion.train.images, mnist.train.images);
}

TEST(DataClassNames, AreTheOfficialLists) {
  EXPECT_EQ(fashion_mnist_classes().size(), 10u);
  EXPECT_EQ(fashion_mnist_classes().front(), "T-shirt/top");
  EXPECT_EQ(fashion_mnist_classes().back(), "Ankle boot");
  EXPECT_EQ(digit_classes()[3], "3");
  ASSERT_EQ(gtsrb_classes().size(), 43u);
  EXPECT_EQ(gtsrb_classes()[0], "Speed limit (20km/h)");
  EXPECT_EQ(gtsrb_classes()[14], "Stop");
  EXPECT_EQ(gtsrb_classes()[42], "End of no passing by vehicles over 3.5 metric tons");
}

TEST(DatasetValidate, AcceptsAConsistentDataset) {
  EXPECT_NO_THROW(test::make_toy_dataset(6, 4, 3, 2, 2, 3).validate());
}

TEST(DatasetValidate, RejectsLabelsOutOfRange) {
  Dataset dataset = test::make_toy_dataset(6, 4, 1, 2, 2, 3);
  dataset.test.labels[2] = 3;
  const std::string message = test::error_message<DataError>([&] { dataset.validate(); });
  EXPECT_NE(message.find("label 3 of test example 2 is outside 0..2"), std::string::npos)
      << message;
  dataset.test.labels[2] = -1;
  EXPECT_THROW(dataset.validate(), DataError);
}

TEST(DatasetValidate, RejectsPixelCountMismatch) {
  Dataset dataset = test::make_toy_dataset(6, 4, 1, 2, 2, 3);
  dataset.train.images.pop_back();
  EXPECT_THROW(dataset.validate(), DataError);
}

TEST(DatasetValidate, RejectsEmptySplitsAndDegenerateShapes) {
  Dataset empty = test::make_toy_dataset(0, 4, 1, 2, 2, 3);
  const std::string message = test::error_message<DataError>([&] { empty.validate(); });
  EXPECT_NE(message.find("the train split is empty"), std::string::npos) << message;
  Dataset channels = test::make_toy_dataset(2, 2, 2, 2, 2, 2);
  EXPECT_THROW(channels.validate(), DataError);
  Dataset one_class = test::make_toy_dataset(2, 2, 1, 2, 2, 1);
  EXPECT_THROW(one_class.validate(), DataError);
}

}  // namespace
}  // namespace defuse
