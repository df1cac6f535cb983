
/*
 * libFuzzer target over the whole core: request bytes and a policy in,
 * decisions and forwarded slices out.  Beyond not crashing it checks
 * that every destination's forwarded body is valid JSON holding exactly
 * its delivered events, in order, each byte-identical to its slice of
 * the input.
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


static const consent_str_t  cats[] = {
    { "C0001", 5 }, { "C0002", 5 }, { "C0003", 5 }, { "C0004", 5 }
};


#define CHECK(cond)                                                          \
    if (!(cond)) {                                                           \
        fprintf(stderr, "property failed: %s (%s:%d)\n", #cond, __FILE__,   \
                __LINE__);                                                   \
        abort();                                                             \
    }


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


/* a hook whose verdict is picked by the event's position and byte 1 */

#define HOOK_PREFS  "{\"C0001\":true,\"C0002\":false}"

static consent_str_t  hook_prefs = { HOOK_PREFS, sizeof(HOOK_PREFS) - 1 };

static consent_hook_e
fuzz_hook(void *ctx, consent_result_t *res, uint32_t i, uint64_t *consented)
{
    unsigned  sel = (*(const uint8_t *) ctx + i) % 4;

    if (sel == CONSENT_HOOK_SET) {
        if (res->rewrite == NULL) {
            res->rewrite = test_alloc(NULL,
                                      res->nevents * sizeof(consent_str_t));
            if (res->rewrite == NULL) {
                return CONSENT_HOOK_FAIL;
            }

            memset(res->rewrite, 0, res->nevents * sizeof(consent_str_t));
        }

        res->rewrite[i] = hook_prefs;
        consented[0] = 1;
    }

    return (consent_hook_e) sel;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t            d, e, accepted;
    consent_dest_t    dests[5];
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

    /* byte 1 bit 5: the linear lookup used without an index */
    if (!(data[1] & 0x20) && consent_policy_prepare(&policy, test_alloc, NULL)
        != 0)
    {
        test_free_all();
        return 0;
    }

    /* byte 1 bit 4: run a hook; its low bits pick verdicts */
    consent_process_hooked(&policy, (consent_endpoint_e) (data[0] % 7 + 1),
                           data + 2, size - 2, test_alloc, NULL,
                           (data[1] & 0x10) ? fuzz_hook : NULL,
                           (void *) &data[1], &res);

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

        for (d = 0; d < policy.ndests; d++) {
            check_destination(&res, d, data + 2, size - 2);
        }
    }

    test_free_all();
    return 0;
}
