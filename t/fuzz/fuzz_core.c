
/*
 * libFuzzer target over the whole core: request bytes and a policy in,
 * decisions and forwarded slices out.  Beyond not crashing it checks
 * that every destination's forwarded body is valid JSON holding exactly
 * its delivered events, in order, each byte-identical to its slice of
 * the input.
 *
 * With a hook (byte 1 bit 4), events get random verdicts and random
 * preferences, serialised by the core as the module does: the written
 * object must be valid, sorted JSON, and routing must follow it.
 *
 * Input: byte 0 picks the endpoint, byte 1 the limits, the rest is the
 * request body.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "consent_core.h"


#define TEST_MAX_BLOCKS  4096

#include "../json/test_alloc.h"
#include "fuzz_check.h"


static const consent_str_t  cats[] = {
    { "C0001", 5 }, { "C0002", 5 }, { "C0003", 5 }, { "C0004", 5 }
};


static void
check_destination(const consent_result_t *res, size_t d,
    const unsigned char *body, size_t len)
{
    size_t                nsl, i, total, e, k;
    unsigned char        *out, *p;
    consent_slice_t      *sl;
    consent_json_t        js;
    uint32_t              t, batch;
    const consent_event_t  *ev;

    (void) len;

    sl = malloc(consent_split_max(res) * sizeof(consent_slice_t));
    nsl = consent_split(res, d, body, sl);
    CHECK(nsl <= consent_split_max(res));

    total = 0;
    for (i = 0; i < nsl; i++) {
        total += sl[i].len;
    }

    out = malloc(total + 1);
    p = out;
    for (i = 0; i < nsl; i++) {
        memcpy(p, sl[i].data, sl[i].len);
        p += sl[i].len;
    }

    if (consent_json_scan(&js, out, total, test_alloc, NULL) != 0) {
        fprintf(stderr, "forwarded body: %.*s\n", (int) total, out);
    }

    CHECK(consent_json_scan(&js, out, total, test_alloc, NULL) == 0);
    CHECK(js.tok[0].type == CONSENT_JSON_OBJECT);

    /* the first member is "batch": [...] */
    CHECK(js.tok[0].next > 2);
    CHECK(consent_json_str_eq(out, &js.tok[1], "batch", 5));
    batch = 2;
    CHECK(js.tok[batch].type == CONSENT_JSON_ARRAY);

    t = batch + 1;
    for (e = 0; e < res->nevents; e++) {
        if (res->outcome[e * res->ndests + d] != CONSENT_DELIVER) {
            continue;
        }

        ev = &res->events[e];
        CHECK(ev->code == CONSENT_OK);
        CHECK(t < js.tok[batch].next);
        CHECK(js.tok[t].type == CONSENT_JSON_OBJECT);

        if (res->rewrite != NULL && res->rewrite[e].data != NULL) {
            /* the hook's object is now the event's categoryPreferences */
            uint32_t  c, k, p;

            c = consent_json_member(out, js.tok, t, "context", 7);
            CHECK(c != 0);
            k = consent_json_member(out, js.tok, c, "consent", 7);
            CHECK(k != 0);
            p = consent_json_member(out, js.tok, k, "categoryPreferences", 19);
            CHECK(p != 0);
            CHECK(js.tok[p].end - js.tok[p].start == res->rewrite[e].len);
            CHECK(memcmp(out + js.tok[p].start, res->rewrite[e].data,
                         res->rewrite[e].len) == 0);

        } else if (ev->insert_type) {
            /* the input's members follow the inserted "type" */
            k = ev->end - ev->start - 1;
            CHECK(js.tok[t].end - js.tok[t].start > k);
            CHECK(memcmp(out + js.tok[t].end - k, body + ev->start + 1, k)
                  == 0);

        } else {
            CHECK(js.tok[t].end - js.tok[t].start == ev->end - ev->start);
            CHECK(memcmp(out + js.tok[t].start, body + ev->start,
                         ev->end - ev->start) == 0);
        }

        t = js.tok[t].next;
    }

    CHECK(t == js.tok[batch].next);

    free(out);
    free(sl);
}


/*
 * A hook whose verdict is picked by the event's position and byte 1,
 * and whose preferences, when it sets some, are random: category ids,
 * keys that need escaping, keys that are not UTF-8 and bytes of the
 * event itself, written by consent_prefs_json() as the module does.
 */

#define HOOK_MAX_KEYS    8
#define HOOK_MAX_EVENTS  4096

typedef struct {
    const uint8_t            *sel;
    const consent_policy_t   *policy;
    uint8_t                   verdict[HOOK_MAX_EVENTS];
    uint64_t                  mask[HOOK_MAX_EVENTS];
} hook_ctx_t;


