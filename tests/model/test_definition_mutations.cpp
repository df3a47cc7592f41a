// A bounded random-mutation test of the definition parser and the model builder: starting from
// the zoo's files (sequences, residual blocks, Inception concats) flip, insert and delete
// characters; every result must build or be refused with one line (UsageError) -- never crash,
// hang or throw anything else. tests/fuzz/fuzz_models.cpp explores the same coverage-guided.
#include <gtest/gtest.h>

#include "distnet/layer_registry.hpp"
#include "distnet/model_spec.hpp"
#include "distnet/philox.hpp"
#include "model/zoo_files.hpp"

using namespace distnet;

namespace {

std::string mutate(std::string s, std::uint32_t iter) {
  const Philox4 r = philox_block(78, RngPurpose::synthetic, 0, 0, iter, 0);
  const std::size_t at = s.empty() ? 0 : r.v[1] % s.size();
  const char pool[] = " \n-:{}[],#.0123456789abcxyz_";
  const char c = pool[r.v[3] % (sizeof pool - 1)];
  switch (r.v[0] % 5) {
    case 0:  // replace a character
      if (!s.empty()) s[at] = c;
      break;
    case 1:  // a digit somewhere: sizes, strides, channels
      if (!s.empty()) s[at] = char('0' + r.v[2] % 10);
      break;
    case 2:  // cut the tail
      s.resize(at);
      break;
    case 3:  // insert characters
      s.insert(at, r.v[2] % 4 + 1, c);
      break;
    default:  // erase characters
      s.erase(at, r.v[2] % 12);
  }
  return s;
}

}  // namespace

TEST(DefinitionMutations, EveryMutantBuildsOrIsRefusedInOneLine) {
  int built = 0, refused = 0;
  for (const ZooFile& f : zoo_files()) {
    for (std::uint32_t i = 0; i < 150; ++i) {
      std::string text = f.text;
      for (std::uint32_t k = 0; k <= i % 3; ++k) text = mutate(text, i * 4 + k);
      ModelConfig cfg;
      cfg.input = Shape{3, 224, 224};
      try {
        build_layers(parse_model_definition(text, "mutant.yaml"), cfg);
        ++built;
      } catch (const UsageError& e) {
        const std::string what = e.what();
        EXPECT_EQ(what.find('\n'), std::string::npos) << f.name << " mutant " << i << ": " << what;
        ++refused;
      }
    }
  }
  std::printf("mutants: %d built, %d refused\n", built, refused);
  EXPECT_GT(refused, 0);
}
