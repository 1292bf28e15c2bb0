/* gzip: compresses (or decompresses) each task's payload with zlib.
 *
 * Settings (host->config; zpipe run --config KEY=VALUE, a worker's
 * --plugin-config gzip.KEY=VALUE, or ZPIPE_PLUGIN_GZIP_KEY):
 *   level   0 (store) to 9 (smallest). Default 6, zlib's own default.
 *   mode    compress|decompress. Default compress.
 *   format  gzip (RFC 1952, what gzip(1) and Python's gzip module read),
 *           zlib (RFC 1950, Python's zlib.compress) or raw (RFC 1951
 *           deflate, no header). Default gzip.
 *
 * Output is binary. Decompressing stops at the host's output limit (a
 * small payload may inflate to gigabytes) and fails the task; corrupt or
 * truncated input fails as ZPIPE_INVALID with zlib's reason. A gzip payload
 * of several members decompresses to their concatenation, as gzip -d does.
 *
 * One z_stream per state, reset between tasks: deflateInit2 allocates about
 * 256 KiB and sets up tables, which would cost more than compressing a short
 * line. */
#define ZLIB_CONST /* next_in is const: the payload is borrowed read-only */
#include <zpipe/plugin.h>

#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define GZIP_CHUNK 65536

typedef struct {
    bool decompress;
    int level;
    int window_bits; /* 15 for zlib, -15 for raw, 15 + 16 for gzip */
    z_stream strm;
    bool strm_ready;      /* strm was initialised and must be ended */
    unsigned char *chunk; /* GZIP_CHUNK bytes of output at a time */
} gzip_state_t;

static void gzip_fini(void *state)
{
    gzip_state_t *s = state;
    if (!s)
        return;
    if (s->strm_ready) {
        if (s->decompress)
            inflateEnd(&s->strm);
        else
            deflateEnd(&s->strm);
    }
    free(s->chunk);
    free(s);
}

static int s_bad(const zpipe_host_t *host, gzip_state_t *s, const char *key,
                 const char *value, const char *why)
{
    char msg[256];
    snprintf(msg, sizeof msg, "setting %s=%s: %s", key, value, why);
    gzip_fini(s);
    return zpipe_init_fail(host, msg);
}

static int gzip_init(const zpipe_host_t *host, void **state)
{
    gzip_state_t *s = calloc(1, sizeof *s);
    if (!s)
        return ZPIPE_NOMEM;
    s->level = 6;
    s->window_bits = 15 + 16;
    const char *v;
    if ((v = zpipe_config(host, "level"))) {
        if (v[0] < '0' || v[0] > '9' || v[1] != '\0')
            return s_bad(host, s, "level", v, "expected 0 to 9");
        s->level = v[0] - '0';
    }
    if ((v = zpipe_config(host, "mode"))) {
        if (strcmp(v, "compress") == 0)
            s->decompress = false;
        else if (strcmp(v, "decompress") == 0)
            s->decompress = true;
        else
            return s_bad(host, s, "mode", v, "expected compress or decompress");
    }
    if ((v = zpipe_config(host, "format"))) {
        if (strcmp(v, "gzip") == 0)
            s->window_bits = 15 + 16;
        else if (strcmp(v, "zlib") == 0)
            s->window_bits = 15;
        else if (strcmp(v, "raw") == 0)
            s->window_bits = -15;
        else
            return s_bad(host, s, "format", v, "expected gzip, zlib or raw");
    }
    s->chunk = malloc(GZIP_CHUNK);
    if (!s->chunk) {
        gzip_fini(s);
        return ZPIPE_NOMEM;
    }
    int zrc = s->decompress
                  ? inflateInit2(&s->strm, s->window_bits)
                  : deflateInit2(&s->strm, s->level, Z_DEFLATED, s->window_bits,
                                 8, Z_DEFAULT_STRATEGY);
    if (zrc != Z_OK) {
        char msg[256];
        snprintf(msg, sizeof msg, "zlib %s: %s", zlibVersion(),
                 s->strm.msg ? s->strm.msg : zError(zrc));
        gzip_fini(s);
        return zrc == Z_MEM_ERROR ? ZPIPE_NOMEM : zpipe_init_fail(host, msg);
    }
    s->strm_ready = true;
    *state = s;
    return ZPIPE_OK;
}

/* Feeds the rest of the payload, at most UINT_MAX bytes at a time (avail_in
 * is an unsigned int). */
