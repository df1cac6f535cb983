
/*
 * Core throughput: parse + validate + route + split of realistic
 * Segment batches and single events, the JSON scanner alone, and plain
 * memchr / strlen passes as the ceiling.  Writes the inputs and the
 * policy for bench_core.lua, which does the same work with lua-cjson.
 *
 *   bench_core <outdir> [seconds per measurement, default 0.5]
 *
 * Every figure is the best of 3 timed runs (a shared machine is noisy),
 * in GB/s of request body (10^9 bytes per second).  The last line,
 * "RESULT k=v ...", is read by bench/core.sh.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "consent_core.h"
#include "gen_batch.h"


#define ARENA_SIZE   (256 * 1024 * 1024)
#define BIG_BUFFER   (64 * 1024 * 1024)
#define ROUNDS       3

static double   run_seconds = 0.5;

static char    *arena;
static size_t   used;
static size_t   sink;


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


/* ------------------------------------------------------------------ */
/* the policy: 20 categories, 10 destinations                           */

static consent_str_t   cats[GEN_CATEGORIES];
static char            cat_names[GEN_CATEGORIES][8];
static consent_dest_t  dests[GEN_DESTINATIONS];
static char            dest_names[GEN_DESTINATIONS][8];
static size_t          policy_used;


/*
 * dest0..dest7 need two categories each, dest8 has enforce=off, dest9
 * is unmapped.
 */
static void
make_policy(consent_policy_t *p)
{
    int  i;

    memset(p, 0, sizeof(consent_policy_t));

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

    used = 0;
    if (consent_policy_prepare(p, arena_alloc, NULL) != 0) {
        fprintf(stderr, "consent_policy_prepare failed\n");
        exit(1);
    }

    policy_used = used;
}


/* the same policy for bench_core.lua, as JSON */
static void
write_policy(const char *path, const consent_policy_t *p)
{
    FILE    *f;
    size_t   d, c, n;

    f = fopen(path, "w");
    if (f == NULL) {
        perror(path);
        exit(1);
    }

    fprintf(f, "{\"max_events\":%zu,\"destinations\":[", p->max_events);

    for (d = 0; d < p->ndests; d++) {
        fprintf(f, "%s{\"name\":\"%.*s\",\"enforce\":%s,\"categories\":[",
                d ? "," : "", (int) p->dests[d].name.len,
                p->dests[d].name.data, p->dests[d].enforce ? "true" : "false");

        n = 0;
        for (c = 0; c < p->ncategories; c++) {
            if (p->dests[d].mask[c / 64] & (1ULL << (c % 64))) {
                fprintf(f, "%s\"%.*s\"", n++ ? "," : "",
                        (int) p->categories[c].len, p->categories[c].data);
            }
        }

        fprintf(f, "]}");
    }

    fprintf(f, "]}\n");
    fclose(f);
}


static void
write_file(const char *dir, const char *name, const char *data, size_t len)
{
    FILE  *f;
    char   path[4096];

    snprintf(path, sizeof(path), "%s/%s", dir, name);

    f = fopen(path, "w");
    if (f == NULL || fwrite(data, 1, len, f) != len) {
        perror(path);
        exit(1);
    }

    fclose(f);
}


/* ------------------------------------------------------------------ */
/* measurements                                                         */

typedef struct {
    const char          *name;
    consent_endpoint_e   ep;
    const unsigned char *buf;
    size_t               len;
    uint32_t             nevents;
    size_t               delivered;     /* (event, destination) pairs */
    size_t               out_bytes;     /* forwarded bytes, all dests */
    size_t               tokens;
    const consent_policy_t  *policy;
} input_t;


/* a plain pass over buf: memchr for a byte that never occurs, or strlen */
typedef struct {
    const unsigned char *buf;
    size_t               len;
    int                  use_strlen;
} pass_t;


/* one full request: what the module does per request body */
static void
core_once(void *arg)
{
    input_t                 *in = arg;
    const consent_policy_t  *policy = in->policy;
    consent_result_t         res;
    consent_slice_t         *sl;
    size_t                   d, n, k, delivered, bytes;

    used = policy_used;

    if (consent_process(policy, in->ep, in->buf, in->len, arena_alloc, NULL,
                        &res)
        != CONSENT_OK)
    {
        fprintf(stderr, "%s: bench input refused: %s (%s)\n", in->name,
                consent_code_name(res.code), res.reason ? res.reason : "");
        exit(1);
    }

    sl = arena_alloc(NULL, consent_split_max(&res) * sizeof(consent_slice_t));
    bytes = 0;

    for (d = 0; d < policy->ndests; d++) {
        n = consent_split(&res, d, in->buf, sl);

        for (k = 0; k < n; k++) {
            bytes += sl[k].len;
        }
    }

    delivered = 0;
    for (k = 0; k < (size_t) res.nevents * policy->ndests; k++) {
        delivered += res.outcome[k] == CONSENT_DELIVER;
    }

    in->nevents = res.nevents;
    in->delivered = delivered;
    in->out_bytes = bytes;
    sink += bytes;
}


/* the JSON scanner alone */
static void
scan_once(void *arg)
{
    input_t         *in = arg;
    consent_json_t   js;

    used = policy_used;

    if (consent_json_scan(&js, in->buf, in->len, arena_alloc, NULL) != 0) {
        fprintf(stderr, "%s: scan failed: %s\n", in->name, js.err);
        exit(1);
    }

    in->tokens = js.ntok;
    sink += js.ntok;
}


