/*
 * Catalog, fabric and identity commands: ls, catalog, status, login, whoami.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "config.h"
#include "json.h"
#include "names.h"
#include "token.h"

#define CLI_LS_PAGE 1000

/* ---- ls ---------------------------------------------------------------------------------- */

static const char *catalog_name(const cJSON *o)
{
    const char *n = dyno_json_str(o, "catalog");
    if (!n)
        n = dyno_json_str(o, "path");
    if (!n)
        n = dyno_json_str(o, "name");
    return n ? n : "?";
}

static int ls_catalogs(const struct cli_ctx *x, dyno_client *c)
{
    cJSON *doc = NULL;
    int rc = dyno_client_catalog_list(c, &doc);
    if (rc < 0)
        return cli_fail(c, rc, "ls");
    if (x->json) {
        cli_print_json(doc, true);
        cJSON_Delete(doc);
        return CLI_OK;
    }
    const cJSON *arr = cJSON_IsArray(doc) ? doc : cJSON_GetObjectItemCaseSensitive(doc, "catalogs");
    const cJSON *it;
    cJSON_ArrayForEach(it, arr)
    {
        int64_t k = 0, m = 0;
        (void)dyno_json_i64(it, "k", &k);
        (void)dyno_json_i64(it, "m", &m);
        const char *access = dyno_json_str(it, "access");
        printf("%-40s %-7s k=%lld m=%lld%s%s\n", catalog_name(it),
               dyno_json_bool(it, "public", false) ? "public" : "private", (long long)k, (long long)m,
               access ? "  " : "", access ? access : "");
    }
    cJSON_Delete(doc);
    return CLI_OK;
}

static int ls_objects(const struct cli_ctx *x, dyno_client *c, const char *catalog)
{
    int ec = CLI_OK;
    char *after = NULL;
    cJSON *all = x->json ? cJSON_CreateArray() : NULL;
    if (x->json && !all)
        return cli_err("out of memory");
    for (int pages = 0;; pages++) {
        cJSON *page = NULL;
        char *next = NULL;
        int rc = dyno_client_list(c, catalog, after, CLI_LS_PAGE, &page, &next);
        if (rc < 0) {
            ec = cli_fail(c, rc, "ls");
            break;
        }
        cJSON *objs = cJSON_GetObjectItemCaseSensitive(page, "objects");
        cJSON *it;
        if (x->json) {
            while (cJSON_GetArraySize(objs) > 0)
                cJSON_AddItemToArray(all, cJSON_DetachItemFromArray(objs, 0));
        } else {
            cJSON_ArrayForEach(it, objs)
            {
                int64_t size = 0;
                (void)dyno_json_i64(it, "size", &size);
                const char *key = dyno_json_str(it, "key");
                const char *name = dyno_json_str(it, "name");
                printf("%s  %12lld  %s\n", key ? key : "?", (long long)size, name ? name : "");
            }
        }
        cJSON_Delete(page);
        free(after);
        after = next;
        if (!after)
            break;
    }
    free(after);
    if (x->json && ec == CLI_OK) {
        cJSON *o = cJSON_CreateObject();
        if (o) {
            cJSON_AddStringToObject(o, "catalog", catalog);
            cJSON_AddItemToObject(o, "objects", all);
            all = NULL;
            cli_print_json(o, true);
            cJSON_Delete(o);
        }
    }
    cJSON_Delete(all);
    return ec;
}

int cli_cmd_ls(const struct cli_ctx *x, int argc, char **argv)
{
    char *pos[4];
    int npos = 0;
    dyno_client *c = NULL;
    if (argc > 3)
        return cli_usage("ls: too many arguments");
    int ec = cli_parse("ls", argc, argv, NULL, 0, pos, &npos);
    if (ec)
        return ec;
    if (npos > 1)
        return cli_usage("ls: expected at most one CATALOG");
    if (npos == 1 && !dyno_valid_catalog(pos[0]))
        return cli_usage("ls: invalid catalog '%s' (owner/name[/name...])", pos[0]);
    ec = cli_connect(x, true, &c);
    if (ec)
        return ec;
    ec = npos == 0 ? ls_catalogs(x, c) : ls_objects(x, c, pos[0]);
    dyno_client_free(c);
    return ec;
}

