/* encoder_runtime._sclossless: CPython binding of the firmware's lossless coders
 * (firmware_bridge/firmware/src/sc_lossless.c = ctx-ac and src/sc_rans.c = rans, compiled into
 * this module unchanged).
 *
 *   encode(codes: buffer of int8, channels, rows, cols) -> bytes          (ctx-ac)
 *   decode(data: buffer, channels, rows, cols) -> bytes  (channels*rows*cols int8 codes)
 *   rans_encode / rans_decode: the same for the static rANS coder
 *
 * Errors: ValueError("<status text>") for bad payloads or arguments; the GIL is released
 * while coding. Sizes are checked by the C core before anything is written.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "sc_lossless.h"
#include "sc_rans.h"
#include <stdlib.h>

#define MAX_CODES_PER_BYTE 16384u

static int dims_ok_named(const char *name, unsigned long long c, unsigned long long r,
                         unsigned long long w, Py_ssize_t *n)
{
    if (c == 0 || r == 0 || w == 0 || c > 0xFFFFFFFFull || r > 0xFFFFFFFFull || w > 0xFFFFFFFFull
        || r * w > (1ull << 31) || c * r * w > (1ull << 31)) {
        PyErr_Format(PyExc_ValueError, "%s: bad dimensions (%llu, %llu, %llu)", name, c, r, w);
        return 0;
    }
    *n = (Py_ssize_t)(c * r * w);
    return 1;
}

static int dims_ok(unsigned long long c, unsigned long long r, unsigned long long w,
                   Py_ssize_t *n)
{
    return dims_ok_named("ctx-ac", c, r, w, n);
}

static PyObject *py_encode(PyObject *self, PyObject *args)
{
    Py_buffer buf;
    unsigned long long c, r, w;
    Py_ssize_t n;
    PyObject *out;
    size_t out_len = 0;
    int st;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*KKK", &buf, &c, &r, &w)) return NULL;
    if (!dims_ok(c, r, w, &n)) { PyBuffer_Release(&buf); return NULL; }
    if (buf.len != n) {
        PyErr_Format(PyExc_ValueError, "ctx-ac: %zd code bytes for %zd codes", buf.len, n);
        PyBuffer_Release(&buf);
        return NULL;
    }
    out = PyBytes_FromStringAndSize(NULL, n + 1);
    if (!out) { PyBuffer_Release(&buf); return NULL; }
    Py_BEGIN_ALLOW_THREADS
    st = sc_ll_encode((const int8_t *)buf.buf, (uint32_t)c, (uint32_t)r, (uint32_t)w,
                      (uint8_t *)PyBytes_AS_STRING(out), (size_t)n + 1, &out_len);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&buf);
    if (st != SC_LL_OK) {
        Py_DECREF(out);
        PyErr_Format(PyExc_ValueError, "ctx-ac: encode failed: %s", sc_ll_strerror(st));
        return NULL;
    }
    if (_PyBytes_Resize(&out, (Py_ssize_t)out_len) < 0) return NULL;
    return out;
}

static PyObject *py_decode(PyObject *self, PyObject *args)
{
    Py_buffer buf;
    unsigned long long c, r, w;
    Py_ssize_t n;
    PyObject *out;
    int st;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*KKK", &buf, &c, &r, &w)) return NULL;
    if (!dims_ok(c, r, w, &n)) { PyBuffer_Release(&buf); return NULL; }
    if (buf.len > n + 1) { /* checked before allocating: never larger than stored codes */
        PyErr_Format(PyExc_ValueError, "ctx-ac: %zd payload bytes, at most %zd for %zd codes",
                     buf.len, n + 1, n);
        PyBuffer_Release(&buf);
        return NULL;
    }
    /* A coded code costs at least ~1/1100 byte (the most probable bit has probability
     * < 65498/65536), so a short payload cannot declare a huge array: reject before
     * allocating (the bound keeps a margin of 1.7x). */
    if (buf.len >= 1 && ((const uint8_t *)buf.buf)[0] == SC_LL_FORMAT_AC
        && (unsigned long long)n > ((unsigned long long)buf.len + 8u) * MAX_CODES_PER_BYTE) {
        PyErr_Format(PyExc_ValueError, "ctx-ac: %zd payload bytes cannot hold %zd codes "
                     "(at most %llu per byte)", buf.len, n, (unsigned long long)MAX_CODES_PER_BYTE);
        PyBuffer_Release(&buf);
        return NULL;
    }
    out = PyBytes_FromStringAndSize(NULL, n);
    if (!out) { PyBuffer_Release(&buf); return NULL; }
    Py_BEGIN_ALLOW_THREADS
    st = sc_ll_decode((const uint8_t *)buf.buf, (size_t)buf.len, (uint32_t)c, (uint32_t)r,
                      (uint32_t)w, (int8_t *)PyBytes_AS_STRING(out));
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&buf);
    if (st != SC_LL_OK) {
        Py_DECREF(out);
        PyErr_Format(PyExc_ValueError, "ctx-ac: %s", sc_ll_strerror(st));
        return NULL;
    }
    return out;
}

