/*
 * Identity commands: user create|list (admin), token create|list|revoke (SPEC §9) and
 * key create|list|revoke (S3 access keys, docs/s3.md). Tokens and secrets are printed only by
 * `token create` and `key create`, on stdout, once; never on stderr.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "json.h"
#include "names.h"
#include "rest.h"

#define CLI_PW_MAX 1024 /* longest password read (dyno-auth's own limit is lower) */

static void print_time(int64_t t, char *out, size_t cap)
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (t <= 0 || !gmtime_r(&tt, &tm) || strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(out, cap, "-");
}

/* ---- user ---------------------------------------------------------------------------------- */

static int user_create(const struct cli_ctx *x, int argc, char **argv)
{
    const char *org = NULL, *pwfile = NULL;
    bool admin = false;
    char **pos = calloc((size_t)argc + 1, sizeof(char *));
    char pw[CLI_PW_MAX];
    dyno_client *c = NULL;
    cJSON *doc = NULL;
    int npos = 0, ec;

    if (!pos)
        return cli_err("out of memory");
    const struct cli_flag flags[] = {
        {"--org", true, &org, NULL},
        {"--admin", false, NULL, &admin},
        {"--password-file", true, &pwfile, NULL},
    };
    ec = cli_parse("user create", argc, argv, flags, sizeof(flags) / sizeof(flags[0]), pos, &npos);
    if (ec)
        goto out;
    if (npos != 1) {
        ec = cli_usage("user create: exactly one NAME is needed");
        goto out;
    }
    if (!dyno_valid_segment(pos[0])) {
        ec = cli_usage("user create: invalid user name (letters, digits, '.', '_', '-'; 1..64)");
        goto out;
    }
    ec = cli_connect(x, true, &c);
    if (ec)
        goto out;
    if (cli_read_password(pwfile, pw, sizeof(pw)) != 0) {
        ec = CLI_FAIL;
        goto out;
    }
    int rc = dyno_client_user_create(c, pos[0], pw, org, admin, &doc);
    memset(pw, 0, sizeof(pw));
    if (rc < 0) {
        ec = cli_fail(c, rc, "user create");
        goto out;
    }
    if (x->json) {
        cli_print_json(doc, true);
    } else if (!x->quiet) {
        const char *o = dyno_json_str(doc, "org");
        printf("user %s created%s%s%s\n", pos[0], o && o[0] ? " in org " : "", o && o[0] ? o : "",
               dyno_json_bool(doc, "admin", false) ? " (admin)" : "");
    }
    ec = CLI_OK;
out:
    cJSON_Delete(doc);
    dyno_client_free(c);
    free(pos);
    return ec;
}

static int user_list(const struct cli_ctx *x, int argc, char **argv)
{
    dyno_client *c = NULL;
    cJSON *doc = NULL;
    if (argc > 0)
        return cli_usage("user list: unexpected argument '%s'", argv[0]);
    int ec = cli_connect(x, true, &c);
    if (ec)
        return ec;
    int rc = dyno_client_user_list(c, &doc);
    if (rc < 0) {
        ec = cli_fail(c, rc, "user list");
    } else if (x->json) {
        cli_print_json(doc, true);
    } else {
        const cJSON *u;
        cJSON_ArrayForEach(u, cJSON_GetObjectItemCaseSensitive(doc, "users"))
        {
            const char *name = dyno_json_str(u, "username");
            const char *org = dyno_json_str(u, "org");
            printf("%-24s %-24s %s\n", name ? name : "?", org && org[0] ? org : "-",
                   dyno_json_bool(u, "admin", false) ? "admin" : "");
        }
    }
    cJSON_Delete(doc);
    dyno_client_free(c);
    return ec;
}

int cli_cmd_user(const struct cli_ctx *x, int argc, char **argv)
{
    if (argc < 1)
        return cli_usage("user: create or list?");
    if (strcmp(argv[0], "create") == 0)
        return user_create(x, argc - 1, argv + 1);
    if (strcmp(argv[0], "list") == 0)
        return user_list(x, argc - 1, argv + 1);
    return cli_usage("user: unknown subcommand '%s' (create, list)", argv[0]);
}

/* ---- token --------------------------------------------------------------------------------- */

