#pragma once
// A context-free grammar over bytes, in the form the matcher runs: rules of alternatives, each
// alternative a sequence of elements (a byte from a set, a call of another rule, or one of two
// counted loops that a plain grammar would spell as many rules). Built by the JSON-schema compiler
// and the tool-call builder; immutable once built and shared by every request that uses it.
#include <bitset>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace v4::grammar {

using ByteSet = std::bitset<256>;

struct Element {
  enum class Kind : uint8_t {
    byte,         // one byte from byte_sets[arg]
    rule,         // the rule `arg`, then what follows
    repeat,       // repeats[arg]: bytes of one set, min..max of them
    string_body,  // string_bodies[arg]: the characters of a JSON string (escapes, UTF-8), min..max of them
    raw_until,    // raws[arg]: UTF-8 text up to and including a terminator, at most max bytes before it
    end,          // end of an alternative: return to the caller
  };
  Kind kind;
  uint32_t arg = 0;
};

struct Repeat {
  uint32_t set;  // index into byte_sets
  uint32_t min, max;
};
struct StringBody {
  uint32_t min, max;  // in characters (an escape is one)
};
struct RawUntil {
  std::string terminator;  // 1-255 bytes of UTF-8, the first one ASCII
  uint32_t max;            // bytes before the terminator (well-formed UTF-8)
  // Instead: text that never contains the terminator and may end after any whole character.
  bool forbid = false;
};

struct Grammar {
  // elements holds every alternative back to back, each closed by an `end`; a rule is the list of
  // its alternatives' first positions.
  std::vector<Element> elements;
  std::vector<std::vector<uint32_t>> rules;
  std::vector<ByteSet> byte_sets;
  std::vector<Repeat> repeats;
  std::vector<StringBody> string_bodies;
  std::vector<RawUntil> raws;
  uint32_t root = 0;
};

// Builds a Grammar. Rules may be declared before they are defined (for recursion); every declared
// rule must get at least one alternative before build().
class GrammarBuilder {
 public:
  using Seq = std::vector<Element>;

  uint32_t declare();                                 // a new rule with no alternatives yet
  void add_alternative(uint32_t rule, const Seq& seq);
  uint32_t rule(const std::vector<Seq>& alternatives);  // declare + add each

  Element byte(const ByteSet& set);
  static Element call(uint32_t rule) { return {Element::Kind::rule, rule}; }
  Element repeat(const ByteSet& set, uint32_t min, uint32_t max);
  Element string_body(uint32_t min, uint32_t max);
  Element raw_until(std::string terminator, uint32_t max);
  // UTF-8 text of at most `max` bytes in which `forbidden` never appears; it may end after any
  // whole character (free content before an optional tool-call block).
  Element text_without(std::string forbidden, uint32_t max);
  // Zero or more times `seq` (a right-recursive rule: more := seq more | nothing).
  uint32_t star(const Seq& seq);
  // The rules `items` in this order, each left out unless `required[i]`, with `separator` between
  // two that are present (JSON properties in schema order, a tool call's parameter lines).
  uint32_t ordered(const std::vector<uint32_t>& items, const std::vector<bool>& required, const Seq& separator);
  // The bytes of `text`, one element each, appended to `seq`.
  void literal(Seq& seq, std::string_view text);
  Seq literal(std::string_view text);

  // Throws std::logic_error for a rule without alternatives or a rule that can call itself without
  // consuming a byte (left recursion would never end).
  Grammar build(uint32_t root) &&;

 private:
  uint32_t intern(const ByteSet& set);
  Grammar g_;
  std::vector<std::vector<Seq>> pending_;
};

}  // namespace v4::grammar
