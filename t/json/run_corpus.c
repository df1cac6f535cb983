
/*
 * JSON conformance runner for consent_json_scan.
 *
 *   run_corpus [dir]        (dir defaults to t/json)
 *
 * 1. Every file of dir/corpus, JSONTestSuite style: y_ must be accepted,
 *    n_ rejected, i_ as dir/i_decisions.txt decides (an i_ file without
 *    a decision, or a decision without its file, is a failure).
 * 2. Truncation: for every accepted document whose top-level value is
 *    not a number (a prefix of a number can be a number), each prefix
 *    that cuts the value is rejected with err_offset within the prefix,
 *    and each prefix that only cuts trailing whitespace is accepted.
 * 3. Differential: the scanner (SSE2 build), the same scanner built
 *    without SIMD (portable_json.c) and the simple reference scanner
 *    (ref_json.c) give the same result, err, err_offset and tape (ntok
 *    and every token, on failure too) for every corpus file, every
 *    prefix, seeded random mutations of the accepted files, a sweep of
 *    strings that puts each kind of special byte at each position
 *    around the 16-byte blocks and the end of the input, and backslash
 *    runs and quotes across the 64-byte blocks and 1 KB batches of the
 *    SSE2 quote masks.
 *
 * 4. Out of memory at each allocation: the error, and a tape that holds
 *    the tokens it counts.
 *
 * Each input is scanned from an exact-size heap copy and every tape
 * block is freed after the scan, so ASan sees reads past the input and
 * writes past the tape.  Prints "N passed, N failed"; exits 1 on a
 * failure.
 */

#define _POSIX_C_SOURCE 200809L

#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "consent_core.h"
#include "ref_json.h"
#include "test_alloc.h"


int portable_json_scan(consent_json_t *js, const unsigned char *p,
    size_t len, consent_alloc_pt alloc, void *ctx);


#define MAX_FILES       2048
#define MAX_TRUNCATE    (16 * 1024)
#define MAX_MUTATE      (4 * 1024)
#define MUTATIONS       200
#define MAX_REPORTS     30


static unsigned long  n_pass, n_fail;


