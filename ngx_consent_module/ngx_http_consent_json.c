
/*
 * ngx_consent: JSON text the glue writes (replies, status, audit): the
 * string writer and the UTF-8 repair, one of each.
 */

#include "ngx_http_consent.h"


/*
 * writes s as a JSON string; p must have room for len * 6 + 2 (s is
 * valid UTF-8: ngx_escape_json escapes, it does not validate)
 */

u_char *
ngx_http_consent_json_str(u_char *p, const u_char *s, size_t len)
{
    *p++ = '"';
    p = (u_char *) ngx_escape_json(p, (u_char *) s, len);
    *p++ = '"';

    return p;
}


/*
 * Strings from the configuration or a hook may hold any bytes; a byte
 * that is not part of valid UTF-8 is replaced with the Latin-1 character
 * of the same value, so that what is written is valid JSON (and the
 * audit state reads back exactly as the configuration is recorded).
 */

ngx_int_t
ngx_http_consent_json_utf8(ngx_pool_t *pool, ngx_str_t *s)
{
    u_char  *p, *end, *o, *out;
    size_t   n, bad;

    bad = 0;
    end = s->data + s->len;

    for (p = s->data; p < end; p += n ? n : 1) {
        n = consent_utf8_len(p, end);
        bad += (n == 0);
    }

    if (bad == 0) {
        return NGX_OK;
    }

    out = ngx_pnalloc(pool, s->len + bad);
    if (out == NULL) {
        return NGX_ERROR;
    }

    o = out;

    for (p = s->data; p < end; /* void */) {
        n = consent_utf8_len(p, end);

        if (n) {
            o = ngx_cpymem(o, p, n);
            p += n;
            continue;
        }

        *o++ = (u_char) (0xc0 | (*p >> 6));
        *o++ = (u_char) (0x80 | (*p & 0x3f));
        p++;
    }

    s->data = out;
    s->len = o - out;

    return NGX_OK;
}
