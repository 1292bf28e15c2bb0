/* pyp: the python plugin's pieces shared by its task and reducer halves:
 * the one interpreter of the process, settings that name Python objects,
 * the codecs and the failure a Python exception becomes.
 *
 * Everything here runs with the GIL held by the thread that started the
 * interpreter (the host calls a plugin from one thread: an executor's, the
 * worker's with --isolation none, the sink's for a reducer); the GIL is
 * never released between calls, so a call costs no lock traffic. */
#ifndef PYP_H
#define PYP_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <zpipe/plugin.h>

#include <stdbool.h>
#include <stddef.h>

/* Longest error text a task's exception becomes (the host keeps 4 KiB). */
#define PYP_MAX_ERROR 2048
/* Longest reason init gives (the host's refusal line keeps about 500). */
#define PYP_MAX_INIT_ERROR 400

typedef enum { PYP_RAW = 0, PYP_PICKLE, PYP_JSON } pyp_codec_t;

/* How payloads become arguments and results become output. The
 * functions are borrowed from the interpreter's module cache. */
typedef struct {
    pyp_codec_t kind;
    bool star;       /* the decoded payload is an argument tuple */
    PyObject *loads; /* pickle.loads / json.loads; NULL for raw */
    PyObject *dumps; /* pickle.dumps / compact json.dumps; NULL for raw */
} pyp_codec_fns_t;

/* Reads settings codec (raw|pickle|json, default raw) and star (0|1,
 * only with pickle or json) from host into codec, without Python.
 * Returns 0, or -1 having told host->init_error why. */
int pyp_codec_read(const zpipe_host_t *host, pyp_codec_fns_t *codec);

/* Reads the settings every Python part takes (path, main) from host,
 * fills codec's functions (pyp_codec_read first), starts the interpreter if
 * need be, puts path on sys.path and runs main. *main_mod gets the module that
 * must be __main__ while this part runs (a new reference, NULL without main).
 * Returns 0, or -1 having told host->init_error why. what names the part in
 * messages. */
int pyp_setup(const zpipe_host_t *host, pyp_codec_fns_t *codec,
              PyObject **main_mod);

/* Resolves setting key ("MODULE:QUALNAME") to a callable: a new
 * reference, or NULL having told host->init_error why (also when the
 * setting is missing and required). *absent is set when it is missing. */
PyObject *pyp_resolve(const zpipe_host_t *host, const char *key, bool *absent);

/* Makes main_mod the process's __main__ and __mp_main__ if it is not
 * already (another job's settings may have run another main file). */
void pyp_use_main(PyObject *main_mod);

/* The argument for payload under codec: a new reference, or NULL with a
 * Python exception set. */
PyObject *pyp_decode(const pyp_codec_fns_t *codec, const uint8_t *data,
                     size_t len);

/* Encodes value under codec and appends it to call's output. Returns
 * ZPIPE_OK; a failure status with the error set on call (an exception
 * from the encoder, a raw value of the wrong type: see pyp_fail); or
 * ZPIPE_ERROR when the host refused the output (it says why). */
int pyp_encode(const pyp_codec_fns_t *codec, zpipe_call_t *call,
               PyObject *value);

/* Turns the pending Python exception into call's failure: error text
 * "Type: message" and the end of the traceback (at most PYP_MAX_ERROR
 * bytes, prefixed by prefix if not NULL), cause python_exception. Returns
 * ZPIPE_NOMEM for a MemoryError, ZPIPE_RETRY when the exception has a
 * true `retryable` attribute, else ZPIPE_ERROR. Clears the exception. */
int pyp_fail(zpipe_call_t *call, const char *prefix);

/* The pending Python exception as text of at most cap bytes (with the
 * traceback when full), into buf; clears it. Returns buf. */
char *pyp_describe(char *buf, size_t cap, bool full);

/* The reducer's four callbacks (pyp_reduce.c), as in zpipe_plugin_t. */
int pyp_reduce_init(const zpipe_host_t *host, void **acc);
int pyp_reduce(void *acc, const uint8_t *output, size_t len);
int pyp_reduce_final(void *acc, zpipe_call_t *call);
void pyp_reduce_fini(void *acc);

#endif
