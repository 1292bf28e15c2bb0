/* pyp_interp: the process's one interpreter and what every part of the
 * python plugin does with it (see pyp.h). */
#define _GNU_SOURCE
#include "pyp.h"

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

/* Helpers in Python: run once per setting, never per task, so their
 * clarity costs nothing. */
static const char s_helper_src[] =
    "import io, os, sys\n"
    "HERE = '<zpipe python plugin>'\n"
    "# The host's stdout carries data (zpipe run's records, a sink's\n"
    "# output): print() in a task goes to its log (stderr) instead.\n"
    "# Python writes each piece of a print() to stderr on its own, so\n"
    "# two executors sharing a log interleave mid-line; a line-buffered\n"
    "# stream writes each whole line at once.\n"
    "sys.stdout = sys.stderr = io.TextIOWrapper(\n"
    "    open(2, 'wb', closefd=False), encoding=sys.stderr.encoding,\n"
    "    errors='backslashreplace', line_buffering=True)\n"
    "def add_path(dirs):\n"
    "    for d in reversed([d for d in dirs.split(':') if d]):\n"
    "        d = os.path.abspath(d)\n"
    "        if d in sys.path:\n"
    "            sys.path.remove(d)\n"
    "        sys.path.insert(0, d)\n"
    "_mains = {}\n"
    "def load_main(path):\n"
    "    # What multiprocessing's spawn does with the parent's main script:\n"
    "    # run it as __mp_main__ (its `if __name__ == '__main__'` part does\n"
    "    # not run) and make that __main__, so pickles naming __main__.f\n"
    "    # find f. Run once per file and process.\n"
    "    import types\n"
    "    path = os.path.abspath(path)\n"
    "    if path in _mains:\n"
    "        return _mains[path]\n"
    "    add_path(os.path.dirname(path))\n"
    "    # runpy.run_path's work for a file, without importing runpy and\n"
    "    # the importlib machinery it brings.\n"
    "    mod = types.ModuleType('__mp_main__')\n"
    "    mod.__dict__.update(__file__=path, __cached__=None, __loader__=None,\n"
    "                        __package__=None, __spec__=None)\n"
    "    with open(path, 'rb') as f:\n"
    "        code = compile(f.read(), path, 'exec', dont_inherit=True)\n"
    "    sys.modules['__main__'] = sys.modules['__mp_main__'] = mod\n"
    "    exec(code, mod.__dict__)\n"
    "    _mains[path] = mod\n"
    "    return mod\n"
    "def resolve(spec, key):\n"
    "    import importlib\n"
    "    mod, sep, qual = spec.partition(':')\n"
    "    if not sep or not mod or not qual:\n"
    "        raise ValueError('%s=%s: expected MODULE:QUALNAME' % (key, "
    "spec))\n"
    "    obj = importlib.import_module(mod)\n"
    "    for part in qual.split('.'):\n"
    "        obj = getattr(obj, part)\n"
    "    if not callable(obj):\n"
    "        raise TypeError('%s=%s is a %s, not callable'\n"
    "                        % (key, spec, type(obj).__name__))\n"
    "    return obj\n"
    "def describe(e, cap, full):\n"
    "    # 'Type: message', then (full) the end of the traceback, in at\n"
    "    # most cap bytes of UTF-8; else where it was raised.\n"
    "    import traceback\n"
    "    t = type(e)\n"
    "    name = t.__qualname__\n"
    "    if t.__module__ not in ('builtins', '__main__'):\n"
    "        name = '%s.%s' % (t.__module__, name)\n"
    "    try:\n"
    "        msg = str(e)\n"
    "    except BaseException:\n"
    "        msg = '<unprintable %s>' % name\n"
    "    head = ('%s: %s' % (name, msg) if msg else name)\n"
    "    head = head.encode('utf-8', 'replace')[:cap // 2]\n"
    "    if not full or e.__traceback__ is None:\n"
    "        tb = [f for f in traceback.extract_tb(e.__traceback__)\n"
    "              if f.filename != HERE][-1:]\n"
    "        if tb and not full:\n"
    "            head += (' (%s, line %s)' % (tb[0].filename, tb[0].lineno)\n"
    "                     ).encode('utf-8', 'replace')\n"
    "        return head[:cap].decode('utf-8', 'ignore')\n"
    "    # The traceback without its last 'Type: message' (the head has it).\n"
    "    lines = traceback.format_exception(t, e, e.__traceback__)\n"
    "    only = traceback.format_exception_only(t, e)\n"
    "    if lines[-len(only):] == only:\n"
    "        lines = lines[:-len(only)]\n"
    "    tb = ''.join(lines)\n"
    "    tb = tb.encode('utf-8', 'replace')\n"
    "    room = cap - len(head) - 1\n"
    "    if len(tb) > room:\n"
    "        tb = tb[len(tb) - room + 4:]\n"
    "        nl = tb.find(b'\\n')\n"
    "        tb = b'...' + (tb[nl:] if 0 <= nl < len(tb) - 1 else b'\\n' + "
    "tb)\n"
    "    return (head + b'\\n' + tb.rstrip(b'\\n')).decode('utf-8', 'ignore')\n"
    "def json_dumps():\n"
    "    import functools, json\n"
    "    return json.loads, functools.partial(\n"
    "        json.dumps, ensure_ascii=False, separators=(',', ':'))\n"
    "def pickle_fns():\n"
    "    # _pickle, not pickle: the same functions without the module's\n"
    "    # imports (re and more), 3 ms of every executor's start.\n"
    "    # protocol=-1 is the highest.\n"
    "    import functools, _pickle\n"
    "    return _pickle.loads, functools.partial(_pickle.dumps, protocol=-1)\n";

