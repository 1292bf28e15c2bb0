/* zp_json: JSON text written fast, for the sink's records (a million a
 * second) and every other JSON line the daemons write. Strings are
 * escaped in one pass that copies runs of bytes needing nothing eight at
 * a time (and checks UTF-8 in the same pass); numbers are written
 * without printf. Appends to a zp_buf_t and allocates only when it
 * grows. The escaping is the one every record ever had: '"' and '\\'
 * backslashed, \n \r \t as such, other bytes below 0x20 as \u00XX,
 * everything else (DEL and UTF-8 included) as it is. */
#ifndef ZP_JSON_H
#define ZP_JSON_H

#include "zp_util.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The most bytes zp_json_u64 writes. */
#define ZP_JSON_U64_MAX 20

/* Writes v in decimal at p (room for ZP_JSON_U64_MAX bytes, no NUL);
 * returns the end of what it wrote. */
char *zp_json_u64(char *p, uint64_t v);

/* Appends data as the inside of a JSON string (no quotes), each byte
 * that does not begin a well-formed UTF-8 sequence (overlongs,
 * surrogates and code points past U+10FFFF are not) replaced with
 * \ufffd: the result is valid JSON whatever data holds. Returns 0, or
 * -1 when out of memory (b as it was). */
int zp_json_text(zp_buf_t *b, const void *data, size_t len);

/* The same for data that must be well-formed UTF-8: returns 0, or
 * ZP_JSON_NOT_UTF8 when it is not (b as it was: the caller writes it
 * another way, as base64), or -1 when out of memory (b as it was). */
#define ZP_JSON_NOT_UTF8 1
int zp_json_utf8(zp_buf_t *b, const void *data, size_t len);

/* The same without any UTF-8 check: bytes from 0x80 up are copied as
 * they are (data known to be UTF-8). Returns 0, or -1 (b as it was). */
int zp_json_raw(zp_buf_t *b, const void *data, size_t len);

/* The length (1-4) of the well-formed UTF-8 sequence at s, of at most
 * avail bytes, or 0 when there is none (or avail is 0). */
size_t zp_utf8_seq(const void *s, size_t avail);

#endif
