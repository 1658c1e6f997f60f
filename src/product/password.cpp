// Password hashing with libsodium's Argon2id: memory-hard, salted, parameters stored in the hash.
#include <sodium.h>

#include <stdexcept>

#include "product/secrets.h"

namespace v4::product {
namespace {
void ensure_sodium() {
  static const bool ready = sodium_init() >= 0;
  if (!ready) throw std::runtime_error("libsodium failed to initialise");
}
}  // namespace

std::string hash_password(std::string_view password) {
  ensure_sodium();
  char out[crypto_pwhash_STRBYTES];
  if (crypto_pwhash_str(out, password.data(), password.size(), crypto_pwhash_OPSLIMIT_INTERACTIVE,
                        crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0)
    throw std::runtime_error("password hashing ran out of memory");
  return out;
}

bool verify_password(const std::string& stored_hash, std::string_view password) {
  ensure_sodium();
  if (stored_hash.size() >= crypto_pwhash_STRBYTES || stored_hash.rfind("$argon2id$", 0) != 0) return false;
  return crypto_pwhash_str_verify(stored_hash.c_str(), password.data(), password.size()) == 0;
}

}  // namespace v4::product
