
/*
 * libFuzzer target over consent_profile.c.  Byte 0 picks the part, the
 * rest is its input:
 *
 *   0  consent_time_parse(): an accepted time written back canonically
 *      (YYYY-MM-DDTHH:MM:SS.mmmZ, from the ms) parses to the same ms
 *   1  consent_resp_parse(): a reply's length is within the input, a
 *      prefix of it needs more, its elements walk to exactly elts_len
 *   2  consent_resp_command(): the input cut at '\n' into arguments,
 *      written as a command, parses back to the same bulk strings;
 *      consent_profile_key() of the first two: prefix{a:id}
 *   3  consent_profile_encode() of the input as the source, then
 *      decode: the same time, preferences and (unescaped) source
 *   4  consent_profile_decode() of the input: slices inside it
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "consent_core.h"

#define TEST_MAX_BLOCKS  64

#include "../json/test_alloc.h"
#include "fuzz_check.h"


/* Hinnant's civil_from_days, the inverse the core does not need */

static void
civil(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    int64_t   era;
    unsigned  doe, yoe, doy, mp;

    z += 719468;
    era = (z >= 0 ? z : z - 146096) / 146097;
    doe = (unsigned) (z - era * 146097);
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t) yoe + era * 400 + (*m <= 2);
}


static void
fuzz_time(const char *s, size_t len)
{
    int64_t   ms, ms2, days, rem, y;
    unsigned  m, d;
    char      buf[32];
    int       n;

    if (consent_time_parse(s, len, &ms) != 0) {
        return;
    }

    /* 0000-01-01 less 23:59 .. 9999-12-31 plus 23:59 */
    CHECK(ms >= -62167219200000LL - 86400000LL
          && ms < 253402300800000LL + 86400000LL);

    days = (ms >= 0 ? ms : ms - 86399999) / 86400000;
    rem = ms - days * 86400000;
    civil(days, &y, &m, &d);

    if (y < 0 || y > 9999) {
        return;                     /* an offset took it out of range */
    }

    n = snprintf(buf, sizeof(buf), "%04d-%02u-%02uT%02d:%02d:%02d.%03dZ",
                 (int) y, m, d, (int) (rem / 3600000),
                 (int) (rem / 60000 % 60), (int) (rem / 1000 % 60),
                 (int) (rem % 1000));
    CHECK(n == 24);
    CHECK(consent_time_parse(buf, 24, &ms2) == 0 && ms2 == ms);
}


/* walks n replies from p; the bytes they take */

static size_t
walk(const char *p, size_t len, size_t n, unsigned depth)
{
    consent_resp_t  r;
    ptrdiff_t       rc;
    size_t          used = 0;

    while (n--) {
        rc = consent_resp_parse(p + used, len - used, &r);
        CHECK(rc > 0 && (size_t) rc <= len - used);

        /* depth: this reply's level; arrays nest at most MAX levels */
        CHECK(r.type != CONSENT_RESP_ARRAY
              || depth <= CONSENT_RESP_MAX_DEPTH);

        if (r.type == CONSENT_RESP_ARRAY && r.nelts) {
            CHECK(walk(r.elts, r.elts_len, r.nelts, depth + 1)
                  == r.elts_len);
        }

        used += (size_t) rc;
    }

    return used;
}


static void
fuzz_resp(const char *p, size_t len)
{
    consent_resp_t  r;
    ptrdiff_t       rc;

    rc = consent_resp_parse(p, len, &r);
    CHECK(rc >= -1 && rc <= (ptrdiff_t) len);

    if (rc <= 0) {
        return;
    }

    CHECK(consent_resp_parse(p, (size_t) rc - 1, &r) == 0);
    CHECK(walk(p, (size_t) rc, 1, 1) == (size_t) rc);
}


static void
fuzz_command(const char *p, size_t len)
{
    const char      *argv[64];
    size_t           lens[64], argc, i, need, n;
    const char      *q, *end = p + len, *nl;
    char            *buf;
    consent_resp_t   r, e;
    ptrdiff_t        rc;

    for (argc = 0, q = p; q <= end && argc < 64; argc++) {
        nl = memchr(q, '\n', (size_t) (end - q));
        argv[argc] = q;
        lens[argc] = (nl ? nl : end) - q;
        q += lens[argc] + 1;
    }

    need = consent_resp_command(NULL, 0, argc, argv, lens);
    buf = malloc(need);
    CHECK(consent_resp_command(buf, need, argc, argv, lens) == need);

    rc = consent_resp_parse(buf, need, &r);
    CHECK(rc == (ptrdiff_t) need && r.type == CONSENT_RESP_ARRAY
          && r.nelts == argc);

    q = r.elts;
    n = r.elts_len;

    for (i = 0; i < argc; i++) {
        rc = consent_resp_parse(q, n, &e);
        CHECK(rc > 0 && e.type == CONSENT_RESP_BULK && e.len == lens[i]
              && memcmp(e.data, argv[i], lens[i]) == 0);
        q += rc;
        n -= (size_t) rc;
    }

    CHECK(n == 0);
    free(buf);

    /* the first two arguments as a key's prefix and id */
    if (argc < 2) {
        return;
    }

    need = lens[0] + lens[1] + 4;
    buf = malloc(need);
    CHECK(consent_profile_key(buf, need - 1, argv[0], lens[0], 'a',
                              argv[1], lens[1]) == need);
    CHECK(consent_profile_key(buf, need, argv[0], lens[0], 'a', argv[1],
                              lens[1]) == need);
    CHECK(memcmp(buf, argv[0], lens[0]) == 0
          && memcmp(buf + lens[0], "{a:", 3) == 0
          && memcmp(buf + lens[0] + 3, argv[1], lens[1]) == 0
          && buf[need - 1] == '}');
    free(buf);
}


