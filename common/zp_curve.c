/* zp_curve: CURVE on tcp:// sockets, a ZAP handler that knows the allowed
 * keys, and counts of rejected peers taken from socket monitors.
 *
 * One thread per process does the ZAP replies and reads the handshake
 * events of every bound CURVE socket. Our own handler rather than czmq's
 * zauth: zauth binds in czmq's global context (ours is our own) and keeps
 * no counts; czmq's zcert still reads and writes the certificates, from
 * libczmq loaded when a certificate file is first read (zp_czmq.h). */
#define _GNU_SOURCE
#include "zp_curve.h"
#include "zp_czmq.h"
#include "zp_log.h"
#include "zp_net.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zmq.h>

#define S_ZAP_ENDPOINT "inproc://zeromq.zap.01"
#define S_HANDSHAKE_EVENTS                                                     \
    (ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |                                    \
     ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)
#define S_MAX_WATCHED 16

typedef struct {
    void *events;  /* PAIR: libzmq's monitor events for one socket */
    void *forward; /* PAIR: the other events, to the owner; or NULL */
    char name[32];
} s_watch_t;

struct zp_curve {
    void *ctx;
    bool enabled;
    char public_txt[ZP_CURVE_KEY_LEN + 1];
    char secret_txt[ZP_CURVE_KEY_LEN + 1];
    const char *allow_dir;
    uint8_t (*allowed)[32];
    size_t n_allowed;
    pthread_t thread;
    bool thread_up;
    void *pipe; /* PAIR to the thread */
    unsigned next_id;
    _Atomic uint64_t unknown_key, plaintext, bad_handshake;
};

/* A certificate's keys; secret stays "" when the file has none. what names
 * the option or command for the error when libczmq cannot be loaded. */
static int s_load_cert(const char *what, const char *path, char *public_txt,
                       char *secret_txt, char *err, size_t errlen)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "%s: not a certificate file", path);
        return -1;
    }
    /* zcert_load prefers PATH_secret, and zconfig_load leaks when a file
     * does not parse: read exactly the named file, then parse the text. */
    char text[16384];
    FILE *f = st.st_size < (off_t)sizeof text ? fopen(path, "r") : NULL;
    size_t len = f ? fread(text, 1, sizeof text - 1, f) : 0;
    if (f)
        fclose(f);
    text[len] = '\0';
    const zp_czmq_t *cz = zp_czmq(what, err, errlen);
    if (!cz) {
        explicit_bzero(text, sizeof text);
        return -1;
    }
    zconfig_t *root = len ? cz->zconfig_str_load(text) : NULL;
    explicit_bzero(text, sizeof text);
    const char *pub =
        root ? cz->zconfig_get(root, "curve/public-key", NULL) : NULL;
    const char *sec =
        root ? cz->zconfig_get(root, "curve/secret-key", NULL) : NULL;
    uint8_t bin[32];
    int rc = -1;
    if (!pub || strlen(pub) != ZP_CURVE_KEY_LEN || !zmq_z85_decode(bin, pub)) {
        snprintf(err, errlen,
                 "%s: not a CURVE certificate (no valid curve/public-key; "
                 "make one with zpipe keygen)",
                 path);
        goto done;
    }
    memcpy(public_txt, pub, ZP_CURVE_KEY_LEN + 1);
    if (secret_txt) {
        if (!sec || strlen(sec) != ZP_CURVE_KEY_LEN ||
            !zmq_z85_decode(bin, sec)) {
            snprintf(err, errlen,
                     "%s: has no secret key (give the NAME.key_secret file "
                     "that zpipe keygen wrote)",
                     path);
            goto done;
        }
        memcpy(secret_txt, sec, ZP_CURVE_KEY_LEN + 1);
        if (st.st_mode & (S_IRGRP | S_IROTH | S_IWGRP | S_IWOTH))
            zp_warn("%s: secret key file is readable by others (mode %03o); "
                    "chmod 600 it",
                    path, (unsigned)(st.st_mode & 0777));
    }
    rc = 0;
done:
    cz->zconfig_destroy(&root);
    return rc;
}

