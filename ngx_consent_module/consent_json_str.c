
/*
 * Reading scanned JSON: member lookup and string unescaping over the
 * tape, for the few values hooks ask for.
 */

#include <string.h>

#include "consent_core.h"


uint32_t
consent_json_member(const unsigned char *base, const consent_json_tok_t *tok,
    uint32_t obj, const char *key, size_t len)
{
    uint32_t  i;

    if (tok[obj].type != CONSENT_JSON_OBJECT) {
        return 0;
    }

    for (i = obj + 1; i < tok[obj].next; i = tok[i + 1].next) {
        if (consent_json_str_eq(base, &tok[i], key, len)) {
            return i + 1;
        }
    }

    return 0;
}


static unsigned
hex(unsigned c)
{
    return (c <= '9') ? c - '0' : (c | 0x20) - 'a' + 10;
}


static unsigned
hex4(const unsigned char *p)
{
    return (hex(p[0]) << 12) | (hex(p[1]) << 8) | (hex(p[2]) << 4) | hex(p[3]);
}


static unsigned char *
put_utf8(unsigned char *o, unsigned v)
{
    if (v < 0x80) {
        *o++ = (unsigned char) v;

    } else if (v < 0x800) {
        *o++ = (unsigned char) (0xc0 | (v >> 6));
        *o++ = (unsigned char) (0x80 | (v & 0x3f));

    } else if (v < 0x10000) {
        *o++ = (unsigned char) (0xe0 | (v >> 12));
        *o++ = (unsigned char) (0x80 | ((v >> 6) & 0x3f));
        *o++ = (unsigned char) (0x80 | (v & 0x3f));

    } else {
        *o++ = (unsigned char) (0xf0 | (v >> 18));
        *o++ = (unsigned char) (0x80 | ((v >> 12) & 0x3f));
        *o++ = (unsigned char) (0x80 | ((v >> 6) & 0x3f));
        *o++ = (unsigned char) (0x80 | (v & 0x3f));
    }

    return o;
}


/* the token was validated by the scanner: escapes are well formed */

size_t
consent_json_str_decode(const unsigned char *base, const consent_json_tok_t *t,
    unsigned char *out)
{
    unsigned              v, lo;
    unsigned char        *o = out;
    const unsigned char  *p = base + t->start + 1, *end = base + t->end - 1;

    if (!t->escaped) {
        memcpy(out, p, (size_t) (end - p));
        return (size_t) (end - p);
    }

    while (p < end) {
        if (*p != '\\') {
            *o++ = *p++;
            continue;
        }

        switch (p[1]) {
        case 'b': *o++ = '\b'; break;
        case 'f': *o++ = '\f'; break;
        case 'n': *o++ = '\n'; break;
        case 'r': *o++ = '\r'; break;
        case 't': *o++ = '\t'; break;
        case 'u':
            v = hex4(p + 2);
            p += 6;

            if (v >= 0xd800 && v <= 0xdbff && end - p >= 6 && p[0] == '\\'
                && p[1] == 'u')
            {
                lo = hex4(p + 2);

                if (lo >= 0xdc00 && lo <= 0xdfff) {
                    v = 0x10000 + ((v - 0xd800) << 10) + (lo - 0xdc00);
                    p += 6;
                }
            }

            /* a lone surrogate is written as its (CESU) three bytes */
            o = put_utf8(o, v);
            continue;

        default:
            *o++ = p[1];
            break;
        }

        p += 2;
    }

    return (size_t) (o - out);
}
