#include "api/item_reference.h"

#include <algorithm>
#include <set>

#include "api/fields.h"
#include "api/response_store.h"

namespace v4::api {

namespace json = boost::json;

namespace {

// {"type": "item_reference", "id"}, or OpenAI's shorthand without a type: an object of an id alone.
bool is_reference(const json::value& item) {
  if (!item.is_object()) return false;
  const auto& o = item.get_object();
  const json::value* type = o.if_contains("type");
  if (type && !type->is_null()) return *type == "item_reference";
  return o.contains("id") && o.size() == (type ? 2u : 1u);
}

// The ids the request already holds: the continued conversation's and the input's own items'.
std::set<std::string> held_ids(const json::array& earlier, const json::array& input) {
  std::set<std::string> ids;
  for (const json::array* items : {&earlier, &input})
    for (auto& item : *items)
      if (!is_reference(item) && item.is_object())
        if (auto* id = item.get_object().if_contains("id"); id && id->is_string()) ids.emplace(id->get_string());
  return ids;
}

}  // namespace

std::optional<json::array> resolve_item_references(const json::value& input, const json::array& earlier,
                                                   ResponseStore& store, const std::string& owner) {
  if (!input.is_array() || std::none_of(input.get_array().begin(), input.get_array().end(), is_reference))
    return std::nullopt;
  const json::array& items = input.get_array();
  std::set<std::string> held = held_ids(earlier, items);
  json::array out;
  for (size_t i = 0; i < items.size(); ++i) {
    if (!is_reference(items[i])) {
      out.push_back(items[i]);
      continue;
    }
    const std::string p = "input[" + std::to_string(i) + "]";
    Fields f(items[i].get_object(), Dialect::responses, p + ".");
    f.only({"type", "id"});
    const std::string id = f.req_str("id");
    auto item = store.find_item(id, owner);
    if (!item) throw bad_request(p + ".id", "Item with id '" + id + "' not found.");
    // (OpenAI's answer to an item sent twice, e.g. referenced while previous_response_id carries it)
    if (!held.insert(id).second)
      throw bad_request(p + ".id", "Duplicate item found with id " + id + ". Remove duplicate items from your input and "
                                   "try again.");
    out.push_back(std::move(*item));
  }
  return out;
}

}  // namespace v4::api
