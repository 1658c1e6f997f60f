// The Responses API's state over real HTTP on the scripted engine, with managed keys of two
// accounts and the store in the ledger's database: store / GET / DELETE / input_items,
// previous_response_id (the prefix cache hit), item_reference, background (polled, billed once,
// cancelled), and a response kept across a restart on SQLite and PostgreSQL.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "../product/test_support.h"
#include "api/accounts_auth.h"
#include "api/response_store.h"
#include "api/server.h"
#include "http_client.h"
#include "product/store.h"
#include "scripted_engine.h"
#include "script.h"
#include "service_fixture.h"

using namespace v4;
using namespace v4::api;
using namespace std::chrono_literals;
namespace json = boost::json;
namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

namespace {

using Reply = v4::testing::HttpReply;

// A server on the scripted engine with the ledger and the response store in one database (`db`),
// and keys: a1 and a2 of account A, b of account B.
class StateServer {
 public:
  explicit StateServer(const std::string& db, int token_delay_us = 0) {
    accounts = product::Accounts::open(db);
    auto store = product::Store::open(db);
    for (const char* id : {"acct_a", "acct_b"})
      store->exec("INSERT INTO accounts (id, email, password_hash, is_admin, credit_nano, created_at_ms) "
                  "VALUES (?, ?, '!', 0, NULL, 0) ON CONFLICT (id) DO NOTHING",
                  {std::string(id), std::string(id) + "@example.com"});
    a1 = key("acct_a", &a1_id);
    a2 = key("acct_a");
    b = key("acct_b");
    gate = std::make_shared<AccountsGate>(accounts);
    v4::testing::ScriptedEngineOptions eo;
    eo.token_delay_us = token_delay_us;
    engine = v4::testing::create_scripted_engine(v4::testing::demo_tokenizer(), eo);
    ServiceOptions svc;
    svc.responses = ResponseStore::open(product::ResponseTable::open(db));
    service = std::make_unique<ApiService>(*engine, v4::testing::demo_tokenizer(), gate, gate, svc);
    ServerOptions so;
    so.port = 0;
    so.handle_signals = false;
    server = std::make_unique<HttpServer>(*service, so);
    server->listen();
    thread = std::thread([this] { server->run(); });
  }
  ~StateServer() {
    server->stop();
    thread.join();
    engine->shutdown();
  }

  Reply call(http::verb method, const std::string& target, const std::string& secret, const std::string& body = {}) {
    return v4::testing::http_call(server->port(), method, target, body, {{"authorization", "Bearer " + secret}});
  }
  Reply post(const std::string& body, const std::string& secret) {
    return call(http::verb::post, "/v1/responses", secret, body);
  }
  Reply get(const std::string& target, const std::string& secret) { return call(http::verb::get, target, secret); }

  // Polls GET until the response leaves queued / in_progress.
  json::value wait_finished(const std::string& id, const std::string& secret) {
    for (int i = 0; i < 500; ++i) {
      auto r = get("/v1/responses/" + id, secret);
      if (r.status != 200) return r.json();
      auto j = r.json();
      if (j.at("status") != "queued" && j.at("status") != "in_progress") return j;
      std::this_thread::sleep_for(20ms);
    }
    ADD_FAILURE() << "response " << id << " did not finish";
    return nullptr;
  }

  // The ledger's rows for one request (recorded right after the response's end).
  std::vector<product::RequestRow> ledger_rows(const std::string& request_id) {
    std::vector<product::RequestRow> rows;
    for (int i = 0; i < 200 && rows.empty(); ++i) {
      for (auto& r : accounts->recent_requests({}, 100))
        if (r.request_id == request_id) rows.push_back(r);
      if (rows.empty()) std::this_thread::sleep_for(10ms);
    }
    return rows;
  }

  std::shared_ptr<product::Accounts> accounts;
  std::shared_ptr<AccountsGate> gate;
  std::string a1, a2, b;  // secrets
  std::string a1_id;      // a1's key id
  std::unique_ptr<runtime::Engine> engine;
  std::unique_ptr<ApiService> service;
  std::unique_ptr<HttpServer> server;
  std::thread thread;

