#pragma once
// serve --deployment's running part: the pools of the deployment's model ids, the io_context their
// upstream calls and health probes run on, and the probe timer. serve hands backends() to the
// ApiService (api::ServiceOptions::backends); ids served by the local engine alone are left to it.
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio.hpp>

#include "api/backend.h"
#include "gateway/deployment.h"
#include "gateway/pool.h"

namespace v4::gateway {

class Gateway {
 public:
  // `local`: this process's engine as a backend (null without --model). Throws std::invalid_argument
  // (an upstream URL or CA file that cannot be used, a local backend without an engine).
  Gateway(const Deployment& deployment, std::shared_ptr<api::Backend> local, int io_threads = 2);
  ~Gateway();  // stops the probes and the I/O threads (running calls are cancelled)
  std::map<std::string, std::shared_ptr<api::Backend>> backends() const;

 private:
  boost::asio::io_context ioc_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_;
  boost::asio::steady_timer probe_timer_;
  std::chrono::milliseconds probe_interval_;
  std::map<std::string, std::shared_ptr<Pool>> pools_;
  std::vector<std::thread> threads_;
  void schedule_probe();
};

}  // namespace v4::gateway
