/* progress.h — a running search as the user sees it on stderr: on a terminal one status
 * line rewritten in place (stage, trials done / planned, running, best so far, ETA), else
 * timestamped lines for logs; a one-line summary of each stage's decision. It reads the
 * driver's ns_progress events and prints; it decides nothing and reads no study. */
#ifndef NS_CLI_PROGRESS_H
#define NS_CLI_PROGRESS_H

#include <stdio.h>

#include "search/stages/driver.h"

typedef struct ns_term ns_term;

/* A renderer on f (stderr): live mode when f is a terminal (isatty), plain timestamped
 * lines otherwise; ANSI colours in live mode only, and never when NO_COLOR is set to a
 * non-empty value (no-color.org). NULL when out of memory. In live mode a clock thread
 * redraws the line every second (the ETA counts down during long trials). */
ns_term *ns_term_alloc(FILE *f);
/* An ns_progress_fn: pass it as ns_search_opts.on_progress with the term as progress_user. */
void ns_term_event(void *term, const ns_progress *p);
/* Clears the live line and stops the clock; later output goes below it. NULL: nothing. */
void ns_term_end(ns_term *t);
/* Ends the term (ns_term_end) and frees it. NULL: nothing. */
void ns_term_free(ns_term *t);

/* A stage's decision (JSON) in one line for people: "batch size 64 (measured at 32, LR
 * scaling sqrt; gradient noise scale 18)", "adam/cosine leads (separated, ...)", "winner
 * trial 12, val_acc 0.93 +- 0.01, test_acc 0.91"; the decision compacted for a stage it
 * does not know. metric names the study metric. Always NUL-terminates buf. */
void ns_stage_summary(const char *stage_kind, const char *decision, const char *metric,
                      char *buf, size_t cap);

/* Seconds as "45s", "3m05s", "2h04m"; "--" when not finite or negative. */
void ns_fmt_duration(char *buf, size_t cap, double seconds);

#endif
