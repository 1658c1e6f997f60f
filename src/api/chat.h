#pragma once
// The OpenAI Chat Completions dialect (POST /v1/chat/completions): its request read into the
// internal Request, and its completion object, chunk stream and usage shape.
#include <memory>

#include <boost/json.hpp>

#include "api/output.h"
#include "api/request.h"

namespace v4::api {

Request parse_chat_request(const boost::json::value& body);

boost::json::object chat_usage(const Usage& u);
// One choice per turn, choice i from turns[i] (Chat `n`).
boost::json::object render_chat_response(const Request& req, const ResponseMeta& meta, const std::vector<Turn>& turns,
                                         const Outcome& outcome);
// The renderer keeps a reference to `req`, which must outlive it.
std::unique_ptr<StreamRenderer> make_chat_stream(const Request& req, const ResponseMeta& meta);

}  // namespace v4::api
