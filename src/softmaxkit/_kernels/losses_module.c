/*
 * losses_module.c: Python entry points for the cross-entropy kernels (losses.h).
 * Each function takes its arrays, the block shape and the thread count, takes every
 * buffer with the size and type the kernel will use (sk_pybuf.h), releases the GIL
 * and runs the kernel of the SIMD variant chosen at import (sk_isa.h). Precision
 * follows x: float32 or float64; q, weight and grad must match it; target is int64;
 * loss, roww and gscale are float64. ce_hard also takes 16-bit x (bfloat16 as uint16
 * bits, or float16) with grad of the same type and float32 weight. Optional arrays (weight, gscale, grad) may be
 * None; grad None runs the forward alone.
 */
#include "sk_pybuf.h"
#include "losses.h"

SK_ISA_TABLES(sk_losses_kernels, variants);

/* The variant chosen at import. */
static const sk_losses_kernels *K;
static int K_index;

/* ce_hard(x, target, weight, ignore_index, has_ignore, eps, loss, roww, gscale,
 *         gscale_c, grad, rows, cols, nthreads[, work[, lse]]); work: None, or for
 *         16-bit x with grad float32 scratch (sk_take_work); lse: None, or for 16-bit x
 *         float64 (rows), each row's logsumexp (for ce_hard_grad_lse) */
static PyObject *py_ce_hard(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *xo, *to, *wo, *lo, *ro, *go, *gro, *wko = Py_None, *lseo = Py_None;
    long long ignore_index;
    int has_ignore, nt;
    double eps, gscale_c;
    Py_ssize_t rows, cols;
    if (!PyArg_ParseTuple(args, "OOOLpdOOOdOnni|OO", &xo, &to, &wo, &ignore_index, &has_ignore, &eps,
                          &lo, &ro, &go, &gscale_c, &gro, &rows, &cols, &nt, &wko, &lseo))
        return NULL;
    Py_ssize_t n = sk_count(rows, cols);
    if (n < 0)
        return NULL;
    sk_bufs s = SK_BUFS_INIT;
    sk_kind k;
    void *x, *t, *w, *loss, *roww, *gscale, *grad, *work = NULL, *lse = NULL;
    if (sk_take(&s, xo, "x", SK_FLOAT16, &k, n, SK_IN, &x) < 0 ||
        sk_take(&s, to, "target", SK_I64, NULL, rows, SK_IN, &t) < 0 ||
        sk_take(&s, wo, "weight", k == SK_BF16 || k == SK_F16 ? SK_F32 : k, NULL, cols, SK_IN | SK_OPTIONAL, &w) < 0 ||
        sk_take(&s, lo, "loss", SK_F64, NULL, rows, SK_OUT, &loss) < 0 ||
        sk_take(&s, ro, "roww", SK_F64, NULL, rows, SK_OUT, &roww) < 0 ||
        sk_take(&s, go, "gscale", SK_F64, NULL, rows, SK_IN | SK_OPTIONAL, &gscale) < 0 ||
        sk_take(&s, gro, "grad", k, NULL, n, SK_OUT | SK_OPTIONAL, &grad) < 0 ||
        sk_take_work(&s, wko, k, rows, cols, nt, &work) < 0 ||
        (lseo != Py_None && k != SK_BF16 && k != SK_F16 &&
         (PyErr_SetString(PyExc_TypeError, "softmaxkit kernels: 'lse' is for 16-bit 'x' only"), 1)) ||
        sk_take(&s, lseo, "lse", SK_F64, NULL, rows, SK_OUT | SK_OPTIONAL, &lse) < 0) {
        sk_done(&s, 0);
        return NULL;
    }
    size_t r = (size_t)rows, c = (size_t)cols;
    int64_t ii = (int64_t)ignore_index;
    Py_BEGIN_ALLOW_THREADS
    if (k == SK_F64)
        K->ce_hard_f64(x, t, w, ii, has_ignore, eps, loss, roww, gscale, gscale_c, grad, r, c, nt);
    else if (k == SK_F32)
        K->ce_hard_f32(x, t, w, ii, has_ignore, eps, loss, roww, gscale, gscale_c, grad, r, c, nt);
    else if (k == SK_BF16)
        K->ce_hard_bf16(x, t, w, ii, has_ignore, eps, loss, roww, gscale, gscale_c, grad, r, c, nt, work, lse);
    else
        K->ce_hard_f16(x, t, w, ii, has_ignore, eps, loss, roww, gscale, gscale_c, grad, r, c, nt, work, lse);
    Py_END_ALLOW_THREADS
    sk_done(&s, 1);
    Py_RETURN_NONE;
}

/* ce_hard_grad_lse(x, target, weight, ignore_index, has_ignore, eps, lse, gscale,
 *                  gscale_c, grad, rows, cols, nthreads): 16-bit x and grad only;
 *                  lse float64 (rows) from ce_hard */