static int s_load_allowed(zp_curve_t *self, const char *dir, char *err,
                          size_t errlen)
{
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(err, errlen, "%s: cannot read the allowed keys: %s", dir,
                 strerror(errno));
        return -1;
    }
    size_t cap = 0;
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(d)) && rc == 0) {
        size_t len = strlen(e->d_name);
        /* Secret files are ignored: the directory holds public keys. */
        if (e->d_name[0] == '.' ||
            (len > 7 && strcmp(e->d_name + len - 7, "_secret") == 0))
            continue;
        char *path;
        if (asprintf(&path, "%s/%s", dir, e->d_name) < 0)
            break;
        struct stat st;
        char pub[ZP_CURVE_KEY_LEN + 1];
        if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
            if (s_load_cert("--curve-allow", path, pub, NULL, err, errlen) < 0)
                rc = -1; /* a corrupt file is a misconfiguration */
            else {
                if (self->n_allowed == cap) {
                    cap = cap ? cap * 2 : 16;
                    void *grown =
                        realloc(self->allowed, cap * sizeof *self->allowed);
                    if (!grown) {
                        snprintf(err, errlen, "%s: out of memory", dir);
                        rc = -1;
                    } else
                        self->allowed = grown;
                }
                if (rc == 0)
                    zmq_z85_decode(self->allowed[self->n_allowed++], pub);
            }
        }
        free(path);
    }
    closedir(d);
    if (rc == 0 && self->n_allowed == 0) {
        snprintf(err, errlen,
                 "%s: no public certificates in it, so no peer could "
                 "connect; copy the peers' NAME.key files there",
                 dir);
        rc = -1;
    }
    return rc;
}

static bool s_allowed(const zp_curve_t *self, const uint8_t *key)
{
    for (size_t i = 0; i < self->n_allowed; i++)
        if (memcmp(self->allowed[i], key, 32) == 0)
            return true;
    return false;
}

static bool s_should_log(uint64_t n)
{
    return n <= 10 || n % 1000 == 0;
}

/* One ZAP request (RFC 27): version, request id, domain, address, identity,
 * mechanism, credentials. Anything but an allowed CURVE key is refused. */
static void s_zap(zp_curve_t *self, void *rep)
{
    zmq_msg_t part[8];
    int n = 0;
    for (int more = 1; more && n < 8; n++) {
        zmq_msg_init(&part[n]);
        if (zmq_msg_recv(&part[n], rep, 0) < 0) {
            zmq_msg_close(&part[n]);
            break;
        }
        more = zmq_msg_more(&part[n]);
    }
    const char *code = "400", *text = "not allowed";
    char address[64] = "?";
    if (n >= 7) {
        size_t al = zmq_msg_size(&part[3]);
        if (al >= sizeof address)
            al = sizeof address - 1;
        memcpy(address, zmq_msg_data(&part[3]), al);
        address[al] = '\0';
        bool curve = zmq_msg_size(&part[5]) == 5 &&
                     memcmp(zmq_msg_data(&part[5]), "CURVE", 5) == 0;
        if (curve && zmq_msg_size(&part[6]) == 32 &&
            s_allowed(self, zmq_msg_data(&part[6]))) {
            code = "200";
            text = "OK";
        } else {
            uint64_t k = atomic_fetch_add(&self->unknown_key, 1) + 1;
            if (s_should_log(k)) {
                char key[ZP_CURVE_KEY_LEN + 1] = "?";
                if (curve && zmq_msg_size(&part[6]) == 32)
                    zmq_z85_encode(key, zmq_msg_data(&part[6]), 32);
                zp_warn("refused a peer from %s: CURVE key %s is not in %s "
                        "(%llu refused so far)",
                        address, key, self->allow_dir, (unsigned long long)k);
            }
        }
    }
    /* Reply: version, request id, status code, text, user id, metadata. */
    zmq_send(rep, "1.0", 3, ZMQ_SNDMORE);
    if (n >= 2)
        zmq_send(rep, zmq_msg_data(&part[1]), zmq_msg_size(&part[1]),
                 ZMQ_SNDMORE);
    else
        zmq_send(rep, "", 0, ZMQ_SNDMORE);
    zmq_send(rep, code, 3, ZMQ_SNDMORE);
    zmq_send(rep, text, strlen(text), ZMQ_SNDMORE);
    zmq_send(rep, "", 0, ZMQ_SNDMORE);
    zmq_send(rep, "", 0, 0);
    for (int i = 0; i < n; i++)
        zmq_msg_close(&part[i]);
}

