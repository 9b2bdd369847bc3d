// The verdict on a found failure (DESIGN §3, "Validity"), torch-free so that the scenario
// catalogue, the labelling page and the report can name it. The judges that reach it live in
// judges.h.
//   genuine       the judges read the seed's label: the classifier is wrong here
//   label change  the judges read what the classifier read: the decode crossed into that
//                 class and the classifier is right
//   ambiguous     anything else: the judges disagree, are unsure, or read a third class
#pragma once

#include <cstdint>
#include <string>

#include "defuse/base/choice.h"

namespace defuse {

enum class Verdict : int8_t { kGenuine = 0, kLabelChange = 1, kAmbiguous = 2 };

// "genuine", "label-change", "ambiguous"
inline const ChoiceNames<Verdict>& verdict_names() {
  static const ChoiceNames<Verdict> names{
      {Verdict::kGenuine, "genuine"}, {Verdict::kLabelChange, "label-change"}, {Verdict::kAmbiguous, "ambiguous"}};
  return names;
}

// When the judges' reading of an image counts as sure. Defaults measured against an
// independent reader (docs/benchmarks.md, "Validity").
struct VerdictRule {
  double min_agreement = 1.0;   // share of the judges that must pick the consensus class (1: all of them)
  double min_confidence = 0.9;  // the consensus class's mean probability over the judges. MNIST, 3,000 seeds,
                                // three searches, the independent reader: with the three grey-image judges
                                // it confirms 82-88% of the kept failures confidently at 0.9; with two
                                // judges 74% at 0.9 and 56-87% at 0.93 (docs/benchmarks.md, "Validity")

  void validate(const std::string& stage) const {
    check_option(min_agreement > 0 && min_agreement <= 1, stage, "--judge-agreement must be in (0, 1]");
    check_option(min_confidence >= 0 && min_confidence <= 1, stage, "--judge-confidence must be in [0, 1]");
  }
};

}  // namespace defuse
