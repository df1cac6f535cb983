
/*
 * Preferences a hook returned, written as a JSON object: sorting, UTF-8
 * check and escaping, in the core so that the fuzzer and the unit tests
 * run the code the module forwards with.
 */

#include <stdlib.h>
#include <string.h>

#include "consent_core.h"


static int
pref_cmp(const void *a, const void *b)
{
    const consent_str_t  *x = &((const consent_pref_t *) a)->key;
    const consent_str_t  *y = &((const consent_pref_t *) b)->key;
    int                   rc;

    rc = memcmp(x->data, y->data, x->len < y->len ? x->len : y->len);

    if (rc != 0) {
        return rc;
    }

    return (x->len > y->len) - (x->len < y->len);
}


size_t
consent_prefs_size(const consent_pref_t *prefs, size_t n)
{
    size_t  i, size;

    size = 2;                               /* {} */

    for (i = 0; i < n; i++) {
        size += prefs[i].key.len * 6 + sizeof("\"\":false,") - 1;
    }

    return size;
}


/* bytes as a JSON string body; NULL if they are not UTF-8 */

char *
consent_json_str_escape(char *o, const unsigned char *p, size_t len)
{
    static const char      hex[] = "0123456789abcdef";
    const unsigned char   *end = p + len;
    size_t                 n;

    while (p < end) {
        if (*p == '"' || *p == '\\') {
            *o++ = '\\';
            *o++ = (char) *p++;
            continue;
        }

        if (*p < 0x20) {
            memcpy(o, "\\u00", 4);
            o += 4;
            *o++ = hex[*p >> 4];
            *o++ = hex[*p++ & 0xf];
            continue;
        }

        n = consent_utf8_len(p, end);
        if (n == 0) {
            return NULL;
        }

        memcpy(o, p, n);
        o += n;
        p += n;
    }

    return o;
}


size_t
consent_prefs_json(consent_pref_t *prefs, size_t n, char *out)
{
    char    *o;
    size_t   i;

    if (n > 1) {
        qsort(prefs, n, sizeof(consent_pref_t), pref_cmp);
    }

    o = out;
    *o++ = '{';

    for (i = 0; i < n; i++) {
        if (i) {
            *o++ = ',';
        }

        *o++ = '"';
        o = consent_json_str_escape(o,
                (const unsigned char *) prefs[i].key.data, prefs[i].key.len);
        if (o == NULL) {
            return 0;
        }

        memcpy(o, prefs[i].value ? "\":true" : "\":false",
               prefs[i].value ? 6 : 7);
        o += prefs[i].value ? 6 : 7;
    }

    *o++ = '}';

    return (size_t) (o - out);
}
