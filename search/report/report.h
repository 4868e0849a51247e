/* report.h — the HTML report of a study: `nnsearch report DIR [-o FILE]`, and DIR/report.html
 * that the driver rewrites at the end of every stage. One self-contained file (inline CSS,
 * SVG and a few lines of script; nothing fetched from a network), built from the study's
 * database and trial folders alone. It reads the study without its lock, so it works while
 * a search runs. Depends on search/study and search/config only, never on the stages or the
 * CLI (the stage driver calls it, so the dependency must stay one way). */
#ifndef NS_REPORT_H
#define NS_REPORT_H

#include <stdio.h>

#include "engine/err.h"

#define NS_REPORT_FILE "report.html" /* in the study folder */

/* Writes the report of the study in dir to f. NS_EINPUT "DIR: no study here ..." when dir
 * holds no study; NS_ERUNTIME when out of memory or f fails. */
int ns_report_build(const char *dir, FILE *f, ns_err *err);

/* Builds the report of the study in dir and writes it atomically (a temporary file beside
 * it, then a rename) to out_path (NULL: DIR/report.html): out_path holds its old content or
 * the whole new report, never a part. NS_EINPUT for no study or an output that cannot be
 * written; NS_ERUNTIME when out of memory. */
int ns_report_write(const char *dir, const char *out_path, ns_err *err);

#endif
