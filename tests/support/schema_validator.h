#pragma once
// A JSON Schema validator for the keywords structured output supports, written apart from the
// grammar compiler so tests can check generated JSON against its schema independently.
#include <string>

#include <boost/json.hpp>

namespace v4::testing {

namespace schema_detail {

inline size_t code_points(std::string_view s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

inline bool validate(const boost::json::value& v, const boost::json::value& schema, const boost::json::value& root,
                     std::string& why, int depth);

inline const boost::json::value* resolve(const boost::json::value& root, std::string_view ref) {
  if (ref == "#") return &root;
  for (std::string_view prefix : {"#/$defs/", "#/definitions/"}) {
    if (ref.substr(0, prefix.size()) != prefix) continue;
    const auto* defs = root.as_object().if_contains(prefix.substr(2, prefix.size() - 3));
    if (defs) return defs->as_object().if_contains(ref.substr(prefix.size()));
  }
  return nullptr;
}

inline bool type_matches(const boost::json::value& v, std::string_view t) {
  if (t == "object") return v.is_object();
  if (t == "array") return v.is_array();
  if (t == "string") return v.is_string();
  if (t == "boolean") return v.is_bool();
  if (t == "null") return v.is_null();
  if (t == "integer") return v.is_int64() || v.is_uint64();
  if (t == "number") return v.is_number();
  return false;
}

inline bool validate(const boost::json::value& v, const boost::json::value& schema, const boost::json::value& root,
                     std::string& why, int depth) {
  if (depth > 64) return why = "too deep", false;
  if (schema.is_bool()) return schema.as_bool() || (why = "schema false", false);
  const auto& s = schema.as_object();
  if (const auto* ref = s.if_contains("$ref")) {
    const auto* target = resolve(root, ref->as_string());
    if (!target) return why = "bad $ref", false;
    return validate(v, *target, root, why, depth + 1);
  }
  if (const auto* n = s.if_contains("nullable"); n && n->as_bool() && v.is_null()) return true;
  if (const auto* e = s.if_contains("enum")) {
    for (const auto& x : e->as_array())
      if (x == v) return true;
    return why = "not in enum: " + boost::json::serialize(v), false;
  }
  if (const auto* c = s.if_contains("const"); c && *c != v) return why = "not const", false;
  if (const auto* any = s.if_contains("anyOf")) {
    for (const auto& alt : any->as_array()) {
      std::string ignored;
      if (validate(v, alt, root, ignored, depth + 1)) return true;
    }
    return why = "no anyOf alternative", false;
  }
  if (const auto* t = s.if_contains("type")) {
    bool ok = false;
    if (t->is_string()) ok = type_matches(v, t->as_string());
    else
      for (const auto& one : t->as_array()) ok = ok || type_matches(v, one.as_string());
    if (!ok) return why = "wrong type for " + boost::json::serialize(v), false;
  }
  if (v.is_string()) {
    const size_t n = code_points(v.as_string());
    if (const auto* m = s.if_contains("maxLength"); m && n > size_t(m->to_number<int64_t>()))
      return why = "longer than maxLength", false;
    if (const auto* m = s.if_contains("minLength"); m && n < size_t(m->to_number<int64_t>()))
      return why = "shorter than minLength", false;
  }
  if (v.is_array()) {
    const auto& a = v.as_array();
    if (const auto* m = s.if_contains("maxItems"); m && a.size() > size_t(m->to_number<int64_t>()))
      return why = "more than maxItems", false;
    if (const auto* m = s.if_contains("minItems"); m && a.size() < size_t(m->to_number<int64_t>()))
      return why = "fewer than minItems", false;
    if (const auto* items = s.if_contains("items"))
      for (const auto& x : a)
        if (!validate(x, *items, root, why, depth + 1)) return false;
  }
  if (v.is_object()) {
    const auto& o = v.as_object();
    const auto* props = s.if_contains("properties");
    if (const auto* req = s.if_contains("required"))
      for (const auto& name : req->as_array())
        if (!o.contains(name.as_string())) return why = "missing " + std::string(name.as_string()), false;
    for (const auto& kv : o) {
      const boost::json::value* sub = props ? props->as_object().if_contains(kv.key()) : nullptr;
      if (!sub) {
        const auto* extra = s.if_contains("additionalProperties");
        if (extra && extra->is_bool() && !extra->as_bool()) return why = "extra key " + std::string(kv.key()), false;
        if (extra && extra->is_object()) sub = extra;
      }
      if (sub && !validate(kv.value(), *sub, root, why, depth + 1)) return false;
    }
  }
  return true;
}

}  // namespace schema_detail

// True when `v` is valid under `schema`; otherwise false with the reason in `why`.
inline bool validate_against_schema(const boost::json::value& v, const boost::json::value& schema, std::string& why) {
  return schema_detail::validate(v, schema, schema, why, 0);
}

}  // namespace v4::testing
