#include "core/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <boost/json.hpp>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>

#include "core/huge_pages.h"
#include "fmt/format.h"

namespace v4::core {

namespace json = boost::json;

int64_t TensorView::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

WeightMemory parse_weight_memory(const std::string& text, const std::string& option) {
  if (text == "mapped") return WeightMemory::mapped;
  if (text == "hugepages") return WeightMemory::hugepages;
  throw std::invalid_argument(option + " must be mapped or hugepages; got '" + text + "'");
}

class MappedFile {
 public:
  explicit MappedFile(const std::string& path, WeightMemory memory) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw CheckpointError(fmt::format("{}: cannot open: {}", path, std::strerror(errno)));
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
      ::close(fd);
      throw CheckpointError(fmt::format("{}: not a regular file", path));
    }
    size_ = size_t(st.st_size);
    if (size_ > 0 && memory == WeightMemory::hugepages) {
      try {
        read_into_hugepages(fd, path);
      } catch (...) {  // no destructor runs for a constructor that throws (copy_'s does)
        ::close(fd);
        throw;
      }
      ::close(fd);
      return;
    }
    if (size_ > 0) {
      void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
      if (p == MAP_FAILED) {
        int err = errno;
        ::close(fd);
        throw CheckpointError(fmt::format("{}: mmap failed: {}", path, std::strerror(err)));
      }
      data_ = static_cast<const uint8_t*>(p);
      // File pages read in from now on come in 2 MiB folios mapped whole, where the kernel's page
      // cache has large folios for the filesystem (ext4 on 6.x does): decode streams the weights,
      // and 4 KiB pages cost it a TLB miss every 4 KiB (core/huge_pages.h). Pages already cached
      // in smaller folios stay so until evicted; bench decode prints the share.
      ::madvise(p, size_, MADV_HUGEPAGE);
    }
    ::close(fd);  // the mapping stays valid
  }
  ~MappedFile() {
    if (data_ && !copy_.data()) ::munmap(const_cast<uint8_t*>(data_), size_);
  }
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  std::span<const uint8_t> bytes() const { return {data_, size_}; }
  PageResidency residency() const { return page_residency(data_, size_); }

 private:
  // Anonymous memory in whole 2 MiB pages, huge pages asked for before the first touch, then the
  // file read in; a line on stderr per file, as a 150 GB checkpoint takes minutes.
  void read_into_hugepages(int fd, const std::string& path) {
    try {
      copy_ = HugePageBuffer(size_);
    } catch (const std::bad_alloc&) {
      throw CheckpointError(fmt::format("{}: cannot allocate {} bytes for its weights: {}", path, size_, std::strerror(errno)));
    }
    uint8_t* p = copy_.data();
    std::fprintf(stderr, "weights: reading %s (%.2f GB) into huge pages\n", path.c_str(), double(size_) / 1e9);
    for (size_t done = 0; done < size_;) {
      const ssize_t r = ::pread(fd, p + done, std::min(size_ - done, size_t(64) << 20), off_t(done));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) throw CheckpointError(fmt::format("{}: read failed at byte {}: {}", path, done, r < 0 ? std::strerror(errno) : "end of file"));
      done += size_t(r);
    }
    copy_.seal();  // weights are never written, as with the mapping
    data_ = p;
  }

  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  HugePageBuffer copy_;  // hugepages: the weights' anonymous copy
};

