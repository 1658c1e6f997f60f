// `v4flash bench serve`: streams generation requests at a running server, level by level
// (concurrency or request rate), and reports what a user sees (requests/s, output tokens/s, time
// to first token, inter-token latency) beside what the server saw (/metrics). With --model DIR it
// also measures, in the same run, the single-sequence `generate` baseline and the read bound of a
// decode step.
#include "cli/bench_serve.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <sstream>
#include <thread>
#include <unistd.h>

#include "cli/bench_serve_bound.h"
#include "cli/bench_serve_client.h"

namespace v4::cli {

namespace {

using Clock = std::chrono::steady_clock;

const char* kUsage =
    "usage: v4flash bench serve [--host 127.0.0.1] [--port 8000] [--api-key KEY | --api-key-file F]\n"
    "         [--dialect chat|responses|anthropic] [--model-name deepseek-v4-flash]\n"
    "         [--concurrency 1,4,16,64 | --request-rate R1,R2 [--max-concurrency 64]]\n"
    "         [--requests N | --requests-per-stream 4] [--input-len 64] [--input-range 0] [--output-len 64] [--output-range 0]\n"
    "         [--prefix-ratio 0] [--thinking] [--temperature T] [--top-p P] [--seed 1]\n"
    "         [--model DIR [--threads N] [--buffer-mib 1024]] [--json]\n"
    "Each level sends --requests streamed requests (default --requests-per-stream x streams, at least 2;\n"
    "at a request rate R, 16 x R): with\n"
    "--concurrency C, C streams back to back; with --request-rate R, Poisson arrivals at R/s (at most\n"
    "--max-concurrency in flight). Prompts are random words (about one token each) of --input-len\n"
    "+-input-range (a fraction), the first --prefix-ratio of them shared by every request; outputs ask\n"
    "for --output-len +-output-range tokens. Sampling uses the server's defaults unless --temperature or\n"
    "--top-p are given. Per level: requests/s, output tokens/s, TTFT and ITL (mean, p50, p90, p99 ms),\n"
    "and from /metrics: tokens per step (batch), the sampling share of step time, prefix-cache hits\n"
    "(/metrics answers operator keys only, the --api-key the server was started with; with another key\n"
    "the run says the server's view is not available, and JSON has \"server\":null with \"server_problem\").\n"
    "--model DIR (the server's checkpoint) adds: the `generate` baseline (one sequence, forward +\n"
    "sampling, default parameters, in this process, before the load) and per level the bound\n"
    "the lower of two, both measured in this run: read, batch x read bandwidth / bytes a step reads\n"
    "(dense weights once, expected distinct routed experts once); compute, the peak of the best multiply\n"
    "instruction / FLOPs per token. The server's decode tokens/s is compared with each.\n";

const char* kWords[] = {"time", "year", "people", "way", "day", "man", "thing", "woman", "life", "child",
                        "world", "school", "state", "family", "student", "group", "country", "problem",
                        "hand", "part", "place", "case", "week", "company", "system", "program", "question",
                        "work", "government", "number", "night", "point", "home", "water", "room", "mother",
                        "area", "money", "story", "fact", "month", "lot", "right", "study", "book", "eye",
                        "job", "word", "business", "issue", "side", "kind", "head", "house", "service"};

struct Options {
  ServeTarget target;
  std::vector<double> levels;
  bool by_rate = false;
  int max_concurrency = 64, requests = 0, per_stream = 4;
  int input_len = 64, output_len = 64;
  double input_range = 0, output_range = 0, prefix_ratio = 0;
  bool thinking = false, json = false;
  double temperature = -1, top_p = -1;
  uint64_t seed = 1;
  std::string model_dir;
  int threads = 0;
  int64_t buffer_mib = 1024;
};

std::vector<double> parse_list(const std::string& s, const char* what) {
  std::vector<double> out;
  std::stringstream in(s);
  for (std::string item; std::getline(in, item, ',');) {
    try {
      out.push_back(std::stod(item));
    } catch (const std::exception&) {
      throw std::invalid_argument(std::string("--") + what + ": not a number: '" + item + "'");
    }
    if (!(out.back() > 0)) throw std::invalid_argument(std::string("--") + what + " values must be > 0");
  }
  if (out.empty()) throw std::invalid_argument(std::string("--") + what + " needs at least one value");
  return out;
}

double parse_fraction(const cli::ArgParser& p, const std::string& name, double fallback, double hi) {
  const auto v = p.value(name);
  if (!v) return fallback;
  double d = 0;
  try {
    d = std::stod(*v);
  } catch (const std::exception&) {
    throw std::invalid_argument("--" + name + " needs a number");
  }
  if (!(d >= 0 && d <= hi)) throw std::invalid_argument("--" + name + " must be in [0, " + std::to_string(hi) + "]");
  return d;
}

Options parse(const cli::Args& args) {
  cli::ArgParser p(args);
  p.check_known({"host", "port", "api-key", "api-key-file", "dialect", "model-name", "concurrency", "request-rate",
                 "max-concurrency", "requests", "requests-per-stream", "input-len", "input-range", "output-len", "output-range",
                 "prefix-ratio", "temperature", "top-p", "seed", "model", "threads", "buffer-mib"},
                {"thinking", "json"});
  Options o;
  o.target.host = p.value_or("host", "127.0.0.1");
  o.target.port = std::to_string(p.integer("port", 8000, 1, 65535));
  o.target.model = p.value_or("model-name", "deepseek-v4-flash");
  if (auto k = p.value("api-key")) o.target.api_key = *k;
  if (auto f = p.value("api-key-file")) {
    std::ifstream in(*f);
    if (!in) throw std::invalid_argument("--api-key-file: cannot read " + *f);
    std::getline(in, o.target.api_key);
  }
  const std::string dialect = p.value_or("dialect", "chat");
  if (dialect == "chat") o.target.dialect = ServeDialect::chat;
  else if (dialect == "responses") o.target.dialect = ServeDialect::responses;
  else if (dialect == "anthropic") o.target.dialect = ServeDialect::anthropic;
  else throw std::invalid_argument("--dialect must be chat, responses or anthropic");
  if (p.value("concurrency") && p.value("request-rate"))
    throw std::invalid_argument("give --concurrency or --request-rate, not both");
  o.by_rate = p.value("request-rate").has_value();
  o.levels = o.by_rate ? parse_list(*p.value("request-rate"), "request-rate")
                       : parse_list(p.value_or("concurrency", "1,4,16,64"), "concurrency");
  o.max_concurrency = int(p.integer("max-concurrency", 64, 1, 4096));
  o.requests = int(p.integer("requests", 0, 0, 1 << 20));
  o.per_stream = int(p.integer("requests-per-stream", 4, 1, 1 << 20));
  o.input_len = int(p.integer("input-len", 64, 1, 1 << 20));
  o.output_len = int(p.integer("output-len", 64, 1, 1 << 20));
  o.input_range = parse_fraction(p, "input-range", 0, 1);
  o.output_range = parse_fraction(p, "output-range", 0, 1);
  o.prefix_ratio = parse_fraction(p, "prefix-ratio", 0, 1);
  o.temperature = parse_fraction(p, "temperature", -1, 2);
  o.top_p = parse_fraction(p, "top-p", -1, 1);
  o.thinking = p.flag("thinking");
  o.json = p.flag("json");
  o.seed = uint64_t(p.integer("seed", 1, 0, INT64_MAX));
  o.model_dir = p.value_or("model", "");
  o.threads = int(p.integer("threads", 0, 0, 4096));
  o.buffer_mib = p.integer("buffer-mib", 1024, 16, 1 << 20);
  return o;
}

std::string words(std::mt19937_64& gen, int n) {
  std::string s;
  for (int i = 0; i < n; ++i) {
    if (i) s += ' ';
    s += kWords[gen() % (sizeof kWords / sizeof kWords[0])];
  }
  return s;
}

int spread(std::mt19937_64& gen, int mean, double range) {
  const int lo = std::max(1, int(std::lround(mean * (1 - range)))), hi = std::max(lo, int(std::lround(mean * (1 + range))));
  return lo + int(gen() % uint64_t(hi - lo + 1));
}

ServeRequest make_request(const Options& o, const std::string& prefix, uint64_t index) {
  std::mt19937_64 gen(o.seed * 0x9E3779B97F4A7C15ull + index);
  ServeRequest r;
  const int len = spread(gen, o.input_len, o.input_range);
  const int shared = int(std::lround(double(o.input_len) * o.prefix_ratio));  // the words of `prefix`
  r.prompt = prefix;
  if (shared < len) r.prompt += (r.prompt.empty() ? "" : " ") + words(gen, len - shared);
  r.max_tokens = spread(gen, o.output_len, o.output_range);
  r.thinking = o.thinking;
  r.temperature = o.temperature;
  r.top_p = o.top_p;
  return r;
}

struct Percentiles {
  double mean = 0, p50 = 0, p90 = 0, p99 = 0;
};
Percentiles percentiles(std::vector<double> v) {
  Percentiles p;
  if (v.empty()) return p;
  std::sort(v.begin(), v.end());
  double sum = 0;
  for (double x : v) sum += x;
  p.mean = sum / double(v.size());
  auto at = [&](double q) { return v[std::min(v.size() - 1, size_t(q * double(v.size() - 1) + 0.5))]; };
  p.p50 = at(0.5), p.p90 = at(0.9), p.p99 = at(0.99);
  return p;
}

struct LevelReport {
  double level = 0;
  int requests = 0, errors = 0;
  std::string first_error;
  double seconds = 0, req_per_s = 0, out_tok_per_s = 0;
  int64_t output_tokens = 0;
  Percentiles ttft, itl;
  // The server's view (deltas of /metrics over the level); none when /metrics was not served.
  bool server_seen = false;
  std::string server_problem;  // why not (HTTP 403 for a key that is not an operator's)
  double server_tokens_per_s = 0, tokens_per_step = 0, sampling_share = 0, forward_share = 0;
  double prefix_hit_rate = 0, state_bytes = 0, prefix_cache_bytes = 0;
  double bound_tokens_per_s = 0, read_bound_tokens_per_s = 0, compute_bound_tokens_per_s = 0;
};

// Prints a one-line progress bar on stderr while a level runs.
class Progress {
 public:
  Progress(std::string label, int total, const std::atomic<int>& done)
      : label_(std::move(label)), total_(total), done_(done), tty_(isatty(2)) {
    thread_ = std::thread([this] { loop(); });
  }
  ~Progress() {
    stop_ = true;
    thread_.join();
    draw();
    std::fputc('\n', stderr);
  }

