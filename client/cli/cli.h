/*
 * The dynostore command line: shared between the files of client/cli/ (cli_ names).
 *
 * main.c      global flags, dispatch, help, exit codes
 * settings.c  where the gateway and token come from (protocol.md §5), config.json
 * progress.c  the progress bar of large transfers
 * objects.c   put, get, exists, evict, meta
 * catalogs.c  ls, catalog, status, login, whoami
 * subscribe.c subscribe [--mirror DIR]: catalog events from the broker
 * identity.c  user create, token create|list|revoke
 * up.c        dynostore up: a whole fabric on this machine
 * tls.c       the local CA and server certificate of up --tls
 */
#ifndef DYNO_CLI_H
#define DYNO_CLI_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <dynostore/client.h>

/* Exit codes of every command. */
enum cli_exit {
    CLI_OK = 0,
    CLI_FAIL = 1,
    CLI_USAGE = 2,
    CLI_NOTFOUND = 3,
    CLI_DENIED = 4,
};

/* Global settings of one run. */
struct cli_ctx {
    bool json, quiet;
    const char *gateway_flag;    /* --gateway */
    const char *token_file_flag; /* --token-file */
    const char *cacert_flag;     /* --cacert */
};

/* ---- flag parsing (main.c) ---- */
struct cli_flag {
    const char *name; /* "--catalog", "-o" */
    bool has_arg;
    const char **val; /* where the value goes (has_arg) */
    bool *set;        /* set to true when seen (may be NULL) */
};
/*
 * Parses argv[0..argc) (the command's arguments, command name excluded) against flags;
 * "--name=value" and "--name value" both work, "--" ends the flags. Positional arguments
 * go to pos (borrowed from argv; room for argc). Returns 0, or CLI_USAGE after printing
 * what is wrong.
 */
int cli_parse(const char *cmd, int argc, char **argv, const struct cli_flag *flags, size_t nflags, char **pos,
              int *npos);
/* Prints "dynostore: <message>" on stderr. Returns CLI_FAIL (or CLI_USAGE for cli_usage). */
int cli_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int cli_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints the client's last error and maps rc to an exit code. */
int cli_fail(dyno_client *c, int rc, const char *what);
/* Exit code of a DYNO_E* code. */
int cli_exit_code(int rc);
/* "k,m" -> k >= 1, m >= 0, k + m <= 64. 0 or CLI_USAGE after printing. */
int cli_parse_resilience(const char *s, int *k, int *m);
/* Human size: "1.5 MiB". */
void cli_human(uint64_t n, char *out, size_t cap);
/* Prints a cJSON tree on stdout (one line when compact). */
void cli_print_json(const struct cJSON *j, bool compact);

/* ---- settings (settings.c) ---- */
/* Folder of the CLI settings: $XDG_CONFIG_HOME/dynostore or $HOME/.config/dynostore.
 * 0, or DYNO_EINVAL when neither is set. */
int cli_config_dir(char *out, size_t cap);
/* Merges gateway / token_file / cacert (each NULL = leave as is) into config.json,
 * creating the folder (0700). 0 or a DYNO_E* code (message printed). */
int cli_config_update(const char *gateway, const char *token_file, const char *cacert);
/* Sets one string entry of config.json (as cli_config_update), e.g. "broker". */
int cli_config_set(const char *name, const char *value);
/* Reads config.json of the settings folder: *out is an object (empty when there is no
 * file), the caller's. 0 or a DYNO_E* code (message printed). */
int cli_config_load(struct cJSON **out);
/*
 * Resolves the settings: gateway (flag, env, config), token (file flag, env, config's
 * token_file) and CA file (flag, config). Outputs are malloc'd (NULL when not set).
 * Returns an exit code: CLI_OK, or CLI_FAIL / CLI_USAGE after printing why.
 */
int cli_resolve(const struct cli_ctx *x, char **gateway, char **token, char **cacert);
/* Resolves the settings and makes a client. need_token: a missing token is an error
 * (exit 4) rather than an anonymous call. Returns an exit code (CLI_OK on success). */
int cli_connect(const struct cli_ctx *x, bool need_token, dyno_client **out);
/* mkdir -p with mode for the folders it creates. 0 or DYNO_EIO (errno set). */
int cli_mkdirs(const char *path, unsigned mode);

/* ---- progress (progress.c) ---- */
struct cli_progress {
    bool enabled; /* stderr is a TTY and not --quiet / --json */
    const char *label;
    double start, last; /* monotonic seconds */
    bool drawn;
};
/* Monotonic seconds (CLOCK_MONOTONIC): the bar's rate and `up`'s deadlines. */
double cli_now_s(void);
#define CLI_PROGRESS_MIN (8u * 1024u * 1024u) /* smaller transfers get no bar */
void cli_progress_init(struct cli_progress *p, const struct cli_ctx *x, const char *label);
/* dyno_client_progress_fn */
int cli_progress_cb(void *arg, uint64_t done, uint64_t total);
/* Ends the bar's line, if one was drawn. */
void cli_progress_end(struct cli_progress *p);

/* The password of login and user create: the first line of file, else of stdin (asked for
 * without echo on a terminal). 0, or CLI_FAIL after printing why. (catalogs.c) */
int cli_read_password(const char *file, char *buf, size_t cap);

/* ---- commands ---- */
int cli_cmd_put(const struct cli_ctx *x, int argc, char **argv);
int cli_cmd_get(const struct cli_ctx *x, int argc, char **argv);
int cli_cmd_exists(const struct cli_ctx *x, int argc, char **argv);
int cli_cmd_evict(const struct cli_ctx *x, int argc, char **argv);
int cli_cmd_meta(const struct cli_ctx *x, int argc, char **argv);
int cli_cmd_ls(const struct cli_ctx *x, int argc, char **argv);
int cli_cmd_catalog(const struct cli_ctx *x, int argc, char **argv);
int cli_cmd_status(const struct cli_ctx *x, int argc, char **argv);
int cli_cmd_login(const struct cli_ctx *x, int argc, char **argv);
int cli_cmd_whoami(const struct cli_ctx *x, int argc, char **argv);
int cli_cmd_user(const struct cli_ctx *x, int argc, char **argv);
int cli_cmd_token(const struct cli_ctx *x, int argc, char **argv);
int cli_cmd_key(const struct cli_ctx *x, int argc, char **argv);
int cli_cmd_up(const struct cli_ctx *x, int argc, char **argv);
int cli_cmd_subscribe(const struct cli_ctx *x, int argc, char **argv); /* subscribe.c */
int cli_cmd_container(const struct cli_ctx *x, int argc, char **argv); /* admin.c: container drain */
int cli_cmd_admin(const struct cli_ctx *x, int argc, char **argv);     /* admin.c: rebuild-metadata, repair */
/* admin.c: the repair lines of `status` (json: adds "repair" to doc instead). */
void cli_status_repair(dyno_client *c, bool json, struct cJSON *doc);

/* ---- tls.c (for up --tls) ---- */
/* Makes, unless they exist, DIR/tls/ca.crt + ca.key (a local CA) and server.crt +
 * server.key (for 127.0.0.1 and localhost, signed by the CA); keys 0600. Exit code. */
int cli_up_tls(const char *data_dir);
#endif
