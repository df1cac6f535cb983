/*
 * Reference JSON scanner for the differential tests of t/json: the
 * simple byte-at-a-time consent_json.c as it was before the SIMD
 * rewrite, symbols renamed (ref_json_scan, ref_json_str_eq).  The fast
 * scanner in ngx_consent_module/consent_json.c must produce the same
 * return value, tape (ntok and every token, on success and on failure),
 * err string and err_offset for every input.  If the scanner's
 * semantics are ever changed on purpose, change this file the same way.
 */

#include "ref_json.h"
#include <string.h>

#include "consent_core.h"


/* byte classes inside a string body */
#define C_PLAIN   0
#define C_QUOTE   1
#define C_ESC     2
#define C_CTRL    3
#define C_UTF8    4

static const uint8_t  str_class[256] = {
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
    0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4
};


static const char  REF_JSON_ENOMEM[] = "out of memory";


typedef struct {
    consent_json_t      *js;
    const unsigned char *base;
    const unsigned char *p;
    const unsigned char *end;
    consent_alloc_pt     alloc;
    void                *ctx;
} scan_t;


static int
scan_fail(scan_t *s, const unsigned char *at, const char *err)
{
    s->js->err = err;
    s->js->err_offset = (size_t) (at - s->base);
    return -1;
}


static consent_json_tok_t *
scan_push(scan_t *s, uint16_t type, const unsigned char *start)
{
    consent_json_t      *js = s->js;
    consent_json_tok_t  *t;

    if (js->ntok == js->cap) {
        uint32_t  cap = js->cap ? js->cap * 2 : 64;

        /* the old tape stays in the pool; total waste is below 2x */
        t = s->alloc(s->ctx, (size_t) cap * sizeof(consent_json_tok_t));
        if (t == NULL) {
            scan_fail(s, start, REF_JSON_ENOMEM);
            return NULL;
        }

        if (js->ntok) {
            memcpy(t, js->tok, (size_t) js->ntok * sizeof(consent_json_tok_t));
        }

        js->tok = t;
        js->cap = cap;
    }

    t = &js->tok[js->ntok++];
    t->start = (uint32_t) (start - s->base);
    t->end = t->start;
    t->next = js->ntok;
    t->type = type;
    t->escaped = 0;

    return t;
}


static inline const unsigned char *
skip_ws(const unsigned char *p, const unsigned char *end)
{
    while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')) {
        p++;
    }

    return p;
}


static int
hex4(const unsigned char *p, unsigned *v)
{
    unsigned  i, c, r = 0;

    for (i = 0; i < 4; i++) {
        c = p[i];

        if (c >= '0' && c <= '9') {
            c -= '0';

        } else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f') {
            c = (c | 0x20) - 'a' + 10;

        } else {
            return -1;
        }

        r = (r << 4) | c;
    }

    *v = r;
    return 0;
}


