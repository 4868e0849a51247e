/* cli.c — what the nnsearch commands share: the stop flag and its signal handlers, usage
 * errors and error lines with their exit codes, JSON output helpers, whole-number options.
 * Not a command (main.c and cmd_*.c). */
#include "search/cli/cli.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

ns_stop_flag cli_stop;
const char *cli_help_cmd = "";

/* First SIGINT/SIGTERM: ask the run to stop after its current step (it checkpoints and
 * the program exits 130). Second: exit at once; the last checkpoint still resumes. */
static void on_signal(int sig)
{
    (void)sig;
    if (atomic_load(&cli_stop)) /* lock-free: safe in a handler (engine/stop.h) */
        _exit(130);
    atomic_store(&cli_stop, 1);
}

void cli_install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

int cli_usage_error(const char *fmt, const char *arg)
{
    fputs("nnsearch: ", stderr);
    fprintf(stderr, fmt, arg);
    fprintf(stderr, " (see nnsearch %s%s--help)\n", cli_help_cmd, cli_help_cmd[0] ? " " : "");
    return 2;
}

int cli_report(const ns_err *err)
{
    fprintf(stderr, "nnsearch: %s\n", err->msg);
    return err->code ? err->code : 1;
}

void cli_jnum(FILE *f, const char *key, double v, int comma)
{
    if (isfinite(v))
        fprintf(f, "\"%s\":%.9g", key, v);
    else
        fprintf(f, "\"%s\":null", key);
    if (comma)
        fputc(',', f);
}

void cli_jstr(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

int cli_parse_long(const char *s, long *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (!*s || *end)
        return -1;
    *out = v;
    return 0;
}

int cli_argument(const char *a, const char **first, const char **second)
{
    if (a[0] == '-' && a[1])
        return cli_usage_error("unknown option '%s'", a);
    if (!*first)
        *first = a;
    else if (second && !*second)
        *second = a;
    else
        return cli_usage_error("unexpected argument '%s'", a);
    return 0;
}
