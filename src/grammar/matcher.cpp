#include "grammar/matcher.h"

#include <algorithm>
#include <deque>
#include <optional>
#include <stdexcept>

namespace v4::grammar {

// Frames live as long as the arena: blocks that never move, allocated a thousand frames at a time
// (a mask walks thousands of trie nodes; a frame each must not mean an allocation each).
class Matcher::Arena {
 public:
  const Frame* make(const Frame& f) {
    if (used_ == kBlock) {
      blocks_.push_back(std::make_unique<Frame[]>(kBlock));
      used_ = 0;
    }
    Frame* slot = &blocks_.back()[used_++];
    *slot = f;
    return slot;
  }

 private:
  static constexpr size_t kBlock = 1024;
  std::vector<std::unique_ptr<Frame[]>> blocks_;
  size_t used_ = kBlock;
};

namespace {

using Kind = Element::Kind;
constexpr size_t kMaskCacheEntries = 128;  // 16 KiB each on a 128K vocabulary

// String-body progress kept in Frame::sub.
constexpr uint32_t kBetween = 0;      // between characters
constexpr uint32_t kEscape = 1;       // after a backslash
constexpr uint32_t kHexBase = 16;     // 16 + hex digits still due in \uXXXX
constexpr uint32_t kUtf8Base = 32;    // 32 + 8 x continuation bytes due + range class of the next one

struct Progress {
  uint32_t count, sub;
};

bool is_hex(unsigned char b) { return (b >= '0' && b <= '9') || (b >= 'a' && b <= 'f') || (b >= 'A' && b <= 'F'); }

// The range a continuation byte must fall in: class 0 is 80-BF; 1-4 narrow the first continuation
// after E0, ED, F0, F4 (no overlong forms, no surrogates, nothing past U+10FFFF).
bool continuation_ok(uint32_t cls, unsigned char b) {
  static constexpr unsigned char lo[] = {0x80, 0xA0, 0x80, 0x90, 0x80};
  static constexpr unsigned char hi[] = {0xBF, 0xBF, 0x9F, 0xBF, 0x8F};
  return b >= lo[cls] && b <= hi[cls];
}

// UTF-8 well-formedness, one byte at a time: u is 0 between characters, else 8 x continuation
// bytes due + the range class of the next one.
std::optional<uint32_t> utf8_next(uint32_t u, unsigned char b) {
  if (u == 0) {
    if (b < 0x80) return 0u;
    if (b >= 0xC2 && b <= 0xDF) return 8u;
    if (b >= 0xE0 && b <= 0xEF) return 16u + (b == 0xE0 ? 1 : b == 0xED ? 2 : 0);
    if (b >= 0xF0 && b <= 0xF4) return 24u + (b == 0xF0 ? 3 : b == 0xF4 ? 4 : 0);
    return std::nullopt;
  }
  if (!continuation_ok(u % 8, b)) return std::nullopt;
  return u / 8 == 1 ? 0u : (u / 8 - 1) * 8;
}

std::optional<Progress> string_step(const StringBody& spec, uint32_t count, uint32_t sub, unsigned char b) {
  if (sub == kBetween) {
    if (b == '"' || b < 0x20 || count >= spec.max) return std::nullopt;
    if (b == '\\') return Progress{count + 1, kEscape};
    const auto u = utf8_next(0, b);
    if (!u) return std::nullopt;
    return Progress{count + 1, *u == 0 ? kBetween : kUtf8Base + *u};
  }
  if (sub == kEscape) {
    if (b == 'u') return Progress{count, kHexBase + 4};
    static constexpr std::string_view kSimple = "\"\\/bfnrt";
    if (kSimple.find(char(b)) != std::string_view::npos) return Progress{count, kBetween};
    return std::nullopt;
  }
  if (sub > kHexBase && sub <= kHexBase + 4) {
    if (!is_hex(b)) return std::nullopt;
    return Progress{count, sub - 1 == kHexBase ? kBetween : sub - 1};
  }
  const auto u = utf8_next(sub - kUtf8Base, b);
  if (!u) return std::nullopt;
  return Progress{count, *u == 0 ? kBetween : kUtf8Base + *u};
}

// Terminator bytes matched after taking `b` with `matched` already matched (the longest prefix of
// the terminator that ends the text so far).
uint32_t terminator_progress(const std::string& t, uint32_t matched, unsigned char b) {
  if (matched < t.size() && static_cast<unsigned char>(t[matched]) == b) return matched + 1;
  for (uint32_t k = std::min<uint32_t>(matched, uint32_t(t.size()) - 1); k > 0; --k) {
    // does t[0..k) end the text t[0..matched) + b?
    if (static_cast<unsigned char>(t[k - 1]) != b) continue;
    if (std::equal(t.begin(), t.begin() + (k - 1), t.begin() + (matched - (k - 1)))) return k;
  }
  return 0;
}

bool same(const Matcher::Frame& a, const Matcher::Frame& b) {
  return a.parent == b.parent && a.pos == b.pos && a.count == b.count && a.sub == b.sub;
}

}  // namespace

Matcher::Matcher(std::shared_ptr<const Grammar> grammar) : g_(std::move(grammar)), live_(std::make_shared<Arena>()) {
  if (!g_) throw std::invalid_argument("Matcher: no grammar");
  for (uint32_t start : g_->rules.at(g_->root)) normalize(Frame{nullptr, start, 0, 0}, state_, *live_, 0);
}

void Matcher::normalize(const Frame& f, State& to, Arena& arena, int depth) const {
  if (depth > 4096) throw std::logic_error("grammar: calls nest too deep without consuming a byte");
  const Element& e = g_->elements[f.pos];
  auto add = [&](const Frame& frame) {
    for (const Frame* s : to)
      if (s && same(*s, frame)) return;
    to.push_back(arena.make(frame));
  };
  auto finish_here = [&] {  // the element is done: go on with the next one
    normalize(Frame{f.parent, f.pos + 1, 0, 0}, to, arena, depth + 1);
  };
  switch (e.kind) {
    case Kind::end:
      if (!f.parent) {
        if (std::find(to.begin(), to.end(), nullptr) == to.end()) to.push_back(nullptr);
      } else {
        normalize(*f.parent, to, arena, depth + 1);
      }
      return;
    case Kind::rule: {
      const Frame* ret = arena.make(Frame{f.parent, f.pos + 1, 0, 0});
      for (uint32_t start : g_->rules[e.arg]) normalize(Frame{ret, start, 0, 0}, to, arena, depth + 1);
      return;
    }
    case Kind::byte:
      add(f);
      return;
    case Kind::raw_until:
      add(f);
      if (g_->raws[e.arg].forbid && (f.sub >> 8) == 0) finish_here();  // free text ends after a whole character
      return;
    case Kind::repeat: {
      const Repeat& r = g_->repeats[e.arg];
      if (f.count < r.max) add(f);
      if (f.count >= r.min) finish_here();
      return;
    }
    case Kind::string_body: {
      const StringBody& s = g_->string_bodies[e.arg];
      if (f.sub != kBetween || f.count < s.max) add(f);
      if (f.sub == kBetween && f.count >= s.min) finish_here();
      return;
    }
  }
}

void Matcher::step(const State& from, unsigned char b, State& to, Arena& arena) const {
  to.clear();
  for (const Frame* f : from) {
    if (!f) continue;
    const Element& e = g_->elements[f->pos];
    switch (e.kind) {
      case Kind::byte:
        if (g_->byte_sets[e.arg].test(b)) normalize(Frame{f->parent, f->pos + 1, 0, 0}, to, arena, 0);
        break;
      case Kind::repeat: {
        const Repeat& r = g_->repeats[e.arg];
        if (f->count < r.max && g_->byte_sets[r.set].test(b))
          normalize(Frame{f->parent, f->pos, f->count + 1, 0}, to, arena, 0);
        break;
      }
      case Kind::string_body:
        if (auto p = string_step(g_->string_bodies[e.arg], f->count, f->sub, b))
          normalize(Frame{f->parent, f->pos, p->count, p->sub}, to, arena, 0);
        break;
      case Kind::raw_until: {
        // sub: terminator bytes matched (low 8 bits), UTF-8 progress above. The text and the
        // terminator (whole characters, starting with an ASCII byte) are checked as one stream.
        const RawUntil& r = g_->raws[e.arg];
        const auto u = utf8_next(f->sub >> 8, b);
        if (!u) break;
        const uint32_t matched = terminator_progress(r.terminator, f->sub & 0xFF, b);
        if (matched == r.terminator.size()) {
          if (!r.forbid) normalize(Frame{f->parent, f->pos + 1, 0, 0}, to, arena, 0);
        } else if (matched == (f->sub & 0xFF) + 1 || f->count + 1 + *u / 8 - matched <= r.max) {
          // The terminator may always go on. Otherwise: count is every byte taken, those not (yet)
          // part of the terminator are the text, and a character is only begun when it fits.
          normalize(Frame{f->parent, f->pos, f->count + 1, matched | (*u << 8)}, to, arena, 0);
        }
        break;
      }
      case Kind::rule:
      case Kind::end:
        throw std::logic_error("grammar: a stack top that is not a terminal");
    }
  }
}

bool Matcher::advance(std::string_view bytes) {
  State cur = state_, next;
  for (unsigned char b : bytes) {
    step(cur, b, next, *live_);
    if (next.empty()) return false;
    std::swap(cur, next);
  }
  state_ = std::move(cur);
  return true;
}

bool Matcher::accepting() const { return std::find(state_.begin(), state_.end(), nullptr) != state_.end(); }

bool Matcher::can_continue() const {
  return std::any_of(state_.begin(), state_.end(), [](const Frame* f) { return f != nullptr; });
}

std::string Matcher::mask_key(const TokenIndex& index) const {
  // A token moves a count by at most its length: counts further than that from a bound are alike.
  const uint32_t far = uint32_t(index.longest_token()) + 1;
  auto clamp = [&](int64_t v) { return uint32_t(std::clamp<int64_t>(v, 0, far)); };
  std::string key;
  auto put = [&](uint32_t v) { key.append(reinterpret_cast<const char*>(&v), sizeof v); };
  for (const Frame* f : state_) {
    put(0xFFFFFFFFu);  // stack separator
    if (!f) continue;
    const Element& e = g_->elements[f->pos];
    put(f->pos);
    put(f->sub);
    switch (e.kind) {
      case Kind::repeat:
        put(clamp(int64_t(g_->repeats[e.arg].min) - f->count));
        put(clamp(int64_t(g_->repeats[e.arg].max) - f->count));
        break;
      case Kind::string_body:
        put(clamp(int64_t(g_->string_bodies[e.arg].min) - f->count));
        put(clamp(int64_t(g_->string_bodies[e.arg].max) - f->count));
        break;
      case Kind::raw_until:
        put(clamp(int64_t(g_->raws[e.arg].max) - (int64_t(f->count) - int64_t(f->sub & 0xFF))));
        break;
      default:
        put(f->count);
    }
    for (const Frame* p = f->parent; p; p = p->parent) put(p->pos);  // return positions (no counts)
  }
  return key;
}

void Matcher::allowed_tokens(const TokenIndex& index, TokenBits& bits) const {
  const std::string key = mask_key(index);
  if (auto it = mask_cache_.find(key); it != mask_cache_.end()) {
    bits = it->second;
    return;
  }
  compute_mask(index, bits);
  if (mask_cache_.size() >= kMaskCacheEntries) mask_cache_.clear();
  mask_cache_.emplace(key, bits);
}

void Matcher::compute_mask(const TokenIndex& index, TokenBits& bits) const {
  bits.assign(index.words(), 0);
  Shortcuts cut;
  for (const Frame* f : state_) {
    if (!f) continue;
    const Element& e = g_->elements[f->pos];
    if (e.kind == Kind::string_body && f->sub == kBetween)
      cut.json = std::max<int64_t>(cut.json, int64_t(g_->string_bodies[e.arg].max) - f->count);
    if (e.kind == Kind::raw_until && f->sub == 0 && g_->raws[e.arg].terminator[0] == '<')
      cut.raw = std::max<int64_t>(cut.raw, int64_t(g_->raws[e.arg].max) - f->count);
  }
  auto merge = [&](const TokenBits& from) {
    for (size_t w = 0; w < bits.size(); ++w) bits[w] |= from[w];
  };
  if (cut.json >= 0) merge(index.json_plain_up_to(uint32_t(std::min<int64_t>(cut.json, 65535))));
  if (cut.raw >= 0) merge(index.raw_plain_up_to(uint32_t(std::min<int64_t>(cut.raw, 65535))));
  Arena scratch;
  walk(index, 0, state_, cut, bits, scratch, 0);
}

void Matcher::walk(const TokenIndex& index, uint32_t node, const State& state, const Shortcuts& cut, TokenBits& bits,
                   Arena& arena, size_t depth) const {
  const auto& nodes = index.nodes();
  const TokenIndex::Node& n = nodes[node];
  // One scratch state per trie depth, reused across masks; a deque keeps the callers' references
  // valid when a deeper level is added.
  thread_local std::deque<State> per_depth;
  while (per_depth.size() <= depth) per_depth.emplace_back();
  State& next = per_depth[depth];
  for (uint32_t k = 0; k < n.children; ++k) {
    const uint32_t child = index.child_nodes()[n.first_child + k];
    const TokenIndex::Node& c = nodes[child];
    // every token below is already in the mask from a shortcut
    if (c.json_plain && cut.json >= 0 && c.max_chars <= cut.json) continue;
    if (c.raw_plain && cut.raw >= 0 && c.max_bytes <= cut.raw) continue;
    step(state, index.child_bytes()[n.first_child + k], next, arena);
    if (next.empty()) continue;
    if (c.token >= 0) set_bit(bits, c.token);
    if (c.children) walk(index, child, next, cut, bits, arena, depth + 1);
  }
}

}  // namespace v4::grammar
