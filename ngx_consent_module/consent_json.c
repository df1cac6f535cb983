
/*
 * Strict RFC 8259 JSON scanner.  One pass over the unmodified input
 * builds a flat tape of tokens (offsets only, nothing is copied or
 * decoded); containers know the tape index after their subtree, so
 * callers skip values in O(1).
 *
 * Speed (bench/README.md): with SSE2, quotes_refill() classifies the
 * input 64 bytes at a time into bit masks of quotes, ahead of the
 * walker, so that a plain string costs a few bit operations instead of
 * a search whose latency chains one string to the next; strings with
 * escapes, UTF-8 or errors are scanned by scan_string(), which skips
 * 16 bytes at a time (8 with a portable word-at-a-time loop without
 * SSE2).  The grammar is a goto state machine over locals with tests
 * in the order of frequency of analytics events.
 *
 * The behaviour (tape, err, err_offset, what is accepted, on success
 * and on failure) is exactly that of the simple scanner kept in
 * t/json/ref_json.c, which the tests of t/json compare it with; only
 * the tape's first allocation is larger (see tape_grow()).
 */

#include <string.h>

#include "consent_core.h"

#if defined(__SSE2__) && defined(__GNUC__) && !defined(CONSENT_JSON_NO_SIMD)
#include <emmintrin.h>
#define CONSENT_JSON_SSE2  1
#endif

#if defined(__GNUC__)
#define json_likely(x)    __builtin_expect(!!(x), 1)
#define json_unlikely(x)  __builtin_expect(!!(x), 0)
#define NOINLINE          __attribute__((noinline))
#else
#define json_likely(x)    (x)
#define json_unlikely(x)  (x)
#define NOINLINE
#endif


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


const char  CONSENT_JSON_ENOMEM[] = "out of memory";


#define IS_WS(c)     ((c) == ' ' || (c) == '\n' || (c) == '\r' || (c) == '\t')
#define IS_DIGIT(c)  ((unsigned) ((c) - '0') < 10)


static inline const unsigned char *
skip_ws(const unsigned char *p, const unsigned char *end)
{
    /* every byte > ' ' ends the run: compact JSON leaves at once */
    while (p < end && *p <= ' ' && IS_WS(*p)) {
        p++;
    }

    return p;
}


/*
 * The first byte at or after p that is '"', '\\', below 0x20 or above
 * 0x7f, or end.
 */
static inline const unsigned char *
str_find(const unsigned char *p, const unsigned char *end)
{
#ifdef CONSENT_JSON_SSE2
    const __m128i  quote = _mm_set1_epi8('"');
    const __m128i  bslash = _mm_set1_epi8('\\');
    const __m128i  space = _mm_set1_epi8(' ');
    __m128i        v, m;
    unsigned       mask;

    while (end - p >= 16) {
        v = _mm_loadu_si128((const __m128i *) (const void *) p);

        /* signed compare: < ' ' holds for 0x00-0x1f and for 0x80-0xff */
        m = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote),
                                      _mm_cmpeq_epi8(v, bslash)),
                         _mm_cmplt_epi8(v, space));

        mask = (unsigned) _mm_movemask_epi8(m);

        if (mask) {
            return p + __builtin_ctz(mask);
        }

        p += 16;
    }

#else
    /* 8 bytes at a time: a word with no special byte is skipped whole */
    uint64_t  w, x, q, b, c;

#define ONES  0x0101010101010101ULL
#define HIGH  0x8080808080808080ULL

    while (end - p >= 8) {
        memcpy(&w, p, 8);

        x = w ^ (ONES * '"');
        q = (x - ONES) & ~x;
        x = w ^ (ONES * '\\');
        b = (x - ONES) & ~x;
        c = w - ONES * ' ';                  /* borrows where a byte < ' ' */

        if (((q | b | c | w) & HIGH) != 0) {
            break;
        }

        p += 8;
    }

