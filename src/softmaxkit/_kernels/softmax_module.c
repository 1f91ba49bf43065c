/*
 * softmax_module.c: Python entry points for the softmax family (softmax.h).
 * Each function takes its arrays, the block shape and the thread count, takes the
 * buffers (sk_pybuf.h), releases the GIL and runs the kernel of the SIMD variant
 * chosen at import (sk_isa.h). Precision follows the first array: float32 or
 * float64 (softmax and log_softmax also take bfloat16, as uint16 bits, and float16);
 * all arrays must match it.
 */
#include "sk_pybuf.h"
#include "softmax.h"
#include "sk_half.h"

SK_ISA_TABLES(sk_softmax_kernels, variants);

/* The variant chosen at import. */
static const sk_softmax_kernels *K;
static int K_index;

/* softmax / log_softmax: (x, out, rows, cols, inv_t, nthreads[, work]); x and out
 * float32, float64, or 16-bit: uint16 holding bfloat16 bits, or float16; work: None,
 * or for 16-bit softmax float32 scratch of sk_work_count(rows, cols, nthreads) values */
static PyObject *rows_forward(PyObject *args, int log_out)
{
    PyObject *xo, *yo, *wko = Py_None;
    Py_ssize_t rows, cols;
    double inv_t;
    int nt;
    if (!PyArg_ParseTuple(args, "OOnndi|O", &xo, &yo, &rows, &cols, &inv_t, &nt, &wko))
        return NULL;
    Py_ssize_t n = sk_count(rows, cols);
    if (n < 0)
        return NULL;
    sk_bufs s = SK_BUFS_INIT;
    sk_kind k;
    void *x, *y, *work = NULL;
    if (sk_take(&s, xo, "x", SK_FLOAT16, &k, n, SK_IN, &x) < 0 || sk_take(&s, yo, "out", k, NULL, n, SK_OUT, &y) < 0 ||
        sk_take_work(&s, wko, log_out ? SK_F32 : k, rows, cols, nt, &work) < 0) {
        sk_done(&s, 0);
        return NULL;
    }
    size_t r = (size_t)rows, c = (size_t)cols;
    Py_BEGIN_ALLOW_THREADS
    if (k == SK_F64)
        (log_out ? K->log_softmax_f64 : K->softmax_f64)(x, y, r, c, inv_t, nt);
    else if (k == SK_F32)
        (log_out ? K->log_softmax_f32 : K->softmax_f32)(x, y, r, c, (float)inv_t, nt);
    else if (k == SK_BF16)
        log_out ? K->log_softmax_bf16(x, y, r, c, (float)inv_t, nt) : K->softmax_bf16(x, y, r, c, (float)inv_t, nt, work);
    else
        log_out ? K->log_softmax_f16(x, y, r, c, (float)inv_t, nt) : K->softmax_f16(x, y, r, c, (float)inv_t, nt, work);
    Py_END_ALLOW_THREADS
    sk_done(&s, 1);
    Py_RETURN_NONE;
}

static PyObject *py_softmax(PyObject *self, PyObject *args) { (void)self; return rows_forward(args, 0); }
static PyObject *py_log_softmax(PyObject *self, PyObject *args) { (void)self; return rows_forward(args, 1); }

/* logsumexp: (x, out, rows, cols, nthreads); out holds rows values */
static PyObject *py_logsumexp(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *xo, *yo;
    Py_ssize_t rows, cols;
    int nt;
    if (!PyArg_ParseTuple(args, "OOnni", &xo, &yo, &rows, &cols, &nt))
        return NULL;
    Py_ssize_t n = sk_count(rows, cols);
    if (n < 0)
        return NULL;
    sk_bufs s = SK_BUFS_INIT;
    sk_kind k;
    void *x, *y;
    if (sk_take(&s, xo, "x", SK_FLOAT, &k, n, SK_IN, &x) < 0 || sk_take(&s, yo, "out", k, NULL, rows, SK_OUT, &y) < 0) {
        sk_done(&s, 0);
        return NULL;
    }
    size_t r = (size_t)rows, c = (size_t)cols;
    Py_BEGIN_ALLOW_THREADS
    if (k == SK_F64)
        K->logsumexp_f64(x, y, r, c, nt);
    else
        K->logsumexp_f32(x, y, r, c, nt);
    Py_END_ALLOW_THREADS
    sk_done(&s, 1);
    Py_RETURN_NONE;
}

