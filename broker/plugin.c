/*
 * dyno_auth: the mosquitto 2.0 plugin (API version 5) that logs clients in with DynoStore
 * tokens and applies the catalog access policy (SPEC §7, protocol.md §7, lib/acl.h).
 *
 *   plugin /path/to/dyno_auth.so
 *   plugin_opt_public_key_file /path/to/auth.pub      (required: the Ed25519 public key)
 *   plugin_opt_ingest_max 262144                      (largest user PUBLISH payload, bytes;
 *                                                      default PLUGIN_INGEST_MAX_DEFAULT)
 *   plugin_opt_revoked_file /path/revoked.json        (optional: the last applied revocation
 *                                                      document, kept across broker restarts)
 *   plugin_opt_bridge_client_id bridge-site-2          (optional, a site broker's: the local client
 *                                                      id of its bridge to the core broker)
 *
 * A site broker (docs/architecture.md, "A broker per site") runs this plugin too and reaches the
 * core broker through mosquitto's own bridge. mosquitto neither authenticates nor ACL-checks
 * its bridge's local context (it is the broker's own outgoing connection), so the policy and
 * revocation feeds the bridge brings in from the core would reach MESSAGE from a context the
 * plugin never saw log in. With bridge_client_id, a message from that context (and only one
 * the plugin has no login for: no client may log in with that id) is taken as a service's:
 * the site's table follows the core's feeds, and keeps the last ones while the link is cut.
 *
 * A thin adapter: the policy lives in lib/acl.c, tokens in lib/token.c. Every callback runs
 * on the broker's single thread, answers from memory and never blocks; nothing is written
 * but log lines, and tokens are never logged.
 *
 *   BASIC_AUTH  client id and username: lib/acl.h dyno_acl_valid_client_id(); the password
 *               is a token that verifies offline (signature, expiry, not revoked); a "user"
 *               token's sub must equal the username, a "service" token may use any
 *               "<kind>-<id>" username. A user may neither be named nor use a client id
 *               that is reserved for the services (lib/token.h dyno_token_sub_reserved:
 *               "service", "container-...", "gateway-...", "metadata-...", "pubsub-...",
 *               "auth-..."): those are the services' sessions and reply topics. Until a
 *               revocation document has been applied since the broker started, user
 *               logins are refused (fail closed); service logins are not, so dyno-auth
 *               can log in and publish it (retained, on every connect). With
 *               revoked_file, the document applied last is written there (atomically,
 *               fsync'd, before the publisher's PUBACK) and applied again at start, so a
 *               broker restarted while dyno-auth is down still knows every revocation
 *               dyno-auth reported as done (a revocation it could not publish was
 *               reported as failed) and serves users. A client id held by a
 *               connected client of another principal is refused (no takeover of a
 *               service's or another user's connection). The client is remembered by
 *               client id, with the context pointer, its claims (principal, jti, exp).
 *   ACL_CHECK   SUBSCRIBE / READ / WRITE go to dyno_acl_table_check_topic(); UNSUBSCRIBE is
 *               allowed to known clients; unknown, expired or revoked clients are denied,
 *               and so are users while the revocation state is unknown. A user's WRITE
 *               with the retain flag, or of more than ingest_max bytes, is denied: the
 *               broker would keep it (and persist it) forever. Every delivery is checked
 *               by READ on the current table, so a subscription that a policy change no
 *               longer allows receives nothing more.
 *   MESSAGE     from a service: dyno/v1/acl/<catalog> updates the policy table (a policy
 *               that does not parse removes the catalog: denied, never the older policy);
 *               dyno/v1/auth/revoked replaces the revocation state (lib/token.h; one that
 *               does not parse makes it unknown: users denied; connected holders of a
 *               revoked token are kicked on the next tick). From a user on dyno/v1/ingest/...: every
 *               "dyno-user", "dyno-org" and "dyno-admin" user property (any letter case)
 *               is removed and the stamps dyno-user = the authenticated username,
 *               dyno-org = the token's org ("" when none) and dyno-admin = "true"|"false"
 *               are added, so the gateway decides write access for the same principal as
 *               the ACL check; a Response Topic outside dyno/v1/reply/<username> drops
 *               the message.
 *   DISCONNECT  the client is marked gone (its Will is checked right after this event;
 *               only a service's Will may still be published); gone entries are dropped
 *               PLUGIN_GONE_GRACE seconds later, except a service's: messages for its
 *               persistent session are still queued while it is away (READ allowed unless
 *               its token was revoked or it was kicked). Wills with a delay interval are
 *               therefore denied: agents publish their Wills without delay (lib/mq.c).
 *   TICK        once a second: kicks clients whose token expired or was revoked.
 *   $SYS        services may subscribe to and read $SYS/broker/...: the operator's (and the
 *               tests') view of the broker's counters, e.g. what a site broker's bridge queue
 *               dropped ($SYS/broker/publish/messages/dropped) and the bridge's state.
 *
 * The policy table is fed only by retained messages published while the plugin runs:
 * after a broker restart the table is empty until dyno-pubsub republishes every catalog
 * (it does on every connect), so users are denied until then, never wrongly allowed.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>
#include <mqtt_protocol.h>

#include "acl.h"
#include "config.h"
#include "dynostore/error.h"
#include "token.h"

#define PLUGIN_API_VERSION 5
#define PLUGIN_USER_PROP "dyno-user" /* the stamps on a user's ingest message (see the header) */
#define PLUGIN_ORG_PROP "dyno-org"
#define PLUGIN_ADMIN_PROP "dyno-admin"
#define PLUGIN_GONE_GRACE 2                    /* seconds a disconnected client is kept for its Will */
#define PLUGIN_INGEST_MAX_DEFAULT (256 * 1024) /* the gateway's default ingest_max */
#define PLUGIN_LOG "dyno_auth: "
#define PLUGIN_SYS_TOPIC "$SYS/broker/" /* what services may read of the broker's own topics */