static void s_feed(z_stream *strm, const uint8_t **in, size_t *left)
{
    if (strm->avail_in == 0 && *left > 0) {
        uInt n = *left > UINT_MAX ? UINT_MAX : (uInt)*left;
        strm->next_in = *in;
        strm->avail_in = n;
        *in += n;
        *left -= n;
    }
}

/* Appends what the last deflate/inflate call wrote to the chunk. */
static int s_flush(gzip_state_t *s, zpipe_call_t *call)
{
    size_t n = GZIP_CHUNK - s->strm.avail_out;
    if (n && zpipe_append(call, s->chunk, n) < 0)
        return -1;
    s->strm.next_out = s->chunk;
    s->strm.avail_out = GZIP_CHUNK;
    return 0;
}

static int s_compress(gzip_state_t *s, zpipe_call_t *call)
{
    const uint8_t *in = call->input;
    size_t left = call->input_len;
    if (deflateReset(&s->strm) != Z_OK)
        return zpipe_fail(call, ZPIPE_ERROR, "deflateReset failed");
    s->strm.next_out = s->chunk;
    s->strm.avail_out = GZIP_CHUNK;
    for (;;) {
        s_feed(&s->strm, &in, &left);
        int zrc = deflate(&s->strm, left ? Z_NO_FLUSH : Z_FINISH);
        if (zrc == Z_STREAM_ERROR)
            return zpipe_fail(call, ZPIPE_ERROR, "deflate: stream error");
        if ((s->strm.avail_out == 0 || zrc == Z_STREAM_END) &&
            s_flush(s, call) < 0)
            return zpipe_fail(call, ZPIPE_ERROR, "output too large");
        if (zrc == Z_STREAM_END)
            return ZPIPE_OK;
    }
}

static int s_decompress(gzip_state_t *s, zpipe_call_t *call)
{
    const uint8_t *in = call->input;
    size_t left = call->input_len;
    char msg[256];
    if (inflateReset(&s->strm) != Z_OK)
        return zpipe_fail(call, ZPIPE_ERROR, "inflateReset failed");
    s->strm.avail_in = 0;
    s->strm.next_out = s->chunk;
    s->strm.avail_out = GZIP_CHUNK;
    for (;;) {
        s_feed(&s->strm, &in, &left);
        int zrc = inflate(&s->strm, Z_NO_FLUSH);
        if ((s->strm.avail_out == 0 || zrc == Z_STREAM_END) &&
            s_flush(s, call) < 0)
            return zpipe_fail(call, ZPIPE_ERROR, "output too large");
        switch (zrc) {
        case Z_OK:
            continue;
        case Z_STREAM_END:
            if (s->strm.avail_in == 0 && left == 0)
                return ZPIPE_OK;
            /* More bytes: the next gzip member, or garbage after the end. */
            if (s->window_bits > 15 && inflateReset(&s->strm) == Z_OK)
                continue;
            return zpipe_fail(call, ZPIPE_INVALID,
                              "trailing bytes after the end of the stream");
        case Z_BUF_ERROR:
            /* No progress possible, and there was room for output and all
             * the input left (s_feed): the input ends before the stream. */
            return zpipe_fail(call, ZPIPE_INVALID,
                              call->input_len ? "truncated input: the "
                                                "stream does not end"
                                              : "empty input");
        case Z_NEED_DICT:
            return zpipe_fail(call, ZPIPE_INVALID,
                              "the stream needs a preset dictionary");
        case Z_MEM_ERROR:
            return zpipe_fail(call, ZPIPE_NOMEM, "inflate: out of memory");
        case Z_DATA_ERROR:
        default:
            snprintf(msg, sizeof msg, "corrupt input: %s",
                     s->strm.msg ? s->strm.msg : zError(zrc));
            return zpipe_fail(call, ZPIPE_INVALID, msg);
        }
    }
}

static int gzip_process(void *state, zpipe_call_t *call)
{
    gzip_state_t *s = state;
    return s->decompress ? s_decompress(s, call) : s_compress(s, call);
}

static const zpipe_plugin_t gzip_plugin = {
    ZPIPE_PLUGIN_HEADER,
    .name = "gzip",
    .version = "1.0",
    .description = "zlib compression of the payload (--config level=0-9 "
                   "mode=compress|decompress format=gzip|zlib|raw)",
    .init = gzip_init,
    .process = gzip_process,
    .fini = gzip_fini,
};

ZPIPE_PLUGIN_EXPORT(gzip_plugin)
