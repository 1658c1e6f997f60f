# `v4flash logits` / `v4flash generate` end to end against the exact reference fixtures.
add_test(NAME model.cli_logits_generate
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/tests/model/cli_test.py $<TARGET_FILE:v4flash> ${V4_SHARED_DIR})
set_tests_properties(model.cli_logits_generate PROPERTIES LABELS model TIMEOUT 120)
