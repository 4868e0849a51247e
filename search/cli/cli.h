/* cli.h — what the files of the command line share (search/cli/): the stop flag the signal
 * handlers set, usage and error lines with their exit codes, JSON output helpers, and the
 * commands that have a file of their own. Internal to the CLI; main.c dispatches. */
#ifndef NS_CLI_H
#define NS_CLI_H

#include <stdio.h>

#include "engine/err.h"
#include "engine/stop.h"

/* Set by the first SIGINT/SIGTERM once cli_install_signals ran: the run stops after its
 * current step (it checkpoints and the program exits 130); a second signal exits at once. */
extern ns_stop_flag cli_stop;
void cli_install_signals(void);

/* The command being run ("train"; "" for a search or none), for the help a usage error
 * points to. */
extern const char *cli_help_cmd;
/* "nnsearch: " fmt (with arg) " (see nnsearch CMD --help)" on stderr; returns 2. */
int cli_usage_error(const char *fmt, const char *arg);
/* "nnsearch: " err->msg on stderr; returns err->code (1 when it is 0). */
int cli_report(const ns_err *err);

/* "key":v, with null for NaN or infinite (JSON has neither); a comma after when comma. */
void cli_jnum(FILE *f, const char *key, double v, int comma);
/* s as a JSON string: quotes, backslashes and control characters escaped. */
void cli_jstr(FILE *f, const char *s);
/* A whole decimal number that is all of s: 0, or -1 with *out untouched. */
int cli_parse_long(const char *s, long *out);
/* A word that no option of the command took: an unknown option ("-x"; a lone "-" is a
 * word) is a usage error; a word fills *first, else *second (NULL: the command takes one),
 * and a word with both filled is a usage error. 0, or 2 after the usage error. */
int cli_argument(const char *a, const char **first, const char **second);

/* The commands; argc/argv: the words after the command word (train is also reached as
 * `nnsearch CONFIG` of a config without a search). */
int cli_cmd_train(int argc, char **argv);
int cli_cmd_predict(int argc, char **argv);
int cli_cmd_lrfind(int argc, char **argv);

#endif
