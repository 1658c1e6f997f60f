#include "model/state_codec.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>

#include "model/state.h"

namespace v4::model {

namespace {

constexpr uint32_t kFormat = 2;  // bump when SequenceStateImpl's fields change (2: packed entries)

class Writer {
 public:
  explicit Writer(std::vector<std::byte>& out) : out_(out) {}
  void raw(const void* p, size_t n) {
    const auto* b = static_cast<const std::byte*>(p);
    out_.insert(out_.end(), b, b + n);
  }
  void i64(int64_t v) { raw(&v, sizeof v); }
  void floats(const std::vector<float>& v) {
    i64(int64_t(v.size()));
    raw(v.data(), v.size() * sizeof(float));
  }
  // Row count, format, then the rows as stored (a block at a time).
  void rows(const StateRows& v) {
    i64(v.size());
    i64(int64_t(v.format()));
    for (int64_t i = 0; i < v.size(); i += StateRows::kBlockRows)
      raw(v.raw(i), size_t(std::min(StateRows::kBlockRows, v.size() - i) * v.row_bytes()));
  }

 private:
  std::vector<std::byte>& out_;
};

class Reader {
 public:
  explicit Reader(std::span<const std::byte> in) : in_(in) {}
  void raw(void* p, size_t n) {
    if (n > in_.size() - at_) throw std::runtime_error("state bytes: truncated");
    if (n == 0) return;  // an empty vector's data() may be null, which memcpy does not allow
    std::memcpy(p, in_.data() + at_, n);
    at_ += n;
  }
  int64_t i64() {
    int64_t v;
    raw(&v, sizeof v);
    return v;
  }
  // Reads a float vector; `expected` >= 0 is the only size accepted.
  void floats(std::vector<float>& v, int64_t expected, const char* what) {
    const int64_t n = i64();
    if (n < 0 || (expected >= 0 && n != expected) || uint64_t(n) > (in_.size() - at_) / sizeof(float))
      throw std::runtime_error(std::string("state bytes: ") + what + " has the wrong size");
    v.resize(size_t(n));
    raw(v.data(), size_t(n) * sizeof(float));
  }
  // Reads rows into `v` (a blank in the model's width and format); `expected` rows only.
  void rows(StateRows& v, int64_t expected, const char* what) {
    const int64_t n = i64(), format = i64();
    // A state saved in exact mode does not continue a quantised model, nor the reverse.
    if (format != int64_t(v.format()))
      throw std::runtime_error(std::string("state bytes: ") + what + " are in another format than this model keeps");
    const size_t row_bytes = size_t(v.row_bytes());
    if (n != expected || (row_bytes > 0 && uint64_t(n) > (in_.size() - at_) / row_bytes))
      throw std::runtime_error(std::string("state bytes: ") + what + " has the wrong size");
    v.truncate(0);
    v.push_back_raw(in_.data() + at_, n);  // n rows, checked above
    at_ += size_t(n) * row_bytes;
  }
  bool done() const { return at_ == in_.size(); }

