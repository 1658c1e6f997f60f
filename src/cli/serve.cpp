// v4flash serve: the HTTP API (OpenAI Chat Completions / Responses, Anthropic Messages) on one
// engine serving the product sheet's model ids.
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>

#include <spdlog/spdlog.h>

#include "api/accounts_auth.h"
#include "api/auth.h"
#include "api/response_store.h"
#include "api/server.h"
#include "api/service.h"
#include "cli/command.h"
#include "cli/serve.h"
#include "console/console.h"
#include "core/checkpoint.h"
#include "core/config.h"
#include "gateway/deployment.h"
#include "gateway/gateway.h"
#include "kernels/isa.h"
#include "model/model.h"
#include "runtime/cache_identity.h"
#include "runtime/engine.h"
#include "search/linkup.h"
#include "search/local_index.h"
#include "text/tokenizer.h"

namespace {

namespace fs = std::filesystem;
using namespace v4;

constexpr const char* kUsage =
    "usage: v4flash serve --model DIR [--host 127.0.0.1] [--port 8000] [--api-key KEY[,KEY...]] [--threads N]\n"
    "                     [--db FILE|postgresql://...] [--tokenizer FILE] [--io-threads N] [--max-body-bytes N]\n"
    "                     [--max-running N] [--cache-dir DIR [--cache-disk-bytes N]] [--speculative K]\n"
    "                     [--max-running-per-key N] [--max-connections N] [--shared-prefix-cache]\n"
    "                     [--search linkup|local|off [--linkup-url URL] [--linkup-key-env NAME] [--linkup-ca FILE]\n"
    "                      [--search-index FILE] [--search-results N] [--search-depth fast|standard|deep]\n"
    "                      [--search-timeout-ms N]]\n"
    "                     [--model-alias PATTERN=MODEL[,...]|none] [--responses-retention-days N]\n"
    "                     [--deployment FILE]\n"
    "  DIR holds config.json, the safetensors and tokenizer.json (or pass --tokenizer).\n"
    "  --deployment FILE: the model ids served and the backends of each (this engine and/or upstream\n"
    "        OpenAI-compatible servers), their regions, rate cards and parameters (docs/deployment.md).\n"
    "        --model is then needed only when a backend is {\"local\": true}; --tokenizer always.\n"
    "  --api-key: require this key (Authorization: Bearer KEY or x-api-key: KEY) on every route but /health.\n"
    "  --db: managed keys, credit/rate limits and the usage ledger (see `v4flash keys`); --api-key then acts\n"
    "        as an unmetered operator key.\n"
    "  --max-running-per-key: running slots one key may hold (default 3/4 of --max-running): others always get a turn.\n"
    "  --shared-prefix-cache: let prefix-cache hits cross keys (default: each key has its own cache namespace;\n"
    "        the disk tier serves the shared namespace only).\n"
    "  --rates FILE: rate cards (JSON, see src/product/rate_card.h) instead of the product sheet's prices.\n"
    "  --cache-dir DIR: keep prefix-cache snapshots on disk under DIR too (they survive restarts and outgrow\n"
    "        memory; hits are billed as cached tokens); --cache-disk-bytes N bounds them (default 64 GiB).\n"
    "  --signup open|closed: with --db, whether anyone may create a console account (default closed;\n"
    "        operators create accounts with `v4flash accounts create`). --signup-credit USD: credit of such\n"
    "        an account (default 0).\n"
    "  --search linkup|local|off: web search for requests with web_search_linkup and the dialects' search\n"
    "        tools, run when the model calls them (default off: such requests get 400; a Responses web_search\n"
    "        tool is withheld). linkup: Linkup's API at --linkup-url (default https://api.linkup.so/v1), its key read\n"
    "        from the environment variable --linkup-key-env (default LINKUP_API_KEY), --linkup-ca FILE: a CA to\n"
    "        trust besides the system's. local: the index --search-index FILE (`v4flash search-index build`).\n"
    "        --search-results N (default 5), --search-depth (default standard), --search-timeout-ms (15000).\n"
    "  --max-running N: sequences decoded together (default: as many as the 8 GiB state budget holds at an\n"
    "        8K-token context each, between 16 and 256; runtime::default_max_running).\n"
    "  --step-tokens N: new tokens per engine step (default 2048): every running stream's next token, then\n"
    "        prefill chunks of whole 128-token blocks; larger chunks prefill long prompts faster, smaller ones\n"
    "        keep the streams' inter-token time lower while a long prompt is prefilled.\n"
    "  --threads N: the model's threads and the threads sampling a step's sequences (default: all cores).\n"
    "  --weights mapped|hugepages: the checkpoint's files mapped (default: no load time, shared with the page\n"
    "        cache; huge pages asked for, which file pages read from then on get where the kernel's page\n"
    "        cache has large folios) or read into private memory in transparent huge pages (every page\n"
    "        huge whatever the page cache holds; reads every byte at start-up and needs memory for the\n"
    "        whole checkpoint). `bench decode` prints the share in 2 MiB pages.\n"
    "  --responses-retention-days N: stored Responses-API responses (store, the default) are deleted this long\n"
    "        after they were made (default 30). With --db they live in its database; without, in memory\n"
    "        (at most 256 MiB, oldest dropped first, gone at exit).\n"
    "  --speculative K: speculative decoding with the checkpoint's MTP block: each stream drafts K tokens\n"
    "        (1..8; 1 is the usual choice) and its next step verifies them; greedy output is unchanged bit for\n"
    "        bit, sampled output keeps its distribution (not its exact tokens for a seed). Default 0 (off):\n"
    "        see docs/performance.md for what a verify step costs against the tokens it gains.\n"
    "  --model-alias: other model names clients may send for a served model; a trailing '*' matches any\n"
    "        suffix. Default 'claude-*=deepseek-v4-flash' (Claude Code's names); yours are tried first;\n"
    "        'none' removes the default.\n";

std::vector<std::string> split_keys(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string k;
  while (std::getline(ss, k, ','))
    if (!k.empty()) out.push_back(k);
  return out;
}


// Random-weight checkpoints (`v4flash synth` marks its output; the tiny test fixtures are far
// smaller than any real model) produce meaningless text.
bool looks_random(const fs::path& dir, const core::ModelConfig& cfg) {
  return fs::exists(dir / "RANDOM_WEIGHTS") || cfg.hidden_size < 1024;
}

// serve --search: the provider, or null when off. The Linkup key comes from the environment only,
// so it never shows in a process list or a shell history.
std::shared_ptr<const search::Provider> search_provider(const cli::ArgParser& args) {
  const std::string mode = args.value_or("search", "off");
  const bool linkup_opts = args.value("linkup-url") || args.value("linkup-key-env") || args.value("linkup-ca");
  if (mode == "off") {
    if (linkup_opts || args.value("search-index")) throw std::invalid_argument("search options need --search linkup|local");
    return nullptr;
  }
  if (mode == "linkup") {
    if (args.value("search-index")) throw std::invalid_argument("--search-index is for --search local");
    search::LinkupOptions o;
    o.base_url = args.value_or("linkup-url", o.base_url);
    o.ca_file = args.value_or("linkup-ca", "");
    o.timeout = std::chrono::milliseconds(args.integer("search-timeout-ms", 15000, 100, 600000));
    const std::string env = args.value_or("linkup-key-env", "LINKUP_API_KEY");
    const char* key = std::getenv(env.c_str());
    if (!key || !*key)
      throw std::invalid_argument("--search linkup: the environment variable " + env + " (the Linkup API key) is not set");
    o.api_key = key;
    auto p = std::make_shared<search::LinkupProvider>(o);
    spdlog::info("web search: Linkup at {} (key from ${})", o.base_url, env);
    return p;
  }
  if (mode == "local") {
    if (linkup_opts) throw std::invalid_argument("--linkup-* options are for --search linkup");
    auto index = args.value("search-index");
    if (!index) throw std::invalid_argument("--search local needs --search-index FILE (v4flash search-index build)");
    auto p = std::make_shared<search::LocalIndexProvider>(*index);
    spdlog::info("web search: the local index {}", *index);
    return p;
  }
  throw std::invalid_argument("--search must be linkup, local or off; got '" + mode + "'");
}

}  // namespace

