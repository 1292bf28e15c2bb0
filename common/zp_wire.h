/* zp_wire: protobuf's wire format as the hand-written encoders write it
 * (zp_codec's batch encoders, and wk_results', which encodes a worker's
 * results from its own records): field tags, varints, length-delimited
 * and fixed64 fields, proto3 defaults left out. The same bytes
 * protobuf-c writes; the unit tests compare them byte for byte. */
#ifndef ZP_WIRE_H
#define ZP_WIRE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Wire types. */
enum { ZP_WIRE_VARINT = 0, ZP_WIRE_I64 = 1, ZP_WIRE_LEN = 2, ZP_WIRE_I32 = 5 };

/* Bytes of v as a varint: 7 bits a byte, from its significant bits b as
 * (9b + 64) / 64 without a loop (b = 1..64 gives 1..10). */
static inline size_t zp_wire_vsize(uint64_t v)
{
    unsigned bits = 64u - (unsigned)__builtin_clzll(v | 1);
    return (bits * 9u + 64u) / 64u;
}

static inline uint8_t *zp_wire_put_varint(uint8_t *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    return p;
}

/* A proto3 string field's length: 0 (left out) when NULL or empty. */
static inline size_t zp_wire_str_len(const char *str)
{
    return str && *str ? strlen(str) : 0;
}

/* Bytes of a length-delimited field of len bytes (field numbers 1-15). */
static inline size_t zp_wire_len_field_size(size_t len)
{
    return 1 + zp_wire_vsize(len) + len;
}

static inline uint8_t *zp_wire_put_len_field(uint8_t *p, unsigned num,
                                             const void *data, size_t len)
{
    *p++ = (uint8_t)(num << 3 | ZP_WIRE_LEN);
    p = zp_wire_put_varint(p, len);
    memcpy(p, data, len);
    return p + len;
}

/* A varint field, left out when 0. */
static inline size_t zp_wire_opt_varint_size(uint64_t v)
{
    return v ? 1 + zp_wire_vsize(v) : 0;
}

static inline uint8_t *zp_wire_put_opt_varint(uint8_t *p, unsigned num,
                                              uint64_t v)
{
    if (v) {
        *p++ = (uint8_t)(num << 3 | ZP_WIRE_VARINT);
        p = zp_wire_put_varint(p, v);
    }
    return p;
}

/* A bool field, left out when false. */
static inline uint8_t *zp_wire_put_opt_bool(uint8_t *p, unsigned num, int v)
{
    if (v) {
        *p++ = (uint8_t)(num << 3 | ZP_WIRE_VARINT);
        *p++ = 1;
    }
    return p;
}

/* A fixed64 field: its tag, then v in 8 bytes, little-endian. */
static inline uint8_t *zp_wire_put_fixed64(uint8_t *p, unsigned num, uint64_t v)
{
    *p++ = (uint8_t)(num << 3 | ZP_WIRE_I64);
    for (int i = 0; i < 8; i++)
        *p++ = (uint8_t)(v >> (8 * i));
    return p;
}

/* The body's length of a message of size bytes (the kind's tag, the
 * body's length as a varint, the body): without walking it again. 0
 * when no body length fits. */
static inline size_t zp_wire_body_of(size_t size)
{
    for (size_t k = 1; k <= 10 && k < size; k++)
        if (zp_wire_vsize(size - 1 - k) == k)
            return size - 1 - k;
    return 0;
}

#endif
