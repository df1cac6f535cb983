
/*
 * libFuzzer target: the scanner (SSE2 build), the same scanner without
 * SIMD and the reference scanner of ref_json.c must agree on every
 * input: result, err, err_offset and the whole tape.  Built and run by
 * hand as t/json/README.md shows; new inputs go to build/, the seed
 * corpus t/json/corpus stays read-only.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "consent_core.h"
#include "ref_json.h"
#include "test_alloc.h"


int portable_json_scan(consent_json_t *js, const unsigned char *p,
    size_t len, consent_alloc_pt alloc, void *ctx);


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

    rf = consent_json_scan(&fast, data, size, test_alloc, NULL);
    rp = portable_json_scan(&port, data, size, test_alloc, NULL);
    rr = ref_json_scan(&ref, data, size, test_alloc, NULL);

    same("sse2 vs reference", rf, &fast, rr, &ref);
    same("portable vs reference", rp, &port, rr, &ref);

    test_free_all();

    return 0;
}
