/* plugin_kit: `zpipe plugin new` (plugin_kit.c) and `zpipe plugin check`
 * (plugin_check.c), and the plugin templates compiled into the binary from
 * zpipe/kit/. */
#ifndef ZP_PLUGIN_KIT_H
#define ZP_PLUGIN_KIT_H

/* One template: its file name (without ".in") and its text, in which
 * @NAME@ and @NAME_UPPER@ stand for the plugin's name. */
typedef struct {
    const char *name;
    const char *text;
} zp_kit_file_t;

/* Every template, ended by an entry whose name is NULL. Generated at build
 * time by zpipe/kit/embed.cmake. */
extern const zp_kit_file_t zp_kit_files[];

/* zpipe plugin check FILE.so [OPTIONS] (argv[0] is "check"). Returns the
 * exit code. */
int zp_plugin_check(int argc, char **argv);

#endif
