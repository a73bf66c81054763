/*
 * Unit tests of the container's HTTP side (agents/container/http.c: routing, auth, PUT,
 * DELETE, capacity), its verified reads (fetch.c: GET, HEAD, Range, a corrupt byte never
 * served) and its scrubber (scrub.c: a good store passes, a flipped byte is found, the pace
 * waits when a pass runs ahead of scrub_rate). The daemon is the real libmicrohttpd on
 * 127.0.0.1 with an ephemeral port, in this process, over a posix store in a temp folder;
 * requests go through libcurl with real Ed25519 service tokens. No broker: corruption
 * reports to metadata fail to send and are logged, which the container tolerates by design.
 * The unit test target links only dyno_core, so the agent's sources are compiled in here.
 */
#define _GNU_SOURCE /* before any header, as store_posix.c needs it (sync_file_range) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../agents/container/cache.c"
#include "../../agents/container/container.c"
#include "../../agents/container/fetch.c"
#include "../../agents/container/http.c"
#include "../../agents/container/list.c"
#include "../../agents/container/scrub.c"
#include "../../agents/container/store.c"
#include "../../agents/container/store_memory.c"
#include "../../agents/container/store_s3.c"
#include "../../agents/container/store_posix.c"
#include "../../agents/container/store_volume.c"

#define KEY "0123456789abcdef0123456789abcdef"
#define ID0 KEY ".0"
#define ID1 KEY ".1"
#define UNIT 4096u
#define NREC 3 /* records per fragment: an object of 3 stripes of k=3 units */

struct fx {
    char dir[64];
    char store[96];
    struct container c;
    char *svc;     /* a service token */
    char *user;    /* a user token */
    char *foreign; /* a service token signed by another key */
    uint8_t frag[DYNO_FRAG_HDR_SIZE + NREC * (UNIT + 8) + DYNO_FRAG_END_SIZE + DYNO_FRAG_TRAILER_SIZE];
    size_t fraglen;
};

/* ---- fixture ---------------------------------------------------------------------------- */

static char *sign(const char *priv, const char *role)
{
    struct dyno_signer *s = NULL;
    char *tok = NULL;
    assert_int_equal(dyno_signer_load(priv, &s), 0);
    struct dyno_claims cl = {.exp = (int64_t)time(NULL) + 3600, .iat = (int64_t)time(NULL)};
    snprintf(cl.sub, sizeof(cl.sub), "%s", strcmp(role, "service") == 0 ? "gateway" : "alice");
    snprintf(cl.role, sizeof(cl.role), "%s", role);
    snprintf(cl.jti, sizeof(cl.jti), "%s", "00112233445566778899aabbccddeeff");
    assert_int_equal(dyno_token_sign(s, &cl, &tok), 0);
    dyno_signer_free(s);
    return tok;
}

/* A well-formed fragment of KEY, index 0, NREC records of UNIT bytes; byte i of the object
 * data is i * 7. */
static size_t build_frag(uint8_t *out, size_t cap, unsigned index)
{
    struct dyno_frag_hdr h = {.k = 3, .m = 2, .index = (uint8_t)index, .unit = UNIT};
    snprintf(h.key, sizeof(h.key), "%s", KEY);
    snprintf(h.catalog, sizeof(h.catalog), "alice/c");
    snprintf(h.name, sizeof(h.name), "obj");
    struct dyno_frag_writer w;
    assert_int_equal(dyno_frag_writer_init(&w, &h), 0);
    static uint8_t payload[UNIT];
    struct dyno_frag_seg seg[DYNO_FRAG_WRITER_SEGS];
    size_t n = 0;
    for (int s = 0; s < NREC; s++) {
        for (size_t i = 0; i < UNIT; i++)
            payload[i] = (uint8_t)((s * UNIT + i) * 7);
        int ns = dyno_frag_writer_record(&w, payload, UNIT, NULL, seg);
        for (int j = 0; j < ns; j++) {
            assert_true(n + seg[j].len <= cap);
            memcpy(out + n, seg[j].p, seg[j].len);
            n += seg[j].len;
        }
    }
    uint8_t sha[32] = {1, 2, 3};
    int ns = dyno_frag_writer_end(&w, (uint64_t)NREC * 3 * UNIT, sha, seg);
    for (int j = 0; j < ns; j++) {
        assert_true(n + seg[j].len <= cap);
        memcpy(out + n, seg[j].p, seg[j].len);
        n += seg[j].len;
    }
    return n;
}

