#pragma once
// A Linkup-compatible server on 127.0.0.1 for the provider's tests: plain HTTP or HTTPS with a
// self-signed certificate made here (SAN IP:127.0.0.1, written to ca_file() for the client to
// trust). It answers each connection with the next scripted reply and records what it was sent.
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

namespace v4::testing {

struct FakeReply {
  FakeReply() = default;
  FakeReply(int status, std::string body, int delay_ms = 0, std::string retry_after = {})
      : status(status), body(std::move(body)), delay_ms(delay_ms), retry_after(std::move(retry_after)) {}
  int status = 200;
  std::string body;
  int delay_ms = 0;          // before answering (timeouts)
  std::string retry_after;   // Retry-After header, when not empty
};

struct SeenRequest {
  std::string target, authorization, content_type, body;
};

class FakeLinkup {
 public:
  explicit FakeLinkup(bool tls) : tls_(tls), ctx_(boost::asio::ssl::context::tls_server) {
    if (tls_) make_certificate();
    acceptor_.open(boost::asio::ip::tcp::v4());
    acceptor_.set_option(boost::asio::socket_base::reuse_address(true));
    acceptor_.bind({boost::asio::ip::make_address("127.0.0.1"), 0});
    acceptor_.listen();
    thread_ = std::thread([this] { serve(); });
  }
  ~FakeLinkup() {
    stop_ = true;
    boost::system::error_code ec;
    // Wake the blocking accept with a connection of our own.
    boost::asio::ip::tcp::socket s(ioc_);
    s.connect(acceptor_.local_endpoint(), ec);
    thread_.join();
    std::filesystem::remove(ca_file_);
  }
  std::string base_url() const {
    return std::string(tls_ ? "https" : "http") + "://127.0.0.1:" + std::to_string(acceptor_.local_endpoint().port()) + "/v1";
  }
  uint16_t port() const { return acceptor_.local_endpoint().port(); }
  const std::string& ca_file() const { return ca_file_; }
  void script(std::vector<FakeReply> replies) {
    std::lock_guard l(mu_);
    replies_.assign(replies.begin(), replies.end());
  }
  std::vector<SeenRequest> seen() const {
    std::lock_guard l(mu_);
    return seen_;
  }

 private:
  void make_certificate() {
    EVP_PKEY* key = EVP_EC_gen("P-256");
    X509* cert = X509_new();
    X509_set_version(cert, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
    X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
    X509_gmtime_adj(X509_getm_notAfter(cert), 3600 * 24);
    X509_set_pubkey(cert, key);
    X509_NAME* name = X509_get_subject_name(cert);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("v4flash test CA"), -1, -1, 0);
    X509_set_issuer_name(cert, name);
    X509V3_CTX v3;
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, cert, cert, nullptr, nullptr, 0);
    for (auto [nid, value] : {std::pair{NID_subject_alt_name, "IP:127.0.0.1"}, std::pair{NID_basic_constraints, "critical,CA:TRUE"}}) {
      X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &v3, nid, value);
      X509_add_ext(cert, ext, -1);
      X509_EXTENSION_free(ext);
    }
    X509_sign(cert, key, EVP_sha256());
    ca_file_ = (std::filesystem::temp_directory_path() / ("v4flash-test-ca-" + std::to_string(::getpid()) + "-" +
                                                          std::to_string(counter()++) + ".pem")).string();
    FILE* f = std::fopen(ca_file_.c_str(), "w");
    PEM_write_X509(f, cert);
    std::fclose(f);
    BIO* cb = BIO_new(BIO_s_mem());
    PEM_write_bio_X509(cb, cert);
    BIO* kb = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey(kb, key, nullptr, nullptr, 0, nullptr, nullptr);
    auto text = [](BIO* b) {
      char* p = nullptr;
      long n = BIO_get_mem_data(b, &p);
      return std::string(p, size_t(n));
    };
    ctx_.use_certificate_chain(boost::asio::buffer(text(cb)));
    ctx_.use_private_key(boost::asio::buffer(text(kb)), boost::asio::ssl::context::pem);
    BIO_free(cb);
    BIO_free(kb);
    X509_free(cert);
    EVP_PKEY_free(key);
  }
  static std::atomic<int>& counter() {
    static std::atomic<int> n{0};
    return n;
  }

  template <class Stream>
  void answer(Stream& stream) {
    namespace http = boost::beast::http;
    boost::beast::flat_buffer buf;
    http::request<http::string_body> req;
    http::read(stream, buf, req);
    FakeReply reply;
    {
      std::lock_guard l(mu_);
      seen_.push_back({std::string(req.target()), std::string(req[http::field::authorization]),
                       std::string(req[http::field::content_type]), req.body()});
      if (!replies_.empty()) {
        reply = replies_.front();
        replies_.pop_front();
      }
    }
    if (reply.delay_ms) std::this_thread::sleep_for(std::chrono::milliseconds(reply.delay_ms));
    http::response<http::string_body> res{http::status(reply.status), 11};
    res.set(http::field::content_type, "application/json");
    if (!reply.retry_after.empty()) res.set(http::field::retry_after, reply.retry_after);
    res.body() = reply.body;
    res.keep_alive(false);
    res.prepare_payload();
    boost::system::error_code ec;
    http::write(stream, res, ec);
  }

  void serve() {
    while (!stop_) {
      boost::asio::ip::tcp::socket socket(ioc_);
      boost::system::error_code ec;
      acceptor_.accept(socket, ec);
      if (ec || stop_) continue;
      try {
        if (tls_) {
          boost::beast::ssl_stream<boost::asio::ip::tcp::socket> s(std::move(socket), ctx_);
          s.handshake(boost::asio::ssl::stream_base::server);
          answer(s);
          s.shutdown(ec);
        } else {
          answer(socket);
        }
      } catch (const std::exception&) {
        // a client that refused our certificate, or went away: next connection
      }
    }
  }

  bool tls_;
  boost::asio::io_context ioc_;
  boost::asio::ssl::context ctx_;
  boost::asio::ip::tcp::acceptor acceptor_{ioc_};
  std::string ca_file_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  mutable std::mutex mu_;
  std::deque<FakeReply> replies_;
  std::vector<SeenRequest> seen_;
};

}  // namespace v4::testing
