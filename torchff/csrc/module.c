/*
 * torchff._kernels: the C kernels of every op family (the other files in this folder) in one
 * shared library. torchff.kernels._c loads it with ctypes; this file only makes it importable
 * as a Python module too (`import torchff._kernels`), with no functions of its own.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

static struct PyModuleDef torchff_kernels_module = {
    PyModuleDef_HEAD_INIT, "torchff._kernels",
    "torchff's C kernels, called through ctypes by torchff.kernels._c (no Python functions).", -1, NULL,
};

PyMODINIT_FUNC PyInit__kernels(void) { return PyModule_Create(&torchff_kernels_module); }
