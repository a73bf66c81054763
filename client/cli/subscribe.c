/*
 * dynostore subscribe C [--mirror DIR [--recursive]] [--broker URL] (SPEC §8): follows a
 * catalog's events (C and its sub-catalogs) from the broker and prints one JSON line per
 * event; with --mirror, keeps DIR equal to the catalog C, and with --recursive also to every
 * sub-catalog the user can read: the objects of C/a/b go to DIR/a/b/<name>.
 *
 * Mirror: a persistent MQTT session (clean start off, one day of session expiry) under a
 * client id made from the user and a hash of DIR, so the broker queues the QoS 1 events of
 * the time the mirror is away. On every connection, once subscribed, it reconciles with full
 * listings (downloads what is missing or changed, removes what is gone): that covers events
 * lost between the broker's delivery and our handling of them (a kill -9), and an expired
 * session. Then it follows object.created (download) and object.evicted (remove).
 *
 * --recursive: the reconcile lists C, the sub-catalogs of C that GET /v1/catalogs names (the
 * ones the user owns, is shared or subscribes to) and those the state still has objects of
 * (so that a deleted or no longer readable one is seen to be gone and its files removed). A
 * sub-catalog that cannot be read (403, or 404: deleted) is skipped and the mirror goes on. A
 * sub-catalog unknown until then (created after the reconcile, or public and not listed) is
 * listed in full when its first event arrives. Catalog segments and names are checked
 * (lib/names.h, and none may be the state file or a temp file), so that no path leaves DIR,
 * whatever the server sends. Folders are made as needed and left behind when emptied.
 *
 * DIR/.dynostore-mirror = {"catalog": C, "objects": {path: key}} (plus "recursive": true
 * with --recursive) is rewritten atomically after every change; path is the object's path
 * relative to DIR ("name" for C, "a/b/name" for C/a/b). A state made with --recursive is
 * refused without it and the other way round. An object whose key the state already has for
 * its path is never downloaded again, and a file whose SHA-256 already matches is adopted
 * without a download (a kill between the rename and the state write). Downloads go through a
 * temp file and a rename (dyno_client_get_file), so DIR never holds a partial object under
 * its name.
 *
 * Output (stdout, one JSON object per line, flushed): every event as published, and in
 * mirror mode {"mirror":"downloaded"|"adopted"|"removed","name","key"} per change, plus
 * "catalog" and "path" (relative to DIR) with --recursive.
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
/* A path relative to DIR: the sub-catalog part of a catalog, '/', a name. */
#define MIRROR_REL_MAX (DYNO_CATALOG_MAX + DYNO_NAME_MAX + 2)
#define MIRROR_PATH_MAX (PATH_MAX + MIRROR_REL_MAX + 2)

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
    size_t catalog_len;
    const char *dir; /* NULL: no mirror */
    bool recursive;  /* --recursive: the sub-catalogs too */
    char state_path[PATH_MAX + 32];
    cJSON *state;   /* {"catalog":..., ["recursive":true,] "objects":{path:key}} */
    cJSON *objects; /* borrowed from state */
    cJSON *known;   /* --recursive: {catalog:true} of the catalogs listed since the last
                     * connection (NULL: none yet); others are listed on their first event */
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

/* ---- paths in DIR ---- */

/* Names that can be files (or folders) of DIR: valid object names (so no '/', not "." or
 * ".."), but not the state file (or its temp files) and not the temp files of
 * dyno_client_get_file (".<name>.<random>.part"). */
static bool mirror_name_ok(const char *name)
{
    if (!name || !dyno_valid_plain_name(name))
        return false;
    size_t n = strlen(name);
    if (strncmp(name, MIRROR_STATE, strlen(MIRROR_STATE)) == 0)
        return false;
    return !(name[0] == '.' && n > 5 && strcmp(name + n - 5, ".part") == 0);
}

/* The part of catalog below C: "" for C itself, "a/b" for C/a/b (with --recursive only),
 * NULL for a catalog outside the mirror. Not validated (see mirror_rel). */
