#include "grammar/json_schema.h"

#include <algorithm>
#include <set>

#include <boost/json.hpp>

namespace v4::grammar {

namespace json = boost::json;
using Seq = GrammarBuilder::Seq;

namespace {

std::string child(const std::string& path, std::string_view key) {
  std::string out = path + "/";
  for (char c : key) {
    if (c == '~') out += "~0";
    else if (c == '/') out += "~1";
    else out += c;
  }
  return out;
}

ByteSet range(unsigned char lo, unsigned char hi) {
  ByteSet s;
  for (unsigned c = lo; c <= hi; ++c) s.set(c);
  return s;
}

ByteSet one_of(std::string_view chars) {
  ByteSet s;
  for (unsigned char c : chars) s.set(c);
  return s;
}

// Keywords that only annotate.
const std::set<std::string, std::less<>> kAnnotations = {
    "title", "description", "default", "examples", "$schema", "$id", "$comment", "$defs", "definitions",
    "deprecated", "readOnly", "writeOnly"};

const std::set<std::string, std::less<>> kKnown = {
    "type", "enum", "const", "anyOf", "$ref", "nullable", "properties", "required", "additionalProperties",
    "items", "minItems", "maxItems", "minLength", "maxLength"};

// The grammar's integers have at most 15 digits (number() below).
constexpr double kLargestInteger = 999'999'999'999'999.0;

bool integers_only(const json::object& schema) {
  const json::value* t = schema.if_contains("type");
  if (t && t->is_string()) return t->as_string() == "integer";
  if (!t || !t->is_array()) return false;
  bool integer = false;
  for (const auto& one : t->as_array()) {
    if (one == "number") return false;
    integer = integer || one == "integer";
  }
  return integer;
}

// minimum / maximum that every integer the grammar writes already meets: zod's int() gives
// JavaScript's safe-integer range, ±(2^53 - 1), to every integer. Narrower bounds are refused.
bool holds_anyway(const json::object& schema, std::string_view key, const json::value& bound) {
  if (!integers_only(schema) || !bound.is_number()) return false;
  const double v = bound.is_double() ? bound.as_double() : bound.is_int64() ? double(bound.as_int64()) : double(bound.as_uint64());
  return key == "minimum" ? v <= -kLargestInteger : v >= kLargestInteger;
}

void check_keywords(const json::object& schema, const std::string& path) {
  for (const auto& kv : schema) {
    if (kAnnotations.count(kv.key()) || kKnown.count(kv.key())) continue;
    if ((kv.key() == "minimum" || kv.key() == "maximum") && holds_anyway(schema, kv.key(), kv.value())) continue;
    throw SchemaError(child(path, kv.key()),
                      "JSON Schema keyword '" + std::string(kv.key()) + "' is not supported in structured output");
  }
}

uint32_t bound(const json::object& schema, std::string_view key, uint32_t fallback, uint32_t limit,
               const std::string& path) {
  const json::value* v = schema.if_contains(key);
  if (!v) return fallback;
  if (!v->is_int64() && !v->is_uint64())
    throw SchemaError(child(path, key), "'" + std::string(key) + "' must be a non-negative integer");
  const int64_t n = v->is_int64() ? v->as_int64() : int64_t(std::min<uint64_t>(v->as_uint64(), INT64_MAX));
  if (n < 0) throw SchemaError(child(path, key), "'" + std::string(key) + "' must be a non-negative integer");
  if (uint64_t(n) > limit)
    throw SchemaError(child(path, key), "'" + std::string(key) + "' above " + std::to_string(limit) + " is not supported");
  return uint32_t(n);
}

}  // namespace

std::string json_quote(std::string_view text) { return json::serialize(json::value(json::string(text))); }

JsonSchemaCompiler::JsonSchemaCompiler(GrammarBuilder& builder, const json::value& root) : b_(builder), root_(root) {}

uint32_t JsonSchemaCompiler::value(const json::value& schema, const std::string& path) {
  if (schema.is_bool()) {
    if (schema.as_bool()) return any_value();
    throw SchemaError(path, "the schema 'false' allows no value");
  }
  if (!schema.is_object()) throw SchemaError(path, "a schema must be an object or a boolean");
  const json::object& s = schema.as_object();
  check_keywords(s, path);
  std::vector<Seq> alternatives;
  if (const json::value* ref = s.if_contains("$ref")) {
    if (!ref->is_string()) throw SchemaError(child(path, "$ref"), "'$ref' must be a string");
    for (const auto& kv : s)
      if (kv.key() != "$ref" && !kAnnotations.count(kv.key()))
        throw SchemaError(child(path, kv.key()), "'$ref' cannot be combined with '" + std::string(kv.key()) + "'");
    return reference(std::string(ref->as_string()), child(path, "$ref"));
  }
  if (const json::value* e = s.if_contains("enum")) {
    if (!e->is_array() || e->as_array().empty())
      throw SchemaError(child(path, "enum"), "'enum' must be a non-empty array");
    for (const auto& v : e->as_array()) alternatives.push_back(b_.literal(json::serialize(v)));
  } else if (const json::value* c = s.if_contains("const")) {
    alternatives.push_back(b_.literal(json::serialize(*c)));
  } else if (const json::value* any = s.if_contains("anyOf")) {
    if (!any->is_array() || any->as_array().empty())
      throw SchemaError(child(path, "anyOf"), "'anyOf' must be a non-empty array of schemas");
    const std::string at = child(path, "anyOf");
    for (size_t i = 0; i < any->as_array().size(); ++i)
      alternatives.push_back({GrammarBuilder::call(value(any->as_array()[i], child(at, std::to_string(i))))});
  } else if (const json::value* t = s.if_contains("type")) {
    if (t->is_string()) {
      alternatives.push_back({GrammarBuilder::call(typed(s, t->as_string(), path))});
    } else if (t->is_array() && !t->as_array().empty()) {
      for (const auto& one : t->as_array()) {
        if (!one.is_string()) throw SchemaError(child(path, "type"), "'type' must be a name or a list of names");
        alternatives.push_back({GrammarBuilder::call(typed(s, one.as_string(), path))});
      }
    } else {
      throw SchemaError(child(path, "type"), "'type' must be a name or a list of names");
    }
  } else if (s.contains("properties") || s.contains("additionalProperties") || s.contains("required")) {
    alternatives.push_back({GrammarBuilder::call(typed(s, "object", path))});
  } else if (s.contains("items")) {
    alternatives.push_back({GrammarBuilder::call(typed(s, "array", path))});
  } else {
    alternatives.push_back({GrammarBuilder::call(any_value())});
  }
  if (const json::value* n = s.if_contains("nullable")) {
    if (!n->is_bool()) throw SchemaError(child(path, "nullable"), "'nullable' must be a boolean");
    if (n->as_bool()) alternatives.push_back(b_.literal("null"));
  }
  return b_.rule(alternatives);
}

uint32_t JsonSchemaCompiler::typed(const json::object& s, std::string_view type, const std::string& path) {
  if (type == "object") return object(s, path);
  if (type == "array") return array(s, path);
  if (type == "string") return string(s, path);
  if (type == "integer") return number(true);
  if (type == "number") return number(false);
  if (type == "boolean") return b_.rule({b_.literal("true"), b_.literal("false")});
  if (type == "null") return b_.rule({b_.literal("null")});
  throw SchemaError(child(path, "type"), "unknown type '" + std::string(type) + "'");
}

uint32_t JsonSchemaCompiler::reference(const std::string& ref, const std::string& path) {
  if (auto it = refs_.find(ref); it != refs_.end()) return it->second;
  const json::value* target = nullptr;
  std::string target_path;
  if (ref == "#") {
    target = &root_;
  } else {
    for (std::string_view prefix : {"#/$defs/", "#/definitions/"}) {
      if (ref.rfind(prefix, 0) != 0 || !root_.is_object()) continue;
      const std::string name = ref.substr(prefix.size());
      const std::string container(prefix.substr(2, prefix.size() - 3));
      const json::value* defs = root_.as_object().if_contains(container);
      if (defs && defs->is_object()) target = defs->as_object().if_contains(name);
      target_path = "/" + container + "/" + name;
    }
  }
  if (!target) throw SchemaError(path, "'$ref' " + ref + " does not name a definition of this schema");
  // Declared before it is compiled, so a definition that refers to itself finds the rule.
  const uint32_t r = b_.declare();
  refs_[ref] = r;
  b_.add_alternative(r, {GrammarBuilder::call(value(*target, target_path))});
  return r;
}

uint32_t JsonSchemaCompiler::object(const json::object& s, const std::string& path) {
  const json::value* props = s.if_contains("properties");
  const json::value* extra = s.if_contains("additionalProperties");
  if (props && !props->is_object()) throw SchemaError(child(path, "properties"), "'properties' must be an object");
  if (extra && !extra->is_bool() && !extra->is_object())
    throw SchemaError(child(path, "additionalProperties"), "'additionalProperties' must be a boolean or a schema");
  std::set<std::string, std::less<>> required;
  if (const json::value* req = s.if_contains("required")) {
    if (!req->is_array()) throw SchemaError(child(path, "required"), "'required' must be an array of names");
    for (const auto& n : req->as_array()) {
      if (!n.is_string()) throw SchemaError(child(path, "required"), "'required' must be an array of names");
      if (!props || !props->as_object().contains(n.as_string()))
        throw SchemaError(child(path, "required"), "required property '" + std::string(n.as_string()) +
                                                       "' is not in 'properties'");
      required.insert(std::string(n.as_string()));
    }
  }
  if (!props || props->as_object().empty()) {
    if (!required.empty() || (extra && extra->is_bool() && !extra->as_bool())) return b_.rule({b_.literal("{}")});
    const uint32_t member = extra && extra->is_object() ? value(*extra, child(path, "additionalProperties")) : any_value();
    return free_object(member);
  }
  // "NAME": value for each property, in schema order
  std::vector<uint32_t> members;
  std::vector<bool> needed;
  for (const auto& kv : props->as_object()) {
    Seq member = b_.literal(json_quote(kv.key()) + ":");
    member.push_back(GrammarBuilder::call(space()));
    member.push_back(GrammarBuilder::call(value(kv.value(), child(child(path, "properties"), kv.key()))));
    members.push_back(b_.rule({member}));
    needed.push_back(required.count(kv.key()) > 0);
  }
  Seq comma = b_.literal(",");
  comma.push_back(GrammarBuilder::call(space()));
  Seq seq = b_.literal("{");
  seq.push_back(GrammarBuilder::call(b_.ordered(members, needed, comma)));
  b_.literal(seq, "}");
  return b_.rule({seq});
}

uint32_t JsonSchemaCompiler::free_object(uint32_t member_value) {
  Seq member{GrammarBuilder::call(string_any())};
  b_.literal(member, ":");
  member.push_back(GrammarBuilder::call(space()));
  member.push_back(GrammarBuilder::call(member_value));
  const uint32_t m = b_.rule({member});
  Seq open = b_.literal("{");
  open.push_back(GrammarBuilder::call(list(m, 0, UINT32_MAX)));
  b_.literal(open, "}");
  return b_.rule({open});
}

// item ("," item)*, between min and max items (max UINT32_MAX: no bound).
uint32_t JsonSchemaCompiler::list(uint32_t item, uint32_t min, uint32_t max) {
  if (max == 0) return b_.rule({Seq{}});
  Seq comma_item = b_.literal(",");
  comma_item.push_back(GrammarBuilder::call(space()));
  comma_item.push_back(GrammarBuilder::call(item));
  // tail(k): the rest after k items
  uint32_t tail = max == UINT32_MAX ? b_.star(comma_item) : b_.rule({Seq{}});
  const uint32_t start_unbounded = std::max<uint32_t>(min, 1);
  const uint32_t last = max == UINT32_MAX ? start_unbounded : max;
  for (uint32_t k = last; k-- > 1;) {  // after k items
    Seq more = comma_item;
    more.push_back(GrammarBuilder::call(tail));
    std::vector<Seq> alts{more};
    if (k >= min) alts.push_back(Seq{});
    tail = b_.rule(alts);
  }
  Seq first{GrammarBuilder::call(item), GrammarBuilder::call(tail)};
  std::vector<Seq> alts{first};
  if (min == 0) alts.push_back(Seq{});
  return b_.rule(alts);
}

uint32_t JsonSchemaCompiler::array(const json::object& s, const std::string& path) {
  const uint32_t min = bound(s, "minItems", 0, kMaxItemsBound, path);
  const uint32_t max = s.contains("maxItems") ? bound(s, "maxItems", 0, kMaxItemsBound, path) : UINT32_MAX;
  if (max < min) throw SchemaError(child(path, "maxItems"), "'maxItems' is below 'minItems'");
  const json::value* items = s.if_contains("items");
  if (items && items->is_array()) throw SchemaError(child(path, "items"), "tuple 'items' is not supported");
  const uint32_t item = items ? value(*items, child(path, "items")) : any_value();
  Seq seq = b_.literal("[");
  seq.push_back(GrammarBuilder::call(list(item, min, max)));
  b_.literal(seq, "]");
  return b_.rule({seq});
}

uint32_t JsonSchemaCompiler::string(const json::object& s, const std::string& path) {
  const uint32_t min = bound(s, "minLength", 0, kMaxStringChars, path);
  const uint32_t max = bound(s, "maxLength", kMaxStringChars, kMaxStringChars, path);
  if (max < min) throw SchemaError(child(path, "maxLength"), "'maxLength' is below 'minLength'");
  Seq seq = b_.literal("\"");
  seq.push_back(b_.string_body(min, max));
  b_.literal(seq, "\"");
  return b_.rule({seq});
}

// One optional space after ':' and ',' (json.dumps' style, which the V4 template writes and models
// learnt); no other whitespace.
uint32_t JsonSchemaCompiler::space() {
  if (space_ < 0) space_ = b_.rule({b_.literal(" "), Seq{}});
  return uint32_t(space_);
}

uint32_t JsonSchemaCompiler::string_any() {
  if (str_ < 0) str_ = string(json::object{}, "");
  return uint32_t(str_);
}

uint32_t JsonSchemaCompiler::number(bool integer) {
  int64_t& cached = integer ? int_ : num_;
  if (cached >= 0) return uint32_t(cached);
  const ByteSet digit = range('0', '9');
  const uint32_t sign = b_.rule({b_.literal("-"), Seq{}});
  // 15 digits stay below 2^53, exact in every JSON reader (JavaScript's numbers included); a 2-digit
  // exponent stays finite in a double.
  const uint32_t whole = b_.rule({b_.literal("0"), Seq{b_.byte(range('1', '9')), b_.repeat(digit, 0, 14)}});
  Seq seq{GrammarBuilder::call(sign), GrammarBuilder::call(whole)};
  if (!integer) {
    Seq frac = b_.literal(".");
    frac.push_back(b_.repeat(digit, 1, 15));
    Seq exp{b_.byte(one_of("eE")), GrammarBuilder::call(b_.rule({Seq{b_.byte(one_of("+-"))}, Seq{}})),
            b_.repeat(digit, 1, 2)};
    seq.push_back(GrammarBuilder::call(b_.rule({frac, Seq{}})));
    seq.push_back(GrammarBuilder::call(b_.rule({exp, Seq{}})));
  }
  cached = b_.rule({seq});
  return uint32_t(cached);
}

uint32_t JsonSchemaCompiler::any_value() {
  if (any_ >= 0) return uint32_t(any_);
  const uint32_t v = b_.declare();
  any_ = v;
  const uint32_t obj = free_object(v);
  Seq arr = b_.literal("[");
  arr.push_back(GrammarBuilder::call(list(v, 0, UINT32_MAX)));
  b_.literal(arr, "]");
  for (uint32_t r : {obj, b_.rule({arr}), string_any(), number(false)}) b_.add_alternative(v, {GrammarBuilder::call(r)});
  for (const char* word : {"true", "false", "null"}) b_.add_alternative(v, b_.literal(word));
  return v;
}

Grammar json_schema_grammar(const json::value& schema) {
  GrammarBuilder b;
  JsonSchemaCompiler c(b, schema);
  const uint32_t root = c.value(schema, "");
  return std::move(b).build(root);
}

Grammar json_object_grammar() {
  GrammarBuilder b;
  const json::value schema = json::object{{"type", "object"}};
  JsonSchemaCompiler c(b, schema);
  const uint32_t root = c.value(schema, "");
  return std::move(b).build(root);
}

}  // namespace v4::grammar