 private:
  std::string key(const std::string& account, std::string* id = nullptr) {
    product::KeyOptions o;
    o.name = "k";
    o.account_id = account;
    auto k = accounts->create_key(o);
    if (id) *id = k.info.id;
    return k.secret;
  }
};

struct TempDb {
  std::filesystem::path dir = std::filesystem::temp_directory_path() / ("v4f-respstate-" + random_id(12));
  TempDb() { std::filesystem::create_directories(dir); }
  ~TempDb() {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
  std::string path() const { return (dir / "v4flash.db").string(); }
};

std::string body(json::object o) {
  o.emplace("model", "deepseek-v4-flash");
  return json::serialize(o);
}

// A script marker (tests/support/script.h) as the input's system item: the engine emits `text`.
json::value scripted(const std::string& text) {
  return json::object{{"role", "system"}, {"content", v4::testing::script_marker(text)}};
}

constexpr const char* kEos = "<｜end▁of▁sentence｜>";

}  // namespace

TEST(ResponseState, KeptResponseReadsBackExactlyForItsAccountOnly) {
  TempDb db;
  StateServer s(db.path());
  // (with sealed reasoning, which differs each time it is sealed: the object is rendered once)
  auto made = s.post(body({{"input", "Say hello."}, {"instructions", "Be brief."},
                           {"include", json::array{"reasoning.encrypted_content"}}}),
                     s.a1);
  ASSERT_EQ(made.status, 200) << made.body;
  const json::value original = made.json();
  ASSERT_TRUE(original.at("output").at(0).at("encrypted_content").is_string());
  const std::string id(original.at("id").as_string());
  EXPECT_EQ(original.at("store"), true);  // OpenAI's default

  auto again = s.get("/v1/responses/" + id, s.a1);
  ASSERT_EQ(again.status, 200) << again.body;
  EXPECT_EQ(again.json(), original);  // the object exactly as returned
  EXPECT_EQ(s.get("/v1/responses/" + id, s.a2).json(), original);  // the account's other key

  // Another account: 404, the same answer as for an id that never existed.
  auto theirs = s.get("/v1/responses/" + id, s.b);
  auto missing = s.get("/v1/responses/resp_nope", s.b);
  EXPECT_EQ(theirs.status, 404);
  EXPECT_EQ(missing.status, 404);
  auto shape = [](json::value e, const std::string& id) {
    auto& err = e.as_object()["error"].as_object();
    std::string m(err["message"].as_string());
    m.replace(m.find(id), id.size(), "ID");
    err["message"] = m;
    return e;
  };
  EXPECT_EQ(shape(theirs.json(), id), shape(missing.json(), "resp_nope"));
  EXPECT_EQ(s.call(http::verb::delete_, "/v1/responses/" + id, s.b).status, 404);
  EXPECT_EQ(s.get("/v1/responses/" + id + "/input_items", s.b).status, 404);

  // HEAD: the GET's head, no body.
  auto head = s.call(http::verb::head, "/v1/responses/" + id, s.a1);
  EXPECT_EQ(head.status, 200);
  EXPECT_TRUE(head.body.empty());
  EXPECT_EQ(head.raw[http::field::content_length], std::to_string(again.body.size()));

  auto items = s.get("/v1/responses/" + id + "/input_items", s.a1);
  ASSERT_EQ(items.status, 200) << items.body;
  auto list = items.json();
  EXPECT_EQ(list.at("object"), "list");
  ASSERT_EQ(list.at("data").as_array().size(), 1u);
  auto& item = list.at("data").at(0);
  EXPECT_EQ(item.at("type"), "message");
  EXPECT_EQ(item.at("role"), "user");
  EXPECT_EQ(item.at("content").at(0).at("type"), "input_text");
  EXPECT_EQ(item.at("content").at(0).at("text"), "Say hello.");
  EXPECT_EQ(list.at("first_id"), item.at("id"));
  EXPECT_EQ(list.at("last_id"), item.at("id"));
  EXPECT_EQ(list.at("has_more"), false);

  auto gone = s.call(http::verb::delete_, "/v1/responses/" + id, s.a2);
  ASSERT_EQ(gone.status, 200) << gone.body;
  EXPECT_EQ(gone.json(), (json::value{{"id", id}, {"object", "response"}, {"deleted", true}}));
  EXPECT_EQ(s.get("/v1/responses/" + id, s.a1).status, 404);
  EXPECT_EQ(s.call(http::verb::delete_, "/v1/responses/" + id, s.a1).status, 404);
}

TEST(ResponseState, AStreamedResponseIsKeptAsItsFinalEventCarriedIt) {
  TempDb db;
  StateServer s(db.path());
  auto streamed = s.post(body({{"input", "Say hello."}, {"stream", true},
                               {"include", json::array{"reasoning.encrypted_content"}}}),
                         s.a1);
  ASSERT_EQ(streamed.status, 200) << streamed.body;
  const std::string marker = "event: response.completed\ndata: ";
  const size_t at = streamed.body.find(marker);
  ASSERT_NE(at, std::string::npos) << streamed.body;
  const size_t from = at + marker.size();
  const json::value final_event = json::parse(streamed.body.substr(from, streamed.body.find('\n', from) - from));
  const json::value& response = final_event.at("response");
  ASSERT_TRUE(response.at("output").at(0).at("encrypted_content").is_string());
  auto got = s.get("/v1/responses/" + std::string(response.at("id").as_string()), s.a1);
  ASSERT_EQ(got.status, 200) << got.body;
  EXPECT_EQ(got.json(), response);
}

TEST(ResponseState, StoreFalseKeepsNothingAndInputItemsArePaged) {
  TempDb db;
  StateServer s(db.path());
  auto unkept = s.post(body({{"input", "Hi"}, {"store", false}}), s.a1);
  ASSERT_EQ(unkept.status, 200) << unkept.body;
  EXPECT_EQ(unkept.json().at("store"), false);
  s.service->responses().flush();
  EXPECT_EQ(s.get("/v1/responses/" + std::string(unkept.json().at("id").as_string()), s.a1).status, 404);
  EXPECT_EQ(product::Store::open(db.path())->query("SELECT COUNT(*) FROM responses").at(0).integer(0), 0);

  json::array input{json::object{{"role", "user"}, {"content", "one"}},
                    json::object{{"role", "assistant"}, {"content", "two"}},
                    json::object{{"type", "message"}, {"id", "msg_mine"}, {"role", "user"},
                                 {"content", json::array{json::object{{"type", "input_text"}, {"text", "three"}}}}}};
  auto kept = s.post(body({{"input", input}}), s.a1);
  ASSERT_EQ(kept.status, 200) << kept.body;
  const std::string base = "/v1/responses/" + std::string(kept.json().at("id").as_string()) + "/input_items";
  auto texts = [](const json::value& list) {
    std::vector<std::string> out;
    for (auto& i : list.at("data").as_array()) out.emplace_back(i.at("content").at(0).at("text").as_string());
    return out;
  };
  auto desc = s.get(base, s.a1).json();  // newest first by default
  EXPECT_EQ(texts(desc), (std::vector<std::string>{"three", "two", "one"}));
  EXPECT_EQ(desc.at("first_id"), "msg_mine");  // a client's id is kept
  EXPECT_EQ(desc.at("data").at(1).at("content").at(0).at("type"), "output_text");
  auto page = s.get(base + "?order=asc&limit=2", s.a1).json();
  EXPECT_EQ(texts(page), (std::vector<std::string>{"one", "two"}));
  EXPECT_EQ(page.at("has_more"), true);
  auto rest = s.get(base + "?order=asc&limit=2&after=" + std::string(page.at("last_id").as_string()), s.a1).json();
  EXPECT_EQ(texts(rest), (std::vector<std::string>{"three"}));
  EXPECT_EQ(rest.at("has_more"), false);

  // Query parameters: honoured or refused naming them.
  struct Bad {
    std::string query;
    int status;
    const char* param;
  } bad[] = {{"?limit=0", 422, "limit"},     {"?limit=x", 400, "limit"},   {"?order=up", 422, "order"},
             {"?after=msg_nope", 400, "after"}, {"?include[]=x", 400, "include"}, {"?page=2", 400, "page"}};
  for (auto& c : bad) {
    auto r = s.get(base + c.query, s.a1);
    EXPECT_EQ(r.status, c.status) << c.query << " " << r.body;
    EXPECT_EQ(r.json().at("error").at("param"), c.param) << c.query;
  }
}

TEST(ResponseState, PreviousResponseContinuesWithoutInstructionsAndHitsThePrefixCache) {
  TempDb db;
  StateServer s(db.path());
  const std::string instructions = "You are a careful assistant. Answer every question briefly and politely.";
  auto first = s.post(body({{"input", "Say hello."}, {"instructions", instructions}}), s.a1);
  ASSERT_EQ(first.status, 200) << first.body;
  const std::string id1(first.json().at("id").as_string());
  EXPECT_EQ(first.json().at("usage").at("input_tokens_details").at("cached_tokens"), 0);

  // The client sends its instructions again (they are not carried over): the prompt then starts
  // with the first one's, and the prefix cache serves it.
  auto second = s.post(body({{"input", "And once more?"}, {"instructions", instructions}, {"previous_response_id", id1}}),
                       s.a1);
  ASSERT_EQ(second.status, 200) << second.body;
  auto j = second.json();
  EXPECT_EQ(j.at("previous_response_id").as_string(), id1);
  EXPECT_GT(j.at("usage").at("input_tokens_details").at("cached_tokens").as_int64(), 0) << second.body;
  EXPECT_GT(j.at("usage").at("input_tokens").as_int64(),
            first.json().at("usage").at("input_tokens").as_int64());  // the whole conversation went in

  // What the model reads for a third turn without instructions: the chain's turns, no system prompt.
  Principal who = s.gate->authenticate(s.a1);
  auto p = s.service->prepare(Dialect::responses,
                              body({{"input", "Thanks."}, {"previous_response_id", j.at("id")}}), {}, who);
  ASSERT_EQ(p.req.messages.size(), 5u);
  const std::vector<std::string> roles = {"user", "assistant", "user", "assistant", "user"};
  for (size_t i = 0; i < roles.size(); ++i) EXPECT_EQ(p.req.messages[i].role, roles[i]) << i;
  EXPECT_EQ(p.req.messages[0].content, "Say hello.");
  EXPECT_EQ(p.req.messages[1].content, v4::testing::kScriptedAnswer);
  EXPECT_EQ(p.req.messages[1].reasoning_content.value_or(""), v4::testing::kScriptedReasoning);
  EXPECT_EQ(p.req.messages[4].content, "Thanks.");
  EXPECT_TRUE(p.req.instructions.empty());

  // Unknown, or another account's: 404 previous_response_not_found.
  for (auto [prev, secret] : {std::pair{std::string("resp_nope"), s.a1}, std::pair{id1, s.b}}) {
    auto r = s.post(body({{"input", "x"}, {"previous_response_id", prev}}), secret);
    EXPECT_EQ(r.status, 404) << r.body;
    EXPECT_EQ(r.json().at("error").at("code"), "previous_response_not_found");
    EXPECT_EQ(r.json().at("error").at("param"), "previous_response_id");
  }
  // store: false on the previous one: there is nothing to continue.
  auto unkept = s.post(body({{"input", "x"}, {"store", false}}), s.a1);
  auto r = s.post(body({{"input", "y"}, {"previous_response_id", unkept.json().at("id")}}), s.a1);
  EXPECT_EQ(r.status, 404) << r.body;
}

TEST(ResponseState, HiddenReasoningIsKeptSealedAndStillContinues) {
  TempDb db;
  StateServer s(db.path());
  auto made = s.post(body({{"input", "Say hello."}, {"thinking", json::object{{"type", "enabled"}, {"display", "omitted"}}}}),
                     s.a1);
  ASSERT_EQ(made.status, 200) << made.body;
  const std::string id(made.json().at("id").as_string());
  EXPECT_EQ(made.json().at("output").at(0).at("content").at(0).at("text"), "");  // not shown
  s.service->responses().flush();
  auto rows = product::Store::open(db.path())->query("SELECT response, input_items, hidden FROM responses WHERE id = ?", {id});
  ASSERT_EQ(rows.size(), 1u);
  for (size_t c = 0; c < 3; ++c)
    EXPECT_EQ(rows[0].text(c).find("The user greets me"), std::string::npos) << "column " << c << " holds it in clear";
  EXPECT_NE(rows[0].text(2).find("v4r1."), std::string::npos);  // sealed

  Principal who = s.gate->authenticate(s.a1);
  auto p = s.service->prepare(Dialect::responses, body({{"input", "Again."}, {"previous_response_id", id}}), {}, who);
  ASSERT_GE(p.req.messages.size(), 2u);
  EXPECT_EQ(p.req.messages[1].reasoning_content.value_or(""), v4::testing::kScriptedReasoning);

  // include=reasoning.encrypted_content on GET: the sealed reasoning, which reads back to the text.
  auto sealed = s.get("/v1/responses/" + id + "?include[]=reasoning.encrypted_content", s.a1);
  ASSERT_EQ(sealed.status, 200) << sealed.body;
  auto blob = sealed.json().at("output").at(0).at("encrypted_content");
  ASSERT_TRUE(blob.is_string());
  EXPECT_EQ(unseal_reasoning(std::string(blob.as_string()), "x"), v4::testing::kScriptedReasoning);
  for (const char* q : {"?include[]=message.output_text.logprobs", "?stream=true", "?starting_after=3", "?x=1"})
    EXPECT_EQ(s.get("/v1/responses/" + id + q, s.a1).status, 400) << q;
}

TEST(ResponseState, BackgroundIsPolledToCompletionAndBilledOnce) {
  TempDb db;
  StateServer s(db.path(), /*token_delay_us=*/3000);
  auto made = s.post(body({{"input", "Say hello."}, {"background", true}}), s.a1);
  ASSERT_EQ(made.status, 200) << made.body;
  auto j = made.json();
  EXPECT_EQ(j.at("status"), "queued");
  EXPECT_EQ(j.at("background"), true);
  EXPECT_TRUE(j.at("output").as_array().empty());
  const std::string id(j.at("id").as_string());
  // Its credit is held from the start, as a foreground request's is.
  auto held = product::Store::open(db.path())->query("SELECT hold_nano FROM admissions WHERE request_id = ?", {id});
  ASSERT_EQ(held.size(), 1u);

  auto done = s.wait_finished(id, s.a1);
  ASSERT_TRUE(done.is_object());
  EXPECT_EQ(done.at("status"), "completed");
  EXPECT_EQ(done.at("output").at(1).at("content").at(0).at("text"), v4::testing::kScriptedAnswer);
  auto rows = s.ledger_rows(id);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].status, "completed");
  EXPECT_EQ(rows[0].output_tokens, done.at("usage").at("output_tokens").as_int64());

  // Cancelling a finished one is an error; so is cancelling a foreground one.
  auto late = s.call(http::verb::post, "/v1/responses/" + id + "/cancel", s.a1);
  EXPECT_EQ(late.status, 400) << late.body;
  auto fg = s.post(body({{"input", "Hi"}}), s.a1);
  EXPECT_EQ(s.call(http::verb::post, "/v1/responses/" + std::string(fg.json().at("id").as_string()) + "/cancel", s.a1).status,
            400);
  // background needs store, and is not streamed
  auto no_store = s.post(body({{"input", "x"}, {"background", true}, {"store", false}}), s.a1);
  EXPECT_EQ(no_store.status, 400);
  EXPECT_EQ(no_store.json().at("error").at("param"), "background");
  auto streamed = s.post(body({{"input", "x"}, {"background", true}, {"stream", true}}), s.a1);
  EXPECT_EQ(streamed.status, 400);
  EXPECT_EQ(streamed.json().at("error").at("param"), "stream");
}

