/* zpipe keygen: CURVE keypairs as czmq certificates, one per component. */
#include "zp_curve.h"
#include "zp_name.h"
#include "zp_opts.h"
#include "zpipe.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static const char s_synopsis[] =
    "Usage: zpipe keygen [OPTIONS] NAME...\n"
    "Writes a CURVE keypair per NAME in czmq's certificate format:\n"
    "DIR/NAME.key (public: hand it to the peers, in their --curve-allow\n"
    "directory or as --ventilator-key/--sink-key) and DIR/NAME.key_secret\n"
    "(mode 0600: the component's own --curve-secret). Exit status: 0 done,\n"
    "2 bad usage, 3 a file could not be written or already exists.";

/* A key's NAME: 1 to 64 of [A-Za-z0-9_.-], not a hidden file. */
static bool s_name_ok(const char *name)
{
    return zp_name_valid(name, strlen(name), 64, "_.-") && *name != '.';
}

int zp_cmd_keygen(int argc, char **argv)
{
    const char *dir = ".";
    bool force = false;
    const zp_opt_t opts[] = {
        {"dir", 'd', ZP_OPT_STR, "ZPIPE_KEYS_DIR", "DIR",
         "where to write the files (default .; made if missing)", &dir, 0, 0,
         NULL},
        {"force", 0, ZP_OPT_FLAG, NULL, NULL, "overwrite existing files",
         &force, 0, 0, NULL},
        {0},
    };
    int first;
    int rc = zp_opts_main_operands(opts, argc, argv, "zpipe keygen", s_synopsis,
                                   "zpipe " ZPIPE_VERSION, &first);
    if (rc >= 0)
        return rc;
    if (first >= argc)
        return zp_opts_fail(opts, "zpipe keygen", s_synopsis,
                            "give at least one NAME");
    for (int i = first; i < argc; i++)
        if (!s_name_ok(argv[i]))
            return zp_opts_fail(opts, "zpipe keygen", s_synopsis,
                                "NAME must be 1 to 64 of [A-Za-z0-9_.-]");
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "zpipe keygen: %s: %s\n", dir, strerror(errno));
        return 3;
    }
    for (int i = first; i < argc; i++) {
        char path[4096], err[1024];
        snprintf(path, sizeof path, "%s/%s.key", dir, argv[i]);
        if (zp_curve_keygen(path, argv[i], force, err, sizeof err) < 0) {
            fprintf(stderr, "zpipe keygen: %s\n", err);
            return 3;
        }
        char pub[ZP_CURVE_KEY_LEN + 1];
        if (zp_curve_key(path, pub, err, sizeof err) < 0) {
            fprintf(stderr, "zpipe keygen: %s\n", err);
            return 3;
        }
        printf("%s\t%s\t%s_secret\t%s\n", argv[i], path, path, pub);
    }
    return 0;
}
