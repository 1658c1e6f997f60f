#pragma once
// Random tokens, digests and password hashes for keys, sessions and console accounts.
#include <cstddef>
#include <string>
#include <string_view>

namespace v4::product {

std::string random_hex(size_t bytes);       // `bytes` bytes from the OS CSPRNG, as lowercase hex
std::string sha256_hex(std::string_view text);

// Argon2id (libsodium crypto_pwhash_str, interactive limits): a self-describing "$argon2id$..." string.
std::string hash_password(std::string_view password);
// Constant-time check against a stored hash; false for any malformed stored value.
bool verify_password(const std::string& stored_hash, std::string_view password);

}  // namespace v4::product
