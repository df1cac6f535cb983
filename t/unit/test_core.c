/*
 * Unit tests of the ngx_consent pure core (consent_json.c, consent_event.c).
 *
 *   cc -O1 -g -Wall -Wextra -Werror -std=c99 -Ingx_consent_module \
 *      -fsanitize=address,undefined -o build/unit t/unit/test_core.c \
 *      ngx_consent_module/consent_json.c ngx_consent_module/consent_event.c
 *
 * Self-contained: a tiny check framework, an allocator that records every
 * block (freed after each test, so ASan sees overflows of the core's
 * allocations) and exact-size copies of every input (so ASan sees reads
 * past the end of a body).  Prints one line "N passed, N failed" at the
 * end and exits non-zero when a check failed.
 */

#define _POSIX_C_SOURCE 200809L

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "consent_core.h"


/* ------------------------------------------------------------------ */
/* check framework                                                     */

static unsigned long         n_pass, n_fail;
static const char           *cur_test = "";
static const unsigned char  *g_in;           /* input of the current check */
static size_t                g_in_len;


static void
print_input(const unsigned char *p, size_t len)
{
    size_t  i, lim = len > 700 ? 700 : len;

    fputs("    input: \"", stderr);

    for (i = 0; i < lim; i++) {
        if (p[i] == '\\' || p[i] == '"') {
            fprintf(stderr, "\\%c", p[i]);

        } else if (p[i] >= 0x20 && p[i] < 0x7f) {
            fputc(p[i], stderr);

        } else {
            fprintf(stderr, "\\x%02x", p[i]);
        }
    }

    fprintf(stderr, "\"%s (%zu bytes)\n", lim < len ? "..." : "", len);
}


#if defined(__GNUC__)
__attribute__((format(printf, 5, 6)))
#endif
static int
check_impl(int ok, const char *file, int line, const char *expr,
    const char *fmt, ...)
{
    va_list  ap;

    if (ok) {
        n_pass++;
        return 1;
    }

    n_fail++;
    fprintf(stderr, "%s:%d: FAIL [%s] %s\n    ", file, line, cur_test, expr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);

    if (g_in != NULL) {
        print_input(g_in, g_in_len);
    }

    return 0;
}

