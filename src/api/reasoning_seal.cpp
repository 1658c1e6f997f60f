// Responses include ["reasoning.encrypted_content"]: the reasoning text goes to the client sealed
// (XSalsa20-Poly1305, libsodium's secretbox) under a key made when the process starts, and comes
// back in a later request's input as the turn's reasoning. Opaque to the client, and a blob this
// process did not make (or one altered) is refused rather than trusted. A restart makes new keys:
// older blobs are then refused with a message that says so (docs/api.md).
#include <sodium.h>

#include <mutex>
#include <stdexcept>
#include <string>

#include "api/request.h"

namespace v4::api {

namespace {

constexpr std::string_view kPrefix = "v4r1.";

const unsigned char* seal_key() {
  static unsigned char key[crypto_secretbox_KEYBYTES];
  static std::once_flag once;
  std::call_once(once, [] {
    if (sodium_init() < 0) throw std::runtime_error("libsodium failed to initialise");
    crypto_secretbox_keygen(key);
  });
  return key;
}

}  // namespace

std::string seal_reasoning(const std::string& text) {
  const unsigned char* key = seal_key();
  std::string box(crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES + text.size(), '\0');
  auto* nonce = reinterpret_cast<unsigned char*>(box.data());
  randombytes_buf(nonce, crypto_secretbox_NONCEBYTES);
  crypto_secretbox_easy(nonce + crypto_secretbox_NONCEBYTES, reinterpret_cast<const unsigned char*>(text.data()),
                        text.size(), nonce, key);
  std::string b64(sodium_base64_ENCODED_LEN(box.size(), sodium_base64_VARIANT_URLSAFE_NO_PADDING), '\0');
  sodium_bin2base64(b64.data(), b64.size(), reinterpret_cast<const unsigned char*>(box.data()), box.size(),
                    sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  b64.resize(b64.size() - 1);  // the terminating NUL
  return std::string(kPrefix) + b64;
}

std::string unseal_reasoning(const std::string& sealed, const std::string& param) {
  const unsigned char* key = seal_key();
  auto refuse = [&]() {
    return bad_request(param, "'" + param + "' was not made by this server process (or was altered): it cannot be "
                                  "read back; send the reasoning's text instead, or start the conversation afresh");
  };
  if (!std::string_view(sealed).starts_with(kPrefix)) throw refuse();
  const std::string_view b64 = std::string_view(sealed).substr(kPrefix.size());
  std::string box(b64.size(), '\0');
  size_t len = 0;
  if (sodium_base642bin(reinterpret_cast<unsigned char*>(box.data()), box.size(), b64.data(), b64.size(), nullptr, &len,
                        nullptr, sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
      len < crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES)
    throw refuse();
  const auto* nonce = reinterpret_cast<const unsigned char*>(box.data());
  std::string text(len - crypto_secretbox_NONCEBYTES - crypto_secretbox_MACBYTES, '\0');
  if (crypto_secretbox_open_easy(reinterpret_cast<unsigned char*>(text.data()), nonce + crypto_secretbox_NONCEBYTES,
                                 len - crypto_secretbox_NONCEBYTES, nonce, key) != 0)
    throw refuse();
  return text;
}

}  // namespace v4::api
