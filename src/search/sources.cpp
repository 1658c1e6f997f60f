#include "search/sources.h"

#include <cctype>
#include <ctime>

namespace v4::search {

namespace {

// The longest prefix of `s` of at most n bytes that ends on a UTF-8 character boundary.
size_t utf8_cut(const std::string& s, size_t n) {
  if (n >= s.size()) return s.size();
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  return n;
}

std::string one_line(const std::string& s) {
  std::string out;
  for (char c : s) out += (c == '\n' || c == '\r' || c == '\t') ? ' ' : c;
  return out;
}

}  // namespace

std::string query_from_message(const std::string& text, size_t max_bytes) {
  std::string q;
  bool space = false;
  for (char c : text) {
    if (std::isspace(static_cast<unsigned char>(c))) {
      space = !q.empty();
      continue;
    }
    if (space) q += ' ';
    space = false;
    q += c;
  }
  if (q.size() <= max_bytes) return q;
  size_t cut = utf8_cut(q, max_bytes);
  size_t word = q.rfind(' ', cut);
  if (word != std::string::npos && word > max_bytes / 2) cut = word;  // keep whole words unless that loses half
  return q.substr(0, cut);
}

std::string context_message(const std::string& query, const std::vector<Result>& results, const std::string& date,
                            size_t max_content_bytes, size_t first_number) {
  std::string m = "A web search was conducted on " + date + " for \"" + one_line(query) +
                  "\". Incorporate the following web search results into your response. "
                  "Cite a result you use with its number in brackets, like [1].\n";
  for (size_t i = 0; i < results.size(); ++i) {
    const Result& r = results[i];
    m += "\n[" + std::to_string(i + first_number) + "] " + one_line(r.title) + "\nURL: " + r.url + "\n";
    if (r.date) m += "Published: " + *r.date + "\n";
    std::string content = r.content.substr(0, utf8_cut(r.content, max_content_bytes));
    if (content.size() < r.content.size()) content += "...";
    m += content + "\n";
  }
  return m;
}

std::string sources_footer(const std::vector<Result>& results) {
  if (results.empty()) return {};
  std::string f = "\n\nSources:";
  for (size_t i = 0; i < results.size(); ++i)
    f += "\n[" + std::to_string(i + 1) + "] " + one_line(results[i].title) + " - " + results[i].url;
  return f;
}

std::string utc_date_today() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[16];
  std::strftime(buf, sizeof buf, "%Y-%m-%d", &tm);
  return buf;
}

}  // namespace v4::search
