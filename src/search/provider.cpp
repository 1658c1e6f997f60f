#include "search/provider.h"

namespace v4::search {

const char* depth_name(Depth d) {
  switch (d) {
    case Depth::fast: return "fast";
    case Depth::standard: return "standard";
    case Depth::deep: return "deep";
  }
  return "standard";
}

Depth parse_depth(const std::string& s) {
  if (s == "fast") return Depth::fast;
  if (s == "standard") return Depth::standard;
  if (s == "deep") return Depth::deep;
  throw std::invalid_argument("search depth must be fast, standard or deep, got '" + s + "'");
}

const char* kind_name(Error::Kind k) {
  switch (k) {
    case Error::Kind::timeout: return "timeout";
    case Error::Kind::unauthorized: return "unauthorized";
    case Error::Kind::no_credit: return "no_credit";
    case Error::Kind::rate_limited: return "rate_limited";
    case Error::Kind::unavailable: return "unavailable";
    case Error::Kind::bad_response: return "bad_response";
    case Error::Kind::no_results: return "no_results";
  }
  return "?";
}

}  // namespace v4::search