namespace {

json::object reference(const json::value& id) { return json::object{{"type", "item_reference"}, {"id", id}}; }

json::array concat(std::initializer_list<json::array> parts) {
  json::array out;
  for (auto& p : parts)
    for (auto& v : p) out.push_back(v);
  return out;
}

const std::string kCall =
    "I should call the tool.</think>\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"get_weather\">\n"
    "<｜DSML｜parameter name=\"city\" string=\"true\">Paris</｜DSML｜parameter>\n</｜DSML｜invoke>\n"
    "</｜DSML｜tool_calls>" + std::string(kEos);

json::array weather_tools() {
  return json::array{json::object{
      {"type", "function"}, {"name", "get_weather"},
      {"parameters", json::object{{"type", "object"},
                                  {"properties", json::object{{"city", json::object{{"type", "string"}}}}}}}}};
}

}  // namespace

// The AI SDK's Responses tool loop with store on: earlier reasoning, calls and answers go back as
// item_reference; the model reads exactly what it would read with the items sent inline.
TEST(ResponseState, ItemReferencesStandForTheStoredItemsTheyName) {
  TempDb db;
  StateServer s(db.path());
  Principal who = s.gate->authenticate(s.a1);
  const json::array start{scripted(kCall), json::object{{"role", "user"}, {"content", "Weather in Paris?"}}};
  auto one = s.post(body({{"input", start}, {"tools", weather_tools()}}), s.a1);
  ASSERT_EQ(one.status, 200) << one.body;
  const json::array out1 = one.json().at("output").as_array();
  ASSERT_EQ(out1.size(), 2u) << one.body;
  EXPECT_EQ(out1[0].at("type"), "reasoning");
  EXPECT_EQ(out1[1].at("type"), "function_call");
  const json::array result{json::object{
      {"type", "function_call_output"}, {"call_id", out1[1].at("call_id")},
      {"output", "sunny " + v4::testing::script_marker("The tool says sunny.</think>Paris is sunny." + std::string(kEos))}}};

  // The reasoning item and the call, by reference and inline: the same prompt.
  auto by_ref = body({{"input", concat({start, {reference(out1[0].at("id")), reference(out1[1].at("id"))}, result})},
                      {"tools", weather_tools()}});
  auto inline_ = body({{"input", concat({start, out1, result})}, {"tools", weather_tools()}});
  auto p_ref = s.service->prepare(Dialect::responses, by_ref, {}, who);
  auto p_inline = s.service->prepare(Dialect::responses, inline_, {}, who);
  EXPECT_EQ(p_ref.prompt, p_inline.prompt);
  ASSERT_EQ(p_ref.req.messages.size(), 4u);
  EXPECT_EQ(p_ref.req.messages[2].reasoning_content.value_or(""), "I should call the tool.");
  ASSERT_EQ(p_ref.req.messages[2].tool_calls.size(), 1u);
  // What it stores as its input: the items themselves.
  auto kept = json::parse(p_ref.input_items).as_array();
  ASSERT_EQ(kept.size(), 5u);
  EXPECT_EQ(kept[2], out1[0]);
  EXPECT_EQ(kept[3], out1[1]);

  auto two = s.post(by_ref, s.a1);
  ASSERT_EQ(two.status, 200) << two.body;
  const json::array out2 = two.json().at("output").as_array();
  ASSERT_EQ(out2.size(), 2u) << two.body;
  EXPECT_EQ(out2[1].at("content").at(0).at("text"), "Paris is sunny.");
  // Every id an item is listed with can be referenced: the tool result's, given by the server.
  auto listed = s.get("/v1/responses/" + std::string(two.json().at("id").as_string()) + "/input_items?order=asc", s.a1);
  ASSERT_EQ(listed.status, 200) << listed.body;
  const json::value tool_result = listed.json().at("data").at(4);
  EXPECT_EQ(tool_result.at("type"), "function_call_output");
  EXPECT_EQ(listed.json().at("data").at(2), out1[0]);  // listed as resolved

  // The next turn: the call, its result, the answer and its reasoning all by reference (the
  // result's shorthand without a type); the same prompt as inline.
  const json::array ask{json::object{
      {"role", "user"}, {"content", "And Rome? " + v4::testing::script_marker("Same.</think>Rome too." + std::string(kEos))}}};
  json::array refs{reference(out1[0].at("id")), reference(out1[1].at("id")), json::object{{"id", tool_result.at("id")}},
                   reference(out2[0].at("id")), reference(out2[1].at("id"))};
  auto third_ref = body({{"input", concat({start, refs, ask})}, {"tools", weather_tools()}});
  auto third_inline = body({{"input", concat({start, out1, {tool_result}, out2, ask})}, {"tools", weather_tools()}});
  EXPECT_EQ(s.service->prepare(Dialect::responses, third_ref, {}, who).prompt,
            s.service->prepare(Dialect::responses, third_inline, {}, who).prompt);
  auto three = s.post(third_ref, s.a1);
  ASSERT_EQ(three.status, 200) << three.body;
  EXPECT_EQ(three.json().at("output").at(1).at("content").at(0).at("text"), "Rome too.");
  // And read from the table rather than from memory, once written.
  s.service->responses().flush();
  EXPECT_EQ(s.service->prepare(Dialect::responses, third_ref, {}, who).prompt,
            s.service->prepare(Dialect::responses, third_inline, {}, who).prompt);
}

