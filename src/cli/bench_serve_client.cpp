#include "cli/bench_serve_client.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>
#include <sstream>

namespace v4::cli {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

const char* path_of(ServeDialect d) {
  switch (d) {
    case ServeDialect::chat: return "/v1/chat/completions";
    case ServeDialect::responses: return "/v1/responses";
    case ServeDialect::anthropic: return "/v1/messages";
  }
  return "";
}

const json::value* at(const json::value& v, std::initializer_list<const char*> keys) {
  const json::value* cur = &v;
  for (const char* k : keys) {
    if (!cur->is_object()) return nullptr;
    cur = cur->as_object().if_contains(k);
    if (!cur) return nullptr;
  }
  return cur;
}

bool non_empty_string(const json::value* v) { return v && v->is_string() && !v->get_string().empty(); }

// One SSE event's data: is it a text chunk, and does it carry the output token count?
void read_event(ServeDialect d, const json::value& v, bool& text, int64_t& tokens) {
  const json::value* type = at(v, {"type"});
  const std::string t = type && type->is_string() ? std::string(type->get_string()) : "";
  switch (d) {
    case ServeDialect::chat: {
      if (const auto* choices = at(v, {"choices"}); choices && choices->is_array() && !choices->as_array().empty()) {
        const auto& c = choices->as_array()[0];
        text = non_empty_string(at(c, {"delta", "content"})) || non_empty_string(at(c, {"delta", "reasoning_content"}));
      }
      if (const auto* n = at(v, {"usage", "completion_tokens"}); n && n->is_int64()) tokens = n->get_int64();
      break;
    }
    case ServeDialect::responses:
      text = t.size() > 6 && t.ends_with(".delta") && non_empty_string(at(v, {"delta"}));
      if (const auto* n = at(v, {"response", "usage", "output_tokens"}); n && n->is_int64()) tokens = n->get_int64();
      break;
    case ServeDialect::anthropic:
      text = t == "content_block_delta" &&
             (non_empty_string(at(v, {"delta", "text"})) || non_empty_string(at(v, {"delta", "thinking"})));
      if (const auto* n = at(v, {"usage", "output_tokens"}); t == "message_delta" && n && n->is_int64())
        tokens = n->get_int64();
      break;
  }
}

}  // namespace

std::string request_body(const ServeTarget& target, const ServeRequest& r) {
  json::object body;
  body["model"] = target.model;
  body["stream"] = true;
  if (r.temperature >= 0) body["temperature"] = r.temperature;
  if (r.top_p >= 0) body["top_p"] = r.top_p;
  json::array messages;
  switch (target.dialect) {
    case ServeDialect::chat:
      messages.push_back(json::object{{"role", "user"}, {"content", r.prompt}});
      body["messages"] = std::move(messages);
      body["max_tokens"] = r.max_tokens;
      body["stream_options"] = json::object{{"include_usage", true}};
      body["thinking"] = json::object{{"type", r.thinking ? "enabled" : "disabled"}};
      break;
    case ServeDialect::responses:
      body["input"] = r.prompt;
      body["max_output_tokens"] = r.max_tokens;
      body["reasoning"] = json::object{{"effort", r.thinking ? "medium" : "none"}};
      break;
    case ServeDialect::anthropic:
      messages.push_back(json::object{{"role", "user"}, {"content", r.prompt}});
      body["messages"] = std::move(messages);
      body["max_tokens"] = r.max_tokens;
      if (r.thinking)
        body["thinking"] = json::object{{"type", "enabled"}, {"budget_tokens", std::max(1, r.max_tokens / 2)}};
      else
        body["thinking"] = json::object{{"type", "disabled"}};
      break;
  }
  return json::serialize(body);
}

struct ServeClient::Impl {
  explicit Impl(ServeTarget t) : target(std::move(t)) {}
  ServeTarget target;
  asio::io_context ioc;
  beast::tcp_stream stream{ioc};
  bool connected = false;

  void connect() {
    if (connected) return;
    tcp::resolver resolver(ioc);
    stream.connect(resolver.resolve(target.host, target.port));
    stream.socket().set_option(tcp::no_delay(true));
    connected = true;
  }
  void reset() {
    beast::error_code ec;
    stream.socket().close(ec);
    connected = false;
  }
  template <class Request>
  void authorise(Request& req) const {
    req.set(http::field::host, target.host);
    if (target.api_key.empty()) return;
    if (target.dialect == ServeDialect::anthropic) req.set("x-api-key", target.api_key);
    else req.set(http::field::authorization, "Bearer " + target.api_key);
  }
};

