/*
 * dyno-mint: mints a DynoStore token from the auth service's private key, offline.
 * An operator tool (and the broker plugin's test helper); see usage() below.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dynostore/error.h"
#include "token.h"

static void usage(FILE *f)
{
    fputs("usage: dyno-mint --keygen PRIV PUB\n"
          "       dyno-mint --key PRIV --sub NAME [--role user|service] [--admin] [--org ORG]\n"
          "                 [--ttl SECONDS | --exp UNIX_TIME] [--jti HEX32]\n"
          "\n"
          "Mints a DynoStore token (lib/token.h) signed with the Ed25519 private key PRIV and\n"
          "prints it on stdout. Anyone holding the matching public key verifies it offline:\n"
          "the gateway, the containers and the broker plugin (dyno_auth.so), where it is the\n"
          "MQTT password of a user (username = NAME) or of a service (username <kind>-<id>).\n"
          "\n"
          "  --keygen PRIV PUB  write a new key pair (PRIV 0600, PEM) and exit\n"
          "  --key PRIV         the private key (DIR/keys/auth.key of a local fabric)\n"
          "  --sub NAME         the user (or service) name, [A-Za-z0-9._-]{1,64}\n"
          "  --role R           user (default) or service\n"
          "  --admin            an admin token\n"
          "  --org ORG          the user's org path, e.g. lab/ct\n"
          "  --ttl SECONDS      lifetime (default 3600; negative mints an expired token)\n"
          "  --exp UNIX_TIME    absolute expiry instead of --ttl\n"
          "  --jti HEX32        the token id (default: random)\n"
          "\n"
          "The token is a secret: it is printed once and never logged. Tokens minted here are\n"
          "unknown to dyno-auth, so they can only be revoked by publishing their jti on\n"
          "dyno/v1/auth/revoked.\n",
          f);
}

static int parse_i64(const char *s, long long *out)
{
    char *end = NULL;

    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0')
        return -1;
    *out = v;
    return 0;
}

/* Copies s into dst (cap bytes); -1 when it does not fit. */
static int copy_arg(char *dst, size_t cap, const char *s)
{
    size_t n = strlen(s);
    if (n >= cap)
        return -1;
    memcpy(dst, s, n + 1);
    return 0;
}

int main(int argc, char **argv)
{
    struct dyno_claims c;
    struct dyno_signer *signer = NULL;
    const char *key = NULL;
    char *token = NULL;
    long long ttl = 3600, exp = 0, v;
    int rc, status = 2;

    memset(&c, 0, sizeof(c));
    if (copy_arg(c.role, sizeof(c.role), "user") != 0)
        return 2;
    if (argc == 4 && strcmp(argv[1], "--keygen") == 0) {
        rc = dyno_token_keygen(argv[2], argv[3]);
        if (rc != 0) {
            fprintf(stderr, "dyno-mint: cannot write the key pair: %s\n", dyno_strerror(rc));
            return 1;
        }
        return 0;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--admin") == 0) {
            c.admin = true;
            continue;
        }
        if (val == NULL) {
            usage(stderr);
            return 2;
        }
        i++;
        if (strcmp(a, "--key") == 0) {
            key = val;
        } else if (strcmp(a, "--sub") == 0) {
            if (copy_arg(c.sub, sizeof(c.sub), val) != 0)
                goto bad;
        } else if (strcmp(a, "--role") == 0) {
            if (copy_arg(c.role, sizeof(c.role), val) != 0)
                goto bad;
        } else if (strcmp(a, "--org") == 0) {
            if (copy_arg(c.org, sizeof(c.org), val) != 0)
                goto bad;
        } else if (strcmp(a, "--jti") == 0) {
            if (copy_arg(c.jti, sizeof(c.jti), val) != 0)
                goto bad;
        } else if (strcmp(a, "--ttl") == 0) {
            if (parse_i64(val, &ttl) != 0)
                goto bad;
        } else if (strcmp(a, "--exp") == 0) {
            if (parse_i64(val, &v) != 0 || v <= 0)
                goto bad;
            exp = v;
        } else {
            usage(stderr);
            return 2;
        }
        continue;
    bad:
        fprintf(stderr, "dyno-mint: bad value for %s\n", a);
        return 2;
    }
    if (key == NULL || c.sub[0] == '\0') {
        usage(stderr);
        return 2;
    }
    c.iat = (int64_t)time(NULL);
    c.exp = exp != 0 ? (int64_t)exp : c.iat + (int64_t)ttl;

    rc = dyno_signer_load(key, &signer);
    if (rc != 0) {
        fprintf(stderr, "dyno-mint: cannot load the private key %s: %s\n", key, dyno_strerror(rc));
        status = 1;
        goto out;
    }
    rc = dyno_token_sign(signer, &c, &token);
    if (rc != 0) {
        fprintf(stderr, "dyno-mint: cannot mint: %s (check --sub, --org, --role, --jti, expiry)\n",
                dyno_strerror(rc));
        status = 1;
        goto out;
    }
    printf("%s\n", token);
    status = 0;
out:
    free(token);
    dyno_signer_free(signer);
    return status;
}
