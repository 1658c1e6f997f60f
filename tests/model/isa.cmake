# The model against the fixtures on each fast kernel variant below the best one (the default run of
# test_model covers the best): the exact and quantised reference suites and batch invariance with
# V4FLASH_ISA forced. Skipped (exit 77) on a CPU without the variant.
foreach(isa avx2 avx512)
  add_test(NAME model_fixtures_isa_${isa}
           COMMAND sh -c "$<TARGET_FILE:v4flash> cpu --supports ${isa} || exit 77; exec $<TARGET_FILE:test_model> --gtest_filter='ExactReference.*:QuantizedReference.*:Batch.*:ChunkedPrefill.*'")
  set_tests_properties(model_fixtures_isa_${isa} PROPERTIES LABELS "model;isa" ENVIRONMENT V4FLASH_ISA=${isa}
                       SKIP_RETURN_CODE 77 TIMEOUT 900)
endforeach()
