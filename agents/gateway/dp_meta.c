/*
 * The data path's metadata interface (dp.h struct gw_meta) in the running gateway: RPCs
 * and notifications to dyno-metadata over the broker (mqtt.c), events through events.c.
 */
#include "gw.h"
#include "mq.h"

static int meta__call(struct gw *gw, const char *method, const cJSON *params, cJSON **result, char *msg,
                      size_t cap, bool *unknown)
{
    bool unk = false;
    int rc = gw_rpc_change(gw, "metadata", method, params, result, msg, cap, &unk);
    if (unknown)
        *unknown = unk;
    return rc;
}

static void meta__notify(struct gw *gw, const char *method, const cJSON *params)
{
    gw_notify(gw, "metadata", method, params);
}

static void meta__wait_reachable(struct gw *gw, int ms)
{
    if (!dyno_mq_connected(gw->mq))
        (void)dyno_mq_wait_connected(gw->mq, ms);
}

static bool meta__reachable(struct gw *gw)
{
    return dyno_mq_connected(gw->mq);
}

const struct gw_meta gw_mqtt_meta = {
    .call = meta__call,
    .notify = meta__notify,
    .wait_reachable = meta__wait_reachable,
    .reachable = meta__reachable,
    .emit = gw_event_emit,
};