static PyObject *py_rans_encode(PyObject *self, PyObject *args)
{
    Py_buffer buf;
    unsigned long long c, r, w;
    Py_ssize_t n;
    PyObject *out;
    size_t out_len = 0, wlen;
    void *work;
    int st;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*KKK", &buf, &c, &r, &w)) return NULL;
    if (!dims_ok_named("rans", c, r, w, &n)) { PyBuffer_Release(&buf); return NULL; }
    if (buf.len != n) {
        PyErr_Format(PyExc_ValueError, "rans: %zd code bytes for %zd codes", buf.len, n);
        PyBuffer_Release(&buf);
        return NULL;
    }
    wlen = sc_rans_enc_work((uint32_t)c);
    out = PyBytes_FromStringAndSize(NULL, n + 1);
    work = wlen ? malloc(wlen) : NULL;
    if (!out || !work) {
        Py_XDECREF(out);
        free(work);
        PyBuffer_Release(&buf);
        return PyErr_NoMemory();
    }
    Py_BEGIN_ALLOW_THREADS
    st = sc_rans_encode((const int8_t *)buf.buf, (uint32_t)c, (uint32_t)r, (uint32_t)w,
                        (uint8_t *)PyBytes_AS_STRING(out), (size_t)n + 1, &out_len, work, wlen);
    Py_END_ALLOW_THREADS
    free(work);
    PyBuffer_Release(&buf);
    if (st != SC_LL_OK) {
        Py_DECREF(out);
        PyErr_Format(PyExc_ValueError, "rans: encode failed: %s", sc_ll_strerror(st));
        return NULL;
    }
    if (_PyBytes_Resize(&out, (Py_ssize_t)out_len) < 0) return NULL;
    return out;
}

static PyObject *py_rans_decode(PyObject *self, PyObject *args)
{
    Py_buffer buf;
    unsigned long long c, r, w;
    Py_ssize_t n;
    PyObject *out;
    size_t wlen;
    void *work;
    int st;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*KKK", &buf, &c, &r, &w)) return NULL;
    if (!dims_ok_named("rans", c, r, w, &n)) { PyBuffer_Release(&buf); return NULL; }
    if (buf.len > n + 1) {
        PyErr_Format(PyExc_ValueError, "rans: %zd payload bytes, at most %zd for %zd codes",
                     buf.len, n + 1, n);
        PyBuffer_Release(&buf);
        return NULL;
    }
    /* every coded code costs > 1/22700 byte (no probability above 4095/4096): a short payload
     * cannot declare a huge array, so reject before allocating */
    if (buf.len >= 1 && ((const uint8_t *)buf.buf)[0] == SC_RANS_FORMAT
        && (unsigned long long)n > ((unsigned long long)buf.len + 16u) * SC_RANS_MAX_CODES_PER_BYTE) {
        PyErr_Format(PyExc_ValueError, "rans: %zd payload bytes cannot hold %zd codes "
                     "(at most %u per byte)", buf.len, n, SC_RANS_MAX_CODES_PER_BYTE);
        PyBuffer_Release(&buf);
        return NULL;
    }
    wlen = sc_rans_dec_work((uint32_t)c);
    out = PyBytes_FromStringAndSize(NULL, n);
    work = wlen ? malloc(wlen) : NULL;
    if (!out || !work) {
        Py_XDECREF(out);
        free(work);
        PyBuffer_Release(&buf);
        return PyErr_NoMemory();
    }
    Py_BEGIN_ALLOW_THREADS
    st = sc_rans_decode((const uint8_t *)buf.buf, (size_t)buf.len, (uint32_t)c, (uint32_t)r,
                        (uint32_t)w, (int8_t *)PyBytes_AS_STRING(out), work, wlen);
    Py_END_ALLOW_THREADS
    free(work);
    PyBuffer_Release(&buf);
    if (st != SC_LL_OK) {
        Py_DECREF(out);
        PyErr_Format(PyExc_ValueError, "rans: %s", sc_ll_strerror(st));
        return NULL;
    }
    return out;
}

static PyMethodDef methods[] = {
    {"encode", py_encode, METH_VARARGS, "encode(codes, channels, rows, cols) -> bytes"},
    {"decode", py_decode, METH_VARARGS, "decode(data, channels, rows, cols) -> bytes"},
    {"rans_encode", py_rans_encode, METH_VARARGS, "rans_encode(codes, channels, rows, cols) -> bytes"},
    {"rans_decode", py_rans_decode, METH_VARARGS, "rans_decode(data, channels, rows, cols) -> bytes"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_sclossless",
    "Lossless coders for int8 latent codes (firmware sc_lossless.c, sc_rans.c).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__sclossless(void) { return PyModule_Create(&module); }
