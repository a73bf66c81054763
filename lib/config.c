/* Agent configuration from defaults, a JSON file and flags (lib/config.h). */
#include "config.h"

#include "json.h"

#include <dynostore/error.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CONFIG_FILE_MAX (1024 * 1024)

/* "listen-host" and "listen_host" name the same option. */
static bool name_eq(const char *a, const char *b, size_t blen)
{
    size_t i = 0;
    for (; a[i] && i < blen; i++) {
        char x = a[i] == '-' ? '_' : a[i];
        char y = b[i] == '-' ? '_' : b[i];
        if (x != y)
            return false;
    }
    return a[i] == '\0' && i == blen;
}

static const struct dyno_opt *find_opt(const struct dyno_opt *opts, size_t n, const char *name, size_t len)
{
    for (size_t i = 0; i < n; i++)
        if (name_eq(opts[i].name, name, len))
            return &opts[i];
    return NULL;
}

static int parse_int(const char *s, int64_t *out)
{
    if (!s || !*s)
        return DYNO_EINVAL;
    errno = 0;
    char *end = NULL;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s)
        return DYNO_EINVAL;
    int64_t mul = 1;
    if (*end) {
        switch (*end) {
        case 'k':
        case 'K':
            mul = 1024;
            break;
        case 'm':
        case 'M':
            mul = 1024 * 1024;
            break;
        case 'g':
        case 'G':
            mul = 1024LL * 1024 * 1024;
            break;
        case 't':
        case 'T':
            mul = 1024LL * 1024 * 1024 * 1024;
            break;
        default:
            return DYNO_EINVAL;
        }
        end++;
        if (*end == 'i' || *end == 'I')
            end++;
        if (*end == 'b' || *end == 'B')
            end++;
        if (*end)
            return DYNO_EINVAL;
    }
    if (v > INT64_MAX / mul || v < INT64_MIN / mul)
        return DYNO_EINVAL;
    *out = (int64_t)v * mul;
    return 0;
}

static int parse_bool(const char *s, bool *out)
{
    if (!strcmp(s, "true") || !strcmp(s, "1") || !strcmp(s, "yes") || !strcmp(s, "on"))
        *out = true;
    else if (!strcmp(s, "false") || !strcmp(s, "0") || !strcmp(s, "no") || !strcmp(s, "off"))
        *out = false;
    else
        return DYNO_EINVAL;
    return 0;
}

/* Sets one option from text. */
static int set_text(const struct dyno_opt *o, void *cfg, const char *val, char *err, size_t errlen)
{
    char *field = (char *)cfg + o->offset;
    switch (o->type) {
    case DYNO_OPT_STR: {
        char *copy = val ? strdup(val) : NULL;
        if (val && !copy)
            return DYNO_ENOMEM;
        free(*(char **)field);
        *(char **)field = copy;
        return 0;
    }
    case DYNO_OPT_INT: {
        int64_t v = 0;
        if (parse_int(val, &v)) {
            snprintf(err, errlen, "option %s: '%s' is not an integer", o->name, val ? val : "");
            return DYNO_EINVAL;
        }
        *(int64_t *)field = v;
        return 0;
    }
    case DYNO_OPT_BOOL: {
        bool b = false;
        if (!val || parse_bool(val, &b)) {
            snprintf(err, errlen, "option %s: '%s' is not true or false", o->name, val ? val : "");
            return DYNO_EINVAL;
        }
        *(bool *)field = b;
        return 0;
    }
    case DYNO_OPT_DBL: {
        char *end = NULL;
        errno = 0;
        double d = val ? strtod(val, &end) : 0;
        if (!val || errno || end == val || *end || !isfinite(d)) {
            snprintf(err, errlen, "option %s: '%s' is not a number", o->name, val ? val : "");
            return DYNO_EINVAL;
        }
        *(double *)field = d;
        return 0;
    }
    }
    return DYNO_EINVAL;
}