static int token_create(const struct cli_ctx *x, int argc, char **argv)
{
    const char *ttl_s = NULL, *name = NULL;
    char *pos[8];
    int npos = 0;
    long long ttl = 0;
    dyno_client *c = NULL;
    cJSON *doc = NULL;
    char *token = NULL;

    if (argc > 6)
        return cli_usage("token create: too many arguments");
    const struct cli_flag flags[] = {{"--ttl", true, &ttl_s, NULL}, {"--name", true, &name, NULL}};
    int ec = cli_parse("token create", argc, argv, flags, 2, pos, &npos);
    if (ec)
        return ec;
    if (npos > 0)
        return cli_usage("token create: unexpected argument '%s'", pos[0]);
    if (ttl_s) {
        uint64_t v;
        if (dyno_rest_parse_u64(ttl_s, &v) || v < 1 || v > INT64_MAX)
            return cli_usage("token create: --ttl must be a positive number of seconds");
        ttl = (long long)v;
    }
    ec = cli_connect(x, true, &c);
    if (ec)
        return ec;
    int rc = dyno_client_token_create(c, (int64_t)ttl, name, &token, &doc);
    if (rc < 0) {
        ec = cli_fail(c, rc, "token create");
        goto out;
    }
    if (x->json) {
        /* the one place a token is printed: stdout, on request */
        cJSON_AddStringToObject(doc, "token", token);
        cli_print_json(doc, true);
        cJSON *t = cJSON_GetObjectItemCaseSensitive(doc, "token");
        if (cJSON_IsString(t))
            memset(t->valuestring, 0, strlen(t->valuestring));
    } else {
        puts(token);
        if (!x->quiet) {
            char when[32];
            int64_t exp = 0;
            (void)dyno_json_i64(doc, "expires_at", &exp);
            print_time(exp, when, sizeof(when));
            const char *id = dyno_json_str(doc, "id");
            if (!id)
                id = dyno_json_str(doc, "jti");
            fprintf(stderr, "token id %s, valid until %s; revoke it with: dynostore token revoke %s\n",
                    id ? id : "?", when, id ? id : "ID");
        }
    }
    ec = CLI_OK;
out:
    if (token) {
        memset(token, 0, strlen(token));
        free(token);
    }
    cJSON_Delete(doc);
    dyno_client_free(c);
    return ec;
}

static int token_list(const struct cli_ctx *x, int argc, char **argv)
{
    dyno_client *c = NULL;
    cJSON *doc = NULL;
    if (argc > 0)
        return cli_usage("token list: unexpected argument '%s'", argv[0]);
    int ec = cli_connect(x, true, &c);
    if (ec)
        return ec;
    int rc = dyno_client_token_list(c, &doc);
    if (rc < 0) {
        ec = cli_fail(c, rc, "token list");
    } else if (x->json) {
        cli_print_json(doc, true);
    } else {
        const cJSON *t;
        cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(doc, "tokens"))
        {
            const char *id = dyno_json_str(t, "jti");
            const char *kind = dyno_json_str(t, "kind");
            const char *name = dyno_json_str(t, "name");
            int64_t exp = 0;
            char when[32];
            (void)dyno_json_i64(t, "expires_at", &exp);
            print_time(exp, when, sizeof(when));
            printf("%-32s %-8s %-20s %s%s\n", id ? id : "?", kind ? kind : "-", name && name[0] ? name : "-",
                   when, dyno_json_bool(t, "revoked", false) ? " revoked" : "");
        }
    }
    cJSON_Delete(doc);
    dyno_client_free(c);
    return ec;
}

static int token_revoke(const struct cli_ctx *x, int argc, char **argv)
{
    dyno_client *c = NULL;
    if (argc != 1)
        return cli_usage("token revoke: exactly one token ID is needed (see dynostore token list)");
    if (!dyno_valid_key(argv[0]))
        return cli_usage(
            "token revoke: a token ID is 32 lowercase hex characters (see dynostore token list)");
    int ec = cli_connect(x, true, &c);
    if (ec)
        return ec;
    int rc = dyno_client_token_revoke(c, argv[0]);
    if (rc < 0)
        ec = cli_fail(c, rc, "token revoke");
    else if (x->json)
        printf("{\"id\":\"%s\",\"revoked\":true}\n", argv[0]);
    else if (!x->quiet)
        printf("token %s revoked\n", argv[0]);
    dyno_client_free(c);
    return ec;
}

int cli_cmd_token(const struct cli_ctx *x, int argc, char **argv)
{
    if (argc < 1)
        return cli_usage("token: create, list or revoke?");
    if (strcmp(argv[0], "create") == 0)
        return token_create(x, argc - 1, argv + 1);
    if (strcmp(argv[0], "list") == 0)
        return token_list(x, argc - 1, argv + 1);
    if (strcmp(argv[0], "revoke") == 0)
        return token_revoke(x, argc - 1, argv + 1);
    return cli_usage("token: unknown subcommand '%s' (create, list, revoke)", argv[0]);
}

/* ---- key (S3 access keys) ------------------------------------------------------------------ */