static void
fuzz_encode(const char *p, size_t len)
{
    static const char   prefs[] = "{\"C0001\":true,\"C0002\":false}";
    int64_t             t = 0;
    size_t              need, n, i;
    char               *buf;
    unsigned char      *src;
    consent_profile_t   pr;
    consent_json_t      js;
    uint32_t            ie;

    for (i = 0; i < 8 && i < len; i++) {
        t = (int64_t) ((uint64_t) t << 8 | (unsigned char) p[i]);
    }

    need = consent_profile_encode(NULL, 0, prefs, sizeof(prefs) - 1, t, p,
                                  len);
    buf = malloc(need ? need : 1);
    n = consent_profile_encode(buf, need, prefs, sizeof(prefs) - 1, t, p,
                               len);
    CHECK(n <= need);

    if (n == 0) {                   /* not UTF-8 */
        free(buf);
        return;
    }

    CHECK(consent_profile_decode(buf, n, test_alloc, NULL, &pr) == 0);
    CHECK(pr.t == t && pr.prefs.len == sizeof(prefs) - 1
          && memcmp(pr.prefs.data, prefs, pr.prefs.len) == 0);

    CHECK(consent_json_scan(&js, (unsigned char *) buf, n, test_alloc, NULL)
          == 0);
    ie = consent_json_member((unsigned char *) buf, js.tok, 0, "e", 1);
    CHECK(ie != 0);
    src = malloc(js.tok[ie].end - js.tok[ie].start + 1);
    CHECK(consent_json_str_decode((unsigned char *) buf, &js.tok[ie], src)
          == len && memcmp(src, p, len) == 0);

    free(src);
    free(buf);
}


/* categories a stored profile's "p" may name */
static consent_str_t     mask_cats[] = { { "a", 1 }, { "b", 1 },
                                         { "C0002", 5 } };
static consent_policy_t  mask_policy = { mask_cats, 3, NULL, 0, 0, 0, 0,
                                         NULL, 0, NULL, 0 };


static void
fuzz_decode(const char *p, size_t len)
{
    int                rc;
    uint64_t           mask[CONSENT_MASK_WORDS];
    consent_str_t      prefs;
    consent_profile_t  pr;

    /* the glue reads stored values with consent_profile_mask alone */
    rc = consent_profile_mask(&mask_policy, p, len, test_alloc, NULL, mask,
                              &prefs);

    if (rc == 0) {
        CHECK(prefs.data >= p && prefs.data + prefs.len <= p + len);
        CHECK(prefs.data[0] == '{' && prefs.data[prefs.len - 1] == '}');
        CHECK((mask[0] & ~(uint64_t) 7) == 0);
    }

    if (consent_profile_decode(p, len, test_alloc, NULL, &pr) != 0) {
        return;
    }

    /* what decode accepts, the mask reads, the same object */
    CHECK(rc == 0 && prefs.data == pr.prefs.data
          && prefs.len == pr.prefs.len);

    CHECK(pr.prefs.data >= p && pr.prefs.data + pr.prefs.len <= p + len);
    CHECK(pr.source.data >= p && pr.source.data + pr.source.len <= p + len);
    CHECK(pr.prefs.data[0] == '{' && pr.prefs.data[pr.prefs.len - 1] == '}');
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char  *p;

    if (size == 0) {
        return 0;
    }

    /* an exact-size copy: ASan sees a read past the end */
    p = malloc(size - 1 ? size - 1 : 1);
    memcpy(p, data + 1, size - 1);

    switch (data[0] % 5) {
    case 0: fuzz_time(p, size - 1); break;
    case 1: fuzz_resp(p, size - 1); break;
    case 2: fuzz_command(p, size - 1); break;
    case 3: fuzz_encode(p, size - 1); break;
    default: fuzz_decode(p, size - 1);
    }

    free(p);
    test_free_all();

    return 0;
}