/* Sets one option from a JSON value of the config file. */
static int set_json(const struct dyno_opt *o, void *cfg, const cJSON *v, char *err, size_t errlen)
{
    char num[64];
    if (cJSON_IsString(v))
        return set_text(o, cfg, v->valuestring, err, errlen);
    if (cJSON_IsNull(v) && o->type == DYNO_OPT_STR)
        return set_text(o, cfg, NULL, err, errlen);
    if (cJSON_IsBool(v) && o->type == DYNO_OPT_BOOL)
        return set_text(o, cfg, cJSON_IsTrue(v) ? "true" : "false", err, errlen);
    if (cJSON_IsNumber(v) && o->type != DYNO_OPT_BOOL) {
        if (o->type == DYNO_OPT_DBL)
            snprintf(num, sizeof(num), "%.17g", v->valuedouble);
        else if (v->valuedouble != floor(v->valuedouble) || fabs(v->valuedouble) > 9.007199254740992e15) {
            snprintf(err, errlen, "option %s: not an integer", o->name);
            return DYNO_EINVAL;
        } else
            snprintf(num, sizeof(num), "%lld", (long long)v->valuedouble);
        return set_text(o, cfg, num, err, errlen);
    }
    snprintf(err, errlen, "option %s: wrong type in the config file", o->name);
    return DYNO_EINVAL;
}

static void print_help(const struct dyno_opt *opts, size_t n, const char *prog)
{
    printf("usage: %s [--config FILE] [--OPTION VALUE]...\n\noptions (also keys of the JSON config file):\n",
           prog);
    for (size_t i = 0; i < n; i++)
        printf("  --%-22s %s (default: %s)\n", opts[i].name, opts[i].help ? opts[i].help : "",
               opts[i].defval ? opts[i].defval : "none");
}

static int load_file(const struct dyno_opt *opts, size_t n, void *cfg, const char *path, char *err,
                     size_t errlen)
{
    char *text = NULL;
    size_t len = 0;
    cJSON *root = NULL;
    int rc = dyno_read_file(path, CONFIG_FILE_MAX, &text, &len);
    if (rc) {
        snprintf(err, errlen, "config file %s: %s", path, dyno_strerror(rc));
        rc = DYNO_EINVAL;
        goto out;
    }
    rc = dyno_json_parse(text, len, CONFIG_FILE_MAX, &root);
    if (rc || !cJSON_IsObject(root)) {
        snprintf(err, errlen, "config file %s: not a JSON object", path);
        rc = DYNO_EINVAL;
        goto out;
    }
    const cJSON *it;
    cJSON_ArrayForEach(it, root)
    {
        const struct dyno_opt *o = find_opt(opts, n, it->string, strlen(it->string));
        if (!o) {
            snprintf(err, errlen, "config file %s: unknown key '%s'", path, it->string);
            rc = DYNO_EINVAL;
            goto out;
        }
        rc = set_json(o, cfg, it, err, errlen);
        if (rc)
            goto out;
    }
out:
    cJSON_Delete(root);
    free(text);
    return rc;
}