static int setup_capacity(void **state, int64_t capacity)
{
    static struct fx f;
    memset(&f, 0, sizeof(f));
    char err[256], priv[128], pub[128], priv2[128], pub2[128];
    snprintf(f.dir, sizeof(f.dir), "/tmp/dyno-test-chttp-XXXXXX");
    assert_non_null(mkdtemp(f.dir));
    snprintf(f.store, sizeof(f.store), "%s/store", f.dir);
    assert_int_equal(mkdir(f.store, 0700), 0);
    snprintf(priv, sizeof(priv), "%s/k.priv", f.dir);
    snprintf(pub, sizeof(pub), "%s/k.pub", f.dir);
    snprintf(priv2, sizeof(priv2), "%s/o.priv", f.dir);
    snprintf(pub2, sizeof(pub2), "%s/o.pub", f.dir);
    assert_int_equal(dyno_token_keygen(priv, pub), 0);
    assert_int_equal(dyno_token_keygen(priv2, pub2), 0);
    f.svc = sign(priv, "service");
    f.user = sign(priv, "user");
    f.foreign = sign(priv2, "service");

    struct container *c = &f.c;
    pthread_mutex_init(&c->mu, NULL);
    pthread_mutex_init(&c->scrub_mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&c->scrub_cv, &ca);
    pthread_condattr_destroy(&ca);
    /* Counters only: the tests read values, never /metrics, so names stay unset and the
     * test does not depend on where the start-up keeps their table. */
    for (int i = 0; i < CM_COUNT; i++)
        atomic_init(&c->metrics[i].value, 0);
    c->cfg.c.id = "c1";
    c->cfg.listen_host = "127.0.0.1";
    c->cfg.port = 0;
    c->cfg.capacity = capacity;
    c->cfg.max_connections = 16;
    c->cfg.stream_timeout = 30;
    c->cfg.scrub_rate = INT64_C(1) << 40; /* the pass tests never wait */
    c->cfg.dir = f.store;
    assert_int_equal(dyno_verifier_load(pub, &c->verifier), 0);
    assert_int_equal(store_posix_open(f.store, &c->store, err, sizeof(err)), 0);
    assert_int_equal(container_cache_new(1024 * 1024, CONTAINER_CACHE_ITEM_MAX, &c->cache), 0);
    assert_int_equal(container_http_start(c, err, sizeof(err)), 0);
    assert_true(c->port > 0);
    f.fraglen = build_frag(f.frag, sizeof(f.frag), 0);
    *state = &f;
    return 0;
}

static int setup(void **state)
{
    return setup_capacity(state, 1024 * 1024);
}

static int setup_small(void **state)
{
    return setup_capacity(state, 4096); /* less than one fragment */
}

static int setup_one_and_a_half(void **state)
{
    int rc = setup_capacity(state, 1024 * 1024);
    struct fx *f = *state;
    f->c.cfg.capacity = (int64_t)(f->fraglen + f->fraglen / 2); /* read at each reservation */
    return rc;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    struct container *c = &f->c;
    container_http_stop(c);
    assert_int_equal(c->reserved, 0); /* every put gave back what it reserved */
    container_cache_free(c->cache);
    store_free(c->store);
    dyno_verifier_free(c->verifier);
    pthread_cond_destroy(&c->scrub_cv);
    pthread_mutex_destroy(&c->scrub_mu);
    pthread_mutex_destroy(&c->mu);
    free(f->svc);
    free(f->user);
    free(f->foreign);
    char cmd[160];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    assert_int_equal(system(cmd), 0);
    return 0;
}

/* ---- an HTTP client --------------------------------------------------------------------- */

struct reply {
    long status;
    CURLcode cc;
    uint8_t *body;
    size_t len;
    char hdrs[4096];
    size_t hlen;
};

static size_t on_body(char *p, size_t sz, size_t n, void *arg)
{
    struct reply *r = arg;
    uint8_t *nb = realloc(r->body, r->len + sz * n + 1);
    assert_non_null(nb);
    r->body = nb;
    memcpy(r->body + r->len, p, sz * n);
    r->len += sz * n;
    r->body[r->len] = 0;
    return sz * n;
}