#define CHECK(cond, ...)                                                      \
    check_impl(!!(cond), __FILE__, __LINE__, #cond, __VA_ARGS__)

#define CHECK_INT(got, exp)                                                   \
    do {                                                                      \
        long long  g_ = (long long) (got), e_ = (long long) (exp);            \
        CHECK(g_ == e_, "%s: got %lld, expected %lld", #got, g_, e_);         \
    } while (0)


/* ------------------------------------------------------------------ */
/* recording allocator                                                 */

typedef struct {
    void    **blk;
    size_t    n;
    size_t    cap;
    int       limited;      /* fail once budget is spent */
    size_t    budget;
    size_t    nalloc;
} arena_t;

static arena_t  A;


static void *
arena_alloc(void *ctx, size_t size)
{
    arena_t  *a = ctx;
    void     *p;

    if (a->limited) {
        if (a->budget == 0) {
            return NULL;
        }

        a->budget--;
    }

    if (a->n == a->cap) {
        size_t   cap = a->cap ? a->cap * 2 : 256;
        void   **nb = realloc(a->blk, cap * sizeof(void *));

        if (nb == NULL) {
            fprintf(stderr, "out of memory in test allocator\n");
            exit(2);
        }

        a->blk = nb;
        a->cap = cap;
    }

    /* exact size: ASan flags any byte past the request */
    p = malloc(size);
    if (p == NULL && size != 0) {
        fprintf(stderr, "out of memory in test allocator\n");
        exit(2);
    }

    a->blk[a->n++] = p;
    a->nalloc++;

    return p;
}


static void
arena_reset(arena_t *a)
{
    size_t  i;

    for (i = 0; i < a->n; i++) {
        free(a->blk[i]);
    }

    a->n = 0;
    a->limited = 0;
    a->budget = 0;
    a->nalloc = 0;
}


/* an exact-size copy of the input, the scanner must not read past it */
static const unsigned char *
dup_in(const void *s, size_t len)
{
    unsigned char  *b = arena_alloc(&A, len);

    if (len) {
        memcpy(b, s, len);
    }

    g_in = b;
    g_in_len = len;

    return b;
}


/* same, with ' turned into " so JSON in C literals stays readable */
static const unsigned char *
dup_q(const char *s, size_t *lenp)
{
    size_t          i, len = strlen(s);
    unsigned char  *b = arena_alloc(&A, len);

    for (i = 0; i < len; i++) {
        b[i] = (s[i] == '\'') ? '"' : (unsigned char) s[i];
    }

    g_in = b;
    g_in_len = len;
    *lenp = len;

    return b;
}


#define RUN(fn)                                                               \
    do {                                                                      \
        cur_test = #fn;                                                       \
        g_in = NULL;                                                          \
        g_in_len = 0;                                                         \
        fn();                                                                 \
        g_in = NULL;                                                          \
        arena_reset(&A);                                                      \
    } while (0)


/* ------------------------------------------------------------------ */
/* JSON scanner helpers                                                */

static consent_json_t  J;


static int
scan_n(const void *s, size_t len)
{
    const unsigned char  *b = dup_in(s, len);

    return consent_json_scan(&J, b, len, arena_alloc, &A);
}


#define ACCEPT_N(s, n)                                                        \
    do {                                                                      \
        int rc_ = scan_n(s, n);                                               \
        CHECK(rc_ == 0, "expected accept, got error \"%s\" at %zu",           \
              J.err ? J.err : "?", J.err_offset);                             \
    } while (0)

#define REJECT_N(s, n)                                                        \
    do {                                                                      \
        int rc_ = scan_n(s, n);                                               \
        CHECK(rc_ != 0, "expected reject, got accepted (%u tokens)",          \
              (unsigned) J.ntok);                                             \
    } while (0)

#define ACCEPT(lit)  ACCEPT_N(lit, sizeof(lit) - 1)
#define REJECT(lit)  REJECT_N(lit, sizeof(lit) - 1)

/* rejected, with the error at byte off */
#define REJECT_AT(lit, off)                                                   \
    do {                                                                      \
        int rc_ = scan_n(lit, sizeof(lit) - 1);                               \
        CHECK(rc_ != 0 && J.err_offset == (size_t) (off),                     \
              "rc %d err \"%s\" at %zu, expected reject at %zu", rc_,         \
              J.err ? J.err : "-", J.err_offset, (size_t) (off));             \
    } while (0)


/* ------------------------------------------------------------------ */
/* 1. JSON scanner                                                     */

static void
test_json_accept_values(void)
{
    /* every value type at the top level */
    ACCEPT("{}");
    ACCEPT("[]");
    ACCEPT("\"\"");
    ACCEPT("\"abc\"");
    ACCEPT("0");
    ACCEPT("-0");
    ACCEPT("123");
    ACCEPT("-123");
    ACCEPT("1e5");
    ACCEPT("1E5");
    ACCEPT("1.5E-3");
    ACCEPT("1.5e+3");
    ACCEPT("0.0");
    ACCEPT("-0.5e-0");
    ACCEPT("1E+05");
    ACCEPT("12345678901234567890123456789");
    ACCEPT("true");
    ACCEPT("false");
    ACCEPT("null");

    /* nesting and whitespace */
    ACCEPT("{\"a\":{\"b\":[1,2,{\"c\":[]}]},\"d\":null}");
    ACCEPT("[[[[[]]]]]");
    ACCEPT("[{},[],{\"\":\"\"}]");
    ACCEPT(" \t\r\n{ \t\r\n\"a\" \t\r\n: \t\r\n1 \t\r\n, \"b\":[ 1 , 2 ] } \t\r\n");
    ACCEPT("{\"a\":true,\"b\":false,\"c\":null,\"d\":-1.25e10,\"e\":\"x\"}");
    ACCEPT("{\"a\":1,\"a\":2}");                 /* dup keys are grammar */

    /* escapes */
    ACCEPT("\"\\\" \\\\ \\/ \\b \\f \\n \\r \\t\"");
    ACCEPT("\"\\u0041\\u00e9\\u00E9\\u20ac\\uFFFF\"");
    ACCEPT("\"\\ud83d\\ude00\"");                 /* surrogate pair */
    ACCEPT("\"\\uD83D\\uDE00\"");
    ACCEPT("\"\\ud800\"");                        /* lone, grammar allows */
    ACCEPT("\"\\udc00x\"");
    ACCEPT("\"\\u0000\"");

    /* UTF-8 */
    ACCEPT("\"\xc2\x80\"");                       /* U+0080 */
    ACCEPT("\"\xc3\xa9\"");                       /* U+00E9 */
    ACCEPT("\"\xdf\xbf\"");                       /* U+07FF */
    ACCEPT("\"\xe0\xa0\x80\"");                   /* U+0800 */
    ACCEPT("\"\xe2\x82\xac\"");                   /* U+20AC */
    ACCEPT("\"\xed\x9f\xbf\"");                   /* U+D7FF */
    ACCEPT("\"\xee\x80\x80\"");                   /* U+E000 */
    ACCEPT("\"\xef\xbf\xbf\"");                   /* U+FFFF */
    ACCEPT("\"\xf0\x90\x80\x80\"");               /* U+10000 */
    ACCEPT("\"\xf0\x9f\x98\x80\"");               /* U+1F600 */
    ACCEPT("\"\xf4\x8f\xbf\xbf\"");               /* U+10FFFF */
    ACCEPT("\"\x7f\"");                           /* DEL is not control */
    ACCEPT("{\"\xc3\xa9t\xc3\xa9\":\"\xe2\x82\xac\"}");
    ACCEPT("\"abcdefgh\xc3\xa9ijklmnop\"");      /* across the fast path */
}


static void
test_json_reject(void)
{
    /* structure */
    REJECT("");
    REJECT(" ");
    REJECT(" \t\r\n ");
    REJECT("{} x");
    REJECT("{}{}");
    REJECT("[] ]");
    REJECT("1 2");
    REJECT("\"a\" \"b\"");
    REJECT("[1,]");
    REJECT("[,1]");
    REJECT("[1,,2]");
    REJECT("{\"a\":1,}");
    REJECT("{,\"a\":1}");
    REJECT("{\"a\"}");
    REJECT("{\"a\":}");
    REJECT("{\"a\" 1}");
    REJECT("{\"a\":1 \"b\":2}");
    REJECT("[1 2]");
    REJECT("{1:2}");
    REJECT("{a:1}");
    REJECT("{'a':1}");
    REJECT("[");
    REJECT("]");
    REJECT("{");
    REJECT("}");
    REJECT("[1");
    REJECT("[1,");
    REJECT("{\"a\":1");
    REJECT("{\"a\":");
    REJECT("{\"a\"");
    REJECT("[}");
    REJECT("{]");
    REJECT("[1}");
    REJECT("{\"a\":1]");
    REJECT("[{]}");
    REJECT("[[]");
    REJECT("[]]");

    /* numbers */
    REJECT("01");
    REJECT("-01");
    REJECT("00");
    REJECT("-");
    REJECT("-a");
    REJECT("+1");
    REJECT("1.");
    REJECT("1.e5");
    REJECT(".5");
    REJECT("-.5");
    REJECT("1e");
    REJECT("1e+");
    REJECT("1E-");
    REJECT("1e5.0");
    REJECT("0x10");
    REJECT("Infinity");
    REJECT("NaN");
    REJECT("-Infinity");
    REJECT("[01]");
    REJECT("[1.]");
    REJECT("{\"a\":-}");

    /* literals */
    REJECT("tru");
    REJECT("truee");
    REJECT("True");
    REJECT("nul");
    REJECT("NULL");
    REJECT("fals");
    REJECT("[nulx]");

    /* strings */
    REJECT("\"abc");
    REJECT("\"");
    REJECT("\"abc\\\"");
    REJECT("\"\\");
    REJECT("'abc'");
    REJECT("\"a\x01b\"");
    REJECT("\"a\x1f\"");
    REJECT("\"a\nb\"");
    REJECT("\"a\tb\"");
    REJECT("\"\\x41\"");
    REJECT("\"\\a\"");
    REJECT("\"\\0\"");
    REJECT("\"\\U0041\"");
    REJECT("\"\\'\"");
    REJECT("\"\\u12\"");
    REJECT("\"\\u12");
    REJECT("\"\\u\"");
    REJECT("\"\\u12G4\"");
    REJECT("\"\\u 123\"");
    REJECT("\"\\u-123\"");

    /* invalid UTF-8 */
    REJECT("\"\xc0\x80\"");                       /* overlong NUL */
    REJECT("\"\xc1\xbf\"");                       /* overlong */
    REJECT("\"\xe0\x80\x80\"");                   /* overlong 3 bytes */
    REJECT("\"\xe0\x9f\xbf\"");                   /* overlong 3 bytes */
    REJECT("\"\xed\xa0\x80\"");                   /* encoded U+D800 */
    REJECT("\"\xed\xbf\xbf\"");                   /* encoded U+DFFF */
    REJECT("\"\xf0\x80\x80\x80\"");               /* overlong 4 bytes */
    REJECT("\"\xf0\x8f\xbf\xbf\"");
    REJECT("\"\xf4\x90\x80\x80\"");               /* U+110000 */
    REJECT("\"\xf5\x80\x80\x80\"");
    REJECT("\"\xf8\x88\x80\x80\x80\"");
    REJECT("\"\xfe\"");
    REJECT("\"\xff\"");
    REJECT("\"\x80\"");                           /* lone continuation */
    REJECT("\"a\xbf\"");
    REJECT("\"\xc3\"");                           /* truncated */
    REJECT("\"\xc3");
    REJECT("\"\xe2\x82\"");
    REJECT("\"\xe2\x82");
    REJECT("\"\xf0\x9f\x98\"");
    REJECT("\"\xf0\x9f\x98");
    REJECT("\"\xc3\x41\"");                       /* bad continuation */
    REJECT("\"\xe2\x41\xac\"");
    REJECT("\"\xf0\x9f\x41\x80\"");
    REJECT("\"abcdefgh\x80ijklmnop\"");

    /* BOM, NUL, stray bytes outside strings */
    REJECT("\xef\xbb\xbf{}");
    REJECT("\xef\xbb\xbf\"a\"");
    REJECT_N("\0", 1);
    REJECT_N("{}\0", 3);
    REJECT_N("\"a\0b\"", 5);
    REJECT_N("[1,\0]", 5);
    REJECT("\xc2\xa0{}");                         /* NBSP is not whitespace */
    REJECT("\f{}");
    REJECT("\v{}");
    REJECT("{}\f");
    REJECT("/* c */ {}");
}


static void
test_json_err_offset(void)
{
    REJECT_AT("[1,2,x]", 5);
    REJECT_AT("{} x", 3);
    REJECT_AT("[1] x", 4);
    REJECT_AT("\"ab\\x\"", 3);                    /* the backslash */
    REJECT_AT("{\"a\":\"b\x01\"}", 7);            /* control byte */
    REJECT_AT("[\"a\xc0\x80\"]", 3);              /* bad lead byte */
    REJECT_AT("[\"ab\xed\xa0\x80\"]", 4);
    REJECT_AT("\xef\xbb\xbf{}", 0);               /* BOM */
    REJECT_AT("[1,]", 3);
    REJECT_AT("{\"a\":1,}", 7);
    REJECT_AT("{\"a\":1]", 6);
    REJECT_AT("[}", 1);
    REJECT_AT("[1, 2", 5);                        /* end of input */
    REJECT_AT("\"abc", 4);
    REJECT_AT("{\"a\":01}", 6);                   /* the second digit */
    REJECT_AT("[1.]", 3);
    REJECT_AT("[1e]", 3);
    REJECT_AT("", 0);
    REJECT_AT("   ", 3);
}


static void
test_json_depth(void)
{
    char    buf[2 * (CONSENT_MAX_DEPTH + 1) * 5 + 16];
    size_t  i, n;
    int     d;

    /* arrays: 128 levels accepted, 129 rejected */
    for (d = CONSENT_MAX_DEPTH - 1; d <= CONSENT_MAX_DEPTH + 1; d++) {
        n = 0;
        for (i = 0; i < (size_t) d; i++) {
            buf[n++] = '[';
        }
        for (i = 0; i < (size_t) d; i++) {
            buf[n++] = ']';
        }

        if (d <= CONSENT_MAX_DEPTH) {
            ACCEPT_N(buf, n);
            CHECK_INT(J.ntok, d);
            CHECK_INT(J.tok[0].next, d);
            CHECK_INT(J.tok[0].end, n);
            CHECK_INT(J.tok[d - 1].start, d - 1);
            CHECK_INT(J.tok[d - 1].end, d + 1);

        } else {
            REJECT_N(buf, n);
            CHECK_INT(J.err_offset, CONSENT_MAX_DEPTH);
        }
    }

    /* objects: {"a":{"a":...1...}} */
    for (d = CONSENT_MAX_DEPTH; d <= CONSENT_MAX_DEPTH + 1; d++) {
        n = 0;
        for (i = 0; i < (size_t) d; i++) {
            memcpy(buf + n, "{\"a\":", 5);
            n += 5;
        }
        buf[n++] = '1';
        for (i = 0; i < (size_t) d; i++) {
            buf[n++] = '}';
        }

        if (d == CONSENT_MAX_DEPTH) {
            ACCEPT_N(buf, n);
            CHECK_INT(J.ntok, 2 * d + 1);

        } else {
            REJECT_N(buf, n);
        }
    }

    /* deep but mixed, 128 levels exactly, siblings after closing */
    n = 0;
    for (i = 0; i < CONSENT_MAX_DEPTH; i++) {
        buf[n++] = '[';
    }
    for (i = 0; i < CONSENT_MAX_DEPTH; i++) {
        buf[n++] = ']';
        if (i + 1 < CONSENT_MAX_DEPTH) {
            buf[n++] = ',';
            buf[n++] = '[';
            buf[n++] = ']';
        }
    }
    ACCEPT_N(buf, n);
}


static void
test_json_tape(void)
{
    /*          0         1         2
     *          0123456789012345678901234567 */
    static const char  doc[] = "{\"a\":[1,{\"b\":null}],\"c\":\"x\"}";
    static const struct {
        uint16_t  type;
        uint32_t  start, end, next;
    } exp[] = {
        { CONSENT_JSON_OBJECT, 0, 28, 9 },
        { CONSENT_JSON_STRING, 1, 4, 2 },
        { CONSENT_JSON_ARRAY, 5, 19, 7 },
        { CONSENT_JSON_NUMBER, 6, 7, 4 },
        { CONSENT_JSON_OBJECT, 8, 18, 7 },
        { CONSENT_JSON_STRING, 9, 12, 6 },
        { CONSENT_JSON_NULL, 13, 17, 7 },
        { CONSENT_JSON_STRING, 20, 23, 8 },
        { CONSENT_JSON_STRING, 24, 27, 9 },
    };

    /*          0         1         2         3
     *          01234567890123456789012345678901 */
    static const char  doc2[] = " [ {} , [ ] , true,false , -0 ] ";
    static const struct {
        uint16_t  type;
        uint32_t  start, end, next;
    } exp2[] = {
        { CONSENT_JSON_ARRAY, 1, 31, 6 },
        { CONSENT_JSON_OBJECT, 3, 5, 2 },
        { CONSENT_JSON_ARRAY, 8, 11, 3 },
        { CONSENT_JSON_TRUE, 14, 18, 4 },
        { CONSENT_JSON_FALSE, 19, 24, 5 },
        { CONSENT_JSON_NUMBER, 27, 29, 6 },
    };

    size_t  i;
    char    big[1 + 1000 * 4 + 8];
    size_t  n;

    ACCEPT(doc);
    CHECK_INT(J.ntok, sizeof(exp) / sizeof(exp[0]));

    for (i = 0; i < J.ntok && i < sizeof(exp) / sizeof(exp[0]); i++) {
        CHECK(J.tok[i].type == exp[i].type && J.tok[i].start == exp[i].start
              && J.tok[i].end == exp[i].end && J.tok[i].next == exp[i].next,
              "tok %zu: type %u [%u,%u) next %u, expected type %u [%u,%u) "
              "next %u", i, J.tok[i].type, J.tok[i].start, J.tok[i].end,
              J.tok[i].next, exp[i].type, exp[i].start, exp[i].end,
              exp[i].next);
    }

    ACCEPT(doc2);
    CHECK_INT(J.ntok, sizeof(exp2) / sizeof(exp2[0]));

    for (i = 0; i < J.ntok && i < sizeof(exp2) / sizeof(exp2[0]); i++) {
        CHECK(J.tok[i].type == exp2[i].type
              && J.tok[i].start == exp2[i].start
              && J.tok[i].end == exp2[i].end && J.tok[i].next == exp2[i].next,
              "tok %zu: type %u [%u,%u) next %u, expected type %u [%u,%u) "
              "next %u", i, J.tok[i].type, J.tok[i].start, J.tok[i].end,
              J.tok[i].next, exp2[i].type, exp2[i].start, exp2[i].end,
              exp2[i].next);
    }

    /* escaped flag */
    ACCEPT("[\"plain\",\"a\\nb\",\"\\u0041\",\"\xc3\xa9\"]");
    CHECK_INT(J.tok[1].escaped, 0);
    CHECK(J.tok[2].escaped != 0, "\"a\\nb\" not marked escaped");
    CHECK(J.tok[3].escaped != 0, "\"\\u0041\" not marked escaped");
    CHECK_INT(J.tok[4].escaped, 0);
    CHECK_INT(J.tok[4].end - J.tok[4].start, 4);

    /* a scalar document */
    ACCEPT("  -12.5e3  ");
    CHECK_INT(J.ntok, 1);
    CHECK_INT(J.tok[0].type, CONSENT_JSON_NUMBER);
    CHECK_INT(J.tok[0].start, 2);
    CHECK_INT(J.tok[0].end, 9);
    CHECK_INT(J.tok[0].next, 1);

    /* tape growth past the first allocation: [0,0,...] of 1000 */
    n = 0;
    big[n++] = '[';
    for (i = 0; i < 1000; i++) {
        if (i) {
            big[n++] = ',';
        }
        big[n++] = (char) ('0' + i % 10);
    }
    big[n++] = ']';

    ACCEPT_N(big, n);
    CHECK_INT(J.ntok, 1001);
    CHECK_INT(J.tok[0].next, 1001);
    CHECK_INT(J.tok[0].end, n);
    CHECK_INT(J.tok[1000].start, n - 2);
    CHECK_INT(J.tok[1000].next, 1001);

    /* siblings skip over their subtree with next */
    ACCEPT("[[1,[2,[3]]],{\"k\":{\"k\":{}}},4]");
    CHECK_INT(J.tok[0].next, J.ntok);
    CHECK_INT(J.tok[1].next, 7);               /* [1,[2,[3]]] = 6 tokens */
    CHECK_INT(J.tok[7].type, CONSENT_JSON_OBJECT);
    CHECK_INT(J.tok[7].next, 12);
    CHECK_INT(J.tok[12].type, CONSENT_JSON_NUMBER);
}


static void
test_json_truncation(void)
{
    static const char  *docs[] = {
        "{\"type\":\"track\",\"userId\":\"u\\u00e9\",\"n\":-1.5e-3,"
        "\"a\":[true,false,null,{},[]],\"s\":\"\xf0\x9f\x98\x80\xc3\xa9\","
        "\"context\":{\"consent\":{\"categoryPreferences\":{\"C0002\":true}}}}",
        "[ 1 , \"\\ud83d\\ude00\" , { \"x\" : [ 0.5 ] } ]",
        "{\"batch\":[{\"a\":1},{\"b\":\"\\\"\"}],\"k\":\"\xe2\x82\xac\"}",
    };

    size_t  d, k, len, bad;
    int     rc;

    for (d = 0; d < sizeof(docs) / sizeof(docs[0]); d++) {
        len = strlen(docs[d]);
        ACCEPT_N(docs[d], len);

        bad = 0;
        for (k = 0; k < len; k++) {
            rc = scan_n(docs[d], k);
            if (rc == 0 || J.err_offset > k) {
                bad++;
                CHECK(0, "prefix of %zu bytes: rc %d err_offset %zu",
                      k, rc, J.err_offset);
            }
        }

        CHECK(bad == 0, "doc %zu: %zu prefixes accepted", d, bad);
    }

    /* the same through consent_process: always invalid_json */
    {
        consent_policy_t  pol;
        consent_result_t  res;

        memset(&pol, 0, sizeof(pol));
        pol.max_event_size = 1 << 20;
        pol.max_events = 100;

        len = strlen(docs[0]);
        bad = 0;
        for (k = 0; k < len; k++) {
            const unsigned char *b = dup_in(docs[0], k);

            if (consent_process(&pol, CONSENT_EP_TRACK, b, k, arena_alloc, &A,
                                &res) != CONSENT_INVALID_JSON)
            {
                bad++;
            }
        }

        CHECK(bad == 0, "%zu prefixes not invalid_json", bad);
    }
}


static void
test_json_oom(void)
{
    char    big[1 + 200 * 2 + 2];
    size_t  n = 0, i, budget;
    int     rc;

    big[n++] = '[';
    for (i = 0; i < 200; i++) {
        if (i) {
            big[n++] = ',';
        }
        big[n++] = '1';
    }
    big[n++] = ']';

    /* growth needs several allocations: each failure is reported */
    for (budget = 0; budget < 3; budget++) {
        const unsigned char  *b = dup_in(big, n);

        A.limited = 1;
        A.budget = budget;
        rc = consent_json_scan(&J, b, n, arena_alloc, &A);
        A.limited = 0;

        CHECK(rc != 0 && J.err != NULL, "budget %zu: rc %d", budget, rc);
    }

    A.limited = 1;
    A.budget = 100;
    rc = scan_n(big, n);
    A.limited = 0;
    CHECK(rc == 0, "budget 100: rc %d", rc);
}


/* ------------------------------------------------------------------ */
/* 2. consent_json_str_eq                                              */

/* scans a one-string document and compares its token with s */
static int
str_eq(const char *json, const char *s, size_t n)
{
    size_t                len = strlen(json);
    const unsigned char  *b = dup_in(json, len);

    if (consent_json_scan(&J, b, len, arena_alloc, &A) != 0
        || J.tok[0].type != CONSENT_JSON_STRING)
    {
        return -1;
    }

    return consent_json_str_eq(b, &J.tok[0], s, n);
}

#define EQ(json, s)                                                           \
    do {                                                                      \
        int r_ = str_eq(json, s, sizeof(s) - 1);                              \
        CHECK(r_ == 1, "%s should equal \"%s\" (got %d)", json, s, r_);       \
    } while (0)

#define NE(json, s)                                                           \
    do {                                                                      \
        int r_ = str_eq(json, s, sizeof(s) - 1);                              \
        CHECK(r_ == 0, "%s should differ from \"%s\" (got %d)", json, s, r_); \
    } while (0)


static void
test_str_eq(void)
{
    EQ("\"C002\"", "C002");
    EQ("\"\"", "");
    NE("\"C002\"", "C00");
    NE("\"C002\"", "C0022");
    NE("\"C002\"", "C003");
    NE("\"\"", "a");
    NE("\"a\"", "");

    EQ("\"C\\u00302\"", "C02");            /* \u0030 is one '0' */
    EQ("\"C0\\u00302\"", "C002");
    EQ("\"\\u0043\\u0030\\u0030\\u0032\"", "C002");
    NE("\"C0\\u00302\"", "C00");
    NE("\"C0\\u00302\"", "C0022");
    NE("\"C\\u00302\"", "C002");
    NE("\"C\\u00302\"", "C\\u00302");
    EQ("\"categoryPreferenc\\u0065s\"", "categoryPreferences");
    EQ("\"\\u0061mplitude\"", "amplitude");

    EQ("\"\\ud83d\\ude00\"", "\xf0\x9f\x98\x80");
    EQ("\"\\uD83D\\uDE00\"", "\xf0\x9f\x98\x80");
    EQ("\"x\\ud83d\\ude00y\"", "x\xf0\x9f\x98\x80y");
    EQ("\"\xf0\x9f\x98\x80\"", "\xf0\x9f\x98\x80");
    NE("\"\\ud83d\\ude00\"", "\xf0\x9f\x98");
    NE("\"\\ud83d\\ude00\"", "\xf0\x9f\x98\x80!");
    EQ("\"\\u00e9\"", "\xc3\xa9");
    EQ("\"\\u00E9t\\u00e9\"", "\xc3\xa9t\xc3\xa9");
    EQ("\"\\u20ac\"", "\xe2\x82\xac");
    EQ("\"\\u07ff\"", "\xdf\xbf");
    EQ("\"\\u0800\"", "\xe0\xa0\x80");
    EQ("\"\\uffff\"", "\xef\xbf\xbf");
    EQ("\"\\udbff\\udfff\"", "\xf4\x8f\xbf\xbf");

    EQ("\"a\\\"b\"", "a\"b");
    EQ("\"a\\\\b\"", "a\\b");
    EQ("\"\\/\"", "/");
    EQ("\"\\b\\f\\n\\r\\t\"", "\b\f\n\r\t");
    NE("\"\\n\"", "n");
    NE("\"\\n\"", "\\n");
    EQ("\"a\\u0000b\"", "a\0b");
}


/* ------------------------------------------------------------------ */
/* 3. consent_endpoint and name tables                                 */

static consent_endpoint_e
endpoint(const char *path)
{
    size_t                len = strlen(path);
    const unsigned char  *b = dup_in(path, len);

    return consent_endpoint((const char *) b, len);
}

#define EP(path, exp)                                                         \
    do {                                                                      \
        consent_endpoint_e e_ = endpoint(path);                               \
        CHECK(e_ == (exp), "%s: got %d (%s), expected %d", path, (int) e_,    \
              consent_type_name(e_), (int) (exp));                            \
    } while (0)


static void
test_endpoint(void)
{
    EP("/v1/track", CONSENT_EP_TRACK);
    EP("/v1/identify", CONSENT_EP_IDENTIFY);
    EP("/v1/page", CONSENT_EP_PAGE);
    EP("/v1/screen", CONSENT_EP_SCREEN);
    EP("/v1/group", CONSENT_EP_GROUP);
    EP("/v1/alias", CONSENT_EP_ALIAS);
    EP("/v1/batch", CONSENT_EP_BATCH);
    EP("/v1/import", CONSENT_EP_BATCH);
    EP("/x/v1/page/", CONSENT_EP_PAGE);
    EP("/v1/track/", CONSENT_EP_TRACK);
    EP("track", CONSENT_EP_TRACK);
    EP("/a/b/c/d/batch", CONSENT_EP_BATCH);
    EP("/v1/unknown", CONSENT_EP_NONE);
    EP("/v1/tracks", CONSENT_EP_NONE);
    EP("/v1/trac", CONSENT_EP_NONE);
    EP("/v1/xtrack", CONSENT_EP_NONE);
    EP("/v1/imports", CONSENT_EP_NONE);
    EP("/v1/", CONSENT_EP_NONE);
    EP("/", CONSENT_EP_NONE);
    EP("", CONSENT_EP_NONE);
    EP("/track/v1", CONSENT_EP_NONE);

    /* the stock clients' short paths (analytics.js, the mobile SDKs) */
    EP("/v1/t", CONSENT_EP_TRACK);
    EP("/v1/i", CONSENT_EP_IDENTIFY);
    EP("/v1/p", CONSENT_EP_PAGE);
    EP("/v1/s", CONSENT_EP_SCREEN);
    EP("/v1/g", CONSENT_EP_GROUP);
    EP("/v1/a", CONSENT_EP_ALIAS);
    EP("/v1/b", CONSENT_EP_BATCH);
    EP("/v1/b/", CONSENT_EP_BATCH);
    EP("/v1/m", CONSENT_EP_TELEMETRY);
    EP("/v1/x", CONSENT_EP_NONE);
    EP("/v1/T", CONSENT_EP_NONE);
    EP("/v1/tt", CONSENT_EP_NONE);
    EP("/v1/telemetry", CONSENT_EP_NONE);
    EP("/t/v1", CONSENT_EP_NONE);

    CHECK(strcmp(consent_type_name(CONSENT_EP_TRACK), "track") == 0, "track");
    CHECK(strcmp(consent_type_name(CONSENT_EP_ALIAS), "alias") == 0, "alias");
    CHECK(strcmp(consent_type_name(CONSENT_EP_BATCH), "batch") == 0, "batch");
    CHECK(strcmp(consent_type_name(CONSENT_EP_TELEMETRY), "telemetry") == 0,
          "telemetry");
}


/* a hook's preferences as JSON: sorted, escaped, UTF-8 or refused */

#define PJSON(exp, ...)                                                       \
    do {                                                                      \
        consent_pref_t  p_[] = { __VA_ARGS__ };                               \
        size_t          n_ = sizeof(p_) / sizeof(p_[0]);                      \
        char            o_[256];                                              \
        size_t          l_;                                                   \
        CHECK(consent_prefs_size(p_, n_) <= sizeof(o_), "size");              \
        l_ = consent_prefs_json(p_, n_, o_);                                  \
        CHECK(l_ == sizeof(exp) - 1 && memcmp(o_, exp, l_) == 0,             \
              "got %.*s, expected %s", (int) l_, o_, exp);                    \
    } while (0)

#define K(s, v)  { { s, sizeof(s) - 1 }, v }


static void
test_prefs_json(void)
{
    char  o[16];

    CHECK(consent_prefs_json(NULL, 0, o) == 2 && memcmp(o, "{}", 2) == 0,
          "empty");
    PJSON("{\"C0002\":true,\"C0004\":false}", K("C0004", 0), K("C0002", 1));
    PJSON("{\"a\":true,\"ab\":false,\"b\":true}",
          K("b", 1), K("ab", 0), K("a", 1));
    PJSON("{\"\":true,\"\\u0000\":false}", K("\0", 0), K("", 1));
    PJSON("{\"q\\\"\\\\\\u000a\\u001f\":true}", K("q\"\\\n\x1f", 1));
    PJSON("{\"\x7f\xc3\xa9\xf0\x9f\x8d\xaa\":false}",
          K("\x7f\xc3\xa9\xf0\x9f\x8d\xaa", 0));
    PJSON("", K("ok", 1), K("\xff\xfe", 1));
    PJSON("", K("\xc0\x80", 0));                    /* overlong */
    PJSON("", K("\xed\xa0\x80", 0));                /* surrogate */
    PJSON("", K("\xe2\x82", 0));                    /* truncated */
    PJSON("", K("\xf4\x90\x80\x80", 0));            /* > U+10FFFF */
}


static void
test_names(void)
{
    static const struct {
        consent_code_e  code;
        const char     *name;
    } codes[] = {
        { CONSENT_INVALID_JSON, "invalid_json" },
        { CONSENT_TOO_LARGE, "too_large" },
        { CONSENT_EMPTY_BATCH, "empty_batch" },
        { CONSENT_NO_USER_ANON_ID, "no_user_anon_id" },
        { CONSENT_PREFS_SHOULD_EXIST,
          "consent_categorypreferences_should_exist" },
        { CONSENT_PREFS_SHOULD_BE_OBJECT,
          "consent_categorypreferences_fields_should_be_object" },
        { CONSENT_PREFS_SHOULD_BE_BOOL,
          "consent_categorypreferences_fields_should_be_bool" },
        { CONSENT_VERSION_SHOULD_BE_NUMBER,
          "consent_version_should_be_number" },
        { CONSENT_INVALID_TYPE, "invalid_type" },
        { CONSENT_DUPLICATE_KEY, "duplicate_key" },
        { CONSENT_INVALID_EVENT, "invalid_event" },
    };

    static const struct {
        consent_code_e  code;
        const char     *msg;
    } msgs[] = {
        { CONSENT_NO_USER_ANON_ID, "userId or anonymousId is required" },
        { CONSENT_INVALID_TYPE,
          "type is missing, unknown or contradicts the endpoint" },
        { CONSENT_DUPLICATE_KEY, "duplicate key in event" },
        { CONSENT_INVALID_EVENT, "event must be a JSON object" },
        { CONSENT_PREFS_SHOULD_EXIST,
          "context.consent.categoryPreferences object is required" },
        { CONSENT_PREFS_SHOULD_BE_OBJECT,
          "context.consent.categoryPreferences must be an object" },
        { CONSENT_PREFS_SHOULD_BE_BOOL,
          "context.consent.categoryPreferences values must be booleans" },
        { CONSENT_VERSION_SHOULD_BE_NUMBER,
          "context.consent.version must be a number" },
        { CONSENT_EMPTY_BATCH, "batch holds no events" },
    };

    size_t  i;

    for (i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        CHECK(strcmp(consent_code_name(codes[i].code), codes[i].name) == 0,
              "code %d: \"%s\", expected \"%s\"", (int) codes[i].code,
              consent_code_name(codes[i].code), codes[i].name);
    }

    for (i = 0; i < sizeof(msgs) / sizeof(msgs[0]); i++) {
        CHECK(strcmp(consent_code_message(msgs[i].code), msgs[i].msg) == 0,
              "code %d: \"%s\", expected \"%s\"", (int) msgs[i].code,
              consent_code_message(msgs[i].code), msgs[i].msg);
    }

    CHECK(strcmp(consent_outcome_name(CONSENT_DELIVER), "delivered") == 0,
          "%s", consent_outcome_name(CONSENT_DELIVER));
    CHECK(strcmp(consent_outcome_name(CONSENT_FILTERED_CONSENT),
                 "filtered_consent") == 0, "%s",
          consent_outcome_name(CONSENT_FILTERED_CONSENT));
    CHECK(strcmp(consent_outcome_name(CONSENT_FILTERED_INTEGRATIONS),
                 "filtered_integrations") == 0, "%s",
          consent_outcome_name(CONSENT_FILTERED_INTEGRATIONS));
}


/* ------------------------------------------------------------------ */
/* 4. consent_process                                                  */

/*
 * categories C0001..C0005 (index 0..4)
 * dests: 0 amplitude C0002, 1 facebook C0004+C0005,
 *        2 warehouse C0001 enforce=off, 3 webhook unmapped
 */

#define BIT(c)  ((uint64_t) 1 << (c))

static consent_str_t     cats[5];
static consent_dest_t    dests[4];
static consent_policy_t  P;


static consent_str_t
str(const char *s)
{
    consent_str_t  v;

    v.data = s;
    v.len = strlen(s);
    return v;
}


static void
init_policy(void)
{
    cats[0] = str("C0001");
    cats[1] = str("C0002");
    cats[2] = str("C0003");
    cats[3] = str("C0004");
    cats[4] = str("C0005");

    memset(dests, 0, sizeof(dests));

    dests[0].name = str("amplitude");
    dests[0].enforce = 1;
    dests[0].mask[0] = BIT(1);

    dests[1].name = str("facebook");
    dests[1].enforce = 1;
    dests[1].mask[0] = BIT(3) | BIT(4);

    dests[2].name = str("warehouse");
    dests[2].enforce = 0;
    dests[2].mask[0] = BIT(0);

    dests[3].name = str("webhook");
    dests[3].enforce = 1;

    memset(&P, 0, sizeof(P));
    P.categories = cats;
    P.ncategories = 5;
    P.dests = dests;
    P.ndests = 4;
    P.max_event_size = 32 * 1024;
    P.max_events = 2500;
}


/*
 * Policies are routed twice: as filled in (keys compared one by one) and
 * after consent_policy_prepare() (hash index for unescaped keys).
 */
static arena_t           PA;                /* lives for the whole run */
static consent_policy_t  P_prep;
static int               indexed;


static void
use_index(consent_policy_t *p, const consent_policy_t *prep, int on)
{
    p->cat_index = on ? prep->cat_index : NULL;
    p->cat_mask = on ? prep->cat_mask : 0;
    p->dest_index = on ? prep->dest_index : NULL;
    p->dest_mask = on ? prep->dest_mask : 0;
}


/* a modified copy of a policy must be indexed anew, or not at all */
static void
reindex(consent_policy_t *p)
{
    use_index(p, p, 0);

    if (indexed) {
        CHECK(consent_policy_prepare(p, arena_alloc, &A) == 0,
              "consent_policy_prepare failed");
    }
}


static consent_result_t      R;
static const unsigned char  *RB;


static consent_code_e
proc(const consent_policy_t *pol, consent_endpoint_e ep, const char *q)
{
    size_t  len;

    RB = dup_q(q, &len);
    return consent_process(pol, ep, RB, len, arena_alloc, &A, &R);
}


/* outcomes as "DCIS" letters, one group per event, '|' between events */
static const char *
routes(void)
{
    static char  s[8192];
    size_t       k = 0, e, d;

    for (e = 0; e < R.nevents && k + R.ndests + 2 < sizeof(s); e++) {
        if (e) {
            s[k++] = '|';
        }

        for (d = 0; d < R.ndests; d++) {
            uint8_t  o = R.outcome[e * R.ndests + d];
            s[k++] = o <= 3 ? "SDCI"[o] : '?';
        }
    }

    s[k] = '\0';
    return s;
}

/* amplitude, facebook, warehouse, webhook */
#define ROUTE(ep, q, exp)                                                     \
    do {                                                                      \
        consent_code_e c_ = proc(&P, ep, q);                                  \
        const char *r_ = routes();                                            \
        CHECK(c_ == CONSENT_OK && strcmp(r_, exp) == 0,                       \
              "code %s, routes %s, expected ok %s", consent_code_name(c_),    \
              r_, exp);                                                       \
    } while (0)

#define TRACK(q, exp)  ROUTE(CONSENT_EP_TRACK, q, exp)

/* request-level code */
#define REQ(ep, q, xc)                                                      \
    do {                                                                      \
        consent_code_e c_ = proc(&P, ep, q);                                  \
        CHECK(c_ == (xc) && R.code == (xc),                               \
              "got %s, expected %s", consent_code_name(c_),                   \
              consent_code_name(xc));                                       \
    } while (0)

/* event-level code of event idx (single-event: the request code too) */
#define EVT(ep, q, idx, xc)                                                 \
    do {                                                                      \
        consent_code_e c_ = proc(&P, ep, q);                                  \
        consent_code_e exp_req_ = (ep) == CONSENT_EP_BATCH ? CONSENT_OK       \
                                                           : (xc);          \
        int got_ = R.nevents > (idx) ? R.events[idx].code : -1;              \
        CHECK(c_ == exp_req_ && got_ == (int) (xc),                         \
              "request %s, event %d: %s, expected %s",                        \
              consent_code_name(c_), (int) (idx),                             \
              got_ < 0 ? "(none)" : consent_code_name((consent_code_e) got_), \
              consent_code_name(xc));                                       \
    } while (0)

#define BATCH1(evq, xc)                                                     \
    EVT(CONSENT_EP_BATCH, "{'batch':[" evq "]}", 0, xc)


#define U        "'userId':'u1',"
#define U0       "'userId':'u1'"
#define PREFS(p) "'context':{'consent':{'categoryPreferences':" p "}}"
#define EVP(p)   "{" U "'event':'E'," PREFS(p) "}"


static void
test_route_default_deny(void)
{
    P.default_deny = 1;
    reindex(&P);

    /* consent_default deny: no consent object is as if {} */
    TRACK("{" U "'event':'E'}", "CCDD");
    TRACK("{" U "'context':{}}", "CCDD");
    TRACK("{" U "'context':{'consent':{}}}", "CCDD");
    TRACK("{" U "'context':{'consent':{'version':2}}}", "CCDD");
    TRACK("{" U "'integrations':{'webhook':false}}", "CCDI");
    /* consent carried: as without the default */
    TRACK(EVP("{'C0002':true,'C0004':true,'C0005':true}"), "DDDD");
    TRACK(EVP("{'C0002':true}"), "DCDD");
    /* the batch's consent still applies to events without their own */
    ROUTE(CONSENT_EP_BATCH, "{'batch':[{'type':'track'," U0 "},"
          "{'type':'track'," U PREFS("{}") "}]," PREFS("{'C0002':true}") "}",
          "DCDD|CCDD");
    ROUTE(CONSENT_EP_BATCH, "{'batch':[{'type':'track'," U0 "}]}", "CCDD");

    P.default_deny = 0;
    reindex(&P);
}


/* destination d's forwarded body joined, and how many slices it took */
static const unsigned char *
joined_split(size_t d, size_t *len, size_t *nslices)
{
    size_t            n, i;
    consent_slice_t  *sl;
    unsigned char    *out, *o;

    sl = arena_alloc(&A, consent_split_max(&R) * sizeof(consent_slice_t));
    n = consent_split(&R, d, RB, sl);

    for (*len = 0, i = 0; i < n; i++) {
        *len += sl[i].len;
    }

    out = arena_alloc(&A, *len + 1);
    for (o = out, i = 0; i < n; i++) {
        memcpy(o, sl[i].data, sl[i].len);
        o += sl[i].len;
    }

    *nslices = n;
    return out;
}


/*
 * Rewritten events (hook or profile preferences) written out whole by
 * consent_split_rewrites(): the same bytes for every destination, and
 * a run of rewritten events is one slice, as a run of body events is.
 */
static void
test_split_whole(void)
{
    static const struct {
        consent_endpoint_e   ep;
        const char          *q;
        const char          *rewrite;   /* per event: 'r' rewritten */
        size_t               slices;    /* amplitude's, after */
    } cases[] = {
        /* {"batch":[, one run of three, ], } */
        { CONSENT_EP_BATCH, "{'batch':[{'type':'track'," U0 "},"
          "{'type':'track'," U PREFS("{'C0002':false}") "},"
          "{'type':'track'," U "'context':{}}]}", "rrr", 4 },
        /* ..., body, comma, whole, comma, body, ], comma, sentAt, } */
        { CONSENT_EP_BATCH, "{'batch':[{'type':'track'," U0 "},  "
          "{'type':'track'," U0 "},\n{'type':'track'," U0 "}],"
          "'sentAt':'x'}", "-r-", 10 },
        { CONSENT_EP_BATCH, "{'batch':[{'type':'track'," U0 "},"
          "{'type':'track'," U0 "},{'type':'track'," U0 "},"
          "{'type':'track'," U0 "}]}", "rr-r", 8 },
        /* a single event without "type": the type goes in too */
        { CONSENT_EP_TRACK, "{" U "'event':'E'}", "r", 4 },
        { CONSENT_EP_TRACK, "{}", "r", 0 },
    };

    static consent_str_t  prefs = { "{\"C0002\":true}", 14 };

    size_t                i, e, d, len[4], wlen, n, nw;
    const unsigned char  *before[4], *after;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        cur_test = "split_whole";

        if (proc(&P, cases[i].ep, cases[i].q) != CONSENT_OK) {
            CHECK(cases[i].slices == 0, "case %zu: refused", i);
            continue;
        }

        R.rewrite = arena_alloc(&A, R.nevents * sizeof(consent_str_t));
        memset(R.rewrite, 0, R.nevents * sizeof(consent_str_t));

        for (e = 0; e < R.nevents; e++) {
            if (cases[i].rewrite[e] == 'r') {
                R.rewrite[e] = prefs;
                consent_route(&P, &R, (uint32_t) e, (uint64_t[]) { 2 });
            }
        }

        for (d = 0; d < R.ndests; d++) {
            before[d] = joined_split(d, &len[d], &n);
        }

        CHECK_INT(consent_split_rewrites(&R, RB, arena_alloc, &A), 0);

        for (d = 0; d < R.ndests; d++) {
            after = joined_split(d, &wlen, &nw);
            CHECK(wlen == len[d] && memcmp(after, before[d], wlen) == 0,
                  "case %zu dest %zu: %.*s, expected %.*s", i, d, (int) wlen,
                  after, (int) len[d], before[d]);

            if (d == 0) {
                CHECK(nw == cases[i].slices, "case %zu: %zu slices, "
                      "expected %zu", i, nw, cases[i].slices);
            }
        }

        R.rewrite = NULL;
        R.whole = NULL;
    }
}


/*
 * Profiles: an event without consent routed again on a stored
 * preference object (consent_profile_mask, consent_route) routes as if it
 * had carried that object; integrations still apply, the batch's too.
 */
static void
test_route_profile(void)
{
    static const struct {
        consent_endpoint_e   ep;
        const char          *q;
        const char          *stored;    /* per event, NULL: left alone */
        const char          *exp;
        const char          *sources;   /* per event: N E B H C */
    } cases[] = {
        { CONSENT_EP_TRACK, "{" U "'event':'E'}",
          "{\"C0002\":true,\"C0004\":false}", "DCDD", "N" },
        { CONSENT_EP_TRACK, "{" U "'event':'E'}", "{}", "CCDD", "N" },
        { CONSENT_EP_TRACK, "{" U "'event':'E'}",
          "{\"C0002\":true,\"C0004\":true,\"C0005\":true,\"X\":1}",
          "DDDD", "N" },
        /* false wins where a category appears twice */
        { CONSENT_EP_TRACK, "{" U "'event':'E'}",
          "{\"C0002\":true,\"C0002\":false}", "CCDD", "N" },
        { CONSENT_EP_TRACK, "{" U "'integrations':{'webhook':false}}",
          "{\"C0002\":true}", "DCDI", "N" },
        { CONSENT_EP_BATCH, "{'integrations':{'amplitude':false},"
          "'batch':[{'type':'track'," U0 "},{'type':'track'," U
          PREFS("{'C0002':true}") "}]}", "{\"C0002\":true}",
          "ICDD|ICDD", "NE" },
        { CONSENT_EP_BATCH, "{'batch':[{'type':'track'," U0 "}],"
          PREFS("{'C0004':true}") "}", NULL, "CCDD", "B" },
        { CONSENT_EP_TRACK, "{" U "'context':{'consent':5}}", NULL, "CCDD",
          "C" },
    };

    uint64_t       mask[CONSENT_MASK_WORDS];
    size_t         i, e, k, n;
    char           src[8], value[256];
    consent_str_t  prefs;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        cur_test = "route_profile";
        CHECK_INT(proc(&P, cases[i].ep, cases[i].q), CONSENT_OK);

        for (e = 0, k = 0; e < R.nevents && k < sizeof(src) - 1; e++) {
            src[k++] = "NEBHC"[R.events[e].source];

            if (cases[i].stored == NULL
                || R.events[e].source != CONSENT_SRC_NONE)
            {
                continue;
            }

            n = (size_t) snprintf(value, sizeof(value),
                                  "{\"p\":%s,\"t\":1,\"e\":\"\"}",
                                  cases[i].stored);
            CHECK(consent_profile_mask(&P, value, n, arena_alloc, &A, mask,
                                       &prefs) == 0
                  && prefs.len == strlen(cases[i].stored)
                  && memcmp(prefs.data, cases[i].stored, prefs.len) == 0,
                  "case %zu: mask", i);
            consent_route(&P, &R, (uint32_t) e, mask);
        }

        src[k] = '\0';
        CHECK(strcmp(routes(), cases[i].exp) == 0
              && strcmp(src, cases[i].sources) == 0,
              "case %zu: routes %s sources %s, expected %s %s", i, routes(),
              src, cases[i].exp, cases[i].sources);
    }

    /* no "p" object: refused, the mask untouched */
    mask[0] = 7;
    CHECK(consent_profile_mask(&P, "{\"p\":[]}", 8, arena_alloc, &A, mask,
                               &prefs) == -1
          && mask[0] == 7, "profile_mask: array");
    CHECK(consent_profile_mask(&P, "{\"t\":1}", 7, arena_alloc, &A, mask,
                               &prefs) == -1, "profile_mask: no p");
    CHECK(consent_profile_mask(&P, "[]", 2, arena_alloc, &A, mask, &prefs)
          == -1, "profile_mask: not an object");
    CHECK(consent_profile_mask(&P, "{\"p\":{}", 7, arena_alloc, &A, mask,
                               &prefs) == -1, "profile_mask: truncated");
}


