
/*
 * Consent profiles (issue 13), the pure pieces: event timestamps to
 * milliseconds, RESP2 commands and replies over caller buffers, the
 * stored value's JSON and the compare-and-set script.  libc only.
 */

#include <string.h>

#include "consent_core.h"


/* ------------------------------------------------------------------ */
/* timestamps                                                          */


/* Howard Hinnant's days_from_civil: no libc, no TZ, no locale */

int64_t
consent_days_from_civil(int64_t y, unsigned m, unsigned d)
{
    int64_t   era;
    unsigned  yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = (unsigned) (y - era * 400);
    doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;

    return era * 146097 + (int64_t) doe - 719468;
}


/* n digits at *pp as a number, or -1 */

static int
time_digits(const char **pp, const char *end, unsigned n)
{
    const char  *p = *pp;
    int          v = 0;

    if ((size_t) (end - p) < n) {
        return -1;
    }

    while (n--) {
        if (*p < '0' || *p > '9') {
            return -1;
        }

        v = v * 10 + (*p++ - '0');
    }

    *pp = p;

    return v;
}


static int
time_leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}


/* the offset east of UTC in minutes, or -1 (past end: UTC) */

static int
time_offset(const char *p, const char *end, int *off)
{
    int  sign, h, m;

    if (p == end) {
        *off = 0;
        return 0;
    }

    if ((*p == 'Z' || *p == 'z') && p + 1 == end) {
        *off = 0;
        return 0;
    }

    if (*p != '+' && *p != '-') {
        return -1;
    }

    sign = (*p++ == '-') ? -1 : 1;

    h = time_digits(&p, end, 2);
    m = 0;

    if (p < end) {
        /* +HH:MM or +HHMM, not +HH: */
        if (*p == ':' && end - p == 3) {
            p++;
        }

        m = time_digits(&p, end, 2);
    }

    if (h < 0 || h > 23 || m < 0 || m > 59 || p != end) {
        return -1;
    }

    *off = sign * (h * 60 + m);

    return 0;
}


int
consent_time_parse(const char *s, size_t len, int64_t *ms)
{
    static const unsigned char  mdays[] = {
        31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31
    };

    const char  *p = s, *end = s + len;
    int          y, mo, d, h, mi, sec, frac, n, off;
    int64_t      days;

    y = time_digits(&p, end, 4);
    if (y < 0 || p == end || *p++ != '-') {
        return -1;
    }

    mo = time_digits(&p, end, 2);
    if (mo < 1 || mo > 12 || p == end || *p++ != '-') {
        return -1;
    }

    d = time_digits(&p, end, 2);
    if (d < 1 || d > mdays[mo - 1] + (mo == 2 && time_leap(y))) {
        return -1;
    }

    /* a date alone is refused: no time to order decisions by */
    if (p == end || (*p != 'T' && *p != 't' && *p != ' ')) {
        return -1;
    }

    p++;
    h = time_digits(&p, end, 2);
    if (h < 0 || h > 23 || p == end || *p++ != ':') {
        return -1;
    }

    mi = time_digits(&p, end, 2);
    if (mi < 0 || mi > 59 || p == end || *p++ != ':') {
        return -1;
    }

    sec = time_digits(&p, end, 2);
    if (sec < 0 || sec > 60) {
        return -1;
    }

    /* any number of digits, truncated: rounding could carry a second */
    frac = 0;
    if (p < end && *p == '.') {
        p++;

        for (n = 0; p < end && *p >= '0' && *p <= '9'; n++, p++) {
            if (n < 3) {
                frac = frac * 10 + (*p - '0');
            }
        }

        if (n == 0) {
            return -1;
        }

        for ( /* void */ ; n < 3; n++) {
            frac *= 10;
        }
    }

    if (sec == 60) {                /* a leap second: just before :00 */
        sec = 59;
        frac = 999;
    }

    if (time_offset(p, end, &off) != 0) {
        return -1;
    }

    days = consent_days_from_civil(y, (unsigned) mo, (unsigned) d);

    *ms = ((days * 86400 + h * 3600 + mi * 60 + sec) - (int64_t) off * 60)
          * 1000 + frac;

    return 0;
}


/* ------------------------------------------------------------------ */
/* RESP2                                                               */


/* decimal length of v */

