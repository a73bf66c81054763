/*
 * dynostore: the command line of DynoStore (SPEC §9). This file: global flags, the
 * command table, help, and the shared helpers of cli.h (flags, errors, exit codes).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "json.h"
#include "rest.h"

struct cli_cmd {
    const char *name;
    int (*fn)(const struct cli_ctx *x, int argc, char **argv);
    const char *usage;
};

static const struct cli_cmd cmds[] = {
    {"put", cli_cmd_put,
     "put FILE... --catalog C [--name N] [--resilience k,m]\n"
     "    Stores each FILE ('-' = stdin) in catalog C and prints its key (with --json, the put\n"
     "    result). The object is named after the file unless --name N (one FILE only).\n"},
    {"get", cli_cmd_get,
     "get KEY [-o FILE]\n"
     "    Fetches an object into FILE (written aside, verified, then renamed), or to stdout.\n"},
    {"exists", cli_cmd_exists, "exists KEY\n    Exit status 0 when the object exists, 3 when it does not.\n"},
    {"evict", cli_cmd_evict, "evict KEY\n    Deletes an object and all its fragments.\n"},
    {"meta", cli_cmd_meta,
     "meta KEY\n    Prints the metadata of an object (JSON): size, sha256, k, m, fragments.\n"},
    {"ls", cli_cmd_ls,
     "ls [CATALOG]\n    Lists your catalogs, or every object of CATALOG (key, size, name).\n"},
    {"catalog", cli_cmd_catalog,
     "catalog create C [--public] [--resilience k,m]\n"
     "catalog info C\n"
     "catalog rm C [--recursive]\n"
     "catalog share C (--user U | --org O) [--access read|write]\n"
     "catalog unshare C (--user U | --org O)\n"
     "    Manages catalogs (C = owner/name[/name...]).\n"},
    {"subscribe", cli_cmd_subscribe,
     "subscribe C [--mirror DIR [--recursive]] [--broker mqtt://HOST:PORT]\n"
     "    Prints every event of catalog C and its sub-catalogs as one JSON line, from the MQTT\n"
     "    broker (--broker, else $DYNOSTORE_BROKER, else the settings' \"broker\"). With --mirror,\n"
     "    keeps DIR equal to C: downloads what C holds, then every new object, removes evicted\n"
     "    ones, and resumes after a stop without loss (persistent session, DIR/.dynostore-mirror).\n"
     "    With --recursive, also every sub-catalog you can read: C/a/b goes to DIR/a/b. A DIR\n"
     "    mirrored with --recursive must always be mirrored with it, and one without, without.\n"},
    {"status", cli_cmd_status,
     "status\n    Gateway health, and the containers (id, site, state, used/capacity, utilization;\n"
     "    needs an admin token).\n"},
    {"login", cli_cmd_login,
     "login --user U [--password-file F] | login --device\n"
     "    Logs in (the password is read from F, else from stdin) and saves the token to the\n"
     "    settings folder (token, mode 0600) and config.json. --device prints a short code and\n"
     "    the web console's URL, and waits (10 minutes at most) until a user logged in to the\n"
     "    console approves the code there; the token is then that user's.\n"},
    {"whoami", cli_cmd_whoami, "whoami\n    Shows who the current token belongs to.\n"},
    {"user", cli_cmd_user,
     "user create NAME [--org O] [--admin] [--password-file F]\n"
     "user list\n"
     "    Admin: creates a user (the password is read from F, else from stdin), or lists them.\n"},
    {"token", cli_cmd_token,
     "token create [--ttl SECONDS] [--name N]\n"
     "token list\n"
     "token revoke ID\n"
     "    Issues a long-lived API token for you and prints it (once), lists your tokens (ID,\n"
     "    kind, name, expiry), or revokes one: it stops working everywhere within seconds.\n"},
    {"key", cli_cmd_key,
     "key create [--description D]\n"
     "key list [--user U | --all]\n"
     "key revoke ID\n"
     "    S3 access keys (docs/s3.md): creates one for you and prints its ID and secret (the\n"
     "    secret once), lists your keys (ID, user, created, last used, description; --user and\n"
     "    --all: admin), or revokes one: S3 requests signed with it fail within 5 s.\n"},
    {"container", cli_cmd_container,
     "container drain ID\n"
     "    Admin: moves every fragment off container ID (the repair workers rebuild them on other\n"
     "    containers, then delete them from ID); follow it with `dynostore status`.\n"},
    {"admin", cli_cmd_admin,
     "admin rebuild-metadata\n"
     "admin repair\n"
     "    Admin: rebuilds the metadata of every object from the fragments the containers hold\n"
     "    (after losing the metadata database), or prints the repair status (JSON).\n"},
    {"up", cli_cmd_up,
     "up [--data DIR] [--containers N] [--sites N] [--capacity SIZE] [--backend SPEC] [--s3-* ...]\n"
     "   [--site-brokers] [--repair-grace SECONDS] [--port P] [--tls] [--bin DIR] [--plugin PATH]\n"
     "   [--foreground]\n"
     "    Runs a whole fabric on this machine: the MQTT broker, dyno-auth, dyno-metadata,\n"
     "    dyno-pubsub, N dyno-container and dyno-gateway, on 127.0.0.1, with keys, configs,\n"
     "    databases, fragments and logs under DIR, and writes the CLI settings so that the\n"
     "    next `dynostore put` needs no flag. Stays in the foreground; Ctrl-C stops it all.\n"
     "    Starting it again on the same DIR keeps every object.\n"
     "      --data DIR            default $HOME/.local/share/dynostore/fabric\n"
     "      --containers N        data containers c1..cN (default 5)\n"
     "      --sites N             lay them round robin over site-1..site-N (default: a site\n"
     "                            each); no site gets more than m fragments of an object\n"
     "      --site-brokers        also a broker per site, bridged to the core broker (its\n"
     "                            devices publish and subscribe there; printed at start)\n"
     "      --capacity SIZE       capacity of each container (default 10G)\n"
     "      --backend SPEC        containers' storage: NAME for all and/or site-S=NAME (a\n"
     "                            site's) and/or cN=NAME, comma-separated; NAME posix\n"
     "                            (default), s3 or memory (lost at restart)\n"
     "      --s3-endpoint URL --s3-bucket B --s3-access-key K --s3-secret-file F [--s3-region R]\n"
     "                            the S3 service of s3 containers (one bucket, prefix cN/)\n"
     "      --repair-grace SECS   how long a container may be offline before repair\n"
     "      --port P              gateway port (default 8080; 0 or busy = a free one)\n"
     "      --tls                 HTTPS gateway and TLS broker, with a CA made in DIR/tls\n"
     "      --bin DIR             where the dyno-* agents are (default: next to dynostore)\n"
     "      --plugin PATH         the broker plugin (default: BIN/../lib/dyno_auth.so)\n"
     "      --foreground          stay attached to the terminal (the default)\n"},
};
#define NCMDS (sizeof(cmds) / sizeof(cmds[0]))

static void usage(FILE *f)
{
    fprintf(f, "Usage: dynostore [global options] COMMAND [ARGS]\n"
               "\n"
               "Objects:\n"
               "  put FILE... --catalog C [--name N] [--resilience k,m]   store files, print their keys\n"
               "  get KEY [-o FILE]           fetch an object (to stdout without -o)\n"
               "  exists KEY                  exit 0 when it exists, 3 when not\n"
               "  evict KEY                   delete an object\n"
               "  meta KEY                    metadata of an object (JSON)\n"
               "Catalogs:\n"
               "  ls [CATALOG]                your catalogs, or the objects of CATALOG\n"
               "  catalog create C [--public] [--resilience k,m]\n"
               "  catalog info C | catalog rm C [--recursive]\n"
               "  catalog share C (--user U | --org O) [--access read|write]\n"
               "  catalog unshare C (--user U | --org O)\n"
               "  subscribe C [--mirror DIR [--recursive]] [--broker URL]   follow (and mirror) a catalog\n"
               "Fabric and identity:\n"
               "  status                      gateway health, containers, degraded objects, repair\n"
               "  container drain ID          move every fragment off a container   (admin)\n"
               "  admin rebuild-metadata | admin repair   rebuild metadata from fragments, repair status\n"
               "  login --user U [--password-file F]   log in and save the token\n"
               "  login --device              log in by approving a code in the web console\n"
               "  whoami                      who the token belongs to\n"
               "  user create NAME [--org O] [--admin] [--password-file F] | user list   (admin)\n"
               "  token create [--ttl S] [--name N] | token list | token revoke ID   API tokens\n"
               "  key create [--description D] | key list | key revoke ID   S3 access keys\n"
               "  up [--data DIR] [--containers N] [--port P] [--tls] ...   run a local fabric\n"
               "  help [COMMAND]              this text, or a command's\n"
               "\n"
               "Global options (anywhere on the line):\n"
               "  --gateway URL      the gateway (else $DYNOSTORE_GATEWAY, else the settings file)\n"
               "  --token-file F     file holding the token (else $DYNOSTORE_TOKEN, the token itself,\n"
               "                     else the settings file)\n"
               "  --cacert F         CA bundle to verify an https gateway (else the settings file's,\n"
               "                     when the gateway is the settings file's too)\n"
               "  --json             machine-readable output on stdout\n"
               "  -q, --quiet        no progress bar or informational messages\n"
               "  -h, --help         help;  --version  the version\n"
               "\n"
               "Settings file: $XDG_CONFIG_HOME/dynostore/config.json (default\n"
               "~/.config/dynostore/config.json): {\"gateway\": URL, \"token_file\": PATH}, written by\n"
               "`dynostore up` and `dynostore login`.\n"
               "Exit status: 0 ok, 1 failure, 2 usage error, 3 not found, 4 unauthorized or forbidden.\n");
}

static const struct cli_cmd *find_cmd(const char *name)
{
    for (size_t i = 0; i < NCMDS; i++)
        if (strcmp(cmds[i].name, name) == 0)
            return &cmds[i];
    return NULL;
}

static void cmd_usage(const struct cli_cmd *c)
{
    printf("Usage: dynostore [global options] %s", c->usage);
    printf("Global options: --gateway URL, --token-file F, --cacert F, --json, --quiet (see dynostore "
           "--help).\n");
}

/* ---- shared helpers ---------------------------------------------------------------------- */