static void
test_route_rules(void)
{
    /* 2. no consent object: everything delivered */
    TRACK("{" U "'event':'E'}", "DDDD");
    TRACK("{" U "'context':{}}", "DDDD");
    TRACK("{" U "'context':{'ip':'1.2.3.4'}}", "DDDD");
    TRACK("{" U "'context':'x'}", "DDDD");

    /* context.consent without categoryPreferences: no consent */
    TRACK("{" U "'context':{'consent':{}}}", "DDDD");
    TRACK("{" U "'context':{'consent':{'version':1}}}", "DDDD");
    TRACK("{" U "'context':{'consent':{'prefs':{'C0002':false}}}}", "DDDD");

    /* 4. all true */
    TRACK(EVP("{'C0001':true,'C0002':true,'C0003':true,'C0004':true,"
              "'C0005':true}"), "DDDD");
    TRACK(EVP("{'C0002':true,'C0004':true,'C0005':true}"), "DDDD");

    /* 1. enforce=off: warehouse maps C0001, which is false / missing */
    TRACK(EVP("{'C0001':false,'C0002':true,'C0004':true,'C0005':true}"),
          "DDDD");
    TRACK(EVP("{'C0002':false,'C0004':false,'C0005':false}"), "CCDD");

    /* 3. unmapped webhook gets everything */
    TRACK(EVP("{'C0001':false,'C0002':false,'C0003':false,'C0004':false,"
              "'C0005':false}"), "CCDD");

    /* one false among several */
    TRACK(EVP("{'C0002':true,'C0004':true,'C0005':false}"), "DCDD");
    TRACK(EVP("{'C0002':true,'C0004':false,'C0005':true}"), "DCDD");

    /* missing */
    TRACK(EVP("{'C0002':true,'C0004':true}"), "DCDD");
    TRACK(EVP("{'C0004':true,'C0005':true}"), "CDDD");
    TRACK(EVP("{'C0003':true}"), "CCDD");

    /* non-boolean values */
    TRACK(EVP("{'C0002':'true','C0004':true,'C0005':true}"), "CDDD");
    TRACK(EVP("{'C0002':1,'C0004':true,'C0005':true}"), "CDDD");
    TRACK(EVP("{'C0002':null,'C0004':true,'C0005':true}"), "CDDD");
    TRACK(EVP("{'C0002':{},'C0004':true,'C0005':true}"), "CDDD");
    TRACK(EVP("{'C0002':[true],'C0004':true,'C0005':true}"), "CDDD");

    /* {} */
    TRACK(EVP("{}"), "CCDD");

    /* categoryPreferences not an object */
    TRACK(EVP("'yes'"), "CCDD");
    TRACK(EVP("true"), "CCDD");
    TRACK(EVP("null"), "CCDD");
    TRACK(EVP("1"), "CCDD");
    TRACK(EVP("['C0002','C0004','C0005']"), "CCDD");
    TRACK(EVP("[{'C0002':true}]"), "CCDD");

    /* context.consent not an object fails closed */
    TRACK("{" U "'context':{'consent':'x'}}", "CCDD");
    TRACK("{" U "'context':{'consent':true}}", "CCDD");
    TRACK("{" U "'context':{'consent':[{'categoryPreferences':"
          "{'C0002':true}}]}}", "CCDD");
    TRACK("{" U "'context':{'consent':null}}", "CCDD");
    /* ... even when a legacy object says yes */
    TRACK("{" U "'context':{'consent':'x','consentCategories':"
          "{'C0002':true,'C0004':true,'C0005':true}}}", "CCDD");

    /* category ids are case-sensitive, compared after unescaping */
    TRACK(EVP("{'c0002':true,'C0004':true,'C0005':true}"), "CDDD");
    TRACK(EVP("{'C00\\u00302':true,'C0004':true,'C0005':true}"), "DDDD");
    TRACK(EVP("{'C0002 ':true,'C0004':true,'C0005':true}"), "CDDD");

    /* legacy context.consentCategories */
    TRACK("{" U "'context':{'consentCategories':{'C0002':true}}}", "DCDD");
    TRACK("{" U "'context':{'consentCategories':{'C0002':true,"
          "'C0004':true,'C0005':true}}}", "DDDD");
    TRACK("{" U "'context':{'consentCategories':{}}}", "CCDD");
    TRACK("{" U "'context':{'consentCategories':'x'}}", "CCDD");
    TRACK("{" U "'context':{'consentCategories':{'C0002':'yes'}}}", "CCDD");

    /* categoryPreferences wins over legacy, whatever the order */
    TRACK("{" U "'context':{'consent':{'categoryPreferences':{'C0002':false}},"
          "'consentCategories':{'C0002':true}}}", "CCDD");
    TRACK("{" U "'context':{'consentCategories':{'C0002':true},"
          "'consent':{'categoryPreferences':{'C0002':false}}}}", "CCDD");
    TRACK("{" U "'context':{'consent':{'categoryPreferences':{'C0002':true}},"
          "'consentCategories':{'C0002':false,'C0004':true,'C0005':true}}}",
          "DCDD");
    TRACK("{" U "'context':{'consent':{'categoryPreferences':{}},"
          "'consentCategories':{'C0002':true}}}", "CCDD");

    /* context.consent without prefs + legacy: legacy carries */
    TRACK("{" U "'context':{'consent':{'version':2},"
          "'consentCategories':{'C0002':true}}}", "DCDD");

    /* 5. integrations */
    TRACK("{" U "'integrations':{'amplitude':false}}", "IDDD");
    TRACK("{" U "'integrations':{'webhook':false,'warehouse':false}}",
          "DDII");
    TRACK("{" U "'integrations':{'All':false}}", "IIII");
    TRACK("{" U "'integrations':{'All':false,'amplitude':true}}", "DIII");
    TRACK("{" U "'integrations':{'amplitude':true,'All':false}}", "DIII");
    TRACK("{" U "'integrations':{'All':true,'amplitude':false}}", "IDDD");
    TRACK("{" U "'integrations':{'All':true}}", "DDDD");
    TRACK("{" U "'integrations':{}}", "DDDD");
    TRACK("{" U "'integrations':false}", "DDDD");
    TRACK("{" U "'integrations':{'Amplitude':false}}", "DDDD");
    TRACK("{" U "'integrations':{'\\u0061mplitude':false}}", "IDDD");
    TRACK("{" U "'integrations':{'unknown':false}}", "DDDD");

    /* only the literal false turns off: object / null / 0 / "false" */
    TRACK("{" U "'integrations':{'All':false,'amplitude':{'apiKey':'x'}}}",
          "DIII");
    TRACK("{" U "'integrations':{'All':false,'amplitude':null}}", "DIII");
    TRACK("{" U "'integrations':{'All':false,'amplitude':0}}", "DIII");
    TRACK("{" U "'integrations':{'All':false,'amplitude':'false'}}", "DIII");
    TRACK("{" U "'integrations':{'All':false,'amplitude':[]}}", "DIII");
    TRACK("{" U "'integrations':{'All':null}}", "DDDD");
    TRACK("{" U "'integrations':{'All':0}}", "DDDD");
    TRACK("{" U "'integrations':{'amplitude':0,'facebook':null,"
          "'warehouse':'false','webhook':{}}}", "DDDD");

    /* duplicate integration keys: off if any occurrence is false */
    TRACK("{" U "'integrations':{'amplitude':true,'amplitude':false}}",
          "IDDD");
    TRACK("{" U "'integrations':{'amplitude':false,'amplitude':true}}",
          "IDDD");
    TRACK("{" U "'integrations':{'All':false,'All':true}}", "IIII");
    TRACK("{" U "'integrations':{'All':true,'All':false}}", "IIII");

    /* D:true cannot override consent; consent is decided first */
    TRACK("{" U "'integrations':{'amplitude':true}," PREFS("{'C0002':false}")
          "}", "CCDD");
    TRACK("{" U "'integrations':{'All':false,'amplitude':true,"
          "'facebook':true}," PREFS("{'C0002':false}") "}", "CCII");
    TRACK("{" U "'integrations':{'amplitude':false}," PREFS("{'C0002':false}")
          "}", "CCDD");

    /* enforce=off still obeys integrations */
    TRACK("{" U "'integrations':{'warehouse':false}," PREFS("{}") "}", "CCID");

    /* duplicate category keys: consented only if every one is true */
    TRACK(EVP("{'C0002':true,'C0002':true}"), "DCDD");
    TRACK(EVP("{'C0002':true,'C0002':false}"), "CCDD");
    TRACK(EVP("{'C0002':false,'C0002':true}"), "CCDD");
    TRACK(EVP("{'C0002':true,'C0002':'true'}"), "CCDD");
    TRACK(EVP("{'C0002':true,'C00\\u00302':false}"), "CCDD");
    TRACK(EVP("{'C0004':true,'C0005':true,'C0004':null}"), "CCDD");

    /* escaped member names are recognised */
    TRACK("{" U "'context':{'consent':{'categoryPreferenc\\u0065s':"
          "{'C0002':false}}}}", "CCDD");
    TRACK("{" U "'context':{'c\\u006fnsent':{'categoryPreferences':"
          "{'C0002':false}}}}", "CCDD");
    TRACK("{" U "'\\u0063ontext':{'consent':{'categoryPreferences':"
          "{'C0002':false}}}}", "CCDD");
    TRACK("{" U "'context':{'consentCategorie\\u0073':{'C0002':true}}}",
          "DCDD");
    TRACK("{" U "'integr\\u0061tions':{'All':false}}", "IIII");
    TRACK("{" U "'integrations':{'\\u0041ll':false}}", "IIII");

    /* look-alike keys are not the consent object */
    TRACK("{" U "'context':{'Consent':{'categoryPreferences':{}}}}", "DDDD");
    TRACK("{" U "'context':{'consent':{'CategoryPreferences':{}}}}", "DDDD");
    TRACK("{" U "'properties':{'context':{'consent':"
          "{'categoryPreferences':{}}}}}", "DDDD");
    TRACK("{" U "'consent':{'categoryPreferences':{}}}", "DDDD");
    TRACK("{" U "'categoryPreferences':{}}", "DDDD");
    TRACK("{" U "'properties':{'integrations':{'All':false}}}", "DDDD");
    TRACK("{" U "'context':{'integrations':{'All':false}}}", "DDDD");
}