static const char *mirror_sub(const struct mirror *m, const char *catalog)
{
    if (!catalog || strncmp(catalog, m->catalog, m->catalog_len) != 0)
        return NULL;
    if (catalog[m->catalog_len] == '\0')
        return catalog + m->catalog_len;
    if (!m->recursive || catalog[m->catalog_len] != '/')
        return NULL;
    return catalog + m->catalog_len + 1;
}

/*
 * The path relative to DIR of the object name of catalog into rel (cap bytes): "name" for
 * C, "a/b/name" for C/a/b. false (rel undefined) when catalog is outside the mirror or the
 * path could leave DIR or hit the state: the catalog must be valid (so its segments are
 * [A-Za-z0-9._-]{1,64}, never "." or ".."), and every segment below C and the name must
 * pass mirror_name_ok.
 */
static bool mirror_rel(const struct mirror *m, const char *catalog, const char *name, char *rel, size_t cap)
{
    const char *sub = mirror_sub(m, catalog);
    if (!sub || !dyno_valid_catalog(catalog) || !mirror_name_ok(name))
        return false;
    for (const char *s = sub; *s;) {
        char seg[DYNO_SEG_MAX + 1];
        size_t n = strcspn(s, "/");
        if (n >= sizeof(seg))
            return false;
        memcpy(seg, s, n);
        seg[n] = '\0';
        if (!mirror_name_ok(seg))
            return false;
        s += n + (s[n] == '/');
    }
    int n = snprintf(rel, cap, "%s%s%s", sub, sub[0] ? "/" : "", name);
    return n > 0 && (size_t)n < cap;
}

/* The catalog of the path rel (a key of the state) into cat (cap bytes), and whether rel is a
 * path mirror_rel makes (a state file edited by hand must not reach outside DIR either). */
static bool mirror_rel_catalog(const struct mirror *m, const char *rel, char *cat, size_t cap)
{
    const char *slash = strrchr(rel, '/');
    size_t sl = slash ? (size_t)(slash - rel) : 0;
    if (sl > DYNO_CATALOG_MAX)
        return false;
    int n = slash ? snprintf(cat, cap, "%s/%.*s", m->catalog, (int)sl, rel)
                  : snprintf(cat, cap, "%s", m->catalog);
    if (n < 0 || (size_t)n >= cap)
        return false;
    char back[MIRROR_REL_MAX];
    return mirror_rel(m, cat, slash ? slash + 1 : rel, back, sizeof(back)) && strcmp(back, rel) == 0;
}

/* DIR/rel into path (MIRROR_PATH_MAX bytes). false when it does not fit. */
static bool mirror_path(const struct mirror *m, const char *rel, char *path)
{
    int n = snprintf(path, MIRROR_PATH_MAX, "%s/%s", m->dir, rel);
    return n > 0 && n < MIRROR_PATH_MAX;
}

static void mirror_note(const struct mirror *m, const char *what, const char *rel, const char *key)
{
    const char *slash = strrchr(rel, '/');
    char cat[DYNO_CATALOG_MAX + 1];
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return;
    cJSON_AddStringToObject(o, "mirror", what);
    cJSON_AddStringToObject(o, "name", slash ? slash + 1 : rel);
    cJSON_AddStringToObject(o, "key", key);
    if (m->recursive && mirror_rel_catalog(m, rel, cat, sizeof(cat))) {
        cJSON_AddStringToObject(o, "catalog", cat);
        cJSON_AddStringToObject(o, "path", rel);
    }
    print_line(o);
    cJSON_Delete(o);
}

/* ---- state ---- */

/* Whether the object obj has the member name, letter case included (cJSON_HasObjectItem
 * ignores it, and "A.bin" and "a.bin" are two files). */
