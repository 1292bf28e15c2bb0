/* python: a Python function per task, in an interpreter embedded once per
 * process (Debian's libpython3.11), so it stays warm across tasks.
 *
 * Settings (host->config; zpipe run --config KEY=VALUE, a job's config,
 * a worker's --plugin-config python.KEY=VALUE, ZPIPE_PLUGIN_PYTHON_KEY):
 *   func    MODULE:QUALNAME called once per task (QUALNAME may be dotted,
 *           Class.method). Without it (a worker serving many jobs) the
 *           interpreter is not even started, and each job brings its own.
 *   path    DIR[:DIR...] put at the front of sys.path before importing.
 *   main    FILE run as __mp_main__ and made __main__, as
 *           multiprocessing's spawn does, so __main__.f is found.
 *   init    MODULE:QUALNAME called with no argument before the first
 *           task of these settings in each executor.
 *   codec   raw (bytes in; bytes, str or None out), pickle or json.
 *   star    1: the decoded payload is an argument tuple (pickle, json).
 *   reduce, reduce_final: the reducer (pyp_reduce.c).
 *
 * A Python exception (any BaseException, SystemExit included) fails the
 * task with cause python_exception and "Type: message" and the end of the
 * traceback; retried when the exception has a true `retryable`. Each set
 * of settings is a state of its own; the interpreter, sys.path and the
 * module cache are the process's. See docs/python.md. */
#include "pyp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    pyp_codec_fns_t codec;
    PyObject *func;     /* NULL: no func setting; every task says so */
    PyObject *init;     /* the init function until it has run */
    PyObject *main_mod; /* to be __main__ while these settings run */
    char *init_failed;  /* init raised: every task fails with this */
    bool init_oom;      /* init raised and its text did not fit in memory */
} s_state_t;

int pyp_codec_read(const zpipe_host_t *host, pyp_codec_fns_t *codec)
{
    const char *c = zpipe_config(host, "codec");
    const char *star = zpipe_config(host, "star");
    memset(codec, 0, sizeof *codec);
    if (!c || !*c || strcmp(c, "raw") == 0)
        codec->kind = PYP_RAW;
    else if (strcmp(c, "pickle") == 0)
        codec->kind = PYP_PICKLE;
    else if (strcmp(c, "json") == 0)
        codec->kind = PYP_JSON;
    else {
        zpipe_init_fail(host, "codec must be raw, pickle or json");
        return -1;
    }
    if (star && *star && strcmp(star, "0") != 0 && strcmp(star, "1") != 0) {
        zpipe_init_fail(host, "star must be 0 or 1");
        return -1;
    }
    codec->star = star && strcmp(star, "1") == 0;
    if (codec->star && codec->kind == PYP_RAW) {
        zpipe_init_fail(host, "star=1 needs codec=pickle or codec=json");
        return -1;
    }
    return 0;
}

static void s_fini(void *state)
{
    s_state_t *st = state;
    if (!st)
        return;
    Py_XDECREF(st->func);
    Py_XDECREF(st->init);
    Py_XDECREF(st->main_mod);
    free(st->init_failed);
    free(st);
}

static int s_init(const zpipe_host_t *host, void **state)
{
    s_state_t *st = calloc(1, sizeof *st);
    if (!st)
        return zpipe_init_fail(host, "out of memory");
    if (pyp_codec_read(host, &st->codec) < 0)
        goto fail;
    const char *func = zpipe_config(host, "func");
    if (!func || !*func) {
        /* A worker's own instance: jobs bring func. Stay cheap. */
        *state = st;
        return ZPIPE_OK;
    }
    if (pyp_setup(host, &st->codec, &st->main_mod) < 0)
        goto fail;
    bool absent;
    st->func = pyp_resolve(host, "func", &absent);
    if (!st->func)
        goto fail;
    st->init = pyp_resolve(host, "init", &absent);
    if (!st->init && !absent)
        goto fail;
    *state = st;
    return ZPIPE_OK;
fail:
    s_fini(st);
    return ZPIPE_INVALID;
}

/* Runs the init setting once, before the first task; a failure is kept
 * and fails every task of these settings. Returns 0 or a status. */
static int s_run_init(s_state_t *st, zpipe_call_t *call)
{
    if (st->init_oom)
        return zpipe_fail(call, ZPIPE_ERROR,
                          "init failed (its message was "
                          "lost: out of memory)");
    if (st->init_failed)
        goto failed;
    PyObject *r = PyObject_CallNoArgs(st->init);
    Py_CLEAR(st->init);
    if (r) {
        Py_DECREF(r);
        return 0;
    }
    char text[PYP_MAX_ERROR];
    pyp_describe(text, sizeof text, true);
    st->init_failed = malloc(strlen(text) + 32);
    if (!st->init_failed) { /* init is gone: stay failed, never run bare */
        st->init_oom = true;
        return zpipe_fail(call, ZPIPE_ERROR,
                          "init failed (its message was "
                          "lost: out of memory)");
    }
    snprintf(st->init_failed, strlen(text) + 32, "init failed: %s", text);
failed:
    call->host->set_error(call, st->init_failed);
    zpipe_set_cause(call, "python_exception");
    return ZPIPE_ERROR;
}

/* The per-task path: no lookups, no allocation beyond the argument and
 * the result objects themselves. */
static int s_process(void *state, zpipe_call_t *call)
{
    s_state_t *st = state;
    if (!st->func)
        return zpipe_fail(call, ZPIPE_INVALID,
                          "the python plugin needs func=MODULE:QUALNAME "
                          "(zpipe run --config func=..., or the job's "
                          "config)");
    if (!PyGILState_Check())
        return zpipe_fail(call, ZPIPE_ERROR,
                          "called from a thread other than the one that "
                          "started Python in this process");
    if ((st->init || st->init_failed) && s_run_init(st, call) != 0)
        return ZPIPE_ERROR;
    if (st->main_mod)
        pyp_use_main(st->main_mod);
    PyObject *arg = pyp_decode(&st->codec, call->input, call->input_len);
    if (!arg)
        return pyp_fail(call, "cannot decode the payload: ");
    PyObject *res = st->codec.star ? PyObject_Call(st->func, arg, NULL)
                                   : PyObject_CallOneArg(st->func, arg);
    Py_DECREF(arg);
    if (!res)
        return pyp_fail(call, NULL);
    int status = pyp_encode(&st->codec, call, res);
    Py_DECREF(res);
    return status;
}

static const zpipe_plugin_t s_desc = {
    ZPIPE_PLUGIN_HEADER,
    .name = "python",
    .version = "1.0.0",
    .description = "calls a Python function per task (func=MODULE:QUALNAME)",
    .init = s_init,
    .process = s_process,
    .fini = s_fini,
    .reduce_init = pyp_reduce_init,
    .reduce = pyp_reduce,
    .reduce_final = pyp_reduce_final,
    .reduce_fini = pyp_reduce_fini,
};

ZPIPE_PLUGIN_EXPORT(s_desc)
