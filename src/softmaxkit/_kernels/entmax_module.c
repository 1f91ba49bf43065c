/*
 * entmax_module.c: Python entry points for the entmax kernels (entmax.h). Precision
 * follows the first array (float32 or float64); the others must match. The buffers
 * are taken through the shared seam (sk_pybuf.h: checked against rows * cols,
 * misaligned ones copied), then the GIL is released and the kernel of the SIMD
 * variant chosen at import runs (sk_isa.h).
 */
#include "sk_pybuf.h"
#include "entmax.h"

SK_ISA_TABLES(sk_entmax_kernels, variants);

/* The variant chosen at import. */
static const sk_entmax_kernels *K;
static int K_index;

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
    Py_ssize_t n = sk_count(rows, cols);
    if (n < 0 || check_alpha(alpha) < 0)
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
        K->entmax_f64(x, y, (size_t)rows, (size_t)cols, alpha, nt);
    else
        K->entmax_f32(x, y, (size_t)rows, (size_t)cols, alpha, nt);
    Py_END_ALLOW_THREADS
    sk_done(&s, 1);
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
    Py_ssize_t n = sk_count(rows, cols);
    if (n < 0 || check_alpha(alpha) < 0)
        return NULL;
    sk_bufs s = SK_BUFS_INIT;
    sk_kind k;
    void *y, *g, *o;
    if (sk_take(&s, yo, "y", SK_FLOAT, &k, n, SK_IN, &y) < 0 || sk_take(&s, go, "grad_output", k, NULL, n, SK_IN, &g) < 0 ||
        sk_take(&s, oo, "out", k, NULL, n, SK_OUT, &o) < 0) {
        sk_done(&s, 0);
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    if (k == SK_F64)
        K->entmax_backward_f64(y, g, o, (size_t)rows, (size_t)cols, alpha, nt);
    else
        K->entmax_backward_f32(y, g, o, (size_t)rows, (size_t)cols, alpha, nt);
    Py_END_ALLOW_THREADS
    sk_done(&s, 1);
    Py_RETURN_NONE;
}

/* simd_variant() -> str: the SIMD variant this module runs. */
static PyObject *py_simd_variant(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    return PyUnicode_FromString(sk_isa_names[K_index]);
}

static PyMethodDef methods[] = {
    {"entmax", py_entmax, METH_VARARGS, "entmax(x, out, rows, cols, alpha, nthreads)"},
    {"entmax_backward", py_entmax_backward, METH_VARARGS,
     "entmax_backward(y, grad_output, out, rows, cols, alpha, nthreads)"},
    {"simd_variant", py_simd_variant, METH_NOARGS, "simd_variant() -> str: the SIMD variant in use"},
    {"simd_variants", sk_py_simd_variants, METH_NOARGS, "simd_variants() -> tuple of str: those this CPU runs, best first"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT, "_entmax", "softmaxkit's entmax C kernels (private).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__entmax(void)
{
    K_index = sk_isa_select();
    if (K_index < 0)
        return NULL;
    K = variants[K_index];
    return PyModule_Create(&moduledef);
}
