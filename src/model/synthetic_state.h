#pragma once
// A sequence state as if `positions` tokens had been consumed, its entries random: for benchmarks
// at long contexts (decode at 64K or 1M positions), where a real prefill would take far longer than
// the measurement itself. A decode step's cost depends on how many entries the state holds (window,
// compressed entries, indexer keys), not on their values.
#include <cstdint>
#include <memory>

#include "model/model.h"

namespace v4::model {

// `blank` (Model::new_state()) fixes the layout. `positions` must be a multiple of every
// compressor's ratio, so that no block is half pooled. Entries have unit variance, as normalised
// keys do (never subnormal: those would slow Intel cores down, which a real state does not), and
// an eighth of spare capacity, as a grown state has. Throws
// std::invalid_argument for another model's state or a bad position count.
std::unique_ptr<SequenceState> synthetic_state(const SequenceState& blank, int64_t positions, uint32_t seed);

}  // namespace v4::model
