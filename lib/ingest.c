/*
 * MQTT ingest message parsing (lib/ingest.h). No I/O and no allocation beyond the copies
 * the result owns, so tests/fuzz/fuzz_ingest.c can drive it with any topic, properties and
 * size.
 */
#include "ingest.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <mosquitto.h>
#include <mqtt_protocol.h>

#include "agent.h"
#include "dynostore/error.h"

/* Stamps seen while reading the user properties. */
struct ingest_stamps {
    int nusers, norgs, nadmins;
    bool bad;      /* a stamp with a value the plugin never writes */
    bool has_name; /* the first "name" was seen */
    bool bad_name;
};

static void ingest__user_prop(struct dyno_ingest_msg *m, struct ingest_stamps *st, const char *name,
                              const char *value)
{
    if (strcasecmp(name, DYNO_INGEST_USER_PROP) == 0) {
        st->nusers++;
        if (dyno_valid_segment(value))
            snprintf(m->user, sizeof(m->user), "%s", value);
        else
            st->bad = true;
    } else if (strcasecmp(name, DYNO_INGEST_ORG_PROP) == 0) {
        st->norgs++;
        if (dyno_agent_valid_org(value, true))
            snprintf(m->org, sizeof(m->org), "%s", value);
        else
            st->bad = true;
    } else if (strcasecmp(name, DYNO_INGEST_ADMIN_PROP) == 0) {
        st->nadmins++;
        m->admin = strcmp(value, "true") == 0;
        if (!m->admin && strcmp(value, "false") != 0)
            st->bad = true;
    } else if (strcmp(name, DYNO_INGEST_NAME_PROP) == 0 && !st->has_name) {
        st->has_name = true;
        if (dyno_valid_name(value))
            snprintf(m->name, sizeof(m->name), "%s", value);
        else
            st->bad_name = true;
    }
}

/* Reads every user property, the Response Topic and the Correlation Data. A copy that
 * libmosquitto cannot allocate counts as absent, which fails closed (a missing stamp). */
static void ingest__read_props(struct dyno_ingest_msg *m, struct ingest_stamps *st,
                               const mosquitto_property *props)
{
    const mosquitto_property *pr = props;
    bool skip = false;

    while (pr != NULL) {
        char *name = NULL, *value = NULL;

        pr = mosquitto_property_read_string_pair(pr, MQTT_PROP_USER_PROPERTY, &name, &value, skip);
        skip = true;
        if (pr != NULL && name != NULL && value != NULL)
            ingest__user_prop(m, st, name, value);
        free(name);
        free(value);
    }
    if (props != NULL) {
        char *rt = NULL;
        void *cd = NULL;
        uint16_t cdlen = 0;

        if (mosquitto_property_read_string(props, MQTT_PROP_RESPONSE_TOPIC, &rt, false) != NULL)
            m->resp_topic = rt;
        if (mosquitto_property_read_binary(props, MQTT_PROP_CORRELATION_DATA, &cd, &cdlen, false) != NULL) {
            m->corr = cd;
            m->corr_len = cdlen;
        }
    }
}

int dyno_ingest_parse(const char *topic, const void *props, size_t len, size_t max,
                      struct dyno_ingest_msg *out, char *msg, size_t cap)
{
    struct ingest_stamps st = {0};
    const size_t plen = sizeof(DYNO_INGEST_TOPIC) - 1;

    memset(out, 0, sizeof(*out));
    out->len = len;
    if (msg != NULL && cap > 0)
        msg[0] = '\0';
    if (topic == NULL || strncmp(topic, DYNO_INGEST_TOPIC, plen) != 0 || !dyno_valid_catalog(topic + plen)) {
        snprintf(msg, cap, "bad catalog in topic");
        return DYNO_EINVAL;
    }
    snprintf(out->catalog, sizeof(out->catalog), "%s", topic + plen);
    ingest__read_props(out, &st, props);
    if (st.nusers != 1 || st.norgs != 1 || st.nadmins != 1 || st.bad || out->user[0] == '\0') {
        /* Only the plugin's stamps name a publisher: without them the message came through
         * no login we know of (or a service published it), so nobody can own it. */
        out->user[0] = '\0';
        out->org[0] = '\0';
        out->admin = false;
        snprintf(msg, cap, "ingest message without a publisher (not one valid %s, %s and %s stamp each)",
                 DYNO_INGEST_USER_PROP, DYNO_INGEST_ORG_PROP, DYNO_INGEST_ADMIN_PROP);
        return DYNO_EUNAUTH;
    }
    if (len > max) {
        snprintf(msg, cap, "message of %zu bytes is larger than ingest_max (%zu bytes)", len, max);
        return DYNO_ETOOBIG;
    }
    if (st.bad_name) {
        snprintf(msg, cap, "bad object name (1..255 bytes of UTF-8, no '/')");
        return DYNO_EINVAL;
    }
    return 0;
}

void dyno_ingest_msg_clear(struct dyno_ingest_msg *m)
{
    if (m == NULL)
        return;
    free(m->resp_topic);
    free(m->corr);
    m->resp_topic = NULL;
    m->corr = NULL;
    m->corr_len = 0;
}

bool dyno_ingest_reply_topic_ok(const char *topic, const char *user)
{
    size_t pl = strlen(DYNO_ACL_TOPIC_REPLY), ul;

    if (topic == NULL || user == NULL || user[0] == '\0')
        return false;
    ul = strlen(user);
    return strncmp(topic, DYNO_ACL_TOPIC_REPLY, pl) == 0 && strncmp(topic + pl, user, ul) == 0 &&
           (topic[pl + ul] == '\0' || topic[pl + ul] == '/') && strpbrk(topic, "+#") == NULL;
}
