// What the model and the reader see of a search: the query, the dated context and the footer.
#include <gtest/gtest.h>

#include "search/sources.h"

using namespace v4::search;

TEST(Sources, QueryIsTheMessageCollapsedAndCutAtAWord) {
  EXPECT_EQ(query_from_message("  What is\n\nthe  capital?  "), "What is the capital?");
  std::string long_text;
  for (int i = 0; i < 100; ++i) long_text += "word" + std::to_string(i) + " ";
  std::string q = query_from_message(long_text, 50);
  EXPECT_LE(q.size(), 50u);
  EXPECT_NE(q.back(), ' ');
  EXPECT_EQ(long_text.find(q), 0u);
  EXPECT_EQ(long_text[q.size()], ' ');  // cut between words
  std::string utf8 = std::string(30, 'a') + "\xc3\xa9\xc3\xa9\xc3\xa9";  // no space to cut at
  EXPECT_EQ(query_from_message(utf8, 31), std::string(30, 'a'));  // never half a character
}

TEST(Sources, ContextIsDatedNumberedAndAsksForCitations) {
  std::vector<Result> r = {{"Bern", "https://a.example/bern", "Bern is the capital.", "2026-02-03"},
                           {"Line\nbreak", "https://b.example", std::string(100, 'x'), std::nullopt}};
  std::string c = context_message("capital of Switzerland", r, "2026-12-06", 40);
  EXPECT_NE(c.find("conducted on 2026-12-06"), std::string::npos);
  EXPECT_NE(c.find("\"capital of Switzerland\""), std::string::npos);
  EXPECT_NE(c.find("like [1]"), std::string::npos);
  EXPECT_NE(c.find("[1] Bern\nURL: https://a.example/bern\nPublished: 2026-02-03\nBern is the capital.\n"), std::string::npos);
  EXPECT_NE(c.find("[2] Line break\nURL: https://b.example\n" + std::string(40, 'x') + "...\n"), std::string::npos);
}

TEST(Sources, FooterListsEveryResult) {
  std::vector<Result> r = {{"Bern", "https://a.example/bern", "", {}}, {"Zurich", "https://b.example/z", "", {}}};
  EXPECT_EQ(sources_footer(r), "\n\nSources:\n[1] Bern - https://a.example/bern\n[2] Zurich - https://b.example/z");
  EXPECT_EQ(sources_footer({}), "");
  EXPECT_EQ(utc_date_today().size(), 10u);
}
