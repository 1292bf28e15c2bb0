/* zp_opts: option parsing over getopt_long with environment defaults. */
#define _GNU_SOURCE
#include "zp_opts.h"
#include "zp_log.h"
#include "zp_util.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

enum { S_HELP = 0x1000, S_VERSION, S_LOG_LEVEL, S_LOG_FORMAT, S_FIRST };

static int s_strlist_push(zp_strlist_t *list, const char *item)
{
    const char **p = realloc(list->items, (list->count + 1) * sizeof *p);
    if (!p)
        return -1;
    p[list->count++] = item;
    list->items = p;
    return 0;
}

void zp_strlist_free(zp_strlist_t *list)
{
    free(list->items);
    free(list->env_copy);
    list->items = NULL;
    list->env_copy = NULL;
    list->count = 0;
}

static bool s_choice_ok(const char *choices, const char *value)
{
    size_t vl = strlen(value);
    const char *p = choices;
    while (*p) {
        const char *bar = strchr(p, '|');
        size_t n = bar ? (size_t)(bar - p) : strlen(p);
        if (n == vl && strncmp(p, value, n) == 0)
            return true;
        if (!bar)
            break;
        p = bar + 1;
    }
    return false;
}

/* Applies one value to one option; from names where it came from. */
static int s_apply(const zp_opt_t *o, const char *value, const char *from,
                   char *err, size_t errlen)
{
    switch (o->type) {
    case ZP_OPT_STR:
        if (*value == '\0') {
            snprintf(err, errlen, "%s --%s: empty value", from, o->name);
            return -1;
        }
        *(const char **)o->target = value;
        return 0;
    case ZP_OPT_UINT: {
        uint64_t v;
        if (zp_parse_u64(value, o->min, o->max, &v) < 0) {
            snprintf(err, errlen,
                     "%s --%s: '%s' is not a whole number from %llu to %llu",
                     from, o->name, value, (unsigned long long)o->min,
                     (unsigned long long)o->max);
            return -1;
        }
        *(uint64_t *)o->target = v;
        return 0;
    }
    case ZP_OPT_FLAG:
        if (!value || !strcmp(value, "1") || !strcmp(value, "true") ||
            !strcmp(value, "yes"))
            *(bool *)o->target = true;
        else if (!strcmp(value, "0") || !strcmp(value, "false") ||
                 !strcmp(value, "no") || !strcmp(value, ""))
            *(bool *)o->target = false;
        else {
            snprintf(err, errlen, "%s --%s: '%s' is not a boolean", from,
                     o->name, value);
            return -1;
        }
        return 0;
    case ZP_OPT_LIST:
        if (*value == '\0') {
            snprintf(err, errlen, "%s --%s: empty value", from, o->name);
            return -1;
        }
        if (s_strlist_push((zp_strlist_t *)o->target, value) < 0) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        return 0;
    case ZP_OPT_CHOICE:
        if (!s_choice_ok(o->choices, value)) {
            snprintf(err, errlen, "%s --%s: '%s' is not one of %s", from,
                     o->name, value, o->choices);
            return -1;
        }
        *(const char **)o->target = value;
        return 0;
    }
    return -1;
}

/* A comma-separated environment list: split into a copy the list owns. */
static int s_apply_env_list(const zp_opt_t *o, const char *value, char *err,
                            size_t errlen)
{
    zp_strlist_t *list = o->target;
    char *copy = strdup(value);
    if (!copy) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    free(list->env_copy);
    list->env_copy = copy;
    char *tok = copy;
    for (;;) {
        char *comma = strchr(tok, ',');
        if (comma)
            *comma = '\0';
        if (*tok && s_apply(o, tok, o->env, err, errlen) < 0)
            return -1;
        if (!comma)
            return 0;
        tok = comma + 1;
    }
}

