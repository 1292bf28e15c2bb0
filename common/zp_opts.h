/* zp_opts: table-driven long options with ZPIPE_* environment defaults.
 *
 * Each binary describes its options once; the table drives parsing,
 * environment lookup and --help. Precedence: built-in default (the value
 * already in the target), then the environment variable, then the command
 * line. */
#ifndef ZP_OPTS_H
#define ZP_OPTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef enum {
    ZP_OPT_STR,    /* char **target; borrowed from argv/environ */
    ZP_OPT_UINT,   /* uint64_t *target within [min, max] */
    ZP_OPT_FLAG,   /* bool *target; env accepts 1/0/true/false/yes/no */
    ZP_OPT_LIST,   /* zp_strlist_t *target; repeatable; env is comma list */
    ZP_OPT_CHOICE, /* char **target, one of choices "a|b|c" */
} zp_opt_type_t;

typedef struct {
    const char **items; /* borrowed strings; the array is owned */
    size_t count;
    char *env_copy; /* owned: the split copy of an environment list */
} zp_strlist_t;

typedef struct {
    const char *name; /* long name without dashes */
    char short_name;  /* 0 for none */
    zp_opt_type_t type;
    const char *env; /* environment variable or NULL */
    const char *arg; /* metavariable in --help, e.g. "N" */
    const char *help;
    void *target;
    uint64_t min, max;   /* ZP_OPT_UINT */
    const char *choices; /* ZP_OPT_CHOICE */
} zp_opt_t;

typedef enum {
    ZP_OPTS_OK = 0,
    ZP_OPTS_HELP = 1,    /* --help was given */
    ZP_OPTS_VERSION = 2, /* --version was given */
    ZP_OPTS_BAD = -1,    /* err holds the reason */
} zp_opts_result_t;

/* Parses argv against opts (terminated by an entry with name NULL).
 * --help, --version, --log-level and --log-format are always accepted and
 * applied. On success *first_arg is the index of the first operand.
 * On ZP_OPTS_BAD, err holds one line naming the option and the reason. */
zp_opts_result_t zp_opts_parse(const zp_opt_t *opts, int argc, char **argv,
                               int *first_arg, char *err, size_t errlen);

/* Prints usage: synopsis line, then one line per option with its env. */
void zp_opts_usage(FILE *out, const char *synopsis, const zp_opt_t *opts);

/* The front of a main(): parses, answers --help and --version on stdout,
 * and for a bad option or any operand prints "prog: reason" and usage on
 * stderr. Returns -1 to go on, or the exit code to return (0 or 2). */
int zp_opts_main(const zp_opt_t *opts, int argc, char **argv, const char *prog,
                 const char *synopsis, const char *version);
/* The same for a command that takes operands: on -1, *first is the index
 * of the first one (the caller checks how many it got). */
int zp_opts_main_operands(const zp_opt_t *opts, int argc, char **argv,
                          const char *prog, const char *synopsis,
                          const char *version, int *first);

/* Prints "prog: message" and usage on stderr; returns 2 (bad usage). */
int zp_opts_fail(const zp_opt_t *opts, const char *prog, const char *synopsis,
                 const char *message);

void zp_strlist_free(zp_strlist_t *list);

#endif
