// Byte-level BPE over a HF tokenizer.json. Vocabulary entries are converted from the GPT-2
// byte->unicode alphabet to raw bytes at load time, so the ByteLevel step is the identity and BPE
// runs directly on bytes.
#define PCRE2_CODE_UNIT_WIDTH 8
#include "text/tokenizer.h"

#include <pcre2.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <climits>
#include <fstream>
#include <queue>
#include <sstream>
#include <unordered_map>

#include <boost/json.hpp>

namespace v4::text {
namespace json = boost::json;

namespace {

[[noreturn]] void fail(const std::string& what) { throw TokenizerError("tokenizer.json: " + what); }

// GPT-2's reversible byte <-> printable code point table.
std::array<uint32_t, 256> byte_to_codepoint_table() {
  std::array<uint32_t, 256> table{};
  uint32_t next_extra = 256;
  for (int b = 0; b < 256; ++b) {
    bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    table[b] = printable ? uint32_t(b) : next_extra++;
  }
  return table;
}

// Decodes one UTF-8 code point at s[i]; returns false on malformed input.
bool next_codepoint(std::string_view s, size_t& i, uint32_t& cp) {
  unsigned char c = s[i];
  int extra = c < 0x80 ? 0 : (c >> 5) == 6 ? 1 : (c >> 4) == 14 ? 2 : (c >> 3) == 30 ? 3 : -1;
  if (extra < 0 || i + 1 + extra > s.size()) return false;
  cp = extra == 0 ? c : c & (0x3F >> extra);
  for (int k = 1; k <= extra; ++k) {
    unsigned char d = s[i + k];
    if ((d & 0xC0) != 0x80) return false;
    cp = (cp << 6) | (d & 0x3F);
  }
  i += 1 + extra;
  return true;
}

// Open-addressing map from a (left id, right id) pair to (rank, merged id).
class PairTable {
 public:
  struct Entry {
    uint64_t key = kEmpty;
    int32_t rank = 0;
    int32_t merged = 0;
  };
  static constexpr uint64_t kEmpty = ~uint64_t(0);

  void reserve(size_t n) {
    size_t cap = 16;
    while (cap < n * 2) cap <<= 1;
    slots_.assign(cap, Entry{});
    mask_ = cap - 1;
  }
  static uint64_t key(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }
  static size_t hash(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    return size_t(k);
  }
  // Returns false if the pair already exists (the first, lowest rank, wins as in HF).
  bool insert(int32_t a, int32_t b, int32_t rank, int32_t merged) {
    uint64_t k = key(a, b);
    for (size_t i = hash(k) & mask_;; i = (i + 1) & mask_) {
      if (slots_[i].key == kEmpty) {
        slots_[i] = Entry{k, rank, merged};
        return true;
      }
      if (slots_[i].key == k) return false;
    }
  }
  const Entry* find(int32_t a, int32_t b) const {
    uint64_t k = key(a, b);
    for (size_t i = hash(k) & mask_;; i = (i + 1) & mask_) {
      if (slots_[i].key == k) return &slots_[i];
      if (slots_[i].key == kEmpty) return nullptr;
    }
  }

 private:
  std::vector<Entry> slots_;
  size_t mask_ = 0;
};

struct Regex {
  pcre2_code* code = nullptr;
  std::string source;
};

// A byte trie over added-token contents for leftmost-longest matching.
struct AddedTrie {
  struct Node {
    std::unordered_map<unsigned char, int32_t> next;
    int32_t token = -1;
  };
  std::vector<Node> nodes{1};
  std::array<bool, 256> first_byte{};