TEST(ResponseState, ItemReferencesToItemsNotKeptAreRefusedNamingThem) {
  TempDb db;
  StateServer s(db.path());
  auto made = s.post(body({{"input", "Say hello."}}), s.a1);
  ASSERT_EQ(made.status, 200) << made.body;
  const json::value made_id = made.json().at("id");
  const json::value msg = made.json().at("output").at(1).at("id");
  auto refused = [&](json::array input, const std::string& secret, json::object extra = {}) {
    extra["input"] = std::move(input);
    return s.post(body(std::move(extra)), secret);
  };
  auto user = json::object{{"role", "user"}, {"content", "x"}};
  auto not_found = [&](const Reply& r, const std::string& id) {
    EXPECT_EQ(r.status, 400) << r.body;
    EXPECT_EQ(r.json().at("error").at("param"), "input[1].id") << r.body;
    EXPECT_EQ(r.json().at("error").at("message"), json::value("Item with id '" + id + "' not found.")) << r.body;
    EXPECT_EQ(r.json().at("error").at("type"), "invalid_request_error") << r.body;
  };
  // (store false: this request keeps no copy of the item)
  EXPECT_EQ(refused({user, reference(msg)}, s.a2, {{"store", false}}).status, 200);  // the account's other key
  not_found(refused({user, reference("msg_nope")}, s.a1), "msg_nope");
  not_found(refused({user, reference(msg)}, s.b), std::string(msg.as_string()));  // another account's

  // store false: nothing was kept to refer to.
  auto unkept = s.post(body({{"input", "Hi"}, {"store", false}}), s.a1);
  ASSERT_EQ(unkept.status, 200) << unkept.body;
  const json::value unkept_msg = unkept.json().at("output").at(1).at("id");
  not_found(refused({user, reference(unkept_msg)}, s.a1), std::string(unkept_msg.as_string()));

  // An item the request already carries (here through previous_response_id), as OpenAI refuses it.
  auto twice = refused({user, reference(msg)}, s.a1, {{"previous_response_id", made_id}});
  EXPECT_EQ(twice.status, 400) << twice.body;
  EXPECT_EQ(twice.json().at("error").at("param"), "input[1].id");
  // A malformed reference: its field named.
  auto no_id = refused({user, json::object{{"type", "item_reference"}}}, s.a1);
  EXPECT_EQ(no_id.status, 400);
  EXPECT_EQ(no_id.json().at("error").at("param"), "input[1].id");
  auto extra = refused({user, json::object{{"type", "item_reference"}, {"id", msg}, {"role", "user"}}}, s.a1);
  EXPECT_EQ(extra.status, 400);
  EXPECT_EQ(extra.json().at("error").at("param"), "input[1].role");

  // Deleted: its items went with it.
  s.service->responses().flush();
  ASSERT_EQ(s.call(http::verb::delete_, "/v1/responses/" + std::string(made_id.as_string()), s.a1).status, 200);
  not_found(refused({user, reference(msg)}, s.a1), std::string(msg.as_string()));
}

