// The local provider: documents read from a folder (front matter, headings, HTML), an FTS5 index
// built from them, BM25 ranking, snippets and filters.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "search/local_index.h"

using namespace v4::search;
namespace fs = std::filesystem;

namespace {

class LocalIndex : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("v4flash-search-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "docs" / "sub");
    write("docs/cheese.md",
          "---\ntitle: \"Swiss cheese\"\nurl: https://cheese.example/swiss\ndate: 2026-03-01\n---\n"
          "Emmental is a Swiss cheese with holes. Cheese cheese cheese from the Alps.\n");
    write("docs/trains.md", "# Railways of Switzerland\n\nThe trains run on time. Some carry cheese.\n");
    write("docs/sub/page.html",
          "<html><head><title>Fondue &amp; more</title><style>p{color:red}</style></head>"
          "<body><p>Fondue is melted <b>cheese</b> in a pot.</p><script>var cheese=1;</script></body></html>");
    write("docs/notes.txt", "Unrelated notes about mountains.");
    write("docs/image.png", "not indexed");
  }
  void TearDown() override { fs::remove_all(dir_); }
  void write(const std::string& rel, const std::string& text) { std::ofstream(dir_ / rel) << text; }
  std::string index() {
    std::string out = (dir_ / "index.db").string();
    auto report = build_index((dir_ / "docs").string(), out);
    EXPECT_EQ(report.documents, 4);
    EXPECT_EQ(report.skipped, 1);
    return out;
  }
  fs::path dir_;
};

Query q(const std::string& text, int n = 5) {
  Query query;
  query.text = text;
  query.max_results = n;
  return query;
}

}  // namespace

TEST_F(LocalIndex, ReadsFrontMatterHeadingsAndHtml) {
  auto md = read_document((dir_ / "docs/cheese.md").string());
  EXPECT_EQ(md.title, "Swiss cheese");
  EXPECT_EQ(md.url, "https://cheese.example/swiss");
  EXPECT_EQ(md.date, "2026-03-01");
  EXPECT_EQ(md.body.find("---"), std::string::npos);
  auto heading = read_document((dir_ / "docs/trains.md").string());
  EXPECT_EQ(heading.title, "Railways of Switzerland");
  EXPECT_EQ(heading.url, "file://" + fs::absolute(dir_ / "docs/trains.md").lexically_normal().string());
  auto html = read_document((dir_ / "docs/sub/page.html").string());
  EXPECT_EQ(html.title, "Fondue & more");
  EXPECT_NE(html.body.find("Fondue is melted  cheese"), std::string::npos) << html.body;
  EXPECT_EQ(html.body.find("color:red"), std::string::npos);
  EXPECT_EQ(html.body.find("var cheese"), std::string::npos);
}

TEST_F(LocalIndex, Bm25RanksTheDocumentAboutTheQueryFirst) {
  LocalIndexProvider p(index());
  auto r = p.search(q("cheese"));
  ASSERT_EQ(r.size(), 3u);  // the three documents that mention cheese, not the notes
  // Many mentions and the title: first. One mention in a long-ish page about trains: last.
  EXPECT_EQ(r[0].title, "Swiss cheese");
  EXPECT_EQ(r[0].date, "2026-03-01");
  EXPECT_EQ(r[2].title, "Railways of Switzerland");
  EXPECT_NE(r[0].content.find("Emmental"), std::string::npos);  // the snippet comes from the body

  auto trains = p.search(q("When do the trains of Switzerland run?"));
  ASSERT_FALSE(trains.empty());
  EXPECT_EQ(trains[0].title, "Railways of Switzerland");
  EXPECT_EQ(p.search(q("cheese", 2)).size(), 2u);
}

TEST_F(LocalIndex, FiltersByDomainAndDate) {
  LocalIndexProvider p(index());
  Query only = q("cheese");
  only.include_domains = {"xample"};  // whole labels only: not a suffix of "cheese.example"
  EXPECT_THROW(p.search(only), Error);
  only.include_domains = {"cheese.example"};
  EXPECT_EQ(p.search(only).size(), 1u);
  Query without = q("cheese");
  without.exclude_domains = {"cheese.example"};
  EXPECT_EQ(p.search(without).size(), 2u);
  Query dated = q("cheese");
  dated.from_date = "2026-04-01";
  try {
    p.search(dated);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind, Error::Kind::no_results);
  }
  dated.from_date = "2026-01-01";
  EXPECT_EQ(p.search(dated).size(), 1u);
}

TEST_F(LocalIndex, QueriesAreWordsNeverFts5Syntax) {
  EXPECT_EQ(fts_query("cheese AND \"x\" NEAR(a) -b*"), R"("cheese" OR "AND" OR "x" OR "NEAR" OR "a" OR "b")");
  EXPECT_EQ(fts_query("  ,;!  "), "");
  LocalIndexProvider p(index());
  EXPECT_NO_THROW(p.search(q("cheese\" OR docs MATCH 'x")));
  try {
    p.search(q("???"));
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind, Error::Kind::no_results);
  }
}

TEST_F(LocalIndex, MissingOrForeignIndexIsRefusedAtStart) {
  EXPECT_THROW(LocalIndexProvider((dir_ / "none.db").string()), std::runtime_error);
  write("docs/notes.db", "this is not sqlite");
  EXPECT_THROW(LocalIndexProvider((dir_ / "docs/notes.db").string()), std::runtime_error);
  EXPECT_THROW(build_index((dir_ / "nope").string(), (dir_ / "x.db").string()), std::runtime_error);
}
