// axc runtime: the integer arithmetic of docs/arithmetic.md for HLS C++, one
// function for each function of axc/arith (named in each comment).
#pragma once
#include <cmath>
#include <cstdint>

// saturate to [lo, hi]                                   (numpy clip in axc/arith)
static inline long axc_clamp(long v, long lo, long hi) { return v < lo ? lo : (v > hi ? hi : v); }

// two's-complement wrap to `bits` bits                                 (arith.wrap)
static inline long axc_wrap(long v, int bits) {
    if (bits >= 64) return v;
    unsigned long u = (unsigned long)v << (64 - bits);
    return (long)u >> (64 - bits);
}

// fixed-point requantization: clamp(((acc * M + 2^(S-1)) >> S) + zp)
// (round half up; the product in more than 64 bits)          (Requantizer.apply)
static inline long axc_requant(long acc, long mult, int shift, long zp, long lo, long hi) {
    __int128 p = (__int128)acc * mult + ((__int128)1 << (shift - 1));
    return axc_clamp((long)(p >> shift) + zp, lo, hi);
}

// float32 requantization of imported models: clamp(round_half_even(float(acc) * scale) + zp)
//                                                                (apply_float32)
static inline long axc_requant_float(long acc, float scale, long zp, long lo, long hi) {
    return axc_clamp(std::lrint((float)acc * scale) + zp, lo, hi);
}

// quantization: clamp(round_half_even(x / scale) + zp), the division in float32
//                                                                 (quant.quantize)
static inline long axc_quantize(float x, float scale, long zp, long lo, long hi) {
    return axc_clamp(std::lrint(x / scale) + zp, lo, hi);
}

// dequantization: (q - zp) * scale in float32                   (quant.dequantize)
static inline float axc_dequantize(long q, long zp, float scale) { return (float)(q - zp) * scale; }

// the integer add of two differently scaled tensors:
// clamp((((a - za) * Ma + (b - zb) * Mb + 2^(S-1)) >> S) + zp)   (the QAdd kernel)
static inline long axc_add(long a, long b, long za, long zb, long ma, long mb, int shift, long zp,
                           long lo, long hi) {
    __int128 acc = (__int128)(a - za) * ma + (__int128)(b - zb) * mb;
    return axc_clamp((long)((acc + ((__int128)1 << (shift - 1))) >> shift) + zp, lo, hi);
}

// an average's division: round half toward +infinity, floor((2 t + c) / (2 c)), c > 0
//                                                  (the integer pooling's division rule)
static inline long axc_divide_round_half_up(long total, long count) {
    long n = 2 * total + count, d = 2 * count;
    return n >= 0 ? n / d : -((-n + d - 1) / d);
}
