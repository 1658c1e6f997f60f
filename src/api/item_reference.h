#pragma once
// Responses `item_reference` input items ({"type": "item_reference", "id": ...}; `type` may be left
// out): each names an item the caller's account has stored (an output item of a stored response, or
// an input item stored with one: api/response_store.h) and stands for that item, exactly as if the
// client had sent it again. The Vercel AI SDK sends earlier reasoning, messages and web searches so
// when its `store` is on (its default).
#include <optional>
#include <string>

#include <boost/json.hpp>

namespace v4::api {

class ResponseStore;

// The request's `input` with each reference replaced by its item; nullopt when it holds none.
// `earlier`: the conversation previous_response_id continues, which a reference may not repeat.
// Throws ApiError 400 naming input[i].id: no such item of `owner`'s, or one the input already holds.
std::optional<boost::json::array> resolve_item_references(const boost::json::value& input,
                                                          const boost::json::array& earlier, ResponseStore& store,
                                                          const std::string& owner);

}  // namespace v4::api