static const consent_str_t  hook_keys[] = {
    { "C0001", 5 }, { "C0002", 5 }, { "C0003", 5 }, { "C0004", 5 },
    { "", 0 }, { "C000", 4 }, { "q\"b\\s", 5 }, { "\n\x01\x1f", 3 },
    { "\xc3\xa9t\xc3\xa9", 6 }, { "\xf0\x9f\x8d\xaa", 4 },
    { "\xff\xfe", 2 }, { "\xc0\x80", 2 }, { "\xed\xa0\x80", 3 },
    { "\xe2\x82", 2 }
};

#define HOOK_NKEYS  (sizeof(hook_keys) / sizeof(hook_keys[0]))


static uint32_t
hook_rand(uint32_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 17;
    *x ^= *x << 5;
    return *x;
}


/* n distinct random keys, as a Lua table would hold them */

static size_t
hook_prefs(const consent_result_t *res, uint32_t i, consent_pref_t *prefs)
{
    size_t                  n, k, j, len;
    uint32_t                x, off;
    consent_str_t           key;
    const consent_event_t  *ev = &res->events[i];

    x = 2166136261u ^ i;
    for (off = ev->start; off < ev->end && off < ev->start + 32; off++) {
        x = (x ^ res->body[off]) * 16777619u;
    }
    x |= 1;

    n = hook_rand(&x) % (HOOK_MAX_KEYS + 1);

    for (k = 0; k < n; /* void */) {
        j = hook_rand(&x) % (HOOK_NKEYS + 1);

        if (j < HOOK_NKEYS) {
            key = hook_keys[j];

        } else {
            /* a few bytes of the event, UTF-8 or not */
            off = ev->start + hook_rand(&x) % (ev->end - ev->start);
            len = hook_rand(&x) % 6;
            key.data = (const char *) res->body + off;
            key.len = (off + len <= ev->end) ? len : ev->end - off;
        }

        for (j = 0; j < k; j++) {
            if (prefs[j].key.len == key.len
                && memcmp(prefs[j].key.data, key.data, key.len) == 0)
            {
                break;
            }
        }

        if (j < k) {
            n--;                            /* a table has no duplicates */
            continue;
        }

        prefs[k].key = key;
        prefs[k].value = hook_rand(&x) & 1;
        k++;
    }

    return n;
}


/* the written object is valid JSON, sorted, holding exactly prefs */

static void
check_prefs(const consent_str_t *out, const consent_pref_t *prefs, size_t n)
{
    size_t          k;
    uint32_t        t, m;
    consent_json_t  js;
    unsigned char   buf[HOOK_MAX_KEYS * 16];
    size_t          len, prev_len;
    unsigned char   prev[HOOK_MAX_KEYS * 16];
    const unsigned char  *o = (const unsigned char *) out->data;

    if (consent_json_scan(&js, o, out->len, test_alloc, NULL) != 0) {
        CHECK(js.err == CONSENT_JSON_ENOMEM);
        return;                             /* test_alloc ran out */
    }

    CHECK(js.tok[0].type == CONSENT_JSON_OBJECT);

    k = 0;
    prev_len = 0;

    for (t = 1; t < js.tok[0].next; t = js.tok[t + 1].next, k++) {
        len = consent_json_str_decode(o, &js.tok[t], buf);
        CHECK(k < n);
        CHECK(len == prefs[k].key.len);
        CHECK(memcmp(buf, prefs[k].key.data, len) == 0);

        m = t + 1;
        CHECK(js.tok[m].type == (prefs[k].value ? CONSENT_JSON_TRUE
                                                : CONSENT_JSON_FALSE));

        if (k > 0) {
            int  c = memcmp(prev, buf, prev_len < len ? prev_len : len);
            CHECK(c < 0 || (c == 0 && prev_len < len));
        }

        memcpy(prev, buf, len);
        prev_len = len;
    }

    CHECK(k == n);
}


static int
utf8_ok(const consent_str_t *s)
{
    const unsigned char  *p = (const unsigned char *) s->data;
    const unsigned char  *end = p + s->len;
    size_t                n;

    for ( /* void */ ; p < end; p += n) {
        n = consent_utf8_len(p, end);
        if (n == 0) {
            return 0;
        }
    }

    return 1;
}


