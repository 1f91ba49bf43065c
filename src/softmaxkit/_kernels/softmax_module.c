/*
 * softmax_module.c: Python entry points for the softmax family (softmax.h).
 * Each function takes its arrays, the block shape and the thread count, checks
 * the buffers (sk_pybuf.h), releases the GIL and runs the kernel.
 * Precision follows the first array: float32 or float64; all arrays must match.
 */
#include "sk_pybuf.h"
#include "softmax.h"

/* softmax / log_softmax: (x, out, rows, cols, inv_t, nthreads) */
static PyObject *rows_forward(PyObject *args, int log_out)
{
    PyObject *xo, *yo;
    Py_ssize_t rows, cols;
    double inv_t;
    int nt;
    if (!PyArg_ParseTuple(args, "OOnndi", &xo, &yo, &rows, &cols, &inv_t, &nt))
        return NULL;
    sk_kind k;
    Py_ssize_t n = sk_count(rows, cols);
    if (n < 0 || sk_float_kind(xo, &k) < 0)
        return NULL;
    Py_buffer x, y;
    if (sk_get(xo, &x, "x", k, n, 0) < 0)
        return NULL;
    if (sk_get(yo, &y, "out", k, n, 1) < 0) {
        PyBuffer_Release(&x);
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    if (k == SK_F64) {
        if (log_out)
            sk_log_softmax_f64(x.buf, y.buf, (size_t)rows, (size_t)cols, inv_t, nt);
        else
            sk_softmax_f64(x.buf, y.buf, (size_t)rows, (size_t)cols, inv_t, nt);
    } else {
        if (log_out)
            sk_log_softmax_f32(x.buf, y.buf, (size_t)rows, (size_t)cols, (float)inv_t, nt);
        else
            sk_softmax_f32(x.buf, y.buf, (size_t)rows, (size_t)cols, (float)inv_t, nt);
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&x);
    PyBuffer_Release(&y);
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
    sk_kind k;
    Py_ssize_t n = sk_count(rows, cols);
    if (n < 0 || sk_float_kind(xo, &k) < 0)
        return NULL;
    Py_buffer x, y;
    if (sk_get(xo, &x, "x", k, n, 0) < 0)
        return NULL;
    if (sk_get(yo, &y, "out", k, rows, 1) < 0) {
        PyBuffer_Release(&x);
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    if (k == SK_F64)
        sk_logsumexp_f64(x.buf, y.buf, (size_t)rows, (size_t)cols, nt);
    else
        sk_logsumexp_f32(x.buf, y.buf, (size_t)rows, (size_t)cols, nt);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&x);
    PyBuffer_Release(&y);
    Py_RETURN_NONE;
}

/* Two inputs, one output, n = rows * cols: (a, g, out, rows, cols, nthreads).
 * which: 0 softmax_backward, 1 log_softmax_backward, 2 sigmoid_backward. */
static PyObject *binary_op(PyObject *args, int which)
{
    PyObject *ao, *go, *yo;
    Py_ssize_t rows, cols;
    int nt;
    if (!PyArg_ParseTuple(args, "OOOnni", &ao, &go, &yo, &rows, &cols, &nt))
        return NULL;
    sk_kind k;
    Py_ssize_t n = sk_count(rows, cols);
    if (n < 0 || sk_float_kind(ao, &k) < 0)
        return NULL;
    Py_buffer a, g, y;
    if (sk_get(ao, &a, "input", k, n, 0) < 0)
        return NULL;
    if (sk_get(go, &g, "grad_output", k, n, 0) < 0) {
        PyBuffer_Release(&a);
        return NULL;
    }
    if (sk_get(yo, &y, "out", k, n, 1) < 0) {
        PyBuffer_Release(&a);
        PyBuffer_Release(&g);
        return NULL;
    }
    size_t r = (size_t)rows, c = (size_t)cols;
    Py_BEGIN_ALLOW_THREADS
    if (k == SK_F64) {
        if (which == 0) sk_softmax_backward_f64(a.buf, g.buf, y.buf, r, c, nt);
        else if (which == 1) sk_log_softmax_backward_f64(a.buf, g.buf, y.buf, r, c, nt);
        else sk_sigmoid_backward_f64(a.buf, g.buf, y.buf, r * c, nt);
    } else {
        if (which == 0) sk_softmax_backward_f32(a.buf, g.buf, y.buf, r, c, nt);
        else if (which == 1) sk_log_softmax_backward_f32(a.buf, g.buf, y.buf, r, c, nt);
        else sk_sigmoid_backward_f32(a.buf, g.buf, y.buf, r * c, nt);
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&a);
    PyBuffer_Release(&g);
    PyBuffer_Release(&y);
    Py_RETURN_NONE;
}

static PyObject *py_softmax_backward(PyObject *self, PyObject *args) { (void)self; return binary_op(args, 0); }
static PyObject *py_log_softmax_backward(PyObject *self, PyObject *args) { (void)self; return binary_op(args, 1); }
static PyObject *py_sigmoid_backward(PyObject *self, PyObject *args) { (void)self; return binary_op(args, 2); }

/* Elementwise: (x, out, n, nthreads). which: 0 sigmoid, 1 log_sigmoid, 2 softplus. */
static PyObject *unary_op(PyObject *args, int which)
{
    PyObject *xo, *yo;
    Py_ssize_t n;
    int nt;
    if (!PyArg_ParseTuple(args, "OOni", &xo, &yo, &n, &nt))
        return NULL;
    sk_kind k;
    if (sk_count(n, 1) < 0 || sk_float_kind(xo, &k) < 0)
        return NULL;
    Py_buffer x, y;
    if (sk_get(xo, &x, "x", k, n, 0) < 0)
        return NULL;
    if (sk_get(yo, &y, "out", k, n, 1) < 0) {
        PyBuffer_Release(&x);
        return NULL;
    }
    size_t m = (size_t)n;
    Py_BEGIN_ALLOW_THREADS
    if (k == SK_F64) {
        if (which == 0) sk_sigmoid_f64(x.buf, y.buf, m, nt);
        else if (which == 1) sk_log_sigmoid_f64(x.buf, y.buf, m, nt);
        else sk_softplus_f64(x.buf, y.buf, m, nt);
    } else {
        if (which == 0) sk_sigmoid_f32(x.buf, y.buf, m, nt);
        else if (which == 1) sk_log_sigmoid_f32(x.buf, y.buf, m, nt);
        else sk_softplus_f32(x.buf, y.buf, m, nt);
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&x);
    PyBuffer_Release(&y);
    Py_RETURN_NONE;
}

static PyObject *py_sigmoid(PyObject *self, PyObject *args) { (void)self; return unary_op(args, 0); }
static PyObject *py_log_sigmoid(PyObject *self, PyObject *args) { (void)self; return unary_op(args, 1); }
static PyObject *py_softplus(PyObject *self, PyObject *args) { (void)self; return unary_op(args, 2); }

/* Whether the extension was built with OpenMP (threads over rows). */
static PyObject *py_has_openmp(PyObject *self, PyObject *args)
{
    (void)self;
    (void)args;
#ifdef _OPENMP
    Py_RETURN_TRUE;
#else
    Py_RETURN_FALSE;
#endif
}

static PyMethodDef methods[] = {
    {"softmax", py_softmax, METH_VARARGS, "softmax(x, out, rows, cols, inv_t, nthreads)"},
    {"log_softmax", py_log_softmax, METH_VARARGS, "log_softmax(x, out, rows, cols, inv_t, nthreads)"},
    {"logsumexp", py_logsumexp, METH_VARARGS, "logsumexp(x, out, rows, cols, nthreads)"},
    {"softmax_backward", py_softmax_backward, METH_VARARGS, "softmax_backward(p, g, out, rows, cols, nthreads)"},
    {"log_softmax_backward", py_log_softmax_backward, METH_VARARGS, "log_softmax_backward(lp, g, out, rows, cols, nthreads)"},
    {"sigmoid_backward", py_sigmoid_backward, METH_VARARGS, "sigmoid_backward(s, g, out, rows, cols, nthreads)"},
    {"sigmoid", py_sigmoid, METH_VARARGS, "sigmoid(x, out, n, nthreads)"},
    {"log_sigmoid", py_log_sigmoid, METH_VARARGS, "log_sigmoid(x, out, n, nthreads)"},
    {"softplus", py_softplus, METH_VARARGS, "softplus(x, out, n, nthreads)"},
    {"has_openmp", py_has_openmp, METH_NOARGS, "has_openmp() -> bool"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT, "_softmax", "softmaxkit's softmax-family C kernels (private).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__softmax(void) { return PyModule_Create(&moduledef); }