int dyno_config_parse(const struct dyno_opt *opts, size_t nopts, void *cfg, int argc, char **argv, char *err,
                      size_t errlen)
{
    int rc;
    err[0] = '\0';
    for (size_t i = 0; i < nopts; i++) {
        char *field = (char *)cfg + opts[i].offset;
        switch (opts[i].type) {
        case DYNO_OPT_STR:
            *(char **)field = NULL;
            break;
        case DYNO_OPT_INT:
            *(int64_t *)field = 0;
            break;
        case DYNO_OPT_BOOL:
            *(bool *)field = false;
            break;
        case DYNO_OPT_DBL:
            *(double *)field = 0;
            break;
        }
        if (opts[i].defval) {
            rc = set_text(&opts[i], cfg, opts[i].defval, err, errlen);
            if (rc)
                return rc;
        }
    }
    /* The file first, wherever --config stands, so that flags always win. */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            print_help(opts, nopts, argv[0]);
            return 1;
        }
        const char *path = NULL;
        if (!strcmp(a, "--config")) {
            if (i + 1 >= argc) {
                snprintf(err, errlen, "--config needs a file");
                return DYNO_EINVAL;
            }
            path = argv[++i];
        } else if (!strncmp(a, "--config=", 9)) {
            path = a + 9;
        }
        if (path) {
            rc = load_file(opts, nopts, cfg, path, err, errlen);
            if (rc)
                return rc;
        }
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--config")) {
            i++;
            continue;
        }
        if (!strncmp(a, "--config=", 9))
            continue;
        if (strncmp(a, "--", 2) != 0) {
            snprintf(err, errlen, "unexpected argument '%s'", a);
            return DYNO_EINVAL;
        }
        const char *name = a + 2;
        const char *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        const struct dyno_opt *o = find_opt(opts, nopts, name, nlen);
        if (!o) {
            snprintf(err, errlen, "unknown option '--%.*s'", (int)nlen, name);
            return DYNO_EINVAL;
        }
        const char *val;
        if (eq)
            val = eq + 1;
        else if (o->type == DYNO_OPT_BOOL && (i + 1 >= argc || strncmp(argv[i + 1], "--", 2) == 0))
            val = "true";
        else if (i + 1 < argc)
            val = argv[++i];
        else {
            snprintf(err, errlen, "option '--%s' needs a value", o->name);
            return DYNO_EINVAL;
        }
        rc = set_text(o, cfg, val, err, errlen);
        if (rc)
            return rc;
    }
    return 0;
}

void dyno_config_free(const struct dyno_opt *opts, size_t nopts, void *cfg)
{
    for (size_t i = 0; i < nopts; i++) {
        if (opts[i].type == DYNO_OPT_STR) {
            char **field = (char **)((char *)cfg + opts[i].offset);
            free(*field);
            *field = NULL;
        }
    }
}

int dyno_read_file(const char *path, size_t max, char **out, size_t *len)
{
    *out = NULL;
    if (len)
        *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? DYNO_ENOTFOUND : DYNO_EIO;
    int rc = 0;
    char *buf = NULL;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        rc = DYNO_EIO;
        goto out;
    }
    if (st.st_size < 0 || (uint64_t)st.st_size > max) {
        rc = DYNO_ETOOBIG;
        goto out;
    }
    size_t cap = (size_t)st.st_size;
    buf = malloc(cap + 1);
    if (!buf) {
        rc = DYNO_ENOMEM;
        goto out;
    }
    size_t got = 0;
    while (got < cap) {
        ssize_t r = read(fd, buf + got, cap - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = DYNO_EIO;
            goto out;
        }
        if (r == 0)
            break;
        got += (size_t)r;
    }
    while (got > 0 && (buf[got - 1] == '\n' || buf[got - 1] == '\r'))
        got--;
    buf[got] = '\0';
    *out = buf;
    buf = NULL;
    if (len)
        *len = got;
out:
    free(buf);
    close(fd);
    return rc;
}

int dyno_write_file(const char *path, const void *data, size_t len, unsigned mode)
{
    char tmp[PATH_MAX];
    int n = snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());
    if (n < 0 || (size_t)n >= sizeof(tmp))
        return DYNO_EINVAL;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, (mode_t)mode);
    if (fd < 0)
        return DYNO_EIO;
    int rc = 0;
    if (fchmod(fd, (mode_t)mode) != 0)
        rc = DYNO_EIO;
    const char *p = data;
    size_t left = len;
    while (!rc && left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            rc = DYNO_EIO;
            break;
        }
        p += w;
        left -= (size_t)w;
    }
    if (!rc && fsync(fd) != 0)
        rc = DYNO_EIO;
    if (close(fd) != 0 && !rc)
        rc = DYNO_EIO;
    if (!rc && rename(tmp, path) != 0)
        rc = DYNO_EIO;
    if (rc) {
        unlink(tmp);
        return rc;
    }
    /* Make the rename itself durable. */
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s", path);
    int dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return 0;
}
