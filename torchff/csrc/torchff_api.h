/*
 * TORCHFF_API marks the functions torchff.kernels._c calls through ctypes: exported from the
 * shared library and, on x86-64 Linux with GCC, built for several instruction sets, the build
 * picked at load time by the CPU: x86-64-v4 (AVX-512, 512-bit vectors; GCC 11 and later), AVX2
 * and the baseline. Every C file in this folder includes it.
 */
#ifndef TORCHFF_API_H
#define TORCHFF_API_H

#ifdef _WIN32
#define TORCHFF_API __declspec(dllexport)
#elif defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 11 && defined(__linux__)
#define TORCHFF_API                                                                                \
    __attribute__((visibility("default"), target_clones("arch=x86-64-v4", "avx2", "default")))
#elif defined(__x86_64__) && defined(__GNUC__) && defined(__linux__)
#define TORCHFF_API __attribute__((visibility("default"), target_clones("avx2", "default")))
#else
#define TORCHFF_API __attribute__((visibility("default")))
#endif

#endif
