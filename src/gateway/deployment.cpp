#include "gateway/deployment.h"

#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>
#include <stdexcept>

namespace v4::gateway {

namespace json = boost::json;

namespace {

[[noreturn]] void fail(const std::string& path, const std::string& what) { throw std::invalid_argument(path + ": " + what); }

void only(const json::object& o, const std::string& path, std::initializer_list<const char*> keys) {
  for (auto& [k, v] : o) {
    bool known = false;
    for (auto* key : keys) known = known || k == key;
    if (!known) fail(path + "." + std::string(k), "unknown key (see docs/deployment.md)");
  }
}

const json::object& object_at(const json::value& v, const std::string& path) {
  if (!v.is_object()) fail(path, "must be an object");
  return v.get_object();
}

std::string string_at(const json::object& o, const char* key, const std::string& path, bool required = false) {
  auto* v = o.if_contains(key);
  if (!v) {
    if (required) fail(path + "." + key, "is required");
    return {};
  }
  if (!v->is_string() || v->get_string().empty()) fail(path + "." + key, "must be a non-empty string");
  return std::string(v->get_string());
}

int64_t integer_at(const json::object& o, const char* key, const std::string& path, int64_t fallback, int64_t lo,
                   int64_t hi) {
  auto* v = o.if_contains(key);
  if (!v) return fallback;
  if (!v->is_int64() && !v->is_uint64()) fail(path + "." + key, "must be an integer");
  int64_t n = v->is_int64() ? v->get_int64() : int64_t(v->get_uint64());
  if (n < lo || n > hi) fail(path + "." + key, "must be between " + std::to_string(lo) + " and " + std::to_string(hi));
  return n;
}

BackendSpec parse_backend(const json::value& v, const std::string& id, const std::string& path,
                          const std::function<const char*(const char*)>& env) {
  const json::object& o = object_at(v, path);
  BackendSpec b;
  b.max_concurrency = int(integer_at(o, "max_concurrency", path, 0, 0, 1 << 20));
  if (auto* local = o.if_contains("local")) {
    if (!local->is_bool() || !local->get_bool()) fail(path + ".local", "must be true (or left out for an upstream)");
    only(o, path, {"local", "max_concurrency", "name"});
    b.local = true;
    b.name = o.contains("name") ? string_at(o, "name", path) : "local";
    return b;
  }
  only(o, path, {"url", "model", "api_key_env", "ca_file", "health_url", "max_concurrency", "extra_body", "name"});
  b.url = string_at(o, "url", path, true);
  if (b.url.rfind("http://", 0) != 0 && b.url.rfind("https://", 0) != 0)
    fail(path + ".url", "must start with http:// or https:// (got '" + b.url + "')");
  while (b.url.size() > 8 && b.url.back() == '/') b.url.pop_back();
  b.model = o.contains("model") ? string_at(o, "model", path) : id;
  b.ca_file = string_at(o, "ca_file", path);
  b.health_url = string_at(o, "health_url", path);
  b.name = o.contains("name") ? string_at(o, "name", path) : b.url;
  if (auto* extra = o.if_contains("extra_body")) {
    b.extra_body = object_at(*extra, path + ".extra_body");
    for (auto* k : {"model", "messages", "stream", "stream_options"})
      if (b.extra_body.contains(k)) fail(path + ".extra_body." + k, "is set by the gateway");
  }
  b.api_key_env = string_at(o, "api_key_env", path);
  if (!b.api_key_env.empty()) {
    const char* key = env ? env(b.api_key_env.c_str()) : std::getenv(b.api_key_env.c_str());
    if (!key || !*key) fail(path + ".api_key_env", "the environment variable " + b.api_key_env + " is not set");
    b.api_key = key;
  }
  return b;
}

ModelSpec parse_model(const json::value& v, const std::string& id, const std::string& path,
                      const std::function<const char*(const char*)>& env) {
  const json::object& o = object_at(v, path);
  only(o, path, {"region", "rates", "parameters", "backends"});
  ModelSpec m;
  m.region = string_at(o, "region", path);
  if (auto* r = o.if_contains("rates")) {
    object_at(*r, path + ".rates");
    try {
      auto cards = product::RateCards::from_json(json::serialize(json::object{{"models", json::object{{id, *r}}}}));
      m.rates = *cards.find(id);
    } catch (const std::invalid_argument& e) {
      fail(path + ".rates", e.what());
    }
  }
  if (auto* p = o.if_contains("parameters")) {
    if (!p->is_array()) fail(path + ".parameters", "must be a list of request field names");
    m.parameters.emplace();
    for (size_t i = 0; i < p->get_array().size(); ++i) {
      auto& name = p->get_array()[i];
      if (!name.is_string() || name.get_string().empty())
        fail(path + ".parameters[" + std::to_string(i) + "]", "must be a non-empty string");
      m.parameters->emplace_back(name.get_string());
    }
  }
  auto* backends = o.if_contains("backends");
  if (!backends) fail(path + ".backends", "is required");
  if (!backends->is_array() || backends->get_array().empty()) fail(path + ".backends", "must be a non-empty list");
  int locals = 0;
  for (size_t i = 0; i < backends->get_array().size(); ++i) {
    m.backends.push_back(parse_backend(backends->get_array()[i], id, path + ".backends[" + std::to_string(i) + "]", env));
    if (m.backends.back().local && ++locals > 1)
      fail(path + ".backends[" + std::to_string(i) + "]", "the local engine is listed twice");
  }
  return m;
}

RoutingOptions parse_routing(const json::value& v) {
  const std::string path = "routing";
  const json::object& o = object_at(v, path);
  only(o, path, {"connect_timeout_ms", "first_byte_timeout_ms", "idle_timeout_ms", "health_interval_ms",
                 "eject_after_errors", "eject_ms", "affinity_tokens", "max_attempts"});
  RoutingOptions r;
  auto ms = [&](const char* key, std::chrono::milliseconds d, int64_t lo) {
    return std::chrono::milliseconds(integer_at(o, key, path, d.count(), lo, 86'400'000));
  };
  r.connect_timeout = ms("connect_timeout_ms", r.connect_timeout, 1);
  r.first_byte_timeout = ms("first_byte_timeout_ms", r.first_byte_timeout, 1);
  r.idle_timeout = ms("idle_timeout_ms", r.idle_timeout, 1);
  r.health_interval = ms("health_interval_ms", r.health_interval, 0);
  r.eject_time = ms("eject_ms", r.eject_time, 1);
  r.eject_after_errors = int(integer_at(o, "eject_after_errors", path, r.eject_after_errors, 1, 1000));
  r.affinity_tokens = int(integer_at(o, "affinity_tokens", path, r.affinity_tokens, 0, 1 << 20));
  r.max_attempts = int(integer_at(o, "max_attempts", path, r.max_attempts, 1, 100));
  return r;
}

}  // namespace

bool Deployment::has_local() const {
  for (auto& [id, m] : models)
    for (auto& b : m.backends)
      if (b.local) return true;
  return false;
}

Deployment Deployment::from_json(const std::string& text, std::function<const char*(const char*)> env) {
  boost::system::error_code ec;
  json::value root = json::parse(text, ec);
  if (ec) throw std::invalid_argument("not JSON: " + ec.message());
  if (!root.is_object()) fail("(top)", "must be an object with \"models\"");
  only(root.get_object(), "(top)", {"models", "routing"});
  auto* models = root.get_object().if_contains("models");
  if (!models) fail("models", "is required");
  if (!models->is_object() || models->get_object().empty()) fail("models", "must be a non-empty object of model ids");
  Deployment d;
  for (auto& [id, spec] : models->get_object())
    d.models.emplace(std::string(id), parse_model(spec, std::string(id), "models." + std::string(id), env));
  if (auto* r = root.get_object().if_contains("routing")) d.routing = parse_routing(*r);
  return d;
}

Deployment Deployment::from_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::invalid_argument("--deployment " + path + ": cannot be read");
  std::stringstream ss;
  ss << in.rdbuf();
  try {
    return from_json(ss.str());
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument("--deployment " + path + ": " + e.what());
  }
}

}  // namespace v4::gateway
