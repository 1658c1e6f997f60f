#pragma once
// The OpenAI Responses dialect (POST /v1/responses): its request read into the internal Request,
// and its Response object, event stream and usage shape.
#include <memory>

#include <boost/json.hpp>

#include "api/output.h"
#include "api/request.h"

namespace v4::api {

// `earlier`: the stored conversation that the body's previous_response_id names (the service looks
// it up: api/response_store.h), read after `instructions` and before `input`.
Request parse_responses_request(const boost::json::value& body, const boost::json::array* earlier = nullptr);

boost::json::object responses_usage(const Usage& u);
boost::json::object render_responses_response(const Request& req, const ResponseMeta& meta, const Turn& turn,
                                              const Outcome& outcome);
// A Responses object before its output (status queued or in_progress): `output` empty, no usage.
boost::json::object render_pending_response(const Request& req, const ResponseMeta& meta, const char* status);
// The renderer keeps a reference to `req`, which must outlive it.
std::unique_ptr<StreamRenderer> make_responses_stream(const Request& req, const ResponseMeta& meta);

}  // namespace v4::api
