/* err.c — formatting of ns_err. */
#include "engine/err.h"

#include <errno.h>

#include <stdarg.h>
#include <stdio.h>

int ns_err_set(ns_err *err, int code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->code = code;
    }
    return code;
}

int ns_err_code_of_errno(int e)
{
    switch (e) {
    case ENOMEM:
    case ENOSPC:
    case EDQUOT:
    case EIO:
    case EMFILE:
    case ENFILE:
        return NS_ERUNTIME;
    default:
        return NS_EINPUT;
    }
}
