/*
 * Fuzzes the parse and validation of MQTT ingest messages (dyno_ingest_parse, lib/ingest.h):
 * topic, user properties (the plugin's stamps and the name), Response Topic, Correlation
 * Data and size, as the gateway's ingest sessions receive them.
 *
 * Input: [flags:1][len:4 LE][max:4 LE] then NUL-separated parts: the topic, the Response
 * Topic (flags & 1), the Correlation Data (flags & 2), then user property name, value,
 * name, value... A part libmosquitto refuses to put in a property (not UTF-8, too long) is
 * left out, as a broker would never deliver it.
 *
 * Checked against an oracle written here from the header's rules: the verdict (bad topic,
 * not exactly one valid copy of each stamp, too large, bad name, or storable) and its order;
 * on acceptance the catalog, publisher, org, admin flag and name are the message's; the
 * Response Topic and Correlation Data come back unchanged; the publisher is "" whenever the
 * stamps were refused (nobody is answered); an accepted reply topic lies under
 * dyno/v1/reply/<user> without wildcards.
 */
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include <mosquitto.h>
#include <mqtt_protocol.h>

#include "acl.h"
#include "dynostore/error.h"
#include "fuzz.h"
#include "ingest.h"
#include "names.h"

#define FUZZ_PROPS_MAX 64

