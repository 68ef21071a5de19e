/* Copyright © 2023-2024 Apple Inc. */

#ifndef MLX_HALF_H
#define MLX_HALF_H

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__ARM_FEATURE_FP16_SCALAR_ARITHMETIC) || defined(__aarch64__)
#define HAS_FLOAT16
#include <arm_fp16.h>
typedef __fp16 float16_t;
#endif

#if defined(__ARM_FEATURE_BF16) || defined(__aarch64__)
#define HAS_BFLOAT16
#include <arm_bf16.h>
typedef __bf16 bfloat16_t;
#endif

/* mlx-vs-torch patch: x86_64 and other non-ARM targets have no native
 * half types in C. MLX stores float16/bfloat16 as 16-bit structs there
 * (mlx/types/half_types.h), so C++ sees MLX's own types and C (and bindgen)
 * sees their 16-bit storage, which has the same size and alignment. */
#if !defined(HAS_FLOAT16) && !defined(HAS_BFLOAT16)
#ifdef __cplusplus
}
#include "mlx/types/half_types.h"
typedef mlx::core::float16_t float16_t;
typedef mlx::core::bfloat16_t bfloat16_t;
extern "C" {
#else
#include <stdint.h>
typedef struct {
  uint16_t bits;
} float16_t;
typedef uint16_t bfloat16_t;
#endif
#define HAS_FLOAT16
#define HAS_BFLOAT16
#endif

#ifdef __cplusplus
}
#endif

#endif
