// Kernel variant selection: names, what the CPU supports, overrides and their errors.
#include <gtest/gtest.h>

#include <stdexcept>
#include <string>

#include "kernels/cpu_features.h"
#include "kernels/isa.h"

namespace v4::kernels {
namespace {

TEST(Isa, NamesRoundTripAndUnknownNamesAreRefused) {
  for (Isa isa : all_isas()) EXPECT_EQ(parse_isa(isa_name(isa)), isa);
  try {
    parse_isa("avx512-bf16");
    FAIL() << "accepted an unknown name";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("avx512bf16"), std::string::npos) << e.what();  // names the choices
  }
}

TEST(Isa, SupportFollowsTheFeatureTiers) {
  const CpuFeatures& f = cpu_features();
  EXPECT_TRUE(isa_supported(Isa::scalar));
  EXPECT_EQ(isa_supported(Isa::avx2), f.has_avx2());
  EXPECT_EQ(isa_supported(Isa::avx512), f.has_avx512());
  EXPECT_EQ(isa_supported(Isa::avx512bf16), f.has_avx512bf16());
  // Each tier needs the one below it.
  if (f.has_avx512bf16()) {
    EXPECT_TRUE(f.has_avx512());
  }
  if (f.has_avx512()) {
    EXPECT_TRUE(f.has_avx2());
  }
  const auto supported = supported_isas();
  ASSERT_FALSE(supported.empty());
  EXPECT_EQ(supported.front(), Isa::scalar);
  EXPECT_EQ(supported.back(), best_isa());
  std::printf("%s\n", isa_report().c_str());  // the CPU this run tested, in the ctest log
}

TEST(Isa, ScopeSelectsAndRestores) {
  const Isa before = active_isa();
  {
    const IsaScope scope(Isa::scalar);
    EXPECT_EQ(active_isa(), Isa::scalar);
  }
  EXPECT_EQ(active_isa(), before);
}

TEST(Isa, UnsupportedVariantIsRefused) {
  if (best_isa() == Isa::avx512bf16) GTEST_SKIP() << "this CPU runs every variant";
  const Isa before = active_isa();
  EXPECT_THROW(set_isa(Isa::avx512bf16), std::invalid_argument);
  EXPECT_EQ(active_isa(), before);
}

}  // namespace
}  // namespace v4::kernels
