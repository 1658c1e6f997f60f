# `v4flash keys` / `v4flash usage` end to end (SQLite and a throwaway PostgreSQL; without PostgreSQL
# the test reports SKIPPED, exit 77, or fails when V4_REQUIRE_PG=1).
add_test(NAME product_cli COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/tests/product/cli_test.sh $<TARGET_FILE:v4flash>)
set_tests_properties(product_cli PROPERTIES LABELS product TIMEOUT 120 SKIP_RETURN_CODE 77)