static bool mirror_has(const cJSON *obj, const char *name)
{
    return cJSON_GetObjectItemCaseSensitive(obj, name) != NULL;
}

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
        /* A state without "recursive" (all those made before the flag) is not recursive. */
        bool rec = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(m->state, "recursive"));
        if (rec && !m->recursive)
            return cli_err("%s mirrors %s with its sub-catalogs: add --recursive (or remove %s to "
                           "start over)",
                           m->dir, m->catalog, m->state_path);
        if (!rec && m->recursive)
            return cli_err("%s mirrors %s without its sub-catalogs: drop --recursive (or remove %s to "
                           "start over)",
                           m->dir, m->catalog, m->state_path);
    } else if (rc == DYNO_ENOTFOUND) {
        m->state = cJSON_CreateObject();
        if (!m->state || !cJSON_AddStringToObject(m->state, "catalog", m->catalog) ||
            (m->recursive && !cJSON_AddTrueToObject(m->state, "recursive")))
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

static const char *mirror_key_of(const struct mirror *m, const char *rel)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(m->objects, rel);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int mirror_set(struct mirror *m, const char *rel, const char *key)
{
    cJSON *v = cJSON_CreateString(key);
    if (!v)
        return DYNO_ENOMEM;
    if (mirror_has(m->objects, rel))
        cJSON_ReplaceItemInObjectCaseSensitive(m->objects, rel, v);
    else
        cJSON_AddItemToObject(m->objects, rel, v);
    return mirror_save(m);
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

/*
 * Makes DIR/rel (a path from mirror_rel) the object key, unless the state says it already
 * is; makes the folders of a sub-catalog first. Problems with one object are reported and
 * skipped (0); only an access error of C itself (or an expired token) is returned, to stop.
 */
static int mirror_fetch(struct mirror *m, const char *rel, const char *key, const char *sha)
{
    char path[MIRROR_PATH_MAX];
    const char *slash = strrchr(rel, '/');
    if (!dyno_valid_key(key) || !mirror_path(m, rel, path)) {
        cli_err("mirror: skipping %s: bad key or path too long", rel);
        return 0;
    }
    const char *have = mirror_key_of(m, rel);
    if (have && strcmp(have, key) == 0 && access(path, F_OK) == 0)
        return 0;
    if (slash) {
        path[strlen(m->dir) + 1 + (size_t)(slash - rel)] = '\0';
        int mk = cli_mkdirs(path, 0755);
        path[strlen(m->dir) + 1 + (size_t)(slash - rel)] = '/';
        if (mk) {
            cli_err("mirror: skipping %s: cannot create its folder: %s", rel, strerror(errno));
            return 0;
        }
    }
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        cli_err("mirror: skipping %s: a folder (a sub-catalog) has that path", rel);
        return 0;
    }
    if (file_has_sha(path, sha)) {
        mirror_note(m, "adopted", rel, key);
        return mirror_set(m, rel, key);
    }
    int rc = dyno_client_get_file(m->c, key, path);
    if (rc == DYNO_ENOTFOUND)
        return 0; /* evicted (or replaced) meanwhile: its event follows */
    if (rc) {
        cli_err("mirror: cannot download %s (%s): %s", rel, key, dyno_client_last_error(m->c));
        /* A sub-catalog the user may not read is skipped; C itself stops the mirror. */
        if (rc == DYNO_EUNAUTH || (rc == DYNO_EFORBIDDEN && !slash))
            return rc;
        return 0;
    }
    mirror_note(m, "downloaded", rel, key);
    return mirror_set(m, rel, key);
}

/* Removes DIR/rel if the state has it as key (any key when key is NULL). An entry that is
 * not a path of the mirror (a state edited by hand) is dropped without touching a file. */
static int mirror_remove(struct mirror *m, const char *rel, const char *key)
{
    const char *have = mirror_key_of(m, rel);
    if (!have || (key && strcmp(have, key) != 0))
        return 0; /* not ours, or already replaced by a newer object */
    char path[MIRROR_PATH_MAX], cat[DYNO_CATALOG_MAX + 1], k[DYNO_KEY_LEN + 1];
    snprintf(k, sizeof(k), "%s", have);
    bool ok = mirror_rel_catalog(m, rel, cat, sizeof(cat)) && mirror_path(m, rel, path);
    if (!ok)
        cli_err("mirror: dropping a state entry that is not a path of this mirror: %s", rel);
    else if (unlink(path) != 0 && errno != ENOENT)
        cli_err("mirror: cannot remove %s: %s", path, strerror(errno));
    cJSON_DeleteItemFromObjectCaseSensitive(m->objects, rel);
    if (ok)
        mirror_note(m, "removed", rel, k);
    return mirror_save(m);
}

/*
 * Lists catalog (C or one of its sub-catalogs) page by page and fetches what the state
 * lacks; the path of every listed object goes into seen (NULL: not recorded). A sub-catalog
 * that is gone (404) or not readable (403) is skipped: 0, and its objects are not in seen.
 * Returns 0 or the error that stopped the listing (reported).
 */
static int mirror_sync(struct mirror *m, const char *catalog, cJSON *seen)
{
    bool sub = strcmp(catalog, m->catalog) != 0;
    char *after = NULL;
    int rc = 0;
    while (rc == 0) {
        cJSON *page = NULL;
        char *next = NULL;
        rc = dyno_client_list(m->c, catalog, after, MIRROR_LIST_PAGE, &page, &next);
        if (rc) {
            if (sub && (rc == DYNO_ENOTFOUND || rc == DYNO_EFORBIDDEN)) {
                if (rc == DYNO_EFORBIDDEN)
                    cli_err("mirror: skipping %s: %s", catalog, dyno_client_last_error(m->c));
                rc = 0;
            } else {
                cli_err("mirror: cannot list %s: %s", catalog, dyno_client_last_error(m->c));
            }
            break;
        }
        const cJSON *o;
        cJSON_ArrayForEach(o, cJSON_GetObjectItemCaseSensitive(page, "objects"))
        {
            const char *name = dyno_json_str(o, "name"), *key = dyno_json_str(o, "key");
            char rel[MIRROR_REL_MAX];
            if (!name || !key)
                continue;
            if (!mirror_rel(m, catalog, name, rel, sizeof(rel))) {
                cli_err("mirror: skipping an object whose name cannot be a file: %s", name);
                continue;
            }
            if (seen && !cJSON_AddTrueToObject(seen, rel)) /* a path is listed once */
                rc = DYNO_ENOMEM;
            if (rc || (rc = mirror_fetch(m, rel, key, dyno_json_str(o, "sha256"))) != 0)
                break;
        }
        cJSON_Delete(page);
        free(after);
        after = next;
        if (!after)
            break;
    }
    free(after);
    return rc;
}

/* Adds catalog to the set cats ({catalog:true}) unless it is there. 0 or DYNO_ENOMEM. */
static int mirror_set_add(cJSON *cats, const char *catalog)
{
    if (mirror_has(cats, catalog) || cJSON_AddTrueToObject(cats, catalog))
        return 0;
    return DYNO_ENOMEM;
}

/*
 * The catalogs to reconcile, as *out = {catalog:true} in order: C; with --recursive, then
 * its sub-catalogs that GET /v1/catalogs names (those the user can read by ownership, a
 * share or a subscription), then those the state has objects of, so that one gone from the
 * list (deleted, unshared) is listed too, found gone, and its files removed. 0 or the error.
 */
static int mirror_catalogs(struct mirror *m, cJSON **out)
{
    cJSON *cats = cJSON_CreateObject(), *list = NULL;
    const cJSON *it;
    int rc = cats ? mirror_set_add(cats, m->catalog) : DYNO_ENOMEM;
    if (rc == 0 && m->recursive) {
        rc = dyno_client_catalog_list(m->c, &list);
        if (rc)
            cli_err("mirror: cannot list the catalogs: %s", dyno_client_last_error(m->c));
        else if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(list, "truncated")))
            cli_err("mirror: the list of catalogs is truncated: the sub-catalogs past it are "
                    "mirrored from their first event on");
        cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(list, "catalogs"))
        {
            const char *p = dyno_json_str(it, "catalog");
            const char *sub = mirror_sub(m, p);
            if (rc == 0 && sub && sub[0] && dyno_valid_catalog(p))
                rc = mirror_set_add(cats, p);
        }
        cJSON_Delete(list);
        cJSON_ArrayForEach(it, m->objects)
        {
            char cat[DYNO_CATALOG_MAX + 1];
            if (rc == 0 && mirror_rel_catalog(m, it->string, cat, sizeof(cat)))
                rc = mirror_set_add(cats, cat);
        }
    }
    if (rc) {
        cJSON_Delete(cats);
        cats = NULL;
    }
    *out = cats;
    return rc;
}