/* One monitor event: handshake failures are counted here, anything else
 * goes on to the socket's owner. */
static void s_event(zp_curve_t *self, s_watch_t *w)
{
    zmq_msg_t head, where;
    zmq_msg_init(&head);
    zmq_msg_init(&where);
    if (zmq_msg_recv(&head, w->events, 0) < 0)
        goto done;
    if (zmq_msg_more(&head) && zmq_msg_recv(&where, w->events, 0) < 0)
        goto done;
    if (zmq_msg_size(&head) < 6)
        goto done;
    uint16_t event;
    uint32_t value;
    memcpy(&event, zmq_msg_data(&head), 2);
    memcpy(&value, (char *)zmq_msg_data(&head) + 2, 4);
    if (!(event & S_HANDSHAKE_EVENTS)) {
        if (w->forward) {
            zmq_send(w->forward, zmq_msg_data(&head), zmq_msg_size(&head),
                     ZMQ_SNDMORE | ZMQ_DONTWAIT);
            zmq_send(w->forward, zmq_msg_data(&where), zmq_msg_size(&where),
                     ZMQ_DONTWAIT);
        }
        goto done;
    }
    /* A ZAP refusal was counted and logged by s_zap. */
    if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)
        goto done;
    int len = (int)zmq_msg_size(&where);
    if (event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL &&
        value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH) {
        uint64_t k = atomic_fetch_add(&self->plaintext, 1) + 1;
        if (s_should_log(k))
            zp_warn("%s: refused a peer from %.*s: it does not speak CURVE "
                    "(%llu refused so far)",
                    w->name, len, (char *)zmq_msg_data(&where),
                    (unsigned long long)k);
    } else {
        uint64_t k = atomic_fetch_add(&self->bad_handshake, 1) + 1;
        if (!s_should_log(k))
            ;
        else if (event == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL)
            zp_warn("%s: a peer from %.*s left during the handshake (%s) "
                    "(%llu failed handshakes so far)",
                    w->name, len, (char *)zmq_msg_data(&where),
                    strerror((int)value), (unsigned long long)k);
        else
            zp_warn("%s: refused a peer from %.*s: CURVE handshake failed "
                    "(protocol error 0x%x%s) (%llu failed handshakes so far)",
                    w->name, len, (char *)zmq_msg_data(&where), value,
                    value == ZMQ_PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC
                        ? ": it may have a wrong server key"
                        : "",
                    (unsigned long long)k);
    }
done:
    zmq_msg_close(&head);
    zmq_msg_close(&where);
}

typedef struct {
    zp_curve_t *self;
    void *rep; /* bound by zp_curve_new, so a failure is seen there */
} s_thread_arg_t;

