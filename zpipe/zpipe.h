/* zpipe: the front command's subcommands. */
#ifndef ZP_FRONT_H
#define ZP_FRONT_H

/* zpipe run: a whole local pipeline for one job. Returns the exit code. */
int zp_cmd_run(int argc, char **argv);

#endif