/* The listings of every catalog of the mirror against the state: fetch what is missing,
 * remove what is gone (only when every listing went through). */
static int mirror_reconcile(struct mirror *m)
{
    cJSON *seen = cJSON_CreateObject(), *cats = NULL;
    int rc = seen ? mirror_catalogs(m, &cats) : DYNO_ENOMEM;
    const cJSON *it;
    if (rc == 0) { /* the set becomes m->known (cats stays NULL on failure) */
        cJSON_Delete(m->known);
        m->known = cats;
    }
    cJSON_ArrayForEach(it, cats)
    {
        if ((rc = mirror_sync(m, it->string, seen)) != 0)
            break;
    }
    if (rc == 0) {
        /* Collect first: removing while iterating the state would skip entries. */
        cJSON *gone = cJSON_CreateArray();
        rc = gone ? 0 : DYNO_ENOMEM;
        cJSON_ArrayForEach(it, m->objects)
        {
            if (gone && !mirror_has(seen, it->string))
                cJSON_AddItemToArray(gone, cJSON_CreateString(it->string));
        }
        cJSON_ArrayForEach(it, gone)
        {
            if (cJSON_IsString(it) && (rc = mirror_remove(m, it->valuestring, NULL)) != 0)
                break;
        }
        cJSON_Delete(gone);
    }
    cJSON_Delete(seen);
    return rc;
}