_Static_assert(sizeof(((struct dyno_claims *)0)->org) == DYNO_ACL_ORG_MAX + 1, "org size");

struct plugin_client {
    char id[DYNO_ACL_CLIENT_ID_MAX + 1];
    const struct mosquitto *client; /* the context that logged in with this id */
    struct dyno_claims claims;
    bool service;
    bool gone;
    bool kicked; /* gone because its token expired or was revoked */
    time_t gone_at;
};

struct plugin {
    mosquitto_plugin_id_t *pid;
    struct dyno_verifier *verifier;
    struct dyno_acl_table *table;
    struct plugin_client **clients; /* sorted by id */
    size_t nclients, capclients;
    time_t last_sweep;
    bool sweep_now;      /* the revoked set changed: sweep on the next tick */
    uint32_t ingest_max; /* largest payload a user may publish */
    char *revoked_file;  /* NULL: the revocation document is not kept across restarts */
    char *bridge_id;     /* NULL: no bridge; else the local client id of the site's bridge */
};

/* ---- the client table ---------------------------------------------------------------------- */

static size_t plugin_client_find(const struct plugin *pl, const char *id, bool *found)
{
    return dyno_name_search_ptr((const void *const *)pl->clients, pl->nclients,
                                offsetof(struct plugin_client, id), id, found);
}

/* The entry of this very context, or NULL (unknown, or its id was taken over since). */
static struct plugin_client *plugin_client_get(const struct plugin *pl, const struct mosquitto *client)
{
    const char *id = mosquitto_client_id(client);
    bool found;

    if (id == NULL || !dyno_acl_valid_client_id(id))
        return NULL;
    size_t at = plugin_client_find(pl, id, &found);
    if (!found || pl->clients[at]->client != client)
        return NULL;
    return pl->clients[at];
}

/* Records (or replaces) the login of client under id. 0 or DYNO_ENOMEM. */
static int plugin_client_put(struct plugin *pl, const char *id, const struct mosquitto *client,
                             const struct dyno_claims *claims)
{
    struct plugin_client *c;
    bool found;
    size_t at = plugin_client_find(pl, id, &found);

    if (found) {
        c = pl->clients[at];
    } else {
        if (pl->nclients == pl->capclients) {
            size_t ncap = pl->capclients == 0 ? 64 : pl->capclients * 2;
            struct plugin_client **nv = realloc(pl->clients, ncap * sizeof(*nv));
            if (nv == NULL)
                return DYNO_ENOMEM;
            pl->clients = nv;
            pl->capclients = ncap;
        }
        c = calloc(1, sizeof(*c));
        if (c == NULL)
            return DYNO_ENOMEM;
        memmove(&pl->clients[at + 1], &pl->clients[at], (pl->nclients - at) * sizeof(pl->clients[0]));
        pl->clients[at] = c;
        pl->nclients++;
    }
    memset(c, 0, sizeof(*c));
    memcpy(c->id, id, strlen(id) + 1); /* id is a valid client id: <= DYNO_ACL_CLIENT_ID_MAX */
    c->client = client;
    c->claims = *claims;
    c->service = strcmp(claims->role, "service") == 0;
    return 0;
}