namespace {

// Returns the offset of the first byte that breaks UTF-8 (overlongs, surrogates and code points
// above U+10FFFF included), or npos when the text is valid.
size_t first_invalid_utf8(std::span<const uint8_t> s) {
  size_t i = 0;
  while (i < s.size()) {
    const uint8_t c = s[i];
    size_t len;
    uint32_t cp;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      len = 2, cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3, cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4, cp = c & 0x07;
    } else {
      return i;
    }
    if (i + len > s.size()) return i;
    for (size_t k = 1; k < len; ++k) {
      if ((s[i + k] & 0xC0) != 0x80) return i;
      cp = (cp << 6) | (s[i + k] & 0x3F);
    }
    const uint32_t min_cp = len == 2 ? 0x80 : len == 3 ? 0x800 : 0x10000;
    if (cp < min_cp || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return i;
    i += len;
  }
  return std::string::npos;
}

// Printable form of a tensor name for error messages (names are valid UTF-8 by then, but may hold
// control characters).
std::string quoted(const std::string& s) {
  std::string out = "'";
  for (char ch : s) {
    if (static_cast<unsigned char>(ch) < 0x20 || ch == 0x7F)
      out += fmt::format("\\x{:02x}", static_cast<unsigned char>(ch));
    else
      out += ch;
  }
  return out + "'";
}

uint64_t read_u64_le(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

// Largest header we accept: real checkpoints have a few MB at most; this keeps a hostile length
// from ever driving an allocation.
constexpr uint64_t kMaxHeaderBytes = uint64_t(100) << 20;

}  // namespace

std::map<std::string, TensorView> SafetensorsFile::parse(std::span<const uint8_t> bytes, const std::string& label) {
  auto fail = [&](const std::string& what) -> CheckpointError {
    return CheckpointError(fmt::format("{}: {}", label, what));
  };
  if (bytes.size() < 8)
    throw fail(fmt::format("file is {} bytes, too small for the 8-byte header length", bytes.size()));
  const uint64_t header_len = read_u64_le(bytes.data());
  const uint64_t available = bytes.size() - 8;
  if (header_len > available)
    throw fail(fmt::format("header length {} is beyond the end of the file ({} bytes after the length field)",
                           header_len, available));
  if (header_len > kMaxHeaderBytes)
    throw fail(fmt::format("header length {} exceeds the {} byte limit", header_len, kMaxHeaderBytes));
  if (header_len < 2) throw fail(fmt::format("header length {} is too small for a JSON object", header_len));

  const std::span<const uint8_t> header = bytes.subspan(8, size_t(header_len));
  if (size_t bad = first_invalid_utf8(header); bad != std::string::npos)
    throw fail(fmt::format("header is not valid UTF-8 (byte {} of the header)", bad));

  json::error_code ec;
  json::parse_options options;
  options.max_depth = 8;  // the format nests three levels deep; refuse pathological nesting early
  json::value root = json::parse(
      json::string_view(reinterpret_cast<const char*>(header.data()), header.size()), ec, {}, options);
  if (ec) throw fail(fmt::format("header is not valid JSON: {}", ec.message()));
  if (!root.is_object()) throw fail("header is not a JSON object");

  const uint64_t data_size = available - header_len;
  const uint8_t* data_base = bytes.data() + 8 + header_len;

  std::map<std::string, TensorView> tensors;
  struct Range {
    uint64_t begin, end;
    const std::string* name;
  };
  std::vector<Range> ranges;

  for (const auto& [key, value] : root.as_object()) {
    const std::string name(key);
    if (name == "__metadata__") {
      if (!value.is_object() && !value.is_null()) throw fail("__metadata__ is not an object");
      continue;
    }
    const std::string where = "tensor " + quoted(name);
    if (name.empty()) throw fail("a tensor has an empty name");
    if (!value.is_object()) throw fail(where + ": entry is not an object");
    const json::object& entry = value.as_object();

    const json::value* dtype_value = entry.if_contains("dtype");
    if (!dtype_value || !dtype_value->is_string()) throw fail(where + ": missing string field 'dtype'");
    const std::string dtype_text(dtype_value->as_string());
    const auto dtype = dtype_from_name(dtype_text);
    if (!dtype) throw fail(fmt::format("{}: unsupported dtype '{}'", where, dtype_text));

    const json::value* shape_value = entry.if_contains("shape");
    if (!shape_value || !shape_value->is_array()) throw fail(where + ": missing array field 'shape'");
    if (shape_value->as_array().size() > 8)
      throw fail(fmt::format("{}: shape has {} dimensions (at most 8 supported)", where,
                             shape_value->as_array().size()));
    std::vector<int64_t> shape;
    // The element count is accumulated with an overflow check: a hostile shape must not wrap
    // around to a small byte size that happens to match its offsets.
    uint64_t count = 1;
    bool overflow = false;
    for (const auto& d : shape_value->as_array()) {
      int64_t dim;
      if (d.is_int64())
        dim = d.as_int64();
      else if (d.is_uint64() && d.as_uint64() <= uint64_t(std::numeric_limits<int64_t>::max()))
        dim = int64_t(d.as_uint64());
      else
        throw fail(where + ": shape entries must be non-negative integers");
      if (dim < 0) throw fail(fmt::format("{}: negative dimension {} in shape", where, dim));
      shape.push_back(dim);
      if (dim != 0 && count > std::numeric_limits<uint64_t>::max() / uint64_t(dim)) overflow = true;
      else count *= uint64_t(dim);
    }
    const uint64_t elem = dtype_size(*dtype);
    if (overflow || count > uint64_t(std::numeric_limits<int64_t>::max()) / elem)
      throw fail(fmt::format("{}: shape {} has an element count that overflows", where,
                             json::serialize(*shape_value)));

    const json::value* offsets_value = entry.if_contains("data_offsets");
    if (!offsets_value || !offsets_value->is_array() || offsets_value->as_array().size() != 2)
      throw fail(where + ": missing field 'data_offsets' [begin, end]");
    uint64_t off[2];
    for (int i = 0; i < 2; ++i) {
      const auto& o = offsets_value->as_array()[size_t(i)];
      if (o.is_uint64())
        off[i] = o.as_uint64();
      else if (o.is_int64() && o.as_int64() >= 0)
        off[i] = uint64_t(o.as_int64());
      else
        throw fail(where + ": data_offsets must be non-negative integers");
    }
    if (off[0] > off[1])
      throw fail(fmt::format("{}: data_offsets [{}, {}] end before they begin", where, off[0], off[1]));
    if (off[1] > data_size)
      throw fail(fmt::format("{}: data_offsets [{}, {}] are beyond the data area ({} bytes); the file is truncated "
                             "or the offsets are wrong",
                             where, off[0], off[1], data_size));
    const uint64_t expected_bytes = count * elem;
    if (off[1] - off[0] != expected_bytes)
      throw fail(fmt::format("{}: {} bytes of data but dtype {} x shape {} needs {} bytes", where, off[1] - off[0],
                             dtype_text, json::serialize(*shape_value), expected_bytes));

    TensorView view;
    view.name = name;
    view.dtype = *dtype;
    view.shape = std::move(shape);
    view.data = data_base + off[0];
    view.nbytes = size_t(expected_bytes);
    view.file = label;
    auto [it, inserted] = tensors.emplace(name, std::move(view));
    if (!inserted) throw fail(where + ": appears twice in the header");
    ranges.push_back({off[0], off[1], &it->first});
  }

  // No two tensors may share bytes (empty tensors occupy nothing).
  std::sort(ranges.begin(), ranges.end(), [](const Range& a, const Range& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  const Range* previous = nullptr;
  for (const Range& r : ranges) {
    if (r.begin == r.end) continue;
    if (previous && r.begin < previous->end)
      throw fail(fmt::format("tensors {} [{}, {}] and {} [{}, {}] overlap", quoted(*previous->name), previous->begin,
                             previous->end, quoted(*r.name), r.begin, r.end));
    previous = &r;
  }
  return tensors;
}

std::unique_ptr<SafetensorsFile> SafetensorsFile::open(const std::string& path, WeightMemory memory) {
  std::unique_ptr<SafetensorsFile> file(new SafetensorsFile());
  file->map_ = std::make_unique<MappedFile>(path, memory);
  file->tensors_ = parse(file->map_->bytes(), path);

  // Metadata is optional; only string values are kept.
  const auto bytes = file->map_->bytes();
  const uint64_t header_len = read_u64_le(bytes.data());
  json::error_code ec;
  json::value root =
      json::parse(json::string_view(reinterpret_cast<const char*>(bytes.data() + 8), size_t(header_len)), ec);
  if (!ec && root.is_object())
    if (const json::value* meta = root.as_object().if_contains("__metadata__"); meta && meta->is_object())
      for (const auto& [k, v] : meta->as_object())
        if (v.is_string()) file->metadata_[std::string(k)] = std::string(v.as_string());
  return file;
}

SafetensorsFile::~SafetensorsFile() = default;

PageResidency SafetensorsFile::residency() const { return map_ ? map_->residency() : PageResidency{}; }

}  // namespace v4::core
