
/*
 * Core throughput: parse + validate + route + split on realistic
 * batches and single events, against a memchr pass over the same
 * bytes (the ceiling).  Writes the inputs for bench_core.lua.
 *
 *   bench_core <outdir>
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "consent_core.h"
#include "gen_batch.h"


#define ARENA_SIZE  (64 * 1024 * 1024)
#define RUN_SECONDS 2.0

static char    *arena;
static size_t   used;


static void *
arena_alloc(void *ctx, size_t size)
{
    void  *p;

    (void) ctx;
    size = (size + 15) & ~(size_t) 15;

    if (used + size > ARENA_SIZE) {
        return NULL;
    }

    p = arena + used;
    used += size;
    return p;
}


static double
now(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}


static consent_str_t   cats[GEN_CATEGORIES];
static char            cat_names[GEN_CATEGORIES][8];
static consent_dest_t  dests[GEN_DESTINATIONS];
static char            dest_names[GEN_DESTINATIONS][8];


static void
make_policy(consent_policy_t *p)
{
    int  i;

    for (i = 0; i < GEN_CATEGORIES; i++) {
        sprintf(cat_names[i], "C%04d", i + 1);
        cats[i].data = cat_names[i];
        cats[i].len = 5;
    }

    for (i = 0; i < GEN_DESTINATIONS; i++) {
        sprintf(dest_names[i], "dest%d", i);
        dests[i].name.data = dest_names[i];
        dests[i].name.len = strlen(dest_names[i]);
        dests[i].enforce = (i != 8);

        if (i != 9) {
            dests[i].mask[0] = (1ULL << i) | (1ULL << ((i * 3 + 5) % 20));
        }
    }

    p->categories = cats;
    p->ncategories = GEN_CATEGORIES;
    p->dests = dests;
    p->ndests = GEN_DESTINATIONS;
    p->max_event_size = 32 * 1024;
    p->max_events = 2500;

    consent_policy_prepare(p, arena_alloc, NULL);
    used = ARENA_SIZE / 2;
}


static size_t   sink;


static double
run_core(const consent_policy_t *policy, consent_endpoint_e ep,
    const unsigned char *buf, size_t len, size_t *delivered)
{
    double            t0, t;
    size_t            iters, d, n, i;
    consent_result_t  res;
    consent_slice_t  *sl;

    iters = 0;
    t0 = now();

    do {
        for (i = 0; i < 16; i++) {
            used = ARENA_SIZE / 2;

            if (consent_process(policy, ep, buf, len, arena_alloc, NULL, &res)
                != CONSENT_OK)
            {
                fprintf(stderr, "bench input refused: %s\n",
                        consent_code_name(res.code));
                exit(1);
            }

            sl = arena_alloc(NULL,
                             consent_split_max(&res) * sizeof(consent_slice_t));

            *delivered = 0;
            for (d = 0; d < policy->ndests; d++) {
                n = consent_split(&res, d, buf, sl);
                sink += n;
            }

            for (d = 0; d < res.nevents * policy->ndests; d++) {
                *delivered += res.outcome[d] == CONSENT_DELIVER;
            }
        }

        iters += 16;
        t = now() - t0;

    } while (t < RUN_SECONDS);

    return (double) len * iters / t / 1e9;
}


static double
run_memchr(const unsigned char *buf, size_t len)
{
    double  t0, t;
    size_t  iters, i;

    iters = 0;
    t0 = now();

    do {
        for (i = 0; i < 64; i++) {
            /* a byte that never occurs: one full pass */
            sink += (memchr(buf, 0x01, len) != NULL);
            __asm__ volatile("" ::: "memory");
        }

        iters += 64;
        t = now() - t0;

    } while (t < RUN_SECONDS);

    return (double) len * iters / t / 1e9;
}


int
main(int argc, char **argv)
{
    FILE              *f;
    char              *batch, *event, path[4096];
    size_t             blen, elen, delivered, nevents;
    double             core_b, core_e, ceil_b;
    consent_policy_t   policy;
    consent_result_t   res;
    const char        *dir = argc > 1 ? argv[1] : ".";

    arena = malloc(ARENA_SIZE);
    batch = malloc(600 * 1024);
    event = malloc(8192);

    make_policy(&policy);

    blen = gen_batch(batch, 500 * 1024, 2500);
    elen = gen_event(event, 7, 420);

    used = ARENA_SIZE / 2;
    consent_process(&policy, CONSENT_EP_BATCH, (unsigned char *) batch, blen,
                    arena_alloc, NULL, &res);
    nevents = res.nevents;

    snprintf(path, sizeof(path), "%s/bench_batch.json", dir);
    f = fopen(path, "w");
    fwrite(batch, 1, blen, f);
    fclose(f);

    snprintf(path, sizeof(path), "%s/bench_event.json", dir);
    f = fopen(path, "w");
    fwrite(event, 1, elen, f);
    fclose(f);

    core_b = run_core(&policy, CONSENT_EP_BATCH, (unsigned char *) batch,
                      blen, &delivered);
    printf("batch:  %zu bytes, %zu events, %zu of %zu (event, destination) "
           "pairs delivered\n", blen, nevents, delivered,
           nevents * GEN_DESTINATIONS);
    printf("  core (parse+validate+route+split): %.2f GB/s, %.2f M events/s\n",
           core_b, core_b * 1e9 / ((double) blen / nevents) / 1e6);

    core_e = run_core(&policy, CONSENT_EP_BATCH == 0 ? 0 : CONSENT_EP_TRACK,
                      (unsigned char *) event + 0, elen, &delivered);
    printf("single: %zu bytes\n", elen);
    printf("  core: %.2f GB/s, %.2f M events/s\n", core_e,
           core_e * 1e9 / elen / 1e6);

    ceil_b = run_memchr((unsigned char *) batch, blen);
    printf("  memchr ceiling over the batch: %.2f GB/s\n", ceil_b);
    printf("RESULT core=%.3f single=%.3f ceiling=%.3f\n", core_b, core_e,
           ceil_b);

    return sink == 0x5a5a5a5a;
}
