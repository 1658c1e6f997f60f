#include <gtest/gtest.h>

#include "runtime/text_stream.h"

using namespace v4::runtime;

TEST(TextStream, HoldsSplitUtf8UntilComplete) {
  StopTextStream s;
  EXPECT_EQ(s.push("a\xE2\x82"), "a");
  EXPECT_EQ(s.withheld_bytes(), 2u);
  EXPECT_EQ(s.push("\xAC!"), "\xE2\x82\xAC!");
}

TEST(TextStream, InvalidBytesBecomeReplacementCharacters) {
  StopTextStream s;
  EXPECT_EQ(s.push("x\xFFy"), "x\xEF\xBF\xBDy");
  EXPECT_EQ(s.push("\xE2\x82"), "");
  EXPECT_EQ(s.flush(), "\xEF\xBF\xBD");  // incomplete at the end
  EXPECT_EQ(s.push("\xC0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD");  // overlong encoding
}

TEST(TextStream, StopSplitAcrossTokensIsNeverLeaked) {
  StopTextStream s({"STOP"});
  EXPECT_EQ(s.push("ab"), "ab");
  EXPECT_EQ(s.push("S"), "");
  EXPECT_EQ(s.push("T"), "");
  EXPECT_FALSE(s.stopped());
  EXPECT_EQ(s.push("OPxyz"), "");
  EXPECT_TRUE(s.stopped());
  EXPECT_EQ(s.matched_stop(), "STOP");
  EXPECT_EQ(s.push("more"), "");
  EXPECT_EQ(s.flush(), "");
}

TEST(TextStream, WithheldCandidateIsReleasedOnMismatch) {
  StopTextStream s({"STOP"});
  EXPECT_EQ(s.push("aST"), "a");
  EXPECT_EQ(s.push("x"), "STx");
  EXPECT_EQ(s.push("SSTO"), "S");  // "STO" still a candidate
  EXPECT_EQ(s.flush(), "STO");
  EXPECT_FALSE(s.stopped());
}

TEST(TextStream, StopInsideOneTokenCutsTheText) {
  StopTextStream s({"\n\n"});
  EXPECT_EQ(s.push("line\n\nrest"), "line");
  EXPECT_TRUE(s.stopped());
}

TEST(TextStream, EarliestOfSeveralStopsWins) {
  StopTextStream s({"cd", "bcde", "x"});
  EXPECT_EQ(s.push("ab"), "a");  // "b" may start "bcde"
  EXPECT_EQ(s.push("cdef"), "b");  // "cd" completes before "bcde"
  EXPECT_EQ(s.matched_stop(), "cd");
}

TEST(TextStream, MultiByteStopMatchedAcrossSplitCharacter) {
  StopTextStream s({"\xE2\x82\xAC"});
  EXPECT_EQ(s.push("5\xE2"), "5");
  EXPECT_EQ(s.push("\x82"), "");
  EXPECT_EQ(s.push("\xAC"), "");
  EXPECT_TRUE(s.stopped());
}
