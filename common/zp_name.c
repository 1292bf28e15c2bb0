/* zp_name: the one validator for names that cross a boundary. */
#include "zp_name.h"

#include <string.h>

bool zp_name_valid(const char *s, size_t len, size_t max, const char *extra)
{
    if (!s || len == 0 || len > max)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                  (c >= '0' && c <= '9') || (c && extra && strchr(extra, c));
        if (!ok)
            return false;
    }
    return true;
}

bool zp_plugin_name_valid(const char *s)
{
    return s && zp_name_valid(s, strnlen(s, ZP_PLUGIN_NAME_MAX + 1),
                              ZP_PLUGIN_NAME_MAX, ZP_PLUGIN_NAME_EXTRA);
}