static PyObject *s_helpers; /* the helper module's dict */
static PyObject *s_key_main, *s_key_mp_main;
static PyObject *s_codec[3][2]; /* loads, dumps per codec, made once */
static char s_start_error[256];

/* libpython was loaded with the plugin, RTLD_LOCAL: extension modules
 * (ctypes, decimal, ...) are not linked against it and need its symbols
 * in the global scope, as they are in the python3 binary. */
static void s_globalize_libpython(void)
{
    Dl_info info;
    void *fn = (void *)Py_InitializeEx;
    if (dladdr(fn, &info) && info.dli_fname)
        dlopen(info.dli_fname, RTLD_NOW | RTLD_GLOBAL | RTLD_NOLOAD);
}

/* Starts the interpreter once per process; -1 (for good) if that fails. */
static int s_start(void)
{
    static int state; /* 0 not tried, 1 running, -1 failed */
    if (state)
        return state > 0 ? 0 : -1;
    state = -1;
    s_globalize_libpython();
    /* A guest in the host's process: its locale and environment stay as
     * they are (no setlocale, no C-locale coercion through LC_CTYPE), and
     * UTF-8 mode makes file names and text I/O UTF-8 whatever they are. */
    PyPreConfig pre;
    PyPreConfig_InitPythonConfig(&pre);
    pre.configure_locale = 0;
    pre.coerce_c_locale = 0;
    pre.utf8_mode = 1;
    PyStatus st = Py_PreInitialize(&pre);
    PyConfig config;
    PyConfig_InitPythonConfig(&config);
    config.install_signal_handlers = 0; /* the host owns signals */
    config.parse_argv = 0;
    char *argv[] = {"", NULL};
    if (!PyStatus_Exception(st))
        st = PyConfig_SetBytesArgv(&config, 1, argv);
    if (!PyStatus_Exception(st))
        st = Py_InitializeFromConfig(&config);
    PyConfig_Clear(&config);
    if (PyStatus_Exception(st)) {
        snprintf(s_start_error, sizeof s_start_error, "cannot start Python: %s",
                 st.err_msg ? st.err_msg : "unknown error");
        return -1;
    }
    PyObject *mod = PyModule_New("_zpipe_python_plugin");
    PyObject *dict = mod ? PyModule_GetDict(mod) : NULL;
    if (dict)
        PyDict_SetItemString(dict, "__builtins__", PyEval_GetBuiltins());
    PyObject *code =
        Py_CompileString(s_helper_src, "<zpipe python plugin>", Py_file_input);
    PyObject *r = dict && code ? PyEval_EvalCode(code, dict, dict) : NULL;
    Py_XDECREF(code);
    s_key_main = PyUnicode_InternFromString("__main__");
    s_key_mp_main = PyUnicode_InternFromString("__mp_main__");
    if (!r || !s_key_main || !s_key_mp_main) {
        char why[200];
        pyp_describe(why, sizeof why, false);
        snprintf(s_start_error, sizeof s_start_error, "cannot start Python: %s",
                 why);
        return -1;
    }
    Py_DECREF(r);
    Py_INCREF(dict);
    s_helpers = dict;
    Py_DECREF(mod);
    state = 1;
    return 0;
}

