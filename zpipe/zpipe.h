/* zpipe: the front command's subcommands. */
#ifndef ZP_FRONT_H
#define ZP_FRONT_H

/* zpipe run: a whole local pipeline for one job. Returns the exit code. */
int zp_cmd_run(int argc, char **argv);

/* zpipe submit: a job's tasks to a running ventilator's intake. */
int zp_cmd_submit(int argc, char **argv);

/* zpipe status: a running ventilator's jobs and workers. */
int zp_cmd_status(int argc, char **argv);

/* zpipe wait JOB: blocks until a running sink has the whole job. */
int zp_cmd_wait(int argc, char **argv);

/* zpipe results JOB: streams a job's records from a sink's spool. */
int zp_cmd_results(int argc, char **argv);

/* zpipe keygen NAME...: CURVE keypairs as czmq certificates. */
int zp_cmd_keygen(int argc, char **argv);

/* zpipe plugin new|check: the plugin kit. */
int zp_cmd_plugin(int argc, char **argv);

/* zpipe top: a live terminal view of a running cluster. */
int zp_cmd_top(int argc, char **argv);
int zp_cmd_events(int argc, char **argv);

#endif
