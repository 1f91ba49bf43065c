/*
 * sk_pybuf.h: the seam between Python and the kernels, shared by every extension
 * module of softmaxkit. Arrays arrive through the buffer protocol (any C-contiguous
 * NumPy array), and each one is checked here against the element count and type the
 * kernel will use, so a bug in the Python layer raises instead of reading or
 * writing out of bounds. The kernels run with the GIL released.
 */
#ifndef SK_PYBUF_H
#define SK_PYBUF_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

typedef enum { SK_F32 = 0, SK_F64 = 1, SK_I64 = 2 } sk_kind;

/* The kind of a buffer's items: 'f' float32, 'd' float64, 'l'/'q' int64. */
static int sk_kind_of(const Py_buffer *b, sk_kind *kind)
{
    const char *f = b->format ? b->format : "B";
    if (f[0] == '<' || f[0] == '=' || f[0] == '@')
        f++;
    if (strcmp(f, "d") == 0 && b->itemsize == 8) { *kind = SK_F64; return 0; }
    if (strcmp(f, "f") == 0 && b->itemsize == 4) { *kind = SK_F32; return 0; }
    if ((strcmp(f, "l") == 0 || strcmp(f, "q") == 0) && b->itemsize == 8) { *kind = SK_I64; return 0; }
    PyErr_Format(PyExc_TypeError, "softmaxkit kernels: unsupported buffer format '%s'", f);
    return -1;
}

/* Gets a C-contiguous buffer holding at least `count` items of `kind`.
 * Returns 0, or -1 with an exception set (and nothing to release). */
static int sk_get(PyObject *obj, Py_buffer *b, const char *name, sk_kind kind, Py_ssize_t count, int writable)
{
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, b, flags) < 0)
        return -1;
    sk_kind got;
    if (sk_kind_of(b, &got) < 0)
        goto fail;
    if (got != kind) {
        PyErr_Format(PyExc_TypeError, "softmaxkit kernels: '%s' has the wrong element type", name);
        goto fail;
    }
    if (count < 0 || b->len / b->itemsize < count) {
        PyErr_Format(PyExc_ValueError, "softmaxkit kernels: '%s' holds %zd items, %zd needed",
                     name, b->len / b->itemsize, count);
        goto fail;
    }
    return 0;
fail:
    PyBuffer_Release(b);
    return -1;
}

/* The kind of the first array argument, which decides the kernel's precision. */
static int sk_float_kind(PyObject *obj, sk_kind *kind)
{
    Py_buffer b;
    if (PyObject_GetBuffer(obj, &b, PyBUF_FORMAT) < 0)
        return -1;
    int rc = sk_kind_of(&b, kind);
    PyBuffer_Release(&b);
    if (rc == 0 && *kind == SK_I64) {
        PyErr_SetString(PyExc_TypeError, "softmaxkit kernels: expected a float32 or float64 buffer");
        return -1;
    }
    return rc;
}

/* rows * cols without overflow, or -1 with an exception set. */
static Py_ssize_t sk_count(Py_ssize_t rows, Py_ssize_t cols)
{
    if (rows < 0 || cols < 0 || (cols != 0 && rows > PY_SSIZE_T_MAX / cols)) {
        PyErr_SetString(PyExc_ValueError, "softmaxkit kernels: bad shape");
        return -1;
    }
    return rows * cols;
}

#endif