  void add(std::string_view s, int32_t id) {
    int32_t n = 0;
    for (unsigned char c : s) {
      auto it = nodes[n].next.find(c);
      if (it == nodes[n].next.end()) {
        nodes.push_back({});
        int32_t child = int32_t(nodes.size() - 1);
        nodes[n].next.emplace(c, child);
        n = child;
      } else {
        n = it->second;
      }
    }
    nodes[n].token = id;
    first_byte[(unsigned char)s[0]] = true;
  }
  // Longest added token starting at text[pos]: returns (id, length) or id -1.
  std::pair<int32_t, size_t> longest_at(std::string_view text, size_t pos) const {
    int32_t n = 0;
    std::pair<int32_t, size_t> best{-1, 0};
    for (size_t i = pos; i < text.size(); ++i) {
      auto it = nodes[n].next.find((unsigned char)text[i]);
      if (it == nodes[n].next.end()) break;
      n = it->second;
      if (nodes[n].token >= 0) best = {nodes[n].token, i + 1 - pos};
    }
    return best;
  }
};

}  // namespace

struct Tokenizer::Impl {
  std::vector<std::string> id_to_bytes;  // "" with !valid for gaps
  std::vector<uint8_t> kind;             // 0 none, 1 vocab, 2 added, 3 special added
  std::unordered_map<std::string, int32_t> bytes_to_id;
  std::array<int32_t, 256> byte_id{};
  PairTable merges;
  std::vector<PairTable::Entry> byte_pairs;  // merges of two single bytes, indexed by (b0 << 8 | b1)
  std::vector<Regex> splits;
  AddedTrie added;
  bool has_added = false;
  std::vector<int32_t> added_ids;
  bool ignore_merges = false;
  // Distinguishes tokenizer instances for the per-thread word cache (addresses can be reused).
  uint64_t serial = next_serial.fetch_add(1) + 1;
  static inline std::atomic<uint64_t> next_serial{0};

  ~Impl() {
    for (auto& r : splits) pcre2_code_free(r.code);
  }

  void bpe(std::string_view piece, std::vector<int32_t>& out) const;
  void encode_plain(std::string_view text, std::vector<int32_t>& out) const;
};

namespace {

const json::value* find_key(const json::object& o, std::string_view k) {
  auto it = o.find(k);
  return it == o.end() ? nullptr : &it->value();
}

bool is_null_or_empty_string(const json::value* v) {
  return !v || v->is_null() || (v->is_string() && v->as_string().empty());
}

std::string type_of(const json::value& v, std::string_view where) {
  if (!v.is_object() || !v.as_object().contains("type") || !v.as_object().at("type").is_string())
    fail(std::string(where) + ": expected an object with a \"type\"");
  return std::string(v.as_object().at("type").as_string());
}

Regex compile_regex(const std::string& pattern) {
  int err = 0;
  PCRE2_SIZE offset = 0;
  // UCP: \s, \p{..} and friends follow Unicode, as Oniguruma does in HF tokenizers.
  // MATCH_INVALID_UTF: invalid bytes in the input are never matched instead of aborting.
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                   PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &err, &offset, nullptr);
  if (!code) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof msg);
    fail("cannot compile Split regex at offset " + std::to_string(offset) + ": " +
         reinterpret_cast<const char*>(msg));
  }
  pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);  // falls back to the interpreter if JIT is unavailable
  return Regex{code, pattern};
}

void check_normalizer(const json::value* n) {
  if (!n || n->is_null()) return;
  std::string t = type_of(*n, "normalizer");
  if (t == "Sequence") {
    const json::value* list = find_key(n->as_object(), "normalizers");
    if (list && list->is_array() && list->as_array().empty()) return;
  }
  fail("unsupported normalizer (only none or an empty Sequence): " + json::serialize(*n));
}

void check_byte_level(const json::object& o, std::string_view where) {
  const json::value* aps = find_key(o, "add_prefix_space");
  if (aps && aps->is_bool() && aps->as_bool()) fail(std::string(where) + ": ByteLevel add_prefix_space=true is not supported");
}

}  // namespace

