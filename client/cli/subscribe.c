/*
 * dynostore subscribe C [--mirror DIR] [--broker URL] (SPEC §8): follows a catalog's events
 * from the broker and prints one JSON line per event; with --mirror, keeps DIR equal to the
 * catalog (not its sub-catalogs).
 *
 * Mirror: a persistent MQTT session (clean start off, one day of session expiry) under a
 * client id made from the user and a hash of DIR, so the broker queues the QoS 1 events of
 * the time the mirror is away. On every connection, once subscribed, it reconciles with a
 * full listing (downloads what is missing or changed, removes what is gone): that covers
 * events lost between the broker's delivery and our handling of them (a kill -9), and an
 * expired session. Then it follows object.created (download) and object.evicted (remove).
 *
 * DIR/.dynostore-mirror = {"catalog": C, "objects": {name: key}} is rewritten atomically
 * after every change; an object whose key the state already has for its name is never
 * downloaded again, and a file whose SHA-256 already matches is adopted without a download
 * (a kill between the rename and the state write). Downloads go through a temp file and a
 * rename (dyno_client_get_file), so DIR never holds a partial object under its name.
 *
 * Output (stdout, one JSON object per line, flushed): every event as published, and in
 * mirror mode {"mirror":"downloaded"|"adopted"|"removed","name","key"} per change.
 */
#define _XOPEN_SOURCE 700 /* realpath */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "config.h"
#include "hash.h"
#include "json.h"
#include "names.h"
#include "token.h"

#define MIRROR_STATE ".dynostore-mirror"
#define MIRROR_STATE_MAX (256u * 1024u * 1024u)
#define MIRROR_LIST_PAGE 1000

static volatile sig_atomic_t sub_stop;

static void sub_on_signal(int sig)
{
    (void)sig;
    sub_stop = 1;
}

struct mirror {
    const struct cli_ctx *x;
    dyno_client *c;
    const char *catalog;
    const char *dir; /* NULL: no mirror */
    char state_path[PATH_MAX + 32];
    cJSON *state;   /* {"catalog":..., "objects":{name:key}} */
    cJSON *objects; /* borrowed from state */
};

static void print_line(const cJSON *o)
{
    char *s = cJSON_PrintUnformatted(o);
    if (s) {
        fputs(s, stdout);
        fputc('\n', stdout);
        cJSON_free(s);
    }
    fflush(stdout);
}

static void mirror_note(const char *what, const char *name, const char *key)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return;
    cJSON_AddStringToObject(o, "mirror", what);
    cJSON_AddStringToObject(o, "name", name);
    cJSON_AddStringToObject(o, "key", key);
    print_line(o);
    cJSON_Delete(o);
}

/* ---- state ---- */

static int mirror_load(struct mirror *m)
{
    char *text = NULL;
    size_t len = 0;
    snprintf(m->state_path, sizeof(m->state_path), "%s/%s", m->dir, MIRROR_STATE);
    int rc = dyno_read_file(m->state_path, MIRROR_STATE_MAX, &text, &len);
    if (rc == 0) {
        rc = dyno_json_parse(text, len, MIRROR_STATE_MAX, &m->state);
        free(text);
        if (rc || !cJSON_IsObject(m->state)) {
            cJSON_Delete(m->state);
            m->state = NULL;
            return cli_err("%s is not a mirror state file (remove it to start over)", m->state_path);
        }
        const char *cat = dyno_json_str(m->state, "catalog");
        if (cat && strcmp(cat, m->catalog) != 0)
            return cli_err("%s mirrors %s, not %s", m->dir, cat, m->catalog);
    } else if (rc == DYNO_ENOTFOUND) {
        m->state = cJSON_CreateObject();
        if (!m->state || !cJSON_AddStringToObject(m->state, "catalog", m->catalog))
            return cli_err("out of memory");
    } else {
        return cli_err("cannot read %s: %s", m->state_path, dyno_strerror(rc));
    }
    m->objects = cJSON_GetObjectItemCaseSensitive(m->state, "objects");
    if (!cJSON_IsObject(m->objects)) {
        cJSON_DeleteItemFromObjectCaseSensitive(m->state, "objects");
        m->objects = cJSON_AddObjectToObject(m->state, "objects");
        if (!m->objects)
            return cli_err("out of memory");
    }
    return CLI_OK;
}

