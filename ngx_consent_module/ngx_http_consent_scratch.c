
/*
 * ngx_consent: per-worker scratch buffers for what lives only while one
 * request is processed and split (the JSON token tape, a destination's
 * slice list).  A worker does that for one request at a time, so the
 * buffers are kept from request to request at their high-water mark.
 *
 * Why not the request pool: blocks that large are malloc()ed and freed
 * with each request, glibc hands the freed top of the heap back to the
 * kernel, and the next request faulted the same pages in again (about
 * 60 page faults, most of the worker's time, per 50-event batch).
 */

#include "ngx_http_consent.h"


/* a request needing more takes it from its pool, the worker keeps none */
#define NGX_HTTP_CONSENT_SCRATCH_MAX  (4 * 1024 * 1024)


typedef struct {
    u_char                     *data;
    size_t                      size;
    size_t                      want;       /* the largest asked for */
    unsigned                    lent:1;
} ngx_http_consent_scratch_t;


static ngx_int_t ngx_http_consent_scratch_fit(ngx_http_consent_scratch_t *s,
    size_t size);


static ngx_http_consent_scratch_t  ngx_http_consent_tape;
static ngx_http_consent_scratch_t  ngx_http_consent_slices;


/* before a request is processed: the tape buffer is free again */

void
ngx_http_consent_scratch_reset(void)
{
    ngx_http_consent_scratch_t  *s = &ngx_http_consent_tape;

    s->lent = 0;

    /* a request outgrew it: the next ones get a buffer that large */
    if (s->want > s->size) {
        (void) ngx_http_consent_scratch_fit(s, s->want);
    }
}


/*
 * The core's tape allocator (data: the request).  The first tape of a
 * request is the scratch buffer; a tape that grows is copied from the
 * old one, so the larger one comes from the request pool this time.
 */

void *
ngx_http_consent_scratch_tape(void *data, size_t size)
{
    ngx_http_request_t *r = data;

    ngx_http_consent_scratch_t  *s = &ngx_http_consent_tape;

    if (size > s->want && size <= NGX_HTTP_CONSENT_SCRATCH_MAX) {
        s->want = size;
    }

    if (!s->lent && size <= s->size) {
        s->lent = 1;
        return s->data;
    }

    return ngx_palloc(r->pool, size);
}


/* the core's allocator over a pool (a request's or a cycle's) */

void *
ngx_http_consent_palloc(void *pool, size_t size)
{
    return ngx_palloc(pool, size);
}


/* room for n slices, valid until the next call */

consent_slice_t *
ngx_http_consent_scratch_slices(size_t n)
{
    ngx_http_consent_scratch_t  *s = &ngx_http_consent_slices;

    if (ngx_http_consent_scratch_fit(s, n * sizeof(consent_slice_t))
        != NGX_OK)
    {
        return NULL;
    }

    return (consent_slice_t *) s->data;
}


static ngx_int_t
ngx_http_consent_scratch_fit(ngx_http_consent_scratch_t *s, size_t size)
{
    u_char  *p;

    if (size <= s->size) {
        return NGX_OK;
    }

    p = ngx_alloc(size, ngx_cycle->log);
    if (p == NULL) {
        return NGX_ERROR;
    }

    ngx_free(s->data);
    s->data = p;
    s->size = size;

    return NGX_OK;
}


void
ngx_http_consent_scratch_free(void)
{
    ngx_free(ngx_http_consent_tape.data);
    ngx_free(ngx_http_consent_slices.data);

    ngx_memzero(&ngx_http_consent_tape, sizeof(ngx_http_consent_scratch_t));
    ngx_memzero(&ngx_http_consent_slices,
                sizeof(ngx_http_consent_scratch_t));
}