/*
 * True when a connected client of another principal (another sub, or user vs service)
 * holds id: logging in would take over its connection and session, so a user could kick a
 * service or another user. The same principal may take its own id over (a reconnect).
 */
static bool plugin_client_taken(const struct plugin *pl, const char *id, const struct dyno_claims *claims)
{
    bool found;
    size_t at = plugin_client_find(pl, id, &found);

    if (!found || pl->clients[at]->gone)
        return false;
    const struct plugin_client *c = pl->clients[at];
    return c->service != (strcmp(claims->role, "service") == 0) || strcmp(c->claims.sub, claims->sub) != 0;
}

static void plugin_principal(const struct plugin_client *c, struct dyno_acl_principal *who)
{
    who->sub = c->claims.sub;
    who->org = c->claims.org;
    who->admin = c->claims.admin;
    who->service = c->service;
}

/* ---- callbacks ------------------------------------------------------------------------------ */

static int plugin_on_basic_auth(int event, void *event_data, void *userdata)
{
    struct plugin *pl = userdata;
    struct mosquitto_evt_basic_auth *ed = event_data;
    const char *id = mosquitto_client_id(ed->client);
    const char *addr = mosquitto_client_address(ed->client);
    struct dyno_claims claims;
    size_t plen;
    int rc;

    (void)event;
    if (addr == NULL)
        addr = "?";
    /* Nothing from the client is logged before it is validated. */
    if (!dyno_acl_valid_client_id(id) || !dyno_acl_valid_client_id(ed->username)) {
        mosquitto_log_printf(MOSQ_LOG_NOTICE, PLUGIN_LOG "refused %s: bad client id or username", addr);
        return MOSQ_ERR_AUTH;
    }
    if (pl->bridge_id != NULL && strcmp(id, pl->bridge_id) == 0) {
        /* A login with it would take the bridge's session over, and its messages the feeds. */
        mosquitto_log_printf(MOSQ_LOG_NOTICE, PLUGIN_LOG "refused %s (%s): the bridge's client id",
                             ed->username, id);
        return MOSQ_ERR_AUTH;
    }
    plen = ed->password != NULL ? strnlen(ed->password, DYNO_TOKEN_MAX + 1) : 0;
    rc = plen == 0 || plen > DYNO_TOKEN_MAX
             ? DYNO_EUNAUTH
             : dyno_token_verify(pl->verifier, ed->password, (int64_t)time(NULL), &claims);
    if (rc == DYNO_EUNAVAIL) {
        mosquitto_log_printf(MOSQ_LOG_NOTICE,
                             PLUGIN_LOG "refused %s (%s): no revocation list received since start yet",
                             ed->username, id);
        return MOSQ_ERR_AUTH;
    }
    if (rc != 0) {
        mosquitto_log_printf(MOSQ_LOG_NOTICE,
                             PLUGIN_LOG "refused %s (%s): bad, expired or revoked token, or reserved name",
                             ed->username, id);
        return MOSQ_ERR_AUTH;
    }
    if (strcmp(claims.role, "service") == 0) {
        if (!dyno_acl_valid_service_name(ed->username)) {
            mosquitto_log_printf(MOSQ_LOG_NOTICE,
                                 PLUGIN_LOG "refused service %s (%s): username is not <kind>-<id>",
                                 ed->username, id);
            return MOSQ_ERR_AUTH;
        }
    } else if (strcmp(claims.sub, ed->username) != 0) {
        mosquitto_log_printf(MOSQ_LOG_NOTICE, PLUGIN_LOG "refused %s (%s): token is not for this user",
                             ed->username, id);
        return MOSQ_ERR_AUTH;
    } else if (dyno_token_sub_reserved(id)) {
        mosquitto_log_printf(MOSQ_LOG_NOTICE, PLUGIN_LOG "refused %s (%s): client id reserved for services",
                             ed->username, id);
        return MOSQ_ERR_AUTH;
    }
    if (plugin_client_taken(pl, id, &claims)) {
        mosquitto_log_printf(MOSQ_LOG_NOTICE,
                             PLUGIN_LOG "refused %s (%s): client id in use by another principal",
                             ed->username, id);
        return MOSQ_ERR_AUTH;
    }
    if (plugin_client_put(pl, id, ed->client, &claims) != 0) {
        mosquitto_log_printf(MOSQ_LOG_ERR, PLUGIN_LOG "refused %s (%s): out of memory", ed->username, id);
        return MOSQ_ERR_AUTH;
    }
    mosquitto_log_printf(MOSQ_LOG_INFO, PLUGIN_LOG "login %s (%s) role=%s jti=%s", ed->username, id,
                         claims.role, claims.jti);
    return MOSQ_ERR_SUCCESS;
}

