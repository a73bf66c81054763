/*
 * Object commands: put, get, exists, evict, meta.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "json.h"
#include "names.h"

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

static void print_put_json(const char *file, const struct dyno_put_result *r)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return;
    cJSON_AddStringToObject(o, "key", r->key);
    cJSON_AddStringToObject(o, "name", r->name);
    dyno_json_add_i64(o, "size", (int64_t)r->size);
    cJSON_AddStringToObject(o, "sha256", r->sha256);
    cJSON_AddNumberToObject(o, "k", r->k);
    cJSON_AddNumberToObject(o, "m", r->m);
    cJSON_AddStringToObject(o, "file", file);
    cli_print_json(o, true);
    cJSON_Delete(o);
}

int cli_cmd_put(const struct cli_ctx *x, int argc, char **argv)
{
    const char *catalog = NULL, *name = NULL, *resil = NULL;
    int npos = 0, ec;
    char **pos = calloc((size_t)argc + 1, sizeof(char *));
    dyno_client *c = NULL;
    if (!pos)
        return cli_err("out of memory");
    const struct cli_flag flags[] = {
        {"--catalog", true, &catalog, NULL},
        {"-c", true, &catalog, NULL},
        {"--name", true, &name, NULL},
        {"--resilience", true, &resil, NULL},
    };
    ec = cli_parse("put", argc, argv, flags, sizeof(flags) / sizeof(flags[0]), pos, &npos);
    if (ec)
        goto out;
    struct dyno_put_opts opts = {0};
    if (npos == 0) {
        ec = cli_usage("put: no FILE given");
        goto out;
    }
    if (!catalog) {
        ec = cli_usage("put: --catalog C is required");
        goto out;
    }
    if (!dyno_valid_catalog(catalog)) {
        ec = cli_usage("put: invalid catalog '%s' (owner/name[/name...])", catalog);
        goto out;
    }
    if (name && npos > 1) {
        ec = cli_usage("put: --name applies to one FILE only");
        goto out;
    }
    if (name && !dyno_valid_name(name)) {
        ec = cli_usage("put: invalid object name '%s'", name);
        goto out;
    }
    if (resil && (ec = cli_parse_resilience(resil, &opts.k, &opts.m)) != 0)
        goto out;
    ec = cli_connect(x, true, &c);
    if (ec)
        goto out;

    for (int i = 0; i < npos; i++) {
        const char *file = pos[i];
        bool is_stdin = strcmp(file, "-") == 0;
        FILE *fp = is_stdin ? stdin : fopen(file, "rb");
        struct stat st;
        if (!fp) {
            int e = cli_err("%s: %s", file, strerror(errno));
            ec = ec ? ec : e;
            continue;
        }
        if (fstat(fileno(fp), &st) == 0 && S_ISDIR(st.st_mode)) {
            int e = cli_err("%s: is a folder", file);
            ec = ec ? ec : e;
            if (!is_stdin)
                fclose(fp);
            continue;
        }
        opts.name = name;
        if (!name && !is_stdin && dyno_valid_name(base_name(file)))
            opts.name = base_name(file);
        struct cli_progress p;
        cli_progress_init(&p, x, is_stdin ? "stdin" : base_name(file));
        dyno_client_set_progress(c, cli_progress_cb, &p);
        struct dyno_put_result r;
        int rc = dyno_client_put_fp(c, catalog, fp, &opts, &r);
        cli_progress_end(&p);
        if (!is_stdin)
            fclose(fp);
        if (rc < 0) {
            char what[4200];
            snprintf(what, sizeof(what), "put %s", file);
            int e = cli_fail(c, rc, what);
            ec = ec ? ec : e;
            continue;
        }
        if (x->json)
            print_put_json(file, &r);
        else
            printf("%s\n", r.key);
        fflush(stdout);
    }
out:
    dyno_client_free(c);
    free(pos);
    return ec;
}

static int one_key(const char *cmd, int argc, char **argv, const struct cli_flag *flags, size_t nflags,
                   const char **key)
{
    char *pos[8];
    int npos = 0;
    if (argc > 6)
        return cli_usage("%s: too many arguments", cmd);
    int ec = cli_parse(cmd, argc, argv, flags, nflags, pos, &npos);
    if (ec)
        return ec;
    if (npos != 1)
        return cli_usage("%s: expected one KEY", cmd);
    if (!dyno_valid_key(pos[0]))
        return cli_usage("%s: '%s' is not an object key (32 lowercase hex characters)", cmd, pos[0]);
    *key = pos[0];
    return 0;
}

int cli_cmd_get(const struct cli_ctx *x, int argc, char **argv)
{
    const char *key = NULL, *outp = NULL;
    dyno_client *c = NULL;
    const struct cli_flag flags[] = {{"-o", true, &outp, NULL}, {"--output", true, &outp, NULL}};
    int ec = one_key("get", argc, argv, flags, 2, &key);
    if (ec)
        return ec;
    ec = cli_connect(x, true, &c);
    if (ec)
        return ec;
    struct cli_progress p;
    cli_progress_init(&p, x, key);
    dyno_client_set_progress(c, cli_progress_cb, &p);
    int rc;
    if (outp && strcmp(outp, "-") != 0)
        rc = dyno_client_get_file(c, key, outp);
    else
        rc = dyno_client_get_fp(c, key, stdout);
    cli_progress_end(&p);
    if (rc < 0) {
        ec = cli_fail(c, rc, "get");
    } else if (x->json && outp && strcmp(outp, "-") != 0) {
        cJSON *o = cJSON_CreateObject();
        if (o) {
            cJSON_AddStringToObject(o, "key", key);
            cJSON_AddStringToObject(o, "path", outp);
            cli_print_json(o, true);
            cJSON_Delete(o);
        }
    }
    dyno_client_free(c);
    return ec;
}

int cli_cmd_exists(const struct cli_ctx *x, int argc, char **argv)
{
    const char *key = NULL;
    dyno_client *c = NULL;
    int ec = one_key("exists", argc, argv, NULL, 0, &key);
    if (ec)
        return ec;
    ec = cli_connect(x, true, &c);
    if (ec)
        return ec;
    struct dyno_object_stat st;
    int rc = dyno_client_exists(c, key, &st);
    if (rc == 0 || rc == DYNO_ENOTFOUND) {
        if (x->json) {
            cJSON *o = cJSON_CreateObject();
            if (o) {
                cJSON_AddStringToObject(o, "key", key);
                cJSON_AddBoolToObject(o, "exists", rc == 0);
                if (rc == 0) {
                    dyno_json_add_i64(o, "size", (int64_t)st.size);
                    if (st.sha256[0])
                        cJSON_AddStringToObject(o, "sha256", st.sha256);
                }
                cli_print_json(o, true);
                cJSON_Delete(o);
            }
        } else if (!x->quiet) {
            if (rc == 0)
                printf("%s exists (%llu bytes)\n", key, (unsigned long long)st.size);
            else
                cli_err("object %s not found", key);
        }
        ec = rc == 0 ? CLI_OK : CLI_NOTFOUND;
    } else {
        ec = cli_fail(c, rc, "exists");
    }
    dyno_client_free(c);
    return ec;
}

int cli_cmd_evict(const struct cli_ctx *x, int argc, char **argv)
{
    const char *key = NULL;
    dyno_client *c = NULL;
    int ec = one_key("evict", argc, argv, NULL, 0, &key);
    if (ec)
        return ec;
    ec = cli_connect(x, true, &c);
    if (ec)
        return ec;
    int rc = dyno_client_evict(c, key);
    if (rc < 0) {
        ec = cli_fail(c, rc, "evict");
    } else if (x->json) {
        printf("{\"key\":\"%s\",\"evicted\":true}\n", key);
    } else if (!x->quiet) {
        printf("evicted %s\n", key);
    }
    dyno_client_free(c);
    return ec;
}

int cli_cmd_meta(const struct cli_ctx *x, int argc, char **argv)
{
    const char *key = NULL;
    dyno_client *c = NULL;
    cJSON *m = NULL;
    int ec = one_key("meta", argc, argv, NULL, 0, &key);
    if (ec)
        return ec;
    ec = cli_connect(x, true, &c);
    if (ec)
        return ec;
    int rc = dyno_client_meta(c, key, &m);
    if (rc < 0)
        ec = cli_fail(c, rc, "meta");
    else
        cli_print_json(m, x->json);
    cJSON_Delete(m);
    dyno_client_free(c);
    return ec;
}
