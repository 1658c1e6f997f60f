#pragma once
// The Anthropic Messages dialect (POST /v1/messages, .../count_tokens): its request and betas read
// into the internal Request, and its message object, event stream, usage and error shapes.
#include <memory>
#include <string>

#include <boost/json.hpp>

#include "api/output.h"
#include "api/request.h"

namespace v4::api {

Request parse_anthropic_request(const boost::json::value& body, bool count_tokens_only = false);

// The `anthropic-beta` header values (comma-separated): each must be one this server honours
// (anthropic.cpp lists them); an unknown one is refused with 400 naming it.
void check_anthropic_betas(const std::string& header);

boost::json::object anthropic_usage(const Usage& u);
boost::json::object render_anthropic_response(const Request& req, const ResponseMeta& meta, const Turn& turn,
                                              const Outcome& outcome);
// Anthropic's error body: its own error types by status, and the request id.
boost::json::object anthropic_error_body(const ApiError& error, const std::string& request_id);
// The renderer keeps a reference to `req`, which must outlive it.
std::unique_ptr<StreamRenderer> make_anthropic_stream(const Request& req, const ResponseMeta& meta, int prompt_tokens);

}  // namespace v4::api
