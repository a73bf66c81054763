/*
 * Per-user rate limit of token operations (token.create, token.revoke, the session a login
 * mints): a token bucket per user name, refilled at rate per minute up to burst, in a table
 * of at most max_users entries. Every operation that adds revocation state or a token row
 * costs one unit, so no user can grow the revocation feed faster than the limit, however
 * many calls they make (issue 9, class 2).
 *
 * Time is passed in (seconds, any monotonic origin), so tests drive it. Thread-safe.
 */
#ifndef DYNO_AU_LIMIT_H
#define DYNO_AU_LIMIT_H
#include <stddef.h>
#include <stdint.h>

struct au_limit;

/* per_minute > 0, burst >= 1, max_users >= 1: DYNO_EINVAL otherwise; DYNO_ENOMEM. */
int au_limit_new(double per_minute, double burst, size_t max_users, struct au_limit **out);
/* NULL is a no-op. */
void au_limit_free(struct au_limit *l);
/*
 * Takes one unit of user's bucket at now: 0, or DYNO_ELIMIT with *retry_after the whole
 * seconds (>= 1) until a unit is back. A full table first forgets the buckets that have
 * refilled (they are the same as absent); when none has, DYNO_ELIMIT (fail closed). l NULL:
 * no limit (0).
 */
int au_limit_take(struct au_limit *l, const char *user, double now, int64_t *retry_after);
#endif