#undef ONES
#undef HIGH
#endif

    while (p < end && str_class[*p] == C_PLAIN) {
        p++;
    }

    return p;
}


/* four hex digits: the scanner's check and the decoder's value */
int
consent_json_hex4(const unsigned char *p, unsigned *v)
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


/* the same for any byte, for the rest of the module (one validator) */
size_t
consent_utf8_len(const unsigned char *p, const unsigned char *end)
{
    return *p < 0x80 ? 1 : utf8_len(p, end);
}


/*
 * The string whose opening quote is at p[-1]: returns the byte after
 * its closing quote, or NULL with *err and *at set.  *escaped is set
 * when a backslash was seen (before any error, as the tape records).
 */
static NOINLINE const unsigned char *
scan_string(const unsigned char *p, const unsigned char *end,
    uint16_t *escaped, const char **err, const unsigned char **at)
{
    unsigned  c, v;
    size_t    n;

    for ( ;; ) {
        p = str_find(p, end);

        if (json_unlikely(p >= end)) {
            *err = "unterminated string";
            *at = p;
            return NULL;
        }

        c = *p;

        if (json_likely(c == '"')) {
            return p + 1;
        }

        if (c == '\\') {
            *escaped = 1;

            if (end - p < 2) {
                *err = "unterminated string";
                *at = p;
                return NULL;
            }

            switch (p[1]) {
            case '"': case '\\': case '/': case 'b':
            case 'f': case 'n': case 'r': case 't':
                p += 2;
                continue;

            case 'u':
                if (end - p < 6 || consent_json_hex4(p + 2, &v) != 0) {
                    *err = "invalid \\u escape";
                    *at = p;
                    return NULL;
                }

                p += 6;
                continue;

            default:
                *err = "invalid escape";
                *at = p;
                return NULL;
            }
        }

        if (c < 0x20) {
            *err = "control character in string";
            *at = p;
            return NULL;
        }

        /* >= 0x80: whole UTF-8 sequences, as long as they follow */
        do {
            n = utf8_len(p, end);
            if (n == 0) {
                *err = "invalid UTF-8";
                *at = p;
                return NULL;
            }

            p += n;

        } while (p < end && *p >= 0x80);
    }
}

#ifdef CONSENT_JSON_SSE2

/*
 * Where strings end, ahead of the grammar.  Finding a closing quote
 * while walking (load, compare, movemask, count zeros, add) puts ~20
 * cycles of latency between one string and the next.  Instead, blocks
 * of 64 bytes are classified with SSE2, 16 blocks at a time, into bit
 * masks of their quotes, each with a flag: a backslash, a control byte
 * or a byte >= 0x80 lies between it and the quote before it.  The
 * walker takes a string's closing quote from the masks when it is the
 * next quote after the opening one and is not flagged: the body is then
 * plain printable ASCII.  Any other string (escapes, UTF-8, errors) is
 * scanned byte by byte by scan_string(), which decides, and the masks
 * resume after its closing quote.  So escaped quotes need no tracking:
 * a string holding one always takes scan_string(), whose result alone
 * counts; the masks only ever shortcut strings whose end is certain.
 */

#define QUOTES_BLOCKS  16

typedef struct {
    uint64_t              quote;    /* quotes */
    uint64_t              flag;     /* quotes with a special byte before */
    uint64_t              off;      /* offset of the block */
} qblock_t;

typedef struct {
    const unsigned char  *base;
    size_t                len;      /* 0: no masks, every string is scanned */
    size_t                pos;      /* the next block to classify */
    unsigned              special;  /* a special byte since the last quote */
    qblock_t              blk[QUOTES_BLOCKS];
} quotes_t;


