#pragma once
// Scalar decoders for the checkpoint's number formats. Fast kernels decode in bulk elsewhere; these
// are the definitions every kernel is tested against.
#include <cstdint>
#include <cstring>

namespace v4::core {

inline float bf16_to_float(uint16_t b) {
  uint32_t u = uint32_t(b) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
// Round-to-nearest-even float -> bf16 (NaN stays NaN).
uint16_t float_to_bf16(float f);
// Round a float to the nearest bf16 value and return it as float (the reference's bf16 casts).
float round_bf16(float f);
float f16_to_float(uint16_t h);

// FP8 e4m3fn: bias 7, no infinities, 0x7F/0xFF are NaN, 0x7E = 448, subnormals 2^-9 steps.
float e4m3_to_float(uint8_t b);
// Round-to-nearest-even with saturation to +-448 (the fixtures' activation quantiser rule).
uint8_t float_to_e4m3(float f);
// UE8M0 scale: 2^(e-127); 0xFF is NaN.
float e8m0_to_float(uint8_t e);
// FP4 e2m1 nibble (low 4 bits used): {0,0.5,1,1.5,2,3,4,6} with sign bit 3.
float e2m1_to_float(uint8_t nibble);
// Round-to-nearest-even with saturation to +-6.
uint8_t float_to_e2m1(float f);

}  // namespace v4::core
