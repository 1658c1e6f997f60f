// The routing fields of config.json change what the model computes, as the reference's Gate and
// MoE define them: scoring_func (softmax / sigmoid / sqrtsoftplus), norm_topk_prob, and
// n_shared_experts including 0 (routed experts only). The tiny fixture's weights are loaded under
// an edited config; each variant must change the logits, and the shared-expert-free model runs.
#include <gtest/gtest.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>

#include "core/checkpoint.h"
#include "export/safetensors_writer.h"
#include "model/model.h"
#include "reference_fixture.h"

namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using namespace v4;

// A checkpoint dir with the fixture's config edited; without shared experts, their tensors are left out.
std::string variant(const std::string& tag, const std::function<void(json::object&)>& edit, bool drop_shared = false) {
  const fs::path dir = fs::temp_directory_path() / ("v4-cfg-" + tag + "-" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::ifstream in(model::testing::tiny_dir() + "/config.json");
  std::stringstream text;
  text << in.rdbuf();
  json::object cfg = json::parse(text.str()).as_object();
  edit(cfg);
  std::ofstream(dir / "config.json") << json::serialize(cfg);
  if (!drop_shared) {
    fs::create_symlink(model::testing::tiny_dir() + "/model.safetensors", dir / "model.safetensors");
    return dir.string();
  }
  core::SafetensorsWriter w;
  for (const auto& [name, t] : model::testing::tiny_checkpoint().tensors()) {
    if (name.find(".shared_experts.") != std::string::npos) continue;
    w.add_bytes(name, t->dtype, t->shape, std::vector<uint8_t>(t->data, t->data + t->nbytes));
  }
  w.write((dir / "model.safetensors").string());
  return dir.string();
}

std::vector<float> logits(const std::string& dir) {
  auto ckpt = core::Checkpoint::open(dir);
  model::ModelOptions o;
  o.exact = true;
  o.threads = 2;
  auto m = model::Model::load(*ckpt, o);
  auto state = m->new_state();
  const std::vector<int32_t> tokens = {0, 17, 300, 42, 9, 1000, 77, 3, 2048, 5};
  model::BatchItem item{state.get(), tokens, true};
  auto out = m->forward(std::span<const model::BatchItem>(&item, 1));
  fs::remove_all(dir);
  return out;
}

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double d = 0;
  for (size_t i = 0; i < a.size(); ++i) d = std::max(d, double(std::fabs(a[i] - b[i])));
  return d;
}

}  // namespace

TEST(ConfigRouting, ScoringFuncNormTopkProbAndSharedExpertsChangeTheOutput) {
  const auto base = logits(variant("base", [](json::object&) {}));
  ASSERT_FALSE(base.empty());
  struct Case {
    const char* tag;
    std::function<void(json::object&)> edit;
    bool drop_shared;
  };
  const Case cases[] = {
      {"softmax", [](json::object& c) { c["scoring_func"] = "softmax"; }, false},
      {"sigmoid", [](json::object& c) { c["scoring_func"] = "sigmoid"; }, false},
      {"no-norm", [](json::object& c) { c["norm_topk_prob"] = false; }, false},
      {"no-shared", [](json::object& c) { c["n_shared_experts"] = 0; }, true},
  };
  for (const auto& k : cases) {
    const auto got = logits(variant(k.tag, k.edit, k.drop_shared));
    ASSERT_EQ(got.size(), base.size()) << k.tag;
    for (float v : got) ASSERT_TRUE(std::isfinite(v)) << k.tag;
    const double d = max_abs_diff(got, base);
    std::printf("config %s: max |logits - sqrtsoftplus/normalised/shared| = %.4g\n", k.tag, d);
    EXPECT_GT(d, 1e-3) << k.tag << " did not change the output";
  }
}

TEST(ConfigRouting, TheSameConfigGivesTheSameLogits) {
  EXPECT_EQ(logits(variant("again", [](json::object&) {})), logits(variant("again2", [](json::object&) {})));
}