/* An event of a sub-catalog not listed since the connection (created since, or not in GET
 * /v1/catalogs): list it in full once, so that objects whose events did not reach us (put
 * before the broker let us read it) are fetched too. */
static int mirror_discover(struct mirror *m, const char *catalog)
{
    if (mirror_has(m->known, catalog))
        return 0;
    if (!m->known && !(m->known = cJSON_CreateObject()))
        return DYNO_ENOMEM;
    if (mirror_set_add(m->known, catalog))
        return DYNO_ENOMEM;
    if (!m->x->quiet)
        fprintf(stderr, "dynostore: mirroring the sub-catalog %s\n", catalog);
    return mirror_sync(m, catalog, NULL);
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
    /* Without --recursive, mirror_sub leaves the events of sub-catalogs out. */
    const char *sub = m->dir ? mirror_sub(m, ev->catalog) : NULL;
    if (!sub || !ev->key || !ev->name)
        return 0;
    bool created = strcmp(ev->type, "object.created") == 0;
    if (!created && strcmp(ev->type, "object.evicted") != 0)
        return 0;
    char rel[MIRROR_REL_MAX];
    if (!mirror_rel(m, ev->catalog, ev->name, rel, sizeof(rel))) {
        if (created)
            cli_err("mirror: skipping an object whose name cannot be a file: %s", ev->name);
        return 0;
    }
    int rc = 0;
    if (created && sub[0])
        rc = mirror_discover(m, ev->catalog);
    /* A failed listing is retried on the next connection; the event's object is not. */
    if (rc != DYNO_EUNAUTH && rc != DYNO_EFORBIDDEN)
        rc = created ? mirror_fetch(m, rel, ev->key, ev->sha256) : mirror_remove(m, rel, ev->key);
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
    bool recursive = false;
    char **pos = calloc((size_t)argc + 1, sizeof(char *));
    int npos = 0, ec;
    dyno_client *c = NULL;
    char *broker = NULL, *gw = NULL, *tok = NULL, *ca = NULL;
    struct mirror m = {.x = x};
    char dir[PATH_MAX], client_id[80];
    const struct cli_flag flags[] = {
        {"--mirror", true, &dir_flag, NULL},
        {"--broker", true, &broker_flag, NULL},
        {"--recursive", false, NULL, &recursive},
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
    if (recursive && !dir_flag) {
        ec = cli_usage("subscribe: --recursive goes with --mirror DIR");
        goto out;
    }
    m.catalog = pos[0];
    m.catalog_len = strlen(m.catalog);
    m.recursive = recursive;
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
    cJSON_Delete(m.known);
    dyno_client_free(c);
    free(pos);
    return ec;
}