/* classifies the next blocks, keeps those with quotes; their number */
static NOINLINE unsigned
quotes_refill(quotes_t *qs)
{
    const __m128i         dq = _mm_set1_epi8('"');
    const __m128i         bs = _mm_set1_epi8('\\');
    const __m128i         sp = _mm_set1_epi8(' ');
    const unsigned char  *b;
    unsigned char         pad[64];
    uint64_t              quote, other, sum;
    size_t                left, pos, last;
    unsigned              k, n, special, cy;
    __m128i               v;

    n = 0;
    pos = qs->pos;
    special = qs->special;
    last = pos + 64 * QUOTES_BLOCKS;

    while (pos < qs->len && pos < last) {
        b = qs->base + pos;
        left = qs->len - pos;

        if (left < 64) {
            /* the tail, padded with spaces: no quote, nothing special */
            memcpy(pad, b, left);
            memset(pad + left, ' ', 64 - left);
            b = pad;
        }

        quote = 0;
        other = 0;

        for (k = 0; k < 4; k++) {
            v = _mm_loadu_si128((const __m128i *) (const void *) (b + 16 * k));

            quote |= (uint64_t) (unsigned) _mm_movemask_epi8(
                         _mm_cmpeq_epi8(v, dq)) << (16 * k);

            /* signed: below ' ' are 0x00-0x1f and 0x80-0xff */
            other |= (uint64_t) (unsigned) _mm_movemask_epi8(
                         _mm_or_si128(_mm_cmpeq_epi8(v, bs),
                                      _mm_cmplt_epi8(v, sp))) << (16 * k);
        }

        /*
         * Adding the special bits (never quotes) to the non-quote bits
         * carries a one from each special byte up to the next quote,
         * where it stops; the carry out of the block is a special byte
         * after its last quote.
         */
        cy = __builtin_add_overflow(~quote, other, &sum);
        cy |= __builtin_add_overflow(sum, (uint64_t) special, &sum);
        special = cy;

        qs->blk[n].quote = quote;
        qs->blk[n].flag = sum & quote;
        qs->blk[n].off = pos;
        n += (quote != 0);

        pos += 64;
    }

    qs->pos = pos;
    qs->special = special;

    return n;
}

#endif


/*
 * The number starting at p (a '-' or a digit): returns the byte after
 * it, or NULL with *err and *at set.
 */
static inline const unsigned char *
scan_number(const unsigned char *p, const unsigned char *end,
    const char **err, const unsigned char **at)
{
    if (*p == '-') {
        p++;

        if (p >= end) {
            goto invalid;
        }
    }

    if (*p == '0') {
        p++;

        if (p < end && IS_DIGIT(*p)) {
            *err = "leading zero in number";
            *at = p;
            return NULL;
        }

    } else if (IS_DIGIT(*p)) {
        do {
            p++;
        } while (p < end && IS_DIGIT(*p));

    } else {
        goto invalid;
    }

    if (p < end && *p == '.') {
        p++;

        if (p >= end || !IS_DIGIT(*p)) {
            *err = "invalid number fraction";
            *at = p;
            return NULL;
        }

        do {
            p++;
        } while (p < end && IS_DIGIT(*p));
    }

    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;

        if (p < end && (*p == '+' || *p == '-')) {
            p++;
        }

        if (p >= end || !IS_DIGIT(*p)) {
            *err = "invalid number exponent";
            *at = p;
            return NULL;
        }

        do {
            p++;
        } while (p < end && IS_DIGIT(*p));
    }

    return p;

invalid:

    *err = "invalid number";
    *at = p;
    return NULL;
}