/* The stamps as the oracle counts them. */
struct oracle {
    int nuser, norg, nadmin;
    bool bad;
    const char *user, *org, *admin;
    bool has_name;
    const char *name;
};

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void oracle_see(struct oracle *o, const char *name, const char *value)
{
    if (strcasecmp(name, DYNO_INGEST_USER_PROP) == 0) {
        o->nuser++;
        o->user = value;
        o->bad = o->bad || !dyno_valid_segment(value);
    } else if (strcasecmp(name, DYNO_INGEST_ORG_PROP) == 0) {
        o->norg++;
        o->org = value;
        o->bad = o->bad || !fuzz_org_ok(value, true, DYNO_ACL_ORG_MAX);
    } else if (strcasecmp(name, DYNO_INGEST_ADMIN_PROP) == 0) {
        o->nadmin++;
        o->admin = value;
        o->bad = o->bad || (strcmp(value, "true") != 0 && strcmp(value, "false") != 0);
    } else if (strcmp(name, "name") == 0 && !o->has_name) {
        o->has_name = true;
        o->name = value;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mosquitto_property *props = NULL;
    char *parts[3 + 2 * FUZZ_PROPS_MAX];
    size_t nparts = 0, corr_len = 0;
    struct oracle o = {0};
    struct dyno_ingest_msg m;
    char msg[512];
    const char *resp = NULL, *corr = NULL;

    if (size < 9)
        return 0;
    uint8_t flags = data[0];
    size_t len = le32(data + 1), max = le32(data + 5);
    const uint8_t *p = data + 9;
    size_t n = size - 9;

    char *topic = fuzz_take_part(&p, &n, NULL);
    if (flags & 1) {
        parts[nparts] = fuzz_take_part(&p, &n, NULL);
        if (mosquitto_property_add_string(&props, MQTT_PROP_RESPONSE_TOPIC, parts[nparts]) ==
            MOSQ_ERR_SUCCESS)
            resp = parts[nparts];
        nparts++;
    }
    if (flags & 2) {
        size_t cl = 0;
        parts[nparts] = fuzz_take_part(&p, &n, &cl);
        if (cl <= UINT16_MAX &&
            mosquitto_property_add_binary(&props, MQTT_PROP_CORRELATION_DATA, parts[nparts], (uint16_t)cl) ==
                MOSQ_ERR_SUCCESS) {
            corr = parts[nparts];
            corr_len = cl;
        }
        nparts++;
    }
    for (int i = 0; i < FUZZ_PROPS_MAX && n > 0; i++) {
        char *name = fuzz_take_part(&p, &n, NULL);
        char *value = fuzz_take_part(&p, &n, NULL);
        parts[nparts++] = name;
        parts[nparts++] = value;
        if (mosquitto_property_add_string_pair(&props, MQTT_PROP_USER_PROPERTY, name, value) ==
            MOSQ_ERR_SUCCESS)
            oracle_see(&o, name, value);
    }

    int rc = dyno_ingest_parse(topic, props, len, max, &m, msg, sizeof(msg));
    FUZZ_CHECK(rc == 0 || rc == DYNO_EINVAL || rc == DYNO_EUNAUTH || rc == DYNO_ETOOBIG);
    FUZZ_CHECK(m.len == len);
    FUZZ_CHECK(rc == 0 || msg[0] != '\0');
    const size_t pl = strlen(DYNO_INGEST_TOPIC);
    bool topic_ok = strncmp(topic, DYNO_INGEST_TOPIC, pl) == 0 && dyno_valid_catalog(topic + pl);
    bool stamps_ok = o.nuser == 1 && o.norg == 1 && o.nadmin == 1 && !o.bad && o.user[0] != '\0';
    if (!topic_ok) {
        FUZZ_CHECK(rc == DYNO_EINVAL && m.catalog[0] == '\0' && m.user[0] == '\0');
        FUZZ_CHECK(m.resp_topic == NULL && m.corr == NULL);
        goto out;
    }
    FUZZ_CHECK(strcmp(m.catalog, topic + pl) == 0);
    FUZZ_CHECK((resp == NULL) == (m.resp_topic == NULL));
    FUZZ_CHECK(resp == NULL || strcmp(resp, m.resp_topic) == 0);
    FUZZ_CHECK((corr == NULL) == (m.corr == NULL));
    FUZZ_CHECK(corr == NULL || (m.corr_len == corr_len && memcmp(m.corr, corr, corr_len) == 0));
    if (!stamps_ok) {
        /* Nobody vouched for a publisher: nobody is named, so nobody is answered. */
        FUZZ_CHECK(rc == DYNO_EUNAUTH && m.user[0] == '\0' && m.org[0] == '\0' && !m.admin);
        goto out;
    }
    FUZZ_CHECK(strcmp(m.user, o.user) == 0 && strcmp(m.org, o.org) == 0);
    FUZZ_CHECK(m.admin == (strcmp(o.admin, "true") == 0));
    if (len > max) {
        FUZZ_CHECK(rc == DYNO_ETOOBIG);
        goto out;
    }
    if (o.has_name && !dyno_valid_name(o.name)) {
        FUZZ_CHECK(rc == DYNO_EINVAL);
        goto out;
    }
    FUZZ_CHECK(rc == 0);
    FUZZ_CHECK(o.has_name ? strcmp(m.name, o.name) == 0 : m.name[0] == '\0');
out:
    if (m.resp_topic != NULL && dyno_ingest_reply_topic_ok(m.resp_topic, m.user)) {
        size_t rl = strlen(DYNO_ACL_TOPIC_REPLY), ul = strlen(m.user);
        FUZZ_CHECK(m.user[0] != '\0' && strncmp(m.resp_topic, DYNO_ACL_TOPIC_REPLY, rl) == 0);
        FUZZ_CHECK(strncmp(m.resp_topic + rl, m.user, ul) == 0);
        FUZZ_CHECK(m.resp_topic[rl + ul] == '\0' || m.resp_topic[rl + ul] == '/');
        FUZZ_CHECK(strchr(m.resp_topic, '+') == NULL && strchr(m.resp_topic, '#') == NULL);
    }
    dyno_ingest_msg_clear(&m);
    FUZZ_CHECK(m.resp_topic == NULL && m.corr == NULL);
    mosquitto_property_free_all(&props);
    for (size_t i = 0; i < nparts; i++)
        free(parts[i]);
    free(topic);
    return 0;
}
