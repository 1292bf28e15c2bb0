/* zp_lease: the dispatch tokens that tie a result to the dispatch the
 * ventilator made.
 *
 * Every job has a random 16-byte key, made by the ventilator that
 * dispatches it and given to the sink in JobOpen.dispatch_key (both
 * journal it, so it survives their restarts). Each task the ventilator
 * sends carries Task.lease = zp_lease(key, task id, attempt); the worker
 * copies it into Result.lease, and the sink accepts a result for a keyed
 * job only when it matches. A worker of another cluster (another job under
 * the same id), a result for a task id never dispatched, or a peer that
 * makes results up cannot produce one: it never saw the key. This guards
 * against bugs and misconfiguration, not against a peer that reads keys
 * off the wire: that is what CURVE is for.
 *
 * The token is a keyed 64-bit mix of the task id and attempt: two rounds
 * of the murmur3 finalizer (a bijection), the key's halves XORed in before
 * each: ~2 ns, where SipHash-2-4 cost 40 ns a task on each side (4 % of
 * an empty task's whole run). For a given key and attempt, distinct tasks
 * get distinct tokens; without the key a token is a 64-bit guess. It is
 * not a MAC against a peer that collects tokens to recover the key (the
 * threat is bugs; CURVE keeps strangers off the wire). Never 0 (0 is "no
 * lease", what older workers send). */
#ifndef ZP_LEASE_H
#define ZP_LEASE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ZP_LEASE_KEY_LEN 16

/* A job's key; all zero bytes is "no key" (a job opened without one). */
typedef struct {
    uint8_t b[ZP_LEASE_KEY_LEN];
} zp_lease_key_t;

/* The token for attempt of task under key; never 0. */
uint64_t zp_lease(const zp_lease_key_t *key, uint64_t task, uint32_t attempt);

/* Fills key with random bytes (getrandom, else /dev/urandom, else the
 * clock and pid mixed: never all zero). */
void zp_lease_key_new(zp_lease_key_t *key);

/* Whether key is set (not all zero). */
bool zp_lease_key_set(const zp_lease_key_t *key);

/* key from 16 bytes (len must be ZP_LEASE_KEY_LEN: returns -1 otherwise,
 * key untouched); a 0-length input clears it. */
int zp_lease_key_from(zp_lease_key_t *key, const uint8_t *data, size_t len);

/* key as 32 lowercase hex digits and a NUL into out[33]; and back
 * (returns -1 unless hex is exactly 32 hex digits). */
void zp_lease_key_hex(const zp_lease_key_t *key, char out[33]);
int zp_lease_key_parse(zp_lease_key_t *key, const char *hex);

#endif