static size_t on_header(char *p, size_t sz, size_t n, void *arg)
{
    struct reply *r = arg;
    size_t len = sz * n;
    if (r->hlen + len < sizeof(r->hdrs)) {
        memcpy(r->hdrs + r->hlen, p, len);
        r->hlen += len;
        r->hdrs[r->hlen] = 0;
    }
    return len;
}

/* method on path with token (NULL: none), body (PUT), an optional Range. */
static struct reply req(struct fx *f, const char *method, const char *path, const char *token,
                        const uint8_t *body, size_t len, const char *range)
{
    struct reply r = {0};
    char url[256], auth[1024];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", f->c.port, path);
    CURL *h = curl_easy_init();
    assert_non_null(h);
    struct curl_slist *hl = NULL;
    if (token) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
        hl = curl_slist_append(hl, auth);
    }
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    if (strcmp(method, "HEAD") == 0)
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    if (body) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
        hl = curl_slist_append(hl, "Expect:");
    }
    if (range)
        curl_easy_setopt(h, CURLOPT_RANGE, range);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &r);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &r);
    r.cc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r.status);
    curl_slist_free_all(hl);
    curl_easy_cleanup(h);
    return r;
}

static void put_ok(struct fx *f, const char *id)
{
    char path[96];
    snprintf(path, sizeof(path), "/v1/fragments/%s", id);
    struct reply r = req(f, "PUT", path, f->svc, f->frag, f->fraglen, NULL);
    assert_int_equal(r.cc, CURLE_OK);
    assert_int_equal(r.status, 201);
    free(r.body);
}

/* GET of id answers 200 with exactly the fragment put. */
static void get_whole(struct fx *f, const char *id)
{
    char path[96];
    snprintf(path, sizeof(path), "/v1/fragments/%s", id);
    struct reply r = req(f, "GET", path, f->svc, NULL, 0, NULL);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.len, f->fraglen);
    assert_memory_equal(r.body, f->frag, f->fraglen);
    free(r.body);
}

static bool stored(struct fx *f, const char *id)
{
    uint64_t size = 0;
    return store_stat(f->c.store, id, &size) == 0;
}

static int64_t metric(struct fx *f, enum container_metric m)
{
    return atomic_load(&f->c.metrics[m].value);
}

/* Flips one byte at off of the stored file of id, behind the container's back. */
static void flip(struct fx *f, const char *id, long off)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%.2s/%s", f->store, id, id);
    FILE *fp = fopen(path, "r+b");
    assert_non_null(fp);
    assert_int_equal(fseek(fp, off, SEEK_SET), 0);
    int ch = fgetc(fp);
    assert_int_not_equal(ch, EOF);
    assert_int_equal(fseek(fp, off, SEEK_SET), 0);
    assert_int_not_equal(fputc(ch ^ 0x40, fp), EOF);
    assert_int_equal(fclose(fp), 0);
}

/* ---- http.c and fetch.c ------------------------------------------------------------------ */

static void test_put_get_head_delete(void **state)
{
    struct fx *f = *state;
    put_ok(f, ID0);
    assert_true(stored(f, ID0));
    get_whole(f, ID0);
    /* A small fragment read whole and verified is served from the cache the next time. */
    assert_int_equal(metric(f, CM_CACHE_HITS), 0);
    get_whole(f, ID0);
    assert_int_equal(metric(f, CM_CACHE_HITS), 1);
    struct reply r = req(f, "HEAD", "/v1/fragments/" ID0, f->svc, NULL, 0, NULL);
    assert_int_equal(r.status, 200);
    char cl[64];
    snprintf(cl, sizeof(cl), "Content-Length: %zu", f->fraglen);
    assert_non_null(strcasestr(r.hdrs, cl));
    assert_int_equal(r.len, 0);
    free(r.body);
    /* A second put of the same id replaces it. */
    put_ok(f, ID0);
    assert_int_equal(metric(f, CM_PUTS), 2);
    /* The replacement dropped the cached copy: a byte flipped on disk now is found. */
    flip(f, ID0, DYNO_FRAG_HDR_SIZE + 4 + 1);
    r = req(f, "GET", "/v1/fragments/" ID0, f->svc, NULL, 0, NULL);
    assert_true(r.cc != CURLE_OK || r.len < f->fraglen);
    free(r.body);
    assert_int_equal(metric(f, CM_CRC_ERRORS), 1);
    r = req(f, "DELETE", "/v1/fragments/" ID0, f->svc, NULL, 0, NULL);
    assert_true(r.status == 200 || r.status == 204);
    free(r.body);
    assert_false(stored(f, ID0));
    r = req(f, "GET", "/v1/fragments/" ID0, f->svc, NULL, 0, NULL);
    assert_int_equal(r.status, 404);
    free(r.body);
}

