
/*
 * ASan builds of the module only: see ngx_palloc.h here.  Temporary
 * buffers the module creates get their own malloc() chunk too.
 */

#include_next <ngx_buf.h>

#ifndef NGX_CONSENT_ASAN_BUF_H
#define NGX_CONSENT_ASAN_BUF_H

static ngx_inline ngx_buf_t *
ngx_consent_asan_create_temp_buf(ngx_pool_t *pool, size_t size)
{
    ngx_buf_t  *b;

    b = ngx_calloc_buf(pool);
    if (b == NULL) {
        return NULL;
    }

    b->start = ngx_palloc(pool, size);
    if (b->start == NULL) {
        return NULL;
    }

    b->pos = b->start;
    b->last = b->start;
    b->end = b->last + size;
    b->temporary = 1;

    return b;
}

#define ngx_create_temp_buf(pool, size)                                     \
    ngx_consent_asan_create_temp_buf(pool, size)

#endif /* NGX_CONSENT_ASAN_BUF_H */
