/* zpipe plugin: the plugin kit. `new` writes a ready-to-build plugin folder
 * from the templates compiled into the binary; `check` is plugin_check.c. */
#define _GNU_SOURCE
#include "plugin_kit.h"
#include "zp_log.h"
#include "zp_name.h"
#include "zp_opts.h"
#include "zp_util.h"
#include "zpipe.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void s_usage(FILE *out)
{
    fprintf(out,
            "Usage: zpipe plugin COMMAND [OPTIONS]\n"
            "Commands:\n"
            "  new NAME [--dir DIR]   write a ready-to-build plugin folder "
            "DIR/NAME\n"
            "  check FILE.so          load a plugin as a worker would and "
            "try it\n"
            "'zpipe plugin COMMAND --help' for a command; the plugin ABI is "
            "in docs/plugins.md.\n");
}

/* ---- zpipe plugin new ---------------------------------------------------- */

static const char s_new_synopsis[] =
    "Usage: zpipe plugin new NAME [--dir DIR]\n"
    "Writes DIR/NAME (default ./NAME), a plugin folder that builds against\n"
    "an installed zpipe: NAME.c (a small working plugin to change),\n"
    "CMakeLists.txt and Makefile (both use pkg-config's zpipe module),\n"
    "test.sh (builds, runs zpipe plugin check and a tiny job) and README.md.\n"
    "NAME is 1 to 64 of [A-Za-z0-9_]. An existing folder must be empty.\n"
    "Exit status: 0 written, 2 bad usage, 3 the folder is not empty or a\n"
    "file could not be written.";

/* 1 if dir exists and holds anything, 0 if empty or absent, -1 (errno set)
 * if it cannot be read or is not a directory. */
static int s_dir_busy(const char *dir)
{
    struct stat st;
    if (stat(dir, &st) != 0)
        return errno == ENOENT ? 0 : -1;
    if (!S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        return -1;
    }
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int busy = 0;
    struct dirent *e;
    while (!busy && (e = readdir(d)))
        busy = strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return busy;
}

/* Appends text with @NAME@ and @NAME_UPPER@ replaced. */
static int s_expand(zp_buf_t *out, const char *text, const char *name,
                    const char *upper)
{
    for (const char *p = text; *p;) {
        const char *at = strchr(p, '@');
        if (!at)
            return zp_buf_append_str(out, p);
        if (zp_buf_append(out, p, (size_t)(at - p)) < 0)
            return -1;
        if (strncmp(at, "@NAME@", 6) == 0) {
            if (zp_buf_append_str(out, name) < 0)
                return -1;
            p = at + 6;
        } else if (strncmp(at, "@NAME_UPPER@", 12) == 0) {
            if (zp_buf_append_str(out, upper) < 0)
                return -1;
            p = at + 12;
        } else {
            if (zp_buf_append(out, "@", 1) < 0)
                return -1;
            p = at + 1;
        }
    }
    return 0;
}

/* Writes one file that must not exist yet. */
static int s_write_new(const char *path, const zp_buf_t *data, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0)
        return -1;
    size_t off = 0;
    while (off < data->len) {
        ssize_t w = write(fd, data->data + off, data->len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            int e = errno;
            close(fd);
            errno = e;
            return -1;
        }
        off += (size_t)w;
    }
    return close(fd);
}

static int s_cmd_new(int argc, char **argv)
{
    const char *dir = ".";
    const zp_opt_t opts[] = {
        {"dir", 'd', ZP_OPT_STR, NULL, "DIR",
         "where to make the NAME folder (default .; made if missing)", &dir, 0,
         0, NULL},
        {0},
    };
    const char *prog = "zpipe plugin new";
    int first;
    int rc = zp_opts_main_operands(opts, argc, argv, prog, s_new_synopsis,
                                   "zpipe " ZPIPE_VERSION, &first);
    if (rc >= 0)
        return rc;
    if (first >= argc)
        return zp_opts_fail(opts, prog, s_new_synopsis, "give the NAME");
    if (argc - first > 1)
        return zp_opts_fail(opts, prog, s_new_synopsis, "give one NAME");
    const char *name = argv[first];
    if (!zp_name_valid(name, strlen(name), 64, "_"))
        return zp_opts_fail(opts, prog, s_new_synopsis,
                            "NAME must be 1 to 64 of [A-Za-z0-9_]");

    char upper[65];
    for (size_t i = 0; i <= strlen(name); i++)
        upper[i] =
            (char)(name[i] >= 'a' && name[i] <= 'z' ? name[i] - 32 : name[i]);
    char *folder = zp_path_join(dir, name);
    zp_buf_t text = {0};
    rc = 3;
    if (!folder) {
        fprintf(stderr, "%s: out of memory\n", prog);
        goto done;
    }
    int busy = s_dir_busy(folder);
    if (busy != 0) {
        if (busy > 0)
            fprintf(stderr,
                    "%s: %s exists and is not empty; refusing to write into "
                    "it (pick another NAME or --dir)\n",
                    prog, folder);
        else
            fprintf(stderr, "%s: %s: %s\n", prog, folder, strerror(errno));
        goto done;
    }
    if ((mkdir(dir, 0755) != 0 && errno != EEXIST) ||
        (mkdir(folder, 0755) != 0 && errno != EEXIST)) {
        fprintf(stderr, "%s: %s: %s\n", prog, folder, strerror(errno));
        goto done;
    }
    for (const zp_kit_file_t *f = zp_kit_files; f->name; f++) {
        /* The plugin's source is named after it; the rest keep their
         * names. Scripts are executable. */
        bool source = strcmp(f->name, "plugin.c") == 0;
        size_t nl = strlen(f->name);
        bool script = nl > 3 && strcmp(f->name + nl - 3, ".sh") == 0;
        char path[4096];
        if (source)
            snprintf(path, sizeof path, "%s/%s.c", folder, name);
        else
            snprintf(path, sizeof path, "%s/%s", folder, f->name);
        text.len = 0;
        if (s_expand(&text, f->text, name, upper) < 0) {
            fprintf(stderr, "%s: out of memory\n", prog);
            goto done;
        }
        if (s_write_new(path, &text, script ? 0755 : 0644) < 0) {
            fprintf(stderr, "%s: %s: %s\n", prog, path, strerror(errno));
            goto done;
        }
        printf("wrote %s\n", path);
    }
    printf("next: cd %s && make && sh test.sh   (see README.md there)\n",
           folder);
    rc = 0;
done:
    zp_buf_free(&text);
    free(folder);
    return rc;
}

int zp_cmd_plugin(int argc, char **argv)
{
    if (argc < 2) {
        s_usage(stderr);
        return 2;
    }
    const char *sub = argv[1];
    if (!strcmp(sub, "new"))
        return s_cmd_new(argc - 1, argv + 1);
    if (!strcmp(sub, "check"))
        return zp_plugin_check(argc - 1, argv + 1);
    if (!strcmp(sub, "help") || !strcmp(sub, "--help") || !strcmp(sub, "-h")) {
        s_usage(stdout);
        return 0;
    }
    fprintf(stderr, "zpipe plugin: unknown command '%s'\n", sub);
    s_usage(stderr);
    return 2;
}
