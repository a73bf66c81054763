/*
 * DynoStore error codes, shared by the library, the agents and the CLI.
 *
 * Every function that can fail returns int: 0 (DYNO_OK) on success or one of the
 * negative codes below. Results travel in out-parameters. The same codes cross the
 * wire as the short strings of dyno_err_code() ("not_found", ...), inside
 * {"error":{"code":...,"message":...}} bodies, and map to HTTP statuses with
 * dyno_err_http_status().
 */
#ifndef DYNOSTORE_ERROR_H
#define DYNOSTORE_ERROR_H

#ifdef __cplusplus
extern "C" {
#endif

#define DYNO_OK 0

enum dyno_err {
    DYNO_EINVAL = -1,     /* bad argument or bad input                 400 bad_request     */
    DYNO_ENOMEM = -2,     /* out of memory                             500 internal        */
    DYNO_EIO = -3,        /* I/O error (disk, socket)                  500 io_error        */
    DYNO_ENOTFOUND = -4,  /* no such object, catalog, user, route      404 not_found       */
    DYNO_EEXIST = -5,     /* already exists                            409 exists          */
    DYNO_EFORBIDDEN = -6, /* authenticated but not allowed             403 forbidden       */
    DYNO_EUNAUTH = -7,    /* missing, bad, expired or revoked token    401 unauthorized    */
    DYNO_EUNAVAIL = -8,   /* a service or enough containers are down   503 unavailable     */
    DYNO_ETIMEDOUT = -9,  /* a peer did not answer in time             504 timeout         */
    DYNO_ETOOBIG = -10,   /* over a configured limit                   413 too_large       */
    DYNO_ECORRUPT = -11,  /* checksum or format mismatch               502 corrupt         */
    DYNO_ENOSPC = -12,    /* storage full                              507 no_space        */
    DYNO_EPROTO = -13,    /* peer spoke nonsense                       502 protocol_error  */
    DYNO_ECONFLICT = -14, /* state does not allow it (non-empty, ...)  409 conflict        */
    DYNO_EINTERNAL = -15, /* a bug or an unexpected library failure    500 internal        */
    DYNO_ERANGE = -16,    /* unsatisfiable Range                       416 bad_range       */
    DYNO_EMETHOD = -17,   /* method not allowed on this route          405 method_not_allowed */
    DYNO_ELIMIT = -18     /* rate limit: retry later (Retry-After)     429 too_many_requests */
};

/* Human-readable description of an error code; never NULL. */
const char *dyno_strerror(int err);
/* Wire name of an error code ("not_found"); never NULL ("internal" for unknown codes). */
const char *dyno_err_code(int err);
/* Inverse of dyno_err_code(); DYNO_EINTERNAL for an unknown or NULL name. */
int dyno_err_from_code(const char *code);
/* HTTP status for an error code (200 for DYNO_OK). */
int dyno_err_http_status(int err);
/* Best error code for an HTTP status (DYNO_OK for 2xx). */
int dyno_err_from_http_status(int status);

#ifdef __cplusplus
}
#endif
#endif