#if defined(__GNUC__)
static void fail(const char *name, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
#endif


static void
fail(const char *name, const char *fmt, ...)
{
    va_list  ap;

    n_fail++;

    if (n_fail > MAX_REPORTS) {
        if (n_fail == MAX_REPORTS + 1) {
            fprintf(stderr, "... (further failures not shown)\n");
        }
        return;
    }

    fprintf(stderr, "FAIL %s: ", name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}


/* ------------------------------------------------------------------ */
/* one scan by each implementation                                      */

typedef struct {
    int                  rc;
    const char          *err;
    size_t               err_offset;
    uint32_t             ntok;
    consent_json_tok_t  *tok;           /* a private copy */
} outcome_t;


typedef int (*scan_pt)(consent_json_t *js, const unsigned char *p,
    size_t len, consent_alloc_pt alloc, void *ctx);


static const unsigned char  empty_input[1];


/* scans data[0..len) from an exact-size copy */
static void
run_scan(scan_pt scan, const unsigned char *data, size_t len, outcome_t *o)
{
    unsigned char   *copy;
    consent_json_t   js;

    copy = len ? malloc(len) : NULL;
    if (len) {
        memcpy(copy, data, len);
    }

    o->rc = scan(&js, copy ? copy : empty_input, len, test_alloc, NULL);
    o->err = js.err;
    o->err_offset = js.err_offset;
    o->ntok = js.ntok;
    o->tok = NULL;

    if (js.ntok) {
        o->tok = malloc(js.ntok * sizeof(consent_json_tok_t));
        memcpy(o->tok, js.tok, js.ntok * sizeof(consent_json_tok_t));
    }

    test_free_all();
    free(copy);
}


static void
outcome_free(outcome_t *o)
{
    free(o->tok);
    o->tok = NULL;
}


/* the first difference between two outcomes, or NULL */
static const char *
outcome_diff(const outcome_t *a, const outcome_t *b, char *buf, size_t size)
{
    uint32_t  i;

    if ((a->rc == 0) != (b->rc == 0)) {
        snprintf(buf, size, "rc %d vs %d", a->rc, b->rc);
        return buf;
    }

    if ((a->err == NULL) != (b->err == NULL)
        || (a->err && strcmp(a->err, b->err) != 0))
    {
        snprintf(buf, size, "err \"%s\" vs \"%s\"", a->err ? a->err : "-",
                 b->err ? b->err : "-");
        return buf;
    }

    if (a->rc != 0 && a->err_offset != b->err_offset) {
        snprintf(buf, size, "err_offset %zu vs %zu", a->err_offset,
                 b->err_offset);
        return buf;
    }

    if (a->ntok != b->ntok) {
        snprintf(buf, size, "ntok %u vs %u", (unsigned) a->ntok,
                 (unsigned) b->ntok);
        return buf;
    }

    for (i = 0; i < a->ntok; i++) {
        const consent_json_tok_t  *x = &a->tok[i], *y = &b->tok[i];

        if (x->start != y->start || x->end != y->end || x->next != y->next
            || x->type != y->type || x->escaped != y->escaped)
        {
            snprintf(buf, size, "token %u: type %u [%u,%u) next %u esc %u vs "
                     "type %u [%u,%u) next %u esc %u", (unsigned) i,
                     x->type, x->start, x->end, x->next, x->escaped,
                     y->type, y->start, y->end, y->next, y->escaped);
            return buf;
        }
    }

    return NULL;
}


/*
 * Scans with the three implementations, checks they agree (one check)
 * and leaves the SSE2 scanner's outcome in *o.
 */
static void
scan3(const char *name, const unsigned char *data, size_t len, outcome_t *o)
{
    outcome_t    port, ref;
    const char  *d;
    char         buf[256];

    run_scan(consent_json_scan, data, len, o);
    run_scan(portable_json_scan, data, len, &port);
    run_scan(ref_json_scan, data, len, &ref);

    d = outcome_diff(o, &ref, buf, sizeof(buf));

    if (d == NULL) {
        d = outcome_diff(&port, &ref, buf, sizeof(buf));
        if (d != NULL) {
            fail(name, "portable scanner differs from reference (%zu bytes):"
                 " %s", len, d);
        } else {
            n_pass++;
        }

    } else {
        fail(name, "scanner differs from reference (%zu bytes): %s", len, d);
    }

    outcome_free(&port);
    outcome_free(&ref);
}


/* ------------------------------------------------------------------ */
/* files                                                                */

static unsigned char *
read_file(const char *path, size_t *lenp)
{
    FILE           *f;
    unsigned char  *buf = NULL;
    size_t          len = 0, cap = 0, n;

    f = fopen(path, "rb");
    if (f == NULL) {
        return NULL;
    }

    for ( ;; ) {
        if (len == cap) {
            cap = cap ? cap * 2 : 4096;
            buf = realloc(buf, cap);
        }

        n = fread(buf + len, 1, cap - len, f);
        if (n == 0) {
            break;
        }

        len += n;
    }

    fclose(f);
    *lenp = len;
    return buf;
}


typedef struct {
    char  name[256];
    int   accept;
    int   used;
} decision_t;

static decision_t  decisions[MAX_FILES];
static size_t      ndecisions;


static int
load_decisions(const char *path)
{
    FILE  *f;
    char   line[1024], name[256], verdict[32];

    f = fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, "cannot open %s\n", path);
        return -1;
    }

    while (fgets(line, sizeof(line), f) != NULL) {
        if (line[0] == '#' || sscanf(line, "%255s %31s", name, verdict) != 2)
        {
            continue;
        }

        if (ndecisions == MAX_FILES
            || (strcmp(verdict, "accept") != 0
                && strcmp(verdict, "reject") != 0))
        {
            fprintf(stderr, "%s: bad line: %s", path, line);
            fclose(f);
            return -1;
        }

        strcpy(decisions[ndecisions].name, name);
        decisions[ndecisions].accept = (verdict[0] == 'a');
        decisions[ndecisions].used = 0;
        ndecisions++;
    }

    fclose(f);
    return 0;
}


static decision_t *
find_decision(const char *name)
{
    size_t  i;

    for (i = 0; i < ndecisions; i++) {
        if (strcmp(decisions[i].name, name) == 0) {
            return &decisions[i];
        }
    }

    return NULL;
}


static int
cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *) a, *(char *const *) b);
}


/* ------------------------------------------------------------------ */
/* checks                                                               */

