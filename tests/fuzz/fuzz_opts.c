/* libFuzzer target: any bytes, split at NULs, as a command line for the
 * option parser (the worker's option table). Must never crash. */
#include "zp_log.h"
#include "zp_opts.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096)
        return 0;
    char *copy = malloc(size + 1);
    if (!copy)
        return 0;
    memcpy(copy, data, size);
    copy[size] = '\0';
    char *argv[64];
    int argc = 0;
    argv[argc++] = "prog";
    for (size_t i = 0; i < size && argc < 63;) {
        argv[argc++] = copy + i;
        i += strlen(copy + i) + 1;
    }
    argv[argc] = NULL;

    const char *s1 = NULL, *c1 = "credit";
    uint64_t u1 = 7;
    bool f1 = false;
    zp_strlist_t l1 = {0};
    const zp_opt_t opts[] = {
        {"ventilator", 'v', ZP_OPT_STR, NULL, "E", "h", &s1, 0, 0, NULL},
        {"window", 'w', ZP_OPT_UINT, NULL, "N", "h", &u1, 1, 1000000, NULL},
        {"plugin", 'p', ZP_OPT_LIST, NULL, "P", "h", &l1, 0, 0, NULL},
        {"describe", 0, ZP_OPT_FLAG, NULL, NULL, "h", &f1, 0, 0, NULL},
        {"dispatch", 0, ZP_OPT_CHOICE, NULL, "M", "h", &c1, 0, 0,
         "credit|push"},
        {0},
    };
    char err[256];
    int first;
    zp_log_set_level("error");
    zp_opts_parse(opts, argc, argv, &first, err, sizeof err);
    if (u1 < 1 || u1 > 1000000)
        abort();
    zp_strlist_free(&l1);
    free(copy);
    return 0;
}
