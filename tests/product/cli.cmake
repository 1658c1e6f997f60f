# `v4flash keys` / `v4flash usage` end to end (SQLite and a throwaway PostgreSQL).
add_test(NAME product_cli COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/tests/product/cli_test.sh $<TARGET_FILE:v4flash>)
set_tests_properties(product_cli PROPERTIES LABELS product TIMEOUT 120)