int cli_err(const char *fmt, ...)
{
    va_list ap;
    fputs("dynostore: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return CLI_FAIL;
}

int cli_usage(const char *fmt, ...)
{
    va_list ap;
    fputs("dynostore: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs(" (see dynostore --help)\n", stderr);
    return CLI_USAGE;
}

int cli_exit_code(int rc)
{
    switch (rc) {
    case DYNO_OK:
        return CLI_OK;
    case DYNO_ENOTFOUND:
        return CLI_NOTFOUND;
    case DYNO_EUNAUTH:
    case DYNO_EFORBIDDEN:
        return CLI_DENIED;
    default:
        return CLI_FAIL;
    }
}

int cli_fail(dyno_client *c, int rc, const char *what)
{
    const char *msg = dyno_client_last_error(c);
    if (!msg[0])
        msg = dyno_strerror(rc);
    if (what)
        cli_err("%s: %s", what, msg);
    else
        cli_err("%s", msg);
    return cli_exit_code(rc);
}

int cli_parse(const char *cmd, int argc, char **argv, const struct cli_flag *flags, size_t nflags, char **pos,
              int *npos)
{
    int np = 0;
    bool only_pos = false;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (only_pos || a[0] != '-' || strcmp(a, "-") == 0) {
            pos[np++] = argv[i];
            continue;
        }
        if (strcmp(a, "--") == 0) {
            only_pos = true;
            continue;
        }
        const char *eq = strchr(a, '=');
        size_t nl = eq && strncmp(a, "--", 2) == 0 ? (size_t)(eq - a) : strlen(a);
        const struct cli_flag *f = NULL;
        for (size_t k = 0; k < nflags; k++)
            if (strlen(flags[k].name) == nl && strncmp(flags[k].name, a, nl) == 0)
                f = &flags[k];
        if (!f)
            return cli_usage("%s: unknown option '%s'", cmd, a);
        if (f->has_arg) {
            if (a[nl] == '=') {
                *f->val = a + nl + 1;
            } else if (i + 1 < argc) {
                *f->val = argv[++i];
            } else {
                return cli_usage("%s: option %s needs a value", cmd, f->name);
            }
        } else if (a[nl] == '=') {
            return cli_usage("%s: option %s takes no value", cmd, f->name);
        }
        if (f->set)
            *f->set = true;
    }
    *npos = np;
    return 0;
}

int cli_parse_resilience(const char *s, int *k, int *m)
{
    uint64_t kk, mm;
    const char *comma = strchr(s, ',');
    if (!comma || dyno_rest_dec(s, (size_t)(comma - s), &kk))
        return cli_usage("bad --resilience '%s': expected k,m (for example 3,2)", s);
    if (dyno_rest_parse_u64(comma + 1, &mm) || kk < 1 || kk > 64 || mm > 64 || kk + mm > 64)
        return cli_usage("bad --resilience '%s': need k >= 1, m >= 0, k + m <= 64", s);
    *k = (int)kk;
    *m = (int)mm;
    return 0;
}

void cli_human(uint64_t n, char *out, size_t cap)
{
    static const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    double v = (double)n;
    size_t u = 0;
    while (v >= 1024.0 && u + 1 < sizeof(units) / sizeof(units[0])) {
        v /= 1024.0;
        u++;
    }
    if (u == 0)
        snprintf(out, cap, "%llu B", (unsigned long long)n);
    else
        snprintf(out, cap, "%.1f %s", v, units[u]);
}

void cli_print_json(const struct cJSON *j, bool compact)
{
    char *s = compact ? cJSON_PrintUnformatted(j) : cJSON_Print(j);
    if (!s) {
        cli_err("out of memory");
        return;
    }
    puts(s);
    cJSON_free(s);
}

/* ---- main -------------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    struct cli_ctx x = {0};
    bool help = false;
    int rc;
    char **rest = calloc((size_t)argc + 1, sizeof(char *));
    if (!rest)
        return cli_err("out of memory");
    int nrest = 0;
    bool only_pos = false;

    /* Global flags may appear anywhere before "--"; the rest goes to the command. */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char **val = NULL;
        const char *name = NULL;
        if (only_pos) {
            rest[nrest++] = argv[i];
            continue;
        }
        if (strcmp(a, "--") == 0) {
            only_pos = true;
            rest[nrest++] = argv[i];
            continue;
        }
        if (strcmp(a, "--json") == 0) {
            x.json = true;
        } else if (strcmp(a, "--quiet") == 0 || strcmp(a, "-q") == 0) {
            x.quiet = true;
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            help = true;
        } else if (strcmp(a, "--version") == 0 || strcmp(a, "-V") == 0) {
            printf("dynostore %s\n", DYNO_VERSION);
            rc = CLI_OK;
            goto out;
        } else if (strncmp(a, "--gateway", 9) == 0 && (a[9] == '\0' || a[9] == '=')) {
            val = &x.gateway_flag;
            name = "--gateway";
        } else if (strncmp(a, "--token-file", 12) == 0 && (a[12] == '\0' || a[12] == '=')) {
            val = &x.token_file_flag;
            name = "--token-file";
        } else if (strncmp(a, "--cacert", 8) == 0 && (a[8] == '\0' || a[8] == '=')) {
            val = &x.cacert_flag;
            name = "--cacert";
        } else {
            rest[nrest++] = argv[i];
        }
        if (val) {
            const char *eq = strchr(a, '=');
            if (eq) {
                *val = eq + 1;
            } else if (i + 1 < argc) {
                *val = argv[++i];
            } else {
                rc = cli_usage("option %s needs a value", name);
                goto out;
            }
        }
    }

    if (nrest == 0) {
        if (help) {
            usage(stdout);
            rc = CLI_OK;
        } else {
            usage(stderr);
            rc = CLI_USAGE;
        }
        goto out;
    }
    const char *name = rest[0];
    if (strcmp(name, "help") == 0) {
        const struct cli_cmd *c = nrest > 1 ? find_cmd(rest[1]) : NULL;
        if (c)
            cmd_usage(c);
        else
            usage(stdout);
        rc = nrest > 1 && !c ? cli_usage("unknown command '%s'", rest[1]) : CLI_OK;
        goto out;
    }
    const struct cli_cmd *c = find_cmd(name);
    if (!c) {
        rc = cli_usage("unknown command '%s'", name);
        goto out;
    }
    if (help) {
        cmd_usage(c);
        rc = CLI_OK;
        goto out;
    }
    if (dyno_client_global_init() < 0) {
        rc = cli_err("cannot initialise libcurl");
        goto out;
    }
    rc = c->fn(&x, nrest - 1, rest + 1);
    dyno_client_global_cleanup();
out:
    free(rest);
    return rc;
}