static int key_create(const struct cli_ctx *x, int argc, char **argv)
{
    const char *desc = NULL;
    char *pos[8];
    int npos = 0;
    dyno_client *c = NULL;
    cJSON *doc = NULL;
    char *secret = NULL;

    if (argc > 4)
        return cli_usage("key create: too many arguments");
    const struct cli_flag flags[] = {{"--description", true, &desc, NULL}};
    int ec = cli_parse("key create", argc, argv, flags, 1, pos, &npos);
    if (ec)
        return ec;
    if (npos > 0)
        return cli_usage("key create: unexpected argument '%s'", pos[0]);
    ec = cli_connect(x, true, &c);
    if (ec)
        return ec;
    int rc = dyno_client_key_create(c, desc, &secret, &doc);
    if (rc < 0) {
        ec = cli_fail(c, rc, "key create");
        goto out;
    }
    const char *id = dyno_json_str(doc, "access_key_id");
    if (x->json) {
        /* the one place a secret is printed: stdout, on request */
        cJSON_AddStringToObject(doc, "secret_access_key", secret);
        cli_print_json(doc, true);
        cJSON *t = cJSON_GetObjectItemCaseSensitive(doc, "secret_access_key");
        if (cJSON_IsString(t))
            memset(t->valuestring, 0, strlen(t->valuestring));
    } else {
        printf("access_key_id     %s\nsecret_access_key %s\n", id ? id : "?", secret);
        if (!x->quiet)
            fprintf(stderr, "the secret is shown this once; revoke the key with: dynostore key revoke %s\n",
                    id ? id : "ID");
    }
    ec = CLI_OK;
out:
    if (secret) {
        memset(secret, 0, strlen(secret));
        free(secret);
    }
    cJSON_Delete(doc);
    dyno_client_free(c);
    return ec;
}

static int key_list(const struct cli_ctx *x, int argc, char **argv)
{
    const char *user = NULL;
    bool all = false;
    char *pos[8];
    int npos = 0;
    dyno_client *c = NULL;
    cJSON *doc = NULL;

    if (argc > 4)
        return cli_usage("key list: too many arguments");
    const struct cli_flag flags[] = {{"--user", true, &user, NULL}, {"--all", false, NULL, &all}};
    int ec = cli_parse("key list", argc, argv, flags, 2, pos, &npos);
    if (ec)
        return ec;
    if (npos > 0)
        return cli_usage("key list: unexpected argument '%s'", pos[0]);
    if (user && all)
        return cli_usage("key list: --user or --all, not both");
    if (user && !dyno_valid_segment(user))
        return cli_usage("key list: invalid user name (letters, digits, '.', '_', '-'; 1..64)");
    ec = cli_connect(x, true, &c);
    if (ec)
        return ec;
    int rc = dyno_client_key_list(c, user, all, &doc);
    if (rc < 0) {
        ec = cli_fail(c, rc, "key list");
    } else if (x->json) {
        cli_print_json(doc, true);
    } else {
        const cJSON *k;
        cJSON_ArrayForEach(k, cJSON_GetObjectItemCaseSensitive(doc, "keys"))
        {
            const char *id = dyno_json_str(k, "access_key_id");
            const char *who = dyno_json_str(k, "user");
            const char *desc = dyno_json_str(k, "description");
            int64_t created = 0, used = 0;
            char c_when[32], u_when[32];
            (void)dyno_json_i64(k, "created", &created);
            (void)dyno_json_i64(k, "last_used", &used);
            print_time(created, c_when, sizeof(c_when));
            print_time(used, u_when, sizeof(u_when));
            printf("%-20s %-16s %-20s %-20s %s\n", id ? id : "?", who ? who : "-", c_when, u_when,
                   desc && desc[0] ? desc : "-");
        }
    }
    cJSON_Delete(doc);
    dyno_client_free(c);
    return ec;
}

static int key_revoke(const struct cli_ctx *x, int argc, char **argv)
{
    dyno_client *c = NULL;
    if (argc != 1)
        return cli_usage("key revoke: exactly one access key ID is needed (see dynostore key list)");
    if (!dyno_valid_access_key_id(argv[0]))
        return cli_usage("key revoke: an access key ID is DK and 18 of A-Z 0-9 (see dynostore key list)");
    int ec = cli_connect(x, true, &c);
    if (ec)
        return ec;
    int rc = dyno_client_key_revoke(c, argv[0]);
    if (rc < 0)
        ec = cli_fail(c, rc, "key revoke");
    else if (x->json)
        printf("{\"access_key_id\":\"%s\",\"revoked\":true}\n", argv[0]);
    else if (!x->quiet)
        printf("access key %s revoked\n", argv[0]);
    dyno_client_free(c);
    return ec;
}

int cli_cmd_key(const struct cli_ctx *x, int argc, char **argv)
{
    if (argc < 1)
        return cli_usage("key: create, list or revoke?");
    if (strcmp(argv[0], "create") == 0)
        return key_create(x, argc - 1, argv + 1);
    if (strcmp(argv[0], "list") == 0)
        return key_list(x, argc - 1, argv + 1);
    if (strcmp(argv[0], "revoke") == 0)
        return key_revoke(x, argc - 1, argv + 1);
    return cli_usage("key: unknown subcommand '%s' (create, list, revoke)", argv[0]);
}
