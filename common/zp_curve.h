/* zp_curve: CurveZMQ on every tcp:// socket of a process, with our own
 * ZAP handler and a count of every peer it turns away.
 *
 * A process given its own certificate (--curve-secret) makes each socket it
 * binds on tcp:// a CURVE server that accepts only the public keys found in
 * a directory of certificates (--curve-allow), and each socket it connects
 * on tcp:// a CURVE client of the server key it is given. ipc:// and
 * inproc:// sockets are left alone (file permissions guard them).
 *
 * libzmq 4.3 lets any CURVE client in when no ZAP handler runs, so the
 * handler starts, bound in the process's context, before any socket binds;
 * if it cannot, zp_curve_new fails and the process must not start.
 * Certificates are czmq's format (zcert), so `zpipe keygen`, czmq's tools
 * and pyzmq's zmq.auth read and write the same files. */
#ifndef ZP_CURVE_H
#define ZP_CURVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The command-line options every zpipe binary takes for CURVE. */
#define ZP_CURVE_OPTIONS(cfg_curve)                                            \
    {"curve-secret",                                                           \
     0,                                                                        \
     ZP_OPT_STR,                                                               \
     "ZPIPE_CURVE_SECRET",                                                     \
     "FILE",                                                                   \
     "own certificate (zpipe keygen's NAME.key_secret): CURVE on every "       \
     "tcp:// socket",                                                          \
     &(cfg_curve).secret,                                                      \
     0,                                                                        \
     0,                                                                        \
     NULL},                                                                    \
    {                                                                          \
        "curve-allow", 0, ZP_OPT_STR, "ZPIPE_CURVE_ALLOW", "DIR",              \
            "public certificates of the peers allowed to connect (with "       \
            "CURVE)",                                                          \
            &(cfg_curve).allow, 0, 0, NULL                                     \
    }

/* A client's own certificate (a process that only connects). */
#define ZP_CURVE_SECRET_OPTION(target)                                         \
    {                                                                          \
        "curve-secret", 0, ZP_OPT_STR, "ZPIPE_CURVE_SECRET", "FILE",           \
            "own certificate: talk CURVE on tcp://", &(target), 0, 0, NULL     \
    }
/* A server's public key for a connecting socket, e.g.
 * ZP_CURVE_KEY_OPTION("sink-key", "ZPIPE_SINK_KEY", "the sink", target). */
#define ZP_CURVE_KEY_OPTION(name, env, whose, target)                          \
    {                                                                          \
        name, 0, ZP_OPT_STR, env, "KEY|FILE",                                  \
            whose "'s public key, Z85 or certificate file (with CURVE)",       \
            &(target), 0, 0, NULL                                              \
    }

/* Length of a Z85-encoded CURVE key, without the terminating NUL. */
#define ZP_CURVE_KEY_LEN 40

typedef struct {
    const char *secret; /* own certificate file (with its secret key);
                           NULL or "" = CURVE off */
    const char *allow;  /* directory of public certificates allowed to
                           connect; required when a tcp:// socket binds */
} zp_curve_config_t;

/* Why peers were turned away. */
typedef struct {
    uint64_t unknown_key;   /* a CURVE key not in the allowed directory */
    uint64_t plaintext;     /* a peer without CURVE (or another mechanism) */
    uint64_t bad_handshake; /* a CURVE handshake that failed (wrong server
                               key, garbage) */
} zp_curve_counts_t;

typedef struct zp_curve zp_curve_t;

/* Sets up CURVE for sockets of ctx (borrowed; must outlive the result). With
 * cfg->secret unset the result is a disabled guard: every call is a no-op
 * and zp_curve_monitor is a plain monitor. Loads the certificate and, when
 * cfg->allow is set, every public certificate in it, and starts the ZAP
 * handler. NULL with err set (naming the file or directory and the reason)
 * when any of that fails. Caller owns the result. */
zp_curve_t *zp_curve_new(void *ctx, const zp_curve_config_t *cfg, char *err,
                         size_t errlen);

/* Stops the handler thread; call after closing every socket of the context
 * and before terminating it. Nulls the caller's pointer. */
void zp_curve_destroy(zp_curve_t **self_p);

bool zp_curve_enabled(const zp_curve_t *self);

/* Applies CURVE to sock before it binds (bind) or connects to endpoint: a
 * server for a bound tcp:// socket, a client of server_key (a Z85 key, see
 * zp_curve_key) for a connected one. Also starts counting the handshakes
 * that bound socket rejects. Returns 0 (also for non-tcp endpoints and a
 * disabled guard), or -1 with the reason logged (no allowed keys for a
 * server, no server key for a client). */
int zp_curve_apply(zp_curve_t *self, void *sock, const char *endpoint,
                   bool bind, const char *server_key);

/* A monitor of events on sock, like zp_monitor_open, for a socket that
 * zp_curve_apply also watches (libzmq allows one monitor per socket): the
 * guard's thread takes the handshake events and passes the others on.
 * Returns the PAIR socket to poll (caller closes it with zp_monitor_close)
 * or NULL (logged). */
void *zp_curve_monitor(zp_curve_t *self, void *sock, int events,
                       const char *name);

/* Counts the handshakes a bound socket without a monitor of its own
 * rejects. Returns 0 (also when CURVE is off), -1 (logged). */
int zp_curve_watch(zp_curve_t *self, void *sock, const char *name);

/* Peers turned away so far (thread-safe). */
void zp_curve_counts(const zp_curve_t *self, zp_curve_counts_t *out);

/* Logs one line with the counts, if any peer was turned away. */
void zp_curve_log_counts(const zp_curve_t *self, const char *who);

/* Reads a key given as 40 Z85 characters or as a certificate file (public
 * or secret; its public key is taken) into out (ZP_CURVE_KEY_LEN + 1
 * bytes). Returns 0, or -1 with err naming spec and the reason. */
int zp_curve_key(const char *spec, char *out, char *err, size_t errlen);

/* The server key a client socket uses: spec read as zp_curve_key into out,
 * or "" when spec is unset. A key given while CURVE is off is an error
 * (the user meant to turn it on). Returns 0, or -1 with err set; option
 * names the option for the message. */
int zp_curve_peer_key(const zp_curve_t *self, const char *option,
                      const char *spec, char *out, char *err, size_t errlen);

/* Writes a new keypair as czmq certificates: path (public, mode 0644) and
 * path_secret (mode 0600), with name in the metadata. Refuses to overwrite
 * unless force. Returns 0, or -1 with err set. */
int zp_curve_keygen(const char *path, const char *name, bool force, char *err,
                    size_t errlen);

#endif