/* every prefix of an accepted document */
static void
check_truncations(const char *name, const unsigned char *data, size_t len,
    uint32_t value_end)
{
    outcome_t  o;
    size_t     k;
    char       what[300];

    for (k = 0; k < len; k++) {
        snprintf(what, sizeof(what), "%s, prefix of %zu bytes", name, k);

        scan3(what, data, k, &o);

        if (k < value_end) {
            if (o.rc == 0) {
                fail(what, "accepted a truncated document");

            } else if (o.err_offset > k) {
                fail(what, "err_offset %zu past the end", o.err_offset);

            } else {
                n_pass++;
            }

        } else {
            /* the value is whole, only trailing whitespace is cut */
            if (o.rc != 0) {
                fail(what, "rejected: %s at %zu", o.err, o.err_offset);
            } else {
                n_pass++;
            }
        }

        outcome_free(&o);
    }
}


static unsigned long long  rng_state = 0x9e3779b97f4a7c15ULL;


static unsigned
rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (unsigned) (rng_state >> 16);
}


static const unsigned char  interesting[] = {
    '"', '\\', 0, 1, 0x1f, ' ', '\t', '\n', '\r', '{', '}', '[', ']', ',',
    ':', '0', '1', '-', '+', '.', 'e', 'E', 't', 'f', 'n', 'u', 'a', 'x',
    0x7f, 0x80, 0xbf, 0xc0, 0xc2, 0xdf, 0xe0, 0xed, 0xef, 0xf0, 0xf4, 0xf5,
    0xff
};


/* seeded random edits of an accepted document, compared, not judged */
static void
check_mutations(const char *name, const unsigned char *data, size_t len)
{
    unsigned char  *buf;
    outcome_t       o;
    size_t          m, n, pos, k, cnt;
    char            what[300];
    unsigned char   c;

    buf = malloc(2 * len + 64);

    for (m = 0; m < MUTATIONS; m++) {
        memcpy(buf, data, len);
        n = len;

        for (cnt = 1 + rnd() % 3; cnt; cnt--) {
            pos = n ? rnd() % (n + 1) : 0;
            c = (rnd() % 4) ? interesting[rnd() % sizeof(interesting)]
                            : (unsigned char) rnd();

            switch (rnd() % 5) {
            case 0:                                 /* replace */
                if (pos < n) {
                    buf[pos] = c;
                }
                break;

            case 1:                                 /* insert */
                if (n < 2 * len + 32) {
                    memmove(buf + pos + 1, buf + pos, n - pos);
                    buf[pos] = c;
                    n++;
                }
                break;

            case 2:                                 /* delete */
                if (pos < n) {
                    memmove(buf + pos, buf + pos + 1, n - pos - 1);
                    n--;
                }
                break;

            case 3:                                 /* truncate */
                n = pos < n ? pos : n;
                break;

            default:                                /* duplicate a run */
                k = 1 + rnd() % 16;
                if (pos + k <= n && n + k <= 2 * len + 32) {
                    memmove(buf + pos + k, buf + pos, n - pos);
                    n += k;
                }
                break;
            }
        }

        snprintf(what, sizeof(what), "%s, mutation %zu", name, m);
        scan3(what, buf, n, &o);
        outcome_free(&o);
    }

    free(buf);
}


/*
 * ["<pad><body>"] followed by trail spaces, for every body length up to
 * 40 with one special sequence at every position: covers the SIMD block
 * boundaries and the scalar tail near the end of the input.
 */