static int plugin_on_acl_check(int event, void *event_data, void *userdata)
{
    struct plugin *pl = userdata;
    struct mosquitto_evt_acl_check *ed = event_data;
    struct plugin_client *c = plugin_client_get(pl, ed->client);
    struct dyno_acl_principal who;
    enum dyno_acl_op op;

    (void)event;
    if (c == NULL)
        return MOSQ_ERR_ACL_DENIED;
    if (c->gone) {
        /* Only a service survives its disconnect: its Will, and the messages its persistent
         * session queues while it is away (the gateway's ingest sessions: readings the
         * broker acknowledged wait for the gateway instead of being dropped here). Not
         * once its token expired or was revoked, or it was kicked. */
        bool will = ed->access == MOSQ_ACL_WRITE;
        bool queued = ed->access == MOSQ_ACL_READ && !c->kicked &&
                      dyno_verifier_check(pl->verifier, &c->claims, (int64_t)time(NULL)) == 0;
        if (!c->service || !(will || queued))
            return MOSQ_ERR_ACL_DENIED;
    } else if (dyno_verifier_check(pl->verifier, &c->claims, (int64_t)time(NULL)) != 0) {
        return MOSQ_ERR_ACL_DENIED; /* expired, revoked, or revocations unknown for a user */
    }
    if (!c->service && ed->access == MOSQ_ACL_WRITE && (ed->retain || ed->payloadlen > pl->ingest_max))
        return MOSQ_ERR_ACL_DENIED;
    if (c->service && !c->gone && (ed->access == MOSQ_ACL_SUBSCRIBE || ed->access == MOSQ_ACL_READ) &&
        strncmp(ed->topic, PLUGIN_SYS_TOPIC, sizeof(PLUGIN_SYS_TOPIC) - 1) == 0)
        return MOSQ_ERR_SUCCESS; /* counters and the bridge's state, read-only (see the header) */
    switch (ed->access) {
    case MOSQ_ACL_SUBSCRIBE:
        op = DYNO_ACL_OP_SUBSCRIBE;
        break;
    case MOSQ_ACL_READ:
        op = DYNO_ACL_OP_READ;
        break;
    case MOSQ_ACL_WRITE:
        op = DYNO_ACL_OP_WRITE;
        break;
    case MOSQ_ACL_UNSUBSCRIBE:
        return MOSQ_ERR_SUCCESS; /* dropping a subscription never reveals anything */
    default:
        return MOSQ_ERR_ACL_DENIED;
    }
    plugin_principal(c, &who);
    return dyno_acl_table_check_topic(pl->table, &who, ed->topic, op) == DYNO_ACL_ALLOW ? MOSQ_ERR_SUCCESS
                                                                                        : MOSQ_ERR_ACL_DENIED;
}

/* Appends a copy of property p (identifier id) to *out. MOSQ_ERR_*. */
static int plugin_copy_property(mosquitto_property **out, const mosquitto_property *p, int id)
{
    int ident, type, rc;
    uint8_t u8;
    uint16_t u16;
    uint32_t u32;
    void *bin = NULL;
    char *str = NULL;

    if (mosquitto_string_to_property_info(mosquitto_property_identifier_to_string(id), &ident, &type) != 0)
        return MOSQ_ERR_INVAL;
    switch (type) {
    case MQTT_PROP_TYPE_BYTE:
        if (mosquitto_property_read_byte(p, id, &u8, false) == NULL)
            return MOSQ_ERR_INVAL;
        return mosquitto_property_add_byte(out, id, u8);
    case MQTT_PROP_TYPE_INT16:
        if (mosquitto_property_read_int16(p, id, &u16, false) == NULL)
            return MOSQ_ERR_INVAL;
        return mosquitto_property_add_int16(out, id, u16);
    case MQTT_PROP_TYPE_INT32:
        if (mosquitto_property_read_int32(p, id, &u32, false) == NULL)
            return MOSQ_ERR_INVAL;
        return mosquitto_property_add_int32(out, id, u32);
    case MQTT_PROP_TYPE_VARINT:
        if (mosquitto_property_read_varint(p, id, &u32, false) == NULL)
            return MOSQ_ERR_INVAL;
        return mosquitto_property_add_varint(out, id, u32);
    case MQTT_PROP_TYPE_BINARY:
        if (mosquitto_property_read_binary(p, id, &bin, &u16, false) == NULL)
            return MOSQ_ERR_INVAL;
        rc = mosquitto_property_add_binary(out, id, bin, u16);
        mosquitto_free(bin);
        return rc;
    case MQTT_PROP_TYPE_STRING:
        if (mosquitto_property_read_string(p, id, &str, false) == NULL)
            return MOSQ_ERR_INVAL;
        rc = mosquitto_property_add_string(out, id, str);
        mosquitto_free(str);
        return rc;
    default:
        return MOSQ_ERR_INVAL; /* string pairs are handled by the caller */
    }
}