// GET .../input_items lists every item a response was made from, as OpenAI does: with
// previous_response_id, the chain's input and output items before its own input.
TEST(ResponseState, InputItemsOfAChainedResponseListItsWholeContext) {
  TempDb db;
  StateServer s(db.path());
  auto one = s.post(body({{"input", "Say hello."}}), s.a1);
  ASSERT_EQ(one.status, 200) << one.body;
  auto two = s.post(body({{"input", "Again."}, {"previous_response_id", one.json().at("id")}}), s.a1);
  ASSERT_EQ(two.status, 200) << two.body;
  auto three = s.post(body({{"input", "Once more."}, {"previous_response_id", two.json().at("id")}}), s.a1);
  ASSERT_EQ(three.status, 200) << three.body;
  auto list = [&](const json::value& id) {
    auto r = s.get("/v1/responses/" + std::string(id.as_string()) + "/input_items?order=asc&limit=100", s.a1);
    EXPECT_EQ(r.status, 200) << r.body;
    return r.json().at("data");
  };
  auto listed = list(three.json().at("id"));
  ASSERT_EQ(listed.as_array().size(), 7u) << listed;
  EXPECT_EQ(listed.at(0).at("content").at(0).at("text"), "Say hello.");
  EXPECT_EQ(listed.at(1), one.json().at("output").at(0));  // its output items as GET shows them
  EXPECT_EQ(listed.at(2), one.json().at("output").at(1));
  EXPECT_EQ(listed.at(3).at("content").at(0).at("text"), "Again.");
  EXPECT_EQ(listed.at(4), two.json().at("output").at(0));
  EXPECT_EQ(listed.at(6).at("content").at(0).at("text"), "Once more.");
  EXPECT_EQ(list(one.json().at("id")).as_array().size(), 1u);
  // Paged over the whole list.
  auto desc = s.get("/v1/responses/" + std::string(three.json().at("id").as_string()) + "/input_items?limit=3", s.a1);
  EXPECT_EQ(desc.json().at("has_more"), true);
  EXPECT_EQ(desc.json().at("last_id"), listed.at(4).at("id"));

  // A response of the chain deleted: the list starts after it.
  ASSERT_EQ(s.call(http::verb::delete_, "/v1/responses/" + std::string(one.json().at("id").as_string()), s.a1).status, 200);
  auto rest = list(three.json().at("id"));
  ASSERT_EQ(rest.as_array().size(), 4u) << rest;
  EXPECT_EQ(rest.at(0).at("content").at(0).at("text"), "Again.");
}