/* ---- catalog ----------------------------------------------------------------------------- */

int cli_cmd_catalog(const struct cli_ctx *x, int argc, char **argv)
{
    const char *resil = NULL, *user = NULL, *org = NULL, *access = "read";
    bool pub = false, recursive = false;
    char *pos[16];
    int npos = 0;
    dyno_client *c = NULL;
    cJSON *doc = NULL;
    if (argc < 1)
        return cli_usage("catalog: expected create, info, rm, share or unshare");
    if (argc > 12)
        return cli_usage("catalog: too many arguments");
    const char *sub = argv[0];
    const struct cli_flag flags[] = {
        {"--public", false, NULL, &pub},
        {"--resilience", true, &resil, NULL},
        {"--recursive", false, NULL, &recursive},
        {"--user", true, &user, NULL},
        {"--org", true, &org, NULL},
        {"--access", true, &access, NULL},
    };
    int ec = cli_parse("catalog", argc - 1, argv + 1, flags, sizeof(flags) / sizeof(flags[0]), pos, &npos);
    if (ec)
        return ec;
    if (npos != 1)
        return cli_usage("catalog %s: expected one catalog (owner/name[/name...])", sub);
    const char *cat = pos[0];
    if (!dyno_valid_catalog(cat))
        return cli_usage("catalog %s: invalid catalog '%s' (owner/name[/name...])", sub, cat);
    bool create = strcmp(sub, "create") == 0, info = strcmp(sub, "info") == 0;
    bool rm = strcmp(sub, "rm") == 0 || strcmp(sub, "delete") == 0, share = strcmp(sub, "share") == 0;
    bool unshare = strcmp(sub, "unshare") == 0;
    if (!create && !info && !rm && !share && !unshare)
        return cli_usage("catalog: unknown subcommand '%s' (create, info, rm, share, unshare)", sub);
    if ((pub || resil) && !create)
        return cli_usage("catalog %s: --public and --resilience go with create", sub);
    if (recursive && !rm)
        return cli_usage("catalog %s: --recursive goes with rm", sub);
    if ((share || unshare) && ((user == NULL) == (org == NULL)))
        return cli_usage("catalog %s: give exactly one of --user U or --org O", sub);
    if (!share && !unshare && (user || org))
        return cli_usage("catalog %s: --user and --org go with share and unshare", sub);
    if (share && strcmp(access, "read") != 0 && strcmp(access, "write") != 0)
        return cli_usage("catalog share: --access is read or write");
    struct dyno_catalog_opts opts = {.public_read = pub};
    if (resil && (ec = cli_parse_resilience(resil, &opts.k, &opts.m)) != 0)
        return ec;
    ec = cli_connect(x, true, &c);
    if (ec)
        return ec;
    int rc;
    if (create) {
        rc = dyno_client_catalog_create(c, cat, &opts, &doc);
        if (rc == 0) {
            if (x->json)
                cli_print_json(doc, true);
            else if (!x->quiet)
                printf("catalog %s ready\n", cat);
        }
    } else if (info) {
        rc = dyno_client_catalog_info(c, cat, &doc);
        if (rc == 0)
            cli_print_json(doc, x->json);
    } else if (rm) {
        rc = dyno_client_catalog_delete(c, cat, recursive);
        if (rc == 0 && x->json)
            printf("{\"catalog\":\"%s\",\"deleted\":true}\n", cat);
        else if (rc == 0 && !x->quiet)
            printf("catalog %s deleted\n", cat);
    } else if (unshare) {
        rc = dyno_client_catalog_unshare(c, cat, user ? user : org, org != NULL);
        if (rc == 0 && !x->quiet && !x->json)
            printf("catalog %s no longer shared with %s %s\n", cat, user ? "user" : "org", user ? user : org);
        else if (rc == 0 && x->json)
            printf("{\"catalog\":\"%s\",\"shared\":false}\n", cat);
    } else {
        rc = dyno_client_catalog_share(c, cat, user ? user : org, org != NULL, access);
        if (rc == 0 && !x->quiet && !x->json)
            printf("catalog %s shared with %s %s (%s)\n", cat, user ? "user" : "org", user ? user : org,
                   access);
        else if (rc == 0 && x->json)
            printf("{\"catalog\":\"%s\",\"shared\":true}\n", cat);
    }
    if (rc < 0) {
        char what[64];
        snprintf(what, sizeof(what), "catalog %s", sub);
        ec = cli_fail(c, rc, what);
    }
    cJSON_Delete(doc);
    dyno_client_free(c);
    return ec;
}