static void
check_string_sweep(void)
{
    static const struct {
        const char  *bytes;
        size_t       len;
    } specials[] = {
        { "\"", 1 },                    /* a closing quote early */
        { "\\n", 2 },
        { "\\\"", 2 },
        { "\\u00e9", 6 },
        { "\\ud83d\\ude00", 12 },
        { "\\", 1 },                    /* escape the closing quote */
        { "\\u12", 4 },                 /* broken \u */
        { "\\x", 2 },
        { "\x01", 1 },
        { "\x1f", 1 },
        { "\n", 1 },
        { "\0", 1 },
        { "\x7f", 1 },
        { "\xc3\xa9", 2 },
        { "\xe2\x82\xac", 3 },
        { "\xf0\x9f\x98\x80", 4 },
        { "\xc3", 1 },                  /* truncated sequence */
        { "\xe2\x82", 2 },
        { "\x80", 1 },
        { "\xed\xa0\x80", 3 },
        { "\xff", 1 },
    };

    unsigned char  buf[128];
    size_t         s, body, at, trail, n, i;
    outcome_t      o;
    char           what[128];

    for (s = 0; s < sizeof(specials) / sizeof(specials[0]); s++) {
        for (body = 0; body <= 40; body++) {
            for (at = 0; at <= body; at++) {
                for (trail = 0; trail <= 17; trail += 17) {
                    n = 0;
                    buf[n++] = '[';
                    buf[n++] = '"';

                    for (i = 0; i < body; i++) {
                        if (i == at) {
                            memcpy(buf + n, specials[s].bytes,
                                   specials[s].len);
                            n += specials[s].len;
                        }

                        buf[n++] = (unsigned char) ('a' + i % 26);
                    }

                    buf[n++] = '"';
                    buf[n++] = ']';
                    memset(buf + n, ' ', trail);
                    n += trail;

                    snprintf(what, sizeof(what),
                             "sweep special %zu body %zu at %zu trail %zu",
                             s, body, at, trail);

                    scan3(what, buf, n, &o);
                    outcome_free(&o);

                    /* and cut right after the special bytes */
                    scan3(what, buf, 2 + at + specials[s].len, &o);
                    outcome_free(&o);
                }
            }
        }
    }
}


/*
 * Backslash runs, quotes and special bytes across the 64-byte blocks of
 * the SSE2 quote masks and the 1 KB batches they are classified in:
 * "<filler><run of k backslashes><x>..." with the run ending on each
 * side of offsets 64 and 1024, as one string and as several.
 */
static void
check_block_edges(void)
{
    static const char  *tails[] = {
        "\"", "\"]", "n\"]", "u00e9\"]", "\x01\"]", "\xc3\xa9\"]", "x\",\"y\"]",
        "\",\"\\\\\"]", "\"]\"", ""
    };
    static const size_t  edges[] = { 64, 128, 1024, 1088 };

    unsigned char  *buf;
    size_t          e, at, k, t, n, i, strings;
    outcome_t       o;
    char            what[160];

    buf = malloc(4096);

    for (e = 0; e < sizeof(edges) / sizeof(edges[0]); e++) {
        for (at = edges[e] - 6; at <= edges[e] + 2; at++) {
            for (k = 0; k <= 5; k++) {
                for (t = 0; t < sizeof(tails) / sizeof(tails[0]); t++) {
                    for (strings = 0; strings < 2; strings++) {
                        n = 0;
                        buf[n++] = '[';
                        buf[n++] = '"';

                        /* filler up to the run, or many short strings */
                        while (n + k < at) {
                            if (strings && n % 7 == 0 && n + k + 3 < at) {
                                buf[n++] = '"';
                                buf[n++] = ',';
                                buf[n++] = '"';
                                continue;
                            }

                            buf[n] = (unsigned char) ('a' + n % 26);
                            n++;
                        }

                        for (i = 0; i < k; i++) {
                            buf[n++] = '\\';
                        }

                        memcpy(buf + n, tails[t], strlen(tails[t]));
                        n += strlen(tails[t]);

                        snprintf(what, sizeof(what),
                                 "block edge %zu at %zu, %zu backslashes, "
                                 "tail %zu%s", edges[e], at, k, t,
                                 strings ? ", strings" : "");

                        scan3(what, buf, n, &o);
                        outcome_free(&o);
                    }
                }
            }
        }
    }

    free(buf);
}


/*
 * Out of memory after each number of successful allocations: the scan
 * fails with CONSENT_JSON_ENOMEM, or succeeds with the full tape; on
 * failure the tape holds the tokens counted (the same starts and types
 * as the full tape's), never a NULL tape with a count.
 */
