/*
 * torchff._kernels: the C kernels of every op family (the other files in this folder) as one
 * Python extension module. Each entry point of torchff_kernels.h is a Python function of the
 * same name without the torchff_ prefix (leaky_mask_f32, ...), called by the op modules of
 * torchff/kernels/ with the data pointers of contiguous tensors (ints; None for NULL), Python
 * ints for int64_t and floats (or ints) for double, in the C order.
 *
 * Why not ctypes: ctypes converts every argument by its argtypes on each call, which at the
 * sizes MLPs train at costs more than the kernel itself (benchmarks/ops.py, "train" group). A
 * METH_FASTCALL function reads its arguments straight from the caller's stack. Each call
 * releases the GIL while the kernel runs, as ctypes does.
 *
 * Each function checks its argument count and each argument's type (TypeError, naming the
 * function and the argument), never the pointers: the op modules pass valid arrays.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

#include "torchff_kernels.h"

typedef union {
    void *p;
    int64_t i;
    double d;
} torchff_arg;

/* Read args[0..nargs) into a[] by `format`, one letter per argument: p a pointer (an int, or
   None for NULL), i an int64_t (an int), d a double (a float or an int); anything with
   __index__ counts as an int. 0, or -1 with an exception set (TypeError naming the argument, or
   OverflowError for an int out of range). */
static int parse(const char *name, const char *format, PyObject *const *args, Py_ssize_t nargs,
                 torchff_arg *a) {
    const Py_ssize_t want = (Py_ssize_t)strlen(format);
    if (nargs != want) {
        PyErr_Format(PyExc_TypeError, "%s() takes %zd arguments (%zd given)", name, want, nargs);
        return -1;
    }
    for (Py_ssize_t k = 0; k < nargs; ++k) {
        PyObject *v = args[k];
        int failed = 0;
        switch (format[k]) {
        case 'p':
            if (v == Py_None) {
                a[k].p = NULL;
                break;
            }
            if (!PyIndex_Check(v)) goto wrong;
            a[k].p = PyLong_AsVoidPtr(v);
            failed = a[k].p == NULL && PyErr_Occurred();
            break;
        case 'i':
            if (!PyIndex_Check(v)) goto wrong;
            a[k].i = PyLong_AsLongLong(v);
            failed = a[k].i == -1 && PyErr_Occurred();
            break;
        default: /* 'd' */
            if (!PyFloat_Check(v) && !PyIndex_Check(v)) goto wrong;
            a[k].d = PyFloat_AsDouble(v);
            failed = a[k].d == -1.0 && PyErr_Occurred();
            break;
        }
        if (failed) return -1;
        continue;
    wrong:
        PyErr_Format(PyExc_TypeError, "%s(): argument %zd must be %s, not %s", name, k + 1,
                     format[k] == 'p' ? "a pointer (int) or None" : format[k] == 'i' ? "int" : "float",
                     Py_TYPE(v)->tp_name);
        return -1;
    }
    return 0;
}

#define P(k) a[k].p
#define I(k) a[k].i
#define D(k) a[k].d

/* Run CALL with the GIL released; return None, an int or a float by RET. */
#define TORCHFF_RETURN_void(CALL)                                                                  \
    Py_BEGIN_ALLOW_THREADS CALL;                                                                   \
    Py_END_ALLOW_THREADS Py_RETURN_NONE
#define TORCHFF_RETURN_int(CALL)                                                                   \
    int64_t r_;                                                                                    \
    Py_BEGIN_ALLOW_THREADS r_ = CALL;                                                              \
    Py_END_ALLOW_THREADS return PyLong_FromLongLong(r_)
#define TORCHFF_RETURN_float(CALL)                                                                 \
    double r_;                                                                                     \
    Py_BEGIN_ALLOW_THREADS r_ = CALL;                                                              \
    Py_END_ALLOW_THREADS return PyFloat_FromDouble(r_)

/* py_NAME: torchff_NAME as a METH_FASTCALL function; ARGS the C call's arguments, read from a[]
   by FORMAT */
