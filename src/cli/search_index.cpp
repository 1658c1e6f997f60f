// `v4flash search-index`: the local web-search provider's index (src/search/local_index.h).
//   search-index build --docs DIR --out FILE       index the .md/.html/.txt files under DIR
//   search-index query --index FILE [--results N] TEXT...   what `serve --search local` would find
#include <cstdio>
#include <stdexcept>

#include "cli/command.h"
#include "search/local_index.h"

namespace v4::cli {
namespace {

constexpr const char* kUsage =
    "usage: v4flash search-index build --docs DIR --out FILE\n"
    "       v4flash search-index query --index FILE [--results N] TEXT...\n";

int build(const ArgParser& p) {
  p.check_known({"docs", "out"});
  auto docs = p.value("docs"), out = p.value("out");
  if (!docs || !out) throw std::invalid_argument(std::string("search-index build needs --docs DIR and --out FILE\n") + kUsage);
  auto report = search::build_index(*docs, *out);
  std::printf("indexed %d documents from %s into %s (%d other files skipped)\n", report.documents, docs->c_str(),
              out->c_str(), report.skipped);
  return 0;
}

int query(const ArgParser& p) {
  p.check_known({"index", "results"});
  auto index = p.value("index");
  if (!index) throw std::invalid_argument(std::string("search-index query needs --index FILE\n") + kUsage);
  search::Query q;
  auto words = p.positional();
  for (size_t i = 1; i < words.size(); ++i) q.text += (q.text.empty() ? "" : " ") + words[i];
  q.max_results = int(p.integer("results", 5, 1, 50));
  search::LocalIndexProvider provider(*index);
  try {
    auto results = provider.search(q);
    for (size_t i = 0; i < results.size(); ++i)
      std::printf("[%zu] %s - %s\n    %s\n", i + 1, results[i].title.c_str(), results[i].url.c_str(),
                  results[i].content.c_str());
  } catch (const search::Error& e) {
    std::printf("%s\n", e.what());
    return 1;
  }
  return 0;
}

int search_index_main(const Args& args) {
  ArgParser p(args);
  auto pos = p.positional();
  if (pos.empty()) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  if (pos[0] == "build") return build(p);
  if (pos[0] == "query") return query(p);
  throw std::invalid_argument("unknown search-index command '" + pos[0] + "'\n" + kUsage);
}

}  // namespace
}  // namespace v4::cli

V4_COMMAND("search-index", "the local web-search index: build it from a folder of documents, query it",
           v4::cli::search_index_main);