 private:
  void loop() {
    while (!stop_) {
      draw();
      for (int i = 0; i < (tty_ ? 2 : 20) && !stop_; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  void draw() const {
    const int done = done_.load(), width = 30, fill = total_ ? done * width / total_ : width;
    std::fprintf(stderr, "%s%-14s [%s%s] %d/%d%s", tty_ ? "\r" : "", label_.c_str(), std::string(size_t(fill), '#').c_str(),
                 std::string(size_t(width - fill), ' ').c_str(), done, total_, tty_ ? "" : "\n");
    std::fflush(stderr);
  }
  std::string label_;
  int total_;
  const std::atomic<int>& done_;
  bool tty_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

double delta(const std::map<std::string, double>& a, const std::map<std::string, double>& b, const std::string& name) {
  auto ia = a.find("v4flash:" + name), ib = b.find("v4flash:" + name);
  return ia == a.end() || ib == b.end() ? 0 : ib->second - ia->second;
}

LevelReport run_level(const Options& o, double level, const std::string& prefix, uint64_t first_index,
                      const ServeBounds* bounds) {
  const int streams = o.by_rate ? o.max_concurrency : int(level);
  const int total = o.requests > 0 ? o.requests
                                    : o.by_rate ? std::max(2, int(std::ceil(level * 16)))
                                                : std::max(2, o.per_stream * streams);
  std::vector<double> arrivals(size_t(total), 0.0);  // seconds after the start
  if (o.by_rate) {
    std::mt19937_64 gen(o.seed + uint64_t(level * 1000));
    std::exponential_distribution<double> gap(level);
    for (int i = 1; i < total; ++i) arrivals[size_t(i)] = arrivals[size_t(i - 1)] + gap(gen);
  }
  ServeClient probe(o.target);
  const auto before = probe.metrics();
  std::atomic<int> next{0}, done{0};
  std::mutex mutex;
  std::vector<ServeResult> results;
  const auto t0 = Clock::now();
  {
    char label[32];
    std::snprintf(label, sizeof label, o.by_rate ? "rate %g/s" : "%g streams", level);
    Progress progress(label, total, done);
    std::vector<std::thread> workers;
    for (int w = 0; w < streams; ++w) {
      workers.emplace_back([&] {
        ServeClient client(o.target);
        for (int i; (i = next.fetch_add(1)) < total;) {
          std::this_thread::sleep_until(t0 + std::chrono::duration<double>(arrivals[size_t(i)]));
          ServeResult r = client.generate(make_request(o, prefix, first_index + uint64_t(i)));
          std::lock_guard lock(mutex);
          results.push_back(std::move(r));
          done++;
        }
      });
    }
    for (auto& w : workers) w.join();
  }
  LevelReport rep;
  rep.level = level;
  rep.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  const auto after = probe.metrics();
  rep.server_seen = !before.empty() && !after.empty();
  if (!rep.server_seen) rep.server_problem = probe.metrics_problem().empty() ? "no answer" : probe.metrics_problem();
  std::vector<double> ttft, itl;
  for (const auto& r : results) {
    rep.requests++;
    if (!r.ok) {
      if (rep.errors++ == 0) rep.first_error = r.error;
      continue;
    }
    rep.output_tokens += r.output_tokens;
    ttft.push_back(r.ttft);
    itl.insert(itl.end(), r.gaps.begin(), r.gaps.end());
  }
  rep.req_per_s = double(rep.requests - rep.errors) / rep.seconds;
  rep.out_tok_per_s = double(rep.output_tokens) / rep.seconds;
  rep.ttft = percentiles(ttft);
  rep.itl = percentiles(itl);
  const double steps = delta(before, after, "engine_steps_total");
  const double gen = delta(before, after, "generation_tokens_total");
  const double fwd = delta(before, after, "engine_forward_seconds_total");
  const double smp = delta(before, after, "engine_sampling_seconds_total");
  const double dlv = delta(before, after, "engine_delivery_seconds_total");
  const double queries = delta(before, after, "prefix_cache_queries_total");
  rep.server_tokens_per_s = gen / rep.seconds;
  rep.tokens_per_step = steps > 0 ? gen / steps : 0;
  rep.sampling_share = fwd + smp + dlv > 0 ? smp / (fwd + smp + dlv) : 0;
  rep.forward_share = fwd + smp + dlv > 0 ? fwd / (fwd + smp + dlv) : 0;
  rep.prefix_hit_rate = queries > 0 ? delta(before, after, "prefix_cache_hits_total") / queries : 0;
  if (after.count("v4flash:state_memory_bytes")) rep.state_bytes = after.at("v4flash:state_memory_bytes");
  if (after.count("v4flash:prefix_cache_memory_bytes")) rep.prefix_cache_bytes = after.at("v4flash:prefix_cache_memory_bytes");
  if (bounds && rep.tokens_per_step > 0) {
    rep.read_bound_tokens_per_s = bounds->read_tokens_per_s(rep.tokens_per_step);
    rep.compute_bound_tokens_per_s = bounds->compute_tokens_per_s(rep.tokens_per_step);
    rep.bound_tokens_per_s = bounds->tokens_per_s(rep.tokens_per_step);
  }
  return rep;
}

std::string json_percentiles(const Percentiles& p) {
  char buf[160];
  std::snprintf(buf, sizeof buf, "{\"mean_ms\":%.3f,\"p50_ms\":%.3f,\"p90_ms\":%.3f,\"p99_ms\":%.3f}", p.mean * 1e3,
                p.p50 * 1e3, p.p90 * 1e3, p.p99 * 1e3);
  return buf;
}

void print_text(const Options& o, const std::vector<LevelReport>& reps, double baseline, const ServeBounds* bounds) {
  std::printf("%-10s %5s %4s %7s %7s %9s | %-31s | %-31s\n", o.by_rate ? "rate/s" : "streams", "reqs", "err",
              "req/s", "s", "out tok/s", "TTFT ms mean/p50/p90/p99", "ITL ms mean/p50/p90/p99");
  for (const auto& r : reps)
    std::printf("%-10g %5d %4d %7.2f %7.1f %9.1f | %7.1f %7.1f %7.1f %7.1f | %7.1f %7.1f %7.1f %7.1f\n", r.level,
                r.requests, r.errors, r.req_per_s, r.seconds, r.out_tok_per_s, r.ttft.mean * 1e3, r.ttft.p50 * 1e3,
                r.ttft.p90 * 1e3, r.ttft.p99 * 1e3, r.itl.mean * 1e3, r.itl.p50 * 1e3, r.itl.p90 * 1e3, r.itl.p99 * 1e3);
  const bool seen = std::any_of(reps.begin(), reps.end(), [](const LevelReport& r) { return r.server_seen; });
  if (!seen)
    std::printf("server (/metrics): not available (%s); the server's figures and the bounds need an operator key "
                "(one the server was started with --api-key)\n",
                reps.empty() ? "no level ran" : reps.front().server_problem.c_str());
  else
    std::printf("server (/metrics deltas):\n%-10s %12s %10s %10s %9s %9s %12s %12s\n", o.by_rate ? "rate/s" : "streams",
                "gen tok/s", "tok/step", "sampling%", "forward%", "cache hit%", "state MiB", "cache MiB");
  for (const auto& r : reps)
    if (r.server_seen)
      std::printf("%-10g %12.1f %10.2f %10.2f %9.1f %9.1f %12.1f %12.1f\n", r.level, r.server_tokens_per_s,
                r.tokens_per_step, r.sampling_share * 100, r.forward_share * 100, r.prefix_hit_rate * 100,
                r.state_bytes / 1048576, r.prefix_cache_bytes / 1048576);
  for (const auto& r : reps)
    if (r.errors) std::printf("level %g: first error: %s\n", r.level, r.first_error.c_str());
  if (!o.by_rate && !reps.empty())
    for (const auto& r : reps)
      if (r.level != reps.front().level)
        std::printf("out tok/s at %g streams / at %g: %.2fx\n", r.level, reps.front().level,
                    r.out_tok_per_s / std::max(1e-9, reps.front().out_tok_per_s));
  if (baseline > 0) {
    std::printf("generate baseline (one sequence, default sampling, in this process): %.1f tok/s\n", baseline);
    if (!reps.empty()) std::printf("out tok/s at %g / generate: %.2f\n", reps.front().level, reps.front().out_tok_per_s / baseline);
  }
  if (bounds && seen) {
    std::printf("read bandwidth %.2f GB/s (%.0f%% of its buffer in 2 MiB pages), multiply peak %.1f GFLOP/s (%.1f MFLOP/token); decode bounds:\n"
                "  read = tok/step x bandwidth / bytes per step; compute = peak / FLOPs per token\n",
                bounds->bandwidth_gbs, 100 * bounds->bandwidth_huge_share, bounds->peak_gflops, bounds->cost.decode_token_flops() / 1e6);
    auto ratio = [](double a, double b) { return b > 0 ? a / b : 0; };
    for (const auto& r : reps)
      if (r.server_seen)
        std::printf("  %g: server %.1f tok/s; read bound %.1f tok/s (ratio %.2f), compute bound %.1f tok/s (ratio %.2f); "
                  "the %s bound binds\n",
                  r.level, r.server_tokens_per_s, r.read_bound_tokens_per_s,
                  ratio(r.server_tokens_per_s, r.read_bound_tokens_per_s), r.compute_bound_tokens_per_s,
                  ratio(r.server_tokens_per_s, r.compute_bound_tokens_per_s),
                  r.read_bound_tokens_per_s <= r.compute_bound_tokens_per_s ? "read" : "compute");
  }
}

void print_json(const Options& o, const std::vector<LevelReport>& reps, double baseline, const ServeBounds* bounds) {
  std::string out = "{\"mode\":\"" + std::string(o.by_rate ? "rate" : "concurrency") + "\",\"input_len\":" +
                    std::to_string(o.input_len) + ",\"output_len\":" + std::to_string(o.output_len) +
                    ",\"prefix_ratio\":" + std::to_string(o.prefix_ratio) + ",\"thinking\":" +
                    (o.thinking ? "true" : "false") + ",\"levels\":[";
  for (size_t i = 0; i < reps.size(); ++i) {
    const auto& r = reps[i];
    char buf[1100];
    std::snprintf(buf, sizeof buf,
                  "%s{\"level\":%g,\"requests\":%d,\"errors\":%d,\"seconds\":%.3f,\"requests_per_s\":%.3f,"
                  "\"output_tokens\":%lld,\"output_tokens_per_s\":%.2f,\"ttft\":%s,\"itl\":%s,",
                  i ? "," : "", r.level, r.requests, r.errors, r.seconds, r.req_per_s, (long long)r.output_tokens,
                  r.out_tok_per_s, json_percentiles(r.ttft).c_str(), json_percentiles(r.itl).c_str());
    out += buf;
    if (!r.server_seen) {  // the problem is "HTTP <code>" or a connection error: no quotes or backslashes to escape
      std::string problem = r.server_problem;
      for (char& c : problem)
        if (c == '"' || c == '\\' || static_cast<unsigned char>(c) < 0x20) c = ' ';
      out += "\"server\":null,\"server_problem\":\"" + problem + "\"}";
      continue;
    }
    std::snprintf(buf, sizeof buf,
                  "\"server\":{\"generation_tokens_per_s\":%.2f,\"tokens_per_step\":%.3f,\"sampling_share\":%.4f,"
                  "\"forward_share\":%.4f,\"prefix_cache_hit_rate\":%.4f,\"state_memory_bytes\":%.0f,"
                  "\"prefix_cache_memory_bytes\":%.0f,\"bound_tokens_per_s\":%.2f,\"read_bound_tokens_per_s\":%.2f,"
                  "\"compute_bound_tokens_per_s\":%.2f}}",
                  r.server_tokens_per_s, r.tokens_per_step, r.sampling_share, r.forward_share, r.prefix_hit_rate,
                  r.state_bytes, r.prefix_cache_bytes, r.bound_tokens_per_s, r.read_bound_tokens_per_s,
                  r.compute_bound_tokens_per_s);
    out += buf;
  }
  char tail[320];
  std::snprintf(tail, sizeof tail,
                "],\"generate_tokens_per_s\":%.2f,\"read_bandwidth_bytes_per_s\":%.0f,\"read_bandwidth_huge_share\":%.3f,\"peak_flops_per_s\":%.0f}", baseline,
                bounds ? bounds->bandwidth_gbs * 1e9 : 0.0, bounds ? bounds->bandwidth_huge_share : 0.0, bounds ? bounds->peak_gflops * 1e9 : 0.0);
  std::puts((out + tail).c_str());
}

}  // namespace

int run_bench_serve(const cli::Args& args) {
  cli::ArgParser p(args);
  if (p.flag("help") || p.flag("h")) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  const Options o = parse(args);
  double baseline = 0;
  std::optional<ServeBounds> bounds;
  if (!o.model_dir.empty()) {
    std::fprintf(stderr, "generate baseline on %s ...\n", o.model_dir.c_str());
    baseline = generate_tokens_per_second(o.model_dir, o.threads, o.input_len, o.output_len);
    bounds = measure_serve_bounds(o.model_dir, o.threads > 0 ? o.threads : int(std::thread::hardware_concurrency()),
                                  o.buffer_mib);
  }
  {  // the server answers, and one warm-up request
    ServeClient client(o.target);
    ServeRequest warm = make_request(o, "", ~uint64_t(0));
    warm.max_tokens = 2;
    const ServeResult r = client.generate(warm);
    if (!r.ok) {
      std::fprintf(stderr, "bench serve: the server at %s:%s did not answer a request: %s\n", o.target.host.c_str(),
                   o.target.port.c_str(), r.error.c_str());
      return 1;
    }
  }
  std::mt19937_64 gen(o.seed);
  const std::string prefix = words(gen, int(std::lround(double(o.input_len) * o.prefix_ratio)));
  std::vector<LevelReport> reps;
  uint64_t index = 0;
  for (double level : o.levels) {
    reps.push_back(run_level(o, level, prefix, index, bounds ? &*bounds : nullptr));
    index += uint64_t(reps.back().requests);
    const LevelReport& r = reps.back();
    if (!o.json) {  // as soon as the level ends: long runs show their figures before the summary
      std::printf("level %g: %d requests, %d errors, %.2f req/s, %.1f out tok/s, TTFT p50 %.1f ms, ITL p50 %.1f ms; ",
                  r.level, r.requests, r.errors, r.req_per_s, r.out_tok_per_s, r.ttft.p50 * 1e3, r.itl.p50 * 1e3);
      if (r.server_seen)
        std::printf("server %.1f tok/s, %.2f tok/step, sampling %.1f%%, bound %.1f tok/s\n", r.server_tokens_per_s,
                    r.tokens_per_step, r.sampling_share * 100, r.bound_tokens_per_s);
      else
        std::printf("server: no /metrics (%s)\n", r.server_problem.c_str());
      std::fflush(stdout);
    }
  }
  const ServeBounds* b = bounds ? &*bounds : nullptr;
  if (o.json) print_json(o, reps, baseline, b);
  else print_text(o, reps, baseline, b);
  for (const auto& r : reps)
    if (r.errors) return 1;
  return 0;
}

}  // namespace v4::cli