static void
test_route_policy_variants(void)
{
    consent_policy_t  pol;
    consent_dest_t    d[3];
    consent_str_t     many[130];
    static char       names[130][8];
    size_t            i;

    /* a policy without destinations: nothing to route, still valid */
    /*
     * (as the module builds it: a non-NULL array.  dests == NULL makes
     * consent_policy_prepare() evaluate &p->dests[0].name on NULL, which
     * UBSan reports; see the report)
     */
    pol = P;
    pol.ndests = 0;
    pol.dests = d;
    memset(d, 0, sizeof(d));
    reindex(&pol);
    {
        consent_code_e c = proc(&pol, CONSENT_EP_TRACK, EVP("{}"));
        CHECK(c == CONSENT_OK && R.nevents == 1 && R.naccepted == 1,
              "code %s nevents %u", consent_code_name(c), R.nevents);
    }

    /* masks over several 64-bit words */
    for (i = 0; i < 130; i++) {
        snprintf(names[i], sizeof(names[i]), "K%zu", i);
        many[i] = str(names[i]);
    }

    memset(d, 0, sizeof(d));
    d[0].name = str("low");
    d[0].enforce = 1;
    d[0].mask[0] = BIT(0);
    d[1].name = str("high");
    d[1].enforce = 1;
    d[1].mask[1] = BIT(64 - 64) | BIT(65 - 64);
    d[1].mask[2] = BIT(129 - 128);
    d[2].name = str("top");
    d[2].enforce = 1;
    d[2].mask[2] = BIT(129 - 128);

    pol = P;
    pol.categories = many;
    pol.ncategories = 130;
    pol.dests = d;
    pol.ndests = 3;
    reindex(&pol);

    {
        consent_code_e c;

        c = proc(&pol, CONSENT_EP_TRACK,
                 EVP("{'K0':true,'K64':true,'K65':true,'K129':true}"));
        CHECK(c == CONSENT_OK && strcmp(routes(), "DDD") == 0, "%s",
              routes());

        c = proc(&pol, CONSENT_EP_TRACK,
                 EVP("{'K0':true,'K64':true,'K129':true}"));
        CHECK(c == CONSENT_OK && strcmp(routes(), "DCD") == 0, "%s",
              routes());

        c = proc(&pol, CONSENT_EP_TRACK,
                 EVP("{'K0':true,'K64':true,'K65':true,'K128':true}"));
        CHECK(c == CONSENT_OK && strcmp(routes(), "DCC") == 0, "%s",
              routes());

        c = proc(&pol, CONSENT_EP_TRACK, EVP("{'K1':true}"));
        CHECK(c == CONSENT_OK && strcmp(routes(), "CCC") == 0, "%s",
              routes());
    }
}


static void
test_validation_request(void)
{
    consent_policy_t  pol;
    consent_code_e    c;

    /* invalid JSON: any endpoint */
    REQ(CONSENT_EP_TRACK, "", CONSENT_INVALID_JSON);
    REQ(CONSENT_EP_TRACK, "   ", CONSENT_INVALID_JSON);
    REQ(CONSENT_EP_TRACK, "{", CONSENT_INVALID_JSON);
    REQ(CONSENT_EP_TRACK, "not json", CONSENT_INVALID_JSON);
    REQ(CONSENT_EP_TRACK, "{" U "'event':'E',}", CONSENT_INVALID_JSON);
    REQ(CONSENT_EP_TRACK, "{" U "'event':'E'} x", CONSENT_INVALID_JSON);
    REQ(CONSENT_EP_TRACK, "{'userId':01}", CONSENT_INVALID_JSON);
    CHECK_INT(R.offset, 11);
    CHECK_INT(R.syntax, 1);
    CHECK(R.reason != NULL, "no reason for invalid_json");
    REQ(CONSENT_EP_BATCH, "{'batch':[{'type':'track',}]}",
        CONSENT_INVALID_JSON);
    REQ(CONSENT_EP_IDENTIFY, "{'userId':'a\x01'}", CONSENT_INVALID_JSON);
    CHECK_INT(R.offset, 12);
    REQ(CONSENT_EP_BATCH, "\xef\xbb\xbf{'batch':[]}", CONSENT_INVALID_JSON);
    CHECK_INT(R.offset, 0);

    /* top level not an object */
    REQ(CONSENT_EP_TRACK, "[{" U "'event':'E'}]", CONSENT_INVALID_JSON);
    CHECK_INT(R.syntax, 0);
    CHECK_INT(R.nevents, 0);
    REQ(CONSENT_EP_TRACK, "'x'", CONSENT_INVALID_JSON);
    REQ(CONSENT_EP_TRACK, "1", CONSENT_INVALID_JSON);
    REQ(CONSENT_EP_TRACK, "null", CONSENT_INVALID_JSON);
    REQ(CONSENT_EP_BATCH, "[{'type':'track'," U "'event':'E'}]",
        CONSENT_INVALID_JSON);
    REQ(CONSENT_EP_BATCH, "'batch'", CONSENT_INVALID_JSON);

    /* batch not an array / missing */
    REQ(CONSENT_EP_BATCH, "{'batch':{}}", CONSENT_INVALID_JSON);
    CHECK_INT(R.syntax, 0);
    CHECK_INT(R.nevents, 0);
    REQ(CONSENT_EP_BATCH, "{'batch':{'type':'track'," U "'event':'E'}}",
        CONSENT_INVALID_JSON);
    REQ(CONSENT_EP_BATCH, "{'batch':'x'}", CONSENT_INVALID_JSON);
    REQ(CONSENT_EP_BATCH, "{'batch':null}", CONSENT_INVALID_JSON);
    REQ(CONSENT_EP_BATCH, "{}", CONSENT_INVALID_JSON);
    REQ(CONSENT_EP_BATCH, "{'Batch':[{'type':'track'," U "'event':'E'}]}",
        CONSENT_INVALID_JSON);
    REQ(CONSENT_EP_BATCH, "{'type':'track'," U "'event':'E'}",
        CONSENT_INVALID_JSON);

    /* duplicate interpreted keys in the envelope */
    REQ(CONSENT_EP_BATCH, "{'batch':[],'batch':[]}", CONSENT_INVALID_JSON);
    REQ(CONSENT_EP_BATCH, "{'batch':[{'type':'track'," U "'event':'E'}],"
        "'b\\u0061tch':[]}", CONSENT_INVALID_JSON);
    REQ(CONSENT_EP_BATCH, "{'context':{},'batch':[{'type':'track'," U
        "'event':'E'}],'context':{}}", CONSENT_INVALID_JSON);
    REQ(CONSENT_EP_BATCH, "{'integrations':{},'batch':[{'type':'track'," U
        "'event':'E'}],'integrations':{}}", CONSENT_INVALID_JSON);
    REQ(CONSENT_EP_BATCH, "{'context':{'consent':{},'consent':{}},"
        "'batch':[{'type':'track'," U "'event':'E'}]}", CONSENT_INVALID_JSON);
    REQ(CONSENT_EP_BATCH, "{'context':{'consent':{'categoryPreferences':{},"
        "'categoryPreferences':{}}},'batch':[{'type':'track'," U
        "'event':'E'}]}", CONSENT_INVALID_JSON);
    REQ(CONSENT_EP_BATCH, "{'context':{'consentCategories':{},"
        "'consentCategories':{}},'batch':[{'type':'track'," U
        "'event':'E'}]}", CONSENT_INVALID_JSON);
    /* uninterpreted duplicates are fine */
    REQ(CONSENT_EP_BATCH, "{'writeKey':'a','writeKey':'b','batch':"
        "[{'type':'track'," U "'event':'E'}]}", CONSENT_OK);

    /* empty batch */
    REQ(CONSENT_EP_BATCH, "{'batch':[]}", CONSENT_EMPTY_BATCH);
    CHECK_INT(R.nevents, 0);
    REQ(CONSENT_EP_BATCH, "{'writeKey':'k','batch':[ ]}", CONSENT_EMPTY_BATCH);

    /* too many events */
    pol = P;
    pol.max_events = 3;
    c = proc(&pol, CONSENT_EP_BATCH, "{'batch':[{},{},{},{}]}");
    CHECK(c == CONSENT_TOO_LARGE && R.nevents == 0 && R.naccepted == 0,
          "4 events over 3: %s, nevents %u", consent_code_name(c),
          R.nevents);
    c = proc(&pol, CONSENT_EP_BATCH, "{'batch':[{'type':'track'," U
             "'event':'E'},1,2]}");
    CHECK(c == CONSENT_OK && R.nevents == 3 && R.naccepted == 1,
          "3 events: %s nevents %u naccepted %u", consent_code_name(c),
          R.nevents, R.naccepted);
    pol.max_events = 1;
    c = proc(&pol, CONSENT_EP_BATCH, "{'batch':[1,2]}");
    CHECK(c == CONSENT_TOO_LARGE, "2 events over 1: %s",
          consent_code_name(c));
}


static void
test_validation_size(void)
{
    consent_policy_t  pol;
    consent_code_e    c;
    char              q[512];
    const char       *small = "{'type':'track','userId':'u','event':'E'}";
    size_t            slen = strlen(small);   /* 41 */
    char              big[256];
    size_t            i;

    pol = P;
    pol.max_event_size = slen;

    /* an event of exactly max_event_size is accepted, one byte more not */
    snprintf(big, sizeof(big), "{'type':'track','userId':'u','event':'EE'}");

    snprintf(q, sizeof(q), "{'batch':[%s,%s,%s]}", small, big, small);
    c = proc(&pol, CONSENT_EP_BATCH, q);
    CHECK(c == CONSENT_OK && R.nevents == 3 && R.naccepted == 2
          && R.events[0].code == CONSENT_OK
          && R.events[1].code == CONSENT_TOO_LARGE
          && R.events[2].code == CONSENT_OK,
          "%s nevents %u naccepted %u codes %d %d %d", consent_code_name(c),
          R.nevents, R.naccepted, R.nevents > 0 ? R.events[0].code : -1,
          R.nevents > 1 ? R.events[1].code : -1,
          R.nevents > 2 ? R.events[2].code : -1);
    CHECK(strcmp(routes(), "DDDD|SSSS|DDDD") == 0, "routes %s", routes());

    /* big but not an object: invalid_event (element too, not size) */
    for (i = 0; i < 60; i++) {
        big[i] = 'x';
    }
    big[60] = '\0';
    snprintf(q, sizeof(q), "{'batch':['%s',%s]}", big, small);
    c = proc(&pol, CONSENT_EP_BATCH, q);
    CHECK(c == CONSENT_OK && R.nevents == 2 && R.naccepted == 1,
          "%s naccepted %u", consent_code_name(c), R.naccepted);

    /* a single event over the limit: the request answers too_large */
    c = proc(&pol, CONSENT_EP_TRACK,
             "{'type':'track','userId':'u','event':'EE'}");
    CHECK(c == CONSENT_TOO_LARGE && R.nevents == 1
          && R.events[0].code == CONSENT_TOO_LARGE && R.naccepted == 0,
          "%s", consent_code_name(c));
    c = proc(&pol, CONSENT_EP_TRACK, small);
    CHECK(c == CONSENT_OK, "%s", consent_code_name(c));

    /* the envelope itself may exceed max_event_size */
    pol.max_event_size = slen + 1;
    snprintf(q, sizeof(q), "{'writeKey':'kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk',"
             "'batch':[%s,%s]}", small, small);
    c = proc(&pol, CONSENT_EP_BATCH, q);
    CHECK(c == CONSENT_OK && R.naccepted == 2, "%s naccepted %u",
          consent_code_name(c), R.naccepted);
}


#define PU "'event':'Segment Consent Preference Updated',"
#define PU0 "'event':'Segment Consent Preference Updated'"