static consent_hook_e
fuzz_hook(void *data, consent_result_t *res, uint32_t i, uint64_t *consented)
{
    hook_ctx_t      *ctx = data;
    size_t           n, k, valid;
    long             c;
    char            *out;
    consent_pref_t   prefs[HOOK_MAX_KEYS];
    consent_hook_e   verdict = (consent_hook_e) ((*ctx->sel + i) % 4);

    if (verdict == CONSENT_HOOK_SET) {
        n = hook_prefs(res, i, prefs);

        valid = 1;
        for (k = 0; k < n; k++) {
            valid &= utf8_ok(&prefs[k].key);
        }

        if (res->rewrite == NULL) {
            res->rewrite = test_alloc(NULL,
                                      res->nevents * sizeof(consent_str_t));
            if (res->rewrite != NULL) {
                memset(res->rewrite, 0, res->nevents * sizeof(consent_str_t));
            }
        }

        out = test_alloc(NULL, consent_prefs_size(prefs, n));

        if (res->rewrite == NULL || out == NULL) {
            verdict = CONSENT_HOOK_FAIL;

        } else {
            res->rewrite[i].len = consent_prefs_json(prefs, n, out);
            CHECK((res->rewrite[i].len != 0) == valid);

            if (!valid) {
                verdict = CONSENT_HOOK_FAIL;    /* as the module does */

            } else {
                res->rewrite[i].data = out;
                check_prefs(&res->rewrite[i], prefs, n);

                for (k = 0; k < n; k++) {
                    c = prefs[k].value
                        ? consent_policy_find(ctx->policy, prefs[k].key.data,
                                              prefs[k].key.len)
                        : -1;
                    if (c >= 0) {
                        consented[c / 64] |= (uint64_t) 1 << (c % 64);
                    }
                }
            }
        }
    }

    if (i < HOOK_MAX_EVENTS) {
        ctx->verdict[i] = (uint8_t) verdict;
        ctx->mask[i] = (verdict == CONSENT_HOOK_SET) ? consented[0] : 0;
    }

    return verdict;
}


/* the routing rule for an event whose hook set or failed: its mask */

static void
check_hooked_routing(const consent_result_t *res, const consent_dest_t *dests,
    const hook_ctx_t *ctx)
{
    size_t   e, d;
    uint8_t  o;

    for (e = 0; e < res->nevents && e < HOOK_MAX_EVENTS; e++) {
        if (res->events[e].code != CONSENT_OK
            || (ctx->verdict[e] != CONSENT_HOOK_SET
                && ctx->verdict[e] != CONSENT_HOOK_FAIL))
        {
            continue;
        }

        for (d = 0; d < res->ndests; d++) {
            o = res->outcome[e * res->ndests + d];

            if (dests[d].enforce && (dests[d].mask[0] & ~ctx->mask[e])) {
                CHECK(o == CONSENT_FILTERED_CONSENT);

            } else {
                CHECK(o == CONSENT_DELIVER
                      || o == CONSENT_FILTERED_INTEGRATIONS);
            }
        }
    }
}


/*
 * consent_default deny never delivers more than allow: the same request
 * routed with allow must deliver every (event, destination) deny did,
 * and may differ only at gated destinations, by filtered_consent
 */
static void
check_default_deny(consent_policy_t *policy, const uint8_t *data,
    size_t size, const consent_result_t *deny)
{
    size_t            e, d, i;
    consent_result_t  allow;

    policy->default_deny = 0;

    consent_process(policy, (consent_endpoint_e) (data[0] % 7 + 1),
                    data + 2, size - 2, test_alloc, NULL, &allow);

    policy->default_deny = 1;

    CHECK(allow.code == CONSENT_OK && allow.nevents == deny->nevents);

    for (e = 0; e < deny->nevents; e++) {
        for (d = 0; d < policy->ndests; d++) {
            i = e * policy->ndests + d;

            if (deny->outcome[i] == allow.outcome[i]) {
                continue;
            }

            CHECK(deny->outcome[i] == CONSENT_FILTERED_CONSENT
                  && policy->dests[d].enforce);
        }
    }
}


/* the forwarded body of destination d, joined (malloc) */
static unsigned char *
split_bytes(const consent_result_t *res, size_t d, const unsigned char *body,
    size_t *len)
{
    size_t            nsl, i;
    unsigned char    *out, *p;
    consent_slice_t  *sl;

    sl = malloc(consent_split_max(res) * sizeof(consent_slice_t));
    nsl = consent_split(res, d, body, sl);

    for (*len = 0, i = 0; i < nsl; i++) {
        *len += sl[i].len;
    }

    out = malloc(*len + 1);
    for (p = out, i = 0; i < nsl; i++) {
        memcpy(p, sl[i].data, sl[i].len);
        p += sl[i].len;
    }

    free(sl);
    return out;
}


/*
 * Rewritten events written out whole (consent_split_rewrites) change
 * how the bodies are sliced, never a byte of them
 */
static void
check_whole(consent_result_t *res, const unsigned char *body)
{
    size_t          d, n, len[5], wlen;
    unsigned char  *before[5], *after;

    n = res->ndests < 5 ? res->ndests : 5;

    for (d = 0; d < n; d++) {
        before[d] = split_bytes(res, d, body, &len[d]);
    }

    CHECK(consent_split_rewrites(res, body, test_alloc, NULL) == 0);

    for (d = 0; d < n; d++) {
        after = split_bytes(res, d, body, &wlen);
        CHECK(wlen == len[d] && memcmp(after, before[d], wlen) == 0);
        free(after);
        free(before[d]);
    }
}