namespace {

// A background response of key a1 scripted to run for 2,000 tokens; its id ("" if refused).
std::string start_long_background(StateServer& s) {
  std::string words;
  for (int i = 0; i < 2000; ++i) words += " word";
  auto made = s.post(body({{"input", json::array{scripted("Thinking.</think>" + words + kEos),
                                                 json::object{{"role", "user"}, {"content", "Go."}}}},
                           {"background", true}}),
                     s.a1);
  EXPECT_EQ(made.status, 200) << made.body;
  return made.status == 200 ? std::string(made.json().at("id").as_string()) : std::string();
}

}  // namespace

TEST(ResponseState, CancelStopsABackgroundResponseOnceAndBillsWhatItMade) {
  TempDb db;
  StateServer s(db.path(), /*token_delay_us=*/3000);
  const std::string id = start_long_background(s);
  ASSERT_FALSE(id.empty());
  EXPECT_EQ(s.call(http::verb::post, "/v1/responses/" + id + "/cancel", s.b).status, 404);  // not theirs
  auto cancelled = s.call(http::verb::post, "/v1/responses/" + id + "/cancel", s.a1);
  ASSERT_EQ(cancelled.status, 200) << cancelled.body;
  EXPECT_EQ(cancelled.json().at("status"), "cancelled");
  auto twice = s.call(http::verb::post, "/v1/responses/" + id + "/cancel", s.a1, "{}");
  EXPECT_EQ(twice.status, 200) << twice.body;
  EXPECT_EQ(twice.json(), cancelled.json());
  EXPECT_EQ(s.get("/v1/responses/" + id, s.a1).json(), cancelled.json());
  auto rows = s.ledger_rows(id);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].status, "cancelled");
  EXPECT_LT(rows[0].output_tokens, 2000);
  EXPECT_EQ(s.service->responses().background_running(), 0u);
}