void Tokenizer::Impl::bpe(std::string_view piece, std::vector<int32_t>& out) const {
  const size_t n = piece.size();
  if (n == 0) return;
  if (n == 1) {
    out.push_back(byte_id[(unsigned char)piece[0]]);
    return;
  }
  if (ignore_merges) {
    auto it = bytes_to_id.find(std::string(piece));
    if (it != bytes_to_id.end() && kind[it->second] == 1) {
      out.push_back(it->second);
      return;
    }
  }
  if (n <= 24) {
    // Short pieces (almost all of them): rescan the pair ranks, no heap. Same order as below:
    // lowest rank, leftmost first.
    int32_t sym[24], rank[24], merged[24];
    size_t m = n;
    auto lookup = [&](size_t i) {
      const PairTable::Entry* e = merges.find(sym[i], sym[i + 1]);
      rank[i] = e ? e->rank : INT32_MAX;
      merged[i] = e ? e->merged : -1;
    };
    for (size_t i = 0; i < n; ++i) sym[i] = byte_id[(unsigned char)piece[i]];
    for (size_t i = 0; i + 1 < m; ++i) {
      const PairTable::Entry& e = byte_pairs[size_t((unsigned char)piece[i]) << 8 | (unsigned char)piece[i + 1]];
      rank[i] = e.key == PairTable::kEmpty ? INT32_MAX : e.rank;
      merged[i] = e.merged;
    }
    while (m > 1) {
      size_t best = 0;
      for (size_t i = 1; i + 1 < m; ++i)
        if (rank[i] < rank[best]) best = i;
      if (rank[best] == INT32_MAX) break;
      sym[best] = merged[best];
      for (size_t i = best + 1; i + 1 < m; ++i) {
        sym[i] = sym[i + 1];
        rank[i] = rank[i + 1];
        merged[i] = merged[i + 1];
      }
      --m;
      if (best > 0) lookup(best - 1);
      if (best + 1 < m) lookup(best);
    }
    out.insert(out.end(), sym, sym + m);
    return;
  }
  // Symbols are indexed by their starting byte; `next`/`prev` link the live ones. Merges are
  // applied lowest rank first, leftmost first among equal ranks (HF's priority queue order).
  thread_local std::vector<int32_t> ids, next, prev;
  ids.resize(n);
  next.resize(n);
  prev.resize(n);
  for (size_t i = 0; i < n; ++i) {
    ids[i] = byte_id[(unsigned char)piece[i]];
    next[i] = int32_t(i + 1);
    prev[i] = int32_t(i) - 1;
  }
  next[n - 1] = -1;

  struct Candidate {
    int32_t rank, left, left_id, right_id;
    bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : left > o.left; }
  };
  thread_local std::vector<Candidate> heap;
  heap.clear();
  auto push_pair = [&](int32_t left) {
    int32_t right = next[left];
    if (right < 0) return;
    if (const PairTable::Entry* e = merges.find(ids[left], ids[right])) {
      heap.push_back({e->rank, left, ids[left], ids[right]});
      std::push_heap(heap.begin(), heap.end(), std::greater<>());
    }
  };
  for (size_t i = 0; i + 1 < n; ++i) push_pair(int32_t(i));
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), std::greater<>());
    Candidate c = heap.back();
    heap.pop_back();
    int32_t right = next[c.left];
    // Stale if either side was merged away or changed since the candidate was pushed.
    if (ids[c.left] != c.left_id || right < 0 || ids[right] != c.right_id) continue;
    if (prev[c.left] == -2) continue;
    const PairTable::Entry* e = merges.find(c.left_id, c.right_id);
    ids[c.left] = e->merged;
    next[c.left] = next[right];
    if (next[right] >= 0) prev[next[right]] = c.left;
    prev[right] = -2;  // dead
    ids[right] = -1;
    if (prev[c.left] >= 0) push_pair(prev[c.left]);
    push_pair(c.left);
  }
  for (int32_t i = 0; i >= 0; i = next[i]) out.push_back(ids[i]);
}

void Tokenizer::Impl::encode_plain(std::string_view text, std::vector<int32_t>& out) const {
  if (text.empty()) return;
  // Apply the Split steps in sequence; each keeps matches and the gaps between them.
  thread_local std::vector<std::pair<size_t, size_t>> pieces, next_pieces;  // (offset, length)
  pieces.assign(1, {0, text.size()});
  pcre2_match_data* md = nullptr;
  struct MatchDataDeleter {
    pcre2_match_data* p;
    ~MatchDataDeleter() {
      if (p) pcre2_match_data_free(p);
    }
  };
  thread_local MatchDataDeleter match_data{pcre2_match_data_create(4, nullptr)};
  md = match_data.p;
  // A generous JIT stack so long whitespace/letter runs never hit PCRE2's 32 KiB default.
  struct MatchContext {
    pcre2_match_context* context = pcre2_match_context_create(nullptr);
    pcre2_jit_stack* stack = pcre2_jit_stack_create(32 * 1024, 16 * 1024 * 1024, nullptr);
    MatchContext() { pcre2_jit_stack_assign(context, nullptr, stack); }
    ~MatchContext() {
      pcre2_jit_stack_free(stack);
      pcre2_match_context_free(context);
    }
  };
  thread_local MatchContext match_context;
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  for (const Regex& re : splits) {
    next_pieces.clear();
    for (auto [start, len] : pieces) {
      size_t end = start + len, pos = start, gap_start = start;
      while (pos < end) {
        // The piece is matched in isolation (lookarounds do not see beyond it), as HF does.
        int rc = pcre2_match(re.code, subject + start, len, pos - start, 0, md, match_context.context);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) throw TokenizerError("pre-tokenizer regex failed with PCRE2 error " + std::to_string(rc));
        PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
        size_t ms = start + ov[0], me = start + ov[1];
        if (me == ms) {  // empty match: not a split point
          pos = me + 1;
          continue;
        }
        if (ms > gap_start) next_pieces.push_back({gap_start, ms - gap_start});
        next_pieces.push_back({ms, me - ms});
        gap_start = pos = me;
      }
      if (gap_start < end) next_pieces.push_back({gap_start, end - gap_start});
    }
    std::swap(pieces, next_pieces);
  }
  // BPE of a piece is a pure function of its bytes, so results are memoised per thread (HF keeps a
  // word cache too). The cache belongs to one tokenizer instance and is bounded.
  struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  struct WordCache {
    uint64_t owner = 0;
    std::unordered_map<std::string, std::vector<int32_t>, StringHash, std::equal_to<>> words;
  };
  thread_local WordCache cache;
  if (cache.owner != serial) {
    cache.words.clear();
    cache.owner = serial;
  }
  for (auto [start, len] : pieces) {
    std::string_view piece = text.substr(start, len);
    if (len > 48) {
      bpe(piece, out);
      continue;
    }
    auto it = cache.words.find(piece);
    if (it != cache.words.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      continue;
    }
    size_t first = out.size();
    bpe(piece, out);
    if (cache.words.size() >= 100000) cache.words.clear();
    cache.words.emplace(std::string(piece), std::vector<int32_t>(out.begin() + std::ptrdiff_t(first), out.end()));
  }
}

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::~Tokenizer() = default;

