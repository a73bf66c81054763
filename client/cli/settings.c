/*
 * Where the CLI finds its fabric (protocol.md §5): --gateway / --token-file flags, else
 * DYNOSTORE_GATEWAY / DYNOSTORE_TOKEN (the token itself), else the settings file
 * $XDG_CONFIG_HOME/dynostore/config.json (default $HOME/.config/dynostore/config.json)
 * = {"gateway": URL, "token_file": PATH, "cacert": PATH?}.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "config.h"
#include "json.h"
#include "token.h"

#define CLI_CONFIG_MAX (64 * 1024)

int cli_mkdirs(const char *path, unsigned mode)
{
    char p[4096];
    int n = snprintf(p, sizeof(p), "%s", path);
    if (n < 0 || (size_t)n >= sizeof(p)) {
        errno = ENAMETOOLONG;
        return DYNO_EIO;
    }
    for (char *s = p + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        if (mkdir(p, (mode_t)mode) != 0 && errno != EEXIST)
            return DYNO_EIO;
        *s = '/';
    }
    if (mkdir(p, (mode_t)mode) != 0 && errno != EEXIST)
        return DYNO_EIO;
    struct stat st;
    if (stat(p, &st) != 0 || !S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        return DYNO_EIO;
    }
    return 0;
}

int cli_config_dir(char *out, size_t cap)
{
    const char *xdg = getenv("XDG_CONFIG_HOME");
    const char *home = getenv("HOME");
    int n;
    if (xdg && xdg[0] == '/')
        n = snprintf(out, cap, "%s/dynostore", xdg);
    else if (home && home[0])
        n = snprintf(out, cap, "%s/.config/dynostore", home);
    else
        return DYNO_EINVAL;
    return n < 0 || (size_t)n >= cap ? DYNO_EINVAL : 0;
}

int cli_config_load(struct cJSON **out)
{
    char dir[4096], path[4200];
    char *text = NULL;
    size_t len = 0;
    *out = NULL;
    if (cli_config_dir(dir, sizeof(dir)) < 0) {
        *out = cJSON_CreateObject();
        return *out ? 0 : DYNO_ENOMEM;
    }
    snprintf(path, sizeof(path), "%s/config.json", dir);
    int rc = dyno_read_file(path, CLI_CONFIG_MAX, &text, &len);
    if (rc == DYNO_ENOTFOUND) {
        *out = cJSON_CreateObject();
        return *out ? 0 : DYNO_ENOMEM;
    }
    if (rc < 0) {
        cli_err("cannot read %s: %s", path, dyno_strerror(rc));
        return rc;
    }
    cJSON *doc = NULL;
    rc = dyno_json_parse(text, len, CLI_CONFIG_MAX, &doc);
    free(text);
    if (rc < 0 || !cJSON_IsObject(doc)) {
        cJSON_Delete(doc);
        cli_err("%s is not a JSON object", path);
        return DYNO_EINVAL;
    }
    *out = doc;
    return 0;
}

static int set_str(cJSON *o, const char *name, const char *v)
{
    if (!v)
        return 0;
    cJSON *s = cJSON_CreateString(v);
    if (!s)
        return DYNO_ENOMEM;
    if (cJSON_HasObjectItem(o, name))
        cJSON_ReplaceItemInObjectCaseSensitive(o, name, s);
    else
        cJSON_AddItemToObject(o, name, s);
    return 0;
}

int cli_config_update(const char *gateway, const char *token_file, const char *cacert)
{
    char dir[4096], path[4200];
    cJSON *doc = NULL;
    char *text = NULL;
    int rc = cli_config_dir(dir, sizeof(dir));
    if (rc < 0) {
        cli_err("neither $HOME nor $XDG_CONFIG_HOME is set: cannot save settings");
        return rc;
    }
    if (cli_mkdirs(dir, 0700) < 0) {
        cli_err("cannot create %s: %s", dir, strerror(errno));
        return DYNO_EIO;
    }
    rc = cli_config_load(&doc);
    if (rc < 0)
        return rc;
    if (set_str(doc, "gateway", gateway) < 0 || set_str(doc, "token_file", token_file) < 0 ||
        set_str(doc, "cacert", cacert) < 0) {
        rc = DYNO_ENOMEM;
        cli_err("out of memory");
        goto out;
    }
    text = cJSON_Print(doc);
    if (!text) {
        rc = DYNO_ENOMEM;
        cli_err("out of memory");
        goto out;
    }
    snprintf(path, sizeof(path), "%s/config.json", dir);
    size_t n = strlen(text);
    char *nl = realloc(text, n + 2);
    if (nl) {
        text = nl;
        text[n++] = '\n';
        text[n] = '\0';
    }
    rc = dyno_write_file(path, text, n, 0600);
    if (rc < 0)
        cli_err("cannot write %s: %s", path, dyno_strerror(rc));
out:
    cJSON_free(text);
    cJSON_Delete(doc);
    return rc;
}

/* A token file: the token on its first line. */
static int read_token(const char *path, char **out)
{
    char *t = NULL;
    size_t n = 0;
    int rc = dyno_read_file(path, DYNO_TOKEN_MAX + 64, &t, &n);
    if (rc < 0)
        return rc;
    char *nl = strpbrk(t, "\r\n");
    if (nl)
        *nl = '\0';
    *out = t;
    return 0;
}

