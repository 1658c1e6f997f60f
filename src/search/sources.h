#pragma once
// What the model and the reader see of a search: the query cut from the user's message, the dated
// context message with numbered sources the model is told to cite as [n], and the Sources footer.
#include <string>
#include <vector>

#include "search/provider.h"

namespace v4::search {

// The query for a user message: its text with white space collapsed, cut at a word boundary to at
// most `max_bytes` (never inside a UTF-8 character).
std::string query_from_message(const std::string& text, size_t max_bytes = 400);

// The context message: the date of the search (YYYY-MM-DD, UTC), the query, the numbered results
// (each content cut to `max_content_bytes`) and the instruction to cite them as [n].
// Results are numbered from `first_number` (a later search of the same answer goes on counting).
std::string context_message(const std::string& query, const std::vector<Result>& results, const std::string& date,
                            size_t max_content_bytes = 3000, size_t first_number = 1);

// "\n\nSources:\n[1] Title - URL\n[2] ..." (empty for no results).
std::string sources_footer(const std::vector<Result>& results);

// Today's date in UTC, YYYY-MM-DD.
std::string utc_date_today();

}  // namespace v4::search