static void test_range(void **state)
{
    struct fx *f = *state;
    put_ok(f, ID0);
    /* The second record, exactly, as a stripe reader asks for it. */
    char range[64];
    size_t off = DYNO_FRAG_HDR_SIZE + (UNIT + 8), len = UNIT + 8;
    snprintf(range, sizeof(range), "%zu-%zu", off, off + len - 1);
    struct reply r = req(f, "GET", "/v1/fragments/" ID0, f->svc, NULL, 0, range);
    assert_int_equal(r.status, 206);
    assert_int_equal(r.len, len);
    assert_memory_equal(r.body, f->frag + off, len);
    assert_non_null(strcasestr(r.hdrs, "Content-Range: bytes "));
    free(r.body);
    /* A range that ends inside a record. */
    snprintf(range, sizeof(range), "%zu-%zu", off, off + 99);
    r = req(f, "GET", "/v1/fragments/" ID0, f->svc, NULL, 0, range);
    assert_int_equal(r.status, 206);
    assert_int_equal(r.len, 100);
    assert_memory_equal(r.body, f->frag + off, 100);
    free(r.body);
    /* Past the end: 416 with the size. */
    snprintf(range, sizeof(range), "%zu-%zu", f->fraglen + 10, f->fraglen + 20);
    r = req(f, "GET", "/v1/fragments/" ID0, f->svc, NULL, 0, range);
    assert_int_equal(r.status, 416);
    char cr[64];
    snprintf(cr, sizeof(cr), "Content-Range: bytes */%zu", f->fraglen);
    assert_non_null(strcasestr(r.hdrs, cr));
    free(r.body);
}

static void test_bad_ids_and_routes(void **state)
{
    struct fx *f = *state;
    const char *bad[] = {"/v1/fragments/" KEY, "/v1/fragments/" KEY ".01", "/v1/fragments/" KEY ".256",
                         "/v1/fragments/0123456789ABCDEF0123456789abcdef.0", "/v1/fragments/..%2f..%2fetc.0"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct reply r = req(f, "PUT", bad[i], f->svc, f->frag, f->fraglen, NULL);
        assert_int_equal(r.status, 400);
        assert_non_null(strstr((char *)r.body, "bad fragment id"));
        free(r.body);
    }
    struct reply r = req(f, "POST", "/v1/fragments/" ID0, f->svc, NULL, 0, NULL);
    assert_int_equal(r.status, 405);
    assert_non_null(strcasestr(r.hdrs, "Allow: GET, HEAD, PUT, DELETE"));
    free(r.body);
    r = req(f, "GET", "/nowhere", f->svc, NULL, 0, NULL);
    assert_int_equal(r.status, 404);
    free(r.body);
    uint64_t used = 1, frags = 1;
    store_usage(f->c.store, &used, &frags);
    assert_int_equal(frags, 0);
}

/* Only a valid service token of this fabric's key may read or write fragments. */
static void test_auth_refused(void **state)
{
    struct fx *f = *state;
    struct {
        const char *token;
        long status;
    } who[] = {{NULL, 401}, {"garbage", 401}, {f->foreign, 401}, {f->user, 0}};
    for (size_t i = 0; i < sizeof(who) / sizeof(who[0]); i++) {
        struct reply r = req(f, "PUT", "/v1/fragments/" ID0, who[i].token, f->frag, f->fraglen, NULL);
        /* A user token is refused either way: 401 while the verifier is unfed, 403 after. */
        if (who[i].status)
            assert_int_equal(r.status, who[i].status);
        else
            assert_true(r.status == 401 || r.status == 403);
        if (r.status == 401)
            assert_non_null(strcasestr(r.hdrs, "WWW-Authenticate: Bearer"));
        free(r.body);
        assert_false(stored(f, ID0));
    }
    put_ok(f, ID0);
    struct reply r = req(f, "GET", "/v1/fragments/" ID0, f->foreign, NULL, 0, NULL);
    assert_int_equal(r.status, 401);
    free(r.body);
    r = req(f, "DELETE", "/v1/fragments/" ID0, NULL, NULL, 0, NULL);
    assert_int_equal(r.status, 401);
    free(r.body);
    assert_true(stored(f, ID0));
    r = req(f, "GET", "/v1/fragments", NULL, NULL, 0, NULL);
    assert_int_equal(r.status, 401);
    free(r.body);
}

