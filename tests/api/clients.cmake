# Real agent clients (tests/api/clients/package.json, pinned) run non-interactively against
# v4flash-testserver's scripted engine, each completing a turn with a tool call and its result sent
# back (agent_clients_test.py says how). Reported SKIPPED (exit 77) when the clients are not
# installed. agent_clients_test.py --synth runs them on the real engine with a tiny random-weight
# checkpoint instead; not in the suite: Claude Code's 19k-token prompts take minutes to prefill there
# on a 2-core machine.
foreach(client claude-code codex opencode-openai opencode-anthropic)
  add_test(NAME api_agent_client_${client}_scripted_engine
           COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/tests/api/clients/agent_clients_test.py
                   ${client} $<TARGET_FILE:v4flash-testserver>)
  set_tests_properties(api_agent_client_${client}_scripted_engine PROPERTIES LABELS api TIMEOUT 400
                       SKIP_RETURN_CODE 77)
endforeach()
