/* Error codes: names, messages and HTTP statuses (include/dynostore/error.h). */
#include <dynostore/error.h>
#include <string.h>

struct err_info {
    int err;
    const char *code;
    int status;
    const char *text;
};

static const struct err_info errs[] = {
    {DYNO_OK, "ok", 200, "success"},
    {DYNO_EINVAL, "bad_request", 400, "invalid argument or input"},
    {DYNO_ENOMEM, "internal", 500, "out of memory"},
    {DYNO_EIO, "io_error", 500, "input/output error"},
    {DYNO_ENOTFOUND, "not_found", 404, "not found"},
    {DYNO_EEXIST, "exists", 409, "already exists"},
    {DYNO_EFORBIDDEN, "forbidden", 403, "forbidden"},
    {DYNO_EUNAUTH, "unauthorized", 401, "missing, invalid, expired or revoked token"},
    {DYNO_EUNAVAIL, "unavailable", 503, "service unavailable"},
    {DYNO_ETIMEDOUT, "timeout", 504, "timed out"},
    {DYNO_ETOOBIG, "too_large", 413, "over a configured limit"},
    {DYNO_ECORRUPT, "corrupt", 502, "checksum or format mismatch"},
    {DYNO_ENOSPC, "no_space", 507, "no space left"},
    {DYNO_EPROTO, "protocol_error", 502, "protocol error"},
    {DYNO_ECONFLICT, "conflict", 409, "conflict with the current state"},
    {DYNO_EINTERNAL, "internal", 500, "internal error"},
    {DYNO_ERANGE, "bad_range", 416, "range not satisfiable"},
    {DYNO_EMETHOD, "method_not_allowed", 405, "method not allowed"},
    {DYNO_ELIMIT, "too_many_requests", 429, "too many requests, retry later"},
};

#define NERRS (sizeof(errs) / sizeof(errs[0]))

static const struct err_info *find(int err)
{
    for (size_t i = 0; i < NERRS; i++)
        if (errs[i].err == err)
            return &errs[i];
    return NULL;
}

const char *dyno_strerror(int err)
{
    const struct err_info *e = find(err);
    return e ? e->text : "unknown error";
}

const char *dyno_err_code(int err)
{
    const struct err_info *e = find(err);
    return e ? e->code : "internal";
}

int dyno_err_from_code(const char *code)
{
    if (!code)
        return DYNO_EINTERNAL;
    /* "internal" maps to DYNO_EINTERNAL, not DYNO_ENOMEM, which shares the name. */
    if (strcmp(code, "internal") == 0)
        return DYNO_EINTERNAL;
    for (size_t i = 0; i < NERRS; i++)
        if (strcmp(errs[i].code, code) == 0)
            return errs[i].err;
    return DYNO_EINTERNAL;
}

int dyno_err_http_status(int err)
{
    const struct err_info *e = find(err);
    return e ? e->status : 500;
}

int dyno_err_from_http_status(int status)
{
    if (status >= 200 && status < 300)
        return DYNO_OK;
    switch (status) {
    case 400:
        return DYNO_EINVAL;
    case 401:
        return DYNO_EUNAUTH;
    case 403:
        return DYNO_EFORBIDDEN;
    case 404:
        return DYNO_ENOTFOUND;
    case 405:
        return DYNO_EMETHOD;
    case 409:
        return DYNO_ECONFLICT;
    case 413:
        return DYNO_ETOOBIG;
    case 416:
        return DYNO_ERANGE;
    case 429:
        return DYNO_ELIMIT;
    case 431:
        return DYNO_ETOOBIG;
    case 502:
        return DYNO_EPROTO;
    case 503:
        return DYNO_EUNAVAIL;
    case 504:
        return DYNO_ETIMEDOUT;
    case 507:
        return DYNO_ENOSPC;
    default:
        return status >= 500 ? DYNO_EINTERNAL : DYNO_EINVAL;
    }
}