/* Calls helper name with args (new references stolen); a new reference or
 * NULL with an exception set. */
static PyObject *s_call_helper(const char *name, PyObject *args)
{
    if (!args)
        return NULL;
    PyObject *fn = PyDict_GetItemString(s_helpers, name);
    PyObject *r = fn ? PyObject_CallObject(fn, args) : NULL;
    if (!fn)
        PyErr_Format(PyExc_RuntimeError, "no helper %s", name);
    Py_DECREF(args);
    return r;
}

char *pyp_describe(char *buf, size_t cap, bool full)
{
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (value && tb)
        PyException_SetTraceback(value, tb);
    const char *tname = type ? ((PyTypeObject *)type)->tp_name : "?";
    snprintf(buf, cap, "%s", tname); /* unless the helper does better */
    PyObject *text =
        value && s_helpers
            ? s_call_helper("describe",
                            Py_BuildValue("(Onl)", value, (Py_ssize_t)cap - 1,
                                          (long)full))
            : NULL;
    const char *s = text ? PyUnicode_AsUTF8(text) : NULL;
    if (s)
        snprintf(buf, cap, "%s", s);
    PyErr_Clear(); /* the helper's own failure leaves the type name */
    Py_XDECREF(text);
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
    return buf;
}

static int s_init_fail(const zpipe_host_t *host, const char *key,
                       const char *spec)
{
    char why[PYP_MAX_INIT_ERROR], msg[PYP_MAX_INIT_ERROR + 300];
    pyp_describe(why, sizeof why, false);
    snprintf(msg, sizeof msg, "%s=%.200s: %s", key, spec, why);
    zpipe_init_fail(host, msg);
    return -1;
}

static int s_codec_fns(const zpipe_host_t *host, pyp_codec_fns_t *codec)
{
    if (codec->kind == PYP_RAW)
        return 0;
    PyObject **fns = s_codec[codec->kind];
    if (!fns[0]) {
        const char *maker =
            codec->kind == PYP_PICKLE ? "pickle_fns" : "json_dumps";
        PyObject *pair = s_call_helper(maker, PyTuple_New(0));
        if (!pair || !PyArg_ParseTuple(pair, "OO", &fns[0], &fns[1])) {
            Py_XDECREF(pair);
            fns[0] = fns[1] = NULL;
            return s_init_fail(host, "codec", maker);
        }
        Py_INCREF(fns[0]);
        Py_INCREF(fns[1]);
        Py_DECREF(pair);
    }
    codec->loads = fns[0];
    codec->dumps = fns[1];
    return 0;
}

int pyp_setup(const zpipe_host_t *host, pyp_codec_fns_t *codec,
              PyObject **main_mod)
{
    *main_mod = NULL;
    if (s_start() < 0) {
        zpipe_init_fail(host, s_start_error);
        return -1;
    }
    if (!PyGILState_Check()) {
        zpipe_init_fail(host, "called from a thread other than the one that "
                              "started Python in this process");
        return -1;
    }
    if (s_codec_fns(host, codec) < 0)
        return -1;
    const char *path = zpipe_config(host, "path");
    if (path && *path) {
        PyObject *r = s_call_helper("add_path", Py_BuildValue("(s)", path));
        if (!r)
            return s_init_fail(host, "path", path);
        Py_DECREF(r);
    }
    const char *main = zpipe_config(host, "main");
    if (main && *main) {
        *main_mod = s_call_helper("load_main", Py_BuildValue("(s)", main));
        if (!*main_mod)
            return s_init_fail(host, "main", main);
    }
    return 0;
}

PyObject *pyp_resolve(const zpipe_host_t *host, const char *key, bool *absent)
{
    const char *spec = zpipe_config(host, key);
    *absent = !spec || !*spec;
    if (*absent)
        return NULL;
    PyObject *fn = s_call_helper("resolve", Py_BuildValue("(ss)", spec, key));
    if (!fn)
        s_init_fail(host, key, spec);
    return fn;
}

void pyp_use_main(PyObject *main_mod)
{
    PyObject *mods = PyImport_GetModuleDict();
    if (PyDict_GetItem(mods, s_key_main) == main_mod)
        return;
    PyDict_SetItem(mods, s_key_main, main_mod);
    PyDict_SetItem(mods, s_key_mp_main, main_mod);
}

