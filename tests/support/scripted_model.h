#pragma once
// The real model with scripted token choices, for end-to-end suites on a random-weight checkpoint
// (`v4flash-testserver --model DIR`): every forward runs the wrapped model, then, while the
// sequence follows the script its prompt carries (script.h), the logits rows are replaced so the
// next scripted token is the only likely one. The runtime (batching, prefix cache, sampling, stop
// strings, thinking) and the model's compute are the product's; only the chosen ids are scripted.
#include <memory>

#include "model/model.h"
#include "text/tokenizer.h"

namespace v4::testing {

std::shared_ptr<model::Model> scripted_model(std::shared_ptr<model::Model> inner,
                                             std::shared_ptr<const text::Tokenizer> tokenizer);

}  // namespace v4::testing