#define TORCHFF_WRAP(NAME, RET, FORMAT, ARGS)                                                      \
    static PyObject *py_##NAME(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {          \
        torchff_arg a[sizeof(FORMAT)];                                                             \
        (void)self;                                                                                \
        (void)a;                                                                                   \
        if (parse(#NAME, FORMAT, args, nargs, a) < 0) return NULL;                                 \
        TORCHFF_RETURN_##RET(torchff_##NAME ARGS);                                                 \
    }
/* both dtypes of a kernel */
#define TORCHFF_WRAP2(NAME, RET, FORMAT, ARGS)                                                     \
    TORCHFF_WRAP(NAME##_f32, RET, FORMAT, ARGS)                                                    \
    TORCHFF_WRAP(NAME##_f64, RET, FORMAT, ARGS)

TORCHFF_WRAP2(leaky_mask, void, "pppdi", (P(0), P(1), P(2), D(3), I(4)))
TORCHFF_WRAP2(leaky_backward, void, "pppdi", (P(0), P(1), P(2), D(3), I(4)))
TORCHFF_WRAP2(abs_sign, void, "pppi", (P(0), P(1), P(2), I(3)))
TORCHFF_WRAP2(times_small, void, "pppi", (P(0), P(1), P(2), I(3)))
TORCHFF_WRAP2(step, void, "ppi", (P(0), P(1), I(2)))
TORCHFF_WRAP2(step_inside, void, "pppi", (P(0), P(1), P(2), I(3)))
TORCHFF_WRAP2(prelu, void, "ppppiii", (P(0), P(1), P(2), P(3), I(4), I(5), I(6)))
TORCHFF_WRAP2(prelu_backward_mask, void, "ppppiii", (P(0), P(1), P(2), P(3), I(4), I(5), I(6)))
TORCHFF_WRAP2(prelu_backward, int, "pppppiii", (P(0), P(1), P(2), P(3), P(4), I(5), I(6), I(7)))
TORCHFF_WRAP2(maxout, void, "pppiii", (P(0), P(1), P(2), I(3), I(4), I(5)))
TORCHFF_WRAP2(maxout_backward, void, "pppiii", (P(0), P(1), P(2), I(3), I(4), I(5)))
TORCHFF_WRAP2(ce_rows, int, "ppppidpppdiidi",
              (P(0), P(1), P(2), P(3), I(4), D(5), P(6), P(7), P(8), D(9), I(10), I(11), D(12), I(13)))
TORCHFF_WRAP2(ce_weight_sum, float, "ppiii", (P(0), P(1), I(2), I(3), I(4)))
TORCHFF_WRAP2(ce_probs, void, "pppppidi", (P(0), P(1), P(2), P(3), P(4), I(5), D(6), I(7)))
TORCHFF_WRAP2(ce_probs_backward, void, "pidpppppidi",
              (P(0), I(1), D(2), P(3), P(4), P(5), P(6), P(7), I(8), D(9), I(10)))
TORCHFF_WRAP2(softplus, void, "ppddi", (P(0), P(1), D(2), D(3), I(4)))
TORCHFF_WRAP2(bce_with_logits, void, "ppppppdi", (P(0), P(1), P(2), P(3), P(4), P(5), D(6), I(7)))
TORCHFF_WRAP2(bce_with_logits_backward, void, "pppidppppi",
              (P(0), P(1), P(2), I(3), D(4), P(5), P(6), P(7), P(8), I(9)))
TORCHFF_WRAP2(regression, void, "pppppiiddi", (P(0), P(1), P(2), P(3), P(4), I(5), I(6), D(7), D(8), I(9)))
TORCHFF_WRAP2(regression_backward, void, "pppidpppidi",
              (P(0), P(1), P(2), I(3), D(4), P(5), P(6), P(7), I(8), D(9), I(10)))
TORCHFF_WRAP(split, int, "iiip", (I(0), I(1), I(2), P(3)))
TORCHFF_WRAP(openmp, int, "", ())

#define TORCHFF_METHOD(NAME) {#NAME, (PyCFunction)(void (*)(void))py_##NAME, METH_FASTCALL, NULL},
#define TORCHFF_METHOD2(NAME) TORCHFF_METHOD(NAME##_f32) TORCHFF_METHOD(NAME##_f64)

static PyMethodDef torchff_kernels_methods[] = {
    TORCHFF_METHOD2(leaky_mask) TORCHFF_METHOD2(leaky_backward) TORCHFF_METHOD2(abs_sign)
    TORCHFF_METHOD2(times_small) TORCHFF_METHOD2(step) TORCHFF_METHOD2(step_inside)
    TORCHFF_METHOD2(prelu) TORCHFF_METHOD2(prelu_backward_mask) TORCHFF_METHOD2(prelu_backward)
    TORCHFF_METHOD2(maxout) TORCHFF_METHOD2(maxout_backward)
    TORCHFF_METHOD2(ce_rows) TORCHFF_METHOD2(ce_weight_sum) TORCHFF_METHOD2(ce_probs)
    TORCHFF_METHOD2(ce_probs_backward)
    TORCHFF_METHOD2(softplus)
    TORCHFF_METHOD2(bce_with_logits) TORCHFF_METHOD2(bce_with_logits_backward)
    TORCHFF_METHOD2(regression) TORCHFF_METHOD2(regression_backward)
    TORCHFF_METHOD(split) TORCHFF_METHOD(openmp)
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef torchff_kernels_module = {
    PyModuleDef_HEAD_INIT, "torchff._kernels",
    "torchff's C kernels (torchff/csrc), called by torchff.kernels with the data pointers of "
    "contiguous tensors.",
    -1, torchff_kernels_methods,
};

PyMODINIT_FUNC PyInit__kernels(void) { return PyModule_Create(&torchff_kernels_module); }