/* A service token verified once is remembered (the verifier's cache, lib/token.c), but
 * expiry and revocation are still checked on every request: revoked, the same token is
 * refused at once by the container. */
static void test_remembered_token_still_revocable(void **state)
{
    struct fx *f = *state;
    put_ok(f, ID0); /* the token is verified and remembered */
    struct reply r = req(f, "GET", "/v1/fragments/" ID0, f->svc, NULL, 0, NULL);
    assert_int_equal(r.status, 200);
    free(r.body);
    assert_int_equal(
        dyno_verifier_revoke(f->c.verifier, "00112233445566778899aabbccddeeff", (int64_t)time(NULL) + 3600),
        0);
    r = req(f, "GET", "/v1/fragments/" ID0, f->svc, NULL, 0, NULL);
    assert_int_equal(r.status, 401);
    free(r.body);
    r = req(f, "DELETE", "/v1/fragments/" ID0, f->svc, NULL, 0, NULL);
    assert_int_equal(r.status, 401);
    free(r.body);
    assert_true(stored(f, ID0));
}

/* A put that does not fit the capacity is refused with 507, stores nothing, and gives its
 * reservation back (teardown checks reserved == 0). */
static void test_capacity_507(void **state)
{
    struct fx *f = *state;
    struct reply r = req(f, "PUT", "/v1/fragments/" ID0, f->svc, f->frag, f->fraglen, NULL);
    assert_int_equal(r.status, 507);
    assert_non_null(strstr((char *)r.body, "no room"));
    free(r.body);
    assert_false(stored(f, ID0));
}

/* Room for one fragment and a half: a second id does not fit, but a new version of the
 * stored one does, credited with the size of the one it replaces (looked up only when the
 * reservation does not fit without it). */
static void test_capacity_credits_a_replacement(void **state)
{
    struct fx *f = *state;
    put_ok(f, ID0);
    struct reply r = req(f, "PUT", "/v1/fragments/" ID1, f->svc, f->frag, f->fraglen, NULL);
    assert_int_equal(r.status, 507);
    free(r.body);
    assert_false(stored(f, ID1));
    put_ok(f, ID0);
    put_ok(f, ID0);
    assert_int_equal(metric(f, CM_PUTS), 3);
    assert_true(stored(f, ID0));
}

/* A body that is not a well-formed fragment of the id in the URL is refused, stores nothing. */
static void test_corrupt_put_refused(void **state)
{
    struct fx *f = *state;
    uint8_t *bad = malloc(f->fraglen);
    assert_non_null(bad);
    memcpy(bad, f->frag, f->fraglen);
    bad[DYNO_FRAG_HDR_SIZE + 4 + 100] ^= 1; /* a payload byte of the first record */
    struct reply r = req(f, "PUT", "/v1/fragments/" ID0, f->svc, bad, f->fraglen, NULL);
    assert_int_equal(r.status, 400);
    free(r.body);
    assert_false(stored(f, ID0));
    /* Whole but for another index than the URL's. */
    r = req(f, "PUT", "/v1/fragments/" KEY ".1", f->svc, f->frag, f->fraglen, NULL);
    assert_int_equal(r.status, 400);
    free(r.body);
    assert_false(stored(f, KEY ".1"));
    /* Cut short. */
    r = req(f, "PUT", "/v1/fragments/" ID0, f->svc, f->frag, f->fraglen - 10, NULL);
    assert_int_equal(r.status, 400);
    free(r.body);
    assert_false(stored(f, ID0));
    free(bad);
}

