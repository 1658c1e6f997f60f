#include "gateway/gateway.h"

#include <spdlog/spdlog.h>

namespace v4::gateway {

namespace {
bool is_loopback(const std::string& host) { return host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0; }
}  // namespace

Gateway::Gateway(const Deployment& deployment, std::shared_ptr<api::Backend> local, int io_threads)
    : work_(ioc_.get_executor()), probe_timer_(ioc_), probe_interval_(deployment.routing.health_interval) {
  for (auto& [id, spec] : deployment.models) {
    bool upstream = false;
    for (auto& b : spec.backends) {
      if (b.local) continue;
      upstream = true;
      Url u = Url::parse(b.url);
      if (u.scheme == "http" && !b.api_key.empty() && !is_loopback(u.host))
        spdlog::warn("gateway: {} sends its upstream key to {} over plain http://; use https:// outside a private network",
                     id, u.host);
    }
    if (!upstream && spec.backends.size() == 1) continue;  // the local engine alone: the service's own path
    pools_[id] = std::make_shared<Pool>(id, spec, deployment.routing, ioc_, local);
  }
  for (int i = 0; i < std::max(1, io_threads); ++i) threads_.emplace_back([this] { ioc_.run(); });
  if (probe_interval_.count() > 0) {
    for (auto& [id, pool] : pools_) pool->probe();
    schedule_probe();
  }
}

void Gateway::schedule_probe() {
  probe_timer_.expires_after(probe_interval_);
  probe_timer_.async_wait([this](boost::system::error_code ec) {
    if (ec) return;
    for (auto& [id, pool] : pools_) pool->probe();
    schedule_probe();
  });
}

Gateway::~Gateway() {
  boost::asio::post(ioc_, [this] { probe_timer_.cancel(); });
  work_.reset();
  ioc_.stop();
  for (auto& t : threads_) t.join();
}

std::map<std::string, std::shared_ptr<api::Backend>> Gateway::backends() const {
  return {pools_.begin(), pools_.end()};
}

}  // namespace v4::gateway
