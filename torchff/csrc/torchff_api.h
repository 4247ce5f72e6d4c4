/*
 * TORCHFF_API marks the functions torchff.kernels._c calls through ctypes: exported from the
 * shared library and, on x86-64 Linux with GCC, built twice (AVX2 and baseline), the build
 * picked at load time by the CPU. Every C file in this folder includes it.
 */
#ifndef TORCHFF_API_H
#define TORCHFF_API_H

#ifdef _WIN32
#define TORCHFF_API __declspec(dllexport)
#elif defined(__x86_64__) && defined(__GNUC__) && defined(__linux__)
#define TORCHFF_API __attribute__((visibility("default"), target_clones("avx2", "default")))
#else
#define TORCHFF_API __attribute__((visibility("default")))
#endif

#endif
