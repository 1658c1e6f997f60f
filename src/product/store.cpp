// Store factory and the row accessors shared by both backends.
#include "product/store.h"

#include <charconv>

namespace v4::product {

int64_t SqlRow::integer(size_t i) const {
  const auto& cell = cells.at(i);
  if (const auto* v = std::get_if<int64_t>(&cell)) return *v;
  if (const auto* s = std::get_if<std::string>(&cell)) {
    int64_t v = 0;
    auto [end, ec] = std::from_chars(s->data(), s->data() + s->size(), v);
    if (ec == std::errc() && end == s->data() + s->size()) return v;
    throw std::runtime_error("column " + std::to_string(i) + " is not an integer: '" + *s + "'");
  }
  throw std::runtime_error("column " + std::to_string(i) + " is NULL");
}

std::string SqlRow::text(size_t i) const {
  const auto& cell = cells.at(i);
  if (const auto* s = std::get_if<std::string>(&cell)) return *s;
  if (const auto* v = std::get_if<int64_t>(&cell)) return std::to_string(*v);
  throw std::runtime_error("column " + std::to_string(i) + " is NULL");
}

bool Store::is_postgres_url(const std::string& url_or_path) {
  return url_or_path.rfind("postgresql://", 0) == 0 || url_or_path.rfind("postgres://", 0) == 0;
}

std::unique_ptr<Store> Store::open(const std::string& url_or_path) {
  if (url_or_path.empty()) throw std::invalid_argument("empty database path");
  if (is_postgres_url(url_or_path)) return open_postgres_store(url_or_path);
  return open_sqlite_store(url_or_path);
}

}  // namespace v4::product
