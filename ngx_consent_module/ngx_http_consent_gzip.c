
/*
 * ngx_consent: Content-Encoding: gzip request bodies, inflated into one
 * buffer from the request pool and never beyond the body limit, so a
 * small bomb costs at most that much memory.
 */

#include "ngx_http_consent.h"    /* ngx_config.h first: _GNU_SOURCE */

#include <zlib.h>


static void *ngx_http_consent_zalloc(void *opaque, u_int items, u_int size);
static void ngx_http_consent_zfree(void *opaque, void *address);


/*
 * NGX_OK: *out holds the inflated body;
 * NGX_DECLINED: not a valid gzip stream, *error says why;
 * NGX_ABORT: it inflates to more than max bytes;
 * NGX_ERROR: no memory.
 */

ngx_int_t
ngx_http_consent_inflate(ngx_http_request_t *r, u_char *in, size_t len,
    size_t max, ngx_str_t *out, ngx_str_t *error)
{
    int        rc;
    u_char    *buf, *nbuf;
    size_t     size, total, isize;
    z_stream   zs;
    ngx_int_t  ret;

    if (len < 18 || in[0] != 0x1f || in[1] != 0x8b) {
        ngx_str_set(error, "request body is not a gzip stream");
        return NGX_DECLINED;
    }

    /*
     * The trailer's ISIZE (the size modulo 2^32, last member only) is a
     * hint for the first buffer, never trusted beyond max + 1: one byte
     * more than the limit tells a body that is too large.
     */

    isize = in[len - 4] | (in[len - 3] << 8) | (in[len - 2] << 16)
            | ((size_t) in[len - 1] << 24);

    size = ngx_min(isize ? isize : 4 * len, max) + 1;

    buf = ngx_pnalloc(r->pool, size);
    if (buf == NULL) {
        return NGX_ERROR;
    }

    ngx_memzero(&zs, sizeof(z_stream));
    zs.zalloc = ngx_http_consent_zalloc;
    zs.zfree = ngx_http_consent_zfree;
    zs.opaque = r->pool;
    zs.next_in = in;
    zs.avail_in = len;

    /* 16: a gzip header and trailer, no zlib or raw streams */
    if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK) {
        return NGX_ERROR;
    }

    total = 0;
    ret = NGX_OK;

    for ( ;; ) {
        zs.next_out = buf + total;
        zs.avail_out = size - total;

        rc = inflate(&zs, Z_NO_FLUSH);

        total = size - zs.avail_out;

        if (total > max) {
            ret = NGX_ABORT;
            break;
        }

        if (rc == Z_STREAM_END) {
            if (zs.avail_in == 0) {
                break;
            }

            /* gzip allows concatenated members; anything else is junk */
            if (zs.avail_in < 18 || zs.next_in[0] != 0x1f
                || zs.next_in[1] != 0x8b)
            {
                ngx_str_set(error, "trailing data after the gzip stream");
                ret = NGX_DECLINED;
                break;
            }

            if (inflateReset(&zs) != Z_OK) {
                ret = NGX_ERROR;
                break;
            }

            continue;
        }

        if (rc == Z_MEM_ERROR) {
            ret = NGX_ERROR;
            break;
        }

        if (rc != Z_OK && rc != Z_BUF_ERROR) {
            error->data = (u_char *) (zs.msg ? zs.msg : "corrupt data");
            error->len = ngx_strlen(error->data);
            ret = NGX_DECLINED;
            break;
        }

        if (zs.avail_out != 0) {
            /* all input used and the stream has not ended */
            ngx_str_set(error, "truncated gzip stream");
            ret = NGX_DECLINED;
            break;
        }

        /* the output is full and still within the limit: grow it */

        size = ngx_min(2 * size, max + 1);

        nbuf = ngx_pnalloc(r->pool, size);
        if (nbuf == NULL) {
            ret = NGX_ERROR;
            break;
        }

        ngx_memcpy(nbuf, buf, total);
        ngx_pfree(r->pool, buf);
        buf = nbuf;
    }

    inflateEnd(&zs);

    out->data = buf;
    out->len = total;

    return ret;
}


static void *
ngx_http_consent_zalloc(void *opaque, u_int items, u_int size)
{
    return ngx_palloc(opaque, (size_t) items * size);
}


/* the request pool frees it all */

static void
ngx_http_consent_zfree(void *opaque, void *address)
{
}