 private:
  std::span<const std::byte> in_;
  size_t at_ = 0;
};

void require(bool ok, const char* what) {
  if (!ok) throw std::runtime_error(std::string("state bytes: ") + what + " does not match the model");
}

void encode_compressor(Writer& w, const CompressorState& c) {
  w.i64(c.ratio);
  w.i64(c.width);
  w.i64(int64_t(c.overlap) | int64_t(c.has_prev) << 1);
  for (const auto* v : {&c.cur_kv, &c.cur_score, &c.prev_kv, &c.prev_score}) w.floats(*v);
}

void decode_compressor(Reader& r, const CompressorState& blank, CompressorState& c) {
  c = blank;
  require(r.i64() == blank.ratio && r.i64() == blank.width, "compressor shape");
  const int64_t flags = r.i64();
  require((flags & 1) == int64_t(blank.overlap) && flags >> 2 == 0, "compressor overlap");
  c.has_prev = flags & 2;
  r.floats(c.cur_kv, int64_t(blank.cur_kv.size()), "compressor kv");
  r.floats(c.cur_score, int64_t(blank.cur_score.size()), "compressor score");
  r.floats(c.prev_kv, int64_t(blank.prev_kv.size()), "compressor previous kv");
  r.floats(c.prev_score, int64_t(blank.prev_score.size()), "compressor previous score");
}

void encode_layer(Writer& w, const LayerState& l) {
  w.i64(l.head_dim);
  w.i64(l.window);
  w.floats(l.ring);
  w.rows(l.compressed);
  w.rows(l.index_keys);
  encode_compressor(w, l.compressor);
  encode_compressor(w, l.index_compressor);
}

void decode_layer(Reader& r, const LayerState& blank, int64_t pos, LayerState& l) {
  require(r.i64() == blank.head_dim && r.i64() == blank.window, "layer shape");
  l.head_dim = blank.head_dim;
  l.window = blank.window;
  r.floats(l.ring, -1, "window ring");  // allocated at the first forward
  require(l.ring.empty() || int64_t(l.ring.size()) == l.window * l.head_dim, "window ring size");
  // Entries complete with every `ratio` positions; no more, no fewer.
  const int64_t ratio = blank.compressor.ratio, index_ratio = blank.index_compressor.ratio;
  l.compressed = blank.compressed;
  l.index_keys = blank.index_keys;
  r.rows(l.compressed, ratio > 0 ? pos / ratio : 0, "compressed entries");
  r.rows(l.index_keys, index_ratio > 0 ? pos / index_ratio : 0, "index keys");
  decode_compressor(r, blank.compressor, l.compressor);
  decode_compressor(r, blank.index_compressor, l.index_compressor);
}

}  // namespace

void encode_state(const SequenceState& state, std::vector<std::byte>& out) {
  const auto* s = dynamic_cast<const SequenceStateImpl*>(&state);
  if (!s) throw std::invalid_argument("encode_state: not a DeepSeek-V4 sequence state");
  // Their undo is not kept: the state would hold speculative tokens for good.
  if (s->undo || !s->mtp_chain.empty())
    throw std::invalid_argument("encode_state: a speculative step or chained draft is not rolled back yet");
  Writer w(out);
  w.i64(kFormat);
  w.i64(s->pos_);
  w.i64(s->mtp_pos);
  w.i64(s->last_streams_first_pos);
  w.floats(s->last_streams);
  w.i64(int64_t(s->layers.size()));
  w.i64(int64_t(s->mtp_layers.size()));
  for (const LayerState& l : s->layers) encode_layer(w, l);
  for (const LayerState& l : s->mtp_layers) encode_layer(w, l);
}

std::unique_ptr<SequenceState> decode_state(std::span<const std::byte> bytes, const SequenceState& blank) {
  const auto* b = dynamic_cast<const SequenceStateImpl*>(&blank);
  if (!b) throw std::invalid_argument("decode_state: the blank state is not a DeepSeek-V4 sequence state");
  Reader r(bytes);
  require(r.i64() == kFormat, "format version");
  auto s = std::make_unique<SequenceStateImpl>();
  s->pos_ = r.i64();
  s->mtp_pos = r.i64();
  s->last_streams_first_pos = r.i64();
  require(s->pos_ >= 0 && s->mtp_pos >= 0 && s->mtp_pos <= s->pos_, "positions");
  r.floats(s->last_streams, -1, "last streams");
  require(r.i64() == int64_t(b->layers.size()) && r.i64() == int64_t(b->mtp_layers.size()), "layer count");
  s->layers.resize(b->layers.size());
  s->mtp_layers.resize(b->mtp_layers.size());
  for (size_t l = 0; l < b->layers.size(); ++l) decode_layer(r, b->layers[l], s->pos_, s->layers[l]);
  for (size_t l = 0; l < b->mtp_layers.size(); ++l) decode_layer(r, b->mtp_layers[l], s->mtp_pos, s->mtp_layers[l]);
  require(r.done(), "length");
  return s;
}

}  // namespace v4::model
