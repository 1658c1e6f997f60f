#pragma once
// The console's static files, embedded at build time from web/ (cmake/embed_assets.cmake).
#include <string>
#include <string_view>

namespace v4::console {

struct Asset {
  std::string_view path;          // relative to web/, e.g. "app.js"
  std::string_view content_type;
  std::string_view data;
};

const Asset* find_asset(std::string_view path);  // nullptr when absent
std::string_view assets_build_id();              // digest of every embedded file: the cache-busting path part

}  // namespace v4::console
