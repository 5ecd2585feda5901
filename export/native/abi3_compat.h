/* Force-included (gcc -include) when export/native_wheel.py compiles the native extensions of the
 * device wheels against the CPython stable ABI (abi3, CPython >= 3.11: Py_buffer and the "y*"
 * format joined the limited API in 3.11). The binding sources compile unchanged; the two
 * non-limited calls they use are mapped onto limited-API equivalents here:
 *   PyBytes_AS_STRING(o)   -> PyBytes_AsString(o)       (a function call instead of a macro)
 *   _PyBytes_Resize(&o, n) -> a shrinking copy of o      (the coded output, a few % of the input)
 * Any other non-limited call fails the build (-Werror=implicit-function-declaration).
 */
#ifndef SC_ABI3_COMPAT_H
#define SC_ABI3_COMPAT_H

#define Py_LIMITED_API 0x030B0000
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#define PyBytes_AS_STRING(op) PyBytes_AsString((PyObject *)(op))

/* Same contract as _PyBytes_Resize: on failure *obj is released, set to NULL, -1 returned. */
static inline int sc_abi3_bytes_shrink(PyObject **obj, Py_ssize_t size)
{
    PyObject *small;
    if (size < 0 || size > PyBytes_Size(*obj)) {
        Py_DECREF(*obj);
        *obj = NULL;
        PyErr_SetString(PyExc_SystemError, "abi3_compat.h: _PyBytes_Resize may only shrink");
        return -1;
    }
    small = PyBytes_FromStringAndSize(PyBytes_AsString(*obj), size);
    Py_DECREF(*obj);
    *obj = small;
    return small ? 0 : -1;
}
#define _PyBytes_Resize(obj, size) sc_abi3_bytes_shrink((obj), (size))

#endif
