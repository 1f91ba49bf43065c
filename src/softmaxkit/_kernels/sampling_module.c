/*
 * sampling_module.c: Python entry points for the sampling kernels (sampling.h).
 * Precision follows x (float32 or float64); keys, idx and status are int64 (keys
 * reinterpreted as uint64); logp, probs and work are float64. The buffers are
 * taken through the shared seam (sk_pybuf.h: checked against the sizes the kernel
 * will use, misaligned ones copied), then the GIL is released and the kernel of the
 * SIMD variant chosen at import runs (sk_isa.h).
 */
#include "sk_pybuf.h"
#include "sampling.h"

SK_ISA_TABLES(sk_sampling_kernels, variants);

/* The variant chosen at import. */
static const sk_sampling_kernels *K;
static int K_index;

/* The workspace: 2 * cols doubles per thread that can hold a row at once (at most
 * one per row; a row split over the threads uses one). */
static Py_ssize_t work_items(Py_ssize_t rows, Py_ssize_t cols, int nt)
{
    Py_ssize_t slots = rows < (Py_ssize_t)nt ? rows : (Py_ssize_t)nt;
    return sk_count(2 * (slots < 1 ? 1 : slots), cols);
}

static int check_opts(sk_sample_opts *o, int nt)
{
    if (!(o->inv_t > 0.0) || !isfinite(o->inv_t) || o->top_k < 0 || !(o->top_p > 0.0 && o->top_p <= 1.0) ||
        !(o->min_p >= 0.0 && o->min_p <= 1.0) || nt < 1) {
        PyErr_SetString(PyExc_ValueError, "softmaxkit kernels: bad sampling options");
        return -1;
    }
    return 0;
}

/* sample(x, keys, key_mode, idx, logp, status, rows, cols, ndraws, inv_t, top_k, top_p, min_p, work,
 *        nthreads) */
static PyObject *py_sample(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *xo, *ko, *io, *lo, *so, *wo;
    Py_ssize_t rows, cols, nd;
    sk_sample_opts o;
    long long top_k;
    int nt, key_mode;
    if (!PyArg_ParseTuple(args, "OOiOOOnnndLddOi", &xo, &ko, &key_mode, &io, &lo, &so, &rows, &cols, &nd, &o.inv_t,
                          &top_k, &o.top_p, &o.min_p, &wo, &nt))
        return NULL;
    if (key_mode != SK_KEYS_GIVEN && key_mode != SK_KEYS_SEED && key_mode != SK_KEYS_ROW_SEEDS) {
        PyErr_SetString(PyExc_ValueError, "softmaxkit kernels: bad key_mode");
        return NULL;
    }
    o.top_k = (int64_t)top_k;
    Py_ssize_t n = sk_count(rows, cols), ndr = sk_count(rows, nd), nw = work_items(rows, cols, nt);
    if (n < 0 || ndr < 0 || nw < 0 || check_opts(&o, nt) < 0)
        return NULL;
    sk_bufs s = SK_BUFS_INIT;
    sk_kind k;
    void *x, *keys, *idx, *logp, *status, *work;
    if (sk_take(&s, xo, "x", SK_FLOAT, &k, n, SK_IN, &x) < 0 ||
        sk_take(&s, ko, "keys", SK_I64, NULL, key_mode == SK_KEYS_SEED ? 1 : rows, SK_IN, &keys) < 0 ||
        sk_take(&s, io, "idx", SK_I64, NULL, ndr, SK_OUT, &idx) < 0 ||
        sk_take(&s, lo, "logp", SK_F64, NULL, ndr, SK_OUT, &logp) < 0 ||
        sk_take(&s, so, "status", SK_I64, NULL, rows, SK_OUT, &status) < 0 ||
        sk_take(&s, wo, "work", SK_F64, NULL, nw, SK_OUT, &work) < 0) {
        sk_done(&s, 0);
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    if (k == SK_F64)
        K->sample_f64(x, keys, key_mode, idx, logp, status, (size_t)rows, (size_t)cols, (size_t)nd, &o, work, nt);
    else
        K->sample_f32(x, keys, key_mode, idx, logp, status, (size_t)rows, (size_t)cols, (size_t)nd, &o, work, nt);
    Py_END_ALLOW_THREADS
    sk_done(&s, 1);
    Py_RETURN_NONE;
}

/* sample_probs(x, probs, status, rows, cols, inv_t, top_k, top_p, min_p, work, nthreads) */
static PyObject *py_sample_probs(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *xo, *po, *so, *wo;
    Py_ssize_t rows, cols;
    sk_sample_opts o;
    long long top_k;
    int nt;
    if (!PyArg_ParseTuple(args, "OOOnndLddOi", &xo, &po, &so, &rows, &cols, &o.inv_t, &top_k, &o.top_p, &o.min_p,
                          &wo, &nt))
        return NULL;
    o.top_k = (int64_t)top_k;
    Py_ssize_t n = sk_count(rows, cols), nw = work_items(rows, cols, nt);
    if (n < 0 || nw < 0 || check_opts(&o, nt) < 0)
        return NULL;
    sk_bufs s = SK_BUFS_INIT;
    sk_kind k;
    void *x, *probs, *status, *work;
    if (sk_take(&s, xo, "x", SK_FLOAT, &k, n, SK_IN, &x) < 0 ||
        sk_take(&s, po, "probs", SK_F64, NULL, n, SK_OUT, &probs) < 0 ||
        sk_take(&s, so, "status", SK_I64, NULL, rows, SK_OUT, &status) < 0 ||
        sk_take(&s, wo, "work", SK_F64, NULL, nw, SK_OUT, &work) < 0) {
        sk_done(&s, 0);
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    if (k == SK_F64)
        K->sample_probs_f64(x, probs, status, (size_t)rows, (size_t)cols, &o, work, nt);
    else
        K->sample_probs_f32(x, probs, status, (size_t)rows, (size_t)cols, &o, work, nt);
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

/* uniform(key, counter) -> float: the generator's value, for the NumPy twin's tests. */
static PyObject *py_uniform(PyObject *self, PyObject *args)
{
    (void)self;
    unsigned long long key, counter;
    if (!PyArg_ParseTuple(args, "KK", &key, &counter))
        return NULL;
    return PyFloat_FromDouble(sk_uniform((uint64_t)key, (uint64_t)counter));
}

static PyMethodDef methods[] = {
    {"sample", py_sample, METH_VARARGS,
     "sample(x, keys, key_mode, idx, logp, status, rows, cols, ndraws, inv_t, top_k, top_p, min_p, work, nthreads)"},
    {"sample_probs", py_sample_probs, METH_VARARGS,
     "sample_probs(x, probs, status, rows, cols, inv_t, top_k, top_p, min_p, work, nthreads)"},
    {"uniform", py_uniform, METH_VARARGS, "uniform(key, counter) -> float"},
    {"simd_variant", py_simd_variant, METH_NOARGS, "simd_variant() -> str: the SIMD variant in use"},
    {"simd_variants", sk_py_simd_variants, METH_NOARGS, "simd_variants() -> tuple of str: those this CPU runs, best first"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT, "_sampling", "softmaxkit's sampling C kernels (private).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__sampling(void)
{
    K_index = sk_isa_select();
    if (K_index < 0)
        return NULL;
    K = variants[K_index];
    return PyModule_Create(&moduledef);
}
