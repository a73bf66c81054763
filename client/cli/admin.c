/*
 * dynostore container drain ID, dynostore admin rebuild-metadata|repair, and the repair
 * lines of dynostore status (docs/healing.md). Admin commands: a non-admin token gets exit
 * status 4.
 */
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "json.h"

static long long cli_admin_num(const cJSON *o, const char *name)
{
    int64_t v = 0;
    return dyno_json_i64(o, name, &v) == 0 ? (long long)v : 0;
}

int cli_cmd_container(const struct cli_ctx *x, int argc, char **argv)
{
    dyno_client *c = NULL;
    cJSON *out = NULL;
    if (argc != 2 || strcmp(argv[0], "drain") != 0)
        return cli_usage("usage: container drain ID");
    int ec = cli_connect(x, true, &c);
    if (ec)
        return ec;
    int rc = dyno_client_container_drain(c, argv[1], &out);
    if (rc < 0) {
        ec = cli_fail(c, rc, "container drain");
        goto out;
    }
    if (x->json)
        cli_print_json(out, true);
    else if (!x->quiet)
        printf("container %s is draining: %lld fragments to move (see dynostore status)\n", argv[1],
               cli_admin_num(out, "fragments"));
out:
    cJSON_Delete(out);
    dyno_client_free(c);
    return ec;
}

int cli_cmd_admin(const struct cli_ctx *x, int argc, char **argv)
{
    dyno_client *c = NULL;
    cJSON *out = NULL;
    bool rebuild = argc == 1 && strcmp(argv[0], "rebuild-metadata") == 0;
    bool repair = argc == 1 && strcmp(argv[0], "repair") == 0;
    if (!rebuild && !repair)
        return cli_usage("usage: admin rebuild-metadata | admin repair");
    int ec = cli_connect(x, true, &c);
    if (ec)
        return ec;
    /* A rebuild lists every fragment of the fabric before it answers: no idle timeout. */
    if (rebuild && dyno_client_set_timeouts(c, 10000, 0, 0) < 0) {
        ec = cli_fail(c, DYNO_EINVAL, "rebuild-metadata");
        goto out;
    }
    int rc = rebuild ? dyno_client_rebuild_metadata(c, &out) : dyno_client_repair_status(c, &out);
    if (rc < 0) {
        ec = cli_fail(c, rc, rebuild ? "rebuild-metadata" : "repair status");
        goto out;
    }
    if (x->json || repair) {
        cli_print_json(out, x->json);
    } else {
        printf(
            "restored %lld objects (%lld fragments) from %lld containers; %lld already known, %lld corrupt "
            "fragments, %lld name conflicts, %lld containers not listed\n",
            cli_admin_num(out, "objects"), cli_admin_num(out, "fragments"), cli_admin_num(out, "containers"),
            cli_admin_num(out, "skipped"), cli_admin_num(out, "corrupt"), cli_admin_num(out, "conflicts"),
            cli_admin_num(out, "unreachable"));
    }
out:
    cJSON_Delete(out);
    dyno_client_free(c);
    return ec;
}

void cli_status_repair(dyno_client *c, bool json, cJSON *doc)
{
    cJSON *st = NULL;
    if (dyno_client_repair_status(c, &st) < 0) {
        if (!json)
            printf("repair: unknown (%s)\n", dyno_client_last_error(c));
        return;
    }
    if (json) {
        cJSON_AddItemToObject(doc, "repair", st);
        return;
    }
    printf("degraded objects: %lld, lost fragments: %lld, unrecoverable: %lld\n",
           cli_admin_num(st, "degraded_objects"), cli_admin_num(st, "lost_fragments"),
           cli_admin_num(st, "unrecoverable"));
    printf("repair: %lld in progress, %lld repaired so far, %lld garbage fragments to delete\n",
           cli_admin_num(st, "leased_tasks"), cli_admin_num(st, "repaired_total"),
           cli_admin_num(st, "garbage_fragments"));
    const cJSON *dr = cJSON_GetObjectItemCaseSensitive(st, "draining"), *it;
    if (cJSON_GetArraySize(dr) > 0) {
        printf("draining:");
        cJSON_ArrayForEach(it, dr)
        {
            if (cJSON_IsString(it))
                printf(" %s", it->valuestring);
        }
        printf("\n");
    }
    cJSON_Delete(st);
}