static size_t
resp_ndigits(size_t v)
{
    size_t  n = 1;

    while (v >= 10) {
        v /= 10;
        n++;
    }

    return n;
}


static char *
resp_header(char *o, char type, size_t v)
{
    size_t  n = resp_ndigits(v), i;

    *o++ = type;

    for (i = n; i > 0; i--) {
        o[i - 1] = (char) ('0' + v % 10);
        v /= 10;
    }

    o += n;
    *o++ = '\r';
    *o++ = '\n';

    return o;
}


size_t
consent_resp_command(char *buf, size_t cap, size_t argc,
    const char *const argv[], const size_t lens[])
{
    size_t  i, need, add;
    char   *o;

    need = 1 + resp_ndigits(argc) + 2;

    for (i = 0; i < argc; i++) {
        add = 1 + resp_ndigits(lens[i]) + 2 + 2;

        if (lens[i] > SIZE_MAX - add || need > SIZE_MAX - add - lens[i]) {
            return 0;
        }

        need += add + lens[i];
    }

    if (need > cap) {
        return need;
    }

    o = resp_header(buf, '*', argc);

    for (i = 0; i < argc; i++) {
        o = resp_header(o, '$', lens[i]);

        if (lens[i]) {
            memcpy(o, argv[i], lens[i]);
        }

        o += lens[i];
        *o++ = '\r';
        *o++ = '\n';
    }

    return need;
}


/*
 * The line at p, up to CRLF: its length in *n and 1, 0 if no CRLF yet,
 * -1 if a bare CR or LF is in it or it is too long.
 */

static int
resp_line(const char *p, const char *end, size_t *n)
{
    const char  *q;
    size_t       lim;

    lim = (size_t) (end - p);
    if (lim > CONSENT_RESP_MAX_LINE + 2) {
        lim = CONSENT_RESP_MAX_LINE + 2;
    }

    for (q = p; q < p + lim; q++) {
        if (*q == '\n') {
            return -1;
        }

        if (*q != '\r') {
            continue;
        }

        if (q + 1 == end) {
            return 0;
        }

        if (q[1] != '\n') {
            return -1;
        }

        *n = (size_t) (q - p);
        return 1;
    }

    return lim == (size_t) (end - p) ? 0 : -1;
}


/* a signed decimal, no '+', no leading zeros, fitting int64; or -1 */

static int
resp_int(const char *p, size_t n, int64_t *v)
{
    uint64_t  u = 0, lim;
    int       neg = 0;
    size_t    i;

    if (n && *p == '-') {
        neg = 1;
        p++;
        n--;
    }

    if (n == 0 || n > 19 || (p[0] == '0' && n > 1)) {
        return -1;
    }

    lim = neg ? (uint64_t) INT64_MAX + 1 : (uint64_t) INT64_MAX;

    for (i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') {
            return -1;
        }

        u = u * 10 + (uint64_t) (p[i] - '0');    /* 19 digits: no wrap */
    }

    if (u > lim || (neg && u == 0)) {
        return -1;
    }

    *v = neg ? (int64_t) (0 - u) : (int64_t) u;

    return 0;
}


/* one reply's header (and a bulk payload) at *pp; 1, 0 or -1 */

static int
resp_item(const char **pp, const char *end, size_t max_bulk,
    consent_resp_t *r)
{
    const char  *p = *pp, *line;
    size_t       n;
    int          rc;

    if (p == end) {
        return 0;
    }

    switch (*p) {
    case '+': r->type = CONSENT_RESP_STATUS; break;
    case '-': r->type = CONSENT_RESP_ERROR; break;
    case ':': r->type = CONSENT_RESP_INTEGER; break;
    case '$': r->type = CONSENT_RESP_BULK; break;
    case '*': r->type = CONSENT_RESP_ARRAY; break;
    default: return -1;
    }

    line = ++p;
    rc = resp_line(line, end, &n);
    if (rc <= 0) {
        return rc;
    }

    p = line + n + 2;
    r->data = NULL;
    r->len = 0;
    r->integer = 0;
    r->nelts = 0;
    r->elts = NULL;
    r->elts_len = 0;

    switch (r->type) {

    case CONSENT_RESP_STATUS:
    case CONSENT_RESP_ERROR:
        r->data = line;
        r->len = n;
        break;

    case CONSENT_RESP_INTEGER:
        if (resp_int(line, n, &r->integer) != 0) {
            return -1;
        }
        break;

    case CONSENT_RESP_ARRAY:
        if (resp_int(line, n, &r->integer) != 0 || r->integer < -1
            || r->integer > CONSENT_RESP_MAX_ELTS)
        {
            return -1;
        }

        r->nelts = r->integer > 0 ? (size_t) r->integer : 0;
        break;

    default: /* CONSENT_RESP_BULK */
        if (resp_int(line, n, &r->integer) != 0 || r->integer < -1) {
            return -1;
        }

        if (r->integer == -1) {
            break;
        }

        if ((uint64_t) r->integer > max_bulk) {
            return -1;
        }

        n = (size_t) r->integer;
        if ((size_t) (end - p) < 2 || (size_t) (end - p) - 2 < n) {
            return 0;
        }

        if (p[n] != '\r' || p[n + 1] != '\n') {
            return -1;
        }

        r->data = p;
        r->len = n;
        p += n + 2;
    }

    *pp = p;

    return 1;
}


