/*
 * Backend-independent parts of the fragment store: fragment id validation.
 */
#include "store.h"

#include <string.h>

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
