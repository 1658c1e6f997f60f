// model::synthetic_state (the long-context benchmark's state): it has the shape a real prefill of
// the same length leaves (the state codec, which checks every entry count against the position,
// accepts it), the model decodes from it, and it refuses what it cannot make.
#include <cstring>
#include <vector>

#include "model/state.h"
#include "model/state_codec.h"
#include "model/synthetic_state.h"
#include "reference_fixture.h"

namespace v4::model::testing {
namespace {

TEST(SyntheticState, HasTheLayoutOfARealPrefillOfTheSameLength) {
  ModelOptions o;
  o.threads = 1;
  auto m = Model::load(tiny_checkpoint(), o);
  const auto blank = m->new_state();
  const auto s = synthetic_state(*blank, 512, 3);
  EXPECT_EQ(s->position(), 512);

  // The same layout, entry for entry, as 512 real tokens leave.
  auto real = m->new_state();
  const std::vector<int32_t> tokens(512, 7);
  const BatchItem prefill{real.get(), tokens, false};
  m->forward(std::span<const BatchItem>(&prefill, 1));
  const auto& a = dynamic_cast<const SequenceStateImpl&>(*s);
  const auto& b = dynamic_cast<const SequenceStateImpl&>(*real);
  ASSERT_EQ(a.layers.size(), b.layers.size());
  for (size_t l = 0; l < a.layers.size(); ++l) {
    EXPECT_EQ(a.layers[l].compressed.size(), b.layers[l].compressed.size()) << "layer " << l;
    EXPECT_EQ(a.layers[l].index_keys.size(), b.layers[l].index_keys.size()) << "layer " << l;
    EXPECT_EQ(a.layers[l].compressed.format(), b.layers[l].compressed.format()) << "layer " << l;
    EXPECT_EQ(a.layers[l].index_keys.format(), b.layers[l].index_keys.format()) << "layer " << l;
    EXPECT_EQ(a.layers[l].compressed.bytes(), b.layers[l].compressed.bytes()) << "layer " << l;
    EXPECT_EQ(a.layers[l].ring.size(), b.layers[l].ring.size()) << "layer " << l;
    EXPECT_EQ(a.layers[l].compressor.has_prev, b.layers[l].compressor.has_prev) << "layer " << l;
  }
  std::vector<std::byte> bytes;
  encode_state(*s, bytes);
  EXPECT_NO_THROW(decode_state(bytes, *blank));

  // It decodes, and the same seed gives the same state (the same logits).
  auto logits_after = [&](uint32_t seed) {
    auto st = synthetic_state(*blank, 512, seed);
    const int32_t next = 11;
    const BatchItem item{st.get(), std::span<const int32_t>(&next, 1), false};
    return m->forward(std::span<const BatchItem>(&item, 1));
  };
  const auto x = logits_after(3), y = logits_after(3), z = logits_after(4);
  ASSERT_EQ(x.size(), size_t(m->config().vocab_size));
  EXPECT_EQ(std::memcmp(x.data(), y.data(), x.size() * sizeof(float)), 0);
  EXPECT_NE(std::memcmp(x.data(), z.data(), x.size() * sizeof(float)), 0);

  EXPECT_THROW(synthetic_state(*blank, 100, 1), std::invalid_argument);  // not a multiple of 128
  EXPECT_THROW(synthetic_state(*blank, 0, 1), std::invalid_argument);
  EXPECT_THROW(synthetic_state(*s, 128, 1), std::invalid_argument);  // not blank
}

}  // namespace
}  // namespace v4::model::testing