/*
 * A profile's routing: an event routed again with consent_route() on a
 * mask routes exactly as a hook setting that mask would have routed it
 */
static uint64_t  route_mask;

static consent_hook_e
set_hook(void *data, consent_result_t *res, uint32_t i, uint64_t *consented)
{
    consented[0] = route_mask;
    return CONSENT_HOOK_SET;
}


static void
check_route(consent_policy_t *policy, const uint8_t *data, size_t size,
    consent_result_t *res)
{
    size_t            e, d, i;
    consent_result_t  set;

    route_mask = (uint64_t) data[0] * 0x9e3779b97f4a7c15ULL;

    consent_process_hooked(policy, (consent_endpoint_e) (data[0] % 7 + 1),
                           data + 2, size - 2, test_alloc, NULL, set_hook,
                           NULL, &set);

    CHECK(set.code == CONSENT_OK && set.nevents == res->nevents);

    for (e = 0; e < res->nevents; e++) {
        if (res->events[e].code != CONSENT_OK) {
            continue;
        }

        consent_route(policy, res, (uint32_t) e, &route_mask);

        for (d = 0; d < policy->ndests; d++) {
            i = e * policy->ndests + d;
            CHECK(res->outcome[i] == set.outcome[i]);
        }
    }
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t            d, e, accepted;
    consent_dest_t    dests[5];
    static hook_ctx_t hctx;
    consent_policy_t  policy;
    consent_result_t  res;

    if (size < 2) {
        return 0;
    }

    memset(dests, 0, sizeof(dests));
    memset(&policy, 0, sizeof(policy));
    dests[0].name.data = "amplitude"; dests[0].name.len = 9;
    dests[0].enforce = 1; dests[0].mask[0] = 0x2;
    dests[1].name.data = "facebook"; dests[1].name.len = 8;
    dests[1].enforce = 1; dests[1].mask[0] = 0xc;
    dests[2].name.data = "warehouse"; dests[2].name.len = 9;
    dests[2].enforce = 0; dests[2].mask[0] = 0x1;
    dests[3].name.data = "webhook"; dests[3].name.len = 7;
    dests[3].enforce = 1;
    dests[4].name.data = "All"; dests[4].name.len = 3;
    dests[4].enforce = 1; dests[4].mask[0] = 0xf;

    policy.categories = cats;
    policy.ncategories = 4;
    policy.dests = dests;
    policy.ndests = 5;
    policy.max_event_size = (data[1] & 0x80) ? 64 : 32 * 1024;
    policy.max_events = (data[1] & 0x40) ? 3 : 2500;

    /* byte 0 bit 7: consent_default deny */
    policy.default_deny = (data[0] & 0x80) != 0;

    /* byte 1 bit 5: the linear lookup used without an index */
    if (!(data[1] & 0x20) && consent_policy_prepare(&policy, test_alloc, NULL)
        != 0)
    {
        test_free_all();
        return 0;
    }

    /* byte 1 bit 4: run a hook; its low bits pick verdicts */
    hctx.sel = &data[1];
    hctx.policy = &policy;
    memset(hctx.verdict, CONSENT_HOOK_KEEP, sizeof(hctx.verdict));

    consent_process_hooked(&policy, (consent_endpoint_e) (data[0] % 7 + 1),
                           data + 2, size - 2, test_alloc, NULL,
                           (data[1] & 0x10) ? fuzz_hook : NULL,
                           &hctx, &res);

    if (res.code == CONSENT_OK) {
        accepted = 0;

        for (e = 0; e < res.nevents; e++) {
            CHECK(res.events[e].start < res.events[e].end);
            CHECK(res.events[e].end <= size - 2);
            accepted += res.events[e].code == CONSENT_OK;

            for (d = 0; d < policy.ndests; d++) {
                CHECK(res.events[e].code == CONSENT_OK
                      || res.outcome[e * policy.ndests + d] == CONSENT_SKIP);
                CHECK(res.events[e].code != CONSENT_OK
                      || res.outcome[e * policy.ndests + d] != CONSENT_SKIP);
            }
        }

        CHECK(accepted == res.naccepted);

        if (data[1] & 0x10) {
            check_hooked_routing(&res, dests, &hctx);
        }

        for (d = 0; d < policy.ndests; d++) {
            check_destination(&res, d, data + 2, size - 2);
        }

        if (res.rewrite != NULL) {
            check_whole(&res, data + 2);
        }

        if (policy.default_deny && !(data[1] & 0x10)) {
            check_default_deny(&policy, data, size, &res);
        }

        /* last: it routes res again */
        if (!(data[1] & 0x10)) {
            check_route(&policy, data, size, &res);
        }
    }

    test_free_all();
    return 0;
}
