/*
 * TORCHFF_EXPORT marks the entry points (torchff_kernels.h, which module.c makes Python
 * functions), exported from the shared library. TORCHFF_TARGETS builds a function for several
 * instruction sets, the build picked at load time by the CPU (on x86-64 Linux with GCC):
 * x86-64-v4 (AVX-512, 512-bit vectors; GCC 11 and later), AVX2 and the baseline. An entry
 * point is exported only, never cloned (a cloned function is an ifunc, which not every
 * compiler exports under its name), and calls a TORCHFF_TARGETS worker (per chunk where it
 * splits its work over threads, torchff_parallel.h: the OpenMP region stays out of the cloned
 * code). Every C file in this folder includes this header.
 */
#ifndef TORCHFF_API_H
#define TORCHFF_API_H

#ifdef _WIN32
#define TORCHFF_EXPORT __declspec(dllexport)
#else
#define TORCHFF_EXPORT __attribute__((visibility("default")))
#endif

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 11 && defined(__linux__)
#define TORCHFF_TARGETS __attribute__((target_clones("arch=x86-64-v4", "avx2", "default")))
#elif defined(__x86_64__) && defined(__GNUC__) && defined(__linux__)
#define TORCHFF_TARGETS __attribute__((target_clones("avx2", "default")))
#else
#define TORCHFF_TARGETS
#endif

#endif