static void
test_validation_events(void)
{
    /* no_user_anon_id */
    EVT(CONSENT_EP_TRACK, "{'event':'E'}", 0, CONSENT_NO_USER_ANON_ID);
    EVT(CONSENT_EP_TRACK, "{}", 0, CONSENT_NO_USER_ANON_ID);
    EVT(CONSENT_EP_TRACK, "{'userId':''}", 0, CONSENT_NO_USER_ANON_ID);
    EVT(CONSENT_EP_TRACK, "{'anonymousId':''}", 0, CONSENT_NO_USER_ANON_ID);
    EVT(CONSENT_EP_TRACK, "{'userId':null}", 0, CONSENT_NO_USER_ANON_ID);
    EVT(CONSENT_EP_TRACK, "{'userId':null,'anonymousId':null}", 0,
        CONSENT_NO_USER_ANON_ID);
    EVT(CONSENT_EP_TRACK, "{'userId':'','anonymousId':''}", 0,
        CONSENT_NO_USER_ANON_ID);
    EVT(CONSENT_EP_TRACK, "{'userId':true}", 0, CONSENT_NO_USER_ANON_ID);
    EVT(CONSENT_EP_TRACK, "{'userId':{}}", 0, CONSENT_NO_USER_ANON_ID);
    EVT(CONSENT_EP_TRACK, "{'userId':['u']}", 0, CONSENT_NO_USER_ANON_ID);
    EVT(CONSENT_EP_TRACK, "{'UserId':'u'}", 0, CONSENT_NO_USER_ANON_ID);
    EVT(CONSENT_EP_TRACK, "{'properties':{'userId':'u'}}", 0,
        CONSENT_NO_USER_ANON_ID);
    EVT(CONSENT_EP_TRACK, "{'userId':'u'}", 0, CONSENT_OK);
    EVT(CONSENT_EP_TRACK, "{'anonymousId':'a'}", 0, CONSENT_OK);
    EVT(CONSENT_EP_TRACK, "{'userId':123}", 0, CONSENT_OK);
    EVT(CONSENT_EP_TRACK, "{'userId':0}", 0, CONSENT_OK);
    EVT(CONSENT_EP_TRACK, "{'anonymousId':-1.5e3}", 0, CONSENT_OK);
    EVT(CONSENT_EP_TRACK, "{'userId':'','anonymousId':'a'}", 0, CONSENT_OK);
    EVT(CONSENT_EP_TRACK, "{'userId':null,'anonymousId':7}", 0, CONSENT_OK);
    EVT(CONSENT_EP_TRACK, "{'userId':' '}", 0, CONSENT_OK);
    EVT(CONSENT_EP_TRACK, "{'user\\u0049d':'u'}", 0, CONSENT_OK);
    BATCH1("{'type':'identify'}", CONSENT_NO_USER_ANON_ID);
    BATCH1("{'type':'identify','userId':''}", CONSENT_NO_USER_ANON_ID);
    BATCH1("{'type':'identify','userId':42}", CONSENT_OK);

    /* Segment Consent Preference Updated (track only) */
    EVT(CONSENT_EP_TRACK, "{" U PU "'context':{}}", 0,
        CONSENT_PREFS_SHOULD_EXIST);
    EVT(CONSENT_EP_TRACK, "{" U PU "'context':{'consent':{}}}", 0,
        CONSENT_PREFS_SHOULD_EXIST);
    EVT(CONSENT_EP_TRACK, "{" U PU0 "}", 0, CONSENT_PREFS_SHOULD_EXIST);
    EVT(CONSENT_EP_TRACK, "{" U PU "'context':{'consentCategories':"
        "{'C0002':true}}}", 0, CONSENT_PREFS_SHOULD_EXIST);
    EVT(CONSENT_EP_TRACK, "{" U PU PREFS("'x'") "}", 0,
        CONSENT_PREFS_SHOULD_BE_OBJECT);
    EVT(CONSENT_EP_TRACK, "{" U PU PREFS("[]") "}", 0,
        CONSENT_PREFS_SHOULD_BE_OBJECT);
    EVT(CONSENT_EP_TRACK, "{" U PU PREFS("null") "}", 0,
        CONSENT_PREFS_SHOULD_BE_OBJECT);
    EVT(CONSENT_EP_TRACK, "{" U PU PREFS("{'C0002':1}") "}", 0,
        CONSENT_PREFS_SHOULD_BE_BOOL);
    EVT(CONSENT_EP_TRACK, "{" U PU PREFS("{'C0002':true,'C0004':'false'}")
        "}", 0, CONSENT_PREFS_SHOULD_BE_BOOL);
    EVT(CONSENT_EP_TRACK, "{" U PU PREFS("{'C0002':null}") "}", 0,
        CONSENT_PREFS_SHOULD_BE_BOOL);
    EVT(CONSENT_EP_TRACK, "{" U PU PREFS("{'X':{}}") "}", 0,
        CONSENT_PREFS_SHOULD_BE_BOOL);
    EVT(CONSENT_EP_TRACK, "{" U PU "'context':{'consent':{'version':'1',"
        "'categoryPreferences':{'C0002':true}}}}", 0,
        CONSENT_VERSION_SHOULD_BE_NUMBER);
    EVT(CONSENT_EP_TRACK, "{" U PU "'context':{'consent':{'version':null,"
        "'categoryPreferences':{'C0002':true}}}}", 0,
        CONSENT_VERSION_SHOULD_BE_NUMBER);
    EVT(CONSENT_EP_TRACK, "{" U PU "'context':{'consent':{'version':2,"
        "'categoryPreferences':{'C0002':true,'C0004':false}}}}", 0,
        CONSENT_OK);
    EVT(CONSENT_EP_TRACK, "{" U PU "'context':{'consent':{"
        "'categoryPreferences':{'C0002':true}}}}", 0, CONSENT_OK);
    EVT(CONSENT_EP_TRACK, "{" U PU PREFS("{}") "}", 0, CONSENT_OK);
    EVT(CONSENT_EP_TRACK, "{" U "'event':'Segment Consent Preference "
        "Upd\\u0061ted','context':{}}", 0, CONSENT_PREFS_SHOULD_EXIST);
    /* a valid preference event is routed like any other */
    TRACK("{" U PU PREFS("{'C0002':true,'C0004':false}") "}", "DCDD");

    /* not checked: other types, other event names, non-string event */
    EVT(CONSENT_EP_IDENTIFY, "{" U PU "'context':{}}", 0, CONSENT_OK);
    EVT(CONSENT_EP_PAGE, "{" U PU PREFS("'x'") "}", 0, CONSENT_OK);
    EVT(CONSENT_EP_TRACK, "{" U "'event':'Consent Preference Updated',"
        "'context':{}}", 0, CONSENT_OK);
    EVT(CONSENT_EP_TRACK, "{" U "'event':'segment consent preference "
        "updated','context':{}}", 0, CONSENT_OK);
    EVT(CONSENT_EP_TRACK, "{" U "'event':'E'," PREFS("'x'") "}", 0,
        CONSENT_OK);
    EVT(CONSENT_EP_TRACK, "{" U "'event':'E'," PREFS("{'C0002':1}") "}", 0,
        CONSENT_OK);
    BATCH1("{'type':'identify'," U PU "'context':{}}", CONSENT_OK);
    BATCH1("{'type':'track'," U PU "'context':{}}",
           CONSENT_PREFS_SHOULD_EXIST);

    /* in a batch: the consent object used for routing */
    EVT(CONSENT_EP_BATCH, "{'context':{'consent':{'categoryPreferences':"
        "{'C0002':true}}},'batch':[{'type':'track'," U PU "'context':{}}]}",
        0, CONSENT_OK);
    EVT(CONSENT_EP_BATCH, "{'batch':[{'type':'track'," U PU0 "}],"
        "'context':{'consent':{'categoryPreferences':'x'}}}", 0,
        CONSENT_PREFS_SHOULD_BE_OBJECT);
    EVT(CONSENT_EP_BATCH, "{'batch':[{'type':'track'," U PU0 "}],"
        "'context':{'consent':{'categoryPreferences':{'C0002':0}}}}", 0,
        CONSENT_PREFS_SHOULD_BE_BOOL);
    EVT(CONSENT_EP_BATCH, "{'batch':[{'type':'track'," U PU0 "}],"
        "'context':{'consent':{'version':'v','categoryPreferences':{}}}}", 0,
        CONSENT_VERSION_SHOULD_BE_NUMBER);
    /* the event's own consent wins over a bad batch-level one */
    EVT(CONSENT_EP_BATCH, "{'batch':[{'type':'track'," U PU
        PREFS("{'C0002':true}") "}],"
        "'context':{'consent':{'categoryPreferences':'x'}}}", 0, CONSENT_OK);
    /* a bad event-level one is not rescued by a good batch-level one */
    EVT(CONSENT_EP_BATCH, "{'batch':[{'type':'track'," U PU
        PREFS("{'C0002':'yes'}") "}],"
        "'context':{'consent':{'categoryPreferences':{}}}}", 0,
        CONSENT_PREFS_SHOULD_BE_BOOL);
    /* batch-level consent without prefs: still missing */
    EVT(CONSENT_EP_BATCH, "{'batch':[{'type':'track'," U PU0 "}],"
        "'context':{'consent':{'version':1}}}", 0,
        CONSENT_PREFS_SHOULD_EXIST);

    /* invalid_type */
    BATCH1("{'type':'foo'," U "'event':'E'}", CONSENT_INVALID_TYPE);
    BATCH1("{" U "'event':'E'}", CONSENT_INVALID_TYPE);
    BATCH1("{'type':'batch'," U "'event':'E'}", CONSENT_INVALID_TYPE);
    BATCH1("{'type':'import'," U "'event':'E'}", CONSENT_INVALID_TYPE);
    BATCH1("{'type':'Track'," U "'event':'E'}", CONSENT_INVALID_TYPE);
    BATCH1("{'type':''," U "'event':'E'}", CONSENT_INVALID_TYPE);
    BATCH1("{'type':5," U "'event':'E'}", CONSENT_INVALID_TYPE);
    BATCH1("{'type':null," U "'event':'E'}", CONSENT_INVALID_TYPE);
    BATCH1("{'type':['track']," U "'event':'E'}", CONSENT_INVALID_TYPE);
    BATCH1("{'type':'tr\\u0061ck'," U "'event':'E'}", CONSENT_OK);
    BATCH1("{'type':'identify'," U0 "}", CONSENT_OK);
    BATCH1("{'type':'page'," U0 "}", CONSENT_OK);
    BATCH1("{'type':'screen'," U0 "}", CONSENT_OK);
    BATCH1("{'type':'group'," U0 "}", CONSENT_OK);
    BATCH1("{'type':'alias'," U0 "}", CONSENT_OK);
    EVT(CONSENT_EP_TRACK, "{'type':'identify'," U "'event':'E'}", 0,
        CONSENT_INVALID_TYPE);
    EVT(CONSENT_EP_IDENTIFY, "{'type':'track'," U "'event':'E'}", 0,
        CONSENT_INVALID_TYPE);
    EVT(CONSENT_EP_TRACK, "{'type':'foo'," U "'event':'E'}", 0,
        CONSENT_INVALID_TYPE);
    EVT(CONSENT_EP_TRACK, "{'type':1," U "'event':'E'}", 0,
        CONSENT_INVALID_TYPE);
    EVT(CONSENT_EP_TRACK, "{'type':'track'," U "'event':'E'}", 0, CONSENT_OK);
    EVT(CONSENT_EP_ALIAS, "{'type':'alias'," U0 "}", 0, CONSENT_OK);
    EVT(CONSENT_EP_GROUP, "{" U0 "}", 0, CONSENT_OK);

    /* duplicate_key */
    EVT(CONSENT_EP_TRACK, "{'type':'track','type':'track'," U0 "}", 0,
        CONSENT_DUPLICATE_KEY);
    EVT(CONSENT_EP_TRACK, "{'type':'track','typ\\u0065':'track'," U0 "}", 0,
        CONSENT_DUPLICATE_KEY);
    BATCH1("{'type':'track','type':'identify'," U0 "}",
           CONSENT_DUPLICATE_KEY);
    EVT(CONSENT_EP_TRACK, "{" U "'userId':'u2'}", 0, CONSENT_DUPLICATE_KEY);
    EVT(CONSENT_EP_TRACK, "{'anonymousId':'a','anonymousId':'b'}", 0,
        CONSENT_DUPLICATE_KEY);
    EVT(CONSENT_EP_TRACK, "{" U "'event':'A','event':'B'}", 0,
        CONSENT_DUPLICATE_KEY);
    EVT(CONSENT_EP_TRACK, "{" U "'context':{},'context':{}}", 0,
        CONSENT_DUPLICATE_KEY);
    EVT(CONSENT_EP_TRACK, "{" U "'context':{},'context':'x'}", 0,
        CONSENT_DUPLICATE_KEY);
    EVT(CONSENT_EP_TRACK, "{" U "'integrations':{},'integrations':{}}", 0,
        CONSENT_DUPLICATE_KEY);
    EVT(CONSENT_EP_TRACK, "{" U "'context':{'consent':{'categoryPreferences':"
        "{'C0002':true}},'consent':{}}}", 0, CONSENT_DUPLICATE_KEY);
    EVT(CONSENT_EP_TRACK, "{" U "'context':{'consent':{},"
        "'c\\u006fnsent':'x'}}", 0, CONSENT_DUPLICATE_KEY);
    EVT(CONSENT_EP_TRACK, "{" U "'context':{'consent':{'categoryPreferences':"
        "{'C0002':false},'categoryPreferences':{'C0002':true}}}}", 0,
        CONSENT_DUPLICATE_KEY);
    EVT(CONSENT_EP_TRACK, "{" U "'context':{'consent':{'categoryPreferences':"
        "{},'categoryPreferenc\\u0065s':{}}}}", 0, CONSENT_DUPLICATE_KEY);
    EVT(CONSENT_EP_TRACK, "{" U "'context':{'consentCategories':{},"
        "'consentCategories':{}}}", 0, CONSENT_DUPLICATE_KEY);
    EVT(CONSENT_EP_TRACK, "{" U "'context':{'consent':{'version':1,"
        "'version':2}}}", 0, CONSENT_DUPLICATE_KEY);
    BATCH1("{'type':'track'," U "'context':{'consent':{"
           "'categoryPreferences':{},'categoryPreferences':{}}}}",
           CONSENT_DUPLICATE_KEY);
    /* duplicates of uninterpreted keys are fine */
    EVT(CONSENT_EP_TRACK, "{" U "'properties':{},'properties':{}}", 0,
        CONSENT_OK);
    EVT(CONSENT_EP_TRACK, "{" U "'context':{'ip':'a','ip':'b'}}", 0,
        CONSENT_OK);
    EVT(CONSENT_EP_TRACK, "{" U "'properties':{'type':'a','type':'b'}}", 0,
        CONSENT_OK);

    /* invalid_event: batch element not an object */
    BATCH1("1", CONSENT_INVALID_EVENT);
    BATCH1("'x'", CONSENT_INVALID_EVENT);
    BATCH1("[]", CONSENT_INVALID_EVENT);
    BATCH1("[{'type':'track'," U0 "}]", CONSENT_INVALID_EVENT);
    BATCH1("null", CONSENT_INVALID_EVENT);
    BATCH1("true", CONSENT_INVALID_EVENT);
}


/* the byte slice [start,end) of the body equals s */
static int
slice_is(uint32_t start, uint32_t end, const char *q)
{
    size_t  i, n = strlen(q);

    if (end < start || end - start != n) {
        return 0;
    }

    for (i = 0; i < n; i++) {
        if (RB[start + i] != (q[i] == '\'' ? '"' : (unsigned char) q[i])) {
            return 0;
        }
    }

    return 1;
}

/* the slice as text, for messages, clamped to the body */
static int
slice_len(uint32_t start, uint32_t end)
{
    if (start > g_in_len || end > g_in_len || end < start) {
        return 0;
    }

    return (int) (end - start);
}

#define SLICE(s, e, q)                                                        \
    CHECK(slice_is(s, e, q), "slice [%u,%u) = \"%.*s\", expected \"%s\"",     \
          (unsigned) (s), (unsigned) (e), slice_len(s, e),                    \
          (const char *) RB + ((s) <= g_in_len ? (s) : 0), q)


/*
 * Joins the slices consent_split() gives for destination d and checks
 * the result: valid JSON, {"batch":[...]} holding exactly the events
 * delivered to d in request order, byte for byte (with "type" inserted
 * where insert_type says so), then the envelope members as received.
 * Returns NULL or what is wrong.
 */
static const char *
split_problem(size_t d, const unsigned char **joined, size_t *joined_len)
{
    static char            why[256];
    size_t                 max, n, i, len, e, k, plen;
    consent_slice_t       *sl;
    unsigned char         *out, *o;
    consent_json_t         js;
    uint32_t               el, t;
    const consent_event_t *ev;
    char                   pre[32];
    const unsigned char   *body;
    size_t                 blen;

    *joined = NULL;
    *joined_len = 0;

    max = consent_split_max(&R);
    sl = arena_alloc(&A, max * sizeof(consent_slice_t));
    n = consent_split(&R, d, RB, sl);

    if (n > max) {
        snprintf(why, sizeof(why), "%zu slices, max %zu", n, max);
        return why;
    }

    for (len = 0, i = 0; i < n; i++) {
        len += sl[i].len;
    }

    out = arena_alloc(&A, len);
    for (o = out, i = 0; i < n; i++) {
        if (sl[i].len) {
            memcpy(o, sl[i].data, sl[i].len);
            o += sl[i].len;
        }
    }

    *joined = out;
    *joined_len = len;

    if (consent_json_scan(&js, out, len, arena_alloc, &A) != 0) {
        snprintf(why, sizeof(why), "not JSON: %s at %zu", js.err,
                 js.err_offset);
        return why;
    }

    if (js.tok[0].type != CONSENT_JSON_OBJECT || js.ntok < 3
        || js.tok[1].escaped
        || !consent_json_str_eq(out, &js.tok[1], "batch", 5)
        || js.tok[2].type != CONSENT_JSON_ARRAY)
    {
        return "not {\"batch\":[...],...}";
    }

    el = 3;

    for (e = 0; e < R.nevents; e++) {
        if (R.outcome[e * R.ndests + d] != CONSENT_DELIVER) {
            continue;
        }

        ev = &R.events[e];

        if (el >= js.tok[2].next) {
            snprintf(why, sizeof(why), "event %zu missing", e);
            return why;
        }

        body = RB + ev->start;
        blen = ev->end - ev->start;
        plen = 0;

        if (ev->insert_type) {
            plen = (size_t) snprintf(pre, sizeof(pre), "{\"type\":\"%s\"%s",
                              consent_type_name((consent_endpoint_e) ev->type),
                              ev->has_members ? "," : "");
            body++;
            blen--;
        }

        if (js.tok[el].end - js.tok[el].start != plen + blen
            || memcmp(out + js.tok[el].start, pre, plen) != 0
            || memcmp(out + js.tok[el].start + plen, body, blen) != 0)
        {
            snprintf(why, sizeof(why), "event %zu differs: \"%.*s\"", e,
                     (int) (js.tok[el].end - js.tok[el].start),
                     (const char *) out + js.tok[el].start);
            return why;
        }

        el = js.tok[el].next;
    }

    if (el != js.tok[2].next) {
        return "more elements than delivered events";
    }

    for (k = 0, t = js.tok[2].next; t < js.tok[0].next;
         k++, t = js.tok[t + 1].next)
    {
        const consent_span_t  *x = &R.extra[k];

        if (k >= R.nextra) {
            return "more envelope members than extra spans";
        }

        if (js.tok[t + 1].end - js.tok[t].start != x->end - x->start
            || memcmp(out + js.tok[t].start, RB + x->start,
                      x->end - x->start) != 0)
        {
            snprintf(why, sizeof(why), "envelope member %zu differs", k);
            return why;
        }
    }

    if (k != R.nextra) {
        return "envelope members missing";
    }

    return NULL;
}


/* the joined split body of destination d is exactly q (' as ") */
static int
split_is(size_t d, const char *q, const char **why)
{
    const unsigned char  *j;
    size_t                jl, i, n = strlen(q);

    *why = split_problem(d, &j, &jl);

    if (*why != NULL || jl != n) {
        return 0;
    }

    for (i = 0; i < n; i++) {
        if (j[i] != (q[i] == '\'' ? '"' : (unsigned char) q[i])) {
            return 0;
        }
    }

    return 1;
}

#define SPLIT(d, q)                                                           \
    do {                                                                      \
        const char *why_ = NULL;                                              \
        int ok_ = split_is(d, q, &why_);                                      \
        CHECK(ok_, "destination %zu: %s, expected %s", (size_t) (d),          \
              why_ ? why_ : "different bytes", q);                            \
    } while (0)

#define SPLIT_OK(d)                                                           \
    do {                                                                      \
        const unsigned char *j_;                                              \
        size_t jl_;                                                           \
        const char *why_ = split_problem(d, &j_, &jl_);                       \
        CHECK(why_ == NULL, "destination %zu: %s; split \"%.*s\"",            \
              (size_t) (d), why_ ? why_ : "", (int) jl_,                      \
              j_ ? (const char *) j_ : "");                                   \
    } while (0)


static void
test_split(void)
{
    consent_code_e  c;
    size_t          d;

    /* amplitude gets events 0 and 2, facebook 1, warehouse all */
    c = proc(&P, CONSENT_EP_BATCH,
             "{'writeKey':'k','batch':["
             "{'type':'track','userId':'a'},"
             "{'type':'track','userId':'b','integrations':{'amplitude':false}},"
             "{'type':'page','userId':'c','integrations':{'facebook':false}}"
             "],'sentAt':'t','integrations':{'webhook':false}}");
    CHECK(c == CONSENT_OK && strcmp(routes(), "DDDI|IDDI|DIDI") == 0,
          "%s %s", consent_code_name(c), routes());
    SPLIT(0, "{'batch':[{'type':'track','userId':'a'},"
             "{'type':'page','userId':'c','integrations':{'facebook':false}}"
             "],'writeKey':'k','sentAt':'t','integrations':{'webhook':false}}");
    SPLIT(1, "{'batch':[{'type':'track','userId':'a'},"
             "{'type':'track','userId':'b','integrations':{'amplitude':false}}"
             "],'writeKey':'k','sentAt':'t','integrations':{'webhook':false}}");
    SPLIT(2, "{'batch':[{'type':'track','userId':'a'},"
             "{'type':'track','userId':'b','integrations':{'amplitude':false}},"
             "{'type':'page','userId':'c','integrations':{'facebook':false}}"
             "],'writeKey':'k','sentAt':'t','integrations':{'webhook':false}}");

    /* rejected events are never forwarded */
    c = proc(&P, CONSENT_EP_BATCH,
             "{'batch':[{'type':'track'},1,{'type':'alias','userId':'z'}]}");
    CHECK(c == CONSENT_OK && R.naccepted == 1, "%s", consent_code_name(c));
    SPLIT(3, "{'batch':[{'type':'alias','userId':'z'}]}");

    /* whitespace inside events and envelope members kept as received */
    c = proc(&P, CONSENT_EP_BATCH,
             "{ 'batch' : [ { 'type' : 'track' , 'userId' : 'a' } , 1 ,"
             "\n{'type':'identify','userId':'b'} ] , 'writeKey' : 'k' }");
    CHECK(c == CONSENT_OK, "%s", consent_code_name(c));
    SPLIT(0, "{'batch':[{ 'type' : 'track' , 'userId' : 'a' },"
             "{'type':'identify','userId':'b'}],'writeKey' : 'k'}");

    for (d = 0; d < 4; d++) {
        SPLIT_OK(d);
    }

    /* single-event endpoints: "type" inserted after the brace */
    c = proc(&P, CONSENT_EP_TRACK, "{'userId':'u','event':'E'}");
    CHECK(c == CONSENT_OK, "%s", consent_code_name(c));
    SPLIT(0, "{'batch':[{'type':'track','userId':'u','event':'E'}]}");

    c = proc(&P, CONSENT_EP_IDENTIFY, " { 'userId' : 7 } ");
    CHECK(c == CONSENT_OK, "%s", consent_code_name(c));
    SPLIT(3, "{'batch':[{'type':'identify', 'userId' : 7 }]}");

    c = proc(&P, CONSENT_EP_PAGE, "{'type':'page','userId':'u'}");
    CHECK(c == CONSENT_OK, "%s", consent_code_name(c));
    SPLIT(2, "{'batch':[{'type':'page','userId':'u'}]}");

    /* consent-filtered destination: empty batch if split anyway */
    c = proc(&P, CONSENT_EP_TRACK, EVP("{}"));
    CHECK(c == CONSENT_OK && strcmp(routes(), "CCDD") == 0, "%s", routes());
    SPLIT(0, "{'batch':[]}");
    SPLIT(3, "{'batch':[{'type':'track','userId':'u1','event':'E',"
             "'context':{'consent':{'categoryPreferences':{}}}}]}");
}


