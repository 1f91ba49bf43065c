/*
 * entmax_module.c: Python entry points for the entmax kernels (entmax.h). Precision
 * follows the first array (float32 or float64); the others must match. The buffers
 * are checked against rows * cols (sk_pybuf.h), then the GIL is released.
 */
#include "sk_pybuf.h"
#include "entmax.h"

static int check_alpha(double alpha)
{
    if (!(alpha > 1.0) || !isfinite(alpha)) {
        PyErr_SetString(PyExc_ValueError, "softmaxkit kernels: alpha must be finite and > 1");
        return -1;
    }
    return 0;
}

/* entmax(x, out, rows, cols, alpha, nthreads) */
static PyObject *py_entmax(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *xo, *yo;
    Py_ssize_t rows, cols;
    double alpha;
    int nt;
    if (!PyArg_ParseTuple(args, "OOnndi", &xo, &yo, &rows, &cols, &alpha, &nt))
        return NULL;
    sk_kind k;
    Py_ssize_t n = sk_count(rows, cols);
    if (n < 0 || check_alpha(alpha) < 0 || sk_float_kind(xo, &k) < 0)
        return NULL;
    Py_buffer x, y;
    if (sk_get(xo, &x, "x", k, n, 0) < 0)
        return NULL;
    if (sk_get(yo, &y, "out", k, n, 1) < 0) {
        PyBuffer_Release(&x);
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    if (k == SK_F64)
        sk_entmax_f64(x.buf, y.buf, (size_t)rows, (size_t)cols, alpha, nt);
    else
        sk_entmax_f32(x.buf, y.buf, (size_t)rows, (size_t)cols, alpha, nt);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&x);
    PyBuffer_Release(&y);
    Py_RETURN_NONE;
}

/* entmax_backward(y, g, out, rows, cols, alpha, nthreads) */
static PyObject *py_entmax_backward(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *yo, *go, *oo;
    Py_ssize_t rows, cols;
    double alpha;
    int nt;
    if (!PyArg_ParseTuple(args, "OOOnndi", &yo, &go, &oo, &rows, &cols, &alpha, &nt))
        return NULL;
    sk_kind k;
    Py_ssize_t n = sk_count(rows, cols);
    if (n < 0 || check_alpha(alpha) < 0 || sk_float_kind(yo, &k) < 0)
        return NULL;
    Py_buffer y, g, o;
    if (sk_get(yo, &y, "y", k, n, 0) < 0)
        return NULL;
    if (sk_get(go, &g, "grad_output", k, n, 0) < 0) {
        PyBuffer_Release(&y);
        return NULL;
    }
    if (sk_get(oo, &o, "out", k, n, 1) < 0) {
        PyBuffer_Release(&y);
        PyBuffer_Release(&g);
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    if (k == SK_F64)
        sk_entmax_backward_f64(y.buf, g.buf, o.buf, (size_t)rows, (size_t)cols, alpha, nt);
    else
        sk_entmax_backward_f32(y.buf, g.buf, o.buf, (size_t)rows, (size_t)cols, alpha, nt);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&y);
    PyBuffer_Release(&g);
    PyBuffer_Release(&o);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"entmax", py_entmax, METH_VARARGS, "entmax(x, out, rows, cols, alpha, nthreads)"},
    {"entmax_backward", py_entmax_backward, METH_VARARGS,
     "entmax_backward(y, grad_output, out, rows, cols, alpha, nthreads)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT, "_entmax", "softmaxkit's entmax C kernels (private).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__entmax(void) { return PyModule_Create(&moduledef); }
