/* Healing: repair planning, garbage collection plan, drain and restore (md_repair.h). */
#include "md_repair.h"

#include <dynostore/error.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "db.h"
#include "frag.h"
#include "json.h"
#include "rtask.h"
#include "log.h"
#include "placement.h"

#define RP_FRAGS_MAX 256 /* fragments of one object (index is a u8) */

static const char SQL_RP_MARK[] =
    "SELECT f.key, f.idx FROM fragments f WHERE f.container = ?1 AND f.state = ?2 AND EXISTS"
    " (SELECT 1 FROM objects o WHERE o.key = f.key AND o.state IN ('committed','degraded')) LIMIT ?3";
static const char SQL_RP_FLIP[] =
    "SELECT f.key, f.idx FROM fragments f WHERE f.container = ?1 AND f.state = 'lost' AND NOT EXISTS"
    " (SELECT 1 FROM repairs r WHERE r.key = f.key AND r.task_id IS NOT NULL) LIMIT ?2";
static const char SQL_RP_FRAG_STATE[] =
    "UPDATE fragments SET state = ?3 WHERE key = ?1 AND idx = ?2 AND state = ?4";
static const char SQL_RP_NOT_OK[] = "SELECT COUNT(*) FROM fragments WHERE key = ?1 AND state <> 'ok'";
static const char SQL_RP_EXPIRED[] =
    "SELECT key FROM repairs WHERE task_id IS NOT NULL AND lease_until <= ?1 LIMIT ?2";
static const char SQL_RP_STALE[] =
    "SELECT r.key FROM repairs r WHERE NOT EXISTS"
    " (SELECT 1 FROM objects o WHERE o.key = r.key AND o.state = 'degraded') LIMIT ?1";
static const char SQL_RP_TARGETS_GARBAGE[] =
    "INSERT OR IGNORE INTO garbage(key, idx, container, size, since)"
    " SELECT key, idx, container, size, ?2 FROM repair_targets WHERE key = ?1";
static const char SQL_RP_TARGETS_DROP[] = "DELETE FROM repair_targets WHERE key = ?1";
static const char SQL_RP_RELEASE[] =
    "UPDATE repairs SET task_id = NULL, worker = NULL, not_before = ?2 WHERE key = ?1";
static const char SQL_RP_DROP[] = "DELETE FROM repairs WHERE key = ?1";
static const char SQL_RP_CANDIDATES[] =
    "SELECT o.key FROM objects o LEFT JOIN repairs r ON r.key = o.key WHERE o.state = 'degraded' AND"
    " (r.key IS NULL OR (r.task_id IS NULL AND r.not_before <= ?1)"
    " OR (r.task_id IS NOT NULL AND r.lease_until <= ?1)) ORDER BY o.key LIMIT ?2";
static const char SQL_RP_GET[] = "SELECT task_id, unrecoverable FROM repairs WHERE key = ?1";
static const char SQL_RP_FRAGS[] =
    "SELECT idx, container, state, size FROM fragments WHERE key = ?1 ORDER BY idx";
static const char SQL_RP_GARBAGE_OF[] = "SELECT container FROM garbage WHERE key = ?1";
static const char SQL_RP_LEASE[] =
    "INSERT INTO repairs(key, task_id, worker, lease_until, not_before, unrecoverable)"
    " VALUES(?1, ?2, ?3, ?4, 0, 0) ON CONFLICT(key) DO UPDATE SET task_id = excluded.task_id,"
    " worker = excluded.worker, lease_until = excluded.lease_until, unrecoverable = 0";
static const char SQL_RP_DEFER[] =
    "INSERT INTO repairs(key, not_before, unrecoverable) VALUES(?1, ?2, ?3) ON CONFLICT(key) DO UPDATE SET"
    " task_id = NULL, worker = NULL, not_before = excluded.not_before, unrecoverable = "
    "excluded.unrecoverable";
static const char SQL_RP_TARGET_ADD[] =
    "INSERT INTO repair_targets(key, idx, container, size) VALUES(?1, ?2, ?3, ?4)";
static const char SQL_RP_TARGET_GET[] =
    "SELECT container, size FROM repair_targets WHERE key = ?1 AND idx = ?2";
static const char SQL_RP_TARGET_DEL[] = "DELETE FROM repair_targets WHERE key = ?1 AND idx = ?2";
static const char SQL_RP_GARBAGE_ADD[] =
    "INSERT OR IGNORE INTO garbage(key, idx, container, size, since) VALUES(?1, ?2, ?3, ?4, ?5)";
static const char SQL_RP_FRAG_ROW[] =
    "SELECT container, state, size FROM fragments WHERE key = ?1 AND idx = ?2";
static const char SQL_RP_FRAG_MOVE[] =
    "UPDATE fragments SET container = ?3, state = 'ok', size = ?4 WHERE key = ?1 AND idx = ?2";
static const char SQL_RP_COUNTER_ADD[] = "INSERT INTO counters(name, value) VALUES(?1, ?2) ON CONFLICT(name) "
                                         "DO UPDATE SET value = value + excluded.value";
static const char SQL_RP_DRAIN_ADD[] = "INSERT OR IGNORE INTO drains(id, since) VALUES(?1, ?2)";
static const char SQL_RP_STATUS[] =
    "SELECT (SELECT COUNT(*) FROM objects WHERE state = 'degraded'),"
    " (SELECT COUNT(*) FROM objects o JOIN fragments f ON f.key = o.key WHERE o.state = 'degraded'"
    "  AND f.state IN " MD__NEEDS_REPAIR "),"
    " (SELECT COUNT(*) FROM repairs WHERE task_id IS NOT NULL AND lease_until > ?1),"
    " (SELECT COALESCE(MAX(value),0) FROM counters WHERE name = 'repaired_total'),"
    " (SELECT COUNT(*) FROM repairs r JOIN objects o ON o.key = r.key WHERE o.state = 'degraded'"
    "  AND r.unrecoverable = 1),"
    " (SELECT COUNT(*) FROM garbage) + (SELECT COUNT(*) FROM objects o JOIN fragments f ON f.key = o.key"
    "  WHERE o.state = 'deleting')";
static const char SQL_RP_DRAINS[] = "SELECT id FROM drains ORDER BY id";
static const char SQL_GC_GARBAGE[] =
    "SELECT g.key, g.idx FROM garbage g WHERE g.container = ?1 AND NOT EXISTS"
    " (SELECT 1 FROM fragments f JOIN objects o ON o.key = f.key WHERE f.key = g.key AND f.idx = g.idx"
    "  AND f.container = g.container AND o.state <> 'deleting') AND NOT EXISTS"
    " (SELECT 1 FROM repair_targets t WHERE t.key = g.key AND t.idx = g.idx AND t.container = g.container)"
    " ORDER BY g.key, g.idx LIMIT ?2";
static const char SQL_GC_DELETING[] =
    "SELECT f.key, f.idx, f.container FROM objects o JOIN fragments f ON f.key = o.key"
    " WHERE o.state = 'deleting' ORDER BY o.key, f.idx";
static const char SQL_GC_DROP_GARBAGE[] =
    "DELETE FROM garbage WHERE key = ?1 AND idx = ?2 AND container = ?3";
static const char SQL_GC_DROP_FRAG[] =
    "DELETE FROM fragments WHERE key = ?1 AND idx = ?2 AND container = ?3 AND EXISTS"
    " (SELECT 1 FROM objects o WHERE o.key = ?1 AND o.state = 'deleting')";
static const char SQL_GC_DROP_MISSING[] =
    "DELETE FROM fragments WHERE key = ?1 AND state = 'missing' AND EXISTS"
    " (SELECT 1 FROM objects o WHERE o.key = ?1 AND o.state = 'deleting')";