/* One user property the plugin stamps: name and value, both borrowed. */
struct plugin_stamp {
    const char *name;
    const char *value;
};

/* True when name is one of the n stamp names, in any letter case. */
static bool plugin_is_stamp(const char *name, const struct plugin_stamp *stamps, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (strcasecmp(name, stamps[i].name) == 0)
            return true;
    }
    return false;
}

/*
 * Rebuilds *props without any user property named like one of the n stamps (in any letter
 * case) and with each stamp added once, in order; the old list is freed and replaced only
 * on success. MOSQ_ERR_*.
 */
static int plugin_stamp(mosquitto_property **props, const struct plugin_stamp *stamps, size_t n)
{
    mosquitto_property *out = NULL;
    int rc = MOSQ_ERR_SUCCESS;

    for (const mosquitto_property *p = *props; p != NULL; p = mosquitto_property_next(p)) {
        int id = mosquitto_property_identifier(p);
        if (id == MQTT_PROP_USER_PROPERTY) {
            char *name = NULL, *value = NULL;
            if (mosquitto_property_read_string_pair(p, id, &name, &value, false) == NULL) {
                rc = MOSQ_ERR_INVAL;
                goto out;
            }
            if (!plugin_is_stamp(name, stamps, n))
                rc = mosquitto_property_add_string_pair(&out, id, name, value);
            mosquitto_free(name);
            mosquitto_free(value);
        } else {
            rc = plugin_copy_property(&out, p, id);
        }
        if (rc != MOSQ_ERR_SUCCESS)
            goto out;
    }
    for (size_t i = 0; i < n; i++) {
        rc = mosquitto_property_add_string_pair(&out, MQTT_PROP_USER_PROPERTY, stamps[i].name,
                                                stamps[i].value);
        if (rc != MOSQ_ERR_SUCCESS)
            goto out;
    }
    mosquitto_property_free_all(props);
    *props = out;
    out = NULL;
out:
    mosquitto_property_free_all(&out);
    return rc;
}

/* A user's Response Topic on ingest must be in their own reply tree. */
static bool plugin_response_topic_ok(struct plugin *pl, const mosquitto_property *props,
                                     const struct dyno_acl_principal *who)
{
    char *rt = NULL;
    bool ok;

    if (mosquitto_property_read_string(props, MQTT_PROP_RESPONSE_TOPIC, &rt, false) == NULL)
        return true;
    ok = strncmp(rt, DYNO_ACL_TOPIC_REPLY, sizeof(DYNO_ACL_TOPIC_REPLY) - 1) == 0 &&
         dyno_acl_table_check_topic(pl->table, who, rt, DYNO_ACL_OP_READ) == DYNO_ACL_ALLOW;
    mosquitto_free(rt);
    return ok;
}

static void plugin_on_revoked(struct plugin *pl, const void *payload, size_t len)
{
    size_t njtis = 0, nepochs = 0;
    int rc;

    if (len == 0)
        return; /* the retained document was cleared: nothing new is known */
    rc = dyno_verifier_apply_revoked(pl->verifier, payload, len, &njtis, &nepochs);
    if (rc != 0) {
        mosquitto_log_printf(MOSQ_LOG_ERR,
                             PLUGIN_LOG "revocation document refused (%s): users denied until a good one",
                             dyno_strerror(rc));
        return;
    }
    pl->sweep_now = true;
    mosquitto_log_printf(MOSQ_LOG_INFO, PLUGIN_LOG "revocation document applied: %zu revoked, %zu epochs",
                         njtis, nepochs);
    /* A few hundred KiB at most (dyno-auth's revoked_doc_max), and revocations are
     * rate-limited per user: a short synchronous write on the broker thread. */
    if (pl->revoked_file != NULL && (rc = dyno_write_file(pl->revoked_file, payload, len, 0600)) != 0)
        mosquitto_log_printf(MOSQ_LOG_ERR, PLUGIN_LOG "cannot keep the revocation document in %s: %s",
                             pl->revoked_file, dyno_strerror(rc));
}