/* ---- status ------------------------------------------------------------------------------ */

static double num(const cJSON *o, const char *name, double def)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsNumber(v) ? v->valuedouble : def;
}

int cli_cmd_status(const struct cli_ctx *x, int argc, char **argv)
{
    dyno_client *c = NULL;
    cJSON *health = NULL, *conts = NULL;
    if (argc > 0)
        return cli_usage("status: unexpected argument '%s'", argv[0]);
    int ec = cli_connect(x, false, &c);
    if (ec)
        return ec;
    int hrc = dyno_client_healthz(c, &health);
    if (hrc < 0) {
        ec = cli_fail(c, hrc, "gateway not healthy");
        goto out;
    }
    int crc = dyno_client_containers(c, &conts);
    if (x->json) {
        cJSON *o = cJSON_CreateObject();
        if (o) {
            cJSON_AddItemToObject(o, "healthz", health ? health : cJSON_CreateString("ok"));
            health = NULL;
            const cJSON *arr = cJSON_GetObjectItemCaseSensitive(conts, "containers");
            if (crc == 0)
                cJSON_AddItemToObject(o, "containers",
                                      arr ? cJSON_Duplicate(arr, true) : cJSON_CreateArray());
            if (crc == 0)
                cli_status_repair(c, true, o);
            cli_print_json(o, true);
            cJSON_Delete(o);
        }
    } else {
        const char *st = dyno_json_str(health, "status");
        printf("gateway: %s\n", st ? st : "ok");
        if (crc == 0) {
            const cJSON *arr = cJSON_GetObjectItemCaseSensitive(conts, "containers");
            const cJSON *it;
            int online = 0, total = 0;
            printf("%-12s %-12s %-8s %-8s %-26s %s\n", "ID", "SITE", "BACKEND", "STATE", "USED / CAPACITY",
                   "UTIL");
            cJSON_ArrayForEach(it, arr)
            {
                double used = num(it, "used", 0), cap = num(it, "capacity", 0);
                double util = num(it, "utilization", cap > 0 ? used / cap : 0);
                char u[32], k[32], uc[80];
                cli_human((uint64_t)used, u, sizeof(u));
                cli_human((uint64_t)cap, k, sizeof(k));
                snprintf(uc, sizeof(uc), "%s / %s", u, k);
                const char *state = dyno_json_str(it, "state");
                const char *site = dyno_json_str(it, "site");
                const char *backend = dyno_json_str(it, "backend");
                const char *id = dyno_json_str(it, "id");
                total++;
                if (state && strcmp(state, "online") == 0)
                    online++;
                printf("%-12s %-12s %-8s %-8s %-26s %.2f%%", id ? id : "?", site && site[0] ? site : "-",
                       backend && backend[0] ? backend : "-", state ? state : "?", uc, util * 100.0);
                if (num(it, "repairing", 0) > 0)
                    printf("  (%.0f fragments to repair)", num(it, "repairing", 0));
                printf("\n");
            }
            printf("%d of %d containers online\n", online, total);
            cli_status_repair(c, false, NULL);
        }
    }
    if (crc < 0)
        ec = cli_fail(c, crc, "containers");
out:
    cJSON_Delete(health);
    cJSON_Delete(conts);
    dyno_client_free(c);
    return ec;
}

/* ---- login, whoami ----------------------------------------------------------------------- */

/* Reads one line of at most cap-1 bytes; strips the newline. */
static int read_line(FILE *f, char *buf, size_t cap)
{
    if (!fgets(buf, (int)cap, f))
        return DYNO_EIO;
    buf[strcspn(buf, "\r\n")] = '\0';
    return 0;
}