static const char SQL_GC_DROP_OBJ[] =
    "DELETE FROM objects WHERE key = ?1 AND state = 'deleting' AND NOT EXISTS"
    " (SELECT 1 FROM fragments f WHERE f.key = ?1)";
static const char SQL_RS_EXISTS[] = "SELECT 1 FROM objects WHERE key = ?1";
static const char SQL_RS_SAME_NAME[] =
    "SELECT key, committed_at IS NOT NULL FROM objects WHERE catalog = ?1 AND name = ?2"
    " AND state IN ('committed','degraded')";
static const char SQL_RS_DROP_FRAGS[] = "DELETE FROM fragments WHERE key = ?1";
static const char SQL_RS_DROP_OBJ[] = "DELETE FROM objects WHERE key = ?1";
static const char SQL_RS_INSERT[] =
    "INSERT INTO objects(key, catalog, name, owner, size, sha256, k, m, replica, unit, state, created_at)"
    " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)";
static const char SQL_RS_FRAG[] =
    "INSERT INTO fragments(key, idx, container, size, state) VALUES(?1, ?2, ?3, ?4, ?5)";

/* ---- small helpers ------------------------------------------------------------------------ */

int md_repair_init(struct md_repair *r, const struct md_repair_cfg *cfg)
{
    memset(r, 0, sizeof(*r));
    r->cfg = *cfg;
    return pthread_mutex_init(&r->mu, NULL) == 0 ? 0 : DYNO_EINTERNAL;
}

void md_repair_fini(struct md_repair *r)
{
    pthread_mutex_destroy(&r->mu);
}

static bool repair__online(const struct md_nodes *nodes, const char *id)
{
    const struct md_node *nd = md_nodes_find(nodes, id);
    return nd && nd->online;
}

static const char *repair__url(const struct md_nodes *nodes, const char *id)
{
    const struct md_node *nd = md_nodes_find(nodes, id);
    return nd ? nd->url : "";
}

/* Targets reserved for key become garbage (a worker may have written them) and are freed. */
static int repair__targets_to_garbage(struct md_db *db, const char *key, int64_t now)
{
    int rc = md__run_key(db, SQL_RP_TARGETS_GARBAGE, key, now, NULL);
    if (rc == SQLITE_OK)
        rc = md__run_key(db, SQL_RP_TARGETS_DROP, key, 0, NULL);
    return rc;
}

static int repair__counter_add(struct md_db *db, const char *name, int64_t v)
{
    sqlite3_stmt *st;
    int rc = md__stmt(db, SQL_RP_COUNTER_ADD, &st);
    if (rc != SQLITE_OK)
        return rc;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, v);
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* Number of key's fragments that are not ok. */
static int repair__not_ok(struct md_db *db, const char *key, int64_t *count)
{
    sqlite3_stmt *st;
    int rc = md__stmt(db, SQL_RP_NOT_OK, &st);
    if (rc != SQLITE_OK)
        return rc;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_TRANSIENT);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *count = sqlite3_column_int64(st, 0);
        rc = SQLITE_OK;
    }
    sqlite3_reset(st);
    return rc;
}

/* A degraded object whose n fragments are all ok is committed again (event, counter). */
static int repair__maybe_healed(struct md_db *db, const char *key, cJSON *pending_events, bool *healed)
{
    *healed = false;
    struct md__obj o;
    int rc = md__obj_get(db, key, &o);
    if (rc != SQLITE_OK || strcmp(o.state, "degraded") != 0)
        return rc == SQLITE_NOTFOUND ? SQLITE_OK : rc;
    int64_t bad = 0;
    rc = repair__not_ok(db, key, &bad);
    if (rc != SQLITE_OK || bad > 0)
        return rc;
    rc = md__obj_set_state(db, key, "committed");
    if (rc == SQLITE_OK)
        rc = md__run_key(db, SQL_RP_DROP, key, 0, NULL);
    if (rc == SQLITE_OK)
        rc = repair__counter_add(db, "repaired_total", 1);
    if (rc == SQLITE_OK) {
        md__event(pending_events, "object.repaired", key, &o);
        *healed = true;
    }
    return rc;
}

/* Moves pending (uncommitted) events to events once their transaction committed. */
static void repair__events_flush(cJSON *pending, cJSON *events)
{
    if (!pending)
        return;
    while (cJSON_GetArraySize(pending) > 0) {
        cJSON *e = cJSON_DetachItemFromArray(pending, 0);
        if (events)
            cJSON_AddItemToArray(events, e);
        else
            cJSON_Delete(e);
    }
}

/* ---- marking passes ------------------------------------------------------------------------ */

struct repair__kix {
    char key[DYNO_KEY_LEN + 1];
    int idx;
};

/* Reads up to max (key, idx) rows of a prepared, bound statement into v. */
static int repair__collect(sqlite3_stmt *st, struct repair__kix *v, int max, int *n)
{
    int rc;
    *n = 0;
    while (*n < max && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        snprintf(v[*n].key, sizeof(v[*n].key), "%s", dyno_db_text(st, 0));
        v[*n].idx = sqlite3_column_int(st, 1);
        (*n)++;
    }
    if (*n < max && rc != SQLITE_DONE) {
        sqlite3_reset(st);
        return rc;
    }
    sqlite3_reset(st);
    return SQLITE_OK;
}

/* A batched state change of the fragments on one container: select selects (key, idx)
 * pairs of container ?1 (then, when sel_state is set, in state ?2) with the limit last;
 * each goes from `from` to `to`, one batch of objects per transaction. */
struct repair__move {
    const char *select;
    const char *id;
    const char *sel_state; /* bound as ?2 when non-NULL */
    const char *from, *to;
    bool degrade; /* marking: committed objects become degraded (object.degraded) */
    bool heal;    /* flipping back: an object whose fragments are all ok again is healed */
};

static int repair__move_one(struct md_db *db, const struct repair__move *mv, const struct repair__kix *f,
                            cJSON *pend)
{
    struct md__obj o;
    sqlite3_stmt *st;
    int rc = mv->degrade ? md__obj_get(db, f->key, &o) : SQLITE_OK;
    if (rc == SQLITE_OK)
        rc = md__stmt(db, SQL_RP_FRAG_STATE, &st);
    if (rc != SQLITE_OK)
        return rc;
    sqlite3_bind_text(st, 1, f->key, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, f->idx);
    sqlite3_bind_text(st, 3, mv->to, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, mv->from, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE)
        return rc;
    if (mv->degrade && strcmp(o.state, "committed") == 0) {
        md__event(pend, "object.degraded", f->key, &o);
        return md__obj_set_state(db, f->key, "degraded");
    }
    if (mv->heal) {
        bool healed;
        return repair__maybe_healed(db, f->key, pend, &healed);
    }
    return SQLITE_OK;
}

static int repair__move_batches(struct md_db *db, const struct repair__move *mv, cJSON *events,
                                int64_t *count)
{
    struct repair__kix v[MD_REPAIR_BATCH];
    cJSON *pend = cJSON_CreateArray();
    if (!pend)
        return SQLITE_NOMEM;
    int rc;
    for (;;) {
        int n = 0, arg = 1;
        sqlite3_stmt *st;
        rc = md__begin(db);
        if (rc != SQLITE_OK)
            break;
        rc = md__stmt(db, mv->select, &st);
        if (rc != SQLITE_OK)
            break;
        sqlite3_bind_text(st, arg++, mv->id, -1, SQLITE_STATIC);
        if (mv->sel_state)
            sqlite3_bind_text(st, arg++, mv->sel_state, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, arg, MD_REPAIR_BATCH);
        rc = repair__collect(st, v, MD_REPAIR_BATCH, &n);
        for (int i = 0; rc == SQLITE_OK && i < n; i++)
            rc = repair__move_one(db, mv, &v[i], pend);
        if (rc != SQLITE_OK)
            break;
        rc = md__commit(db);
        if (rc != SQLITE_OK)
            break;
        *count += n;
        repair__events_flush(pend, events);
        if (n < MD_REPAIR_BATCH)
            break;
    }
    if (rc != SQLITE_OK)
        md__rollback(db);
    cJSON_Delete(pend);
    return rc;
}

