/*
 * libdynostore healing administration (docs/healing.md): container drain, metadata rebuild
 * from the fragments, repair status. Small JSON exchanges through dyno__json_call.
 */
#include <stdio.h>

#include "client_int.h"
#include "json.h"
#include "names.h"

int dyno_client_container_drain(dyno_client *c, const char *id, struct cJSON **out)
{
    if (!c)
        return DYNO_EINVAL;
    dyno__begin(c);
    if (!id || !dyno_valid_segment(id))
        return dyno__fail(c, DYNO_EINVAL, "invalid container id (letters, digits, '.', '_', '-'; 1..64)");
    char path[128];
    snprintf(path, sizeof(path), "/v1/containers/%s/drain", id);
    return dyno__json_call(c, "POST", path, NULL, out);
}

int dyno_client_rebuild_metadata(dyno_client *c, struct cJSON **out)
{
    if (!c)
        return DYNO_EINVAL;
    dyno__begin(c);
    return dyno__json_call(c, "POST", "/v1/admin/rebuild-metadata", NULL, out);
}

int dyno_client_repair_status(dyno_client *c, struct cJSON **out)
{
    return dyno__json_get(c, "/v1/admin/repair", out);
}