/* At start: the document kept in revoked_file, if any. Unfed when there is none or it does
 * not parse (then users wait for dyno-auth's next publication). */
static void plugin_load_revoked(struct plugin *pl)
{
    char *doc = NULL;
    size_t len = 0, njtis = 0, nepochs = 0;
    int rc = dyno_read_file(pl->revoked_file, DYNO_REVOKED_DOC_MAX, &doc, &len);

    if (rc == 0)
        rc = dyno_verifier_apply_revoked(pl->verifier, doc, len, &njtis, &nepochs);
    free(doc);
    if (rc == 0)
        mosquitto_log_printf(MOSQ_LOG_INFO,
                             PLUGIN_LOG "revocation document of %s applied: %zu revoked, %zu epochs",
                             pl->revoked_file, njtis, nepochs);
    else if (rc == DYNO_ENOTFOUND)
        mosquitto_log_printf(MOSQ_LOG_INFO, PLUGIN_LOG "no revocation document kept yet in %s",
                             pl->revoked_file);
    else
        mosquitto_log_printf(MOSQ_LOG_ERR, PLUGIN_LOG "revocation document of %s not usable (%s): users wait",
                             pl->revoked_file, dyno_strerror(rc));
}

/* True for the site's bridge to the core broker: the context with the configured bridge id
 * that never logged in here (the plugin refuses that id to every login). */
static bool plugin_is_bridge(const struct plugin *pl, const struct mosquitto *client)
{
    const char *id = mosquitto_client_id(client);

    return pl->bridge_id != NULL && id != NULL && strcmp(id, pl->bridge_id) == 0 &&
           plugin_client_get(pl, client) == NULL;
}

static int plugin_on_message(int event, void *event_data, void *userdata)
{
    struct plugin *pl = userdata;
    struct mosquitto_evt_message *ed = event_data;
    struct plugin_client *c = plugin_client_get(pl, ed->client);
    struct dyno_acl_principal who;
    int rc;

    (void)event;
    if (ed->topic == NULL)
        return MOSQ_ERR_SUCCESS;
    if (c == NULL && !plugin_is_bridge(pl, ed->client))
        return MOSQ_ERR_SUCCESS; /* the ACL check already decided; nothing to stamp or apply */
    if (c == NULL || c->service) {
        if (strncmp(ed->topic, DYNO_ACL_TOPIC_ACL, sizeof(DYNO_ACL_TOPIC_ACL) - 1) == 0) {
            rc = dyno_acl_table_apply(pl->table, ed->topic, ed->payload, ed->payloadlen);
            if (rc != 0) {
                /* Fail closed: the older policy may be wider than the one we could not read. */
                const char *catalog = ed->topic + sizeof(DYNO_ACL_TOPIC_ACL) - 1;
                bool removed = dyno_acl_table_remove(pl->table, catalog) == 0;
                mosquitto_log_printf(MOSQ_LOG_WARNING, PLUGIN_LOG "policy from %s refused (%s)%s",
                                     c != NULL ? c->id : pl->bridge_id, dyno_strerror(rc),
                                     removed ? ": catalog denied until a good one" : "");
            }
        } else if (strcmp(ed->topic, DYNO_ACL_TOPIC_REVOKED) == 0) {
            plugin_on_revoked(pl, ed->payload, ed->payloadlen);
        }
        return MOSQ_ERR_SUCCESS;
    }
    if (strncmp(ed->topic, DYNO_ACL_TOPIC_INGEST, sizeof(DYNO_ACL_TOPIC_INGEST) - 1) != 0)
        return MOSQ_ERR_SUCCESS;
    plugin_principal(c, &who);
    if (!plugin_response_topic_ok(pl, ed->properties, &who)) {
        mosquitto_log_printf(MOSQ_LOG_NOTICE,
                             PLUGIN_LOG "dropped ingest from %s: response topic outside %s%s", c->claims.sub,
                             DYNO_ACL_TOPIC_REPLY, c->claims.sub);
        return MOSQ_ERR_ACL_DENIED;
    }
    /* Never let an ingest message through without the stamps: the principal of the ACL
     * check, so the gateway decides for the same user, org and admin flag. */
    const struct plugin_stamp stamps[] = {
        {PLUGIN_USER_PROP, who.sub},
        {PLUGIN_ORG_PROP, who.org},
        {PLUGIN_ADMIN_PROP, who.admin ? "true" : "false"},
    };
    rc = plugin_stamp(&ed->properties, stamps, sizeof(stamps) / sizeof(stamps[0]));
    if (rc != MOSQ_ERR_SUCCESS) {
        mosquitto_log_printf(MOSQ_LOG_WARNING, PLUGIN_LOG "dropped ingest from %s: cannot stamp (%d)",
                             c->claims.sub, rc);
        return MOSQ_ERR_ACL_DENIED;
    }
    return MOSQ_ERR_SUCCESS;
}