/* Moves the fragments in state from on container id (of visible objects) to state to;
 * committed objects become degraded. *count: fragments moved. */
static int repair__mark(struct md_db *db, const char *id, const char *from, const char *to, cJSON *events,
                        int64_t *count)
{
    struct repair__move mv = {
        .select = SQL_RP_MARK, .id = id, .sel_state = from, .from = from, .to = to, .degrade = true};
    return repair__move_batches(db, &mv, events, count);
}

/* Lost fragments on container id (online again) whose object has no lease go back to ok, or
 * to draining when id is draining. *count: fragments restored. */
static int repair__flip_back(struct md_db *db, const char *id, bool draining, cJSON *events, int64_t *count)
{
    struct repair__move mv = {
        .select = SQL_RP_FLIP, .id = id, .from = "lost", .to = draining ? "draining" : "ok", .heal = true};
    return repair__move_batches(db, &mv, events, count);
}

/* Releases expired leases and drops repair rows of objects that are no longer degraded. */
static int repair__sweep(struct md_db *db, int64_t now)
{
    struct repair__kix v[MD_REPAIR_BATCH];
    int n = 0;
    sqlite3_stmt *st;
    int rc = md__begin(db);
    if (rc == SQLITE_OK)
        rc = md__stmt(db, SQL_RP_EXPIRED, &st);
    if (rc == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, now);
        sqlite3_bind_int(st, 2, MD_REPAIR_BATCH);
        rc = repair__collect(st, v, MD_REPAIR_BATCH, &n);
    }
    for (int i = 0; rc == SQLITE_OK && i < n; i++) {
        rc = repair__targets_to_garbage(db, v[i].key, now);
        if (rc == SQLITE_OK)
            rc = md__run_key(db, SQL_RP_RELEASE, v[i].key, now, NULL);
        if (rc == SQLITE_OK)
            dyno_info("repair lease expired", "key=%s", v[i].key);
    }
    if (rc == SQLITE_OK)
        rc = md__stmt(db, SQL_RP_STALE, &st);
    if (rc == SQLITE_OK) {
        sqlite3_bind_int(st, 1, MD_REPAIR_BATCH);
        rc = repair__collect(st, v, MD_REPAIR_BATCH, &n);
    }
    for (int i = 0; rc == SQLITE_OK && i < n; i++) {
        rc = repair__targets_to_garbage(db, v[i].key, now);
        if (rc == SQLITE_OK)
            rc = md__run_key(db, SQL_RP_DROP, v[i].key, 0, NULL);
    }
    if (rc == SQLITE_OK)
        rc = md__commit(db);
    if (rc != SQLITE_OK)
        md__rollback(db);
    return rc;
}

int md_repair_tick(struct md_repair *r, struct md_db *db, const struct md_nodes *nodes, int64_t now,
                   int64_t observed_since, cJSON *events)
{
    char err[128];
    int rc = repair__sweep(db, now);
    for (size_t i = 0; rc == SQLITE_OK && i < nodes->n; i++) {
        const struct md_node *nd = &nodes->v[i];
        struct md__usage u;
        int64_t count = 0;
        rc = md__usage(db, nd->id, &u);
        if (rc != SQLITE_OK)
            break;
        bool draining = u.draining;
        if (!nd->online) {
            int64_t since = nd->offline_since > observed_since ? nd->offline_since : observed_since;
            if (observed_since > 0 && now - since >= r->cfg.grace) {
                rc = repair__mark(db, nd->id, "ok", "lost", events, &count);
                if (rc == SQLITE_OK && count > 0)
                    dyno_warn("container offline past the grace period: fragments lost",
                              "id=%s fragments=%lld offline_for=%lld", nd->id, (long long)count,
                              (long long)(now - since));
            }
        } else if (nd->wiped) {
            /* A memory container came back empty: what it held is missing, not lost (it
             * will not come back), so repair rebuilds it at once, not after the grace. */
            rc = repair__mark(db, nd->id, "ok", "missing", events, &count);
            if (rc == SQLITE_OK)
                rc = repair__mark(db, nd->id, "lost", "missing", events, &count);
            if (rc == SQLITE_OK)
                dyno_warn("memory container restarted empty: fragments missing", "id=%s fragments=%lld",
                          nd->id, (long long)count);
        } else {
            rc = repair__flip_back(db, nd->id, draining, events, &count);
            if (rc == SQLITE_OK && count > 0)
                dyno_info("container back: lost fragments restored", "id=%s fragments=%lld", nd->id,
                          (long long)count);
        }
        if (rc == SQLITE_OK && draining) {
            count = 0;
            rc = repair__mark(db, nd->id, "ok", "draining", events, &count);
            if (rc == SQLITE_OK && count > 0)
                dyno_info("draining fragments", "id=%s fragments=%lld", nd->id, (long long)count);
        }
    }
    return rc == SQLITE_OK ? 0 : md__sqlerr(db, rc, err, sizeof(err));
}

/* ---- repair.claim ------------------------------------------------------------------------- */

struct repair__frag {
    int idx;
    char container[DYNO_SEG_MAX + 1];
    char state[16];
    int64_t size;
};