zp_opts_result_t zp_opts_parse(const zp_opt_t *opts, int argc, char **argv,
                               int *first_arg, char *err, size_t errlen)
{
    size_t n = 0;
    while (opts[n].name)
        n++;

    /* Environment first, so the command line wins. */
    const char *lvl = getenv("ZPIPE_LOG_LEVEL");
    if (lvl && *lvl && zp_log_set_level(lvl) < 0) {
        snprintf(err, errlen,
                 "ZPIPE_LOG_LEVEL: '%s' is not one of error|warn|info|debug",
                 lvl);
        return ZP_OPTS_BAD;
    }
    const char *fmt = getenv("ZPIPE_LOG_FORMAT");
    if (fmt && *fmt && zp_log_set_format(fmt) < 0) {
        snprintf(err, errlen, "ZPIPE_LOG_FORMAT: '%s' is not one of text|json",
                 fmt);
        return ZP_OPTS_BAD;
    }
    for (size_t i = 0; i < n; i++) {
        const char *v = opts[i].env ? getenv(opts[i].env) : NULL;
        if (!v)
            continue;
        if (opts[i].type == ZP_OPT_LIST) {
            if (s_apply_env_list(&opts[i], v, err, errlen) < 0)
                return ZP_OPTS_BAD;
        } else if (*v && s_apply(&opts[i], v, opts[i].env, err, errlen) < 0)
            return ZP_OPTS_BAD;
    }

    struct option *lo = calloc(n + 5, sizeof *lo);
    char *shorts = calloc(2 * n + 3, 1);
    bool *cli_list = calloc(n + 1, sizeof *cli_list);
    if (!lo || !shorts || !cli_list) {
        free(lo);
        free(shorts);
        free(cli_list);
        snprintf(err, errlen, "out of memory");
        return ZP_OPTS_BAD;
    }
    size_t sp = 0;
    shorts[sp++] = ':';
    shorts[sp++] = 'h';
    for (size_t i = 0; i < n; i++) {
        lo[i].name = opts[i].name;
        lo[i].has_arg =
            opts[i].type == ZP_OPT_FLAG ? no_argument : required_argument;
        lo[i].val = S_FIRST + (int)i;
        if (opts[i].short_name) {
            shorts[sp++] = opts[i].short_name;
            if (opts[i].type != ZP_OPT_FLAG)
                shorts[sp++] = ':';
            shorts[sp++] = 'h';
        }
    }
    lo[n] = (struct option){"help", no_argument, NULL, S_HELP};
    lo[n + 1] = (struct option){"version", no_argument, NULL, S_VERSION};
    lo[n + 2] =
        (struct option){"log-level", required_argument, NULL, S_LOG_LEVEL};
    lo[n + 3] =
        (struct option){"log-format", required_argument, NULL, S_LOG_FORMAT};

    zp_opts_result_t rc = ZP_OPTS_OK;
    /* 0, not 1: glibc then also forgets where it was inside a cluster of
     * short options from an earlier parse (found by fuzz_opts). */
    optind = 0;
    opterr = 0;
    for (;;) {
        int c = getopt_long(argc, argv, shorts, lo, NULL);
        if (c == -1)
            break;
        if (c == S_HELP || c == 'h') {
            rc = ZP_OPTS_HELP;
            break;
        }
        if (c == S_VERSION) {
            rc = ZP_OPTS_VERSION;
            break;
        }
        if (c == S_LOG_LEVEL) {
            if (zp_log_set_level(optarg) < 0) {
                snprintf(
                    err, errlen,
                    "--log-level: '%s' is not one of error|warn|info|debug",
                    optarg);
                rc = ZP_OPTS_BAD;
                break;
            }
            continue;
        }
        if (c == S_LOG_FORMAT) {
            if (zp_log_set_format(optarg) < 0) {
                snprintf(err, errlen,
                         "--log-format: '%s' is not one of text|json", optarg);
                rc = ZP_OPTS_BAD;
                break;
            }
            continue;
        }
        if (c == '?' || c == ':') {
            const char *bad = argv[optind - 1];
            if (c == ':')
                snprintf(err, errlen, "option %s needs a value", bad);
            else
                snprintf(err, errlen, "unknown option %s", bad);
            rc = ZP_OPTS_BAD;
            break;
        }
        const zp_opt_t *o = NULL;
        if (c >= S_FIRST)
            o = &opts[c - S_FIRST];
        else
            for (size_t i = 0; i < n; i++)
                if (opts[i].short_name == c)
                    o = &opts[i];
        if (!o) {
            snprintf(err, errlen, "unknown option");
            rc = ZP_OPTS_BAD;
            break;
        }
        /* A list given on the command line replaces the environment's,
         * as every other option does (a child started with explicit
         * options must not also take its parent's environment list). */
        if (o->type == ZP_OPT_LIST && !cli_list[o - opts]) {
            cli_list[o - opts] = true;
            ((zp_strlist_t *)o->target)->count = 0;
        }
        if (s_apply(o, o->type == ZP_OPT_FLAG ? NULL : optarg, "option", err,
                    errlen) < 0) {
            rc = ZP_OPTS_BAD;
            break;
        }
    }
    if (first_arg)
        *first_arg = optind;
    free(lo);
    free(shorts);
    free(cli_list);
    return rc;
}

