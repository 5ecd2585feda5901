/* encoder_runtime._sclossless: CPython binding of the firmware's lossless coders, compiled into
 * this module unchanged: firmware_bridge/firmware/src/sc_lossless.c (ctx-ac) and src/sc_rans.c
 * (rans).
 *
 *   encode(codes: buffer of int8, channels, rows, cols) -> bytes          (ctx-ac, format 3)
 *   decode(data: buffer, channels, rows, cols) -> bytes  (channels*rows*cols int8 codes; ctx-ac
 *       formats 1 and 3)
 *   encode_format1: ctx-ac's format 1 (before run mode), for tests of old streams
 *   rans_encode / rans_decode: the same for the static rANS coder (writes format 4, reads 2 and 4)
 *   rans_encode_format2 / rans_encode_format4: rans in one format, for tests and benchmarks
 *
 * Errors: ValueError("<coder>: <status text>") for bad payloads or arguments; the GIL is
 * released while coding. Sizes are checked by the C core before anything is written, and a
 * coded payload too short for the declared shape is refused before the output is allocated.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdlib.h>

#include "sc_lossless.h"
#include "sc_rans.h"

/* One coder: its C entry points (with a work area; ctx-ac needs none) and its payload floors. */
typedef struct {
    const char *name;
    unsigned format[2];             /* byte 0 of a coded (not stored) payload */
    unsigned max_codes_per_byte[2]; /* of each format: more codes per payload byte cannot be coded */
    size_t (*enc_work)(uint32_t channels);
    size_t (*dec_work)(uint32_t channels);
    size_t (*enc_work_frame)(uint32_t channels, uint32_t rows, uint32_t cols); /* or NULL */
    size_t (*dec_work_format)(unsigned format, uint32_t channels);             /* or NULL */
    int (*enc)(const int8_t *, uint32_t, uint32_t, uint32_t, uint8_t *, size_t, size_t *, void *,
               size_t);
    int (*dec)(const uint8_t *, size_t, uint32_t, uint32_t, uint32_t, int8_t *, void *, size_t);
} coder_t;

static size_t no_work(uint32_t channels) { (void)channels; return 0; }

static int ctx_enc(const int8_t *codes, uint32_t c, uint32_t r, uint32_t w, uint8_t *out,
                   size_t cap, size_t *out_len, void *work, size_t work_len)
{
    (void)work, (void)work_len;
    return sc_ll_encode(codes, c, r, w, out, cap, out_len);
}

static int ctx1_enc(const int8_t *codes, uint32_t c, uint32_t r, uint32_t w, uint8_t *out,
                    size_t cap, size_t *out_len, void *work, size_t work_len)
{
    (void)work, (void)work_len;
    return sc_ll_encode_format(codes, c, r, w, SC_LL_FORMAT_AC, out, cap, out_len);
}

static int ctx_dec(const uint8_t *in, size_t len, uint32_t c, uint32_t r, uint32_t w, int8_t *out,
                   void *work, size_t work_len)
{
    (void)work, (void)work_len;
    return sc_ll_decode(in, len, c, r, w, out);
}

/* A ctx-ac format-1 code costs at least ~1/1100 byte (the most probable bit has probability
 * < 65498/65536): 16384 keeps a margin of 1.7x; in format 3 one such bit covers up to 16 codes. */
#define CTX_AC_FORMATS {SC_LL_FORMAT_RUN, SC_LL_FORMAT_AC}, {16u * 16384u, 16384u}
static const coder_t CTX_AC = {"ctx-ac", CTX_AC_FORMATS, no_work, no_work, NULL, NULL, ctx_enc, ctx_dec};
static const coder_t CTX_AC1 = {"ctx-ac", CTX_AC_FORMATS, no_work, no_work, NULL, NULL, ctx1_enc, ctx_dec};
static int rans2_enc(const int8_t *codes, uint32_t c, uint32_t r, uint32_t w, uint8_t *out,
                     size_t cap, size_t *out_len, void *work, size_t work_len)
{
    return sc_rans_encode_format(codes, c, r, w, SC_RANS_FORMAT, out, cap, out_len, work, work_len);
}