/* the tape is full: doubles it; the old tape stays in the pool */
static NOINLINE consent_json_tok_t *
tape_grow(consent_json_t *js, uint32_t ntok, size_t len,
    consent_alloc_pt alloc, void *ctx)
{
    uint32_t             cap;
    consent_json_tok_t  *t;

    /*
     * The first tape takes a token per 8 bytes of input (twice as many
     * bytes of tape as of input), at most 64K tokens (1 MB): analytics
     * events have about one token per 8 to 13 bytes, so a batch seldom
     * grows its tape (a copy of it) at all.  Total waste is below 2x.
     */
    if (js->cap) {
        if (js->cap > UINT32_MAX / 2) {
            return NULL;
        }

        cap = js->cap * 2;

    } else {
        cap = (uint32_t) (len / 8);
        cap = (cap < 64) ? 64 : ((cap > 65536) ? 65536 : cap);
    }

    if ((size_t) cap * sizeof(consent_json_tok_t) / sizeof(consent_json_tok_t)
        != cap)
    {
        return NULL;                        /* 32-bit size_t */
    }

    t = alloc(ctx, (size_t) cap * sizeof(consent_json_tok_t));
    if (t == NULL) {
        return NULL;
    }

    if (ntok) {
        memcpy(t, js->tok, (size_t) ntok * sizeof(consent_json_tok_t));
    }

    js->tok = t;
    js->cap = cap;

    return t;
}


/* the kind of the innermost open container */
#define K_TOP     0
#define K_ARRAY   1
#define K_OBJECT  2


