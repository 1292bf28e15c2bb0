/* zp_name: the one validator for names that cross a boundary (plugin
 * names, job ids, setting keys, key files): 1 to max characters of
 * [A-Za-z0-9] plus a given set of punctuation. */
#ifndef ZP_NAME_H
#define ZP_NAME_H

#include <stdbool.h>
#include <stddef.h>

/* Whether s[0..len) is 1 to max of [A-Za-z0-9] and the characters in
 * extra (NULL = none). s may be NULL (false). */
bool zp_name_valid(const char *s, size_t len, size_t max, const char *extra);

/* The names the protocol uses, by the rules in docs/protocol.md. */
#define ZP_PLUGIN_NAME_MAX   64
#define ZP_PLUGIN_NAME_EXTRA "_-."
#define ZP_SETTING_KEY_MAX   64
#define ZP_SETTING_KEY_EXTRA "_.-"
/* A plugin name: 1 to 64 of [A-Za-z0-9_.-]. NUL-terminated; NULL false. */
bool zp_plugin_name_valid(const char *s);

#endif