ptrdiff_t
consent_resp_parse_max(const char *p, size_t len, size_t max_bulk,
    consent_resp_t *out)
{
    const char      *q = p, *end = p + len;
    consent_resp_t   it;
    size_t           left[CONSENT_RESP_MAX_DEPTH];
    unsigned         depth;
    int              rc;

    if (len > PTRDIFF_MAX) {
        return -1;
    }

    rc = resp_item(&q, end, max_bulk, out);
    if (rc <= 0) {
        return rc;
    }

    if (out->nelts == 0) {
        return q - p;
    }

    /* the elements, depth-first, with a stack of counts left */
    out->elts = q;
    left[0] = out->nelts;
    depth = 1;

    while (depth) {
        if (left[depth - 1] == 0) {
            depth--;
            continue;
        }

        left[depth - 1]--;

        rc = resp_item(&q, end, max_bulk, &it);
        if (rc <= 0) {
            return rc;
        }

        /* an array at depth MAX + 1, even empty, is refused */
        if (it.type == CONSENT_RESP_ARRAY && depth == CONSENT_RESP_MAX_DEPTH) {
            return -1;
        }

        if (it.nelts) {
            left[depth++] = it.nelts;
        }
    }

    out->elts_len = (size_t) (q - out->elts);

    return q - p;
}


ptrdiff_t
consent_resp_parse(const char *p, size_t len, consent_resp_t *out)
{
    return consent_resp_parse_max(p, len, CONSENT_RESP_MAX_BULK, out);
}


/* ------------------------------------------------------------------ */
/* the stored value                                                    */


/* v in decimal at o (room: 20); the length */

static size_t
profile_i64(char *o, int64_t v)
{
    char      tmp[20];
    uint64_t  u;
    size_t    n = 0, len = 0;

    u = v < 0 ? 0 - (uint64_t) v : (uint64_t) v;

    do {
        tmp[n++] = (char) ('0' + u % 10);
        u /= 10;
    } while (u);

    if (v < 0) {
        o[len++] = '-';
    }

    while (n) {
        o[len++] = tmp[--n];
    }

    return len;
}


size_t
consent_profile_encode(char *out, size_t cap, const char *prefs,
    size_t prefs_len, int64_t t, const char *source, size_t source_len)
{
    char    num[20], *o;
    size_t  nlen, need;

    nlen = profile_i64(num, t);

    /* the worst case of the escaped source: \u00XX per byte */
    if (prefs_len > SIZE_MAX / 4 || source_len > SIZE_MAX / 16) {
        return 0;
    }

    need = sizeof("{\"p\":,\"t\":,\"e\":\"\"}") - 1 + prefs_len + nlen
           + source_len * 6;

    if (need > cap) {
        return need;
    }

    o = out;
    memcpy(o, "{\"p\":", 5);
    o += 5;
    memcpy(o, prefs, prefs_len);
    o += prefs_len;
    memcpy(o, ",\"t\":", 5);
    o += 5;
    memcpy(o, num, nlen);
    o += nlen;
    memcpy(o, ",\"e\":\"", 6);
    o += 6;

    o = consent_json_str_escape(o, (const unsigned char *) source,
                                source_len);
    if (o == NULL) {
        return 0;
    }

    *o++ = '"';
    *o++ = '}';

    return (size_t) (o - out);
}


