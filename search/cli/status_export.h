/* status_export.h — `nnsearch status DIR [--json]` (status.c) and `nnsearch export DIR [-o
 * FILE]` (export.c) as library functions over a study folder (layout and outputs:
 * docs/study-format.md, "Studies: status and export"). Both only read the study, without
 * its lock, so they work while a search runs. Not the HTML report, and not argument
 * parsing: main.c does that. */
#ifndef NS_STATUS_EXPORT_H
#define NS_STATUS_EXPORT_H

#include <stdio.h>

#include "engine/err.h"

/* Prints the study in DIR to out: json == 0, a human summary (study, metric, stages, the
 * trial table best first, the best trial); json != 0, one JSON object with the keys
 * study, stages, trials (by number) and best, followed by a newline. NS_EINPUT "DIR: no
 * study here (no study.db); run nnsearch CONFIG first" when DIR holds no study; nothing
 * is printed on error. */
int ns_cmd_status(const char *dir, int json, FILE *out, ns_err *err);

/* The closing lines of a search on out: the `top` best trials as status ranks them (the
 * stages' choice marked '*') and the winner with its standard error and test figures
 * where the select or final stage recorded them. Errors as ns_cmd_status. */
int ns_cmd_summary(const char *dir, int top, FILE *out, ns_err *err);

/* Writes the best complete trial (healthy first, NS_SELECT_REJECT) training config (DIR/trials/<n>/config.yaml) to
 * out_path (NULL: DIR/best.yaml) atomically, after two '#' lines of provenance, and prints
 * the path written, one line, to out. The file is a fixed config that ns_config_load and
 * `nnsearch train` read as-is. NS_EINPUT when DIR holds no study, no complete trial ("DIR:
 * no complete trial to export yet"), the trial's config is missing or not a fixed config,
 * or out_path cannot be written; out_path is never left half-written. */
int ns_cmd_export(const char *dir, const char *out_path, FILE *out, ns_err *err);

#endif