ServeClient::ServeClient(ServeTarget target) : impl_(new Impl(std::move(target))) {}
ServeClient::~ServeClient() { delete impl_; }

ServeResult ServeClient::generate(const ServeRequest& request) {
  ServeResult res;
  const auto t0 = Clock::now();
  try {
    impl_->connect();
    http::request<http::string_body> req{http::verb::post, path_of(impl_->target.dialect), 11};
    impl_->authorise(req);
    req.set(http::field::content_type, "application/json");
    if (impl_->target.dialect == ServeDialect::anthropic) req.set("anthropic-version", "2023-06-01");
    req.keep_alive(true);
    req.body() = request_body(impl_->target, request);
    req.prepare_payload();
    http::write(impl_->stream, req);

    beast::flat_buffer buffer;
    http::response_parser<http::buffer_body> parser;
    parser.body_limit(boost::none);
    http::read_header(impl_->stream, buffer, parser);
    const int status = int(parser.get().result_int());
    std::string pending, error_body;
    double last = -1;
    char chunk[16384];
    while (!parser.is_done()) {
      parser.get().body().data = chunk;
      parser.get().body().size = sizeof chunk;
      beast::error_code ec;
      http::read_some(impl_->stream, buffer, parser, ec);
      if (ec && ec != http::error::need_buffer) throw beast::system_error(ec);
      const size_t n = sizeof chunk - parser.get().body().size;
      if (status != 200) {
        error_body.append(chunk, n);
        continue;
      }
      pending.append(chunk, n);
      for (size_t end; (end = pending.find("\n\n")) != std::string::npos; pending.erase(0, end + 2)) {
        std::istringstream lines(pending.substr(0, end));
        for (std::string line; std::getline(lines, line);) {
          if (line.rfind("data:", 0) != 0) continue;
          std::string data = line.substr(line.size() > 5 && line[5] == ' ' ? 6 : 5);
          if (data == "[DONE]") continue;
          boost::system::error_code jec;
          json::value v = json::parse(data, jec);
          if (jec) continue;
          bool text = false;
          read_event(impl_->target.dialect, v, text, res.output_tokens);
          if (!text) continue;
          const double now = since(t0);
          if (res.chunks == 0) res.ttft = now;
          else res.gaps.push_back(now - last);
          last = now;
          res.chunks++;
        }
      }
    }
    if (!parser.get().keep_alive()) impl_->reset();
    if (status != 200) {
      res.error = "HTTP " + std::to_string(status) + ": " + error_body.substr(0, 300);
      return res;
    }
    if (res.output_tokens == 0) res.output_tokens = res.chunks;
    res.ok = res.chunks > 0;
    if (!res.ok) res.error = "the stream carried no text";
  } catch (const std::exception& e) {
    impl_->reset();
    res.error = e.what();
  }
  res.e2e = since(t0);
  return res;
}

std::map<std::string, double> ServeClient::metrics() {
  std::map<std::string, double> out = metrics_once();
  if (out.empty()) out = metrics_once();  // the server may have closed an idle keep-alive connection
  return out;
}

std::map<std::string, double> ServeClient::metrics_once() {
  std::map<std::string, double> out;
  try {
    impl_->connect();
    http::request<http::empty_body> req{http::verb::get, "/metrics", 11};
    impl_->authorise(req);
    req.keep_alive(true);
    http::write(impl_->stream, req);
    beast::flat_buffer buffer;
    http::response<http::string_body> res;
    http::read(impl_->stream, buffer, res);
    if (!res.keep_alive()) impl_->reset();
    if (res.result_int() != 200) {
      metrics_problem_ = "HTTP " + std::to_string(res.result_int());
      return out;
    }
    metrics_problem_.clear();
    std::istringstream lines(res.body());
    for (std::string line; std::getline(lines, line);) {
      if (line.empty() || line[0] == '#' || line.find('{') != std::string::npos) continue;
      const size_t sp = line.find(' ');
      if (sp == std::string::npos) continue;
      try {
        out[line.substr(0, sp)] = std::stod(line.substr(sp + 1));
      } catch (const std::exception&) {
      }
    }
  } catch (const std::exception& e) {
    impl_->reset();
    metrics_problem_ = e.what();
  }
  return out;
}

}  // namespace v4::cli
