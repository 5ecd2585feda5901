/* encoder_runtime._scencoder: CPython binding of the host encoder kernel (csrc/sc_host_encoder.c).
 *
 *   encode(samples, dtype, sizes, block, c_in, weight, bias, shift, code_max, out) -> None
 *       samples: C-contiguous (n, *sizes, c_in) of dtype 0 uint8 / 1 int16 / 2 uint16;
 *       weight int8 (c_lat, c_in, *block), bias / shift int32 (c_lat,); out: writable int8
 *       buffer (n, c_lat, *grid) that receives the codes.
 *   isa() -> str: the instruction set the kernel runs with here.
 *   limit_isa(level) -> str: run at most level 0 (16-byte vectors), 1 (AVX2), 2 (AVX-512) or 3
 *       (AVX-512 VNNI), for
 *       tests of every kernel on one machine; returns isa().
 *
 * Errors: ValueError naming the argument and the expected size. The GIL is released while
 * encoding.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "sc_host_encoder.h"

/* A tuple of 1..SC_HE_MAX_DIMS positive ints into dst; returns its length or 0 with an error. */
static Py_ssize_t dims_arg(PyObject *seq, const char *name, uint32_t *dst)
{
    Py_ssize_t n = PyTuple_Check(seq) ? PyTuple_Size(seq) : -1;
    if (n < 1 || n > SC_HE_MAX_DIMS) {
        PyErr_Format(PyExc_ValueError, "_scencoder.encode: %s must be a tuple of 1 to %d ints",
                     name, SC_HE_MAX_DIMS);
        return 0;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned long v = PyLong_AsUnsignedLong(PyTuple_GetItem(seq, i));
        if (PyErr_Occurred() || v == 0 || v > 0x7FFFFFFFul) {
            PyErr_Clear();
            PyErr_Format(PyExc_ValueError, "_scencoder.encode: %s[%zd] must be an int in 1..2**31-1",
                         name, i);
            return 0;
        }
        dst[i] = (uint32_t)v;
    }
    return n;
}

static int size_is(const Py_buffer *b, unsigned long long want, const char *name)
{
    if ((unsigned long long)b->len != want) {
        PyErr_Format(PyExc_ValueError, "_scencoder.encode: %s holds %zd bytes, expected %llu",
                     name, b->len, want);
        return 0;
    }
    return 1;
}

static PyObject *py_encode(PyObject *self, PyObject *args)
{
    Py_buffer x, w, b, s, out;
    PyObject *sizes, *blocks, *res = NULL;
    int dtype, code_max;
    unsigned int c_in;
    sc_he_args_t a = {0};
    (void)self;
    if (!PyArg_ParseTuple(args, "y*iOOIy*y*y*iw*", &x, &dtype, &sizes, &blocks, &c_in, &w, &b, &s,
                          &code_max, &out))
        return NULL;
    Py_ssize_t d = dims_arg(sizes, "sizes", a.size), db = d ? dims_arg(blocks, "block", a.block) : 0;
    if (!d || !db) goto done;
    if (d != db) {
        PyErr_Format(PyExc_ValueError, "_scencoder.encode: sizes has %zd axes, block %zd", d, db);
        goto done;
    }
    if (dtype < SC_HE_U8 || dtype > SC_HE_U16 || c_in == 0 || code_max < 1 || code_max > 127) {
        PyErr_Format(PyExc_ValueError, "_scencoder.encode: dtype must be 0..2 (got %d), c_in > 0 "
                     "(got %u), code_max 1..127 (got %d)", dtype, c_in, code_max);
        goto done;
    }
    unsigned long long taps = c_in, values = c_in, blocks_per_item = 1;
    for (Py_ssize_t i = 0; i < d; i++) {
        if (a.size[i] % a.block[i]) {
            PyErr_Format(PyExc_ValueError, "_scencoder.encode: sizes[%zd] = %u is not a multiple "
                         "of block[%zd] = %u", i, a.size[i], i, a.block[i]);
            goto done;
        }
        taps *= a.block[i], values *= a.size[i], blocks_per_item *= a.size[i] / a.block[i];
    }
    if (s.len % 4 || s.len == 0 || s.len / 4 > 256) {
        PyErr_Format(PyExc_ValueError, "_scencoder.encode: shift holds %zd bytes, expected 4 "
                     "per latent channel (1 to 256 channels)", s.len);
        goto done;
    }
    unsigned long long c_lat = (unsigned long long)s.len / 4, esize = dtype == SC_HE_U8 ? 1 : 2;
    unsigned long long item = values * esize;
    if (x.len == 0 || (unsigned long long)x.len % item) {
        PyErr_Format(PyExc_ValueError, "_scencoder.encode: samples holds %zd bytes, expected a "
                     "multiple of %llu (one item)", x.len, item);
        goto done;
    }
    a.n = (uint32_t)((unsigned long long)x.len / item);
    if (!size_is(&w, c_lat * taps, "weight") || !size_is(&b, c_lat * 4, "bias")
        || !size_is(&out, a.n * c_lat * blocks_per_item, "out"))
        goto done;
    a.dtype = dtype, a.dims = (uint32_t)d, a.c_in = c_in, a.c_lat = (uint32_t)c_lat;
    a.weight = w.buf, a.bias = b.buf, a.shift = s.buf, a.code_max = code_max;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = sc_he_encode(&a, x.buf, out.buf);
    Py_END_ALLOW_THREADS
    if (rc == SC_HE_ENOMEM)
        PyErr_NoMemory();
    else if (rc != SC_HE_OK)
        PyErr_Format(PyExc_ValueError, "_scencoder.encode: arguments refused (status %d)", rc);
    else
        res = Py_NewRef(Py_None);
done:
    PyBuffer_Release(&x), PyBuffer_Release(&w), PyBuffer_Release(&b), PyBuffer_Release(&s);
    PyBuffer_Release(&out);
    return res;
}

static PyObject *py_isa(PyObject *self, PyObject *unused)
{
    (void)self, (void)unused;
    return PyUnicode_FromString(sc_he_isa());
}

static PyObject *py_limit_isa(PyObject *self, PyObject *args)
{
    int level;
    (void)self;
    if (!PyArg_ParseTuple(args, "i", &level)) return NULL;
    return PyUnicode_FromString(sc_he_limit_isa(level));
}

static PyMethodDef methods[] = {
    {"encode", py_encode, METH_VARARGS,
     "encode(samples, dtype, sizes, block, c_in, weight, bias, shift, code_max, out) -> None"},
    {"isa", py_isa, METH_NOARGS, "isa() -> str: the instruction set the kernel runs with"},
    {"limit_isa", py_limit_isa, METH_VARARGS,
     "limit_isa(level) -> str: use at most level 0 (16-byte vectors), 1 (AVX2), 2 (AVX-512), "
     "3 (AVX-512 VNNI)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_scencoder",
    "Host encoder kernel: the integer encoder's codes, bit-identical to the int8 graph.", -1, methods,
};

PyMODINIT_FUNC PyInit__scencoder(void) { return PyModule_Create(&module); }
