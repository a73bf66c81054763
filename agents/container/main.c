/*
 * dyno-container: a data container of DynoStore (see container.h). Its options and hooks
 * over the agent skeleton (lib/agent.h dyno_agent_main); the hooks are container.c's.
 */
#include <stddef.h>

#include "agent.h"
#include "config.h"
#include "container.h"

#define OPT(name, type, field, def, help)                                                                    \
    {                                                                                                        \
        name, type, offsetof(struct container_cfg, field), def, help                                         \
    }
static const struct dyno_opt container_opts[] = {
    DYNO_AGENT_COMMON_OPTS(struct container_cfg, c, "c1"),
    OPT("dir", DYNO_OPT_STR, dir, NULL, "fragment folder (created when missing)"),
    OPT("site", DYNO_OPT_STR, site, "", "site name"),
    OPT("backend", DYNO_OPT_STR, backend, "posix",
        "fragment store: posix (dir), s3 or memory (lost at restart)"),
    OPT("memory_max", DYNO_OPT_INT, memory_max, "0", "bytes the memory backend may hold, 0 = capacity"),
    OPT("s3_endpoint", DYNO_OPT_STR, s3_endpoint, NULL, "s3 backend: http(s)://host:port of the service"),
    OPT("s3_bucket", DYNO_OPT_STR, s3_bucket, NULL, "s3 backend: the bucket (must exist)"),
    OPT("s3_prefix", DYNO_OPT_STR, s3_prefix, "", "s3 backend: key prefix of this container's fragments"),
    OPT("s3_region", DYNO_OPT_STR, s3_region, "us-east-1", "s3 backend: SigV4 region"),
    OPT("s3_access_key", DYNO_OPT_STR, s3_access_key, NULL, "s3 backend: access key id"),
    OPT("s3_secret_file", DYNO_OPT_STR, s3_secret_file, NULL, "s3 backend: file holding the secret key"),
    OPT("s3_part_size", DYNO_OPT_INT, s3_part_size, "8M", "s3 backend: fragments over this are multipart"),
    OPT("capacity", DYNO_OPT_INT, capacity, "10G", "bytes this container may hold"),
    OPT("listen_host", DYNO_OPT_STR, listen_host, "127.0.0.1", "HTTP listen address"),
    OPT("port", DYNO_OPT_INT, port, "0", "HTTP port, 0 = any"),
    OPT("port_file", DYNO_OPT_STR, port_file, NULL, "file that receives the bound port"),
    OPT("url", DYNO_OPT_STR, url, NULL, "advertised URL (default http://<listen_host>:<port>)"),
    OPT("status_interval", DYNO_OPT_INT, status_interval, "5", "seconds between status messages"),
    OPT("cache_bytes", DYNO_OPT_INT, cache_bytes, "64M", "memory cache of hot fragments, bytes"),
    OPT("max_connections", DYNO_OPT_INT, max_connections, "256", "concurrent HTTP connections"),
    OPT("stream_timeout", DYNO_OPT_INT, stream_timeout, "120",
        "seconds a connection may move no byte before it is closed"),
    OPT("scrub_rate", DYNO_OPT_INT, scrub_rate, "8M", "bytes per second the scrubber reads at most"),
    OPT("scrub_interval", DYNO_OPT_INT, scrub_interval, "3600", "seconds between full scrub passes, 0 = off"),
    OPT("small_max", DYNO_OPT_INT, small_max, "64K", "fragments up to this many bytes go to volume files"),
    OPT("volume_max", DYNO_OPT_INT, volume_max, "64M", "bytes of a volume file before a new one starts"),
    OPT("compact_min", DYNO_OPT_INT, compact_min, "4M",
        "dead bytes a volume needs (and half its size) before compaction reclaims it"),
};

int main(int argc, char **argv)
{
    static struct container c; /* the only instance, passed around explicitly */
    const struct dyno_agent_hooks hooks = {
        DYNO_AGENT_HOOKS_STATE("container", container_opts, c),
        .interval_key = &c.cfg.status_interval,
        .setup = container_setup,
        .start = container_start,
        .started = container_started,
        .stop = container_stop,
        .cleanup = container_close,
    };
    return dyno_agent_main(argc, argv, &hooks);
}
