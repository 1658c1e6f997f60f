# Real agent clients (tests/api/clients/package.json, pinned) run non-interactively against
# v4flash-testserver's scripted engine, each completing a turn with a tool call and its result sent
# back (agent_clients_test.py says how). Reported SKIPPED (exit 77) when the clients are not
# installed. The _demo_checkpoint variants (agent_clients_test.py --synth) run the same turn on the
# real engine and model with the demo's tiny random-weight checkpoint, only the token choices
# following the script (tests/support/scripted_model.cpp): 20-40 s each on 2 cores, Claude Code's
# ~19k-token prompts included (the prefix cache serves its second call).
foreach(client claude-code codex opencode-openai opencode-anthropic)
  add_test(NAME api_agent_client_${client}_scripted_engine
           COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/tests/api/clients/agent_clients_test.py
                   ${client} $<TARGET_FILE:v4flash-testserver>)
  set_tests_properties(api_agent_client_${client}_scripted_engine PROPERTIES LABELS api TIMEOUT 400
                       SKIP_RETURN_CODE 77)
  add_test(NAME api_agent_client_${client}_demo_checkpoint
           COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/tests/api/clients/agent_clients_test.py
                   ${client} $<TARGET_FILE:v4flash-testserver> --synth $<TARGET_FILE:v4flash>
                   ${CMAKE_BINARY_DIR}/agent-clients-demo-${client})
  set_tests_properties(api_agent_client_${client}_demo_checkpoint PROPERTIES LABELS "api;slow" TIMEOUT 900
                       SKIP_RETURN_CODE 77)
endforeach()
