
/*
 * The allocator the core's test programs give it: each block its own
 * malloc() chunk, so that ASan sees an overrun at its end, all freed
 * together by test_free_all() after each input.  test_budget is how
 * many allocations still succeed (run_corpus injects out-of-memory).
 */

#ifndef _TEST_ALLOC_H_INCLUDED_
#define _TEST_ALLOC_H_INCLUDED_


#include <stdlib.h>

#ifndef TEST_MAX_BLOCKS
#define TEST_MAX_BLOCKS  64
#endif

static void    *test_blocks[TEST_MAX_BLOCKS];
static size_t   test_nblocks;
static size_t   test_budget = (size_t) -1;


static void *
test_alloc(void *ctx, size_t size)
{
    void  *p;

    (void) ctx;

    if (test_nblocks == TEST_MAX_BLOCKS || test_budget == 0) {
        return NULL;
    }

    test_budget--;

    p = malloc(size ? size : 1);
    test_blocks[test_nblocks++] = p;
    return p;
}


static void
test_free_all(void)
{
    while (test_nblocks) {
        free(test_blocks[--test_nblocks]);
    }
}


#endif /* _TEST_ALLOC_H_INCLUDED_ */
