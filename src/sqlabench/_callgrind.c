/* Valgrind client requests for sqlabench's counting pass.
 *
 * Each request is a few no-op instructions that callgrind recognises: outside valgrind they
 * cost nothing and do nothing. The counting pass switches callgrind's collection on around
 * exactly the calls the timer surrounds in a timed pass, and dumps the total per benchmark.
 * valgrind.h and callgrind.h are valgrind's BSD-licensed headers, copied unchanged from
 * valgrind 3.19 so the extension builds where valgrind's headers are not installed.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "_valgrind/callgrind.h"

static PyObject *running_on_valgrind(PyObject *self, PyObject *unused) {
    return PyLong_FromLong((long)RUNNING_ON_VALGRIND);
}

static PyObject *start_instrumentation(PyObject *self, PyObject *unused) {
    CALLGRIND_START_INSTRUMENTATION;
    Py_RETURN_NONE;
}

static PyObject *stop_instrumentation(PyObject *self, PyObject *unused) {
    CALLGRIND_STOP_INSTRUMENTATION;
    Py_RETURN_NONE;
}

static PyObject *toggle_collect(PyObject *self, PyObject *unused) {
    CALLGRIND_TOGGLE_COLLECT;
    Py_RETURN_NONE;
}

static PyObject *zero_stats(PyObject *self, PyObject *unused) {
    CALLGRIND_ZERO_STATS;
    Py_RETURN_NONE;
}

static PyObject *dump_stats_at(PyObject *self, PyObject *arg) {
    const char *name = PyUnicode_AsUTF8(arg);
    if (name == NULL) {
        return NULL;
    }
    CALLGRIND_DUMP_STATS_AT(name);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"running_on_valgrind", running_on_valgrind, METH_NOARGS,
     "How many valgrinds the process runs under (0: none)."},
    {"start_instrumentation", start_instrumentation, METH_NOARGS,
     "Start instrumenting code (needed before anything is collected)."},
    {"stop_instrumentation", stop_instrumentation, METH_NOARGS, "Stop instrumenting code."},
    {"toggle_collect", toggle_collect, METH_NOARGS, "Switch collection of counts on or off."},
    {"zero_stats", zero_stats, METH_NOARGS, "Forget the counts collected so far."},
    {"dump_stats_at", dump_stats_at, METH_O,
     "Write the counts collected so far to a new file, headed by the given name."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_callgrind",
    "Valgrind callgrind client requests (no-ops outside valgrind).", -1, methods,
};

PyMODINIT_FUNC PyInit__callgrind(void) { return PyModule_Create(&module); }