static void *s_thread(void *arg_)
{
    s_thread_arg_t *arg = arg_;
    zp_curve_t *self = arg->self;
    void *rep = arg->rep;
    free(arg);
    void *pipe = zmq_socket(self->ctx, ZMQ_PAIR);
    zmq_connect(pipe, "inproc://zp-curve-pipe");
    s_watch_t watch[S_MAX_WATCHED];
    size_t n_watch = 0;
    for (;;) {
        zmq_pollitem_t items[2 + S_MAX_WATCHED];
        items[0] = (zmq_pollitem_t){.socket = pipe, .events = ZMQ_POLLIN};
        items[1] = (zmq_pollitem_t){.socket = rep, .events = ZMQ_POLLIN};
        for (size_t i = 0; i < n_watch; i++)
            items[2 + i] = (zmq_pollitem_t){.socket = watch[i].events,
                                            .events = ZMQ_POLLIN};
        if (zmq_poll(items, (int)(2 + n_watch), -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (items[1].revents & ZMQ_POLLIN)
            s_zap(self, rep);
        for (size_t i = 0; i < n_watch; i++)
            if (items[2 + i].revents & ZMQ_POLLIN)
                s_event(self, &watch[i]);
        if (!(items[0].revents & ZMQ_POLLIN))
            continue;
        /* "W id forward name": watch a socket's monitor; "" = stop. */
        char cmd[128];
        int len = zmq_recv(pipe, cmd, sizeof cmd - 1, 0);
        if (len <= 0)
            break;
        cmd[len < (int)sizeof cmd ? len : (int)sizeof cmd - 1] = '\0';
        unsigned id, forward;
        char name[32];
        const char *reply = "no";
        if (sscanf(cmd, "W %u %u %31s", &id, &forward, name) == 3 &&
            n_watch < S_MAX_WATCHED) {
            s_watch_t *w = &watch[n_watch];
            char ep[64];
            snprintf(ep, sizeof ep, "inproc://zp-curve-mon-%u", id);
            w->events = zmq_socket(self->ctx, ZMQ_PAIR);
            w->forward = NULL;
            snprintf(w->name, sizeof w->name, "%s", name);
            if (w->events && zmq_connect(w->events, ep) == 0) {
                reply = "ok";
                if (forward) {
                    snprintf(ep, sizeof ep, "inproc://zp-curve-fwd-%u", id);
                    w->forward = zmq_socket(self->ctx, ZMQ_PAIR);
                    if (!w->forward || zmq_bind(w->forward, ep) != 0)
                        reply = "no";
                }
            }
            if (strcmp(reply, "ok") == 0)
                n_watch++;
            else {
                if (w->forward)
                    zmq_close(w->forward);
                if (w->events)
                    zmq_close(w->events);
            }
        }
        zmq_send(pipe, reply, strlen(reply), 0);
    }
    int zero = 0;
    for (size_t i = 0; i < n_watch; i++) {
        zmq_setsockopt(watch[i].events, ZMQ_LINGER, &zero, sizeof zero);
        zmq_close(watch[i].events);
        if (watch[i].forward) {
            zmq_setsockopt(watch[i].forward, ZMQ_LINGER, &zero, sizeof zero);
            zmq_close(watch[i].forward);
        }
    }
    zmq_setsockopt(rep, ZMQ_LINGER, &zero, sizeof zero);
    zmq_close(rep);
    zmq_setsockopt(pipe, ZMQ_LINGER, &zero, sizeof zero);
    zmq_close(pipe);
    return NULL;
}

zp_curve_t *zp_curve_new(void *ctx, const zp_curve_config_t *cfg, char *err,
                         size_t errlen)
{
    zp_curve_t *self = calloc(1, sizeof *self);
    if (!self) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    self->ctx = ctx;
    if (!cfg->secret || !*cfg->secret) {
        if (cfg->allow && *cfg->allow) {
            snprintf(err, errlen,
                     "--curve-allow needs --curve-secret (this process's own "
                     "certificate)");
            goto fail;
        }
        return self;
    }
    self->enabled = true;
    if (s_load_cert("--curve-secret", cfg->secret, self->public_txt,
                    self->secret_txt, err, errlen) < 0)
        goto fail;
    if (cfg->allow && *cfg->allow) {
        self->allow_dir = cfg->allow;
        if (s_load_allowed(self, cfg->allow, err, errlen) < 0)
            goto fail;
        /* Bound here, before any socket binds: if it cannot be, there is
         * no authentication, and the process must not start. */
        void *rep = zmq_socket(ctx, ZMQ_REP);
        if (!rep || zmq_bind(rep, S_ZAP_ENDPOINT) != 0) {
            snprintf(err, errlen, "cannot start the CURVE authenticator: %s",
                     zmq_strerror(errno));
            if (rep)
                zmq_close(rep);
            goto fail;
        }
        self->pipe = zmq_socket(ctx, ZMQ_PAIR);
        s_thread_arg_t *arg = malloc(sizeof *arg);
        if (!self->pipe || !arg ||
            zmq_bind(self->pipe, "inproc://zp-curve-pipe") != 0) {
            snprintf(err, errlen, "cannot start the CURVE authenticator: %s",
                     zmq_strerror(errno));
            free(arg);
            zmq_close(rep);
            goto fail;
        }
        *arg = (s_thread_arg_t){self, rep};
        if (pthread_create(&self->thread, NULL, s_thread, arg) != 0) {
            snprintf(err, errlen, "cannot start the CURVE authenticator: %s",
                     strerror(errno));
            free(arg);
            zmq_close(rep);
            goto fail;
        }
        self->thread_up = true;
        zp_info("CURVE on: key %s, %zu allowed peer key%s from %s",
                self->public_txt, self->n_allowed,
                self->n_allowed == 1 ? "" : "s", cfg->allow);
    } else
        zp_debug("CURVE on: key %s (client only)", self->public_txt);
    return self;
fail:
    zp_curve_destroy(&self);
    return NULL;
}

void zp_curve_destroy(zp_curve_t **self_p)
{
    zp_curve_t *self = *self_p;
    if (!self)
        return;
    if (self->thread_up) {
        zmq_send(self->pipe, "", 0, 0);
        pthread_join(self->thread, NULL);
    }
    if (self->pipe) {
        int zero = 0;
        zmq_setsockopt(self->pipe, ZMQ_LINGER, &zero, sizeof zero);
        zmq_close(self->pipe);
    }
    free(self->allowed);
    explicit_bzero(self->secret_txt, sizeof self->secret_txt);
    free(self);
    *self_p = NULL;
}

bool zp_curve_enabled(const zp_curve_t *self)
{
    return self && self->enabled;
}

static bool s_is_tcp(const char *endpoint)
{
    return strncmp(endpoint, "tcp://", 6) == 0;
}

/* Asks the thread to watch sock's handshake events (and pass the rest on
 * when forward_events). Returns the owner's PAIR, or (void *)1 when nothing
 * is forwarded; NULL on failure (logged). */
static void *s_watch(zp_curve_t *self, void *sock, int forward_events,
                     const char *name)
{
    unsigned id = self->next_id++;
    char ep[64], cmd[96];
    snprintf(ep, sizeof ep, "inproc://zp-curve-mon-%u", id);
    if (zmq_socket_monitor(sock, ep, S_HANDSHAKE_EVENTS | forward_events) !=
        0) {
        zp_error("%s: cannot watch handshakes: %s", name, zmq_strerror(errno));
        return NULL;
    }
    int n = snprintf(cmd, sizeof cmd, "W %u %d %.31s", id, forward_events != 0,
                     name);
    char reply[8] = "";
    if (zmq_send(self->pipe, cmd, (size_t)n, 0) < 0 ||
        zmq_recv(self->pipe, reply, sizeof reply, 0) < 0 ||
        strncmp(reply, "ok", 2) != 0) {
        zp_error("%s: cannot watch handshakes (at most %d sockets)", name,
                 S_MAX_WATCHED);
        zmq_socket_monitor(sock, NULL, 0);
        return NULL;
    }
    if (!forward_events)
        return (void *)1;
    snprintf(ep, sizeof ep, "inproc://zp-curve-fwd-%u", id);
    return zp_monitor_connect(self->ctx, ep, name);
}

int zp_curve_apply(zp_curve_t *self, void *sock, const char *endpoint,
                   bool bind, const char *server_key)
{
    if (!zp_curve_enabled(self) || !s_is_tcp(endpoint))
        return 0;
    if (bind) {
        if (!self->thread_up) {
            zp_error("%s: binding with CURVE needs --curve-allow DIR (the "
                     "public keys allowed to connect)",
                     endpoint);
            return -1;
        }
        int on = 1;
        zmq_setsockopt(sock, ZMQ_CURVE_SERVER, &on, sizeof on);
        zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, self->secret_txt,
                       ZP_CURVE_KEY_LEN);
        zmq_setsockopt(sock, ZMQ_ZAP_DOMAIN, "zpipe", 5);
        return 0;
    }
    if (!server_key || !*server_key) {
        zp_error("%s: connecting with CURVE needs the server's public key "
                 "(--ventilator-key or --sink-key)",
                 endpoint);
        return -1;
    }
    if (zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, server_key,
                       ZP_CURVE_KEY_LEN) != 0 ||
        zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, self->public_txt,
                       ZP_CURVE_KEY_LEN) != 0 ||
        zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, self->secret_txt,
                       ZP_CURVE_KEY_LEN) != 0) {
        zp_error("%s: cannot set CURVE keys: %s", endpoint,
                 zmq_strerror(errno));
        return -1;
    }
    return 0;
}

