#pragma once
// The local provider: an SQLite FTS5 index of Markdown, HTML and text files, ranked by BM25 with
// snippets, for machines without internet (and the demo). `v4flash search-index build` writes it.
#include <memory>
#include <string>
#include <vector>

#include "search/provider.h"

struct sqlite3;

namespace v4::search {

struct IndexedDocument {
  std::string title, url, body;
  std::string date;  // YYYY-MM-DD or empty
};

// Reads one file: Markdown (front matter `title:`, `url:`, `date:`; else the first `# ` heading),
// HTML (<title>, tags stripped) or plain text. The URL defaults to file://<absolute path>.
IndexedDocument read_document(const std::string& path);

struct BuildReport {
  int documents = 0;
  int skipped = 0;  // files of other types
};
// Indexes every .md/.markdown/.html/.htm/.txt file under `docs_dir` into a new index at `out`
// (replaced if it exists). Throws std::runtime_error.
BuildReport build_index(const std::string& docs_dir, const std::string& out);

class LocalIndexProvider final : public Provider {
 public:
  explicit LocalIndexProvider(const std::string& index_path);  // throws std::runtime_error
  ~LocalIndexProvider() override;
  std::vector<Result> search(const Query& query) const override;
  std::string name() const override { return "local"; }
  bool live_web() const override { return false; }

 private:
  std::string path_;
};

// The FTS5 query for free text: its words, each quoted, joined by OR (BM25 ranks documents that
// match more and rarer words first). Empty when the text has no words.
std::string fts_query(const std::string& text);

}  // namespace v4::search
