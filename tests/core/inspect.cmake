# `v4flash inspect --tensor` statistics against an independent numpy computation (Debian's
# python3-numpy, hence /usr/bin/python3), to 1e-6 relative.
add_test(NAME core_inspect_tensor_stats_vs_numpy
         COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/tests/core/inspect_stats.py
                 $<TARGET_FILE:v4flash> ${V4_SHARED_DIR}/fixtures/tiny-v4)
# The fixture's summary: 585 tensors and the layer plan.
add_test(NAME core_inspect_fixture_summary
         COMMAND $<TARGET_FILE:v4flash> inspect ${V4_SHARED_DIR}/fixtures/tiny-v4)
set_tests_properties(core_inspect_fixture_summary PROPERTIES
  PASS_REGULAR_EXPRESSION "plan: SWA, CSA, HCA, CSA, HCA, SWA\nhash layers: 0-1.*MTP: 1 layer\ntensors: 585 in 1 file")
# synth tiny -> inspect accepts it.
add_test(NAME core_synth_tiny_then_inspect
         COMMAND sh -c "rm -rf \"$1\" && \"$0\" synth --out \"$1\" --shape tiny --seed 3 --quiet && \"$0\" inspect \"$1\" --summary && rm -rf \"$1\""
                 $<TARGET_FILE:v4flash> ${CMAKE_BINARY_DIR}/core-synth-tiny-test)
set_tests_properties(core_synth_tiny_then_inspect PROPERTIES PASS_REGULAR_EXPRESSION "tensors: 585 in 1 file")
set_tests_properties(core_inspect_tensor_stats_vs_numpy core_inspect_fixture_summary core_synth_tiny_then_inspect
                     PROPERTIES LABELS core)
