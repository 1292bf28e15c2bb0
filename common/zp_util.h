/* zp_util: small helpers shared by the daemons: clocks, growable buffers,
 * strict number parsing, JSON text and paths. */
#ifndef ZP_UTIL_H
#define ZP_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Wall clock (Unix µs) and monotonic clock (µs). */
uint64_t zp_now_us(void);
uint64_t zp_mono_us(void);

/* 64-bit FNV-1a of len bytes, and of a string: the key of the id
 * indexes (job ids, tokens, routing ids are short; it spreads them well). */
uint64_t zp_hash_bytes(const void *data, size_t len);
uint64_t zp_hash_str(const char *s);

/* Growable byte buffer; zero-initialise, reuse with len = 0. */
typedef struct {
    char *data;
    size_t len;
    size_t cap;
    bool borrowed; /* data is not the buffer's own (zp_buf_borrow) */
} zp_buf_t;

/* Makes buf an empty buffer in mem (cap bytes, borrowed: never freed nor
 * grown in place), freeing what it held of its own. Once it needs more
 * room it moves what it holds to storage of its own, and is an ordinary
 * buffer again. */
void zp_buf_borrow(zp_buf_t *buf, void *mem, size_t cap);

/* Makes room for extra more bytes; returns 0 or -1 on allocation failure
 * (a borrowed buffer is then as it was). Inline: called several times per
 * record on the sink's hot path, where the room is nearly always there. */
int zp_buf_grow(zp_buf_t *buf, size_t extra);
static inline int zp_buf_reserve(zp_buf_t *buf, size_t extra)
{
    return buf->cap - buf->len >= extra ? 0 : zp_buf_grow(buf, extra);
}
int zp_buf_append(zp_buf_t *buf, const void *data, size_t len);
int zp_buf_append_str(zp_buf_t *buf, const char *s);
int zp_buf_printf(zp_buf_t *buf, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Appends data as the inside of a JSON string (no quotes). Text that
 * should be UTF-8 but may not be is fine: each byte that does not begin a
 * well-formed sequence becomes \ufffd, so the result is always valid
 * JSON. */
int zp_buf_append_json(zp_buf_t *buf, const void *data, size_t len);
/* The same without the check, for data already known to be UTF-8
 * (zp_utf8_valid): one pass on a hot path. */
int zp_buf_append_json_utf8(zp_buf_t *buf, const void *data, size_t len);
int zp_buf_append_base64(zp_buf_t *buf, const void *data, size_t len);
void zp_buf_free(zp_buf_t *buf);

/* Escapes into a fixed buffer, truncating; always NUL-terminates. */
void zp_json_escape(char *dst, size_t cap, const char *src, size_t len);

/* True if data is well-formed UTF-8 (no overlongs, no surrogates). */
bool zp_utf8_valid(const void *data, size_t len);

/* Parses a whole decimal string into [min, max]; returns 0 or -1. */
int zp_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);

/* Writes all len bytes of data to fd, through short writes and EINTR.
 * Returns 0, or -1 (errno) when a write fails or writes nothing. */
int zp_write_all(int fd, const void *data, size_t len);

/* Directory holding the running executable; caller owns the result. */
char *zp_exe_dir(void);

/* Joins a and b with one '/'; caller owns the result. */
char *zp_path_join(const char *a, const char *b);

/* Random lowercase hex id of n bytes of entropy with a prefix; caller owns. */
char *zp_random_id(const char *prefix, size_t n);

/* Installs SIGTERM/SIGINT handlers that set a flag (zp_stopping) and
 * ignores SIGPIPE. parent_pid > 0 also makes zp_stopping true once that
 * process is gone, so children of a killed supervisor do not linger. */
void zp_signals_install(long parent_pid);
bool zp_stopping(void);
/* The signal that asked us to stop, or 0. */
int zp_stop_signal(void);
/* A descriptor that becomes readable when SIGTERM or SIGINT arrives (-1
 * before zp_signals_install, or when it could not be made): a poll that
 * includes it does not sleep through a signal that came after the loop
 * last asked zp_stopping and before it polled (a daemon told to stop
 * then slept up to its poll timeout, 50 or 100 ms, in 1 run of 20).
 * zp_stop_fd_drain empties it, so a loop that goes on after the signal
 * (finishing a task) sleeps again. */
int zp_stop_fd(void);
void zp_stop_fd_drain(void);

/* For a daemon whose big buffers (batches, result frames, input blocks,
 * libzmq's messages) come and go by the megabyte: glibc's allocator set
 * from the start where its own dynamic thresholds go after the first
 * 32 MiB block is freed (blocks under 32 MiB from the heap, up to 64 MiB
 * of free heap kept), so a freed buffer's pages serve the next one
 * instead of each fresh one costing a page fault per 4 KiB. */
void zp_malloc_tune(void);

#endif
