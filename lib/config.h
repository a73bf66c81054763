/*
 * Agent configuration: a table of options (nginx-style data), filled from defaults, then
 * a JSON file (--config FILE), then command-line flags (--name VALUE or --name=VALUE; '-'
 * and '_' are the same in names). Unknown keys in the file or on the command line, and
 * values of the wrong type, are errors with a clear message.
 *
 *   struct cfg { char *dir; int64_t port; bool tls; };
 *   static const struct dyno_opt opts[] = {
 *       {"dir", DYNO_OPT_STR, offsetof(struct cfg, dir), "/var/lib/dyno", "fragment folder"},
 *       {"port", DYNO_OPT_INT, offsetof(struct cfg, port), "0", "HTTP port, 0 = any"},
 *   };
 */
#ifndef DYNO_CONFIG_H
#define DYNO_CONFIG_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum dyno_opt_type {
    DYNO_OPT_STR,  /* char * (malloc'd, NULL when the default is NULL) */
    DYNO_OPT_INT,  /* int64_t; accepts suffixes K, M, G (powers of 1024) on the command line and in strings */
    DYNO_OPT_BOOL, /* bool; true/false/1/0/yes/no; a bare --flag means true */
    DYNO_OPT_DBL   /* double */
};

struct dyno_opt {
    const char *name;
    enum dyno_opt_type type;
    size_t offset;      /* offsetof into the caller's struct */
    const char *defval; /* as text; NULL = no default (STR stays NULL, numbers 0) */
    const char *help;
};

/*
 * Fills cfg (the caller's struct, zeroed or not) from defaults, --config FILE and flags.
 * argv[0] is skipped. Returns 0; DYNO_EINVAL with a message in err for a bad file, flag or
 * value; 1 (not an error) when --help was given (the help text has been printed to stdout).
 */
int dyno_config_parse(const struct dyno_opt *opts, size_t nopts, void *cfg, int argc, char **argv, char *err,
                      size_t errlen);
/* Frees the strings the parser allocated. */
void dyno_config_free(const struct dyno_opt *opts, size_t nopts, void *cfg);
/* Reads a whole small file (at most max bytes) into a malloc'd NUL-terminated string,
 * trailing newlines stripped (handy for token files). 0, DYNO_ENOTFOUND, DYNO_ETOOBIG, DYNO_EIO. */
int dyno_read_file(const char *path, size_t max, char **out, size_t *len);
/* Writes data to path atomically (temp file, fsync, rename) with the given mode. */
int dyno_write_file(const char *path, const void *data, size_t len, unsigned mode);
#endif
