/* zp_log: one line per event on stderr, text or JSON, filtered by level. */
#ifndef ZP_LOG_H
#define ZP_LOG_H

#include <stdbool.h>
#include <stdint.h>

typedef enum {
    ZP_LOG_ERROR = 0,
    ZP_LOG_WARN = 1,
    ZP_LOG_INFO = 2,
    ZP_LOG_DEBUG = 3,
} zp_log_level_t;

/* Name printed on every line (borrowed; must outlive logging). */
void zp_log_init(const char *program);
/* Sets the level from "error|warn|info|debug"; returns 0 or -1 if unknown. */
int zp_log_set_level(const char *name);
/* Sets "text" or "json"; returns 0 or -1 if unknown. */
int zp_log_set_format(const char *name);
bool zp_log_enabled(zp_log_level_t level);
/* Current level and format names, for handing on to child processes. */
const char *zp_log_level_name(void);
const char *zp_log_format_name(void);
void zp_log(zp_log_level_t level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* The one rate limit for a warning that may repeat without bound (bad
 * frames from a peer): true for its 1st to 10th occurrence and every
 * 1,000th after; count is the occurrence's number, from 1. */
bool zp_log_sampled(uint64_t count);

#define zp_error(...) zp_log(ZP_LOG_ERROR, __VA_ARGS__)
#define zp_warn(...)  zp_log(ZP_LOG_WARN, __VA_ARGS__)
#define zp_info(...)  zp_log(ZP_LOG_INFO, __VA_ARGS__)
#define zp_debug(...)                                                          \
    do {                                                                       \
        if (zp_log_enabled(ZP_LOG_DEBUG))                                      \
            zp_log(ZP_LOG_DEBUG, __VA_ARGS__);                                 \
    } while (0)

#endif