/* Row backward passes: (a, g, out, rows, cols, nthreads). log_out: log_softmax's. */
static PyObject *rows_backward(PyObject *args, int log_out)
{
    PyObject *ao, *go, *yo;
    Py_ssize_t rows, cols;
    int nt;
    if (!PyArg_ParseTuple(args, "OOOnni", &ao, &go, &yo, &rows, &cols, &nt))
        return NULL;
    Py_ssize_t n = sk_count(rows, cols);
    if (n < 0)
        return NULL;
    sk_bufs s = SK_BUFS_INIT;
    sk_kind k;
    void *a, *g, *y;
    if (sk_take(&s, ao, log_out ? "log_probs" : "probs", SK_FLOAT, &k, n, SK_IN, &a) < 0 ||
        sk_take(&s, go, "grad_output", k, NULL, n, SK_IN, &g) < 0 ||
        sk_take(&s, yo, "out", k, NULL, n, SK_OUT, &y) < 0) {
        sk_done(&s, 0);
        return NULL;
    }
    size_t r = (size_t)rows, c = (size_t)cols;
    Py_BEGIN_ALLOW_THREADS
    if (k == SK_F64)
        (log_out ? K->log_softmax_backward_f64 : K->softmax_backward_f64)(a, g, y, r, c, nt);
    else
        (log_out ? K->log_softmax_backward_f32 : K->softmax_backward_f32)(a, g, y, r, c, nt);
    Py_END_ALLOW_THREADS
    sk_done(&s, 1);
    Py_RETURN_NONE;
}

static PyObject *py_softmax_backward(PyObject *self, PyObject *args) { (void)self; return rows_backward(args, 0); }
static PyObject *py_log_softmax_backward(PyObject *self, PyObject *args) { (void)self; return rows_backward(args, 1); }