static int plugin_on_disconnect(int event, void *event_data, void *userdata)
{
    struct plugin *pl = userdata;
    struct mosquitto_evt_disconnect *ed = event_data;
    struct plugin_client *c = plugin_client_get(pl, ed->client);

    (void)event;
    /* Marked, not removed: the broker checks the Will after this event, and a kick from the
     * tick sweep lands here while the sweep still walks the table. */
    if (c != NULL && !c->gone) {
        c->gone = true;
        c->gone_at = time(NULL);
    }
    return MOSQ_ERR_SUCCESS;
}

/* Kicks expired and revoked clients, then drops gone entries past their grace. */
static void plugin_sweep(struct plugin *pl, time_t now)
{
    char(*kick)[DYNO_ACL_CLIENT_ID_MAX + 1] = NULL;
    size_t nkick = 0, w = 0;

    if (pl->nclients > 0)
        kick = calloc(pl->nclients, sizeof(*kick));
    for (size_t i = 0; i < pl->nclients; i++) {
        struct plugin_client *c = pl->clients[i];
        /* Not for an unknown revocation state (EUNAVAIL): the ACL check denies meanwhile. */
        if (!c->gone && dyno_verifier_check(pl->verifier, &c->claims, (int64_t)now) == DYNO_EUNAUTH) {
            c->gone = true; /* denied from now on, kicked below */
            c->kicked = true;
            c->gone_at = now;
            if (kick != NULL)
                memcpy(kick[nkick++], c->id, sizeof(c->id));
        }
    }
    for (size_t i = 0; i < pl->nclients; i++) {
        struct plugin_client *c = pl->clients[i];
        /* A service's entry stays while it is away (see plugin_on_acl_check): there are
         * only as many as the services' client ids, and the next login replaces it. */
        if (c->gone && (!c->service || c->kicked) && now - c->gone_at >= PLUGIN_GONE_GRACE)
            free(c);
        else
            pl->clients[w++] = c;
    }
    pl->nclients = w;
    /* Kicking calls plugin_on_disconnect, so it comes after the table walk. */
    for (size_t i = 0; i < nkick; i++) {
        mosquitto_log_printf(MOSQ_LOG_NOTICE, PLUGIN_LOG "kicking %s: token expired or revoked", kick[i]);
        mosquitto_kick_client_by_clientid(kick[i], false);
    }
    free(kick);
}

static int plugin_on_tick(int event, void *event_data, void *userdata)
{
    struct plugin *pl = userdata;
    time_t now = time(NULL);

    (void)event;
    (void)event_data;
    if (pl->sweep_now || now != pl->last_sweep) {
        pl->sweep_now = false;
        pl->last_sweep = now;
        plugin_sweep(pl, now);
    }
    return MOSQ_ERR_SUCCESS;
}

/* ---- life cycle ----------------------------------------------------------------------------- */

static const struct {
    int event;
    MOSQ_FUNC_generic_callback cb;
} plugin_events[] = {
    {MOSQ_EVT_BASIC_AUTH, plugin_on_basic_auth},
    {MOSQ_EVT_ACL_CHECK, plugin_on_acl_check},
    {MOSQ_EVT_MESSAGE, plugin_on_message},
    {MOSQ_EVT_DISCONNECT, plugin_on_disconnect},
    {MOSQ_EVT_TICK, plugin_on_tick},
};

static void plugin_free(struct plugin *pl)
{
    if (pl == NULL)
        return;
    for (size_t i = 0; i < pl->nclients; i++)
        free(pl->clients[i]);
    free(pl->clients);
    dyno_acl_table_free(pl->table);
    dyno_verifier_free(pl->verifier);
    free(pl->revoked_file);
    free(pl->bridge_id);
    free(pl);
}

int mosquitto_plugin_version(int supported_version_count, const int *supported_versions)
{
    for (int i = 0; i < supported_version_count; i++) {
        if (supported_versions[i] == PLUGIN_API_VERSION)
            return PLUGIN_API_VERSION;
    }
    return -1;
}