PyObject *pyp_decode(const pyp_codec_fns_t *codec, const uint8_t *data,
                     size_t len)
{
    if (codec->kind == PYP_RAW)
        return PyBytes_FromStringAndSize((const char *)data, (Py_ssize_t)len);
    /* pickle reads the borrowed input in place, no copy; json.loads
     * takes only str and bytes. */
    PyObject *view =
        codec->kind == PYP_PICKLE
            ? PyMemoryView_FromMemory((char *)data, (Py_ssize_t)len, PyBUF_READ)
            : PyBytes_FromStringAndSize((const char *)data, (Py_ssize_t)len);
    if (!view)
        return NULL;
    PyObject *arg = PyObject_CallOneArg(codec->loads, view);
    Py_DECREF(view);
    if (!arg || !codec->star || PyTuple_CheckExact(arg))
        return arg;
    /* star: a list (JSON's arrays) or any sequence becomes the tuple. */
    PyObject *tuple = PySequence_Tuple(arg);
    Py_DECREF(arg);
    return tuple;
}

/* Appends bytes-like or str value; 1 when value is neither. */
static int s_append_value(zpipe_call_t *call, PyObject *value, int *status)
{
    const char *data;
    Py_ssize_t len;
    if (PyBytes_Check(value)) {
        data = PyBytes_AS_STRING(value);
        len = PyBytes_GET_SIZE(value);
    } else if (PyUnicode_Check(value)) {
        data = PyUnicode_AsUTF8AndSize(value, &len);
        if (!data) {
            *status = pyp_fail(call, "the result is not valid UTF-8: ");
            return 0;
        }
    } else if (PyObject_CheckBuffer(value)) {
        Py_buffer view;
        if (PyObject_GetBuffer(value, &view, PyBUF_SIMPLE) < 0) {
            *status = pyp_fail(call, NULL);
            return 0;
        }
        int rc = zpipe_append(call, view.buf, (size_t)view.len);
        PyBuffer_Release(&view);
        *status = rc < 0 ? ZPIPE_ERROR : ZPIPE_OK;
        return 0;
    } else
        return 1;
    *status =
        zpipe_append(call, data, (size_t)len) < 0 ? ZPIPE_ERROR : ZPIPE_OK;
    return 0;
}

int pyp_encode(const pyp_codec_fns_t *codec, zpipe_call_t *call,
               PyObject *value)
{
    int status = ZPIPE_OK;
    if (codec->kind == PYP_RAW) {
        if (value == Py_None)
            return ZPIPE_OK;
        if (s_append_value(call, value, &status) == 0)
            return status;
        PyErr_Format(PyExc_TypeError,
                     "the raw codec takes bytes, str or None, not %.100s "
                     "(use codec=pickle or codec=json)",
                     Py_TYPE(value)->tp_name);
        return pyp_fail(call, NULL);
    }
    PyObject *enc = PyObject_CallOneArg(codec->dumps, value);
    if (!enc)
        return pyp_fail(call, "cannot encode the result: ");
    s_append_value(call, enc, &status);
    Py_DECREF(enc);
    return status;
}

/* Whether the exception asks to be retried (a true `retryable`). */
static bool s_retryable(PyObject *value)
{
    PyObject *r = PyObject_GetAttrString(value, "retryable");
    int yes = r ? PyObject_IsTrue(r) : 0;
    Py_XDECREF(r);
    PyErr_Clear();
    return yes > 0;
}

int pyp_fail(zpipe_call_t *call, const char *prefix)
{
    int status = ZPIPE_ERROR;
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (type && PyErr_GivenExceptionMatches(type, PyExc_MemoryError))
        status = ZPIPE_NOMEM; /* resource_limit under --memory-limit */
    else if (value && s_retryable(value))
        status = ZPIPE_RETRY;
    PyErr_Restore(type, value, tb);
    char text[PYP_MAX_ERROR + 64];
    size_t off = prefix ? (size_t)snprintf(text, 64, "%s", prefix) : 0;
    if (off > 63)
        off = 63;
    pyp_describe(text + off, PYP_MAX_ERROR, true);
    call->host->set_error(call, text);
    zpipe_set_cause(call, "python_exception");
    return status;
}
