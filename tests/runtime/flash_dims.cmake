# The flash-dims oracle through the serving runtime (tests/runtime/slow/): chunked prefill, prefix-cache
# hits and batching against case L's reference rows. Needs the checkpoint of tests/model/flash_dims.cmake.
add_executable(test_runtime_flash_dims ${CMAKE_CURRENT_SOURCE_DIR}/tests/runtime/slow/flash_dims_serving_test.cpp)
target_link_libraries(test_runtime_flash_dims PRIVATE v4_runtime v4_test_support GTest::gtest)
target_compile_definitions(test_runtime_flash_dims PRIVATE V4_SHARED_DIR="${V4_SHARED_DIR}")
add_test(NAME runtime.flash_dims_serving
  COMMAND test_runtime_flash_dims ${CMAKE_BINARY_DIR}/fixtures/flash-dims)
set_tests_properties(runtime.flash_dims_serving PROPERTIES
  LABELS "runtime;slow" TIMEOUT 1800 FIXTURES_REQUIRED flash_dims RESOURCE_LOCK flash_dims_cpu)
