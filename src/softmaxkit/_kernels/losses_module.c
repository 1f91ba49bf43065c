/*
 * losses_module.c: Python entry points for the cross-entropy kernels (losses.h).
 * Each function takes its arrays, the block shape and the thread count, checks every
 * buffer against the size and type the kernel will use (sk_pybuf.h), releases the
 * GIL and runs the kernel. Precision follows x: float32 or float64; q, weight and
 * grad must match it; target is int64; loss, roww and gscale are float64.
 * Optional arrays (weight, gscale, grad) may be None.
 */
#include "sk_pybuf.h"
#include "losses.h"

/* The buffers of one call, released together. */
typedef struct {
    Py_buffer b[8];
    int n;
} bufset;

static void release_all(bufset *s)
{
    for (int i = 0; i < s->n; i++)
        PyBuffer_Release(&s->b[i]);
    s->n = 0;
}

/* Gets obj's buffer into the set (NULL data pointer for None when optional).
 * Returns 0, or -1 with an exception set. */
static int take(bufset *s, PyObject *obj, void **data, const char *name, sk_kind kind,
                Py_ssize_t count, int writable, int optional)
{
    if (obj == Py_None && optional) {
        *data = NULL;
        return 0;
    }
    if (sk_get(obj, &s->b[s->n], name, kind, count, writable) < 0)
        return -1;
    *data = s->b[s->n].buf;
    s->n++;
    return 0;
}

/* ce_hard(x, target, weight, ignore_index, has_ignore, eps, loss, roww, gscale,
 *         gscale_c, grad, rows, cols, nthreads): grad None for the forward alone. */
static PyObject *py_ce_hard(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *xo, *to, *wo, *lo, *ro, *go, *gro;
    long long ignore_index;
    int has_ignore, nt;
    double eps, gscale_c;
    Py_ssize_t rows, cols;
    if (!PyArg_ParseTuple(args, "OOOLpdOOOdOnni", &xo, &to, &wo, &ignore_index, &has_ignore, &eps,
                          &lo, &ro, &go, &gscale_c, &gro, &rows, &cols, &nt))
        return NULL;
    sk_kind k;
    Py_ssize_t n = sk_count(rows, cols);
    if (n < 0 || sk_float_kind(xo, &k) < 0)
        return NULL;
    bufset s = {.n = 0};
    void *x, *t, *w, *loss, *roww, *gscale, *grad;
    if (take(&s, xo, &x, "x", k, n, 0, 0) < 0 || take(&s, to, &t, "target", SK_I64, rows, 0, 0) < 0 ||
        take(&s, wo, &w, "weight", k, cols, 0, 1) < 0 || take(&s, lo, &loss, "loss", SK_F64, rows, 1, 0) < 0 ||
        take(&s, ro, &roww, "roww", SK_F64, rows, 1, 0) < 0 ||
        take(&s, go, &gscale, "gscale", SK_F64, rows, 0, 1) < 0 ||
        take(&s, gro, &grad, "grad", k, n, 1, 1) < 0) {
        release_all(&s);
        return NULL;
    }
    size_t r = (size_t)rows, c = (size_t)cols;
    int64_t ii = (int64_t)ignore_index;
    Py_BEGIN_ALLOW_THREADS
    if (k == SK_F64) {
        if (grad)
            sk_ce_hard_forward_backward_f64(x, t, w, ii, has_ignore, eps, loss, roww, gscale, gscale_c, grad, r, c, nt);
        else
            sk_ce_hard_forward_f64(x, t, w, ii, has_ignore, eps, loss, roww, r, c, nt);
    } else {
        if (grad)
            sk_ce_hard_forward_backward_f32(x, t, w, ii, has_ignore, eps, loss, roww, gscale, gscale_c, grad, r, c, nt);
        else
            sk_ce_hard_forward_f32(x, t, w, ii, has_ignore, eps, loss, roww, r, c, nt);
    }
    Py_END_ALLOW_THREADS
    release_all(&s);
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
    sk_kind k;
    Py_ssize_t n = sk_count(rows, cols);
    if (n < 0 || sk_float_kind(xo, &k) < 0)
        return NULL;
    bufset s = {.n = 0};
    void *x, *q, *w, *loss, *gscale, *grad;
    if (take(&s, xo, &x, "x", k, n, 0, 0) < 0 || take(&s, qo, &q, "q", k, n, 0, 0) < 0 ||
        take(&s, wo, &w, "weight", k, cols, 0, 1) < 0 || take(&s, lo, &loss, "loss", SK_F64, rows, 1, 0) < 0 ||
        take(&s, go, &gscale, "gscale", SK_F64, rows, 0, 1) < 0 ||
        take(&s, gro, &grad, "grad", k, n, 1, 1) < 0) {
        release_all(&s);
        return NULL;
    }
    size_t r = (size_t)rows, c = (size_t)cols;
    Py_BEGIN_ALLOW_THREADS
    if (k == SK_F64) {
        if (grad)
            sk_ce_soft_forward_backward_f64(x, q, w, eps, loss, gscale, gscale_c, grad, r, c, nt);
        else
            sk_ce_soft_forward_f64(x, q, w, eps, loss, r, c, nt);
    } else {
        if (grad)
            sk_ce_soft_forward_backward_f32(x, q, w, eps, loss, gscale, gscale_c, grad, r, c, nt);
        else
            sk_ce_soft_forward_f32(x, q, w, eps, loss, r, c, nt);
    }
    Py_END_ALLOW_THREADS
    release_all(&s);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"ce_hard", py_ce_hard, METH_VARARGS,
     "ce_hard(x, target, weight, ignore_index, has_ignore, eps, loss, roww, gscale, gscale_c, grad, rows, cols, nthreads)"},
    {"ce_soft", py_ce_soft, METH_VARARGS,
     "ce_soft(x, q, weight, eps, loss, gscale, gscale_c, grad, rows, cols, nthreads)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT, "_losses", "softmaxkit's cross-entropy C kernels (private).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__losses(void) { return PyModule_Create(&moduledef); }
