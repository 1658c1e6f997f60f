# The flash-dims oracle (../shared/fixtures/flash-dims): real V4-Flash dimensions, exact mode.
# model.flash_dims_checkpoint writes the 1.95 GB checkpoint into the build tree once (cached by the
# generator's SHA-256); the tests that need it name the fixture. Label `slow`: part of the default
# suite (CI runs it); `ctest -LE slow` leaves them out while iterating.
set(V4_FLASH_DIMS_DIR ${CMAKE_BINARY_DIR}/fixtures/flash-dims)
add_test(NAME model.flash_dims_checkpoint
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/tests/model/flash_dims_checkpoint.sh
          ${V4_SHARED_DIR}/fixtures/flash-dims/make_checkpoint.py ${V4_FLASH_DIMS_DIR})
set_tests_properties(model.flash_dims_checkpoint PROPERTIES
  LABELS "model;slow" TIMEOUT 600 FIXTURES_SETUP flash_dims)

add_test(NAME model.flash_dims_logits_command
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/tests/model/flash_dims_test.py $<TARGET_FILE:v4flash>
          ${V4_SHARED_DIR} ${V4_FLASH_DIMS_DIR} ${CMAKE_BINARY_DIR}/flash_dims_logits)
set_tests_properties(model.flash_dims_logits_command PROPERTIES
  LABELS "model;slow" TIMEOUT 1800 FIXTURES_REQUIRED flash_dims RESOURCE_LOCK flash_dims_cpu)

# Speculative steps rolled back at the flash-dims shapes (tests/model/slow/): the state and the next
# rows bit for bit those of feeding only the kept tokens.
add_executable(test_model_speculative_flash_dims ${CMAKE_CURRENT_SOURCE_DIR}/tests/model/slow/speculative_flash_dims_test.cpp)
target_link_libraries(test_model_speculative_flash_dims PRIVATE v4_model GTest::gtest)
add_test(NAME model.speculative_flash_dims
  COMMAND test_model_speculative_flash_dims ${V4_FLASH_DIMS_DIR})
set_tests_properties(model.speculative_flash_dims PROPERTIES
  LABELS "model;slow" TIMEOUT 600 FIXTURES_REQUIRED flash_dims RESOURCE_LOCK flash_dims_cpu)