static void
pass_once(void *arg)
{
    pass_t  *ps = arg;

    if (ps->use_strlen) {
        sink += strlen((const char *) ps->buf);

    } else {
        sink += (memchr(ps->buf, 0x01, ps->len) != NULL);
    }

    __asm__ volatile("" ::: "memory");
}


/* the best of ROUNDS runs of run_seconds each: GB/s of len bytes a call */
static double
best_rate(void (*once)(void *), void *arg, size_t len, size_t reps)
{
    double  t0, t, best = 0;
    size_t  iters, i;
    int     r;

    for (r = 0; r < ROUNDS; r++) {
        iters = 0;
        t0 = now();

        do {
            for (i = 0; i < reps; i++) {
                once(arg);
            }

            iters += reps;
            t = now() - t0;

        } while (t < run_seconds);

        if ((double) len * iters / t / 1e9 > best) {
            best = (double) len * iters / t / 1e9;
        }
    }

    return best;
}


static double
run_pass(const unsigned char *buf, size_t len, int use_strlen)
{
    pass_t  ps = { buf, len, use_strlen };

    return best_rate(pass_once, &ps, len, len > (1 << 22) ? 1 : 64);
}


int
main(int argc, char **argv)
{
    char              *batch, *big, *event, *huge;
    const char        *dir = argc > 1 ? argv[1] : ".";
    size_t             i;
    double             core[3], scan[3], mc_batch, sl_batch, mc_big;
    consent_policy_t   policy;
    input_t            in[3];
    char               path[4096];

    if (argc > 2) {
        run_seconds = atof(argv[2]);
    }

    arena = malloc(ARENA_SIZE);
    batch = malloc(600 * 1024);
    big = malloc(4 * 1024 * 1024);
    event = malloc(8192);
    huge = malloc(BIG_BUFFER + 1);

    if (arena == NULL || batch == NULL || big == NULL || event == NULL
        || huge == NULL)
    {
        fprintf(stderr, "out of memory\n");
        return 1;
    }

    /*
     * The 2500-event batch is over the 500 KB default body limit: that
     * limit is the handler's (consent_max_body_size), the core has none
     * but max_events, 2500 here as by default.
     */
    make_policy(&policy);

    memset(in, 0, sizeof(in));

    in[0].name = "batch 500 KB";
    in[0].ep = CONSENT_EP_BATCH;
    in[0].len = gen_batch(batch, 500 * 1024, 2500);
    in[0].buf = (unsigned char *) batch;

    in[1].name = "batch 2500 events";
    in[1].ep = CONSENT_EP_BATCH;
    in[1].len = gen_batch(big, 4 * 1024 * 1024, 2500);
    in[1].buf = (unsigned char *) big;

    in[2].name = "single event";
    in[2].ep = CONSENT_EP_TRACK;
    in[2].len = gen_event(event, 7, 420);
    in[2].buf = (unsigned char *) event;

    snprintf(path, sizeof(path), "%s/bench_policy.json", dir);
    write_policy(path, &policy);
    write_file(dir, "bench_batch.json", batch, in[0].len);
    write_file(dir, "bench_batch2500.json", big, in[1].len);
    write_file(dir, "bench_event.json", event, in[2].len);

    for (i = 0; i < 3; i++) {
        in[i].policy = &policy;
        core[i] = best_rate(core_once, &in[i], in[i].len, 8);
        scan[i] = best_rate(scan_once, &in[i], in[i].len, 8);

        printf("%-18s %8zu bytes %5u events (%4zu B/event) %6zu tokens\n",
               in[i].name, in[i].len, in[i].nevents,
               in[i].len / in[i].nevents, in[i].tokens);
        printf("  core (parse+validate+route+split): %6.2f GB/s  "
               "%6.2f M events/s\n", core[i],
               core[i] * 1e9 / ((double) in[i].len / in[i].nevents) / 1e6);
        printf("  scanner alone:                     %6.2f GB/s\n", scan[i]);
        printf("  delivered %zu of %zu (event, destination) pairs, "
               "%zu bytes forwarded\n", in[i].delivered,
               (size_t) in[i].nevents * GEN_DESTINATIONS, in[i].out_bytes);
    }

    /* ceilings: the 500 KB batch stays in L2; 64 MB does not fit any cache */
    batch[in[0].len] = '\0';
    mc_batch = run_pass(in[0].buf, in[0].len, 0);
    sl_batch = run_pass(in[0].buf, in[0].len, 1);

    memset(huge, 'x', BIG_BUFFER);
    huge[BIG_BUFFER] = '\0';
    mc_big = run_pass((unsigned char *) huge, BIG_BUFFER, 0);

    printf("ceiling, memchr over the 500 KB batch (cache):  %7.2f GB/s\n",
           mc_batch);
    printf("ceiling, strlen over the 500 KB batch (cache):  %7.2f GB/s\n",
           sl_batch);
    printf("ceiling, memchr over 64 MB (memory):            %7.2f GB/s\n",
           mc_big);

    printf("RESULT core=%.3f core2500=%.3f single=%.3f scan=%.3f "
           "scan2500=%.3f scansingle=%.3f memchr=%.3f strlen=%.3f "
           "memchr64m=%.3f events=%u bytes=%zu delivered=%zu "
           "delivered2500=%zu delivered_single=%zu eps=%.0f eps_single=%.0f\n",
           core[0], core[1], core[2], scan[0], scan[1], scan[2], mc_batch,
           sl_batch, mc_big, in[0].nevents, in[0].len, in[0].delivered,
           in[1].delivered, in[2].delivered,
           core[0] * 1e9 / ((double) in[0].len / in[0].nevents),
           core[2] * 1e9 / in[2].len);

    return sink == 0x5a5a5a5a;
}
