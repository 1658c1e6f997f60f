# Agent frameworks (tests/api/frameworks/package.json, pinned): the Vercel AI SDK and LangChain.js,
# each with its OpenAI Chat, OpenAI Responses and Anthropic providers, against v4flash-testserver
# (frameworks.mjs says how). Reported SKIPPED (exit 77) when the packages are not installed.
#  - api_frameworks_<f>_tool_loops_scripted_engine: a streamed two-turn session per provider on the
#    scripted engine: a tool call, the tool run by the framework, its result sent back, the answer;
#    reasoning and usage as the framework reports them against the server's.
#  - api_frameworks_<f>_structured_synth: generateObject / streamObject / Output.object and
#    withStructuredOutput on the real engine with a tiny random-weight checkpoint (shared by both,
#    made once in the build dir): constrained decoding makes the answers schema-valid, the framework
#    must parse them.
find_program(V4_NODE node)
if(V4_NODE)
  foreach(framework ai-sdk langchain)
    string(REPLACE "-" "_" f ${framework})
    add_test(NAME api_frameworks_${f}_tool_loops_scripted_engine
             COMMAND ${V4_NODE} ${CMAKE_CURRENT_SOURCE_DIR}/tests/api/frameworks/frameworks.mjs ${framework}
                     --binary $<TARGET_FILE:v4flash-testserver> --scripted-engine)
    add_test(NAME api_frameworks_${f}_structured_synth
             COMMAND ${V4_NODE} ${CMAKE_CURRENT_SOURCE_DIR}/tests/api/frameworks/frameworks.mjs ${framework}
                     --binary $<TARGET_FILE:v4flash-testserver>
                     --synth $<TARGET_FILE:v4flash> ${CMAKE_BINARY_DIR}/api-frameworks-synth)
    set_tests_properties(api_frameworks_${f}_tool_loops_scripted_engine api_frameworks_${f}_structured_synth
                         PROPERTIES LABELS api TIMEOUT 240 SKIP_RETURN_CODE 77
                         ENVIRONMENT "V4_SHARED_DIR=${V4_SHARED_DIR}")
  endforeach()
endif()
