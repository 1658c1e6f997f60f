// The local provider's index: one FTS5 table (title, url, body, date), built from a folder of files.
#include "search/local_index.h"

#include <sqlite3.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace v4::search {

namespace fs = std::filesystem;

namespace {

std::string read_file(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  if (!f) throw std::runtime_error("cannot read " + p.string());
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

std::string trim(std::string s) {
  auto sp = [](unsigned char c) { return std::isspace(c) != 0; };
  while (!s.empty() && sp(s.back())) s.pop_back();
  size_t i = 0;
  while (i < s.size() && sp(s[i])) ++i;
  return s.substr(i);
}

std::string unquote(std::string s) {
  s = trim(std::move(s));
  if (s.size() >= 2 && (s.front() == '"' || s.front() == '\'') && s.back() == s.front()) s = s.substr(1, s.size() - 2);
  return s;
}

std::string lower(std::string s) {
  for (auto& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Markdown: YAML-like front matter between "---" lines gives title/url/date.
void read_markdown(const std::string& text, IndexedDocument& d) {
  std::string body = text;
  if (text.rfind("---\n", 0) == 0) {
    auto end = text.find("\n---", 4);
    if (end != std::string::npos) {
      std::istringstream fm(text.substr(4, end - 4));
      for (std::string line; std::getline(fm, line);) {
        auto colon = line.find(':');
        if (colon == std::string::npos) continue;
        std::string key = lower(trim(line.substr(0, colon))), value = unquote(line.substr(colon + 1));
        if (key == "title") d.title = value;
        else if (key == "url") d.url = value;
        else if (key == "date") d.date = value.substr(0, 10);
      }
      auto nl = text.find('\n', end + 4);
      body = nl == std::string::npos ? "" : text.substr(nl + 1);
    }
  }
  if (d.title.empty()) {
    std::istringstream lines(body);
    for (std::string line; std::getline(lines, line);)
      if (line.rfind("# ", 0) == 0) {
        d.title = trim(line.substr(2));
        break;
      }
  }
  d.body = body;
}

void decode_entities(std::string& s) {
  static const std::pair<const char*, const char*> kEntities[] = {
      {"&amp;", "&"}, {"&lt;", "<"}, {"&gt;", ">"}, {"&quot;", "\""}, {"&#39;", "'"}, {"&nbsp;", " "}};
  for (auto& [from, to] : kEntities)
    for (size_t p = s.find(from); p != std::string::npos; p = s.find(from, p + 1)) s.replace(p, std::strlen(from), to);
}

// HTML: the <title>, and the text with scripts, styles and tags removed.
void read_html(const std::string& html, IndexedDocument& d) {
  std::string low = lower(html);
  if (auto a = low.find("<title"); a != std::string::npos) {
    auto open_end = low.find('>', a);
    auto close = low.find("</title>", a);
    if (open_end != std::string::npos && close != std::string::npos && close > open_end)
      d.title = trim(html.substr(open_end + 1, close - open_end - 1));
  }
  std::string text;
  for (size_t i = 0; i < html.size();) {
    if (html[i] != '<') {
      text += html[i++];
      continue;
    }
    for (const char* skip : {"script", "style", "title"}) {
      if (low.compare(i + 1, std::strlen(skip), skip) == 0) {
        auto close = low.find(std::string("</") + skip, i);
        if (close != std::string::npos) i = close;
        break;
      }
    }
    auto end = html.find('>', i);
    if (end == std::string::npos) break;
    i = end + 1;
    text += ' ';
  }
  decode_entities(text);
  decode_entities(d.title);
  d.body = text;
}

struct Db {
  sqlite3* db = nullptr;
  ~Db() { sqlite3_close(db); }
  void exec(const char* sql) {
    char* err = nullptr;
    if (sqlite3_exec(db, sql, nullptr, nullptr, &err) != SQLITE_OK) {
      std::string msg = err ? err : "?";
      sqlite3_free(err);
      throw std::runtime_error(std::string("search index: ") + msg);
    }
  }
};

struct Statement {
  sqlite3_stmt* st = nullptr;
  Statement(sqlite3* db, const char* sql) {
    if (sqlite3_prepare_v2(db, sql, -1, &st, nullptr) != SQLITE_OK)
      throw std::runtime_error(std::string("search index: ") + sqlite3_errmsg(db));
  }
  ~Statement() { sqlite3_finalize(st); }
  std::string text(int col) const {
    auto* p = sqlite3_column_text(st, col);
    return p ? reinterpret_cast<const char*>(p) : "";
  }
};

std::string host_of(const std::string& url) {
  auto sep = url.find("://");
  if (sep == std::string::npos) return {};
  std::string rest = url.substr(sep + 3);
  rest = rest.substr(0, rest.find_first_of("/?#"));
  rest = rest.substr(rest.find('@') == std::string::npos ? 0 : rest.find('@') + 1);
  return lower(rest.substr(0, rest.find(':')));
}

bool domain_matches(const std::string& host, const std::string& domain) {
  std::string d = lower(domain);
  return host == d || (host.size() > d.size() && host.ends_with("." + d));
}

bool passes_filters(const Query& q, const Result& r) {
  std::string host = host_of(r.url);
  if (!q.include_domains.empty() &&
      std::none_of(q.include_domains.begin(), q.include_domains.end(), [&](auto& d) { return domain_matches(host, d); }))
    return false;
  for (auto& d : q.exclude_domains)
    if (domain_matches(host, d)) return false;
  if (q.from_date || q.to_date) {
    if (!r.date) return false;  // undated documents cannot be shown to be in the range
    if (q.from_date && *r.date < *q.from_date) return false;
    if (q.to_date && *r.date > *q.to_date) return false;
  }
  return true;
}

}  // namespace

IndexedDocument read_document(const std::string& path) {
  fs::path p = fs::absolute(path);
  std::string ext = lower(p.extension().string());
  std::string text = read_file(p);
  IndexedDocument d;
  if (ext == ".html" || ext == ".htm") read_html(text, d);
  else if (ext == ".md" || ext == ".markdown") read_markdown(text, d);
  else d.body = text;
  if (d.title.empty()) d.title = p.filename().string();
  if (d.url.empty()) d.url = "file://" + p.lexically_normal().string();
  return d;
}

BuildReport build_index(const std::string& docs_dir, const std::string& out) {
  if (!fs::is_directory(docs_dir)) throw std::runtime_error("--docs " + docs_dir + " is not a directory");
  std::vector<fs::path> files;
  BuildReport report;
  for (auto& e : fs::recursive_directory_iterator(docs_dir)) {
    if (!e.is_regular_file()) continue;
    std::string ext = lower(e.path().extension().string());
    if (ext == ".md" || ext == ".markdown" || ext == ".html" || ext == ".htm" || ext == ".txt") files.push_back(e.path());
    else ++report.skipped;
  }
  std::sort(files.begin(), files.end());  // the same folder gives the same index
  std::string tmp = out + ".tmp";
  fs::remove(tmp);
  {
    Db db;
    if (sqlite3_open(tmp.c_str(), &db.db) != SQLITE_OK) throw std::runtime_error("cannot create " + tmp);
    db.exec("CREATE VIRTUAL TABLE docs USING fts5(title, url UNINDEXED, body, date UNINDEXED);");
    db.exec("BEGIN;");
    Statement ins(db.db, "INSERT INTO docs(title, url, body, date) VALUES (?, ?, ?, ?)");
    for (auto& f : files) {
      IndexedDocument d = read_document(f.string());
      sqlite3_bind_text(ins.st, 1, d.title.c_str(), int(d.title.size()), SQLITE_TRANSIENT);
      sqlite3_bind_text(ins.st, 2, d.url.c_str(), int(d.url.size()), SQLITE_TRANSIENT);
      sqlite3_bind_text(ins.st, 3, d.body.c_str(), int(d.body.size()), SQLITE_TRANSIENT);
      if (d.date.empty()) sqlite3_bind_null(ins.st, 4);
      else sqlite3_bind_text(ins.st, 4, d.date.c_str(), int(d.date.size()), SQLITE_TRANSIENT);
      if (sqlite3_step(ins.st) != SQLITE_DONE) throw std::runtime_error(std::string("search index: ") + sqlite3_errmsg(db.db));
      sqlite3_reset(ins.st);
      ++report.documents;
    }
    db.exec("COMMIT;");
    db.exec("INSERT INTO docs(docs) VALUES ('optimize');");
  }
  fs::rename(tmp, out);
  return report;
}

std::string fts_query(const std::string& text) {
  std::string q, word;
  int words = 0;
  auto flush = [&] {
    if (!word.empty() && words < 32) {
      q += (q.empty() ? "" : " OR ") + std::string("\"") + word + "\"";
      ++words;
    }
    word.clear();
  };
  for (unsigned char c : text) {
    if (std::isalnum(c) || c >= 0x80) word += char(c);
    else flush();
  }
  flush();
  return q;
}

LocalIndexProvider::LocalIndexProvider(const std::string& index_path) : path_(index_path) {
  Db db;
  if (sqlite3_open_v2(path_.c_str(), &db.db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK)
    throw std::runtime_error("--search-index " + path_ + ": cannot open");
  Statement check(db.db, "SELECT count(*) FROM docs");  // throws when it is not an index
}

LocalIndexProvider::~LocalIndexProvider() = default;

std::vector<Result> LocalIndexProvider::search(const Query& query) const {
  std::string match = fts_query(query.text);
  if (match.empty()) throw Error(Error::Kind::no_results, "the web search found nothing (the query has no words)");
  Db db;
  if (sqlite3_open_v2(path_.c_str(), &db.db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK)
    throw Error(Error::Kind::unavailable, "the local search index cannot be opened");
  // Title matches weigh more than body matches; the snippet is cut from the body around the hits.
  Statement st(db.db,
               "SELECT title, url, snippet(docs, 2, '', '', '...', 48), date FROM docs WHERE docs MATCH ? "
               "ORDER BY bm25(docs, 5.0, 0.0, 1.0, 0.0)");
  sqlite3_bind_text(st.st, 1, match.c_str(), int(match.size()), SQLITE_TRANSIENT);
  std::vector<Result> out;
  int rc;
  while (int(out.size()) < query.max_results && (rc = sqlite3_step(st.st)) == SQLITE_ROW) {
    Result r{st.text(0), st.text(1), st.text(2), std::nullopt};
    if (sqlite3_column_type(st.st, 3) != SQLITE_NULL) r.date = st.text(3);
    if (passes_filters(query, r)) out.push_back(std::move(r));
  }
  if (out.empty()) throw Error(Error::Kind::no_results, "the web search found nothing");
  return out;
}

}  // namespace v4::search
