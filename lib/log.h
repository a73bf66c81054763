/*
 * One line per event on stderr, logfmt:
 *   level=info time=2026-11-25T19:14:14.123Z agent=gateway msg="put committed" key=ab12 size=10
 * dyno_log_init() is called once in main() before any thread starts; dyno_log() is then
 * thread-safe (one write(2) per line). Never log a token or a password.
 */
#ifndef DYNO_LOG_H
#define DYNO_LOG_H
#include <stddef.h>

enum dyno_log_level { DYNO_LOG_DEBUG = 0, DYNO_LOG_INFO, DYNO_LOG_WARN, DYNO_LOG_ERROR };

/* agent: the name in agent=; level: lowest level printed. */
void dyno_log_init(const char *agent, int level);
/* "debug", "info", "warn", "error" -> level; -1 when unknown. */
int dyno_log_level_parse(const char *s);
/* msg is quoted; fields is a printf format for extra " key=value" pairs (may be NULL).
 * Values that may contain spaces or quotes should be passed through %s of an already
 * quoted string; the logger does not re-escape fields. */
void dyno_log(int level, const char *msg, const char *fields, ...) __attribute__((format(printf, 3, 4)));

/* Writes s (NULL: "") into out as a logfmt quoted value: '"' and '\\' escaped, control
 * characters and DEL as \xNN, cut to fit cap but always closed and NUL-terminated (cap >= 3;
 * less gives ""). Returns out. The one quoter of the tree: log lines must not be forgeable
 * by a name or a message that carries a quote or a newline. */
const char *dyno_log_q(char *out, size_t cap, const char *s);

#define dyno_debug(msg, ...) dyno_log(DYNO_LOG_DEBUG, msg, __VA_ARGS__)
#define dyno_info(msg, ...) dyno_log(DYNO_LOG_INFO, msg, __VA_ARGS__)
#define dyno_warn(msg, ...) dyno_log(DYNO_LOG_WARN, msg, __VA_ARGS__)
#define dyno_error(msg, ...) dyno_log(DYNO_LOG_ERROR, msg, __VA_ARGS__)
#endif