/* validates one UTF-8 sequence starting at p, returns its length or 0 */
static size_t
utf8_len(const unsigned char *p, const unsigned char *end)
{
    unsigned  c = p[0];
    size_t    n = (size_t) (end - p);

    if (c >= 0xc2 && c <= 0xdf) {
        return (n >= 2 && (p[1] & 0xc0) == 0x80) ? 2 : 0;
    }

    if (c >= 0xe0 && c <= 0xef) {
        if (n < 3 || (p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80) {
            return 0;
        }

        if (c == 0xe0 && p[1] < 0xa0) {
            return 0;                       /* overlong */
        }

        if (c == 0xed && p[1] >= 0xa0) {
            return 0;                       /* encoded surrogate */
        }

        return 3;
    }

    if (c >= 0xf0 && c <= 0xf4) {
        if (n < 4 || (p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80
            || (p[3] & 0xc0) != 0x80)
        {
            return 0;
        }

        if ((c == 0xf0 && p[1] < 0x90) || (c == 0xf4 && p[1] >= 0x90)) {
            return 0;                       /* overlong or > U+10FFFF */
        }

        return 4;
    }

    return 0;
}


static int
scan_string(scan_t *s, consent_json_tok_t *t)
{
    const unsigned char  *p = s->p + 1, *end = s->end;
    size_t                n;
    unsigned              cls;

    for ( ;; ) {

        /* fast path over plain ASCII, 4 bytes at a time */
        while (end - p >= 4
               && str_class[p[0]] == C_PLAIN && str_class[p[1]] == C_PLAIN
               && str_class[p[2]] == C_PLAIN && str_class[p[3]] == C_PLAIN)
        {
            p += 4;
        }

        if (p >= end) {
            return scan_fail(s, p, "unterminated string");
        }

        cls = str_class[*p];

        switch (cls) {

        case C_PLAIN:
            p++;
            break;

        case C_QUOTE:
            t->end = (uint32_t) (p + 1 - s->base);
            s->p = p + 1;
            return 0;

        case C_ESC:
            t->escaped = 1;

            if (end - p < 2) {
                return scan_fail(s, p, "unterminated string");
            }

            switch (p[1]) {
            case '"': case '\\': case '/': case 'b':
            case 'f': case 'n': case 'r': case 't':
                p += 2;
                break;

            case 'u': {
                unsigned  v;

                if (end - p < 6 || hex4(p + 2, &v) != 0) {
                    return scan_fail(s, p, "invalid \\u escape");
                }

                p += 6;
                break;
            }

            default:
                return scan_fail(s, p, "invalid escape");
            }

            break;

        case C_CTRL:
            return scan_fail(s, p, "control character in string");

        default: /* C_UTF8 */
            n = utf8_len(p, end);
            if (n == 0) {
                return scan_fail(s, p, "invalid UTF-8");
            }

            p += n;
            break;
        }
    }
}


static int
scan_number(scan_t *s, consent_json_tok_t *t)
{
    const unsigned char  *p = s->p, *end = s->end;

    if (p < end && *p == '-') {
        p++;
    }

    if (p >= end) {
        return scan_fail(s, p, "invalid number");
    }

    if (*p == '0') {
        p++;

        if (p < end && *p >= '0' && *p <= '9') {
            return scan_fail(s, p, "leading zero in number");
        }

    } else if (*p >= '1' && *p <= '9') {
        while (p < end && *p >= '0' && *p <= '9') {
            p++;
        }

    } else {
        return scan_fail(s, p, "invalid number");
    }

    if (p < end && *p == '.') {
        p++;

        if (p >= end || *p < '0' || *p > '9') {
            return scan_fail(s, p, "invalid number fraction");
        }

        while (p < end && *p >= '0' && *p <= '9') {
            p++;
        }
    }

    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;

        if (p < end && (*p == '+' || *p == '-')) {
            p++;
        }

        if (p >= end || *p < '0' || *p > '9') {
            return scan_fail(s, p, "invalid number exponent");
        }

        while (p < end && *p >= '0' && *p <= '9') {
            p++;
        }
    }

    t->end = (uint32_t) (p - s->base);
    s->p = p;

    return 0;
}


static int
scan_literal(scan_t *s, consent_json_tok_t *t, const char *lit, size_t n)
{
    if ((size_t) (s->end - s->p) < n || memcmp(s->p, lit, n) != 0) {
        return scan_fail(s, s->p, "invalid literal");
    }

    s->p += n;
    t->end = (uint32_t) (s->p - s->base);

    return 0;
}


int
ref_json_scan(consent_json_t *js, const unsigned char *p, size_t len,
    consent_alloc_pt alloc, void *ctx)
{
    scan_t               s;
    uint32_t             stack[CONSENT_MAX_DEPTH];
    uint32_t             depth;
    consent_json_tok_t  *t, *c;
    int                  want_key;

    js->tok = NULL;
    js->ntok = 0;
    js->cap = 0;
    js->err = NULL;
    js->err_offset = 0;

    if (len > UINT32_MAX - 1) {
        js->err = "document too large";
        return -1;
    }

    s.js = js;
    s.base = p;
    s.p = p;
    s.end = p + len;
    s.alloc = alloc;
    s.ctx = ctx;

    depth = 0;
    want_key = 0;

    for ( ;; ) {

        /* a value (or, inside an object, a key) is expected at s.p */

        s.p = skip_ws(s.p, s.end);

        if (s.p >= s.end) {
            return scan_fail(&s, s.p, "unexpected end of input");
        }

        if (want_key) {
            if (*s.p != '"') {
                return scan_fail(&s, s.p, "expected object key");
            }

            t = scan_push(&s, CONSENT_JSON_STRING, s.p);
            if (t == NULL || scan_string(&s, t) != 0) {
                return -1;
            }

            s.p = skip_ws(s.p, s.end);

            if (s.p >= s.end || *s.p != ':') {
                return scan_fail(&s, s.p, "expected ':'");
            }

            s.p++;
            want_key = 0;
            continue;
        }

        switch (*s.p) {

        case '{':
        case '[':
            if (depth == CONSENT_MAX_DEPTH) {
                return scan_fail(&s, s.p, "nesting too deep");
            }

            t = scan_push(&s, *s.p == '{' ? CONSENT_JSON_OBJECT
                                          : CONSENT_JSON_ARRAY, s.p);
            if (t == NULL) {
                return -1;
            }

            stack[depth++] = js->ntok - 1;
            s.p = skip_ws(s.p + 1, s.end);

            if (s.p < s.end && (*s.p == '}' || *s.p == ']')) {
                if ((*s.p == '}') != (t->type == CONSENT_JSON_OBJECT)) {
                    return scan_fail(&s, s.p, "mismatched bracket");
                }

                /* empty container: closed below */
                goto close;
            }

            want_key = (t->type == CONSENT_JSON_OBJECT);
            continue;

        case '"':
            t = scan_push(&s, CONSENT_JSON_STRING, s.p);
            if (t == NULL || scan_string(&s, t) != 0) {
                return -1;
            }
            break;

        case 't':
            t = scan_push(&s, CONSENT_JSON_TRUE, s.p);
            if (t == NULL || scan_literal(&s, t, "true", 4) != 0) {
                return -1;
            }
            break;

        case 'f':
            t = scan_push(&s, CONSENT_JSON_FALSE, s.p);
            if (t == NULL || scan_literal(&s, t, "false", 5) != 0) {
                return -1;
            }
            break;

        case 'n':
            t = scan_push(&s, CONSENT_JSON_NULL, s.p);
            if (t == NULL || scan_literal(&s, t, "null", 4) != 0) {
                return -1;
            }
            break;

        default:
            if (*s.p == '-' || (*s.p >= '0' && *s.p <= '9')) {
                t = scan_push(&s, CONSENT_JSON_NUMBER, s.p);
                if (t == NULL || scan_number(&s, t) != 0) {
                    return -1;
                }
                break;
            }

            return scan_fail(&s, s.p, "unexpected character");
        }

        /* a value ended: what follows depends on the enclosing container */

        for ( ;; ) {
            s.p = skip_ws(s.p, s.end);

            if (depth == 0) {
                if (s.p != s.end) {
                    return scan_fail(&s, s.p, "trailing characters");
                }

                return 0;
            }

            c = &js->tok[stack[depth - 1]];

            if (s.p >= s.end) {
                return scan_fail(&s, s.p, "unexpected end of input");
            }

            if (*s.p == ',') {
                s.p++;
                want_key = (c->type == CONSENT_JSON_OBJECT);
                break;
            }

            if (*s.p != (c->type == CONSENT_JSON_OBJECT ? '}' : ']')) {
                return scan_fail(&s, s.p, c->type == CONSENT_JSON_OBJECT
                                          ? "expected ',' or '}'"
                                          : "expected ',' or ']'");
            }

        close:

            c = &js->tok[stack[--depth]];
            c->end = (uint32_t) (s.p + 1 - s.base);
            c->next = js->ntok;
            s.p++;
        }
    }
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
        (void) hex4(p + 2, &v);
        p += 6;

        if (v >= 0xd800 && v <= 0xdbff && end - p >= 6 && p[0] == '\\'
            && p[1] == 'u' && hex4(p + 2, &lo) == 0
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
ref_json_str_eq(const unsigned char *base, const consent_json_tok_t *t,
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
