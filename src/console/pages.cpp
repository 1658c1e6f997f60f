// The HTML shell for every page (the page's script renders it) and the embedded assets under
// /assets/<build id>/: immutable for a year, because a new build changes the path.
#include "console/assets.h"
#include "console/routes.h"

namespace v4::console {

namespace {

api::WebResponse asset_reply(const Asset& a, const std::string& cache_control) {
  api::WebResponse res;
  res.headers.emplace_back("Content-Type", std::string(a.content_type));
  res.headers.emplace_back("Cache-Control", cache_control);
  add_security_headers(res);
  res.body = std::string(a.data);
  return res;
}

api::WebResponse shell(const std::string& page) {
  const Asset* index = find_asset("index.html");
  std::string html(index->data);
  const std::string base = "/assets/" + std::string(assets_build_id());
  for (auto [from, to] : {std::pair<std::string, std::string>{"%ASSETS%", base}, {"%PAGE%", page}})
    for (size_t at = html.find(from); at != std::string::npos; at = html.find(from, at + to.size()))
      html.replace(at, from.size(), to);
  api::WebResponse res;
  res.headers.emplace_back("Content-Type", "text/html; charset=utf-8");
  res.headers.emplace_back("Cache-Control", "no-cache");
  add_security_headers(res);
  res.body = std::move(html);
  return res;
}

}  // namespace

std::optional<api::WebResponse> page_routes(Context& ctx) {
  const auto& p = ctx.req.path;
  if (ctx.req.method != "GET") return std::nullopt;
  if (p.rfind("/assets/", 0) == 0) {
    std::string rest = p.substr(8);
    auto slash = rest.find('/');
    if (slash == std::string::npos || rest.substr(0, slash) != assets_build_id()) return std::nullopt;
    const Asset* a = find_asset(rest.substr(slash + 1));
    if (!a || a->path == "index.html") return std::nullopt;
    return asset_reply(*a, "public, max-age=31536000, immutable");
  }
  if (p == "/favicon.ico") {
    const Asset* a = find_asset("favicon.svg");
    return asset_reply(*a, "public, max-age=86400");
  }
  if (p == "/") return redirect(ctx.session ? "/dashboard" : "/models/deepseek-v4-flash");
  if (p == "/models") return redirect("/models/deepseek-v4-flash");
  if (p == "/models/deepseek-v4-flash") return shell("model");
  if (p == "/signin" || p == "/signup") return shell(p.substr(1));
  if (p == "/dashboard" || p == "/playground") {
    // Signed out: to the sign-in page, which comes back here afterwards.
    if (!ctx.session) return redirect("/signin?next=" + p);
    return shell(p.substr(1));
  }
  return std::nullopt;
}

}  // namespace v4::console
