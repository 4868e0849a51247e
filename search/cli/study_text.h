/* study_text.h — the text helpers of the commands that read a study (status, the search's
 * closing summary, export): a malloc'd printf, a number's exact text, study text made safe
 * for one output line, a folder path without trailing slashes. Not JSON (search/study/json.h). */
#ifndef NS_STUDY_TEXT_H
#define NS_STUDY_TEXT_H

#include <stddef.h>
#include <stdio.h>

/* A malloc'd printf (caller frees); NULL when out of memory. */
char *ns_text_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The shortest %g text of at most 17 digits that reads back as exactly v (finite v). */
void ns_text_num(char *buf, size_t cap, double v);

/* s on f with every control character as '?': text from a study on one output line (a
 * newline in a study name would end a YAML comment early). NULL prints nothing. */
void ns_text_line(FILE *f, const char *s);

/* dir without trailing slashes (messages and paths read better; "/" stays); NULL when out
 * of memory. Caller frees. */
char *ns_text_dir(const char *dir);

#endif
