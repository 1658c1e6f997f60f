#pragma once
// Prometheus text exposition (format 0.0.4) for the engine's counters, gauges and histograms.
#include <cstdint>
#include <string>
#include <vector>

namespace v4::runtime {

class Histogram {
 public:
  explicit Histogram(std::vector<double> upper_bounds);
  void observe(double value);
  // Appends HELP/TYPE, cumulative buckets (+Inf last), _sum and _count.
  void write(std::string& out, const std::string& name, const std::string& help) const;
  uint64_t count() const { return count_; }
  double sum() const { return sum_; }

 private:
  std::vector<double> bounds_;
  std::vector<uint64_t> counts_;  // per bucket (not cumulative); last = above every bound
  uint64_t count_ = 0;
  double sum_ = 0;
};

// vLLM's bucket boundaries for these histograms.
std::vector<double> ttft_buckets();
std::vector<double> inter_token_buckets();
std::vector<double> request_latency_buckets();

void write_metric(std::string& out, const std::string& name, const std::string& type,
                  const std::string& help, double value);

}  // namespace v4::runtime
