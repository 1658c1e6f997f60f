# Real agent clients (tests/api/clients/package.json, pinned) run non-interactively against
# v4flash-testserver, each completing a turn with a tool call and its result sent back:
#  - api_agent_client_*_scripted_engine: the scripted engine (no model).
#  - api_agent_client_*_synth: the real engine on a tiny random-weight checkpoint (the one the SDK
#    suite makes), the script choosing its tokens.
# Reported SKIPPED (exit 77) when the clients are not installed.
foreach(client claude-code codex opencode-openai opencode-anthropic)
  add_test(NAME api_agent_client_${client}_scripted_engine
           COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/tests/api/clients/agent_clients_test.py
                   ${client} $<TARGET_FILE:v4flash-testserver>)
  set_tests_properties(api_agent_client_${client}_scripted_engine PROPERTIES LABELS api TIMEOUT 400
                       SKIP_RETURN_CODE 77)
endforeach()