int
consent_json_scan(consent_json_t *js, const unsigned char *p, size_t len,
    consent_alloc_pt alloc, void *ctx)
{
    const unsigned char  *base, *end, *q, *at;
    consent_json_tok_t   *tok, *t;
    const char           *err;
    uint32_t              ntok, cap, depth, idx, off;
    uint32_t              stack[CONSENT_MAX_DEPTH];
    uint8_t               kinds[CONSENT_MAX_DEPTH];
    unsigned              c, kind;
#ifdef CONSENT_JSON_SSE2
    quotes_t              qs;
    uint64_t              qm, fm, qoff, e;
    unsigned              qb, qe;
#endif

    js->tok = NULL;
    js->ntok = 0;
    js->cap = 0;
    js->err = NULL;
    js->err_offset = 0;

    if (len > UINT32_MAX - 1) {
        js->err = "document too large";
        return -1;
    }

    base = p;
    end = p + len;
    tok = NULL;
    ntok = 0;
    cap = 0;
    depth = 0;
    kind = K_TOP;

#ifdef CONSENT_JSON_SSE2
    qs.base = p;
    qs.len = len;
    qs.pos = 0;
    qs.special = 0;
    qm = 0;
    fm = 0;
    qoff = 0;
    qb = 0;
    qe = 0;
#endif

    /*
     * PUSH(type, from, to) appends the token [from, to) (a leaf: next is
     * the index after it) and points t at it.  A token that fails to scan
     * is pushed empty before the error, as the tape always had it.
     */

#define PUSH(ty, from, to)                                                    \
    do {                                                                      \
        if (json_unlikely(ntok == cap)) {                                     \
            /* on failure the old tape stays, as its tokens are counted */    \
            t = tape_grow(js, ntok, len, alloc, ctx);                         \
            if (t == NULL) {                                                  \
                err = CONSENT_JSON_ENOMEM;                                    \
                at = (from);                                                  \
                goto fail;                                                    \
            }                                                                 \
            tok = t;                                                          \
            cap = js->cap;                                                    \
        }                                                                     \
        t = &tok[ntok++];                                                     \
        off = (uint32_t) ((from) - base);                                     \
        t->start = off;                                                       \
        t->end = off + (uint32_t) ((to) - (from));                            \
        t->next = ntok;                                                       \
        t->type = (ty);                                                       \
        t->escaped = 0;                                                       \
    } while (0)

#define FAIL(msg, where)                                                      \
    do {                                                                      \
        err = (msg);                                                          \
        at = (where);                                                         \
        goto fail;                                                            \
    } while (0)

/* true, false or null at p; a bad one is pushed empty before the error */
#define LITERAL(ty, s, n)                                                     \
    do {                                                                      \
        if (json_likely(end - p >= (n) && memcmp(p, (s), (n)) == 0)) {        \
            PUSH(ty, p, p + (n));                                             \
            p += (n);                                                         \
            goto after;                                                       \
        }                                                                     \
                                                                              \
        PUSH(ty, p, p);                                                       \
        FAIL("invalid literal", p);                                           \
    } while (0)

    /*
     * STRING() scans the string whose opening quote is at p, pushes its
     * token and sets q past its closing quote.
     */

#ifdef CONSENT_JSON_SSE2

#define QUOTE_NEXT(e)                                                         \
    do {                                                                      \
        if (qm == 0) {                                                        \
            if (qb == qe) {                                                   \
                qe = quotes_refill(&qs);                                      \
                qb = 0;                                                       \
            }                                                                 \
                                                                              \
            if (qb == qe) {                                                   \
                e = UINT64_MAX;                                               \
                break;                                                        \
            }                                                                 \
                                                                              \
            qm = qs.blk[qb].quote;                                            \
            fm = qs.blk[qb].flag;                                             \
            qoff = qs.blk[qb].off;                                            \
            qb++;                                                             \
        }                                                                     \
                                                                              \
        e = (uint64_t) __builtin_ctzll(qm);                                   \
        e = ((qoff + e) << 1) | ((fm >> e) & 1);                              \
        qm &= qm - 1;                                                         \
    } while (0)

#define STRING()                                                              \
    do {                                                                      \
        QUOTE_NEXT(e);                                                        \
                                                                              \
        if (json_likely((e >> 1) == (uint64_t) (p - base))) {                 \
            QUOTE_NEXT(e);                                                    \
                                                                              \
            if (json_likely((e & 1) == 0)) {                                  \
                q = base + (e >> 1) + 1;                                      \
                PUSH(CONSENT_JSON_STRING, p, q);                              \
                break;                                                        \
            }                                                                 \
        }                                                                     \
                                                                              \
        PUSH(CONSENT_JSON_STRING, p, p);                                      \
                                                                              \
        q = scan_string(p + 1, end, &t->escaped, &err, &at);                  \
        if (q == NULL) {                                                      \
            goto fail;                                                        \
        }                                                                     \
                                                                              \
        t->end = (uint32_t) (q - base);                                       \
                                                                              \
        /* the masks resume after the closing quote */                        \
        for ( ;; ) {                                                          \
            if (qm == 0) {                                                    \
                if (qb == qe) {                                               \
                    qe = quotes_refill(&qs);                                  \
                    qb = 0;                                                   \
                }                                                             \
                                                                              \
                if (qb == qe) {                                               \
                    break;                                                    \
                }                                                             \
                                                                              \
                qm = qs.blk[qb].quote;                                        \
                fm = qs.blk[qb].flag;                                         \
                qoff = qs.blk[qb].off;                                        \
                qb++;                                                         \
            }                                                                 \
                                                                              \
            if (qoff + (uint64_t) __builtin_ctzll(qm)                         \
                >= (uint64_t) (q - base))                                     \
            {                                                                 \
                break;                                                        \
            }                                                                 \
                                                                              \
            qm &= qm - 1;                                                     \
        }                                                                     \
    } while (0)

#else

#define STRING()                                                              \
    do {                                                                      \
        PUSH(CONSENT_JSON_STRING, p, p);                                      \
                                                                              \
        q = scan_string(p + 1, end, &t->escaped, &err, &at);                  \
        if (q == NULL) {                                                      \
            goto fail;                                                        \
        }                                                                     \
                                                                              \
        t->end = (uint32_t) (q - base);                                       \
    } while (0)

#endif

value:

    /* a value is expected at p */

    if (json_unlikely(p >= end)) {
        FAIL("unexpected end of input", p);
    }

    /*
     * Tests in the order of frequency in analytics events; a chain of
     * well-predicted conditional branches beats a jump table here.
     */

    c = *p;

    if (c == '"') {
        STRING();

        p = q;
        goto after;
    }

    if (c == 't') {
        LITERAL(CONSENT_JSON_TRUE, "true", 4);
    }

    if (c == 'f') {
        LITERAL(CONSENT_JSON_FALSE, "false", 5);
    }

    if (IS_DIGIT(c) || c == '-') {
        q = scan_number(p, end, &err, &at);

        if (json_unlikely(q == NULL)) {
            PUSH(CONSENT_JSON_NUMBER, p, p);
            goto fail;
        }

        PUSH(CONSENT_JSON_NUMBER, p, q);
        p = q;
        goto after;
    }

    if ((c | 0x20) == '{') {                    /* '{' or '[' */
        if (json_unlikely(depth == CONSENT_MAX_DEPTH)) {
            FAIL("nesting too deep", p);
        }

        PUSH(c == '{' ? CONSENT_JSON_OBJECT : CONSENT_JSON_ARRAY, p, p);

        kind = (c == '{') ? K_OBJECT : K_ARRAY;
        stack[depth] = ntok - 1;
        kinds[depth] = (uint8_t) kind;
        depth++;

        p++;

        if (p < end && *p <= ' ') {
            p = skip_ws(p, end);
        }

        if (p < end && (*p == '}' || *p == ']')) {
            if ((*p == '}') != (c == '{')) {
                FAIL("mismatched bracket", p);
            }

            /* empty container */
            goto close;
        }

        if (kind == K_OBJECT) {
            goto key;
        }

        goto value;
    }

    if (c == 'n') {
        LITERAL(CONSENT_JSON_NULL, "null", 4);
    }

    if (IS_WS(c)) {
        p = skip_ws(p + 1, end);
        goto value;
    }

    FAIL("unexpected character", p);

key:

    /* inside an object, a key is expected at p */

    if (json_unlikely(p >= end)) {
        FAIL("unexpected end of input", p);
    }

    if (json_unlikely(*p != '"')) {
        if (IS_WS(*p)) {
            p = skip_ws(p + 1, end);
            goto key;
        }

        FAIL("expected object key", p);
    }

    STRING();

    p = q;

    if (json_likely(p < end && *p == ':')) {
        p++;
        goto value;
    }

    p = skip_ws(p, end);

    if (p >= end || *p != ':') {
        FAIL("expected ':'", p);
    }

    p++;
    goto value;

after:

    /* a value ended: what follows depends on the enclosing container */

    if (json_unlikely(p >= end)) {
        if (depth == 0) {
            js->tok = tok;
            js->ntok = ntok;
            return 0;
        }

        FAIL("unexpected end of input", p);
    }

    c = *p;

    if (json_likely(c == ',')) {
        p++;

        if (json_likely(kind == K_OBJECT)) {
            goto key;
        }

        if (kind == K_ARRAY) {
            goto value;
        }

        FAIL("trailing characters", p - 1);
    }

    if (c == (kind == K_OBJECT ? '}' : ']')) {
        if (json_unlikely(kind == K_TOP)) {
            FAIL("trailing characters", p);
        }

        goto close;
    }

    if (IS_WS(c)) {
        p = skip_ws(p + 1, end);
        goto after;
    }

    if (kind == K_TOP) {
        FAIL("trailing characters", p);
    }

    FAIL(kind == K_OBJECT ? "expected ',' or '}'" : "expected ',' or ']'", p);

close:

    idx = stack[--depth];
    tok[idx].end = (uint32_t) (p + 1 - base);
    tok[idx].next = ntok;
    p++;
    kind = depth ? kinds[depth - 1] : K_TOP;
    goto after;

fail:

    js->tok = tok;
    js->ntok = ntok;
    js->err = err;
    js->err_offset = (size_t) (at - base);

    return -1;

#undef PUSH
#undef FAIL
#undef LITERAL
#undef STRING
#undef QUOTE_NEXT
}