static char *dup_or_null(const char *s)
{
    return s && s[0] ? strdup(s) : NULL;
}

int cli_resolve(const struct cli_ctx *x, char **gateway, char **token, char **cacert)
{
    int ec = CLI_OK;
    cJSON *cfg = NULL;
    char *gw = NULL, *tok = NULL, *ca = NULL;
    char dir[4096], tf[8300];
    const char *env_gw = getenv("DYNOSTORE_GATEWAY");
    const char *env_tok = getenv("DYNOSTORE_TOKEN");

    if (cli_config_load(&cfg) < 0) {
        ec = CLI_FAIL;
        goto out;
    }
    bool gw_from_cfg = false;
    if (x->gateway_flag && x->gateway_flag[0])
        gw = strdup(x->gateway_flag);
    else if (env_gw && env_gw[0])
        gw = strdup(env_gw);
    else {
        gw = dup_or_null(dyno_json_str(cfg, "gateway"));
        gw_from_cfg = gw != NULL;
    }

    if (x->token_file_flag) {
        int rc = read_token(x->token_file_flag, &tok);
        if (rc < 0) {
            ec = cli_err("cannot read token file %s: %s", x->token_file_flag, dyno_strerror(rc));
            goto out;
        }
        if (!tok[0]) {
            ec = cli_err("token file %s is empty", x->token_file_flag);
            goto out;
        }
    } else if (env_tok && env_tok[0]) {
        tok = strdup(env_tok);
    } else {
        const char *p = dyno_json_str(cfg, "token_file");
        if (p && p[0]) {
            /* relative to the settings folder */
            if (p[0] != '/' && cli_config_dir(dir, sizeof(dir)) == 0)
                snprintf(tf, sizeof(tf), "%s/%s", dir, p);
            else
                snprintf(tf, sizeof(tf), "%s", p);
            int rc = read_token(tf, &tok);
            if (rc < 0 && rc != DYNO_ENOTFOUND) {
                ec = cli_err("cannot read token file %s: %s", tf, dyno_strerror(rc));
                goto out;
            }
            if (tok && !tok[0]) {
                free(tok);
                tok = NULL;
            }
        }
    }
    /* The saved CA belongs to the saved gateway (both written by up or login): a gateway
     * named on the command line or in the environment is another fabric, verified by
     * --cacert or the system's CAs, never by the CA of a fabric that may be long gone. */
    if (x->cacert_flag)
        ca = strdup(x->cacert_flag);
    else if (gw_from_cfg)
        ca = dup_or_null(dyno_json_str(cfg, "cacert"));
out:
    cJSON_Delete(cfg);
    if (ec != CLI_OK) {
        free(gw);
        free(tok);
        free(ca);
        return ec;
    }
    *gateway = gw;
    *token = tok;
    *cacert = ca;
    return CLI_OK;
}

int cli_connect(const struct cli_ctx *x, bool need_token, dyno_client **out)
{
    char *gw = NULL, *tok = NULL, *ca = NULL;
    dyno_client *c = NULL;
    int ec = cli_resolve(x, &gw, &tok, &ca);
    if (ec != CLI_OK)
        return ec;
    if (!gw) {
        ec = cli_err(
            "no gateway: pass --gateway URL, set DYNOSTORE_GATEWAY, or start one with `dynostore up`");
        goto out;
    }
    if (need_token && !tok) {
        cli_err("no token: run `dynostore login`, pass --token-file F, or set DYNOSTORE_TOKEN");
        ec = CLI_DENIED;
        goto out;
    }
    int rc = dyno_client_new(gw, tok, &c);
    if (rc == DYNO_EINVAL) {
        ec = cli_usage("bad gateway URL '%s' (http://host:port or https://...) or malformed token", gw);
        goto out;
    }
    if (rc < 0) {
        ec = cli_err("cannot create a client: %s", dyno_strerror(rc));
        goto out;
    }
    if (ca) {
        rc = dyno_client_set_cafile(c, ca);
        if (rc < 0) {
            ec = cli_err("cannot read CA file %s", ca);
            dyno_client_free(c);
            c = NULL;
            goto out;
        }
    }
    *out = c;
out:
    free(gw);
    if (tok) {
        memset(tok, 0, strlen(tok));
        free(tok);
    }
    free(ca);
    return ec;
}

int cli_config_set(const char *name, const char *value)
{
    char dir[4096], path[4200];
    cJSON *doc = NULL;
    char *text = NULL;
    int rc = cli_config_dir(dir, sizeof(dir));
    if (rc < 0)
        return rc;
    if (cli_mkdirs(dir, 0700) < 0)
        return DYNO_EIO;
    if ((rc = cli_config_load(&doc)) < 0)
        return rc;
    if ((rc = set_str(doc, name, value)) == 0) {
        text = cJSON_Print(doc);
        rc = text ? 0 : DYNO_ENOMEM;
    }
    if (rc == 0) {
        snprintf(path, sizeof(path), "%s/config.json", dir);
        rc = dyno_write_file(path, text, strlen(text), 0600);
        if (rc < 0)
            cli_err("cannot write %s: %s", path, dyno_strerror(rc));
    }
    cJSON_free(text);
    cJSON_Delete(doc);
    return rc;
}