/* an integer JSON number token as int64, or -1 */

static int
profile_int(const char *p, size_t n, int64_t *v)
{
    /* the scanner checked the grammar; refuse fractions and exponents */
    if (memchr(p, '.', n) || memchr(p, 'e', n) || memchr(p, 'E', n)) {
        return -1;
    }

    /* resp_int() is as strict as JSON about '-' and leading zeros */
    return resp_int(p, n, v);
}


int
consent_profile_decode(const char *s, size_t len, consent_alloc_pt alloc,
    void *ctx, consent_profile_t *out)
{
    const unsigned char       *b = (const unsigned char *) s;
    const consent_json_tok_t  *tok, *tp, *tt, *te;
    consent_json_t             js;
    uint32_t                   ip, it, ie;

    if (consent_json_scan(&js, b, len, alloc, ctx) != 0) {
        return -1;
    }

    tok = js.tok;
    ip = consent_json_member(b, tok, 0, "p", 1);
    it = consent_json_member(b, tok, 0, "t", 1);
    ie = consent_json_member(b, tok, 0, "e", 1);

    if (ip == 0 || it == 0 || ie == 0) {
        return -1;
    }

    tp = &tok[ip];
    tt = &tok[it];
    te = &tok[ie];

    if (tp->type != CONSENT_JSON_OBJECT || tt->type != CONSENT_JSON_NUMBER
        || te->type != CONSENT_JSON_STRING
        || profile_int(s + tt->start, tt->end - tt->start, &out->t) != 0)
    {
        return -1;
    }

    out->prefs.data = s + tp->start;
    out->prefs.len = tp->end - tp->start;
    out->source.data = s + te->start + 1;
    out->source.len = te->end - te->start - 2;

    return 0;
}


size_t
consent_profile_key(char *out, size_t cap, const char *prefix,
    size_t prefix_len, char kind, const char *id, size_t id_len)
{
    size_t  need;

    if (prefix_len > SIZE_MAX / 2 || id_len > SIZE_MAX / 4) {
        return 0;
    }

    need = prefix_len + id_len + sizeof("{u:}") - 1;

    if (need > cap) {
        return need;
    }

    memcpy(out, prefix, prefix_len);
    out += prefix_len;
    *out++ = '{';
    *out++ = kind;
    *out++ = ':';
    memcpy(out, id, id_len);
    out[id_len] = '}';

    return need;
}


/* ------------------------------------------------------------------ */
/* the compare-and-set script                                          */

/*
 * EVALSHA sha1(CONSENT_PROFILE_SCRIPT) 1 KEY VALUE T ORDER TTL
 *
 * KEY: one profile key, prefix{u:userId} or prefix{a:anonymousId}, a
 * hash: t (decision ms), o (arrival order), v (the
 * consent_profile_encode() value).  One key per call, so that every
 * command touches one Redis Cluster slot.  T: the decision's ms (the
 * event's timestamp); ORDER: the gateway's arrival order (breaks equal
 * T: the later arrival wins); TTL: ms, refreshed on every call.
 * The newer decision is kept, atomically, so two gateways racing
 * cannot lose it.  Returns {written (1 or 0), t, o, v} of the decision
 * stored afterwards: linking two keys (identify, alias) is writing
 * the newer of the two answers to the other key, which is safe to do
 * in a second call since a write never replaces a newer decision.
 * Numbers are compared as Lua numbers: exact below 2^53.
 */

const char  CONSENT_PROFILE_SCRIPT[] =
    "local k, v, t, o = KEYS[1], ARGV[1], tonumber(ARGV[2]), "
    "tonumber(ARGV[3])\n"
    "local h = redis.call('HMGET', k, 't', 'o', 'v')\n"
    "local st, so = tonumber(h[1]), tonumber(h[2])\n"
    "local w = 0\n"
    "if not h[3] or not st or t > st or (t == st and o > (so or -1))"
    " then\n"
    "  redis.call('HSET', k, 't', ARGV[2], 'o', ARGV[3], 'v', v)\n"
    "  h = {ARGV[2], ARGV[3], v}\n"
    "  w = 1\n"
    "end\n"
    "redis.call('PEXPIRE', k, ARGV[4])\n"
    "return {w, h[1], h[2], h[3]}\n";