/* sigmoid_backward: (s, g, out, n, nthreads) */
static PyObject *py_sigmoid_backward(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *ao, *go, *yo;
    Py_ssize_t n;
    int nt;
    if (!PyArg_ParseTuple(args, "OOOni", &ao, &go, &yo, &n, &nt))
        return NULL;
    if (sk_count(n, 1) < 0)
        return NULL;
    sk_bufs s = SK_BUFS_INIT;
    sk_kind k;
    void *a, *g, *y;
    if (sk_take(&s, ao, "s", SK_FLOAT, &k, n, SK_IN, &a) < 0 ||
        sk_take(&s, go, "grad_output", k, NULL, n, SK_IN, &g) < 0 ||
        sk_take(&s, yo, "out", k, NULL, n, SK_OUT, &y) < 0) {
        sk_done(&s, 0);
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    if (k == SK_F64)
        K->sigmoid_backward_f64(a, g, y, (size_t)n, nt);
    else
        K->sigmoid_backward_f32(a, g, y, (size_t)n, nt);
    Py_END_ALLOW_THREADS
    sk_done(&s, 1);
    Py_RETURN_NONE;
}

/* Elementwise: (x, out, n, nthreads). which: 0 sigmoid, 1 log_sigmoid, 2 softplus. */
static PyObject *unary_op(PyObject *args, int which)
{
    PyObject *xo, *yo;
    Py_ssize_t n;
    int nt;
    if (!PyArg_ParseTuple(args, "OOni", &xo, &yo, &n, &nt))
        return NULL;
    if (sk_count(n, 1) < 0)
        return NULL;
    sk_bufs s = SK_BUFS_INIT;
    sk_kind k;
    void *x, *y;
    if (sk_take(&s, xo, "x", SK_FLOAT, &k, n, SK_IN, &x) < 0 || sk_take(&s, yo, "out", k, NULL, n, SK_OUT, &y) < 0) {
        sk_done(&s, 0);
        return NULL;
    }
    size_t m = (size_t)n;
    Py_BEGIN_ALLOW_THREADS
    if (k == SK_F64)
        (which == 0 ? K->sigmoid_f64 : which == 1 ? K->log_sigmoid_f64 : K->softplus_f64)(x, y, m, nt);
    else
        (which == 0 ? K->sigmoid_f32 : which == 1 ? K->log_sigmoid_f32 : K->softplus_f32)(x, y, m, nt);
    Py_END_ALLOW_THREADS
    sk_done(&s, 1);
    Py_RETURN_NONE;
}

static PyObject *py_sigmoid(PyObject *self, PyObject *args) { (void)self; return unary_op(args, 0); }
static PyObject *py_log_sigmoid(PyObject *self, PyObject *args) { (void)self; return unary_op(args, 1); }
static PyObject *py_softplus(PyObject *self, PyObject *args) { (void)self; return unary_op(args, 2); }

/* softplus_scaled: (x, out, n, beta, threshold, nthreads); threshold +inf: none */
static PyObject *py_softplus_scaled(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *xo, *yo;
    Py_ssize_t n;
    double beta, th;
    int nt;
    if (!PyArg_ParseTuple(args, "OOnddi", &xo, &yo, &n, &beta, &th, &nt))
        return NULL;
    if (sk_count(n, 1) < 0)
        return NULL;
    sk_bufs s = SK_BUFS_INIT;
    sk_kind k;
    void *x, *y;
    if (sk_take(&s, xo, "x", SK_FLOAT, &k, n, SK_IN, &x) < 0 || sk_take(&s, yo, "out", k, NULL, n, SK_OUT, &y) < 0) {
        sk_done(&s, 0);
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    if (k == SK_F64)
        K->softplus_scaled_f64(x, y, (size_t)n, beta, th, nt);
    else
        K->softplus_scaled_f32(x, y, (size_t)n, (float)beta, (float)th, nt);
    Py_END_ALLOW_THREADS
    sk_done(&s, 1);
    Py_RETURN_NONE;
}

/* Backward passes from the input: softplus_backward (x, g, out, n, beta, threshold,
 * nthreads) and log_sigmoid_backward (x, g, out, n, nthreads). */
static PyObject *input_backward(PyObject *args, int softplus)
{
    PyObject *ao, *go, *yo;
    Py_ssize_t n;
    double beta = 1.0, th = INFINITY;
    int nt;
    if (softplus ? !PyArg_ParseTuple(args, "OOOnddi", &ao, &go, &yo, &n, &beta, &th, &nt)
                 : !PyArg_ParseTuple(args, "OOOni", &ao, &go, &yo, &n, &nt))
        return NULL;
    if (sk_count(n, 1) < 0)
        return NULL;
    sk_bufs s = SK_BUFS_INIT;
    sk_kind k;
    void *a, *g, *y;
    if (sk_take(&s, ao, "x", SK_FLOAT, &k, n, SK_IN, &a) < 0 ||
        sk_take(&s, go, "grad_output", k, NULL, n, SK_IN, &g) < 0 ||
        sk_take(&s, yo, "out", k, NULL, n, SK_OUT, &y) < 0) {
        sk_done(&s, 0);
        return NULL;
    }
    size_t m = (size_t)n;
    Py_BEGIN_ALLOW_THREADS
    if (softplus && k == SK_F64)
        K->softplus_backward_f64(a, g, y, m, beta, th, nt);
    else if (softplus)
        K->softplus_backward_f32(a, g, y, m, (float)beta, (float)th, nt);
    else if (k == SK_F64)
        K->log_sigmoid_backward_f64(a, g, y, m, nt);
    else
        K->log_sigmoid_backward_f32(a, g, y, m, nt);
    Py_END_ALLOW_THREADS
    sk_done(&s, 1);
    Py_RETURN_NONE;
}

static PyObject *py_softplus_backward(PyObject *self, PyObject *args) { (void)self; return input_backward(args, 1); }
static PyObject *py_log_sigmoid_backward(PyObject *self, PyObject *args) { (void)self; return input_backward(args, 0); }

/* sigmoid_focal (x, t, out, n, alpha, gamma, nthreads) and sigmoid_focal_backward
 * (x, t, g, out, n, alpha, gamma, nthreads) */
static PyObject *focal(PyObject *args, int backward)
{
    PyObject *xo, *to, *go = NULL, *yo;
    Py_ssize_t n;
    double alpha, gamma;
    int nt;
    if (backward ? !PyArg_ParseTuple(args, "OOOOnddi", &xo, &to, &go, &yo, &n, &alpha, &gamma, &nt)
                 : !PyArg_ParseTuple(args, "OOOnddi", &xo, &to, &yo, &n, &alpha, &gamma, &nt))
        return NULL;
    if (sk_count(n, 1) < 0)
        return NULL;
    sk_bufs s = SK_BUFS_INIT;
    sk_kind k;
    void *x, *t, *g = NULL, *y;
    if (sk_take(&s, xo, "x", SK_FLOAT, &k, n, SK_IN, &x) < 0 || sk_take(&s, to, "t", k, NULL, n, SK_IN, &t) < 0 ||
        (backward && sk_take(&s, go, "grad_output", k, NULL, n, SK_IN, &g) < 0) ||
        sk_take(&s, yo, "out", k, NULL, n, SK_OUT, &y) < 0) {
        sk_done(&s, 0);
        return NULL;
    }
    size_t m = (size_t)n;
    Py_BEGIN_ALLOW_THREADS
    if (backward && k == SK_F64)
        K->sigmoid_focal_backward_f64(x, t, g, y, m, alpha, gamma, nt);
    else if (backward)
        K->sigmoid_focal_backward_f32(x, t, g, y, m, (float)alpha, (float)gamma, nt);
    else if (k == SK_F64)
        K->sigmoid_focal_f64(x, t, y, m, alpha, gamma, nt);
    else
        K->sigmoid_focal_f32(x, t, y, m, (float)alpha, (float)gamma, nt);
    Py_END_ALLOW_THREADS
    sk_done(&s, 1);
    Py_RETURN_NONE;
}

static PyObject *py_sigmoid_focal(PyObject *self, PyObject *args) { (void)self; return focal(args, 0); }
static PyObject *py_sigmoid_focal_backward(PyObject *self, PyObject *args) { (void)self; return focal(args, 1); }

/* multi_margin (x, target, loss, rows, cols, margin, p, nthreads) and
 * multi_margin_backward (x, target, g, out, rows, cols, margin, p, nthreads);
 * target int64 (rows), loss and g float64 (rows), p 1 or 2 */
static PyObject *margin_rows(PyObject *args, int backward)
{
    PyObject *xo, *to, *go = NULL, *yo;
    Py_ssize_t rows, cols;
    double margin;
    int p, nt;
    if (backward ? !PyArg_ParseTuple(args, "OOOOnndii", &xo, &to, &go, &yo, &rows, &cols, &margin, &p, &nt)
                 : !PyArg_ParseTuple(args, "OOOnndii", &xo, &to, &yo, &rows, &cols, &margin, &p, &nt))
        return NULL;
    if (p != 1 && p != 2) {
        PyErr_Format(PyExc_ValueError, "p must be 1 or 2, got %d", p);
        return NULL;
    }
    Py_ssize_t n = sk_count(rows, cols);
    if (n < 0)
        return NULL;
    sk_bufs s = SK_BUFS_INIT;
    sk_kind k;
    void *x, *t, *g = NULL, *y;
    if (sk_take(&s, xo, "x", SK_FLOAT, &k, n, SK_IN, &x) < 0 ||
        sk_take(&s, to, "target", SK_I64, NULL, rows, SK_IN, &t) < 0 ||
        (backward && sk_take(&s, go, "grad_output", SK_F64, NULL, rows, SK_IN, &g) < 0) ||
        sk_take(&s, yo, backward ? "out" : "loss", backward ? k : SK_F64, NULL, backward ? n : rows, SK_OUT, &y) < 0) {
        sk_done(&s, 0);
        return NULL;
    }
    size_t r = (size_t)rows, c = (size_t)cols;
    Py_BEGIN_ALLOW_THREADS
    if (backward && k == SK_F64)
        K->multi_margin_backward_f64(x, t, g, y, r, c, margin, p, nt);
    else if (backward)
        K->multi_margin_backward_f32(x, t, g, y, r, c, (float)margin, p, nt);
    else if (k == SK_F64)
        K->multi_margin_f64(x, t, y, r, c, margin, p, nt);
    else
        K->multi_margin_f32(x, t, y, r, c, (float)margin, p, nt);
    Py_END_ALLOW_THREADS
    sk_done(&s, 1);
    Py_RETURN_NONE;
}

static PyObject *py_multi_margin(PyObject *self, PyObject *args) { (void)self; return margin_rows(args, 0); }
static PyObject *py_multi_margin_backward(PyObject *self, PyObject *args) { (void)self; return margin_rows(args, 1); }

/* simd_variant() -> str: the SIMD variant this module runs. */
static PyObject *py_simd_variant(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    return PyUnicode_FromString(sk_isa_names[K_index]);
}

static PyMethodDef methods[] = {
    {"softmax", py_softmax, METH_VARARGS, "softmax(x, out, rows, cols, inv_t, nthreads)"},
    {"log_softmax", py_log_softmax, METH_VARARGS, "log_softmax(x, out, rows, cols, inv_t, nthreads)"},
    {"logsumexp", py_logsumexp, METH_VARARGS, "logsumexp(x, out, rows, cols, nthreads)"},
    {"softmax_backward", py_softmax_backward, METH_VARARGS, "softmax_backward(p, g, out, rows, cols, nthreads)"},
    {"log_softmax_backward", py_log_softmax_backward, METH_VARARGS, "log_softmax_backward(lp, g, out, rows, cols, nthreads)"},
    {"sigmoid_backward", py_sigmoid_backward, METH_VARARGS, "sigmoid_backward(s, g, out, n, nthreads)"},
    {"sigmoid", py_sigmoid, METH_VARARGS, "sigmoid(x, out, n, nthreads)"},
    {"log_sigmoid", py_log_sigmoid, METH_VARARGS, "log_sigmoid(x, out, n, nthreads)"},
    {"softplus", py_softplus, METH_VARARGS, "softplus(x, out, n, nthreads)"},
    {"softplus_scaled", py_softplus_scaled, METH_VARARGS, "softplus_scaled(x, out, n, beta, threshold, nthreads)"},
    {"softplus_backward", py_softplus_backward, METH_VARARGS, "softplus_backward(x, g, out, n, beta, threshold, nthreads)"},
    {"log_sigmoid_backward", py_log_sigmoid_backward, METH_VARARGS, "log_sigmoid_backward(x, g, out, n, nthreads)"},
    {"sigmoid_focal", py_sigmoid_focal, METH_VARARGS, "sigmoid_focal(x, t, out, n, alpha, gamma, nthreads)"},
    {"sigmoid_focal_backward", py_sigmoid_focal_backward, METH_VARARGS,
     "sigmoid_focal_backward(x, t, g, out, n, alpha, gamma, nthreads)"},
    {"multi_margin", py_multi_margin, METH_VARARGS, "multi_margin(x, target, loss, rows, cols, margin, p, nthreads)"},
    {"multi_margin_backward", py_multi_margin_backward, METH_VARARGS,
     "multi_margin_backward(x, target, g, out, rows, cols, margin, p, nthreads)"},
    {"simd_variant", py_simd_variant, METH_NOARGS, "simd_variant() -> str: the SIMD variant in use"},
    {"simd_variants", sk_py_simd_variants, METH_NOARGS, "simd_variants() -> tuple of str: those this CPU runs, best first"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT, "_softmax", "softmaxkit's softmax-family C kernels (private).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__softmax(void)
{
    K_index = sk_isa_select();
    if (K_index < 0)
        return NULL;
    K = variants[K_index];
    PyObject *m = PyModule_Create(&moduledef);
    if (m && PyModule_AddIntConstant(m, "HALF_STREAM_BYTES", (long)SK_HALF_STREAM_BYTES) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
