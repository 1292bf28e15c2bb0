/* zp_crc32c: CRC-32C (Castagnoli, the iSCSI/ext4/Kafka checksum) for the
 * ventilator's journal records. zp_crc32c picks, once, the SSE 4.2 crc32
 * instruction when the CPU has it and a slice-by-8 table otherwise; both
 * give the same value (crc32c("123456789") == 0xE3069283). */
#ifndef ZP_CRC32C_H
#define ZP_CRC32C_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The CRC-32C of data[0..len) continued from crc: pass 0 to start, and
 * the previous result to continue, so zp_crc32c(zp_crc32c(0, a, n), b, m)
 * is the checksum of a followed by b. Thread-safe. */
uint32_t zp_crc32c(uint32_t crc, const void *data, size_t len);

/* The two implementations behind zp_crc32c, for tests and benchmarks.
 * zp_crc32c_hw may be called only when zp_crc32c_hw_available(). */
uint32_t zp_crc32c_sw(uint32_t crc, const void *data, size_t len);
uint32_t zp_crc32c_hw(uint32_t crc, const void *data, size_t len);
bool zp_crc32c_hw_available(void);

#endif