void *zp_curve_monitor(zp_curve_t *self, void *sock, int events,
                       const char *name)
{
    if (!self || !self->thread_up)
        return zp_monitor_open(self ? self->ctx : NULL, sock, events, name);
    void *mon = s_watch(self, sock, events, name);
    return mon == (void *)1 ? NULL : mon;
}

int zp_curve_watch(zp_curve_t *self, void *sock, const char *name)
{
    if (!self || !self->thread_up)
        return 0;
    return s_watch(self, sock, 0, name) ? 0 : -1;
}

void zp_curve_counts(const zp_curve_t *self, zp_curve_counts_t *out)
{
    memset(out, 0, sizeof *out);
    if (!self)
        return;
    out->unknown_key = atomic_load(&self->unknown_key);
    out->plaintext = atomic_load(&self->plaintext);
    out->bad_handshake = atomic_load(&self->bad_handshake);
}

void zp_curve_log_counts(const zp_curve_t *self, const char *who)
{
    zp_curve_counts_t c;
    zp_curve_counts(self, &c);
    if (!zp_curve_enabled(self))
        return;
    zp_info("%s: CURVE refused %llu peers: %llu unknown key, %llu plaintext, "
            "%llu failed handshake",
            who,
            (unsigned long long)(c.unknown_key + c.plaintext + c.bad_handshake),
            (unsigned long long)c.unknown_key, (unsigned long long)c.plaintext,
            (unsigned long long)c.bad_handshake);
}

