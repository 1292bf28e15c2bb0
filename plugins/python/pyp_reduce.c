/* pyp_reduce: the python plugin's reducer, run by the sink (zpipe run
 * --reduce): reduce=MODULE:QUALNAME folds each result, fold(acc, value) ->
 * acc with acc None at first and value decoded by the codec;
 * reduce_final=MODULE:QUALNAME (optional) turns the last acc into the
 * job's value, which the codec encodes into the job's record. */
#include "pyp.h"

#include <stdio.h>
#include <stdlib.h>

typedef struct {
    const zpipe_host_t *host; /* for log: reduce has no call */
    pyp_codec_fns_t codec;
    PyObject *fold, *final; /* final may be NULL: the value is acc */
    PyObject *main_mod;
    PyObject *acc;
} s_acc_t;

void pyp_reduce_fini(void *acc)
{
    s_acc_t *a = acc;
    if (!a)
        return;
    Py_XDECREF(a->fold);
    Py_XDECREF(a->final);
    Py_XDECREF(a->main_mod);
    Py_XDECREF(a->acc);
    free(a);
}

int pyp_reduce_init(const zpipe_host_t *host, void **acc)
{
    s_acc_t *a = calloc(1, sizeof *a);
    if (!a)
        return zpipe_init_fail(host, "out of memory");
    a->host = host;
    bool absent;
    if (pyp_codec_read(host, &a->codec) < 0 ||
        pyp_setup(host, &a->codec, &a->main_mod) < 0)
        goto fail;
    a->codec.star = false; /* star is about task arguments */
    a->fold = pyp_resolve(host, "reduce", &absent);
    if (!a->fold) {
        if (absent)
            zpipe_init_fail(host, "the python reducer needs "
                                  "reduce=MODULE:QUALNAME");
        goto fail;
    }
    a->final = pyp_resolve(host, "reduce_final", &absent);
    if (!a->final && !absent)
        goto fail;
    Py_INCREF(Py_None);
    a->acc = Py_None;
    *acc = a;
    return ZPIPE_OK;
fail:
    pyp_reduce_fini(a);
    return ZPIPE_INVALID;
}

int pyp_reduce(void *acc, const uint8_t *output, size_t len)
{
    s_acc_t *a = acc;
    if (a->main_mod)
        pyp_use_main(a->main_mod);
    PyObject *v = pyp_decode(&a->codec, output, len);
    PyObject *next =
        v ? PyObject_CallFunctionObjArgs(a->fold, a->acc, v, NULL) : NULL;
    Py_XDECREF(v);
    if (!next) {
        char text[PYP_MAX_ERROR];
        pyp_describe(text, sizeof text, true);
        a->host->log(ZPIPE_LOG_ERROR, "python", text);
        return ZPIPE_ERROR;
    }
    Py_SETREF(a->acc, next);
    return ZPIPE_OK;
}

int pyp_reduce_final(void *acc, zpipe_call_t *call)
{
    s_acc_t *a = acc;
    if (a->main_mod)
        pyp_use_main(a->main_mod);
    PyObject *value = a->acc;
    Py_INCREF(value);
    if (a->final) {
        Py_SETREF(value, PyObject_CallOneArg(a->final, a->acc));
        if (!value)
            return pyp_fail(call, "reduce_final raised: ");
    }
    int status = pyp_encode(&a->codec, call, value);
    Py_DECREF(value);
    return status;
}
