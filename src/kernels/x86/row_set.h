#pragma once
// Internal to the x86 linear() variants; include after the file's target pragma (the rows it
// copies may hold that ISA's vectors).
#include <cstdint>

namespace v4::kernels::detail {

// The R weight rows of a tile from row r0: R copies of a row decoder, each selected on its row.
template <int R, class Rows>
struct RowSet {
  Rows rows[R];
  RowSet(const Rows& proto, int64_t r0) {
    for (int k = 0; k < R; ++k) {
      rows[k] = proto;
      rows[k].select(r0 + k);
    }
  }
};

}  // namespace v4::kernels::detail