static PyObject *py_ce_hard_grad_lse(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *xo, *to, *wo, *lseo, *go, *gro;
    long long ignore_index;
    int has_ignore, nt;
    double eps, gscale_c;
    Py_ssize_t rows, cols;
    if (!PyArg_ParseTuple(args, "OOOLpdOOdOnni", &xo, &to, &wo, &ignore_index, &has_ignore, &eps, &lseo, &go,
                          &gscale_c, &gro, &rows, &cols, &nt))
        return NULL;
    Py_ssize_t n = sk_count(rows, cols);
    if (n < 0)
        return NULL;
    sk_bufs s = SK_BUFS_INIT;
    sk_kind k;
    void *x, *t, *w, *lse, *gscale, *grad;
    if (sk_take(&s, xo, "x", SK_FLOAT16, &k, n, SK_IN, &x) < 0) {
        sk_done(&s, 0);
        return NULL;
    }
    if (k != SK_BF16 && k != SK_F16) {
        PyErr_SetString(PyExc_TypeError, "softmaxkit kernels: ce_hard_grad_lse takes 16-bit 'x' only");
        sk_done(&s, 0);
        return NULL;
    }
    if (sk_take(&s, to, "target", SK_I64, NULL, rows, SK_IN, &t) < 0 ||
        sk_take(&s, wo, "weight", SK_F32, NULL, cols, SK_IN | SK_OPTIONAL, &w) < 0 ||
        sk_take(&s, lseo, "lse", SK_F64, NULL, rows, SK_IN, &lse) < 0 ||
        sk_take(&s, go, "gscale", SK_F64, NULL, rows, SK_IN | SK_OPTIONAL, &gscale) < 0 ||
        sk_take(&s, gro, "grad", k, NULL, n, SK_OUT, &grad) < 0) {
        sk_done(&s, 0);
        return NULL;
    }
    size_t r = (size_t)rows, c = (size_t)cols;
    int64_t ii = (int64_t)ignore_index;
    Py_BEGIN_ALLOW_THREADS
    (k == SK_BF16 ? K->ce_hard_grad_lse_bf16 : K->ce_hard_grad_lse_f16)(x, t, w, ii, has_ignore, eps, lse, gscale,
                                                                      gscale_c, grad, r, c, nt);
    Py_END_ALLOW_THREADS
    sk_done(&s, 1);
    Py_RETURN_NONE;
}

/* ce_soft(x, q, weight, eps, loss, gscale, gscale_c, grad, rows, cols, nthreads) */
static PyObject *py_ce_soft(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *xo, *qo, *wo, *lo, *go, *gro;
    int nt;
    double eps, gscale_c;
    Py_ssize_t rows, cols;
    if (!PyArg_ParseTuple(args, "OOOdOOdOnni", &xo, &qo, &wo, &eps, &lo, &go, &gscale_c, &gro,
                          &rows, &cols, &nt))
        return NULL;
    Py_ssize_t n = sk_count(rows, cols);
    if (n < 0)
        return NULL;
    sk_bufs s = SK_BUFS_INIT;
    sk_kind k;
    void *x, *q, *w, *loss, *gscale, *grad;
    if (sk_take(&s, xo, "x", SK_FLOAT, &k, n, SK_IN, &x) < 0 ||
        sk_take(&s, qo, "q", k, NULL, n, SK_IN, &q) < 0 ||
        sk_take(&s, wo, "weight", k, NULL, cols, SK_IN | SK_OPTIONAL, &w) < 0 ||
        sk_take(&s, lo, "loss", SK_F64, NULL, rows, SK_OUT, &loss) < 0 ||
        sk_take(&s, go, "gscale", SK_F64, NULL, rows, SK_IN | SK_OPTIONAL, &gscale) < 0 ||
        sk_take(&s, gro, "grad", k, NULL, n, SK_OUT | SK_OPTIONAL, &grad) < 0) {
        sk_done(&s, 0);
        return NULL;
    }
    size_t r = (size_t)rows, c = (size_t)cols;
    Py_BEGIN_ALLOW_THREADS
    if (k == SK_F64)
        K->ce_soft_f64(x, q, w, eps, loss, gscale, gscale_c, grad, r, c, nt);
    else
        K->ce_soft_f32(x, q, w, eps, loss, gscale, gscale_c, grad, r, c, nt);
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
    {"ce_hard", py_ce_hard, METH_VARARGS,
     "ce_hard(x, target, weight, ignore_index, has_ignore, eps, loss, roww, gscale, gscale_c, grad, rows, cols, nthreads[, work[, lse]])"},
    {"ce_hard_grad_lse", py_ce_hard_grad_lse, METH_VARARGS,
     "ce_hard_grad_lse(x, target, weight, ignore_index, has_ignore, eps, lse, gscale, gscale_c, grad, rows, cols, nthreads)"},
    {"ce_soft", py_ce_soft, METH_VARARGS,
     "ce_soft(x, q, weight, eps, loss, gscale, gscale_c, grad, rows, cols, nthreads)"},
    {"simd_variant", py_simd_variant, METH_NOARGS, "simd_variant() -> str: the SIMD variant in use"},
    {"simd_variants", sk_py_simd_variants, METH_NOARGS, "simd_variants() -> tuple of str: those this CPU runs, best first"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT, "_losses", "softmaxkit's cross-entropy C kernels (private).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__losses(void)
{
    K_index = sk_isa_select();
    if (K_index < 0)
        return NULL;
    K = variants[K_index];
    return PyModule_Create(&moduledef);
}