/* A byte flipped on disk is never served: the stream ends short at the bad record. */
static void test_fetch_never_serves_a_flipped_byte(void **state)
{
    struct fx *f = *state;
    put_ok(f, ID0);
    size_t off = DYNO_FRAG_HDR_SIZE + (UNIT + 8) + 4 + 10; /* in the second record */
    flip(f, ID0, (long)off);
    struct reply r = req(f, "GET", "/v1/fragments/" ID0, f->svc, NULL, 0, NULL);
    assert_true(r.cc != CURLE_OK || r.len < f->fraglen);
    assert_true(r.len <= DYNO_FRAG_HDR_SIZE + (UNIT + 8)); /* only what was verified */
    assert_memory_equal(r.body, f->frag, r.len);
    free(r.body);
    assert_int_equal(metric(f, CM_CRC_ERRORS), 1);
    /* The good first record still reads through a range. */
    char range[64];
    snprintf(range, sizeof(range), "%d-%u", DYNO_FRAG_HDR_SIZE, DYNO_FRAG_HDR_SIZE + UNIT + 7);
    r = req(f, "GET", "/v1/fragments/" ID0, f->svc, NULL, 0, range);
    assert_int_equal(r.status, 206);
    assert_memory_equal(r.body, f->frag + DYNO_FRAG_HDR_SIZE, UNIT + 8);
    free(r.body);
}

/* ---- scrub.c ------------------------------------------------------------------------------ */

static void test_scrub_good_store_passes(void **state)
{
    struct fx *f = *state;
    for (unsigned i = 0; i < 5; i++) {
        char id[48];
        snprintf(id, sizeof(id), "%s.%u", KEY, i);
        f->fraglen = build_frag(f->frag, sizeof(f->frag), i);
        put_ok(f, id);
        uint64_t bytes = 0;
        assert_int_equal(container_frag_verify(&f->c, id, NULL, NULL, &bytes), 0);
        assert_int_equal(bytes, f->fraglen);
        struct container_frag_info info;
        assert_int_equal(container_frag_inspect(&f->c, id, &info), 0);
        assert_true(info.hdr_ok && info.trailer_ok);
        assert_int_equal(info.trailer.records, NREC);
    }
    assert_true(scrub_pass(&f->c));
    assert_int_equal(metric(f, CM_SCRUB_ERRORS), 0);
    assert_int_equal(metric(f, CM_SCRUBBED_BYTES), 5 * (int64_t)f->fraglen);
}

static void test_scrub_finds_a_flipped_byte(void **state)
{
    struct fx *f = *state;
    put_ok(f, ID0);
    f->fraglen = build_frag(f->frag, sizeof(f->frag), 2);
    put_ok(f, KEY ".2");
    flip(f, KEY ".2", DYNO_FRAG_HDR_SIZE + 2 * (UNIT + 8) + 4 + 1); /* the last record */
    uint64_t bytes = 0;
    assert_int_equal(container_frag_verify(&f->c, KEY ".2", NULL, NULL, &bytes), DYNO_ECORRUPT);
    assert_int_equal(container_frag_verify(&f->c, ID0, NULL, NULL, &bytes), 0);
    assert_int_equal(container_frag_verify(&f->c, KEY ".9", NULL, NULL, &bytes), DYNO_ENOTFOUND);
    assert_true(scrub_pass(&f->c));
    assert_int_equal(metric(f, CM_SCRUB_ERRORS), 1);
}

/* The pace: a pass whose bytes run ahead of scrub_rate * elapsed waits (here: is told to
 * stop while it would wait); one within its budget goes on at once. No clock is asserted. */
static void test_scrub_pace_honours_the_rate(void **state)
{
    struct fx *f = *state;
    f->c.cfg.scrub_rate = 1000; /* bytes per second */
    struct scrub_pass ps = {.c = &f->c, .start = scrub_now() - 100.0};
    assert_int_equal(scrub_pace(&ps, 50000), 0); /* 50 s of budget used out of 100 s elapsed */
    pthread_mutex_lock(&f->c.scrub_mu);
    f->c.scrub_stop = true;
    pthread_mutex_unlock(&f->c.scrub_mu);
    assert_int_equal(scrub_pace(&ps, 40000), 0);                /* 90 s: still within */
    assert_int_equal(scrub_pace(&ps, 1000000), DYNO_ETIMEDOUT); /* 1090 s: must wait, and stops */
    assert_int_equal(metric(f, CM_SCRUBBED_BYTES), 1090000);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    dyno_log_init("container", DYNO_LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_put_get_head_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_range, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_ids_and_routes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_auth_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_remembered_token_still_revocable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_capacity_507, setup_small, teardown),
        cmocka_unit_test_setup_teardown(test_capacity_credits_a_replacement, setup_one_and_a_half, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_put_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fetch_never_serves_a_flipped_byte, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scrub_good_store_passes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scrub_finds_a_flipped_byte, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scrub_pace_honours_the_rate, setup, teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
