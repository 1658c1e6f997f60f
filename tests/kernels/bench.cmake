# `v4flash bench kernels|decode|prefill --json` on small sizes and the tiny fixture: fields, byte and
# FLOP counts against an independent count from the safetensors header, ratios.
add_test(NAME kernels_bench_cli_json
         COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/tests/kernels/bench_cli_test.py
                 $<TARGET_FILE:v4flash> ${V4_SHARED_DIR}/fixtures/tiny-v4)
set_tests_properties(kernels_bench_cli_json PROPERTIES LABELS kernels TIMEOUT 120)