static int rans4_enc(const int8_t *codes, uint32_t c, uint32_t r, uint32_t w, uint8_t *out,
                     size_t cap, size_t *out_len, void *work, size_t work_len)
{
    return sc_rans_encode_format(codes, c, r, w, SC_RANS_FORMAT_SIG, out, cap, out_len, work, work_len);
}

#define RANS_FORMATS {SC_RANS_FORMAT_SIG, SC_RANS_FORMAT}, \
    {SC_RANS_SIG_MAX_CODES_PER_BYTE, SC_RANS_MAX_CODES_PER_BYTE}, sc_rans_enc_work, sc_rans_dec_work, \
    sc_rans_enc_work_frame, sc_rans_dec_work_format
static const coder_t RANS = {"rans", RANS_FORMATS, sc_rans_encode, sc_rans_decode};
static const coder_t RANS2 = {"rans", RANS_FORMATS, rans2_enc, sc_rans_decode};
static const coder_t RANS4 = {"rans", RANS_FORMATS, rans4_enc, sc_rans_decode};

/* Most codes a coded payload of len bytes can hold (0: not a coded payload of this coder). */
static unsigned long long max_codes(const coder_t *k, const uint8_t *buf, Py_ssize_t len)
{
    int i;
    if (len < 1) return 0;
    for (i = 0; i < 2; i++)
        if (buf[0] == k->format[i])
            return ((unsigned long long)len + 16u) * k->max_codes_per_byte[i];
    return 0;
}

static int dims_ok(const coder_t *k, unsigned long long c, unsigned long long r,
                   unsigned long long w, Py_ssize_t *n)
{
    if (c == 0 || r == 0 || w == 0 || c > 0xFFFFFFFFull || r > 0xFFFFFFFFull || w > 0xFFFFFFFFull
        || r * w > (1ull << 31) || c * r * w > (1ull << 31)) {
        PyErr_Format(PyExc_ValueError, "%s: bad dimensions (%llu, %llu, %llu)", k->name, c, r, w);
        return 0;
    }
    *n = (Py_ssize_t)(c * r * w);
    return 1;
}

/* out (a new bytes object of out_size) and the coder's work area, or NULL with MemoryError. */
static PyObject *alloc_out(Py_ssize_t out_size, size_t wlen, void **work)
{
    PyObject *out = PyBytes_FromStringAndSize(NULL, out_size);
    *work = NULL;
    if (!out) return NULL;
    if (wlen && !(*work = malloc(wlen))) {
        Py_DECREF(out);
        return PyErr_NoMemory();
    }
    return out;
}

static PyObject *encode(const coder_t *k, PyObject *args)
{
    Py_buffer buf;
    unsigned long long c, r, w;
    Py_ssize_t n;
    PyObject *out;
    size_t out_len = 0, wlen;
    void *work;
    int st;
    if (!PyArg_ParseTuple(args, "y*KKK", &buf, &c, &r, &w)) return NULL;
    if (!dims_ok(k, c, r, w, &n)) { PyBuffer_Release(&buf); return NULL; }
    if (buf.len != n) {
        PyErr_Format(PyExc_ValueError, "%s: %zd code bytes for %zd codes", k->name, buf.len, n);
        PyBuffer_Release(&buf);
        return NULL;
    }
    /* the frame-sized work area where the coder has one (faster), else the smallest */
    wlen = k->enc_work_frame ? k->enc_work_frame((uint32_t)c, (uint32_t)r, (uint32_t)w) : 0;
    if (!wlen) wlen = k->enc_work((uint32_t)c);
    if (!(out = alloc_out(n + 1, wlen, &work))) { PyBuffer_Release(&buf); return NULL; }
    Py_BEGIN_ALLOW_THREADS
    st = k->enc((const int8_t *)buf.buf, (uint32_t)c, (uint32_t)r, (uint32_t)w,
                (uint8_t *)PyBytes_AS_STRING(out), (size_t)n + 1, &out_len, work, wlen);
    Py_END_ALLOW_THREADS
    free(work);
    PyBuffer_Release(&buf);
    if (st != SC_LL_OK) {
        Py_DECREF(out);
        PyErr_Format(PyExc_ValueError, "%s: encode failed: %s", k->name, sc_ll_strerror(st));
        return NULL;
    }
    if (_PyBytes_Resize(&out, (Py_ssize_t)out_len) < 0) return NULL;
    return out;
}