static void
test_batch_structure(void)
{
    static const char  *ev[] = {
        "{'type':'track','userId':'a','event':'E'}",
        "{ 'type' : 'identify' , 'anonymousId' : 'b' }",
        "1",
        "{'type':'page','event':'no ids'}",
        "{'type':'group','userId':\"\\u0041\",'x':[{}]}",
    };
    char            q[1024];
    consent_code_e  c;
    size_t          i;

    snprintf(q, sizeof(q),
             "{'writeKey':'k',\n 'batch' : [ %s ,%s,\n%s , %s,%s ] ,"
             "'context':{'consent':{'categoryPreferences':{'C0002':true}}},"
             "'sentAt':'2024-01-01T00:00:00Z','integrations':{}}",
             ev[0], ev[1], ev[2], ev[3], ev[4]);

    c = proc(&P, CONSENT_EP_BATCH, q);
    CHECK(c == CONSENT_OK, "%s", consent_code_name(c));
    CHECK_INT(R.nevents, 5);
    CHECK_INT(R.naccepted, 3);
    CHECK_INT(R.ndests, 4);

    for (i = 0; i < R.nevents && i < 5; i++) {
        SLICE(R.events[i].start, R.events[i].end, ev[i]);
    }

    CHECK_INT(R.events[0].code, CONSENT_OK);
    CHECK_INT(R.events[1].code, CONSENT_OK);
    CHECK_INT(R.events[2].code, CONSENT_INVALID_EVENT);
    CHECK_INT(R.events[3].code, CONSENT_NO_USER_ANON_ID);
    CHECK_INT(R.events[4].code, CONSENT_OK);
    CHECK_INT(R.events[0].type, CONSENT_EP_TRACK);
    CHECK_INT(R.events[1].type, CONSENT_EP_IDENTIFY);
    CHECK_INT(R.events[4].type, CONSENT_EP_GROUP);
    CHECK_INT(R.events[0].insert_type, 0);
    CHECK(strcmp(routes(), "DCDD|DCDD|SSSS|SSSS|DCDD") == 0, "routes %s",
          routes());

    CHECK_INT(R.nextra, 4);
    if (R.nextra == 4) {
        SLICE(R.extra[0].start, R.extra[0].end, "'writeKey':'k'");
        SLICE(R.extra[1].start, R.extra[1].end,
              "'context':{'consent':{'categoryPreferences':{'C0002':true}}}");
        SLICE(R.extra[2].start, R.extra[2].end,
              "'sentAt':'2024-01-01T00:00:00Z'");
        SLICE(R.extra[3].start, R.extra[3].end, "'integrations':{}");
    }

    /* only "batch": no extra members */
    c = proc(&P, CONSENT_EP_BATCH, "{'batch':[{'type':'alias','userId':1}]}");
    CHECK(c == CONSENT_OK && R.nextra == 0 && R.nevents == 1,
          "%s nextra %u", consent_code_name(c), R.nextra);
    SLICE(R.events[0].start, R.events[0].end, "{'type':'alias','userId':1}");

    /* extra member with whitespace inside, as received */
    c = proc(&P, CONSENT_EP_BATCH,
             "{ 'batch':[{'type':'alias','userId':1}], 'k' : [ 1 , 2 ] }");
    CHECK(c == CONSENT_OK && R.nextra == 1, "%s nextra %u",
          consent_code_name(c), R.nextra);
    if (R.nextra == 1) {
        SLICE(R.extra[0].start, R.extra[0].end, "'k' : [ 1 , 2 ]");
    }

    /* /v1/import behaves as /v1/batch */
    c = proc(&P, endpoint("/v1/import"),
             "{'batch':[{'type':'track','userId':'u'}]}");
    CHECK(c == CONSENT_OK && R.naccepted == 1, "%s", consent_code_name(c));
}


static void
test_batch_single_event(void)
{
    consent_code_e  c;

    /* single-event endpoint without "type": insert it */
    c = proc(&P, CONSENT_EP_TRACK, " {'userId':'u','event':'E'} ");
    CHECK(c == CONSENT_OK, "%s", consent_code_name(c));
    CHECK_INT(R.nevents, 1);
    CHECK_INT(R.naccepted, 1);
    CHECK_INT(R.events[0].insert_type, 1);
    CHECK_INT(R.events[0].has_members, 1);
    CHECK_INT(R.events[0].type, CONSENT_EP_TRACK);
    CHECK_INT(R.nextra, 0);
    SLICE(R.events[0].start, R.events[0].end, "{'userId':'u','event':'E'}");

    c = proc(&P, CONSENT_EP_PAGE, "{'userId':'u'}");
    CHECK(c == CONSENT_OK && R.events[0].insert_type == 1
          && R.events[0].type == CONSENT_EP_PAGE, "%s type %d",
          consent_code_name(c), R.events[0].type);

    /* with "type": nothing inserted */
    c = proc(&P, CONSENT_EP_TRACK, "{'type':'track','userId':'u'}");
    CHECK(c == CONSENT_OK && R.events[0].insert_type == 0
          && R.events[0].has_members == 1, "%s insert %d",
          consent_code_name(c), R.events[0].insert_type);

    /* {}: no members (rejected for want of ids) */
    c = proc(&P, CONSENT_EP_TRACK, "{ }");
    CHECK(c == CONSENT_NO_USER_ANON_ID && R.nevents == 1
          && R.events[0].has_members == 0, "%s has_members %d",
          consent_code_name(c), R.nevents ? R.events[0].has_members : -1);

    /* a batch event never gets a type inserted */
    c = proc(&P, CONSENT_EP_BATCH, "{'batch':[{'userId':'u'}]}");
    CHECK(c == CONSENT_OK && R.events[0].insert_type == 0
          && R.events[0].code == CONSENT_INVALID_TYPE, "%s",
          consent_code_name(c));

    /* a rejected single event: everything skipped */
    c = proc(&P, CONSENT_EP_TRACK, "{'event':'E'}");
    CHECK(c == CONSENT_NO_USER_ANON_ID && R.naccepted == 0
          && strcmp(routes(), "SSSS") == 0, "%s %s", consent_code_name(c),
          routes());
    CHECK(R.reason != NULL, "no reason for a rejected single event");
}


static void
test_batch_merge(void)
{
    /* batch-level consent applies to events without their own */
    ROUTE(CONSENT_EP_BATCH,
          "{'context':{'consent':{'categoryPreferences':{'C0002':false,"
          "'C0004':true,'C0005':true}}},'batch':["
          "{'type':'track','userId':'a'},"
          "{'type':'track','userId':'b'," PREFS("{'C0002':true}") "},"
          "{'type':'track','userId':'c','context':{'ip':'x'}},"
          "{'type':'track','userId':'d','context':{'consent':{'version':1}}},"
          "{'type':'track','userId':'e','context':{'consentCategories':"
          "{'C0002':true,'C0004':true,'C0005':true}}},"
          "{'type':'track','userId':'f','context':{'consent':'x'}}"
          "]}",
          "CDDD|DCDD|CDDD|CDDD|DDDD|CCDD");

    /* batch-level legacy consent */
    ROUTE(CONSENT_EP_BATCH,
          "{'batch':[{'type':'track','userId':'a'}],"
          "'context':{'consentCategories':{'C0004':true,'C0005':true}}}",
          "CDDD");

    /* batch-level context.consent not an object: fails closed */
    ROUTE(CONSENT_EP_BATCH,
          "{'batch':[{'type':'track','userId':'a'}],"
          "'context':{'consent':7}}", "CCDD");

    /* batch-level context.consent without prefs: no consent */
    ROUTE(CONSENT_EP_BATCH,
          "{'batch':[{'type':'track','userId':'a'}],"
          "'context':{'consent':{'version':3}}}", "DDDD");

    /* batch-level context not an object: ignored */
    ROUTE(CONSENT_EP_BATCH,
          "{'batch':[{'type':'track','userId':'a'}],'context':null}", "DDDD");

    /* no consent anywhere */
    ROUTE(CONSENT_EP_BATCH,
          "{'batch':[{'type':'track','userId':'a'},"
          "{'type':'page','userId':'b'}]}", "DDDD|DDDD");

    /* integrations merge key by key, the event's key winning */
    ROUTE(CONSENT_EP_BATCH,
          "{'integrations':{'amplitude':false,'webhook':false},'batch':["
          "{'type':'track','userId':'a'},"
          "{'type':'track','userId':'b','integrations':{'amplitude':true}},"
          "{'type':'track','userId':'c','integrations':{'facebook':false}},"
          "{'type':'track','userId':'d','integrations':{'All':true}},"
          "{'type':'track','userId':'e','integrations':{'webhook':{}}}"
          "]}",
          "IDDI|DDDI|IIDI|IDDI|IDDD");

    ROUTE(CONSENT_EP_BATCH,
          "{'integrations':{'All':false,'facebook':true},'batch':["
          "{'type':'track','userId':'a'},"
          "{'type':'track','userId':'b','integrations':{'All':true}},"
          "{'type':'track','userId':'c','integrations':{'amplitude':true}},"
          "{'type':'track','userId':'d','integrations':{'facebook':false}},"
          "{'type':'track','userId':'e','integrations':'x'}"
          "]}",
          "IDII|DDDD|DDII|IIII|IDII");

    /* event All:false, batch names the destination */
    ROUTE(CONSENT_EP_BATCH,
          "{'integrations':{'webhook':true},'batch':["
          "{'type':'track','userId':'a','integrations':{'All':false}}]}",
          "IIID");

    /* batch integrations not an object: ignored */
    ROUTE(CONSENT_EP_BATCH,
          "{'integrations':false,'batch':[{'type':'track','userId':'a'}]}",
          "DDDD");

    /* consent from the batch, integrations from the event */
    ROUTE(CONSENT_EP_BATCH,
          "{'context':{'consent':{'categoryPreferences':{'C0002':true}}},"
          "'batch':[{'type':'track','userId':'a',"
          "'integrations':{'All':false,'facebook':true}}]}",
          "ICII");

    /* rejected events in the middle do not disturb the others */
    ROUTE(CONSENT_EP_BATCH,
          "{'batch':[{'type':'track','userId':'a','integrations':"
          "{'amplitude':false}},{'type':'x'},{'type':'track','userId':'c'}]}",
          "IDDD|SSSS|DDDD");
}


static void
test_process_oom(void)
{
    const char      *q = "{'writeKey':'k','context':{'consent':"
                         "{'categoryPreferences':{'C0002':true}}},"
                         "'batch':[{'type':'track','userId':'a'},"
                         "{'type':'page','userId':'b'}]}";
    size_t           budget, len;
    consent_code_e   c;
    int              ok_seen = 0;

    for (budget = 0; budget < 12; budget++) {
        RB = dup_q(q, &len);
        A.limited = 1;
        A.budget = budget;
        c = consent_process(&P, CONSENT_EP_BATCH, RB, len, arena_alloc, &A,
                            &R);
        A.limited = 0;

        /* running out of memory is never mistaken for bad input */
        CHECK(c == CONSENT_OK || c == CONSENT_NO_MEMORY,
              "budget %zu: %s", budget, consent_code_name(c));

        if (c == CONSENT_OK) {
            ok_seen = 1;
            CHECK(strcmp(routes(), "DCDD|DCDD") == 0, "budget %zu: %s",
                  budget, routes());
        }
    }

    CHECK(ok_seen, "never succeeded with 11 allocations");
}


/* ------------------------------------------------------------------ */
/* property check: generated batches against a reference model         */

typedef struct {
    uint64_t  s;
} rng_t;

static rng_t  G;


static uint32_t
rnd(uint32_t n)
{
    /* xorshift64* */
    G.s ^= G.s >> 12;
    G.s ^= G.s << 25;
    G.s ^= G.s >> 27;
    return (uint32_t) (((G.s * 0x2545F4914F6CDD1DULL) >> 33) % n);
}


typedef struct {
    char    *p;
    size_t   len;
    size_t   cap;
} buf_t;


static void
bput(buf_t *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t  cap = b->cap ? b->cap : 1024;
        char   *np;

        while (b->len + n + 1 > cap) {
            cap *= 2;
        }

        np = realloc(b->p, cap);
        if (np == NULL) {
            fprintf(stderr, "out of memory\n");
            exit(2);
        }

        b->p = np;
        b->cap = cap;
    }

    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}


static void
bputs(buf_t *b, const char *s)
{
    bput(b, s, strlen(s));
}


/* optional whitespace */
static void
ws(buf_t *b)
{
    static const char  *w[] = { " ", "\n", "\t ", "\r\n  " };

    if (rnd(6) == 0) {
        bputs(b, w[rnd(4)]);
    }
}


/* a string, sometimes with one character written as \u00XX */
static void
put_name(buf_t *b, const char *s)
{
    size_t  i, n = strlen(s), esc = rnd(6) == 0 ? rnd((uint32_t) n) : n;
    char    t[8];

    bput(b, "\"", 1);

    for (i = 0; i < n; i++) {
        if (i == esc) {
            snprintf(t, sizeof(t), rnd(2) ? "\\u%04x" : "\\u%04X",
                     (unsigned char) s[i]);
            bputs(b, t);

        } else {
            bput(b, &s[i], 1);
        }
    }

    bput(b, "\"", 1);
}


static void
put_key(buf_t *b, const char *k)
{
    ws(b);
    put_name(b, k);
    ws(b);
    bput(b, ":", 1);
    ws(b);
}


static void
put_sep(buf_t *b, int *first)
{
    if (!*first) {
        ws(b);
        bput(b, ",", 1);
    }

    *first = 0;
}


#define PMAX_CAT   70
#define PMAX_DEST  6
#define PMAX_EV    10

/* category values */
enum { V_ABSENT, V_TRUE, V_FALSE, V_NULL, V_STR, V_NUM, V_OBJ,
       V_DUP_TT, V_DUP_TF, V_DUP_FT, V_N };

/* consent shapes of a context */
enum { CS_NOCTX, CS_CTX_EMPTY, CS_CONSENT_NOPREFS, CS_PREFS, CS_LEGACY,
       CS_BOTH, CS_PREFS_NONOBJ, CS_CONSENT_NONOBJ, CS_N };

/* integration values */
enum { I_ABSENT, I_TRUE, I_FALSE, I_OBJ, I_NULL, I_STRFALSE, I_ZERO,
       I_DUP_TF, I_DUP_FT, I_DUP_TT, I_N };

/* the categories the generator writes (those masks use, and one unused) */
static const int  gen_cats[] = { 1, 2, 3, 63, 64, 65, 69 };
#define NGEN_CATS  (sizeof(gen_cats) / sizeof(gen_cats[0]))

typedef struct {
    int  shape;
    int  v[NGEN_CATS];          /* prefs, or legacy for CS_LEGACY */
    int  v2[NGEN_CATS];         /* legacy for CS_BOTH */
} gconsent_t;

typedef struct {
    int  present;               /* 0 absent, 1 object, 2 not an object */
    int  d[PMAX_DEST];
    int  all;
} ginteg_t;

typedef struct {
    int         ids;            /* 0 none, 1 userId, 2 anon, 3 number,
                                   4 empty string, 5 null, 6 both */
    int         type;           /* consent_endpoint_e, 0 = "bogus" */
    int         decoy;
    gconsent_t  c;
    ginteg_t    in;
} gevent_t;

typedef struct {
    gconsent_t  c;
    ginteg_t    in;
    int         nev;
    gevent_t    ev[PMAX_EV];
} gbatch_t;


static consent_str_t     pcats[PMAX_CAT];
static char              pcat_names[PMAX_CAT][8];
static consent_dest_t    pdests[PMAX_DEST];
static consent_policy_t  PP;


static void
init_prop_policy(void)
{
    size_t  i;

    for (i = 0; i < PMAX_CAT; i++) {
        snprintf(pcat_names[i], sizeof(pcat_names[i]), "C%04zu", i);
        pcats[i] = str(pcat_names[i]);
    }

    memset(pdests, 0, sizeof(pdests));

    pdests[0].name = str("amp");
    pdests[0].enforce = 1;
    pdests[0].mask[0] = BIT(1);

    pdests[1].name = str("fb");
    pdests[1].enforce = 1;
    pdests[1].mask[0] = BIT(3) | BIT(63);

    pdests[2].name = str("ga");
    pdests[2].enforce = 1;
    pdests[2].mask[1] = BIT(64 - 64);

    pdests[3].name = str("multi");
    pdests[3].enforce = 1;
    pdests[3].mask[0] = BIT(1);
    pdests[3].mask[1] = BIT(64 - 64) | BIT(69 - 64);

    pdests[4].name = str("wh");
    pdests[4].enforce = 0;
    pdests[4].mask[1] = BIT(65 - 64);

    pdests[5].name = str("hook");
    pdests[5].enforce = 1;

    memset(&PP, 0, sizeof(PP));
    PP.categories = pcats;
    PP.ncategories = PMAX_CAT;
    PP.dests = pdests;
    PP.ndests = PMAX_DEST;
    PP.max_event_size = 1 << 20;
    PP.max_events = 1000;
}


static consent_policy_t  PP_prep;


static void
set_indexed(int on)
{
    indexed = on;
    use_index(&P, &P_prep, on);
    use_index(&PP, &PP_prep, on);
}


static void
gen_consent(gconsent_t *c)
{
    size_t  i;

    c->shape = (int) rnd(CS_N);

    for (i = 0; i < NGEN_CATS; i++) {
        /* mostly true, so that delivery happens often */
        c->v[i] = rnd(2) ? V_TRUE : (int) rnd(V_N);
        c->v2[i] = rnd(2) ? V_TRUE : (int) rnd(V_N);
    }
}


static void
gen_integ(ginteg_t *in)
{
    size_t  d;

    memset(in, 0, sizeof(*in));

    switch (rnd(4)) {
    case 0:
        return;
    case 1:
        in->present = rnd(8) ? 1 : 2;
        return;
    default:
        in->present = 1;
        break;
    }

    for (d = 0; d < PMAX_DEST; d++) {
        in->d[d] = rnd(3) ? I_ABSENT : (int) rnd(I_N);
    }

    in->all = rnd(2) ? I_ABSENT : (int) rnd(I_N);
}


static void
emit_value(buf_t *b, int v)
{
    static const char  *vals[] = {
        "", "true", "false", "null", "\"true\"", "1", "{\"x\":true}"
    };

    ws(b);
    bputs(b, vals[v]);
}


static void
emit_map(buf_t *b, const int *v)
{
    size_t  i;
    int     first = 1;

    bput(b, "{", 1);

    if (rnd(4) == 0) {
        put_sep(b, &first);
        put_key(b, "X0001");
        bputs(b, "true");
    }

    for (i = 0; i < NGEN_CATS; i++) {
        const char  *k = pcat_names[gen_cats[i]];

        switch (v[i]) {
        case V_ABSENT:
            continue;
        case V_DUP_TT:
        case V_DUP_TF:
        case V_DUP_FT:
            put_sep(b, &first);
            put_key(b, k);
            emit_value(b, v[i] == V_DUP_FT ? V_FALSE : V_TRUE);
            put_sep(b, &first);
            put_key(b, k);
            emit_value(b, v[i] == V_DUP_TF ? V_FALSE : V_TRUE);
            break;
        default:
            put_sep(b, &first);
            put_key(b, k);
            emit_value(b, v[i]);
            break;
        }
    }

    ws(b);
    bput(b, "}", 1);
}


