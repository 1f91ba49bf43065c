/*
 * sk_pybuf.h: the seam between Python and the kernels, shared by every extension
 * module of softmaxkit, so that all of them take buffers the same way.
 *
 * A call collects its arrays in an sk_bufs set: sk_take() gets each one through
 * the buffer protocol (any C-contiguous buffer: NumPy arrays, memoryviews) and
 * checks it against the element type and count the kernel will use, so a bug in
 * the Python layer raises instead of reading or writing out of bounds. Then the
 * module releases the GIL, runs the kernel, and sk_done() releases the set.
 *
 * Misaligned buffers (np.frombuffer(..., offset=1) and the like) are legal
 * C-contiguous buffers, but a double * that is not 8-byte aligned is undefined
 * behaviour in C, and vector code may assume the element alignment. So sk_take()
 * copies such a buffer into an aligned one (its whole extent, in and out), and
 * sk_done() copies a writable one back: the kernels only ever see aligned
 * pointers, and the aligned case costs nothing.
 */
#ifndef SK_PYBUF_H
#define SK_PYBUF_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#include "sk_isa.h"

/* SK_FLOAT: float32 or float64; SK_FLOAT16: those or a 16-bit one (uint16 bits are
 * bfloat16, 'e' float16). */
typedef enum { SK_F32 = 0, SK_F64 = 1, SK_I64 = 2, SK_BF16 = 3, SK_F16 = 4, SK_FLOAT = 5, SK_FLOAT16 = 6 } sk_kind;

static const char *const sk_kind_names[] = {"float32", "float64", "int64", "bfloat16 (uint16)", "float16",
                                             "float32 or float64", "float32, float64, bfloat16 (uint16) or float16"};

/* The kind of a buffer's items: 'f' float32, 'd' float64, 'l'/'q' int64, 'H' uint16
 * (the bits of bfloat16), 'e' float16 (native byte order). Returns 0, or -1 with a TypeError set. */
static inline int sk_kind_of(const Py_buffer *b, const char *name, sk_kind *kind)
{
    const char *f = b->format ? b->format : "B";
    if (f[0] == '<' || f[0] == '=' || f[0] == '@')
        f++;
    if (strcmp(f, "d") == 0 && b->itemsize == 8) { *kind = SK_F64; return 0; }
    if (strcmp(f, "f") == 0 && b->itemsize == 4) { *kind = SK_F32; return 0; }
    if (strcmp(f, "H") == 0 && b->itemsize == 2) { *kind = SK_BF16; return 0; }
    if (strcmp(f, "e") == 0 && b->itemsize == 2) { *kind = SK_F16; return 0; }
    if ((strcmp(f, "l") == 0 || strcmp(f, "q") == 0) && b->itemsize == 8) { *kind = SK_I64; return 0; }
    PyErr_Format(PyExc_TypeError, "softmaxkit kernels: '%s' has the unsupported buffer format '%s'", name, f);
    return -1;
}

#define SK_MAX_BUFS 8

/* The buffers of one call, released together by sk_done(). */
typedef struct {
    Py_buffer view[SK_MAX_BUFS];
    void *copy[SK_MAX_BUFS];    /* the aligned copy of a misaligned buffer, or NULL */
    size_t bytes[SK_MAX_BUFS];  /* the copy's size */
    int writable[SK_MAX_BUFS];
    int n;
} sk_bufs;

#define SK_BUFS_INIT {.n = 0}

enum { SK_IN = 0, SK_OUT = 1, SK_OPTIONAL = 2 };

/* Releases every buffer of the set; with copy_back, first copies each writable
 * aligned copy back into its buffer. Needs the GIL. */
static inline void sk_done(sk_bufs *s, int copy_back)
{
    for (int i = 0; i < s->n; i++) {
        if (s->copy[i]) {
            if (copy_back && s->writable[i])
                memcpy(s->view[i].buf, s->copy[i], s->bytes[i]);
            PyMem_Free(s->copy[i]);
        }
        PyBuffer_Release(&s->view[i]);
    }
    s->n = 0;
}

/*
 * Adds obj's buffer to the set and points *data at its items (or at their aligned
 * copy). `kind` is the element type required, or SK_FLOAT (float32 or float64) or
 * SK_FLOAT16 (those or a 16-bit one), the kind found being stored in *kind_out (may
 * be NULL otherwise). `count` is the
 * number of items the kernel will touch. flags: SK_OUT for a buffer the kernel
 * writes, SK_OPTIONAL to accept None (then *data is NULL).
 * Returns 0, or -1 with an exception set (the set is left for sk_done to release).
 */