void zp_opts_usage(FILE *out, const char *synopsis, const zp_opt_t *opts)
{
    fprintf(out, "%s\n\nOptions:\n", synopsis);
    for (const zp_opt_t *o = opts; o->name; o++) {
        char head[96];
        if (o->short_name)
            snprintf(head, sizeof head, "-%c, --%s%s%s", o->short_name, o->name,
                     o->type == ZP_OPT_FLAG ? "" : " ",
                     o->type == ZP_OPT_FLAG ? "" : (o->arg ? o->arg : "VALUE"));
        else
            snprintf(head, sizeof head, "    --%s%s%s", o->name,
                     o->type == ZP_OPT_FLAG ? "" : " ",
                     o->type == ZP_OPT_FLAG ? "" : (o->arg ? o->arg : "VALUE"));
        fprintf(out, "  %-30s %s", head, o->help);
        if (o->type == ZP_OPT_CHOICE)
            fprintf(out, " (%s)", o->choices);
        if (o->env)
            fprintf(out, " [env %s]", o->env);
        fputc('\n', out);
    }
    fprintf(out, "  %-30s %s\n", "    --log-level LEVEL",
            "error|warn|info|debug (default info) [env ZPIPE_LOG_LEVEL]");
    fprintf(out, "  %-30s %s\n", "    --log-format FORMAT",
            "text|json (default text) [env ZPIPE_LOG_FORMAT]");
    fprintf(out, "  %-30s %s\n", "-h, --help", "show this help and exit");
    fprintf(out, "  %-30s %s\n", "    --version", "show the version and exit");
}

int zp_opts_fail(const zp_opt_t *opts, const char *prog, const char *synopsis,
                 const char *message)
{
    fprintf(stderr, "%s: %s\n", prog, message);
    zp_opts_usage(stderr, synopsis, opts);
    return 2;
}

int zp_opts_main_operands(const zp_opt_t *opts, int argc, char **argv,
                          const char *prog, const char *synopsis,
                          const char *version, int *first)
{
    char err[512];
    *first = 0;
    switch (zp_opts_parse(opts, argc, argv, first, err, sizeof err)) {
    case ZP_OPTS_HELP:
        zp_opts_usage(stdout, synopsis, opts);
        return 0;
    case ZP_OPTS_VERSION:
        printf("%s\n", version);
        return 0;
    case ZP_OPTS_BAD:
        return zp_opts_fail(opts, prog, synopsis, err);
    case ZP_OPTS_OK:
        break;
    }
    return -1;
}

int zp_opts_main(const zp_opt_t *opts, int argc, char **argv, const char *prog,
                 const char *synopsis, const char *version)
{
    int first;
    int rc = zp_opts_main_operands(opts, argc, argv, prog, synopsis, version,
                                   &first);
    if (rc >= 0 || first >= argc)
        return rc;
    char err[512];
    snprintf(err, sizeof err, "unexpected argument '%s'", argv[first]);
    return zp_opts_fail(opts, prog, synopsis, err);
}