/* the "context" member, if the shape has one */
static void
emit_context(buf_t *b, const gconsent_t *c, int *first)
{
    static const char  *nonobj[] = { "\"x\"", "null", "[]", "1", "true" };

    if (c->shape == CS_NOCTX) {
        return;
    }

    put_sep(b, first);
    put_key(b, "context");
    bput(b, "{", 1);

    switch (c->shape) {
    case CS_CTX_EMPTY:
        if (rnd(2)) {
            bputs(b, "\"ip\":\"1.2.3.4\"");
        }
        break;

    case CS_CONSENT_NOPREFS:
        put_key(b, "consent");
        bputs(b, rnd(2) ? "{}" : "{\"version\":1}");
        break;

    case CS_PREFS:
    case CS_PREFS_NONOBJ:
        put_key(b, "consent");
        bput(b, "{", 1);
        if (rnd(3) == 0) {
            bputs(b, "\"version\":2,");
        }
        put_key(b, "categoryPreferences");
        if (c->shape == CS_PREFS) {
            emit_map(b, c->v);
        } else {
            bputs(b, nonobj[rnd(5)]);
        }
        bput(b, "}", 1);
        break;

    case CS_LEGACY:
        put_key(b, "consentCategories");
        emit_map(b, c->v);
        break;

    case CS_BOTH:
        if (rnd(2)) {
            put_key(b, "consentCategories");
            emit_map(b, c->v2);
            bput(b, ",", 1);
            put_key(b, "consent");
            bput(b, "{", 1);
            put_key(b, "categoryPreferences");
            emit_map(b, c->v);
            bput(b, "}", 1);

        } else {
            put_key(b, "consent");
            bput(b, "{", 1);
            put_key(b, "categoryPreferences");
            emit_map(b, c->v);
            bput(b, "}", 1);
            bput(b, ",", 1);
            put_key(b, "consentCategories");
            emit_map(b, c->v2);
        }
        break;

    case CS_CONSENT_NONOBJ:
        put_key(b, "consent");
        bputs(b, nonobj[rnd(5)]);
        break;
    }

    ws(b);
    bput(b, "}", 1);
}


static void
emit_integ_member(buf_t *b, const char *k, int v, int *first)
{
    static const char  *vals[] = {
        "", "true", "false", "{\"apiKey\":\"x\"}", "null", "\"false\"", "0"
    };

    switch (v) {
    case I_ABSENT:
        return;
    case I_DUP_TF:
    case I_DUP_FT:
    case I_DUP_TT:
        put_sep(b, first);
        put_key(b, k);
        bputs(b, v == I_DUP_FT ? "false" : "true");
        put_sep(b, first);
        put_key(b, k);
        bputs(b, v == I_DUP_TF ? "false" : "true");
        return;
    default:
        put_sep(b, first);
        put_key(b, k);
        bputs(b, vals[v]);
        return;
    }
}


static void
emit_integrations(buf_t *b, const ginteg_t *in, int *first)
{
    size_t  d;
    int     f = 1;

    if (in->present == 0) {
        return;
    }

    put_sep(b, first);
    put_key(b, "integrations");

    if (in->present == 2) {
        bputs(b, rnd(2) ? "false" : "\"All\"");
        return;
    }

    bput(b, "{", 1);
    emit_integ_member(b, "All", in->all, &f);

    for (d = 0; d < PMAX_DEST; d++) {
        emit_integ_member(b, pdests[d].name.data, in->d[d], &f);
    }

    if (f || rnd(2)) {
        /* unknown destinations are ignored */
        put_sep(b, &f);
        put_key(b, "Unknown");
        bputs(b, "false");
    }

    ws(b);
    bput(b, "}", 1);
}


/* All written first or last: keep the model independent of order */
static void
emit_integrations_all_last(buf_t *b, const ginteg_t *in, int *first)
{
    size_t  d;
    int     f = 1;

    if (in->present != 1) {
        emit_integrations(b, in, first);
        return;
    }

    put_sep(b, first);
    put_key(b, "integrations");
    bput(b, "{", 1);

    for (d = PMAX_DEST; d-- > 0; ) {
        emit_integ_member(b, pdests[d].name.data, in->d[d], &f);
    }

    emit_integ_member(b, "All", in->all, &f);
    ws(b);
    bput(b, "}", 1);
}


static void
emit_event(buf_t *b, const gevent_t *e, int with_type)
{
    int  first = 1;

    ws(b);
    bput(b, "{", 1);

    if (with_type) {
        put_sep(b, &first);
        put_key(b, "type");
        put_name(b, e->type ? consent_type_name((consent_endpoint_e) e->type)
                            : "bogus");
    }

    switch (e->ids) {
    case 1:
        put_sep(b, &first);
        put_key(b, "userId");
        bputs(b, "\"u\"");
        break;
    case 2:
        put_sep(b, &first);
        put_key(b, "anonymousId");
        bputs(b, "\"a\"");
        break;
    case 3:
        put_sep(b, &first);
        put_key(b, "userId");
        bputs(b, "42");
        break;
    case 4:
        put_sep(b, &first);
        put_key(b, rnd(2) ? "userId" : "anonymousId");
        bputs(b, "\"\"");
        break;
    case 5:
        put_sep(b, &first);
        put_key(b, rnd(2) ? "userId" : "anonymousId");
        bputs(b, "null");
        break;
    case 6:
        put_sep(b, &first);
        put_key(b, "anonymousId");
        bputs(b, "\"a\"");
        put_sep(b, &first);
        put_key(b, "userId");
        bputs(b, "\"u\"");
        break;
    default:
        break;
    }

    if (e->type == CONSENT_EP_TRACK) {
        put_sep(b, &first);
        put_key(b, "event");
        bputs(b, "\"Clicked\"");
    }

    if (e->decoy) {
        /* consent-looking data outside context must be ignored */
        put_sep(b, &first);
        put_key(b, "properties");
        bputs(b, "{\"context\":{\"consent\":{\"categoryPreferences\":{}}},"
                 "\"integrations\":{\"All\":false},\"type\":\"x\"}");
    }

    if (rnd(2)) {
        emit_context(b, &e->c, &first);
        emit_integrations(b, &e->in, &first);

    } else {
        emit_integrations_all_last(b, &e->in, &first);
        emit_context(b, &e->c, &first);
    }

    ws(b);
    bput(b, "}", 1);
    ws(b);
}


static void
emit_batch(buf_t *b, const gbatch_t *g)
{
    int  i, first = 1, pos = (int) rnd(4);

    bput(b, "{", 1);

    if (rnd(2)) {
        put_sep(b, &first);
        put_key(b, "writeKey");
        bputs(b, "\"wk\"");
    }

    if (pos == 0) {
        emit_context(b, &g->c, &first);
    }

    put_sep(b, &first);
    put_key(b, "batch");
    bput(b, "[", 1);

    for (i = 0; i < g->nev; i++) {
        if (i) {
            bput(b, ",", 1);
        }
        emit_event(b, &g->ev[i], 1);
    }

    bput(b, "]", 1);

    if (pos != 0) {
        emit_context(b, &g->c, &first);
    }

    emit_integrations(b, &g->in, &first);

    if (rnd(2)) {
        put_sep(b, &first);
        put_key(b, "sentAt");
        bputs(b, "\"2024-01-01T00:00:00Z\"");
    }

    ws(b);
    bput(b, "}", 1);
}


/* reference model ---------------------------------------------------- */

static int
m_carries(const gconsent_t *c)
{
    return c->shape == CS_PREFS || c->shape == CS_LEGACY
           || c->shape == CS_BOTH || c->shape == CS_PREFS_NONOBJ
           || c->shape == CS_CONSENT_NONOBJ;
}


/* is category cat consented to under consent object c */
static int
m_consented(const gconsent_t *c, int cat)
{
    size_t  i;
    int     v = V_ABSENT;

    if (c->shape != CS_PREFS && c->shape != CS_LEGACY
        && c->shape != CS_BOTH)
    {
        return 0;
    }

    for (i = 0; i < NGEN_CATS; i++) {
        if (gen_cats[i] == cat) {
            v = c->v[i];        /* prefs win in CS_BOTH: v2 is legacy */
        }
    }

    return v == V_TRUE || v == V_DUP_TT;
}


static int
m_integ_off(int v)
{
    return v == I_FALSE || v == I_DUP_TF || v == I_DUP_FT;
}


static int
m_valid(const gevent_t *e, int in_batch, consent_endpoint_e ep)
{
    if (in_batch) {
        if (e->type == 0) {
            return 0;
        }

    } else if (e->type != (int) ep) {
        return 0;
    }

    return e->ids == 1 || e->ids == 2 || e->ids == 3 || e->ids == 6;
}


/* expected outcome of event e at destination d */
static int
m_outcome(const gevent_t *e, const gconsent_t *bc, const ginteg_t *bi,
    size_t d)
{
    const gconsent_t  *src;
    const ginteg_t    *ei = e->in.present == 1 ? &e->in : NULL;
    const ginteg_t    *gi = bi != NULL && bi->present == 1 ? bi : NULL;
    int                c, dv, all;

    src = m_carries(&e->c) ? &e->c
          : (bc != NULL && m_carries(bc)) ? bc : NULL;

    /* consent_default deny: no consent object counts as nothing */
    if (pdests[d].enforce && (src != NULL || PP.default_deny)) {
        for (c = 0; c < PMAX_CAT; c++) {
            if (((pdests[d].mask[c / 64] >> (c % 64)) & 1)
                && (src == NULL || !m_consented(src, c)))
            {
                return CONSENT_FILTERED_CONSENT;
            }
        }
    }

    dv = ei != NULL && ei->d[d] != I_ABSENT ? ei->d[d]
         : gi != NULL ? gi->d[d] : I_ABSENT;
    all = ei != NULL && ei->all != I_ABSENT ? ei->all
          : gi != NULL ? gi->all : I_ABSENT;

    if (m_integ_off(dv) || (dv == I_ABSENT && m_integ_off(all))) {
        return CONSENT_FILTERED_INTEGRATIONS;
    }

    return CONSENT_DELIVER;
}


static void
gen_event(gevent_t *e)
{
    static const int  idw[] = { 0, 1, 1, 1, 2, 2, 3, 4, 5, 6, 6 };

    memset(e, 0, sizeof(*e));
    e->ids = idw[rnd(sizeof(idw) / sizeof(idw[0]))];
    e->type = rnd(20) == 0 ? 0 : (int) (1 + rnd(6));
    e->decoy = rnd(5) == 0;
    gen_consent(&e->c);
    gen_integ(&e->in);
}


static void
test_property_batches(void)
{
    gbatch_t        g;
    buf_t           b = { NULL, 0, 0 };
    char            got[PMAX_EV + 1], exp[PMAX_EV + 1];
    int             iter, i, nacc;
    size_t          d;
    consent_code_e  c;

    G.s = 0x9e3779b97f4a7c15ULL;

    for (iter = 0; iter < 2000; iter++) {
        memset(&g, 0, sizeof(g));
        gen_consent(&g.c);
        gen_integ(&g.in);
        g.nev = 1 + (int) rnd(PMAX_EV);

        for (i = 0; i < g.nev; i++) {
            gen_event(&g.ev[i]);
        }

        b.len = 0;
        emit_batch(&b, &g);

        RB = dup_in(b.p, b.len);
        PP.default_deny = (iter % 3 == 2);
        c = consent_process(&PP, CONSENT_EP_BATCH, RB, b.len, arena_alloc,
                            &A, &R);

        if (!CHECK(c == CONSENT_OK && R.nevents == (uint32_t) g.nev,
                   "iteration %d: %s, %u events (expected %d)", iter,
                   consent_code_name(c), R.nevents, g.nev))
        {
            arena_reset(&A);
            continue;
        }

        nacc = 0;
        for (i = 0; i < g.nev; i++) {
            nacc += m_valid(&g.ev[i], 1, CONSENT_EP_BATCH);
        }

        CHECK(R.naccepted == (uint32_t) nacc,
              "iteration %d: naccepted %u, expected %d", iter, R.naccepted,
              nacc);

        /* per destination: the events it gets and why the others not */
        for (d = 0; d < PMAX_DEST; d++) {
            for (i = 0; i < g.nev; i++) {
                int  o = m_valid(&g.ev[i], 1, CONSENT_EP_BATCH)
                         ? m_outcome(&g.ev[i], &g.c, &g.in, d)
                         : CONSENT_SKIP;

                exp[i] = "SDCI"[o];
                got[i] = "SDCI"[R.outcome[(size_t) i * PMAX_DEST + d] & 3];
            }

            exp[g.nev] = got[g.nev] = '\0';

            CHECK(strcmp(got, exp) == 0,
                  "iteration %d, destination %s: got %s expected %s",
                  iter, pdests[d].name.data, got, exp);

            SPLIT_OK(d);
        }

        arena_reset(&A);
    }

    /* the same events alone on their single-event endpoint */
    G.s = 0x0123456789abcdefULL;

    for (iter = 0; iter < 2000; iter++) {
        gevent_t            e;
        consent_endpoint_e  ep;
        int                 with_type = (int) rnd(2);
        int                 valid;

        gen_event(&e);
        ep = (consent_endpoint_e) (1 + rnd(6));
        if (!with_type) {
            e.type = (int) ep;
        } else if (rnd(2) && e.type != 0) {
            e.type = (int) ep;
        }

        b.len = 0;
        emit_event(&b, &e, with_type);

        RB = dup_in(b.p, b.len);
        PP.default_deny = (iter % 3 == 2);
        c = consent_process(&PP, ep, RB, b.len, arena_alloc, &A, &R);

        valid = m_valid(&e, 0, ep);

        CHECK(R.nevents == 1 && (valid ? c == CONSENT_OK : c != CONSENT_OK)
              && R.naccepted == (uint32_t) valid
              && R.events[0].insert_type == !with_type,
              "iteration %d: %s, valid %d, insert_type %d", iter,
              consent_code_name(c), valid,
              R.nevents ? R.events[0].insert_type : -1);

        for (d = 0; d < PMAX_DEST; d++) {
            int  o = valid ? m_outcome(&e, NULL, NULL, d) : CONSENT_SKIP;
            int  r = R.nevents ? R.outcome[d] : -1;

            CHECK(r == o, "iteration %d, destination %s: got %d expected %d",
                  iter, pdests[d].name.data, r, o);

            if (valid) {
                SPLIT_OK(d);
            }
        }

        arena_reset(&A);
    }

    PP.default_deny = 0;
    free(b.p);
}


/* ------------------------------------------------------------------ */
/* consent profiles: timestamps, RESP2, the stored value               */

#define TOK_  1     /* expected to parse */
#define TBAD  0


static const struct {
    const char  *in;
    int          ok;
    int64_t      ms;        /* reference: Python's datetime */
} time_cases[] = {
    { "1970-01-01T00:00:00Z", TOK_, 0 },
    { "2026-12-06T04:46:12.123Z", TOK_, 1796532372123LL },
    { "2026-12-06t04:46:12.123z", TOK_, 1796532372123LL },
    { "2026-12-06 04:46:12.123Z", TOK_, 1796532372123LL },
    { "2026-12-06T04:46:12.123", TOK_, 1796532372123LL },
    { "2026-12-06T04:46:12.1239999Z", TOK_, 1796532372123LL },
    { "2026-12-06T04:46:12.123456+00:00", TOK_, 1796532372123LL },
    { "2026-12-06T04:46:12.123-00:00", TOK_, 1796532372123LL },
    { "2026-12-06T04:46:12.1Z", TOK_, 1796532372100LL },
    { "2026-12-06T04:46:12.12Z", TOK_, 1796532372120LL },
    { "2026-12-06T04:46:12.000000001Z", TOK_, 1796532372000LL },
    { "2026-12-06T04:46:12.123+02:00", TOK_, 1796525172123LL },
    { "2026-12-06T04:46:12.123+0200", TOK_, 1796525172123LL },
    { "2026-12-06T04:46:12.123+02", TOK_, 1796525172123LL },
    { "2026-12-06T04:46:12-0530", TOK_, 1796552172000LL },
    { "2026-12-06T04:46:12-05:30", TOK_, 1796552172000LL },
    { "2026-01-01T00:00:00-23:59", TOK_, 1767311940000LL },
    { "2000-02-29T23:59:59.999Z", TOK_, 951868799999LL },
    { "2024-02-29T00:00:00+14:00", TOK_, 1709114400000LL },
    { "1969-12-31T23:59:59Z", TOK_, -1000 },
    { "1900-03-01T00:00:00Z", TOK_, -2203891200000LL },
    { "0001-01-01T00:00:00Z", TOK_, -62135596800000LL },
    { "0000-01-01T00:00:00Z", TOK_, -62167219200000LL },
    { "9999-12-31T23:59:59.999Z", TOK_, 253402300799999LL },
    /* a leap second orders just before the next minute */
    { "2016-12-31T23:59:60Z", TOK_, 1483228799999LL },
    { "2016-12-31T23:59:60.5Z", TOK_, 1483228799999LL },

    { "", TBAD, 0 },
    { "2026-12-06", TBAD, 0 },              /* date only */
    { "2026-12-06T", TBAD, 0 },
    { "2026-12-06T04:46", TBAD, 0 },        /* no seconds */
    { "2026-12-06T04:46Z", TBAD, 0 },
    { "2026-12-06T04:46:1Z", TBAD, 0 },
    { "2026-12-06T04:46:12.Z", TBAD, 0 },
    { "2026-12-06T04:46:12.", TBAD, 0 },
    { "2026-12-06T04:46:12,123Z", TBAD, 0 },
    { "2026-12-06T04:46:12ZZ", TBAD, 0 },
    { "2026-12-06T04:46:12Z ", TBAD, 0 },
    { " 2026-12-06T04:46:12Z", TBAD, 0 },
    { "2026-12-06T04:46:12+2", TBAD, 0 },
    { "2026-12-06T04:46:12+02:", TBAD, 0 },
    { "2026-12-06T04:46:12+02:0", TBAD, 0 },
    { "2026-12-06T04:46:12+020", TBAD, 0 },
    { "2026-12-06T04:46:12+02:000", TBAD, 0 },
    { "2026-12-06T04:46:12+24:00", TBAD, 0 },
    { "2026-12-06T04:46:12+02:60", TBAD, 0 },
    { "2026-12-06T04:46:12 +02:00", TBAD, 0 },
    { "2026-13-01T00:00:00Z", TBAD, 0 },
    { "2026-00-01T00:00:00Z", TBAD, 0 },
    { "2026-01-00T00:00:00Z", TBAD, 0 },
    { "2026-02-29T00:00:00Z", TBAD, 0 },
    { "1900-02-29T00:00:00Z", TBAD, 0 },
    { "2026-02-30T00:00:00Z", TBAD, 0 },
    { "2026-04-31T00:00:00Z", TBAD, 0 },
    { "2026-12-32T00:00:00Z", TBAD, 0 },
    { "2026-12-06T24:00:00Z", TBAD, 0 },    /* RFC 3339: no hour 24 */
    { "2026-12-06T23:60:00Z", TBAD, 0 },
    { "2026-12-06T23:59:61Z", TBAD, 0 },
    { "26-12-06T04:46:12Z", TBAD, 0 },
    { "+2026-12-06T04:46:12Z", TBAD, 0 },
    { "20261206T044612Z", TBAD, 0 },
    { "2026/12/06T04:46:12Z", TBAD, 0 },
    { "2026-12-06X04:46:12Z", TBAD, 0 },
    { "2026-1a-06T04:46:12Z", TBAD, 0 },
    { "1796532372123", TBAD, 0 },
};