int cli_read_password(const char *file, char *buf, size_t cap)
{
    if (file) {
        char *p = NULL;
        int rc = dyno_read_file(file, cap - 1, &p, NULL);
        if (rc < 0)
            return cli_err("cannot read password file %s: %s", file, dyno_strerror(rc));
        p[strcspn(p, "\r\n")] = '\0';
        snprintf(buf, cap, "%s", p);
        memset(p, 0, strlen(p));
        free(p);
        return 0;
    }
    if (isatty(STDIN_FILENO)) {
        struct termios old, quiet;
        fputs("Password: ", stderr);
        fflush(stderr);
        bool echo_off = tcgetattr(STDIN_FILENO, &old) == 0;
        if (echo_off) {
            quiet = old;
            quiet.c_lflag &= ~(tcflag_t)ECHO;
            tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
        }
        int rc = read_line(stdin, buf, cap);
        if (echo_off)
            tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
        fputc('\n', stderr);
        if (rc < 0)
            return cli_err("no password given");
        return 0;
    }
    if (read_line(stdin, buf, cap) < 0)
        return cli_err("no password on stdin");
    return 0;
}

/*
 * login --device: the gateway hands out a code pair; the user approves the short code in
 * the web console (logged in there), and the polls below get an API token of that user.
 * The code is printed on stderr with the console's URL, so --json output stays one
 * document. *who gets the approving user (whoami of the new token).
 */
static int login__device(dyno_client *c, const char *gw, char **token, int64_t *exp, char *who, size_t cap)
{
    char *dev = NULL, *code = NULL;
    int64_t ttl = 600, interval = 2;
    int rc = dyno_client_device_start(c, &dev, &code, &ttl, &interval);
    if (rc < 0)
        return rc;
    size_t gl = strlen(gw);
    while (gl > 0 && gw[gl - 1] == '/')
        gl--;
    fprintf(stderr,
            "To log in, open %.*s/#/device?code=%s in a browser where you are logged in to the console,\n"
            "and approve the code: %s\n(it expires in %lld minutes; waiting...)\n",
            (int)gl, gw, code, code, (long long)(ttl / 60));
    fflush(stderr);
    time_t until = time(NULL) + ttl + interval;
    for (;;) {
        rc = dyno_client_device_poll(c, dev, token, exp);
        if (rc < 0 || *token)
            break;
        if (time(NULL) > until) {
            rc = DYNO_ETIMEDOUT;
            break;
        }
        sleep((unsigned)interval);
    }
    memset(dev, 0, strlen(dev));
    free(dev);
    free(code);
    if (rc < 0)
        return rc;
    cJSON *me = NULL;
    if (dyno_client_set_token(c, *token) == 0 && dyno_client_whoami(c, &me) == 0) {
        const char *u = dyno_json_str(me, "user");
        snprintf(who, cap, "%s", u ? u : "");
    }
    cJSON_Delete(me);
    return 0;
}

