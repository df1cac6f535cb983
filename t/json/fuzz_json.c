
/*
 * libFuzzer target: the scanner (SSE2 build), the same scanner without
 * SIMD and the reference scanner of ref_json.c must agree on every
 * input: result, err, err_offset and the whole tape.  Built and run by
 * hand (t/json/README.md):
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined \
 *       -fno-sanitize-recover=undefined -Ingx_consent_module -It/json \
 *       -o build/fuzz_json t/json/fuzz_json.c t/json/ref_json.c \
 *       t/json/portable_json.c ngx_consent_module/consent_json.c
 *   build/fuzz_json -max_total_time=60 -max_len=4096 t/json/corpus
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "consent_core.h"
#include "ref_json.h"


int portable_json_scan(consent_json_t *js, const unsigned char *p,
    size_t len, consent_alloc_pt alloc, void *ctx);


#define MAX_BLOCKS  64

static void    *blocks[MAX_BLOCKS];
static size_t   nblocks;


static void *
fuzz_alloc(void *ctx, size_t size)
{
    void  *p;

    (void) ctx;

    if (nblocks == MAX_BLOCKS) {
        return NULL;
    }

    p = malloc(size ? size : 1);
    blocks[nblocks++] = p;
    return p;
}


static void
same(const char *what, int ra, const consent_json_t *a, int rb,
    const consent_json_t *b)
{
    uint32_t  i;

    if (ra != rb || (a->err == NULL) != (b->err == NULL)
        || (a->err && strcmp(a->err, b->err) != 0)
        || (ra != 0 && a->err_offset != b->err_offset)
        || a->ntok != b->ntok)
    {
        fprintf(stderr, "%s: rc %d/%d err \"%s\"/\"%s\" at %zu/%zu "
                "ntok %u/%u\n", what, ra, rb, a->err ? a->err : "-",
                b->err ? b->err : "-", a->err_offset, b->err_offset,
                (unsigned) a->ntok, (unsigned) b->ntok);
        abort();
    }

    for (i = 0; i < a->ntok; i++) {
        if (memcmp(&a->tok[i], &b->tok[i], sizeof(consent_json_tok_t)) != 0) {
            fprintf(stderr, "%s: token %u differs\n", what, (unsigned) i);
            abort();
        }
    }
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    consent_json_t  fast, port, ref;
    int             rf, rp, rr;

    rf = consent_json_scan(&fast, data, size, fuzz_alloc, NULL);
    rp = portable_json_scan(&port, data, size, fuzz_alloc, NULL);
    rr = ref_json_scan(&ref, data, size, fuzz_alloc, NULL);

    same("sse2 vs reference", rf, &fast, rr, &ref);
    same("portable vs reference", rp, &port, rr, &ref);

    while (nblocks) {
        free(blocks[--nblocks]);
    }

    return 0;
}