TEST(ResponseState, ABackgroundResponseOfARevokedKeyStopsAsFailedAndIsBilledOnce) {
  TempDb db;
  StateServer s(db.path(), /*token_delay_us=*/3000);
  const std::string id = start_long_background(s);
  ASSERT_FALSE(id.empty());
  ASSERT_TRUE(s.accounts->revoke_key(s.a1_id));
  auto done = s.wait_finished(id, s.a2);  // the account's other key reads it
  ASSERT_TRUE(done.is_object());
  EXPECT_EQ(done.at("status"), "failed");
  EXPECT_NE(std::string(done.at("error").at("message").as_string()).find("revoked"), std::string::npos);
  auto rows = s.ledger_rows(id);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_LT(rows[0].output_tokens, 2000);
}

TEST(ResponseState, ABackgroundRowWhoseProcessStoppedReadsAsFailed) {
  TempDb db;
  {
    product::StoredResponse r;
    r.id = "resp_orphan";
    r.owner = "acct_a";
    r.status = "in_progress";
    r.background = true;
    r.runner = "run_gone";
    r.created_at_ms = r.updated_at_ms = 1000;  // its process stopped refreshing it long ago
    r.response = json::serialize(json::object{{"id", "resp_orphan"}, {"object", "response"}, {"status", "in_progress"},
                                              {"output", json::array{}}});
    r.input_items = "[]";
    product::ResponseTable::open(db.path())->put(r);
  }
  StateServer s(db.path());
  auto got = s.get("/v1/responses/resp_orphan", s.a1);
  ASSERT_EQ(got.status, 200) << got.body;
  EXPECT_EQ(got.json().at("status"), "failed");
  EXPECT_EQ(got.json().at("error").at("code"), "server_error");
  EXPECT_EQ(s.call(http::verb::post, "/v1/responses/resp_orphan/cancel", s.a1).status, 400);
}

