/*
 * Backend-independent parts of the fragment store: fragment id validation and the file
 * helpers the posix and volume backends share.
 */
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "dynostore/error.h"

int store_pread_full(int fd, void *buf, size_t len, uint64_t off, size_t *got)
{
    uint8_t *p = buf;
    size_t have = 0;
    while (have < len) {
        ssize_t n = pread(fd, p + have, len - have, (off_t)(off + have));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return DYNO_EIO;
        }
        if (n == 0)
            break;
        have += (size_t)n;
    }
    *got = have;
    return 0;
}

int store_fsync_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return DYNO_EIO;
    int rc = 0;
    if (fsync(fd) != 0 && errno != EINVAL && errno != EROFS)
        rc = DYNO_EIO;
    close(fd);
    return rc;
}

bool store_valid_id(const char *id, char *key, unsigned *index)
{
    if (!id)
        return false;
    for (size_t i = 0; i < DYNO_KEY_LEN; i++) {
        char ch = id[i];
        if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f')))
            return false;
    }
    if (id[DYNO_KEY_LEN] != '.')
        return false;
    const char *p = id + DYNO_KEY_LEN + 1;
    size_t n = strlen(p);
    if (n < 1 || n > 3 || (n > 1 && p[0] == '0'))
        return false;
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return false;
        v = v * 10 + (unsigned)(p[i] - '0');
    }
    if (v > 255)
        return false;
    if (key) {
        memcpy(key, id, DYNO_KEY_LEN);
        key[DYNO_KEY_LEN] = '\0';
    }
    if (index)
        *index = v;
    return true;
}