int cli_cmd_login(const struct cli_ctx *x, int argc, char **argv)
{
    const char *user = NULL, *pwfile = NULL;
    char *pos[8];
    int npos = 0;
    char pw[1024];
    char *gw = NULL, *tok_unused = NULL, *ca = NULL, *token = NULL;
    dyno_client *c = NULL;
    char dir[4096], tpath[4200];
    if (argc > 6)
        return cli_usage("login: too many arguments");
    bool device = false;
    const struct cli_flag flags[] = {{"--user", true, &user, NULL},
                                     {"-u", true, &user, NULL},
                                     {"--password-file", true, &pwfile, NULL},
                                     {"--device", false, NULL, &device}};
    int ec = cli_parse("login", argc, argv, flags, 4, pos, &npos);
    if (ec)
        return ec;
    if (npos == 1 && !user)
        user = pos[0];
    else if (npos > 0)
        return cli_usage("login: unexpected argument '%s'", pos[0]);
    if (device && (user || pwfile))
        return cli_usage("login: --device takes no --user or --password-file (the console's user is used)");
    if (!user && !device)
        return cli_usage("login: --user U (or --device) is required");
    if (user && !dyno_valid_segment(user))
        return cli_usage("login: invalid user name '%s'", user);
    if (cli_config_dir(dir, sizeof(dir)) < 0)
        return cli_err("neither $HOME nor $XDG_CONFIG_HOME is set: nowhere to save the token");
    ec = cli_resolve(x, &gw, &tok_unused, &ca);
    if (ec)
        return ec;
    if (!gw) {
        ec = cli_err(
            "no gateway: pass --gateway URL, set DYNOSTORE_GATEWAY, or start one with `dynostore up`");
        goto out;
    }
    if (!device && cli_read_password(pwfile, pw, sizeof(pw)) != 0) {
        ec = CLI_FAIL;
        goto out;
    }
    int rc = dyno_client_new(gw, NULL, &c);
    if (rc < 0) {
        ec = cli_usage("bad gateway URL '%s'", gw);
        goto out;
    }
    if (ca && dyno_client_set_cafile(c, ca) < 0) {
        ec = cli_err("cannot read CA file %s", ca);
        goto out;
    }
    int64_t exp = 0;
    char who[DYNO_SEG_MAX + 1] = "";
    if (device) {
        rc = login__device(c, gw, &token, &exp, who, sizeof(who));
        user = who;
    } else {
        rc = dyno_client_login(c, user, pw, &token, &exp);
    }
    memset(pw, 0, sizeof(pw));
    if (rc < 0) {
        ec = cli_fail(c, rc, "login");
        goto out;
    }
    if (cli_mkdirs(dir, 0700) < 0) {
        ec = cli_err("cannot create %s: %s", dir, strerror(errno));
        goto out;
    }
    snprintf(tpath, sizeof(tpath), "%s/token", dir);
    size_t tl = strlen(token);
    token[tl] = '\n'; /* written with its newline; the NUL goes back below */
    rc = dyno_write_file(tpath, token, tl + 1, 0600);
    token[tl] = '\0';
    if (rc < 0) {
        ec = cli_err("cannot write %s: %s", tpath, dyno_strerror(rc));
        goto out;
    }
    if (cli_config_update(gw, tpath, ca) < 0) {
        ec = CLI_FAIL;
        goto out;
    }
    if (x->json) {
        cJSON *o = cJSON_CreateObject();
        if (o) {
            cJSON_AddStringToObject(o, "user", user);
            cJSON_AddStringToObject(o, "gateway", gw);
            cJSON_AddStringToObject(o, "token_file", tpath);
            dyno_json_add_i64(o, "expires_at", exp);
            cli_print_json(o, true);
            cJSON_Delete(o);
        }
    } else if (!x->quiet) {
        printf("logged in as %s; token saved to %s\n", user, tpath);
    }
out:
    if (token) {
        memset(token, 0, strlen(token));
        free(token);
    }
    if (tok_unused) {
        memset(tok_unused, 0, strlen(tok_unused));
        free(tok_unused);
    }
    free(gw);
    free(ca);
    dyno_client_free(c);
    return ec;
}

int cli_cmd_whoami(const struct cli_ctx *x, int argc, char **argv)
{
    dyno_client *c = NULL;
    cJSON *doc = NULL;
    if (argc > 0)
        return cli_usage("whoami: unexpected argument '%s'", argv[0]);
    int ec = cli_connect(x, true, &c);
    if (ec)
        return ec;
    int rc = dyno_client_whoami(c, &doc);
    if (rc < 0) {
        ec = cli_fail(c, rc, "whoami");
    } else if (x->json) {
        cli_print_json(doc, true);
    } else {
        const char *u = dyno_json_str(doc, "user");
        if (!u)
            u = dyno_json_str(doc, "sub");
        if (!u)
            u = dyno_json_str(doc, "username");
        const char *org = dyno_json_str(doc, "org");
        printf("%s%s%s%s\n", u ? u : "?", org && org[0] ? " (org " : "", org && org[0] ? org : "",
               org && org[0] ? ")" : "");
        if (dyno_json_bool(doc, "admin", false) || dyno_json_bool(doc, "adm", false))
            printf("admin\n");
    }
    cJSON_Delete(doc);
    dyno_client_free(c);
    return ec;
}
