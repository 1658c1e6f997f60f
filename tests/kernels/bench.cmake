# `v4flash bench kernels|decode|prefill --json` on small sizes and the tiny fixture: fields, byte and
# FLOP counts against an independent count from the safetensors header, ratios.
add_test(NAME kernels_bench_cli_json
         COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/tests/kernels/bench_cli_test.py
                 $<TARGET_FILE:v4flash> ${V4_SHARED_DIR}/fixtures/tiny-v4)
set_tests_properties(kernels_bench_cli_json PROPERTIES LABELS kernels TIMEOUT 120)

# One binary for every x86-64 CPU: AVX / AVX-512 instructions only inside the kernel variants
# (not checked when V4_NATIVE lets the compiler use the build machine's instructions anywhere).
if(NOT V4_NATIVE)
  add_test(NAME kernels_portable_binary
           COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/tests/kernels/portable_binary_test.py $<TARGET_FILE:v4flash>)
  set_tests_properties(kernels_portable_binary PROPERTIES LABELS kernels TIMEOUT 300 SKIP_RETURN_CODE 77)
endif()