static void
test_time_parse(void)
{
    size_t       i, k, len;
    int          rc;
    int64_t      ms;
    const char  *b;

    for (i = 0; i < sizeof(time_cases) / sizeof(time_cases[0]); i++) {
        len = strlen(time_cases[i].in);
        b = (const char *) dup_in(time_cases[i].in, len);
        ms = 42;
        rc = consent_time_parse(b, len, &ms);

        if (time_cases[i].ok) {
            CHECK(rc == 0 && ms == time_cases[i].ms,
                  "%s: rc %d, got %lld, expected %lld", time_cases[i].in,
                  rc, (long long) ms, (long long) time_cases[i].ms);
        } else {
            CHECK(rc == -1 && ms == 42, "%s: accepted", time_cases[i].in);
        }

        /* no prefix of an accepted one reads past its end */
        for (k = 0; time_cases[i].ok && k < len; k++) {
            b = (const char *) dup_in(time_cases[i].in, k);
            (void) consent_time_parse(b, k, &ms);
        }
    }
}


/* days_from_civil against counting days, 1600-03-01 .. 2400-12-31 */

static void
test_days_from_civil(void)
{
    static const unsigned char  mdays[] = {
        31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31
    };

    int64_t   n, y;
    unsigned  m, d, dim;
    size_t    bad = 0;

    CHECK_INT(consent_days_from_civil(1970, 1, 1), 0);
    CHECK_INT(consent_days_from_civil(2000, 3, 1), 11017);

    n = consent_days_from_civil(1600, 3, 1);

    for (y = 1600; y <= 2400; y++) {
        for (m = (y == 1600 ? 3 : 1); m <= 12; m++) {
            dim = mdays[m - 1] + (m == 2 && ((y % 4 == 0 && y % 100 != 0)
                                             || y % 400 == 0));

            for (d = 1; d <= dim; d++) {
                bad += consent_days_from_civil(y, m, d) != n++;
            }
        }
    }

    CHECK(bad == 0, "%zu dates off", bad);
}


/* RESP2 commands: the bytes, the room it asks for */

static void
test_resp_command(void)
{
    static const struct {
        size_t       argc;
        const char  *argv[4];
        const char  *exp;
    } cases[] = {
        { 0, { NULL }, "*0\r\n" },
        { 1, { "PING" }, "*1\r\n$4\r\nPING\r\n" },
        { 2, { "GET", "" }, "*2\r\n$3\r\nGET\r\n$0\r\n\r\n" },
        { 3, { "HGET", "consent:{u:a\r\nb}", "v" },
          "*3\r\n$4\r\nHGET\r\n$16\r\nconsent:{u:a\r\nb}\r\n$1\r\nv\r\n" },
        { 4, { "A", "0123456789", "B", "C" },
          "*4\r\n$1\r\nA\r\n$10\r\n0123456789\r\n$1\r\nB\r\n$1\r\nC\r\n" },
    };

    char    buf[128];
    size_t  i, j, n, need, lens[4], elen;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        for (j = 0; j < cases[i].argc; j++) {
            lens[j] = strlen(cases[i].argv[j]);
        }

        elen = strlen(cases[i].exp);
        need = consent_resp_command(buf, sizeof(buf), cases[i].argc,
                                    cases[i].argv, lens);
        CHECK(need == elen && memcmp(buf, cases[i].exp, elen) == 0,
              "case %zu: %zu bytes, expected %zu", i, need, elen);

        /* too small: the room needed, nothing written */
        memset(buf, 'x', sizeof(buf));
        n = consent_resp_command(buf, elen - 1, cases[i].argc,
                                 cases[i].argv, lens);
        CHECK(n == elen && buf[0] == 'x', "case %zu: short cap", i);
    }

    /* lengths that do not add up in size_t */
    lens[0] = SIZE_MAX - 4;
    lens[1] = 1;
    CHECK_INT(consent_resp_command(buf, sizeof(buf), 2, cases[1].argv,
                                   lens), 0);
}


/* RESP2 replies: one table of whole replies, then every prefix */

#define RS  CONSENT_RESP_STATUS
#define RE  CONSENT_RESP_ERROR
#define RI  CONSENT_RESP_INTEGER
#define RB  CONSENT_RESP_BULK
#define RA  CONSENT_RESP_ARRAY

static const struct {
    const char  *in;
    size_t       len;       /* 0: strlen */
    long         rc;        /* -1 malformed, 0 more, else consumed */
    int          type;
    int64_t      integer;
    const char  *data;      /* NULL: data NULL */
} resp_cases[] = {
    { "+OK\r\n", 0, 5, RS, 0, "OK" },
    { "+\r\n", 0, 3, RS, 0, "" },
    { "-ERR wrong type\r\n", 0, 17, RE, 0, "ERR wrong type" },
    { ":0\r\n", 0, 4, RI, 0, NULL },
    { ":1\r\n+OK\r\n", 0, 4, RI, 1, NULL },  /* pipelined: one reply */
    { ":-1\r\n", 0, 5, RI, -1, NULL },
    { ":9223372036854775807\r\n", 0, 22, RI, INT64_MAX, NULL },
    { ":-9223372036854775808\r\n", 0, 23, RI, INT64_MIN, NULL },
    { "$3\r\nabc\r\n", 0, 9, RB, 3, "abc" },
    { "$0\r\n\r\n", 0, 6, RB, 0, "" },
    { "$4\r\na\r\nb\r\n", 0, 10, RB, 4, "a\r\nb" },
    { "$3\r\na\0c\r\n", 9, 9, RB, 3, NULL },
    { "$-1\r\n", 0, 5, RB, -1, NULL },
    { "*0\r\n", 0, 4, RA, 0, NULL },
    { "*-1\r\n", 0, 5, RA, -1, NULL },
    { "*2\r\n$1\r\na\r\n:5\r\n", 0, 15, RA, 2, NULL },
    { "*2\r\n*1\r\n*0\r\n$-1\r\n", 0, 17, RA, 2, NULL },
    { "*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*0\r\n", 0, 32, RA, 1,
      NULL },                                     /* depth 8 */
    { "*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n", 0, 36, RA, 1,
      NULL },

    { "", 0, 0, 0, 0, NULL },
    { "+OK", 0, 0, 0, 0, NULL },
    { "+OK\r", 0, 0, 0, 0, NULL },
    { "$3\r\nab", 0, 0, 0, 0, NULL },
    { "$3\r\nabc\r", 0, 0, 0, 0, NULL },
    { "*2\r\n:1\r\n", 0, 0, 0, 0, NULL },
    { "*3\r\n*2\r\n:1\r\n:2\r\n", 0, 0, 0, 0, NULL },

    { "!3\r\nabc\r\n", 0, -1, 0, 0, NULL },      /* RESP3 types */
    { "%1\r\n", 0, -1, 0, 0, NULL },
    { "OK\r\n", 0, -1, 0, 0, NULL },
    { "+OK\n", 0, -1, 0, 0, NULL },
    { "+O\rK\r\n", 0, -1, 0, 0, NULL },
    { ":\r\n", 0, -1, 0, 0, NULL },
    { ":+1\r\n", 0, -1, 0, 0, NULL },
    { ":01\r\n", 0, -1, 0, 0, NULL },
    { ":-0\r\n", 0, -1, 0, 0, NULL },
    { ":1x\r\n", 0, -1, 0, 0, NULL },
    { ": 1\r\n", 0, -1, 0, 0, NULL },
    { ":9223372036854775808\r\n", 0, -1, 0, 0, NULL },
    { ":-9223372036854775809\r\n", 0, -1, 0, 0, NULL },
    { ":99999999999999999999\r\n", 0, -1, 0, 0, NULL },
    { "$-2\r\n", 0, -1, 0, 0, NULL },
    { "$3\r\nabcd\r\n", 0, -1, 0, 0, NULL },
    { "$3\r\nabc\n\n", 0, -1, 0, 0, NULL },
    { "$536870913\r\n", 0, -1, 0, 0, NULL },    /* over 512 MB */
    { "$18446744073709551615\r\n", 0, -1, 0, 0, NULL },
    { "*-2\r\n", 0, -1, 0, 0, NULL },
    { "*1048577\r\n", 0, -1, 0, 0, NULL },
    { "*2\r\n:1\r\n?\r\n", 0, -1, 0, 0, NULL },
    { "*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*0\r\n", 0, -1, 0, 0,
      NULL },                                     /* depth 9 */
    { "*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*-1\r\n", 0, -1, 0, 0,
      NULL },
};


static void
test_resp_parse(void)
{
    size_t           i, k, len;
    ptrdiff_t        rc;
    consent_resp_t   r;
    const char      *b;

    for (i = 0; i < sizeof(resp_cases) / sizeof(resp_cases[0]); i++) {
        len = resp_cases[i].len ? resp_cases[i].len
                                : strlen(resp_cases[i].in);
        b = (const char *) dup_in(resp_cases[i].in, len);
        rc = consent_resp_parse(b, len, &r);
        CHECK(rc == resp_cases[i].rc, "case %zu: rc %ld, expected %ld", i,
              (long) rc, resp_cases[i].rc);

        if (rc <= 0 || rc != resp_cases[i].rc) {
            continue;
        }

        CHECK_INT(r.type, resp_cases[i].type);
        CHECK_INT(r.integer, resp_cases[i].integer);

        if (resp_cases[i].data) {
            CHECK(r.data == b + (r.type == RB ? 4 + (r.len > 9) : 1)
                  && r.len == strlen(resp_cases[i].data)
                  && memcmp(r.data, resp_cases[i].data, r.len) == 0,
                  "case %zu: data", i);
        }

        if (r.type == RB && r.integer >= 0) {
            CHECK(r.data != NULL && r.len == (size_t) r.integer, "bulk %zu",
                  i);
        }

        if (r.type == RB && r.integer == -1) {
            CHECK(r.data == NULL, "null bulk %zu", i);
        }

        /* a complete reply: every proper prefix needs more */
        for (k = 0; k < (size_t) rc; k++) {
            b = (const char *) dup_in(resp_cases[i].in, k);
            CHECK(consent_resp_parse(b, k, &r) == 0, "case %zu prefix %zu",
                  i, k);
        }
    }

    /* max_bulk bounds the payload; the null bulk is not a length */
    b = (const char *) dup_in("$5\r\nhello\r\n", 11);
    CHECK_INT(consent_resp_parse_max(b, 11, 4, &r), -1);
    CHECK_INT(consent_resp_parse_max(b, 11, 5, &r), 11);
    b = (const char *) dup_in("$-1\r\n", 5);
    CHECK_INT(consent_resp_parse_max(b, 5, 0, &r), 5);

    /* a header line longer than CONSENT_RESP_MAX_LINE is refused early */
    {
        char  *lng = malloc(CONSENT_RESP_MAX_LINE + 8);

        lng[0] = '+';
        memset(lng + 1, 'a', CONSENT_RESP_MAX_LINE + 7);
        CHECK_INT(consent_resp_parse(lng, CONSENT_RESP_MAX_LINE + 2, &r), 0);
        CHECK_INT(consent_resp_parse(lng, CONSENT_RESP_MAX_LINE + 8, &r), -1);
        free(lng);
    }
}


/* an EVAL reply and an HMGET reply walked element by element */

static void
test_resp_elements(void)
{
    static const char  in[] =
        "*3\r\n$3\r\n{a}\r\n*2\r\n:1\r\n$-1\r\n-ERR x\r\n+OK\r\n";

    consent_resp_t   r, e;
    const char      *b, *q;
    size_t           left;
    ptrdiff_t        n;
    int              types[3], i;

    b = (const char *) dup_in(in, sizeof(in) - 1);
    n = consent_resp_parse(b, sizeof(in) - 1, &r);
    CHECK_INT(n, sizeof(in) - 1 - 5);
    CHECK_INT(r.type, RA);
    CHECK_INT(r.nelts, 3);
    CHECK(r.elts == b + 4 && r.elts_len == (size_t) n - 4, "elts");

    q = r.elts;
    left = r.elts_len;

    for (i = 0; i < 3; i++) {
        n = consent_resp_parse(q, left, &e);
        CHECK(n > 0, "element %d", i);
        if (n <= 0) {
            return;
        }

        types[i] = e.type;
        q += n;
        left -= (size_t) n;
    }

    CHECK_INT(left, 0);
    CHECK(types[0] == RB && types[1] == RA && types[2] == RE, "types");
    CHECK(e.len == 5 && memcmp(e.data, "ERR x", 5) == 0, "error text");
}


/* the stored value: encode, decode, refuse what is not one */

static void
test_profile_value(void)
{
    static const struct {
        const char  *prefs;
        int64_t      t;
        const char  *src;
        const char  *exp;
    } enc[] = {
        { "{\"ads\":false}", 1796532372123LL, "m-1",
          "{\"p\":{\"ads\":false},\"t\":1796532372123,\"e\":\"m-1\"}" },
        { "{}", 0, "", "{\"p\":{},\"t\":0,\"e\":\"\"}" },
        { "{ \"a\" : true }", -1000, "q\"\\\n\x01\xc3\xa9",
          "{\"p\":{ \"a\" : true },\"t\":-1000,"
          "\"e\":\"q\\\"\\\\\\u000a\\u0001\xc3\xa9\"}" },
        { "{}", INT64_MIN, "x",
          "{\"p\":{},\"t\":-9223372036854775808,\"e\":\"x\"}" },
        { "{}", INT64_MAX, "x",
          "{\"p\":{},\"t\":9223372036854775807,\"e\":\"x\"}" },
    };

    static const char  *bad[] = {
        "", "[]", "{}", "null", "{\"p\":{},\"t\":1}",
        "{\"p\":{},\"e\":\"x\"}", "{\"t\":1,\"e\":\"x\"}",
        "{\"p\":[],\"t\":1,\"e\":\"x\"}", "{\"p\":{},\"t\":\"1\",\"e\":\"x\"}",
        "{\"p\":{},\"t\":1.5,\"e\":\"x\"}", "{\"p\":{},\"t\":1e3,\"e\":\"x\"}",
        "{\"p\":{},\"t\":1,\"e\":1}", "{\"p\":{},\"t\":9223372036854775808,"
        "\"e\":\"x\"}", "{\"p\":{},\"t\":1,\"e\":\"x\"", "{\"p\":{,\"t\":1}",
        "{\"p\":{},\"t\":-,\"e\":\"x\"}",
    };

    char               out[256];
    size_t             i, n, elen;
    consent_profile_t  pr;
    const char        *b;

    for (i = 0; i < sizeof(enc) / sizeof(enc[0]); i++) {
        elen = strlen(enc[i].exp);
        n = consent_profile_encode(out, sizeof(out), enc[i].prefs,
                                   strlen(enc[i].prefs), enc[i].t, enc[i].src,
                                   strlen(enc[i].src));
        CHECK(n == elen && memcmp(out, enc[i].exp, n) == 0,
              "case %zu: got %.*s", i, (int) n, out);

        /* too small: the worst-case room, nothing written */
        out[0] = 'x';
        CHECK(consent_profile_encode(out, 1, enc[i].prefs,
                                     strlen(enc[i].prefs), enc[i].t,
                                     enc[i].src, strlen(enc[i].src)) >= elen
              && out[0] == 'x', "case %zu: short", i);

        b = (const char *) dup_in(enc[i].exp, elen);
        CHECK(consent_profile_decode(b, elen, arena_alloc, &A, &pr) == 0
              && pr.t == enc[i].t
              && pr.prefs.len == strlen(enc[i].prefs)
              && memcmp(pr.prefs.data, enc[i].prefs, pr.prefs.len) == 0,
              "case %zu: decode", i);
    }

    CHECK_INT(consent_profile_encode(out, sizeof(out), "{}", 2, 1,
                                     "\xff", 1), 0);

    /* unknown members are skipped; the source stays escaped */
    b = (const char *) dup_in("{\"v\":2,\"e\":\"a\\\"b\",\"t\":7,\"p\":{}}",
                              31);
    CHECK(consent_profile_decode(b, 31, arena_alloc, &A, &pr) == 0
          && pr.t == 7 && pr.source.len == 4
          && memcmp(pr.source.data, "a\\\"b", 4) == 0, "members");

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        n = strlen(bad[i]);
        b = (const char *) dup_in(bad[i], n);
        CHECK(consent_profile_decode(b, n, arena_alloc, &A, &pr) == -1,
              "accepted %s", bad[i]);
    }

    CHECK(strstr(CONSENT_PROFILE_SCRIPT, "PEXPIRE") != NULL, "script");
}


static void
test_profile_key(void)
{
    static const struct {
        const char  *prefix;
        char         kind;
        const char  *id;
        const char  *exp;
    } cases[] = {
        { "consent:", 'u', "user-1", "consent:{u:user-1}" },
        { "consent:", 'a', "0b6e-41", "consent:{a:0b6e-41}" },
        { "", 'u', "", "{u:}" },
        { "p:", 'a', "a}b{c", "p:{a:a}b{c}" },
    };

    char    out[64];
    size_t  i, n, elen;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        elen = strlen(cases[i].exp);
        n = consent_profile_key(out, sizeof(out), cases[i].prefix,
                                strlen(cases[i].prefix), cases[i].kind,
                                cases[i].id, strlen(cases[i].id));
        CHECK(n == elen && memcmp(out, cases[i].exp, n) == 0,
              "case %zu: got %.*s", i, (int) n, out);

        out[0] = 'x';
        n = consent_profile_key(out, elen - 1, cases[i].prefix,
                                strlen(cases[i].prefix), cases[i].kind,
                                cases[i].id, strlen(cases[i].id));
        CHECK(n == elen && out[0] == 'x', "case %zu: short", i);
    }
}


/* ------------------------------------------------------------------ */

#define RUN_BOTH(fn)                                                          \
    do {                                                                      \
        set_indexed(0);                                                       \
        RUN(fn);                                                              \
        set_indexed(1);                                                       \
        cur_test = #fn "[indexed]";                                           \
        fn();                                                                 \
        g_in = NULL;                                                          \
        arena_reset(&A);                                                      \
        set_indexed(0);                                                       \
    } while (0)


int
main(void)
{
    init_policy();
    init_prop_policy();

    P_prep = P;
    PP_prep = PP;
    if (consent_policy_prepare(&P_prep, arena_alloc, &PA) != 0
        || consent_policy_prepare(&PP_prep, arena_alloc, &PA) != 0)
    {
        fprintf(stderr, "consent_policy_prepare failed\n");
        return 2;
    }

    RUN(test_json_accept_values);
    RUN(test_json_reject);
    RUN(test_json_err_offset);
    RUN(test_json_depth);
    RUN(test_json_tape);
    RUN(test_json_truncation);
    RUN(test_json_oom);
    RUN(test_str_eq);
    RUN(test_endpoint);
    RUN(test_names);
    RUN(test_prefs_json);
    RUN(test_time_parse);
    RUN(test_days_from_civil);
    RUN(test_resp_command);
    RUN(test_resp_parse);
    RUN(test_resp_elements);
    RUN(test_profile_value);
    RUN(test_profile_key);
    RUN_BOTH(test_route_rules);
    RUN_BOTH(test_route_default_deny);
    RUN_BOTH(test_route_profile);
    RUN_BOTH(test_split_whole);
    RUN_BOTH(test_route_policy_variants);
    RUN(test_validation_request);
    RUN(test_validation_size);
    RUN_BOTH(test_validation_events);
    RUN_BOTH(test_batch_structure);
    RUN(test_batch_single_event);
    RUN_BOTH(test_split);
    RUN_BOTH(test_batch_merge);
    RUN(test_process_oom);
    RUN_BOTH(test_property_batches);

    arena_reset(&PA);
    free(PA.blk);
    free(A.blk);

    printf("%lu passed, %lu failed\n", n_pass, n_fail);

    return n_fail ? 1 : 0;
}