int mosquitto_plugin_init(mosquitto_plugin_id_t *identifier, void **userdata, struct mosquitto_opt *options,
                          int option_count)
{
    struct plugin *pl = NULL;
    const char *pub = NULL, *revoked_file = NULL, *bridge_id = NULL;
    size_t registered = 0;
    int rc = MOSQ_ERR_INVAL;

    uint32_t ingest_max = PLUGIN_INGEST_MAX_DEFAULT;

    for (int i = 0; i < option_count; i++) {
        if (strcmp(options[i].key, "public_key_file") == 0) {
            pub = options[i].value;
        } else if (strcmp(options[i].key, "ingest_max") == 0) {
            char *end = NULL;
            unsigned long long v = strtoull(options[i].value, &end, 10);
            if (options[i].value[0] < '0' || options[i].value[0] > '9' || *end != '\0' || v == 0 ||
                v > UINT32_MAX) {
                mosquitto_log_printf(MOSQ_LOG_ERR, PLUGIN_LOG "plugin_opt_ingest_max must be 1..%u bytes",
                                     (unsigned)UINT32_MAX);
                goto out;
            }
            ingest_max = (uint32_t)v;
        } else if (strcmp(options[i].key, "revoked_file") == 0 && options[i].value[0] != '\0') {
            revoked_file = options[i].value;
        } else if (strcmp(options[i].key, "bridge_client_id") == 0) {
            if (!dyno_acl_valid_client_id(options[i].value)) {
                mosquitto_log_printf(MOSQ_LOG_ERR,
                                     PLUGIN_LOG "plugin_opt_bridge_client_id is not a valid client id");
                goto out;
            }
            bridge_id = options[i].value;
        } else {
            mosquitto_log_printf(MOSQ_LOG_ERR, PLUGIN_LOG "unknown option plugin_opt_%s", options[i].key);
            goto out;
        }
    }
    if (pub == NULL || pub[0] == '\0') {
        mosquitto_log_printf(MOSQ_LOG_ERR, PLUGIN_LOG "plugin_opt_public_key_file is required");
        goto out;
    }
    pl = calloc(1, sizeof(*pl));
    if (pl == NULL) {
        rc = MOSQ_ERR_NOMEM;
        goto out;
    }
    pl->pid = identifier;
    pl->ingest_max = ingest_max;
    if (dyno_verifier_load(pub, &pl->verifier) != 0) {
        mosquitto_log_printf(MOSQ_LOG_ERR, PLUGIN_LOG "cannot load the public key %s", pub);
        goto out;
    }
    if (dyno_acl_table_new(&pl->table) != 0 ||
        (revoked_file != NULL && (pl->revoked_file = strdup(revoked_file)) == NULL) ||
        (bridge_id != NULL && (pl->bridge_id = strdup(bridge_id)) == NULL)) {
        rc = MOSQ_ERR_NOMEM;
        goto out;
    }
    if (pl->revoked_file != NULL)
        plugin_load_revoked(pl);
    for (; registered < sizeof(plugin_events) / sizeof(plugin_events[0]); registered++) {
        if (mosquitto_callback_register(identifier, plugin_events[registered].event,
                                        plugin_events[registered].cb, NULL, pl) != MOSQ_ERR_SUCCESS) {
            mosquitto_log_printf(MOSQ_LOG_ERR, PLUGIN_LOG "cannot register event %d",
                                 plugin_events[registered].event);
            goto out;
        }
    }
    mosquitto_log_printf(MOSQ_LOG_INFO, PLUGIN_LOG "loaded, public key %s, ingest_max %u%s%s", pub,
                         (unsigned)ingest_max, bridge_id != NULL ? ", feeds from the bridge " : "",
                         bridge_id != NULL ? bridge_id : "");
    *userdata = pl;
    pl = NULL;
    rc = MOSQ_ERR_SUCCESS;
out:
    if (pl != NULL) {
        while (registered > 0) {
            registered--;
            mosquitto_callback_unregister(identifier, plugin_events[registered].event,
                                          plugin_events[registered].cb, NULL);
        }
        plugin_free(pl);
    }
    return rc;
}

int mosquitto_plugin_cleanup(void *userdata, struct mosquitto_opt *options, int option_count)
{
    struct plugin *pl = userdata;

    (void)options;
    (void)option_count;
    if (pl == NULL)
        return MOSQ_ERR_SUCCESS;
    for (size_t i = 0; i < sizeof(plugin_events) / sizeof(plugin_events[0]); i++)
        mosquitto_callback_unregister(pl->pid, plugin_events[i].event, plugin_events[i].cb, NULL);
    plugin_free(pl);
    return MOSQ_ERR_SUCCESS;
}
