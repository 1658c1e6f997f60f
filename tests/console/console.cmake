# The web console in a real browser: Debian's Chromium driven by playwright-core (tests/console/*.mjs)
# against a live `v4flash serve --db` on a tiny random-weight checkpoint. SKIPPED (77) without
# Chromium or the npm packages. `v4flash accounts` has its own CLI test.
find_program(V4_NODE node)
if(V4_NODE)
  foreach(suite flows security)
    add_test(NAME console_browser_${suite}
             COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/tests/console/run.sh ${suite}.mjs
                     $<TARGET_FILE:v4flash> ${CMAKE_BINARY_DIR}/console-synth-${suite})
    set_tests_properties(console_browser_${suite} PROPERTIES LABELS console TIMEOUT 400 SKIP_RETURN_CODE 77)
  endforeach()
endif()
add_test(NAME console_accounts_cli COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/tests/console/accounts_cli_test.sh $<TARGET_FILE:v4flash>)
set_tests_properties(console_accounts_cli PROPERTIES LABELS console TIMEOUT 120)
