
/*
 * ASan builds of the module only (Makefile: asan, test-memcheck): this
 * directory comes first in the include path, so <ngx_palloc.h> is this
 * wrapper.  Every pool allocation the module makes becomes its own
 * malloc() chunk, freed by a pool cleanup when the pool goes away, so
 * that AddressSanitizer's red zones sit right after it: an overflow that
 * would stay inside a pool block is reported.  The nginx binary is not
 * rebuilt; its own pool allocations are unchanged.
 */

#include_next <ngx_palloc.h>

#ifndef NGX_CONSENT_ASAN_PALLOC_H
#define NGX_CONSENT_ASAN_PALLOC_H

/*
 * The cleanup handler is free() itself: one address in every object
 * file, so that ngx_pfree() finds chunks allocated in another one.
 */

static ngx_inline void *
ngx_consent_asan_palloc(ngx_pool_t *pool, size_t size, int zero)
{
    void                *p;
    ngx_pool_cleanup_t  *cln;

    cln = (ngx_pool_cleanup_add)(pool, 0);
    if (cln == NULL) {
        return NULL;
    }

    p = zero ? calloc(1, size ? size : 1) : malloc(size ? size : 1);
    if (p == NULL) {
        return NULL;
    }

    cln->handler = free;
    cln->data = p;

    return p;
}


static ngx_inline ngx_int_t
ngx_consent_asan_pfree(ngx_pool_t *pool, void *p)
{
    ngx_pool_cleanup_t  *c;

    for (c = pool->cleanup; c; c = c->next) {
        if (c->handler == free && c->data == p) {
            c->handler = NULL;
            c->data = NULL;
            free(p);
            return NGX_OK;
        }
    }

    return (ngx_pfree)(pool, p);
}


#define ngx_palloc(pool, size)   ngx_consent_asan_palloc(pool, size, 0)
#define ngx_pnalloc(pool, size)  ngx_consent_asan_palloc(pool, size, 0)
#define ngx_pcalloc(pool, size)  ngx_consent_asan_palloc(pool, size, 1)
#define ngx_pfree(pool, p)       ngx_consent_asan_pfree(pool, p)

#endif /* NGX_CONSENT_ASAN_PALLOC_H */
