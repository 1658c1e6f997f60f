#pragma once
// A sequence state as bytes and back, for the runtime's disk cache. The bytes are the state's own
// values as it holds them (fp32, and the packed FP8/FP4 rows of model/state_rows.h), verbatim, so a
// decoded state continues bit for bit like the one that was encoded.
// The layout (layer count, head and window sizes, compressor widths) is checked against a blank
// state of the model that will use it; the entry counts against the position.
#include <cstddef>
#include <memory>
#include <span>
#include <vector>

#include "model/model.h"

namespace v4::model {

// Appends the encoding of `state` to `out`. Throws std::invalid_argument for a state that is not
// this model family's (a test double's).
void encode_state(const SequenceState& state, std::vector<std::byte>& out);

// Rebuilds a state from encode_state's bytes; `blank` (Model::new_state()) fixes the layout the
// bytes must have. Throws std::runtime_error on any mismatch or truncation.
std::unique_ptr<SequenceState> decode_state(std::span<const std::byte> bytes, const SequenceState& blank);

}  // namespace v4::model
