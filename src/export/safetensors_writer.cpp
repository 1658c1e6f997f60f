#include "export/safetensors_writer.h"

#include <boost/json.hpp>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <stdexcept>

#include "fmt/format.h"

namespace v4::core {

namespace json = boost::json;

void SafetensorsWriter::add(std::string name, DType dtype, std::vector<int64_t> shape, Fill fill) {
  uint64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) throw std::invalid_argument(name + ": negative dimension");
    n *= uint64_t(d);
  }
  entries_.push_back({std::move(name), dtype, std::move(shape), n * dtype_size(dtype), std::move(fill)});
}

void SafetensorsWriter::add_bytes(std::string name, DType dtype, std::vector<int64_t> shape,
                                  std::vector<uint8_t> bytes) {
  auto data = std::make_shared<std::vector<uint8_t>>(std::move(bytes));
  std::string label = name;
  add(std::move(name), dtype, std::move(shape), [data, label](std::span<uint8_t> out) {
    if (out.size() != data->size())
      throw std::invalid_argument(fmt::format("{}: {} bytes given, {} needed", label, data->size(), out.size()));
    std::copy(data->begin(), data->end(), out.begin());
  });
}

void SafetensorsWriter::set_metadata(std::string key, std::string value) {
  metadata_.emplace_back(std::move(key), std::move(value));
}

uint64_t SafetensorsWriter::data_bytes() const {
  uint64_t total = 0;
  for (const auto& e : entries_) total += e.nbytes;
  return total;
}

const std::vector<std::string> SafetensorsWriter::names() const {
  std::vector<std::string> out;
  for (const auto& e : entries_) out.push_back(e.name);
  return out;
}

std::string SafetensorsWriter::header() const {
  json::object root;
  json::object meta;
  meta["format"] = "pt";
  for (const auto& [k, v] : metadata_) meta[k] = v;
  root["__metadata__"] = std::move(meta);
  uint64_t offset = 0;
  for (const auto& e : entries_) {
    json::object t;
    t["dtype"] = std::string(dtype_name(e.dtype));
    json::array shape;
    for (int64_t d : e.shape) shape.push_back(d);
    t["shape"] = std::move(shape);
    t["data_offsets"] = json::array{offset, offset + e.nbytes};
    offset += e.nbytes;
    root[e.name] = std::move(t);
  }
  std::string text = json::serialize(root);
  while (text.size() % 8 != 0) text += ' ';  // keeps every tensor 8-byte aligned in the file
  return text;
}

void SafetensorsWriter::write(const std::string& path, const Progress& progress) const {
  const std::string part = path + ".part";
  std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(part.c_str(), "wb"), &std::fclose);
  if (!f) throw std::runtime_error(fmt::format("{}: cannot create", part));
  auto put = [&](const void* p, size_t n) {
    if (n && std::fwrite(p, 1, n, f.get()) != n) throw std::runtime_error(fmt::format("{}: write failed", part));
  };
  const std::string h = header();
  uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = uint8_t(uint64_t(h.size()) >> (8 * i));
  put(len, 8);
  put(h.data(), h.size());
  const uint64_t total = data_bytes();
  uint64_t done = 0;
  std::vector<uint8_t> buffer;
  for (const auto& e : entries_) {
    buffer.assign(size_t(e.nbytes), 0);
    if (e.fill) e.fill(std::span<uint8_t>(buffer));
    put(buffer.data(), buffer.size());
    done += e.nbytes;
    if (progress) progress(done, total);
  }
  buffer.clear();
  buffer.shrink_to_fit();
  if (std::fflush(f.get()) != 0) throw std::runtime_error(fmt::format("{}: write failed", part));
  f.reset();
  std::filesystem::rename(part, path);
}

}  // namespace v4::core
