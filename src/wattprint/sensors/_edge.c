/*
 * wattprint's native edge reader: the raw values of a window edge's RAPL counters, read in one
 * call.
 *
 * read_counters(sensors) takes a tuple (or list) of RaplSensor objects and reads each one's kept
 * descriptor (its `_fd` attribute) with pread at offset 0, up to READ_BYTES bytes, as
 * `int(os.pread(fd, 32, 0))` would. It returns a tuple of the values (int, microjoules), or
 * None when any counter is not in the common form: a failed or empty read, a descriptor out of
 * range, text other than decimal digits and one trailing newline, a value over 2**64 - 1. On
 * None the caller reads the edge again in Python, which raises or handles what it finds: this
 * reader changes the cost of an edge, never its result. It keeps no state and no descriptor,
 * holds the interpreter lock throughout (the edge's counters are read together, and a thread
 * waiting for the lock between two reads cannot part them) and releases nothing it did not
 * take. Built by hatch_build.py when a C compiler is there; wattprint works without it.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <limits.h>
#include <unistd.h>

/* Bump with any change of behaviour: a module built from an older source is then not used. */
#define API 1
#define READ_BYTES 32

static PyObject *fd_name; /* "_fd", interned */

/* The counter behind one descriptor: 1 with *value set, 0 when not in the common form. */
static int
read_one(long fd, unsigned long long *value)
{
    char buf[READ_BYTES];
    ssize_t got, i = 0;
    unsigned long long v = 0;

    if (fd < 0 || fd > INT_MAX)
        return 0;
    got = pread((int)fd, buf, READ_BYTES, 0);
    if (got <= 0)
        return 0;
    if (buf[got - 1] == '\n')
        got--;
    if (got == 0)
        return 0;
    for (; i < got; i++) {
        unsigned digit = (unsigned)(buf[i] - '0');
        if (digit > 9 || v > (ULLONG_MAX - digit) / 10)
            return 0;
        v = v * 10 + digit;
    }
    *value = v;
    return 1;
}

static PyObject *
read_counters(PyObject *module, PyObject *sensors)
{
    PyObject *seq, *out = NULL;
    Py_ssize_t n, k;

    (void)module;
    seq = PySequence_Fast(sensors, "read_counters: sensors must be a tuple or a list");
    if (seq == NULL)
        return NULL;
    n = PySequence_Fast_GET_SIZE(seq);
    out = PyTuple_New(n);
    if (out == NULL)
        goto fail;
    for (k = 0; k < n; k++) {
        PyObject *fd_obj, *value_obj;
        unsigned long long value;
        long fd;

        fd_obj = PyObject_GetAttr(PySequence_Fast_GET_ITEM(seq, k), fd_name);
        if (fd_obj == NULL)
            goto fail;
        fd = PyLong_AsLong(fd_obj);
        Py_DECREF(fd_obj);
        if (fd == -1 && PyErr_Occurred())
            goto fail;
        if (!read_one(fd, &value)) {
            Py_DECREF(out);
            Py_DECREF(seq);
            Py_RETURN_NONE;
        }
        value_obj = PyLong_FromUnsignedLongLong(value);
        if (value_obj == NULL)
            goto fail;
        PyTuple_SET_ITEM(out, k, value_obj);
    }
    Py_DECREF(seq);
    return out;

fail:
    Py_XDECREF(out);
    Py_DECREF(seq);
    return NULL;
}

static PyMethodDef methods[] = {
    {"read_counters", read_counters, METH_O,
     "read_counters(sensors) -> tuple of int, or None: each sensor's counter (pread of its "
     "_fd), None when any is not plain decimal digits."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "wattprint.sensors._edge",
    "wattprint's native edge reader (see _edge.c).", -1, methods,
};

PyMODINIT_FUNC
PyInit__edge(void)
{
    PyObject *module;

    fd_name = PyUnicode_InternFromString("_fd");
    if (fd_name == NULL)
        return NULL;
    module = PyModule_Create(&module_def);
    if (module == NULL)
        return NULL;
    if (PyModule_AddIntConstant(module, "API", API) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
