#include "grammar/grammar.h"

#include <array>
#include <functional>
#include <stdexcept>

namespace v4::grammar {

uint32_t GrammarBuilder::declare() {
  pending_.emplace_back();
  return uint32_t(pending_.size() - 1);
}

void GrammarBuilder::add_alternative(uint32_t rule, const Seq& seq) { pending_.at(rule).push_back(seq); }

uint32_t GrammarBuilder::rule(const std::vector<Seq>& alternatives) {
  const uint32_t r = declare();
  for (const auto& a : alternatives) add_alternative(r, a);
  return r;
}

uint32_t GrammarBuilder::intern(const ByteSet& set) {
  for (size_t i = 0; i < g_.byte_sets.size(); ++i)
    if (g_.byte_sets[i] == set) return uint32_t(i);
  g_.byte_sets.push_back(set);
  return uint32_t(g_.byte_sets.size() - 1);
}

Element GrammarBuilder::byte(const ByteSet& set) { return {Element::Kind::byte, intern(set)}; }

Element GrammarBuilder::repeat(const ByteSet& set, uint32_t min, uint32_t max) {
  if (max < min || max == 0) throw std::logic_error("grammar: repeat needs 0 < max and min <= max");
  g_.repeats.push_back({intern(set), min, max});
  return {Element::Kind::repeat, uint32_t(g_.repeats.size() - 1)};
}

Element GrammarBuilder::string_body(uint32_t min, uint32_t max) {
  if (max < min) throw std::logic_error("grammar: string body needs min <= max");
  g_.string_bodies.push_back({min, max});
  return {Element::Kind::string_body, uint32_t(g_.string_bodies.size() - 1)};
}

Element GrammarBuilder::raw_until(std::string terminator, uint32_t max) {
  if (terminator.empty() || terminator.size() > 255 || static_cast<unsigned char>(terminator[0]) >= 0x80)
    throw std::logic_error("grammar: raw text needs a terminator of 1-255 bytes starting with an ASCII byte");
  g_.raws.push_back({std::move(terminator), max});
  return {Element::Kind::raw_until, uint32_t(g_.raws.size() - 1)};
}

Element GrammarBuilder::text_without(std::string forbidden, uint32_t max) {
  Element e = raw_until(std::move(forbidden), max);
  g_.raws.back().forbid = true;
  return e;
}

uint32_t GrammarBuilder::star(const Seq& seq) {
  const uint32_t more = declare();
  Seq again = seq;
  again.push_back(call(more));
  add_alternative(more, again);
  add_alternative(more, Seq{});
  return more;
}

uint32_t GrammarBuilder::ordered(const std::vector<uint32_t>& items, const std::vector<bool>& required,
                                 const Seq& separator) {
  // rest[i][first]: the items from i on; `first` when nothing came before (no separator due)
  const size_t n = items.size();
  std::vector<std::array<uint32_t, 2>> rest(n + 1);
  rest[n] = {rule({Seq{}}), rule({Seq{}})};
  for (size_t i = n; i-- > 0;)
    for (int first = 0; first < 2; ++first) {
      Seq with = first ? Seq{} : separator;
      with.push_back(call(items[i]));
      with.push_back(call(rest[i + 1][0]));
      std::vector<Seq> alts{with};
      if (!required[i]) alts.push_back({call(rest[i + 1][first])});
      rest[i][first] = rule(alts);
    }
  return rest[0][1];
}

void GrammarBuilder::literal(Seq& seq, std::string_view text) {
  for (unsigned char c : text) {
    ByteSet s;
    s.set(c);
    seq.push_back(byte(s));
  }
}

GrammarBuilder::Seq GrammarBuilder::literal(std::string_view text) {
  Seq s;
  literal(s, text);
  return s;
}

namespace {

bool element_nullable(const Grammar& g, const Element& e, const std::vector<char>& nullable) {
  switch (e.kind) {
    case Element::Kind::byte: return false;
    case Element::Kind::raw_until: return g.raws[e.arg].forbid;
    case Element::Kind::rule: return nullable[e.arg];
    case Element::Kind::repeat: return g.repeats[e.arg].min == 0;
    case Element::Kind::string_body: return g.string_bodies[e.arg].min == 0;
    case Element::Kind::end: return true;
  }
  return false;
}

// Rules that can match the empty string (a fixpoint over the alternatives).
std::vector<char> nullable_rules(const Grammar& g) {
  std::vector<char> nullable(g.rules.size(), 0);
  for (bool changed = true; changed;) {
    changed = false;
    for (size_t r = 0; r < g.rules.size(); ++r) {
      if (nullable[r]) continue;
      for (uint32_t start : g.rules[r]) {
        uint32_t p = start;
        while (g.elements[p].kind != Element::Kind::end && element_nullable(g, g.elements[p], nullable)) ++p;
        if (g.elements[p].kind == Element::Kind::end) {
          nullable[r] = 1;
          changed = true;
          break;
        }
      }
    }
  }
  return nullable;
}

// Throws when some rule can reach a call of itself before any byte is consumed.
void check_left_recursion(const Grammar& g) {
  const auto nullable = nullable_rules(g);
  std::vector<std::vector<uint32_t>> first_calls(g.rules.size());
  for (size_t r = 0; r < g.rules.size(); ++r)
    for (uint32_t p : g.rules[r]) {
      for (; g.elements[p].kind != Element::Kind::end; ++p) {
        const Element& e = g.elements[p];
        if (e.kind == Element::Kind::rule) first_calls[r].push_back(e.arg);
        if (!element_nullable(g, e, nullable)) break;
      }
    }
  std::vector<char> mark(g.rules.size(), 0);  // 0 new, 1 on the path, 2 done
  std::function<void(uint32_t)> visit = [&](uint32_t r) {
    mark[r] = 1;
    for (uint32_t c : first_calls[r]) {
      if (mark[c] == 1) throw std::logic_error("grammar: rule " + std::to_string(c) + " is left-recursive");
      if (mark[c] == 0) visit(c);
    }
    mark[r] = 2;
  };
  for (size_t r = 0; r < g.rules.size(); ++r)
    if (mark[r] == 0) visit(uint32_t(r));
}

}  // namespace

Grammar GrammarBuilder::build(uint32_t root) && {
  g_.rules.assign(pending_.size(), {});
  for (size_t r = 0; r < pending_.size(); ++r) {
    if (pending_[r].empty()) throw std::logic_error("grammar: rule " + std::to_string(r) + " has no alternative");
    for (const auto& seq : pending_[r]) {
      g_.rules[r].push_back(uint32_t(g_.elements.size()));
      for (const auto& e : seq) {
        if (e.kind == Element::Kind::rule && e.arg >= pending_.size())
          throw std::logic_error("grammar: call of an undeclared rule");
        g_.elements.push_back(e);
      }
      g_.elements.push_back({Element::Kind::end, 0});
    }
  }
  if (root >= g_.rules.size()) throw std::logic_error("grammar: root is not a rule");
  g_.root = root;
  check_left_recursion(g_);
  return std::move(g_);
}

}  // namespace v4::grammar