static inline int sk_take(sk_bufs *s, PyObject *obj, const char *name, sk_kind kind, sk_kind *kind_out,
                   Py_ssize_t count, int flags, void **data)
{
    *data = NULL;
    if (obj == Py_None && (flags & SK_OPTIONAL))
        return 0;
    if (s->n >= SK_MAX_BUFS) {
        PyErr_SetString(PyExc_SystemError, "softmaxkit kernels: too many buffers");
        return -1;
    }
    Py_buffer *b = &s->view[s->n];
    int writable = (flags & SK_OUT) != 0;
    if (PyObject_GetBuffer(obj, b, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0)) < 0)
        return -1;
    s->copy[s->n] = NULL;
    s->writable[s->n] = writable;
    s->n++;
    sk_kind got;
    if (sk_kind_of(b, name, &got) < 0)
        return -1;
    int ok = kind == SK_FLOAT ? got == SK_F32 || got == SK_F64
             : kind == SK_FLOAT16 ? got != SK_I64 : got == kind;
    if (!ok) {
        PyErr_Format(PyExc_TypeError, "softmaxkit kernels: '%s' has the wrong element type (%s, %s needed)", name,
                     sk_kind_names[got], sk_kind_names[kind]);
        return -1;
    }
    if (kind_out)
        *kind_out = got;
    if (count < 0 || b->len / b->itemsize < count) {
        PyErr_Format(PyExc_ValueError, "softmaxkit kernels: '%s' holds %zd items, %zd needed",
                     name, b->len / b->itemsize, count);
        return -1;
    }
    *data = b->buf;
    if ((uintptr_t)b->buf % (uintptr_t)b->itemsize != 0 && count > 0) {
        size_t bytes = (size_t)count * (size_t)b->itemsize;
        void *c = PyMem_Malloc(bytes); /* malloc's alignment suits every item type */
        if (c == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        memcpy(c, b->buf, bytes);
        s->copy[s->n - 1] = c;
        s->bytes[s->n - 1] = bytes;
        *data = c;
    }
    return 0;
}

/* rows * cols without overflow, or -1 with an exception set. */
static inline Py_ssize_t sk_count(Py_ssize_t rows, Py_ssize_t cols)
{
    if (rows < 0 || cols < 0 || (cols != 0 && rows > PY_SSIZE_T_MAX / cols)) {
        PyErr_Format(PyExc_ValueError, "softmaxkit kernels: bad shape (%zd, %zd)", rows, cols);
        return -1;
    }
    return rows * cols;
}

/* The float32 scratch of the 16-bit row kernels (half_body.h): None, or, for a
 * 16-bit kind, float32 space for `cols` values per thread the call can use:
 * min(nthreads, rows), at least 1. Other kinds take None only. */
static inline int sk_take_work(sk_bufs *s, PyObject *obj, sk_kind kind, Py_ssize_t rows, Py_ssize_t cols,
                               int nthreads, void **data)
{
    *data = NULL;
    if (obj == Py_None)
        return 0;
    if (kind != SK_BF16 && kind != SK_F16) {
        PyErr_SetString(PyExc_TypeError,
                        "softmaxkit kernels: 'work' is for 16-bit softmax and cross-entropy gradients only");
        return -1;
    }
    Py_ssize_t threads = nthreads < 1 ? 1 : nthreads;
    if (threads > rows)
        threads = rows < 1 ? 1 : rows;
    Py_ssize_t count = sk_count(threads, cols);
    if (count < 0)
        return -1;
    return sk_take(s, obj, "work", SK_F32, NULL, count, SK_OUT, data);
}

/* -------------------------------------------------------------- SIMD variants */

/* The index of the SIMD variant to run (sk_isa.h), from SOFTMAXKIT_SIMD; or -1 with
 * a ValueError naming the variable, its value and the choices. Called once, at
 * import. */
static inline int sk_isa_select(void)
{
    const char *want = getenv("SOFTMAXKIT_SIMD");
    int i = sk_isa_pick(want);
    if (i >= 0)
        return i;
    char choices[160] = "auto";
    for (int k = 0; k < SK_ISA_COUNT; k++) {
        if (i == -2 && !sk_isa_supported(k))
            continue;
        strncat(choices, ", ", sizeof choices - strlen(choices) - 1);
        strncat(choices, sk_isa_names[k], sizeof choices - strlen(choices) - 1);
    }
    if (i == -1)
        PyErr_Format(PyExc_ValueError, "SOFTMAXKIT_SIMD=%.100s is not a SIMD variant of this build; "
                     "expected one of: %s", want, choices);
    else
        PyErr_Format(PyExc_ValueError, "SOFTMAXKIT_SIMD=%.100s: this CPU cannot run that variant; "
                     "it runs: %s", want, choices);
    return -1;
}

/* simd_variants() -> tuple of str: the variants of this build that this CPU runs,
 * best first. Shared by the modules as a METH_NOARGS function. */
static inline PyObject *sk_py_simd_variants(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    PyObject *list = PyList_New(0);
    for (int k = 0; list && k < SK_ISA_COUNT; k++) {
        if (!sk_isa_supported(k))
            continue;
        PyObject *name = PyUnicode_FromString(sk_isa_names[k]);
        int rc = name ? PyList_Append(list, name) : -1;
        Py_XDECREF(name);
        if (rc < 0)
            Py_CLEAR(list);
    }
    PyObject *t = list ? PyList_AsTuple(list) : NULL;
    Py_XDECREF(list);
    return t;
}

#endif