/* Rewrites the state file atomically (temp file, fsync, rename: dyno_write_file). */
static int mirror_save(struct mirror *m)
{
    char *s = cJSON_PrintUnformatted(m->state);
    if (!s)
        return DYNO_ENOMEM;
    int rc = dyno_write_file(m->state_path, s, strlen(s), 0600);
    cJSON_free(s);
    if (rc)
        cli_err("cannot write %s: %s", m->state_path, dyno_strerror(rc));
    return rc;
}

static const char *mirror_key_of(const struct mirror *m, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(m->objects, name);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int mirror_set(struct mirror *m, const char *name, const char *key)
{
    cJSON *v = cJSON_CreateString(key);
    if (!v)
        return DYNO_ENOMEM;
    if (cJSON_HasObjectItem(m->objects, name))
        cJSON_ReplaceItemInObjectCaseSensitive(m->objects, name, v);
    else
        cJSON_AddItemToObject(m->objects, name, v);
    return mirror_save(m);
}

/* Names that can be files of DIR: valid object names, but not the state file (or its temp
 * files) and not the temp files of dyno_client_get_file (".<name>.<random>.part"). */
static bool mirror_name_ok(const char *name)
{
    if (!name || !dyno_valid_name(name))
        return false;
    size_t n = strlen(name);
    if (strncmp(name, MIRROR_STATE, strlen(MIRROR_STATE)) == 0)
        return false;
    return !(name[0] == '.' && n > 5 && strcmp(name + n - 5, ".part") == 0);
}

static bool file_has_sha(const char *path, const char *sha_hex)
{
    if (!sha_hex || strlen(sha_hex) != 64)
        return false;
    FILE *f = fopen(path, "rb");
    if (!f)
        return false;
    struct dyno_sha256 *h = NULL;
    bool ok = false;
    if (dyno_sha256_new(&h) == 0) {
        static unsigned char buf[1 << 16];
        size_t n;
        while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
            dyno_sha256_update(h, buf, n);
        uint8_t d[32];
        char hex[65];
        if (!ferror(f) && dyno_sha256_final(h, d) == 0) {
            dyno_hex(d, 32, hex);
            ok = strcmp(hex, sha_hex) == 0;
        }
        dyno_sha256_free(h);
    }
    fclose(f);
    return ok;
}

/* Makes DIR/name the object key, unless the state says it already is. */
static int mirror_fetch(struct mirror *m, const char *name, const char *key, const char *sha)
{
    if (!mirror_name_ok(name) || !dyno_valid_key(key)) {
        cli_err("mirror: skipping an object whose name cannot be a file: %s", name ? name : "(none)");
        return 0;
    }
    const char *have = mirror_key_of(m, name);
    char path[PATH_MAX + 300];
    snprintf(path, sizeof(path), "%s/%s", m->dir, name);
    if (have && strcmp(have, key) == 0 && access(path, F_OK) == 0)
        return 0;
    if (file_has_sha(path, sha)) {
        mirror_note("adopted", name, key);
        return mirror_set(m, name, key);
    }
    int rc = dyno_client_get_file(m->c, key, path);
    if (rc == DYNO_ENOTFOUND)
        return 0; /* evicted (or replaced) meanwhile: its event follows */
    if (rc) {
        cli_err("mirror: cannot download %s (%s): %s", name, key, dyno_client_last_error(m->c));
        return rc == DYNO_EUNAUTH || rc == DYNO_EFORBIDDEN ? rc : 0;
    }
    mirror_note("downloaded", name, key);
    return mirror_set(m, name, key);
}

static int mirror_remove(struct mirror *m, const char *name, const char *key)
{
    const char *have = mirror_key_of(m, name);
    if (!have || (key && strcmp(have, key) != 0))
        return 0; /* not ours, or already replaced by a newer object */
    char path[PATH_MAX + 300], k[DYNO_KEY_LEN + 1];
    snprintf(k, sizeof(k), "%s", have);
    snprintf(path, sizeof(path), "%s/%s", m->dir, name);
    if (unlink(path) != 0 && errno != ENOENT)
        cli_err("mirror: cannot remove %s: %s", path, strerror(errno));
    cJSON_DeleteItemFromObjectCaseSensitive(m->objects, name);
    mirror_note("removed", name, k);
    return mirror_save(m);
}

/* The whole listing against the state: fetch what is missing, remove what is gone. */
static int mirror_reconcile(struct mirror *m)
{
    cJSON *seen = cJSON_CreateObject();
    char *after = NULL;
    int rc = seen ? 0 : DYNO_ENOMEM;
    while (rc == 0) {
        cJSON *page = NULL;
        char *next = NULL;
        rc = dyno_client_list(m->c, m->catalog, after, MIRROR_LIST_PAGE, &page, &next);
        if (rc) {
            cli_err("mirror: cannot list %s: %s", m->catalog, dyno_client_last_error(m->c));
            break;
        }
        const cJSON *o;
        cJSON_ArrayForEach(o, cJSON_GetObjectItemCaseSensitive(page, "objects"))
        {
            const char *name = dyno_json_str(o, "name"), *key = dyno_json_str(o, "key");
            if (!name || !key)
                continue;
            cJSON_AddBoolToObject(seen, name, true);
            if ((rc = mirror_fetch(m, name, key, dyno_json_str(o, "sha256"))) != 0)
                break;
        }
        cJSON_Delete(page);
        free(after);
        after = next;
        if (!after)
            break;
    }
    free(after);
    if (rc == 0) {
        /* Collect first: removing while iterating the state would skip entries. */
        cJSON *gone = cJSON_CreateArray();
        const cJSON *it;
        cJSON_ArrayForEach(it, m->objects)
        {
            if (!cJSON_HasObjectItem(seen, it->string))
                cJSON_AddItemToArray(gone, cJSON_CreateString(it->string));
        }
        cJSON_ArrayForEach(it, gone)
        {
            if ((rc = mirror_remove(m, it->valuestring, NULL)) != 0)
                break;
        }
        cJSON_Delete(gone);
    }
    cJSON_Delete(seen);
    return rc;
}

/* ---- callbacks ---- */

static int sub_on_ready(void *arg, int session_present)
{
    struct mirror *m = arg;
    if (!m->x->quiet)
        fprintf(stderr, "dynostore: subscribed to %s%s\n", m->catalog,
                session_present ? " (resumed session)" : "");
    if (!m->dir)
        return 0;
    int rc = mirror_reconcile(m);
    /* Only access errors stop the mirror; others are retried on the next connection. */
    return rc == DYNO_EUNAUTH || rc == DYNO_EFORBIDDEN ? rc : 0;
}

static int sub_on_event(void *arg, const struct dyno_event *ev)
{
    struct mirror *m = arg;
    fputs(ev->json, stdout);
    fputc('\n', stdout);
    fflush(stdout);
    if (!m->dir || strcmp(ev->catalog, m->catalog) != 0 || !ev->key || !ev->name)
        return 0;
    int rc = 0;
    if (strcmp(ev->type, "object.created") == 0)
        rc = mirror_fetch(m, ev->name, ev->key, ev->sha256);
    else if (strcmp(ev->type, "object.evicted") == 0)
        rc = mirror_remove(m, ev->name, ev->key);
    return rc == DYNO_EUNAUTH || rc == DYNO_EFORBIDDEN ? rc : 0;
}

/* ---- the command ---- */

/* The broker: --broker, else DYNOSTORE_BROKER, else the settings' "broker". malloc'd or NULL. */
static char *sub_broker(const char *flag)
{
    const char *env = getenv("DYNOSTORE_BROKER");
    if (flag && flag[0])
        return strdup(flag);
    if (env && env[0])
        return strdup(env);
    cJSON *cfg = NULL;
    char *out = NULL;
    if (cli_config_load(&cfg) == 0) {
        const char *b = dyno_json_str(cfg, "broker");
        if (b && b[0])
            out = strdup(b);
    }
    cJSON_Delete(cfg);
    return out;
}

/* "m.<user>.<16 hex of sha256(user, DIR)>": stable per user and folder, never of the
 * service form <kind>-<id> (a '.' comes before any '-'). */
static int sub_client_id(const char *token, const char *dir, char *out, size_t cap)
{
    char user[DYNO_SEG_MAX + 1] = "";
    const char *a = strchr(token, '.');
    const char *b = a ? strchr(a + 1, '.') : NULL;
    uint8_t buf[DYNO_TOKEN_MAX];
    size_t n = 0;
    cJSON *doc = NULL;
    if (!b || dyno_b64url_decode(a + 1, (size_t)(b - a - 1), buf, sizeof(buf), &n) ||
        dyno_json_parse((const char *)buf, n, sizeof(buf), &doc) ||
        !dyno_valid_segment(dyno_json_str(doc, "sub"))) {
        cJSON_Delete(doc);
        return DYNO_EINVAL;
    }
    snprintf(user, sizeof(user), "%s", dyno_json_str(doc, "sub"));
    cJSON_Delete(doc);
    char seed[PATH_MAX + DYNO_SEG_MAX + 2];
    int sl = snprintf(seed, sizeof(seed), "%s\n%s", user, dir);
    uint8_t d[32];
    char hex[65];
    if (sl < 0 || dyno_sha256(seed, (size_t)sl, d))
        return DYNO_EINVAL;
    dyno_hex(d, 32, hex);
    snprintf(out, cap, "m.%.40s.%.16s", user, hex);
    return 0;
}

int cli_cmd_subscribe(const struct cli_ctx *x, int argc, char **argv)
{
    const char *dir_flag = NULL, *broker_flag = NULL;
    char **pos = calloc((size_t)argc + 1, sizeof(char *));
    int npos = 0, ec;
    dyno_client *c = NULL;
    char *broker = NULL, *gw = NULL, *tok = NULL, *ca = NULL;
    struct mirror m = {.x = x};
    char dir[PATH_MAX], client_id[80];
    const struct cli_flag flags[] = {
        {"--mirror", true, &dir_flag, NULL},
        {"--broker", true, &broker_flag, NULL},
    };
    if (!pos)
        return cli_err("out of memory");
    ec = cli_parse("subscribe", argc, argv, flags, sizeof(flags) / sizeof(flags[0]), pos, &npos);
    if (ec)
        goto out;
    if (npos != 1 || !dyno_valid_catalog(pos[0])) {
        ec = cli_usage("subscribe: expected one catalog owner/name[/name...]");
        goto out;
    }
    m.catalog = pos[0];
    broker = sub_broker(broker_flag);
    if (!broker) {
        ec =
            cli_err("no broker: pass --broker mqtt://HOST:PORT, set DYNOSTORE_BROKER, or start a fabric with "
                    "`dynostore up`");
        goto out;
    }
    ec = cli_connect(x, true, &c);
    if (ec)
        goto out;
    m.c = c;
    ec = cli_resolve(x, &gw, &tok, &ca);
    if (ec)
        goto out;
    struct dyno_subscribe_opts o = {.broker = broker, .cafile = ca, .stop = (volatile int *)&sub_stop};
    if (dir_flag) {
        if (cli_mkdirs(dir_flag, 0755) < 0 || !realpath(dir_flag, dir)) {
            ec = cli_err("cannot create %s: %s", dir_flag, strerror(errno));
            goto out;
        }
        m.dir = dir;
        if ((ec = mirror_load(&m)) != CLI_OK)
            goto out;
        if (mirror_save(&m)) {
            ec = CLI_FAIL;
            goto out;
        }
        if (!tok || sub_client_id(tok, dir, client_id, sizeof(client_id))) {
            ec = cli_err("cannot read the user of the token");
            goto out;
        }
        o.client_id = client_id;
        o.session_expiry = DYNO_CLIENT_SESSION_EXPIRY_DEFAULT;
    }
    o.on_ready = sub_on_ready;

    struct sigaction sa = {.sa_handler = sub_on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    int rc = dyno_client_subscribe(c, m.catalog, &o, sub_on_event, &m);
    ec = rc ? cli_fail(c, rc, "subscribe") : CLI_OK;
out:
    if (tok) {
        memset(tok, 0, strlen(tok));
        free(tok);
    }
    free(gw);
    free(ca);
    free(broker);
    cJSON_Delete(m.state);
    dyno_client_free(c);
    free(pos);
    return ec;
}
