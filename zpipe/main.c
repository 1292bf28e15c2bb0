/* zpipe: the front command; dispatches to subcommands. */
#include "zpipe.h"
#include "zp_log.h"

#include <stdio.h>
#include <string.h>
#include <zpipe/plugin.h>

static void s_usage(FILE *out)
{
    fprintf(
        out,
        "Usage: zpipe COMMAND [OPTIONS]\n"
        "A parallel task pipeline on ZeroMQ.\n\n"
        "Commands:\n"
        "  run       run one job on local processes: ventilator, workers, "
        "sink\n"
        "  submit    send a job to a running ventilator (--intake)\n"
        "  status    show a running ventilator's jobs and workers\n"
        "  top       the same, live: rates, progress, ETA (q quits)\n"
        "  wait      wait for a job at a running sink; print its counts\n"
        "  results   stream a job's records from a running sink (--spool)\n"
        "  events    follow the event streams of a ventilator and a sink\n"
        "  keygen    write CURVE keypairs for the components\n"
        "  plugin    write a new plugin folder (new), or load and try one "
        "(check)\n"
        "  version   print the version\n"
        "  help      show this help\n\n"
        "The daemons run on their own too: zpipe-ventilator, zpipe-worker,\n"
        "zpipe-sink (each has --help). 'zpipe COMMAND --help' for a "
        "command.\n");
}

int main(int argc, char **argv)
{
    zp_log_init("zpipe");
    if (argc < 2) {
        s_usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "run"))
        return zp_cmd_run(argc - 1, argv + 1);
    if (!strcmp(cmd, "submit"))
        return zp_cmd_submit(argc - 1, argv + 1);
    if (!strcmp(cmd, "status"))
        return zp_cmd_status(argc - 1, argv + 1);
    if (!strcmp(cmd, "top"))
        return zp_cmd_top(argc - 1, argv + 1);
    if (!strcmp(cmd, "wait"))
        return zp_cmd_wait(argc - 1, argv + 1);
    if (!strcmp(cmd, "results"))
        return zp_cmd_results(argc - 1, argv + 1);
    if (!strcmp(cmd, "events"))
        return zp_cmd_events(argc - 1, argv + 1);
    if (!strcmp(cmd, "plugin"))
        return zp_cmd_plugin(argc - 1, argv + 1);
    if (!strcmp(cmd, "keygen"))
        return zp_cmd_keygen(argc - 1, argv + 1);
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
        printf("zpipe %s (plugin ABI %d.%d, wire zpipe.v1)\n", ZPIPE_VERSION,
               ZPIPE_ABI_MAJOR, ZPIPE_ABI_MINOR);
        return 0;
    }
    if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
        s_usage(stdout);
        return 0;
    }
    fprintf(stderr, "zpipe: unknown command '%s'\n", cmd);
    s_usage(stderr);
    return 2;
}
