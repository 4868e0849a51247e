/* err.h — the one-line error that library code hands back instead of exiting.
 * Not a logging facility: a function that fails fills one ns_err and returns its code. */
#ifndef NS_ERR_H
#define NS_ERR_H

enum {
    NS_OK = 0,
    NS_ERUNTIME = 1, /* out of memory, I/O failure, numerical breakdown */
    NS_EINPUT = 2,   /* bad config, bad data, bad usage: the user can fix it */
};

typedef struct ns_err {
    int code;
    char msg[1024]; /* one line: "where: what is wrong; how to fix it" */
} ns_err;

/* Formats msg into err (if err is not NULL) and returns code, so callers can write
 * `return ns_err_set(err, NS_EINPUT, "%s:%d: ...", ...);`. */
int ns_err_set(ns_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The code of a failed system call with errno e: NS_ERUNTIME when the machine ran short
 * (memory, disk space or quota, open files) or the device failed, which no change to the
 * input fixes; NS_EINPUT otherwise (a wrong path, missing permissions). */
int ns_err_code_of_errno(int e);

#endif