std::unique_ptr<Tokenizer> Tokenizer::from_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw TokenizerError("cannot open tokenizer file " + path.string());
  std::stringstream ss;
  ss << in.rdbuf();
  return from_json(ss.str());
}

std::unique_ptr<Tokenizer> Tokenizer::from_json(std::string_view json_text) {
  json::value root;
  try {
    root = json::parse(json_text);
  } catch (const std::exception& e) {
    fail(std::string("not valid JSON: ") + e.what());
  }
  if (!root.is_object()) fail("top level is not an object");
  const json::object& top = root.as_object();
  auto impl = std::make_unique<Impl>();

  check_normalizer(find_key(top, "normalizer"));

  // Pre-tokenizer: Sequence of Split(Regex, Isolated, invert=false) then ByteLevel(use_regex=false).
  const json::value* pre = find_key(top, "pre_tokenizer");
  if (!pre || pre->is_null()) fail("missing pre_tokenizer (a byte-level BPE needs ByteLevel)");
  std::vector<const json::object*> steps;
  if (type_of(*pre, "pre_tokenizer") == "Sequence") {
    const json::value* list = find_key(pre->as_object(), "pretokenizers");
    if (!list || !list->is_array()) fail("pre_tokenizer Sequence without pretokenizers");
    for (const auto& s : list->as_array()) {
      type_of(s, "pre_tokenizer step");
      steps.push_back(&s.as_object());
    }
  } else {
    steps.push_back(&pre->as_object());
  }
  bool saw_byte_level = false;
  for (const json::object* s : steps) {
    std::string t(s->at("type").as_string());
    if (saw_byte_level) fail("pre_tokenizer step after ByteLevel is not supported: " + t);
    if (t == "Split") {
      const json::value* pattern = find_key(*s, "pattern");
      const json::value* behavior = find_key(*s, "behavior");
      const json::value* invert = find_key(*s, "invert");
      if (!pattern || !pattern->is_object() || !pattern->as_object().contains("Regex") ||
          !pattern->as_object().at("Regex").is_string())
        fail("Split pattern must be {\"Regex\": ...} (String patterns are not supported)");
      if (!behavior || !behavior->is_string() || behavior->as_string() != "Isolated")
        fail("Split behavior other than Isolated is not supported");
      if (invert && invert->is_bool() && invert->as_bool()) fail("Split invert=true is not supported");
      impl->splits.push_back(compile_regex(std::string(pattern->as_object().at("Regex").as_string())));
    } else if (t == "ByteLevel") {
      check_byte_level(*s, "pre_tokenizer");
      const json::value* use_regex = find_key(*s, "use_regex");
      if (!use_regex || !use_regex->is_bool() || use_regex->as_bool())
        fail("ByteLevel pre-tokenizer with use_regex=true is not supported (the GPT-2 regex)");
      saw_byte_level = true;
    } else {
      fail("unsupported pre_tokenizer component " + t);
    }
  }
  if (!saw_byte_level) fail("pre_tokenizer has no ByteLevel step");

  const json::value* dec = find_key(top, "decoder");
  if (dec && !dec->is_null()) {
    if (type_of(*dec, "decoder") != "ByteLevel") fail("unsupported decoder (only ByteLevel)");
  }

  // Model.
  const json::value* model_v = find_key(top, "model");
  if (!model_v || !model_v->is_object()) fail("missing model");
  const json::object& model = model_v->as_object();
  if (const json::value* t = find_key(model, "type"); t && (!t->is_string() || t->as_string() != "BPE"))
    fail("unsupported model type (only BPE)");
  if (const json::value* d = find_key(model, "dropout"); d && !d->is_null()) fail("BPE dropout is not supported");
  if (!is_null_or_empty_string(find_key(model, "continuing_subword_prefix")) ||
      !is_null_or_empty_string(find_key(model, "end_of_word_suffix")))
    fail("BPE continuing_subword_prefix / end_of_word_suffix are not supported");
  if (const json::value* b = find_key(model, "byte_fallback"); b && b->is_bool() && b->as_bool())
    fail("BPE byte_fallback is not supported");
  if (const json::value* im = find_key(model, "ignore_merges"); im && im->is_bool()) impl->ignore_merges = im->as_bool();

  const json::value* vocab_v = find_key(model, "vocab");
  if (!vocab_v || !vocab_v->is_object()) fail("model.vocab must be an object");
  std::array<int32_t, 0x10000> codepoint_to_byte;
  codepoint_to_byte.fill(-1);
  auto table = byte_to_codepoint_table();
  for (int b = 0; b < 256; ++b) codepoint_to_byte[table[b]] = b;
  auto to_bytes = [&](std::string_view s, std::string& out) -> bool {
    out.clear();
    size_t i = 0;
    while (i < s.size()) {
      uint32_t cp;
      if (!next_codepoint(s, i, cp) || cp >= codepoint_to_byte.size() || codepoint_to_byte[cp] < 0) return false;
      out.push_back(char(codepoint_to_byte[cp]));
    }
    return true;
  };
  auto ensure_id = [&](int64_t id) {
    if (id < 0 || id > (int64_t(1) << 30)) fail("token id out of range: " + std::to_string(id));
    if (size_t(id) >= impl->id_to_bytes.size()) {
      impl->id_to_bytes.resize(size_t(id) + 1);
      impl->kind.resize(size_t(id) + 1, 0);
    }
  };
  std::unordered_map<std::string, int32_t> surface_to_id;  // vocab keys as written, for merges
  surface_to_id.reserve(vocab_v->as_object().size() * 2);
  impl->bytes_to_id.reserve(vocab_v->as_object().size() * 2);
  std::string bytes;
  std::vector<std::pair<std::string, int32_t>> not_byte_level;
  for (const auto& kv : vocab_v->as_object()) {
    if (!kv.value().is_int64()) fail("vocab id is not an integer");
    int64_t id = kv.value().as_int64();
    ensure_id(id);
    if (!to_bytes(kv.key(), bytes)) {
      // Only acceptable for an added token's entry (checked once added_tokens are read).
      not_byte_level.emplace_back(std::string(kv.key()), int32_t(id));
      continue;
    }
    impl->id_to_bytes[id] = bytes;
    impl->kind[id] = 1;
    impl->bytes_to_id.emplace(bytes, int32_t(id));
    surface_to_id.emplace(std::string(kv.key()), int32_t(id));
  }
  for (int b = 0; b < 256; ++b) {
    auto it = impl->bytes_to_id.find(std::string(1, char(b)));
    if (it == impl->bytes_to_id.end()) fail("vocab lacks the single byte " + std::to_string(b));
    impl->byte_id[b] = it->second;
  }

  const json::value* merges_v = find_key(model, "merges");
  if (!merges_v || !merges_v->is_array()) fail("model.merges must be an array");
  impl->merges.reserve(merges_v->as_array().size());
  int32_t rank = 0;
  for (const auto& m : merges_v->as_array()) {
    std::string a, b;
    if (m.is_string()) {
      std::string_view s = m.as_string();
      size_t sp = s.find(' ');
      if (sp == std::string_view::npos || s.find(' ', sp + 1) != std::string_view::npos)
        fail("merge is not \"left right\": " + std::string(s));
      a = s.substr(0, sp);
      b = s.substr(sp + 1);
    } else if (m.is_array() && m.as_array().size() == 2 && m.as_array()[0].is_string() && m.as_array()[1].is_string()) {
      a = m.as_array()[0].as_string();
      b = m.as_array()[1].as_string();
    } else {
      fail("merge entry has an unknown shape");
    }
    auto ia = surface_to_id.find(a), ib = surface_to_id.find(b), im = surface_to_id.find(a + b);
    if (ia == surface_to_id.end() || ib == surface_to_id.end() || im == surface_to_id.end())
      fail("merge refers to a token missing from the vocab: " + a + " " + b);
    impl->merges.insert(ia->second, ib->second, rank, im->second);
    ++rank;
  }

  impl->byte_pairs.assign(65536, PairTable::Entry{});
  for (int a = 0; a < 256; ++a)
    for (int b = 0; b < 256; ++b)
      if (const PairTable::Entry* e = impl->merges.find(impl->byte_id[a], impl->byte_id[b])) impl->byte_pairs[a << 8 | b] = *e;

  // Added tokens: matched as whole strings before pre-tokenisation.
  if (const json::value* added = find_key(top, "added_tokens"); added && added->is_array()) {
    for (const auto& t : added->as_array()) {
      if (!t.is_object()) fail("added token is not an object");
      const json::object& o = t.as_object();
      const json::value* id = find_key(o, "id");
      const json::value* content = find_key(o, "content");
      if (!id || !id->is_int64() || !content || !content->is_string() || content->as_string().empty())
        fail("added token needs an integer id and a non-empty content");
      for (const char* opt : {"lstrip", "rstrip", "single_word"}) {
        const json::value* v = find_key(o, opt);
        if (v && v->is_bool() && v->as_bool())
          fail(std::string("added token option ") + opt + "=true is not supported: " + std::string(content->as_string()));
      }
      bool special = false;
      if (const json::value* sp = find_key(o, "special"); sp && sp->is_bool()) special = sp->as_bool();
      int64_t i = id->as_int64();
      ensure_id(i);
      std::string c(content->as_string());
      impl->id_to_bytes[i] = c;
      impl->kind[i] = special ? 3 : 2;
      impl->bytes_to_id[c] = int32_t(i);
      impl->added.add(c, int32_t(i));
      impl->added_ids.push_back(int32_t(i));
      impl->has_added = true;
    }
  }
  for (const auto& [content, id] : not_byte_level)
    if (impl->kind[id] < 2 || impl->id_to_bytes[id] != content)
      fail("vocab entry is not in the byte-level alphabet and not an added token: " + content);
  return std::unique_ptr<Tokenizer>(new Tokenizer(std::move(impl)));
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool allow_special) const {
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 4);
  if (!allow_special || !impl_->has_added) {
    impl_->encode_plain(text, out);
    return out;
  }
  size_t segment_start = 0;
  const auto& first = impl_->added.first_byte;
  for (size_t i = 0; i < text.size(); ++i) {
    if (!first[(unsigned char)text[i]]) continue;
    auto [id, len] = impl_->added.longest_at(text, i);
    if (id < 0) continue;
    impl_->encode_plain(text.substr(segment_start, i - segment_start), out);
    out.push_back(id);
    i += len - 1;
    segment_start = i + 1;
  }
  impl_->encode_plain(text.substr(segment_start), out);
  return out;
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool skip_special) const {
  std::string out;
  for (int32_t id : ids) {
    if (!is_valid(id)) throw TokenizerError("unknown token id " + std::to_string(id));
    if (skip_special && impl_->kind[id] == 3) continue;
    out += impl_->id_to_bytes[id];
  }
  return out;
}

const std::string& Tokenizer::token_bytes(int32_t id) const {
  if (!is_valid(id)) throw TokenizerError("unknown token id " + std::to_string(id));
  return impl_->id_to_bytes[id];
}

std::optional<int32_t> Tokenizer::token_id(std::string_view token) const {
  auto it = impl_->bytes_to_id.find(std::string(token));
  if (it == impl_->bytes_to_id.end()) return std::nullopt;
  return it->second;
}

size_t Tokenizer::vocab_size() const { return impl_->id_to_bytes.size(); }
bool Tokenizer::is_valid(int32_t id) const {
  return id >= 0 && size_t(id) < impl_->kind.size() && impl_->kind[id] != 0;
}
bool Tokenizer::is_special(int32_t id) const { return is_valid(id) && impl_->kind[id] == 3; }
const std::vector<int32_t>& Tokenizer::added_token_ids() const { return impl_->added_ids; }
bool Tokenizer::is_added(int32_t id) const { return is_valid(id) && impl_->kind[id] >= 2; }

}  // namespace v4::text