static int repair__load_frags(struct md_db *db, const char *key, struct repair__frag *v, int *n)
{
    sqlite3_stmt *st;
    int rc = md__stmt(db, SQL_RP_FRAGS, &st);
    if (rc != SQLITE_OK)
        return rc;
    *n = 0;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_TRANSIENT);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && *n < RP_FRAGS_MAX) {
        struct repair__frag *f = &v[(*n)++];
        f->idx = sqlite3_column_int(st, 0);
        snprintf(f->container, sizeof(f->container), "%s", dyno_db_text(st, 1));
        snprintf(f->state, sizeof(f->state), "%s", dyno_db_text(st, 2));
        f->size = sqlite3_column_int64(st, 3);
    }
    sqlite3_reset(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static bool repair__needs(const char *state)
{
    return strcmp(state, "lost") == 0 || strcmp(state, "bad") == 0 || strcmp(state, "missing") == 0 ||
           strcmp(state, "draining") == 0;
}

/* Defers key until not_before, flagging it unrecoverable or not. */
static int repair__defer(struct md_db *db, const char *key, int64_t not_before, bool unrecoverable)
{
    sqlite3_stmt *st;
    int rc = md__stmt(db, SQL_RP_DEFER, &st);
    if (rc != SQLITE_OK)
        return rc;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, not_before);
    sqlite3_bind_int(st, 3, unrecoverable ? 1 : 0);
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* What is known of one key while it is considered for a lease: the object, its fragments and
 * which of them (indexes into fr) need rebuilding, real losses first. */
struct repair__plan {
    const char *key;
    struct md__obj o;
    struct repair__frag fr[RP_FRAGS_MAX];
    int nfr;
    int need[RP_FRAGS_MAX];
    int nneed;
    uint64_t share; /* bytes of one fragment of the committed layout */
};

/* The containers a rebuilt fragment may go to, as dyno_place sees them; idx receives its
 * choice. Both arrays are owned (repair__cands_free). */
struct repair__cands {
    struct dyno_place_node *pn;
    size_t *idx;
    size_t n;    /* entries of pn */
    size_t room; /* of them, how many have room for one fragment */
};

static void repair__cands_free(struct repair__cands *c)
{
    free(c->pn);
    free(c->idx);
}

/* The key's repairs row: whether a task was leased before (its lease has expired, or the key
 * would not be a candidate) and whether the object was unrecoverable at the last look. */
static int repair__lease_state(struct md_db *db, const char *key, bool *had_task, bool *was_unrecoverable)
{
    sqlite3_stmt *st;
    *had_task = *was_unrecoverable = false;
    int rc = md__stmt_key(db, SQL_RP_GET, key, &st);
    if (rc != SQLITE_OK)
        return rc;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *had_task = sqlite3_column_type(st, 0) != SQLITE_NULL;
        *was_unrecoverable = sqlite3_column_int(st, 1) != 0;
    }
    sqlite3_reset(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* A fragment a repair can read: stored (or being drained) on a container that is online. */
static bool repair__is_source(const struct repair__frag *f, const struct md_nodes *nodes)
{
    return (strcmp(f->state, "ok") == 0 || strcmp(f->state, "draining") == 0) &&
           repair__online(nodes, f->container);
}

/* Loads the object and its fragments into p and lists what needs rebuilding. */
static int repair__plan_load(struct md_db *db, const char *key, struct repair__plan *p)
{
    p->key = key;
    int rc = md__obj_get(db, key, &p->o);
    if (rc == SQLITE_OK)
        rc = repair__load_frags(db, key, p->fr, &p->nfr);
    if (rc != SQLITE_OK)
        return rc;
    /* Real losses first, then fragments that are only being drained. */
    p->nneed = 0;
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < p->nfr; i++) {
            bool dr = strcmp(p->fr[i].state, "draining") == 0;
            if (repair__needs(p->fr[i].state) && dr == (pass == 1))
                p->need[p->nneed++] = i;
        }
    }
    struct dyno_layout lay = {
        .size = (uint64_t)(p->o.size > 0 ? p->o.size : 0), .unit = p->o.unit, .k = p->o.k};
    p->share = dyno_layout_fragment_size(&lay);
    return SQLITE_OK;
}

