#include "runtime/cache_identity.h"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <vector>

#include <fmt/format.h>

#include "kernels/isa.h"
#include "runtime/content_hash.h"

namespace v4::runtime {

namespace fs = std::filesystem;

namespace {

constexpr const char* kEngineVersion = "v4flash-0.1 state-format-1";

// Hashes [offset, offset + n) of an open file (short reads at the end are fine).
void hash_piece(ContentHash& h, std::ifstream& in, uint64_t offset, size_t n) {
  std::vector<char> buf(n);
  in.clear();
  in.seekg(std::streamoff(offset));
  in.read(buf.data(), std::streamsize(n));
  h.update(buf.data(), size_t(in.gcount()));
}

void hash_file_whole(ContentHash& h, const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + file.string());
  std::vector<char> buf(size_t(1) << 20);
  while (in.read(buf.data(), std::streamsize(buf.size())) || in.gcount() > 0)
    h.update(buf.data(), size_t(in.gcount()));
}

void hash_shard(ContentHash& h, const fs::path& file) {
  const uint64_t size = fs::file_size(file);
  const std::string name = file.filename().string();
  h.update(name.data(), name.size());
  h.update(&size, sizeof size);
  std::ifstream in(file, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + file.string());
  uint64_t header_len = 0;
  in.read(reinterpret_cast<char*>(&header_len), 8);
  hash_piece(h, in, 0, size_t(std::min<uint64_t>(8 + header_len, size)));
  constexpr int kSamples = 16;
  constexpr size_t kPiece = 4096;
  for (int i = 0; i < kSamples; ++i) hash_piece(h, in, size / kSamples * uint64_t(i), kPiece);
  hash_piece(h, in, size > kPiece ? size - kPiece : 0, kPiece);
}

}  // namespace

std::string checkpoint_fingerprint(const fs::path& dir) {
  ContentHash h;
  hash_file_whole(h, dir / "config.json");
  // The files the checkpoint loads (core/checkpoint.cpp): the shards model.safetensors.index.json
  // names, or model.safetensors; other safetensors in the folder (fixtures, references) are not weights.
  std::vector<fs::path> shards;
  const fs::path index = dir / "model.safetensors.index.json";
  if (fs::exists(index)) {
    hash_file_whole(h, index);
    std::ifstream in(index);
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    for (const auto& e : fs::directory_iterator(dir))
      if (e.path().extension() == ".safetensors" && text.find('"' + e.path().filename().string() + '"') != std::string::npos)
        shards.push_back(e.path());
  } else {
    shards.push_back(dir / "model.safetensors");
  }
  std::sort(shards.begin(), shards.end());
  for (const auto& s : shards) hash_shard(h, s);
  return fmt::format("{:016x}", h.digest());
}

std::string engine_build_id() {
  static const std::string id = [] {
    ContentHash h;
    h.update(kEngineVersion, std::char_traits<char>::length(kEngineVersion));
    hash_file_whole(h, "/proc/self/exe");
    return fmt::format("{:016x}", h.digest());
  }();
  return id;
}

std::string cache_identity(const fs::path& checkpoint_dir, bool exact_numerics) {
  return "checkpoint=" + checkpoint_fingerprint(checkpoint_dir) + " build=" + engine_build_id() +
         " numerics=" + (exact_numerics ? "exact" : "default") +
         // Each kernel variant has its own summation order, so state written under one is not
         // bit-equal to what another computes.
         " isa=" + kernels::isa_name(kernels::active_isa());
}

}  // namespace v4::runtime