/* zp_curve_key, with what naming the option for the error when libczmq
 * cannot be loaded. */
static int s_key(const char *what, const char *spec, char *out, char *err,
                 size_t errlen)
{
    /* Z85 has '/' and '.' in its alphabet: a file of that name wins. */
    uint8_t bin[32];
    struct stat st;
    if (strlen(spec) == ZP_CURVE_KEY_LEN && stat(spec, &st) != 0 &&
        zmq_z85_decode(bin, spec)) {
        memcpy(out, spec, ZP_CURVE_KEY_LEN + 1);
        return 0;
    }
    return s_load_cert(what, spec, out, NULL, err, errlen);
}

int zp_curve_key(const char *spec, char *out, char *err, size_t errlen)
{
    return s_key("reading a CURVE certificate file", spec, out, err, errlen);
}

int zp_curve_peer_key(const zp_curve_t *self, const char *option,
                      const char *spec, char *out, char *err, size_t errlen)
{
    out[0] = '\0';
    if (!spec || !*spec)
        return 0;
    if (!zp_curve_enabled(self)) {
        snprintf(err, errlen, "--%s needs --curve-secret (CURVE is off)",
                 option);
        return -1;
    }
    char what[64];
    snprintf(what, sizeof what, "--%s", option);
    return s_key(what, spec, out, err, errlen);
}

int zp_curve_keygen(const char *path, const char *name, bool force, char *err,
                    size_t errlen)
{
    char secret[4096];
    snprintf(secret, sizeof secret, "%s_secret", path);
    struct stat st;
    if (!force && (stat(path, &st) == 0 || stat(secret, &st) == 0)) {
        snprintf(err, errlen, "%s: exists; not overwritten (--force to)",
                 stat(path, &st) == 0 ? path : secret);
        return -1;
    }
    const zp_czmq_t *cz = zp_czmq("zpipe keygen", err, errlen);
    if (!cz)
        return -1;
    zcert_t *cert = cz->zcert_new();
    if (!cert) {
        snprintf(err, errlen, "cannot make a keypair: %s", strerror(errno));
        return -1;
    }
    cz->zcert_set_meta(cert, "name", "%s", name);
    cz->zcert_set_meta(cert, "made-by", "zpipe keygen");
    int rc = cz->zcert_save(cert, path);
    cz->zcert_destroy(&cert);
    if (rc != 0) {
        snprintf(err, errlen, "%s: cannot write: %s", path, strerror(errno));
        return -1;
    }
    chmod(secret, 0600);
    chmod(path, 0644);
    return 0;
}
