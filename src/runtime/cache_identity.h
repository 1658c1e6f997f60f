#pragma once
// The identity a disk-cache snapshot is filed under: which checkpoint, which build of the engine,
// which numeric mode. A snapshot is only read back by a server whose identity is the same, so a
// different model or build never continues from a foreign state.
#include <filesystem>
#include <string>

namespace v4::runtime {

// A fingerprint of a checkpoint directory: config.json (and the shard index), then per weight
// shard (in name order) its name, size, header and 16 sampled 4 KiB pieces of its data. Cheap on a 150 GB
// checkpoint, and two random-weight checkpoints of the same shape still differ.
std::string checkpoint_fingerprint(const std::filesystem::path& dir);

// This executable's bytes, hashed (any rebuild that changes code changes it) with the version.
std::string engine_build_id();

// "checkpoint=<fp> build=<id> numerics=exact|default isa=<kernel variant>"
std::string cache_identity(const std::filesystem::path& checkpoint_dir, bool exact_numerics);

}  // namespace v4::runtime