static PyObject *decode(const coder_t *k, PyObject *args)
{
    Py_buffer buf;
    unsigned long long c, r, w;
    Py_ssize_t n;
    PyObject *out;
    size_t wlen;
    void *work;
    unsigned long long limit;
    int st;
    if (!PyArg_ParseTuple(args, "y*KKK", &buf, &c, &r, &w)) return NULL;
    if (!dims_ok(k, c, r, w, &n)) { PyBuffer_Release(&buf); return NULL; }
    if (buf.len > n + 1) { /* checked before allocating: never larger than stored codes */
        PyErr_Format(PyExc_ValueError, "%s: %zd payload bytes, at most %zd for %zd codes",
                     k->name, buf.len, n + 1, n);
        PyBuffer_Release(&buf);
        return NULL;
    }
    /* a short coded payload cannot declare a huge array: reject before allocating */
    limit = max_codes(k, (const uint8_t *)buf.buf, buf.len);
    if (limit && (unsigned long long)n > limit) {
        PyErr_Format(PyExc_ValueError, "%s: %zd payload bytes cannot hold %zd codes "
                     "(at most %llu)", k->name, buf.len, n, limit);
        PyBuffer_Release(&buf);
        return NULL;
    }
    wlen = k->dec_work((uint32_t)c);
    if (k->dec_work_format && buf.len > 0) /* what the payload's format needs */
        wlen = k->dec_work_format(((const uint8_t *)buf.buf)[0], (uint32_t)c);
    if (!(out = alloc_out(n, wlen, &work))) { PyBuffer_Release(&buf); return NULL; }
    Py_BEGIN_ALLOW_THREADS
    st = k->dec((const uint8_t *)buf.buf, (size_t)buf.len, (uint32_t)c, (uint32_t)r, (uint32_t)w,
                (int8_t *)PyBytes_AS_STRING(out), work, wlen);
    Py_END_ALLOW_THREADS
    free(work);
    PyBuffer_Release(&buf);
    if (st != SC_LL_OK) {
        Py_DECREF(out);
        PyErr_Format(PyExc_ValueError, "%s: %s", k->name, sc_ll_strerror(st));
        return NULL;
    }
    return out;
}

static PyObject *py_encode(PyObject *self, PyObject *args) { (void)self; return encode(&CTX_AC, args); }
static PyObject *py_encode1(PyObject *self, PyObject *args) { (void)self; return encode(&CTX_AC1, args); }
static PyObject *py_decode(PyObject *self, PyObject *args) { (void)self; return decode(&CTX_AC, args); }
static PyObject *py_rans_encode(PyObject *self, PyObject *args) { (void)self; return encode(&RANS, args); }
static PyObject *py_rans_encode2(PyObject *self, PyObject *args) { (void)self; return encode(&RANS2, args); }
static PyObject *py_rans_encode4(PyObject *self, PyObject *args) { (void)self; return encode(&RANS4, args); }
static PyObject *py_rans_decode(PyObject *self, PyObject *args) { (void)self; return decode(&RANS, args); }

static PyMethodDef methods[] = {
    {"encode", py_encode, METH_VARARGS, "encode(codes, channels, rows, cols) -> bytes (ctx-ac)"},
    {"encode_format1", py_encode1, METH_VARARGS,
     "encode_format1(codes, channels, rows, cols) -> bytes (ctx-ac format 1, for old-stream tests)"},
    {"decode", py_decode, METH_VARARGS, "decode(data, channels, rows, cols) -> bytes (ctx-ac)"},
    {"rans_encode", py_rans_encode, METH_VARARGS, "rans_encode(codes, channels, rows, cols) -> bytes"},
    {"rans_encode_format2", py_rans_encode2, METH_VARARGS,
     "rans_encode_format2(codes, channels, rows, cols) -> bytes (rans format 2, for old-stream tests)"},
    {"rans_encode_format4", py_rans_encode4, METH_VARARGS,
     "rans_encode_format4(codes, channels, rows, cols) -> bytes (rans format 4 at any size)"},
    {"rans_decode", py_rans_decode, METH_VARARGS, "rans_decode(data, channels, rows, cols) -> bytes"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_sclossless",
    "Lossless coders for int8 latent codes (firmware sc_lossless.c, sc_rans.c).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__sclossless(void) { return PyModule_Create(&module); }