// Kept in the database: a new server process reads it back and continues it.
class ResponseStateDb : public ::testing::TestWithParam<std::string> {};
INSTANTIATE_TEST_SUITE_P(Backends, ResponseStateDb, ::testing::Values("sqlite", "postgresql"),
                         [](const auto& info) { return info.param; });

TEST_P(ResponseStateDb, KeptAcrossARestartAndContinued) {
  V4_FRESH_DB(db, tmp);
  json::value original;
  std::string secret;
  {
    StateServer s(db);
    secret = s.a1;
    auto made = s.post(body({{"input", "Say hello."}}), s.a1);
    ASSERT_EQ(made.status, 200) << made.body;
    original = made.json();
  }  // the server stops; its queued writes land first
  StateServer s(db);
  const std::string id(original.at("id").as_string());
  auto again = s.get("/v1/responses/" + id, secret);
  ASSERT_EQ(again.status, 200) << again.body;
  EXPECT_EQ(again.json(), original);
  EXPECT_EQ(s.get("/v1/responses/" + id, s.b).status, 404);
  auto next = s.post(body({{"input", "Again."}, {"previous_response_id", id}}), secret);
  ASSERT_EQ(next.status, 200) << next.body;
  EXPECT_EQ(s.get("/v1/responses/" + std::string(next.json().at("id").as_string()) + "/input_items", secret)
                .json().at("data").as_array().size(),
            4u);  // the earlier turn's input and output items, then its own input
  // Its items are found by id in the table, for its account only.
  const json::value& msg = original.at("output").at(1).at("id");
  json::array refs{json::object{{"type", "item_reference"}, {"id", msg}}, json::object{{"role", "user"}, {"content", "More."}}};
  auto referred = s.post(body({{"input", refs}}), secret);
  ASSERT_EQ(referred.status, 200) << referred.body;
  auto listed = s.get("/v1/responses/" + std::string(referred.json().at("id").as_string()) + "/input_items?order=asc", secret);
  EXPECT_EQ(listed.json().at("data").at(0), original.at("output").at(1));
  auto theirs = s.post(body({{"input", refs}}), s.b);
  EXPECT_EQ(theirs.status, 400) << theirs.body;
  EXPECT_EQ(theirs.json().at("error").at("param"), "input[0].id");
}
