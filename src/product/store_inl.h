#pragma once
#include <chrono>
#include <thread>
#include <type_traits>

namespace v4::product {

template <class Fn>
auto run_transaction(Store& store, Fn&& fn) -> decltype(fn()) {
  constexpr int kAttempts = 50;
  for (int attempt = 1;; ++attempt) {
    try {
      store.begin();
      if constexpr (std::is_void_v<decltype(fn())>) {
        fn();
        store.commit();
        return;
      } else {
        auto result = fn();
        store.commit();
        return result;
      }
    } catch (const TransientStoreError&) {
      store.rollback();
      if (attempt >= kAttempts) throw;
      std::this_thread::sleep_for(std::chrono::milliseconds(2 * attempt));
    } catch (...) {
      store.rollback();
      throw;
    }
  }
}

}  // namespace v4::product