static void
check_oom(const char *name, const unsigned char *data, size_t len,
    const outcome_t *full)
{
    outcome_t  o;
    size_t     b;
    uint32_t   i;
    char       what[300];
    char       buf[256];

    for (b = 0; b < 8; b++) {
        snprintf(what, sizeof(what), "%s, out of memory after %zu", name, b);

        test_budget = b;
        run_scan(consent_json_scan, data, len, &o);
        test_budget = (size_t) -1;

        if (o.rc == 0) {
            if (outcome_diff(&o, full, buf, sizeof(buf)) != NULL) {
                fail(what, "tape differs: %s", buf);
            } else {
                n_pass++;
            }

            outcome_free(&o);
            break;
        }

        if (o.err == NULL || strcmp(o.err, CONSENT_JSON_ENOMEM) != 0
            || o.ntok > full->ntok || (o.ntok && o.tok == NULL))
        {
            fail(what, "err \"%s\" ntok %u", o.err ? o.err : "-",
                 (unsigned) o.ntok);
            outcome_free(&o);
            continue;
        }

        for (i = 0; i < o.ntok; i++) {
            if (o.tok[i].start != full->tok[i].start
                || o.tok[i].type != full->tok[i].type)
            {
                break;
            }
        }

        if (i != o.ntok) {
            fail(what, "token %u differs from the full tape", (unsigned) i);
        } else {
            n_pass++;
        }

        outcome_free(&o);
    }
}


static int
is_number_start(unsigned char c)
{
    return c == '-' || (c >= '0' && c <= '9');
}


int
main(int argc, char **argv)
{
    const char      *dir = argc > 1 ? argv[1] : "t/json";
    char             path[4096], *names[MAX_FILES];
    DIR             *d;
    struct dirent   *de;
    size_t           nfiles, i, len, counts[3];
    unsigned char   *data;
    outcome_t        o;
    decision_t      *dec;
    int              expect;

    snprintf(path, sizeof(path), "%s/i_decisions.txt", dir);
    if (load_decisions(path) != 0) {
        return 2;
    }

    snprintf(path, sizeof(path), "%s/corpus", dir);
    d = opendir(path);
    if (d == NULL) {
        fprintf(stderr, "cannot open %s\n", path);
        return 2;
    }

    nfiles = 0;
    while ((de = readdir(d)) != NULL && nfiles < MAX_FILES) {
        len = strlen(de->d_name);

        if (len > 5 && strcmp(de->d_name + len - 5, ".json") == 0
            && (de->d_name[0] == 'y' || de->d_name[0] == 'n'
                || de->d_name[0] == 'i') && de->d_name[1] == '_')
        {
            names[nfiles++] = strdup(de->d_name);
        }
    }

    closedir(d);
    qsort(names, nfiles, sizeof(char *), cmp_names);

    memset(counts, 0, sizeof(counts));

    for (i = 0; i < nfiles; i++) {
        snprintf(path, sizeof(path), "%s/corpus/%s", dir, names[i]);

        data = read_file(path, &len);
        if (data == NULL) {
            fail(names[i], "cannot read %s", path);
            continue;
        }

        switch (names[i][0]) {
        case 'y':
            expect = 1;
            counts[0]++;
            break;

        case 'n':
            expect = 0;
            counts[1]++;
            break;

        default:
            counts[2]++;
            dec = find_decision(names[i]);

            if (dec == NULL) {
                fail(names[i], "no decision in i_decisions.txt");
                expect = -1;
                break;
            }

            dec->used = 1;
            expect = dec->accept;
            break;
        }

        scan3(names[i], data, len, &o);

        if (expect >= 0) {
            if ((o.rc == 0) != expect) {
                fail(names[i], "expected %s, got %s%s",
                     expect ? "accept" : "reject",
                     o.rc == 0 ? "accept" : "reject: ", o.err ? o.err : "");
            } else {
                n_pass++;
            }
        }

        if (o.rc == 0) {
            if (len <= MAX_TRUNCATE && !is_number_start(data[o.tok[0].start])) {
                check_truncations(names[i], data, len, o.tok[0].end);
            }

            if (len <= MAX_MUTATE) {
                check_mutations(names[i], data, len);
                check_oom(names[i], data, len, &o);
            }
        }

        outcome_free(&o);
        free(data);
    }

    for (i = 0; i < ndecisions; i++) {
        if (!decisions[i].used) {
            fail(decisions[i].name, "decided in i_decisions.txt but no file");
        }
    }

    check_string_sweep();
    check_block_edges();

    printf("corpus: %zu y_, %zu n_, %zu i_ files\n", counts[0], counts[1],
           counts[2]);
    printf("%lu passed, %lu failed\n", n_pass, n_fail);

    for (i = 0; i < nfiles; i++) {
        free(names[i]);
    }

    return n_fail ? 1 : 0;
}
