
/*
 * Reading scanned JSON: key comparison, member lookup and string
 * unescaping over the tape, one character decoder for all of them.
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


/* decodes one character of a string body at *pp into UTF-8 in out */

static size_t
str_char(const unsigned char **pp, const unsigned char *end,
    unsigned char *out)
{
    const unsigned char  *p = *pp;
    unsigned              v = 0, lo;

    if (*p != '\\') {
        out[0] = *p;
        *pp = p + 1;
        return 1;
    }

    switch (p[1]) {
    case 'b': out[0] = '\b'; break;
    case 'f': out[0] = '\f'; break;
    case 'n': out[0] = '\n'; break;
    case 'r': out[0] = '\r'; break;
    case 't': out[0] = '\t'; break;
    case 'u':
        /* the scanner validated it: four hex digits follow \u */
        (void) consent_json_hex4(p + 2, &v);
        p += 6;

        if (v >= 0xd800 && v <= 0xdbff && end - p >= 6 && p[0] == '\\'
            && p[1] == 'u' && consent_json_hex4(p + 2, &lo) == 0
            && lo >= 0xdc00 && lo <= 0xdfff)
        {
            v = 0x10000 + ((v - 0xd800) << 10) + (lo - 0xdc00);
            p += 6;
        }

        *pp = p;

        if (v < 0x80) {
            out[0] = (unsigned char) v;
            return 1;
        }

        if (v < 0x800) {
            out[0] = (unsigned char) (0xc0 | (v >> 6));
            out[1] = (unsigned char) (0x80 | (v & 0x3f));
            return 2;
        }

        if (v < 0x10000) {
            out[0] = (unsigned char) (0xe0 | (v >> 12));
            out[1] = (unsigned char) (0x80 | ((v >> 6) & 0x3f));
            out[2] = (unsigned char) (0x80 | (v & 0x3f));
            return 3;
        }

        out[0] = (unsigned char) (0xf0 | (v >> 18));
        out[1] = (unsigned char) (0x80 | ((v >> 12) & 0x3f));
        out[2] = (unsigned char) (0x80 | ((v >> 6) & 0x3f));
        out[3] = (unsigned char) (0x80 | (v & 0x3f));
        return 4;

    default:
        out[0] = p[1];                      /* \" \\ \/ */
        break;
    }

    *pp = p + 2;
    return 1;
}


/* compares a scanned string token, unescaped, with s[0..n) */

int
consent_json_str_eq(const unsigned char *base, const consent_json_tok_t *t,
    const char *s, size_t n)
{
    const unsigned char  *p, *end;
    unsigned char         buf[4];
    size_t                k;

    p = base + t->start + 1;
    end = base + t->end - 1;

    if (!t->escaped) {
        return (size_t) (end - p) == n && memcmp(p, s, n) == 0;
    }

    while (p < end) {
        k = str_char(&p, end, buf);

        if (k > n || memcmp(buf, s, k) != 0) {
            return 0;
        }

        s += k;
        n -= k;
    }

    return n == 0;
}


/* the token was validated by the scanner: escapes are well formed */

size_t
consent_json_str_decode(const unsigned char *base, const consent_json_tok_t *t,
    unsigned char *out)
{
    unsigned char        *o = out;
    const unsigned char  *p = base + t->start + 1, *end = base + t->end - 1;

    if (!t->escaped) {
        memcpy(out, p, (size_t) (end - p));
        return (size_t) (end - p);
    }

    /* never longer than the escaped text */
    while (p < end) {
        o += str_char(&p, end, o);
    }

    return (size_t) (o - out);
}