int v4::cli::serve(const Args& argv, const ServeHooks& hooks) {
  cli::ArgParser args(argv);
  if (args.flag("help")) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  std::vector<std::string> options = {"model", "host", "port", "api-key", "db", "rates", "threads", "tokenizer",
                                      "io-threads", "max-body-bytes", "max-running", "step-tokens", "speculative",
                                      "cache-dir", "cache-disk-bytes",
                                      "max-running-per-key", "max-connections", "signup", "signup-credit",
                                      "search", "linkup-url", "linkup-key-env", "linkup-ca", "search-index",
                                      "search-results", "search-depth", "search-timeout-ms", "model-alias",
                                      "responses-retention-days", "deployment", "weights"};
  std::vector<std::string> flags = {"shared-prefix-cache", "help"};
  options.insert(options.end(), hooks.options.begin(), hooks.options.end());
  flags.insert(flags.end(), hooks.flags.begin(), hooks.flags.end());
  args.check_known(options, flags);
  auto model_dir = args.value("model");
  std::optional<gateway::Deployment> deployment;
  if (auto file = args.value("deployment")) deployment = gateway::Deployment::from_file(*file);
  const bool need_engine = !deployment || deployment->has_local();
  if (need_engine && !model_dir && !hooks.engine_without_model) {
    std::fputs(kUsage, stderr);
    throw std::invalid_argument("--model DIR is required");
  }

  api::ServerOptions sopts;
  sopts.host = args.value_or("host", "127.0.0.1");
  sopts.port = uint16_t(args.integer("port", 8000, 0, 65535));
  sopts.threads = int(args.integer("io-threads", 2, 1, 256));
  sopts.body_limit = size_t(args.integer("max-body-bytes", 32 << 20, 1024, 1 << 30));
  sopts.max_connections = int(args.integer("max-connections", 0, 0, 1 << 20));
  const int engine_threads = int(args.integer("threads", 0, 0, 4096));

  fs::path tokenizer_path;
  if (auto t = args.value("tokenizer")) tokenizer_path = *t;
  else if (model_dir) tokenizer_path = fs::path(*model_dir) / "tokenizer.json";
  if (tokenizer_path.empty() || !fs::exists(tokenizer_path))
    throw std::invalid_argument("no tokenizer: " + (tokenizer_path.empty() ? std::string("pass --tokenizer FILE") :
                                tokenizer_path.string() + " does not exist (pass --tokenizer FILE)"));
  std::shared_ptr<const text::Tokenizer> tokenizer = text::Tokenizer::from_file(tokenizer_path);

  std::unique_ptr<runtime::Engine> engine;
  bool random_weights = need_engine;
  if (!need_engine && model_dir)
    throw std::invalid_argument("--model: no backend of the deployment is local ({\"local\": true}); leave it out");
  if (need_engine && hooks.engine_without_model) engine = hooks.engine_without_model(args, tokenizer);
  if (engine && args.value("cache-dir"))
    throw std::invalid_argument("--cache-dir needs a model; an engine without one has no state to cache");
  if (args.value("speculative") && (!need_engine || engine))
    throw std::invalid_argument("--speculative needs a local model; an engine without one has no MTP block");
  if (need_engine && !engine) {
    if (!model_dir) {
      std::fputs(kUsage, stderr);
      throw std::invalid_argument("--model DIR is required");
    }
    auto ckpt = core::Checkpoint::open(*model_dir);
    spdlog::info("{}", kernels::isa_report());
    model::ModelOptions mo;
    mo.threads = engine_threads;
    mo.weight_memory = core::parse_weight_memory(args.value("weights").value_or("mapped"), "--weights");
    const int speculative = int(args.integer("speculative", 0, 0, runtime::kMaxSpeculativeTokens));
    mo.enable_mtp = speculative > 0;
    std::shared_ptr<model::Model> model = model::Model::load(*ckpt, mo);
    random_weights = looks_random(*model_dir, model->config());
    if (hooks.wrap_model) model = hooks.wrap_model(std::move(model), tokenizer);
    if (model->config().vocab_size < int64_t(tokenizer->vocab_size()))
      spdlog::warn("the tokenizer has {} ids but the model only {}: prompts with higher ids will be refused",
                   tokenizer->vocab_size(), model->config().vocab_size);
    runtime::EngineOptions eo;
    eo.threads = engine_threads;
    eo.max_running = int(args.integer("max-running", 0, 1, 4096));  // absent: 0 = sized by the engine
    eo.step_token_budget = int(args.integer("step-tokens", eo.step_token_budget, 1, 1 << 20));
    eo.max_running_per_tenant = int(args.integer("max-running-per-key", 0, 0, 4096));
    eo.tokenizer = tokenizer;
    eo.speculative_tokens = speculative;
    if (auto dir = args.value("cache-dir")) {
      eo.cache_dir = *dir;
      eo.cache_disk_bytes = args.integer("cache-disk-bytes", eo.cache_disk_bytes, 1, INT64_MAX);
      eo.cache_identity = runtime::cache_identity(*model_dir, mo.exact);
      spdlog::info("disk prefix cache: {} (at most {} MiB)", *dir, eo.cache_disk_bytes >> 20);
    } else if (args.value("cache-disk-bytes")) {
      throw std::invalid_argument("--cache-disk-bytes needs --cache-dir");
    }
    engine = runtime::create_engine(std::move(model), eo);
    spdlog::info("engine: at most {} sequences per step (--max-running)",
                 eo.max_running > 0 ? eo.max_running : runtime::default_max_running(engine->config(), !mo.exact, eo));
    if (speculative > 0) spdlog::info("speculative decoding: {} draft token(s) per step from the MTP block", speculative);
  }

  std::shared_ptr<api::Authenticator> auth;
  std::shared_ptr<api::UsageSink> usage = std::make_shared<api::MemoryUsageSink>();
  std::vector<std::string> static_keys;
  if (auto k = args.value("api-key")) {
    static_keys = split_keys(*k);
    if (static_keys.empty()) throw std::invalid_argument("--api-key needs a non-empty key");
  }
  auto rates_file = args.value("rates");
  if (rates_file && !args.value("db")) throw std::invalid_argument("--rates needs --db (the ledger it prices)");
  std::shared_ptr<product::Accounts> accounts;
  const std::string signup = args.value_or("signup", "closed");
  if (signup != "open" && signup != "closed") throw std::invalid_argument("--signup must be open or closed");
  if ((args.value("signup") || args.value("signup-credit")) && !args.value("db"))
    throw std::invalid_argument("--signup needs --db (console accounts live in the database)");
  if (auto db = args.value("db")) {
    auto rates = rates_file ? product::RateCards::from_file(*rates_file) : product::RateCards::defaults();
    if (deployment)
      for (auto& [id, m] : deployment->models) {
        if (m.rates) rates.set(id, *m.rates);
        if (!rates.find(id))
          throw std::invalid_argument("--deployment: models." + id + ".rates: the id has no rate card (give one here or in --rates)");
      }
    accounts = product::Accounts::open(*db, std::move(rates));
    auto gate = std::make_shared<api::AccountsGate>(accounts, static_keys);
    auth = gate;
    usage = gate;
    spdlog::info("managed keys and usage ledger: {}", *db);
  } else if (!static_keys.empty()) {
    auth = std::make_shared<api::StaticKeyAuthenticator>(static_keys);
  } else {
    auth = std::make_shared<api::OpenAuthenticator>();
    spdlog::warn("no --api-key / --db: every route is open to anyone who can reach {}:{}", sopts.host, sopts.port);
  }

  api::ServiceOptions svc;
  api::ResponseStoreOptions ro;
  ro.retention = std::chrono::hours(24) * args.integer("responses-retention-days", 30, 1, 3650);
  auto db = args.value("db");
  svc.responses = db ? api::ResponseStore::open(product::ResponseTable::open(*db), ro) : api::ResponseStore::in_memory(ro);
  if (deployment) {
    svc.catalog.ids.clear();
    for (auto& [id, m] : deployment->models) {
      svc.catalog.ids.push_back(id);
      if (!m.region.empty()) svc.regions[id] = m.region;
      if (m.parameters) svc.parameters[id] = *m.parameters;
    }
    // The default alias names a product id the deployment may not serve.
    std::erase_if(svc.catalog.aliases, [&](const auto& a) { return !svc.catalog.serves(a.second); });
  }
  svc.shared_prefix_cache = args.flag("shared-prefix-cache");
  svc.search = search_provider(args);
  svc.search_results = int(args.integer("search-results", 5, 1, 50));
  svc.search_depth = search::parse_depth(args.value_or("search-depth", "standard"));
  if (auto spec = args.value("model-alias")) {
    std::vector<std::pair<std::string, std::string>> aliases;
    if (*spec != "none") {
      for (const auto& one : split_keys(*spec)) {
        auto alias = api::parse_model_alias(one);
        if (!svc.catalog.serves(alias.second))
          throw std::invalid_argument("--model-alias: '" + alias.second + "' is not a model this server serves");
        aliases.push_back(std::move(alias));
      }
      aliases.insert(aliases.end(), svc.catalog.aliases.begin(), svc.catalog.aliases.end());
    }
    svc.catalog.aliases = std::move(aliases);
  }
  api::ApiService service(engine.get(), tokenizer, auth, usage, svc);
  std::unique_ptr<gateway::Gateway> gw;  // after the server in destruction order: its calls end first
  if (deployment) {
    gw = std::make_unique<gateway::Gateway>(*deployment, service.local_backend());
    service.set_backends(gw->backends());
  }
  if (accounts) {
    console::ConsoleOptions co;
    co.signup_open = signup == "open";
    co.signup_credit = product::parse_usd(args.value_or("signup-credit", "0"));
    if (co.signup_credit < 0) throw std::invalid_argument("--signup-credit must not be negative");
    co.model_ids = svc.catalog.ids;
    co.context_length = service.context_length();
    co.max_output_tokens = svc.catalog.max_output_tokens;
    co.web_search = svc.search ? svc.search->name() : "";
    sopts.web = std::make_shared<console::Console>(accounts, co);
  }
  api::HttpServer server(service, sopts);
  server.listen();

  if (random_weights)
    std::fprintf(stderr,
                 "\n  NOTE: this checkpoint has RANDOM weights (a demo / test model). The server works end to end,\n"
                 "  but the text it generates is meaningless. Point --model at real DeepSeek V4 Flash weights for answers.\n\n");
  std::string ids;
  for (auto& id : svc.catalog.ids) ids += (ids.empty() ? "" : ", ") + id;
  std::fprintf(stderr, "v4flash serve: listening on http://%s:%u  (models: %s; context %lld)\n", sopts.host.c_str(),
               unsigned(server.port()), ids.c_str(), (long long)service.context_length());
  if (accounts)
    std::fprintf(stderr, "v4flash serve: web console on http://%s:%u/dashboard  (model page /models/deepseek-v4-flash; sign-up %s)\n",
                 sopts.host.c_str(), unsigned(server.port()), signup.c_str());
  std::fflush(stderr);
  server.run();
  gw.reset();
  if (engine) engine->shutdown();
  std::fprintf(stderr, "v4flash serve: stopped\n");
  return 0;
}

V4_COMMAND("serve", "HTTP API server (OpenAI Chat/Responses, Anthropic Messages)",
           [](const v4::cli::Args& args) { return v4::cli::serve(args, {}); });