/* The containers that hold garbage of key: a rebuilt fragment may not land there. */
static int repair__garbage_of(struct md_db *db, const char *key, char (*on)[DYNO_SEG_MAX + 1], int *n)
{
    sqlite3_stmt *st;
    *n = 0;
    int rc = md__stmt_key(db, SQL_RP_GARBAGE_OF, key, &st);
    if (rc != SQLITE_OK)
        return rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && *n < RP_FRAGS_MAX)
        snprintf(on[(*n)++], DYNO_SEG_MAX + 1, "%s", dyno_db_text(st, 0));
    sqlite3_reset(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* Whether container id already holds a row of the plan's object (live or garbage). */
static bool repair__holds(const struct repair__plan *p, char (*garbage_on)[DYNO_SEG_MAX + 1], int ngarb,
                          const char *id)
{
    for (int j = 0; j < p->nfr; j++) {
        if (strcmp(p->fr[j].container, id) == 0)
            return true;
    }
    for (int j = 0; j < ngarb; j++) {
        if (strcmp(garbage_on[j], id) == 0)
            return true;
    }
    return false;
}

/* The candidates for the plan's rebuilt fragments: online, not draining, holding no row of
 * this object (live, garbage or reserved), with their capacity and usage. */
static int repair__candidates(struct md_db *db, const struct md_nodes *nodes, const struct repair__plan *p,
                              struct repair__cands *c)
{
    char garbage_on[RP_FRAGS_MAX][DYNO_SEG_MAX + 1];
    int ngarb = 0;
    memset(c, 0, sizeof(*c));
    int rc = repair__garbage_of(db, p->key, garbage_on, &ngarb);
    if (rc != SQLITE_OK)
        return rc;
    c->pn = calloc(nodes->n ? nodes->n : 1, sizeof(*c->pn));
    c->idx = calloc(nodes->n ? nodes->n : 1, sizeof(*c->idx));
    if (!c->pn || !c->idx)
        return SQLITE_NOMEM;
    for (size_t i = 0; i < nodes->n; i++) {
        const struct md_node *nd = &nodes->v[i];
        if (!nd->online || repair__holds(p, garbage_on, ngarb, nd->id))
            continue;
        struct md__usage u;
        rc = md__usage(db, nd->id, &u);
        if (rc != SQLITE_OK)
            return rc;
        if (u.draining)
            continue;
        int64_t used = u.used;
        uint64_t cap = md_node_capacity(nd, used > 0 ? (uint64_t)used : 0);
        if (cap >= (uint64_t)used && cap - (uint64_t)used >= p->share)
            c->room++;
        c->pn[c->n++] = (struct dyno_place_node){
            .id = nd->id, .site = nd->site, .capacity = cap, .used = (uint64_t)used, .online = true};
    }
    return SQLITE_OK;
}

/* The task handed to a worker (lib/rtask.h), with its sources and an empty rebuild list;
 * NULL when out of memory. */
static cJSON *repair__task_new(const struct md_repair *r, const struct repair__plan *p, const char *task_id,
                               const struct md_nodes *nodes, int64_t now)
{
    const struct md__obj *o = &p->o;
    struct dyno_rtask_head h = {.size = o->size,
                                .k = o->k,
                                .m = o->m,
                                .replica = o->replica,
                                .unit = o->unit,
                                .lease_until = now + r->cfg.lease};
    snprintf(h.id, sizeof(h.id), "%s", task_id);
    snprintf(h.key, sizeof(h.key), "%s", p->key);
    snprintf(h.catalog, sizeof(h.catalog), "%s", o->catalog);
    snprintf(h.name, sizeof(h.name), "%s", o->name);
    snprintf(h.sha256, sizeof(h.sha256), "%s", o->sha256);
    cJSON *t = dyno_rtask_new(&h);
    for (int i = 0; t && i < p->nfr; i++) {
        const struct repair__frag *f = &p->fr[i];
        if (repair__is_source(f, nodes) &&
            dyno_rtask_add_loc(t, "sources", f->idx, f->container, repair__url(nodes, f->container), f->state,
                               -1)) {
            cJSON_Delete(t);
            return NULL;
        }
    }
    return t;
}

/* Reserves the first want needed fragments on the containers placement chose (repair_targets)
 * and lists them in the task's rebuild array. */
static int repair__reserve(struct md_db *db, const struct md_nodes *nodes, const struct repair__plan *p,
                           const struct repair__cands *c, size_t want, cJSON *task)
{
    sqlite3_stmt *st;
    int rc = md__stmt(db, SQL_RP_TARGET_ADD, &st);
    for (size_t i = 0; rc == SQLITE_OK && i < want; i++) {
        const struct repair__frag *f = &p->fr[p->need[i]];
        const struct dyno_place_node *pn = &c->pn[c->idx[i]];
        sqlite3_reset(st);
        sqlite3_bind_text(st, 1, p->key, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int(st, 2, f->idx);
        sqlite3_bind_text(st, 3, pn->id, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(st, 4, (int64_t)p->share);
        rc = sqlite3_step(st);
        sqlite3_reset(st);
        rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
        if (rc == SQLITE_OK && dyno_rtask_add_loc(task, "rebuild", f->idx, pn->id, repair__url(nodes, pn->id),
                                                  NULL, (int64_t)p->share))
            rc = SQLITE_NOMEM;
    }
    return rc;
}

/* Records the lease of key's task task_id to worker until the given time. */
static int repair__lease(struct md_db *db, const char *key, const char *task_id, const char *worker,
                         int64_t until)
{
    sqlite3_stmt *st;
    int rc = md__stmt(db, SQL_RP_LEASE, &st);
    if (rc != SQLITE_OK)
        return rc;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, task_id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, worker, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 4, until);
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* Builds the task of the plan for the want chosen targets, reserves them and leases it. */
static int repair__hand_out(struct md_repair *r, struct md_db *db, const struct md_nodes *nodes,
                            const struct repair__plan *p, const struct repair__cands *c, size_t want,
                            const char *worker, int64_t now, cJSON **task)
{
    char task_id[DYNO_KEY_LEN + 1];
    if (dyno_key_new(task_id) != 0)
        return SQLITE_INTERNAL;
    cJSON *t = repair__task_new(r, p, task_id, nodes, now);
    if (!t)
        return SQLITE_NOMEM;
    int rc = repair__reserve(db, nodes, p, c, want, t);
    if (rc == SQLITE_OK)
        rc = repair__lease(db, p->key, task_id, worker, now + r->cfg.lease);
    if (rc != SQLITE_OK) {
        cJSON_Delete(t);
        return rc;
    }
    *task = t;
    return SQLITE_OK;
}

/*
 * Places up to want rebuilt fragments under the site rule (lib/placement.h): the fragments
 * that stay count towards their sites' cap of m. When the sites left cannot take all of
 * them (a site lost and too few others), as many as fit are rebuilt now; the object stays
 * degraded and the rest waits for a site to come back or be added. Returns how many were
 * placed (c->idx), 0 when none can be.
 */
static size_t repair__place(const struct md_nodes *nodes, const struct repair__plan *p,
                            struct repair__cands *c, size_t want)
{
    const char *held[RP_FRAGS_MAX];
    size_t nheld = 0;
    for (int i = 0; i < p->nfr; i++) {
        if (repair__needs(p->fr[i].state))
            continue;
        const struct md_node *nd = md_nodes_find(nodes, p->fr[i].container);
        held[nheld++] = nd ? nd->site : "";
    }
    const struct dyno_place_rule rule = {
        .site_max = p->o.site_relaxed ? 0 : (size_t)p->o.m, .held = held, .nheld = nheld};
    for (size_t n = want; n > 0; n--) {
        int rc = dyno_place_spread(c->pn, c->n, n, p->share, &rule, c->idx);
        if (rc == 0) {
            if (n < want)
                dyno_warn("site rule: fewer repaired fragments than needed fit",
                          "key=%s placed=%zu needed=%zu", p->key, n, want);
            return n;
        }
        if (rc != DYNO_ECONFLICT)
            return 0;
    }
    return 0;
}

/*
 * Tries to lease key to worker (in the caller's transaction). *task: the task, or NULL when
 * key cannot be handed out now (it is then deferred).
 */
static int repair__try_lease(struct md_repair *r, struct md_db *db, const struct md_nodes *nodes,
                             const char *key, const char *worker, int64_t now, cJSON *pend, cJSON **task)
{
    *task = NULL;
    bool had_task, was_unrecoverable;
    int rc = repair__lease_state(db, key, &had_task, &was_unrecoverable);
    if (rc != SQLITE_OK)
        return rc;
    if (had_task) { /* an expired lease: what it reserved may have been written */
        rc = repair__targets_to_garbage(db, key, now);
        if (rc != SQLITE_OK)
            return rc;
        dyno_info("repair lease expired", "key=%s", key);
    }
    struct repair__plan p;
    rc = repair__plan_load(db, key, &p);
    if (rc != SQLITE_OK)
        return rc;
    if (p.nneed == 0) {
        bool healed;
        return repair__maybe_healed(db, key, pend, &healed);
    }
    int nsrc = 0;
    for (int i = 0; i < p.nfr; i++)
        nsrc += repair__is_source(&p.fr[i], nodes);
    if (nsrc < p.o.k) {
        if (!was_unrecoverable)
            dyno_error("object unrecoverable", "key=%s healthy=%d k=%d n=%d", key, nsrc, p.o.k,
                       md__obj_n(&p.o));
        return repair__defer(db, key, now + MD_REPAIR_RETRY, true);
    }
    struct repair__cands c;
    rc = repair__candidates(db, nodes, &p, &c);
    size_t want = c.room < (size_t)p.nneed ? c.room : (size_t)p.nneed;
    want = rc == SQLITE_OK ? repair__place(nodes, &p, &c, want) : 0;
    if (rc == SQLITE_OK && want == 0) {
        dyno_warn("no container can take a repaired fragment", "key=%s needed=%d", key, p.nneed);
        rc = repair__defer(db, key, now + MD_REPAIR_RETRY, false);
    } else if (rc == SQLITE_OK) {
        rc = repair__hand_out(r, db, nodes, &p, &c, want, worker, now, task);
    }
    repair__cands_free(&c);
    return rc;
}

int md_repair_claim(struct md_repair *r, struct md_db *db, const struct md_nodes *nodes, const char *worker,
                    int64_t now, cJSON **result, char *err, size_t errlen)
{
    *result = NULL;
    cJSON *task = NULL, *res = NULL;
    cJSON *pend = cJSON_CreateArray();
    char keys[MD_REPAIR_SCAN][DYNO_KEY_LEN + 1];
    int nkeys = 0, ret = 0;
    int rc = SQLITE_OK;
    if (!pend) {
        snprintf(err, errlen, "out of memory");
        return DYNO_ENOMEM;
    }
    /* Claims are serialized: the rate window and the usage reads of placement both hold. */
    pthread_mutex_lock(&r->mu);
    if (r->window != now) {
        r->window = now;
        r->handed = 0;
    }
    if (r->handed >= r->cfg.rate)
        goto reply;
    rc = md__begin(db);
    if (rc != SQLITE_OK)
        goto sql;
    sqlite3_stmt *st;
    rc = md__stmt(db, SQL_RP_CANDIDATES, &st);
    if (rc != SQLITE_OK)
        goto sql;
    sqlite3_bind_int64(st, 1, now);
    sqlite3_bind_int(st, 2, MD_REPAIR_SCAN);
    while (nkeys < MD_REPAIR_SCAN && (rc = sqlite3_step(st)) == SQLITE_ROW)
        snprintf(keys[nkeys++], sizeof(keys[0]), "%s", dyno_db_text(st, 0));
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        goto sql;
    rc = SQLITE_OK;
    for (int i = 0; i < nkeys && !task; i++) {
        rc = repair__try_lease(r, db, nodes, keys[i], worker, now, pend, &task);
        if (rc != SQLITE_OK)
            goto sql;
    }
    rc = md__commit(db);
    if (rc != SQLITE_OK)
        goto sql;
    repair__events_flush(pend, NULL);
    if (task) {
        r->handed++;
        char q[200];
        dyno_info("repair task leased", "key=%s task=%s worker=%s rebuild=%d", dyno_json_str(task, "key"),
                  dyno_json_str(task, "id"), dyno_log_q(q, sizeof(q), worker),
                  cJSON_GetArraySize(cJSON_GetObjectItem(task, "rebuild")));
    }
reply:
    res = cJSON_CreateObject();
    if (!res) {
        snprintf(err, errlen, "out of memory");
        ret = DYNO_ENOMEM;
        goto out;
    }
    if (task) {
        cJSON_AddItemToObject(res, "task", task);
        task = NULL;
    } else {
        cJSON_AddNullToObject(res, "task");
    }
    *result = res;
    goto out;
sql:
    ret = md__sqlerr(db, rc, err, errlen);
    md__rollback(db);
out:
    pthread_mutex_unlock(&r->mu);
    cJSON_Delete(task);
    cJSON_Delete(pend);
    return ret;
}

/* ---- repair.complete ---------------------------------------------------------------------- */

static int repair__add_garbage(struct md_db *db, const char *key, int idx, const char *container,
                               int64_t size, int64_t now)
{
    sqlite3_stmt *st;
    int rc = md__stmt(db, SQL_RP_GARBAGE_ADD, &st);
    if (rc != SQLITE_OK)
        return rc;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 2, idx);
    sqlite3_bind_text(st, 3, container, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 4, size);
    sqlite3_bind_int64(st, 5, now);
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* Whether key's task is task_id (its lease has not been handed to another worker since). */
static int repair__is_leased(struct md_db *db, const char *key, const char *task_id, bool *leased)
{
    sqlite3_stmt *st;
    *leased = false;
    int rc = md__stmt_key(db, SQL_RP_GET, key, &st);
    if (rc != SQLITE_OK)
        return rc;
    rc = sqlite3_step(st);
    *leased = rc == SQLITE_ROW && strcmp(dyno_db_text(st, 0), task_id) == 0;
    sqlite3_reset(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* Container ("" when none) and size of the row sql selects for key (?1) and fragment idx
 * (?2), from the columns ccol and scol: a reserved target or a fragment's location. */
static int repair__frag_where(struct md_db *db, const char *sql, const char *key, int idx, int ccol, int scol,
                              char cont[DYNO_SEG_MAX + 1], int64_t *size)
{
    sqlite3_stmt *st;
    cont[0] = '\0';
    *size = 0;
    int rc = md__stmt_key(db, sql, key, &st);
    if (rc != SQLITE_OK)
        return rc;
    sqlite3_bind_int(st, 2, idx);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        snprintf(cont, DYNO_SEG_MAX + 1, "%s", dyno_db_text(st, ccol));
        *size = sqlite3_column_int64(st, scol);
    }
    sqlite3_reset(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* Runs sql (no rows) with ?1 = key and ?2 = fragment idx. */
static int repair__run_frag(struct md_db *db, const char *sql, const char *key, int idx)
{
    sqlite3_stmt *st;
    int rc = md__stmt_key(db, sql, key, &st);
    if (rc != SQLITE_OK)
        return rc;
    sqlite3_bind_int(st, 2, idx);
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* Fragment idx of key now lives on container with size; its old location becomes garbage. */
static int repair__move_frag(struct md_db *db, const char *key, int idx, const char *container, int64_t size,
                             int64_t now)
{
    char ocont[DYNO_SEG_MAX + 1];
    int64_t osize;
    int rc = repair__frag_where(db, SQL_RP_FRAG_ROW, key, idx, 0, 2, ocont, &osize);
    /* The old location may hold a stale copy (a container that comes back): it is deleted
     * there later. So may a 'missing' one: a put whose stream failed after the container
     * renamed the file into place (a timeout, a crash before its reply) left a file
     * metadata never counted; deleting nothing is harmless. */
    if (rc == SQLITE_OK && ocont[0])
        rc = repair__add_garbage(db, key, idx, ocont, osize, now);
    if (rc != SQLITE_OK)
        return rc;
    sqlite3_stmt *st;
    rc = md__stmt_key(db, SQL_RP_FRAG_MOVE, key, &st);
    if (rc != SQLITE_OK)
        return rc;
    sqlite3_bind_int(st, 2, idx);
    sqlite3_bind_text(st, 3, container, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 4, size);
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/*
 * Applies the worker's result x for one reserved target of task_id: a rebuilt fragment moves
 * there, a failed write becomes garbage; the reservation ends. n: fragments of the object.
 * DYNO_EINVAL (err) for a result that names no target of the task; SQLite failures in *rc.
 */
static int repair__apply(struct md_db *db, const char *task_id, const char *key, int n,
                         const struct md_repair_result *x, int64_t now, cJSON *done, cJSON *failed,
                         bool *any_failed, int *rc, char *err, size_t errlen)
{
    char tcont[DYNO_SEG_MAX + 1];
    int64_t tsize;
    if (x->index < 0 || x->index >= n) {
        snprintf(err, errlen, "fragment index %d out of range 0..%d", x->index, n - 1);
        return DYNO_EINVAL;
    }
    *rc = repair__frag_where(db, SQL_RP_TARGET_GET, key, x->index, 0, 1, tcont, &tsize);
    if (*rc != SQLITE_OK)
        return 0;
    if (!tcont[0] || strcmp(tcont, x->container) != 0) {
        snprintf(err, errlen, "fragment %d on %s is not a target of task %s", x->index, x->container,
                 task_id);
        return DYNO_EINVAL;
    }
    if (x->ok) {
        *rc = repair__move_frag(db, key, x->index, tcont, x->size >= 0 ? x->size : tsize, now);
        cJSON_AddItemToArray(done, cJSON_CreateNumber(x->index));
    } else {
        /* A failed write may still have landed (a timeout after the rename). */
        *rc = repair__add_garbage(db, key, x->index, tcont, tsize, now);
        *any_failed = true;
        cJSON_AddItemToArray(failed, cJSON_CreateNumber(x->index));
    }
    if (*rc == SQLITE_OK)
        *rc = repair__run_frag(db, SQL_RP_TARGET_DEL, key, x->index);
    return 0;
}

/* After the results: targets the worker did not report count as failed and become garbage;
 * the object is healed, or its task released (after MD_REPAIR_RETRY when a write failed). */
static int repair__settle(struct md_db *db, const char *key, int64_t now, bool any_failed, cJSON *pend,
                          bool *healed)
{
    int unreported = 0;
    int rc = md__run_key(db, SQL_RP_TARGETS_GARBAGE, key, now, &unreported);
    if (unreported > 0)
        any_failed = true;
    if (rc == SQLITE_OK)
        rc = md__run_key(db, SQL_RP_TARGETS_DROP, key, 0, NULL);
    if (rc == SQLITE_OK)
        rc = repair__maybe_healed(db, key, pend, healed);
    if (rc == SQLITE_OK && !*healed)
        rc = md__run_key(db, SQL_RP_RELEASE, key, any_failed ? now + MD_REPAIR_RETRY : now, NULL);
    return rc;
}

int md_repair_complete(struct md_repair *r, struct md_db *db, const char *task_id, const char *key,
                       const struct md_repair_result *res, size_t nres, int64_t now, cJSON *events,
                       cJSON **result, char *err, size_t errlen)
{
    (void)r;
    *result = NULL;
    int ret = 0;
    bool leased = false, healed = false, any_failed = false;
    struct md__obj o;
    cJSON *pend = cJSON_CreateArray(), *out = cJSON_CreateObject();
    cJSON *done = cJSON_AddArrayToObject(out, "repaired"), *failed = cJSON_AddArrayToObject(out, "failed");
    if (!pend || !out || !done || !failed) {
        cJSON_Delete(pend);
        cJSON_Delete(out);
        snprintf(err, errlen, "out of memory");
        return DYNO_ENOMEM;
    }
    int rc = md__begin(db);
    if (rc == SQLITE_OK)
        rc = repair__is_leased(db, key, task_id, &leased);
    if (rc == SQLITE_OK && !leased) {
        snprintf(err, errlen, "task %s of %s is not leased (expired and handed out again, or done)", task_id,
                 key);
        ret = DYNO_ECONFLICT;
    }
    if (ret == 0 && rc == SQLITE_OK) {
        rc = md__obj_get(db, key, &o);
        if (rc == SQLITE_NOTFOUND) {
            snprintf(o.state, sizeof(o.state), "gone");
            rc = SQLITE_OK;
        }
    }
    bool degraded = ret == 0 && rc == SQLITE_OK && strcmp(o.state, "degraded") == 0;
    if (ret == 0 && rc == SQLITE_OK && !degraded) {
        /* Evicted during the repair: what was written is garbage. */
        rc = repair__targets_to_garbage(db, key, now);
        if (rc == SQLITE_OK)
            rc = md__run_key(db, SQL_RP_DROP, key, 0, NULL);
    }
    for (size_t i = 0; degraded && ret == 0 && rc == SQLITE_OK && i < nres; i++)
        ret = repair__apply(db, task_id, key, md__obj_n(&o), &res[i], now, done, failed, &any_failed, &rc,
                            err, errlen);
    if (degraded && ret == 0 && rc == SQLITE_OK)
        rc = repair__settle(db, key, now, any_failed, pend, &healed);
    ret = md__finish(db, ret, rc, err, errlen);
    if (ret != 0) {
        cJSON_Delete(out);
        cJSON_Delete(pend);
        return ret;
    }
    if (degraded) {
        repair__events_flush(pend, events);
        dyno_info(healed ? "object repaired" : "repair step done", "key=%s task=%s repaired=%d failed=%d",
                  key, task_id, cJSON_GetArraySize(done), cJSON_GetArraySize(failed));
    }
    cJSON_AddStringToObject(out, "key", key);
    cJSON_AddStringToObject(out, "state", !degraded ? o.state : healed ? "committed" : "degraded");
    *result = out;
    cJSON_Delete(pend);
    return 0;
}

/* ---- repair.status, container.drain ------------------------------------------------------- */

int md_repair_status(struct md_db *db, int64_t now, cJSON **result, char *err, size_t errlen)
{
    *result = NULL;
    sqlite3_stmt *st;
    cJSON *dr;
    cJSON *res = md__result_new("draining", &dr, err, errlen);
    if (!res)
        return DYNO_ENOMEM;
    /* One read transaction: the counts agree with each other. */
    int rc = md__begin_read(db);
    if (rc != SQLITE_OK)
        goto sql;
    rc = md__stmt(db, SQL_RP_STATUS, &st);
    if (rc != SQLITE_OK)
        goto sql;
    sqlite3_bind_int64(st, 1, now);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        dyno_json_add_i64(res, "degraded_objects", sqlite3_column_int64(st, 0));
        dyno_json_add_i64(res, "lost_fragments", sqlite3_column_int64(st, 1));
        dyno_json_add_i64(res, "leased_tasks", sqlite3_column_int64(st, 2));
        dyno_json_add_i64(res, "repaired_total", sqlite3_column_int64(st, 3));
        dyno_json_add_i64(res, "unrecoverable", sqlite3_column_int64(st, 4));
        dyno_json_add_i64(res, "garbage_fragments", sqlite3_column_int64(st, 5));
        rc = SQLITE_OK;
    }
    sqlite3_reset(st);
    if (rc != SQLITE_OK)
        goto sql;
    rc = md__stmt(db, SQL_RP_DRAINS, &st);
    if (rc != SQLITE_OK)
        goto sql;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        cJSON_AddItemToArray(dr, cJSON_CreateString(dyno_db_text(st, 0)));
    sqlite3_reset(st);
    if (rc != SQLITE_DONE)
        goto sql;
    rc = SQLITE_OK;
sql:
    return md__read_end(db, rc, res, result, err, errlen);
}

int md_repair_drain(struct md_db *db, const struct md_nodes *nodes, const char *id, int64_t now,
                    cJSON *events, cJSON **result, char *err, size_t errlen)
{
    *result = NULL;
    if (!md_nodes_find(nodes, id)) {
        snprintf(err, errlen, "no container %s", id);
        return DYNO_ENOTFOUND;
    }
    sqlite3_stmt *st;
    int rc = md__stmt(db, SQL_RP_DRAIN_ADD, &st);
    if (rc != SQLITE_OK)
        return md__sqlerr(db, rc, err, errlen);
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, now);
    rc = sqlite3_step(st);
    bool added = sqlite3_changes(sqlite3_db_handle(st)) > 0;
    sqlite3_reset(st);
    if (rc != SQLITE_DONE)
        return md__sqlerr(db, rc, err, errlen);
    int64_t count = 0;
    rc = repair__mark(db, id, "ok", "draining", events, &count);
    if (rc != SQLITE_OK)
        return md__sqlerr(db, rc, err, errlen);
    if (added)
        dyno_info("container draining", "id=%s fragments=%lld", id, (long long)count);
    cJSON *res = cJSON_CreateObject();
    if (!res) {
        snprintf(err, errlen, "out of memory");
        return DYNO_ENOMEM;
    }
    cJSON_AddStringToObject(res, "id", id);
    cJSON_AddStringToObject(res, "state", "draining");
    dyno_json_add_i64(res, "fragments", count);
    *result = res;
    return 0;
}

/* ---- gc.claim, gc.complete ---------------------------------------------------------------- */

static void repair__gc_item(cJSON *arr, const char *key, int idx, const char *container,
                            const struct md_nodes *nodes)
{
    cJSON *it = cJSON_CreateObject();
    if (!it)
        return;
    cJSON_AddStringToObject(it, "key", key);
    cJSON_AddNumberToObject(it, "index", idx);
    cJSON_AddStringToObject(it, "container", container);
    cJSON_AddStringToObject(it, "url", repair__url(nodes, container));
    cJSON_AddItemToArray(arr, it);
}

int md_repair_gc_claim(struct md_db *db, const struct md_nodes *nodes, int limit, cJSON **result, char *err,
                       size_t errlen)
{
    *result = NULL;
    sqlite3_stmt *st;
    cJSON *items;
    cJSON *res = md__result_new("items", &items, err, errlen);
    if (!res)
        return DYNO_ENOMEM;
    int got = 0;
    int rc = md__begin_read(db);
    if (rc != SQLITE_OK)
        goto sql;
    /* Fragments of deleting objects first: they free whole objects. */
    rc = md__stmt(db, SQL_GC_DELETING, &st);
    if (rc != SQLITE_OK)
        goto sql;
    while (got < limit && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *cont = dyno_db_text(st, 2);
        if (!repair__online(nodes, cont))
            continue;
        repair__gc_item(items, dyno_db_text(st, 0), sqlite3_column_int(st, 1), cont, nodes);
        got++;
    }
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        goto sql;
    for (size_t i = 0; got < limit && i < nodes->n; i++) {
        const struct md_node *nd = &nodes->v[i];
        if (!nd->online)
            continue;
        rc = md__stmt(db, SQL_GC_GARBAGE, &st);
        if (rc != SQLITE_OK)
            goto sql;
        sqlite3_bind_text(st, 1, nd->id, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 2, limit - got);
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            repair__gc_item(items, dyno_db_text(st, 0), sqlite3_column_int(st, 1), nd->id, nodes);
            got++;
        }
        sqlite3_reset(st);
        if (rc != SQLITE_DONE)
            goto sql;
    }
    rc = SQLITE_OK;
sql:
    return md__read_end(db, rc, res, result, err, errlen);
}

static int repair__gc_drop(struct md_db *db, const char *sql, const struct md_gc_item *it, int *changed)
{
    sqlite3_stmt *st;
    int rc = md__stmt(db, sql, &st);
    if (rc != SQLITE_OK)
        return rc;
    sqlite3_bind_text(st, 1, it->key, -1, SQLITE_STATIC);
    if (sqlite3_bind_parameter_count(st) >= 3) {
        sqlite3_bind_int(st, 2, it->index);
        sqlite3_bind_text(st, 3, it->container, -1, SQLITE_STATIC);
    }
    rc = sqlite3_step(st);
    *changed = sqlite3_changes(sqlite3_db_handle(st));
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

int md_repair_gc_complete(struct md_db *db, const struct md_gc_item *items, size_t n, cJSON **result,
                          char *err, size_t errlen)
{
    *result = NULL;
    int64_t removed = 0, objs = 0;
    int ch = 0;
    int rc = md__begin(db);
    for (size_t i = 0; rc == SQLITE_OK && i < n; i++) {
        if (!items[i].ok)
            continue;
        rc = repair__gc_drop(db, SQL_GC_DROP_GARBAGE, &items[i], &ch);
        removed += rc == SQLITE_OK ? ch : 0;
        if (rc == SQLITE_OK)
            rc = repair__gc_drop(db, SQL_GC_DROP_FRAG, &items[i], &ch);
        removed += rc == SQLITE_OK ? ch : 0;
        if (rc == SQLITE_OK)
            rc = repair__gc_drop(db, SQL_GC_DROP_MISSING, &items[i], &ch);
        if (rc == SQLITE_OK)
            rc = repair__gc_drop(db, SQL_GC_DROP_OBJ, &items[i], &ch);
        objs += rc == SQLITE_OK ? ch : 0;
    }
    int ret = md__finish(db, 0, rc, err, errlen);
    if (ret != 0)
        return ret;
    cJSON *res = cJSON_CreateObject();
    if (!res) {
        snprintf(err, errlen, "out of memory");
        return DYNO_ENOMEM;
    }
    dyno_json_add_i64(res, "removed", removed);
    dyno_json_add_i64(res, "objects_removed", objs);
    *result = res;
    return 0;
}

/* ---- object.restore ----------------------------------------------------------------------- */

static void repair__conflict(cJSON *arr, const char *key, const struct md_restore_obj *o, const char *kept)
{
    cJSON *c = cJSON_CreateObject();
    if (!c)
        return;
    cJSON_AddStringToObject(c, "key", key);
    cJSON_AddStringToObject(c, "catalog", o->catalog);
    cJSON_AddStringToObject(c, "name", o->name);
    cJSON_AddStringToObject(c, "kept", kept);
    cJSON_AddItemToArray(arr, c);
}

static int repair__restore_one(struct md_db *db, const struct md_restore_obj *o, int64_t now, cJSON *restored,
                               cJSON *skipped, cJSON *conflicts)
{
    sqlite3_stmt *st;
    int rc = md__stmt(db, SQL_RS_EXISTS, &st);
    if (rc != SQLITE_OK)
        return rc;
    sqlite3_bind_text(st, 1, o->key, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc == SQLITE_ROW) {
        cJSON_AddItemToArray(skipped, cJSON_CreateString(o->key));
        return SQLITE_OK;
    }
    if (rc != SQLITE_DONE)
        return rc;
    rc = md__stmt(db, SQL_RS_SAME_NAME, &st);
    if (rc != SQLITE_OK)
        return rc;
    sqlite3_bind_text(st, 1, o->catalog, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, o->name, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    char other[DYNO_KEY_LEN + 1] = "";
    bool other_put = false;
    if (rc == SQLITE_ROW) {
        snprintf(other, sizeof(other), "%s", dyno_db_text(st, 0));
        other_put = sqlite3_column_int(st, 1) != 0;
    }
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return rc;
    if (other[0]) {
        /* A put's object is the truth; between restored ones the greater key wins. */
        if (other_put || strcmp(other, o->key) > 0) {
            repair__conflict(conflicts, o->key, o, other);
            return SQLITE_OK;
        }
        rc = md__run_key(db, SQL_RS_DROP_FRAGS, other, 0, NULL);
        if (rc == SQLITE_OK)
            rc = md__run_key(db, SQL_RS_DROP_OBJ, other, 0, NULL);
        if (rc == SQLITE_OK)
            rc = md__run_key(db, SQL_RP_DROP, other, 0, NULL);
        if (rc != SQLITE_OK)
            return rc;
        repair__conflict(conflicts, other, o, o->key);
    }
    int n = o->replica ? o->m + 1 : o->k + o->m;
    bool have[RP_FRAGS_MAX] = {false};
    for (size_t i = 0; i < o->nfrags; i++)
        have[o->frags[i].index] = true;
    bool all = true;
    for (int i = 0; i < n; i++)
        all = all && have[i];
    rc = md__stmt(db, SQL_RS_INSERT, &st);
    if (rc != SQLITE_OK)
        return rc;
    sqlite3_bind_text(st, 1, o->key, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, o->catalog, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, o->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, o->owner, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, o->size);
    sqlite3_bind_text(st, 6, o->sha256, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 7, o->replica ? 1 : o->k);
    sqlite3_bind_int(st, 8, o->m);
    sqlite3_bind_int(st, 9, o->replica ? 1 : 0);
    sqlite3_bind_int64(st, 10, o->unit);
    sqlite3_bind_text(st, 11, all ? "committed" : "degraded", -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 12, now);
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE)
        return rc;
    struct dyno_layout lay = {.size = (uint64_t)o->size, .unit = o->unit, .k = o->replica ? 1 : o->k};
    int64_t fsize = (int64_t)dyno_layout_fragment_size(&lay);
    rc = md__stmt(db, SQL_RS_FRAG, &st);
    if (rc != SQLITE_OK)
        return rc;
    for (int i = 0; i < n; i++) {
        const struct md_restore_frag *f = NULL;
        for (size_t j = 0; j < o->nfrags && !f; j++)
            if (o->frags[j].index == i)
                f = &o->frags[j];
        sqlite3_reset(st);
        sqlite3_bind_text(st, 1, o->key, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 2, i);
        sqlite3_bind_text(st, 3, f ? f->container : "", -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 4, f ? (f->size >= 0 ? f->size : fsize) : 0);
        sqlite3_bind_text(st, 5, f ? "ok" : "missing", -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
        if (rc != SQLITE_DONE) {
            sqlite3_reset(st);
            return rc;
        }
    }
    sqlite3_reset(st);
    cJSON_AddItemToArray(restored, cJSON_CreateString(o->key));
    return SQLITE_OK;
}

int md_repair_restore(struct md_db *db, const struct md_restore_obj *objs, size_t n, int64_t now,
                      cJSON **result, char *err, size_t errlen)
{
    *result = NULL;
    cJSON *res = cJSON_CreateObject();
    cJSON *restored = cJSON_AddArrayToObject(res, "restored");
    cJSON *skipped = cJSON_AddArrayToObject(res, "skipped");
    cJSON *conflicts = cJSON_AddArrayToObject(res, "conflicts");
    if (!res || !restored || !skipped || !conflicts) {
        cJSON_Delete(res);
        snprintf(err, errlen, "out of memory");
        return DYNO_ENOMEM;
    }
    int rc = md__begin(db);
    for (size_t i = 0; rc == SQLITE_OK && i < n; i++)
        rc = repair__restore_one(db, &objs[i], now, restored, skipped, conflicts);
    int ret = md__finish(db, 0, rc, err, errlen);
    if (ret != 0) {
        cJSON_Delete(res);
        return ret;
    }
    if (cJSON_GetArraySize(restored) > 0)
        dyno_info("objects restored", "restored=%d skipped=%d conflicts=%d", cJSON_GetArraySize(restored),
                  cJSON_GetArraySize(skipped), cJSON_GetArraySize(conflicts));
    *result = res;
    return 0;
}
