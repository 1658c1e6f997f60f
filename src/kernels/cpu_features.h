#pragma once
// What this CPU and its operating system let us run, read once with CPUID and XGETBV.
#include <string>

namespace v4::kernels {

struct CpuFeatures {
  std::string vendor, model;  // CPUID vendor string and brand string
  bool avx2 = false, fma = false, f16c = false;
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false;
  bool avx512bf16 = false, avx512vbmi = false, avx512vnni = false;
  bool amx_tile = false, amx_bf16 = false, amx_int8 = false;
  // The OS saves the register state: YMM (XCR0 bits 1-2), ZMM (5-7); AMX tiles need the
  // process to ask for them (arch_prctl ARCH_REQ_XCOMP_PERM), which amx_permitted records.
  bool os_ymm = false, os_zmm = false, amx_permitted = false;

  // The features the kernels use, each with the OS support it needs.
  bool has_avx2() const { return avx2 && fma && f16c && os_ymm; }
  bool has_avx512() const { return has_avx2() && avx512f && avx512bw && avx512vl && avx512dq && os_zmm; }
  bool has_avx512bf16() const { return has_avx512() && avx512bf16 && avx512vbmi; }

  // "avx2 fma f16c avx512f ... amx-bf16(permitted)" for logs and bench output.
  std::string summary() const;
  const std::string& name() const { return model.empty() ? vendor : model; }  // the brand string, else the vendor
};

// Detected on first call, then cached.
const CpuFeatures& cpu_features();

}  // namespace v4::kernels
