
/*
 * ngx_consent: the request body as the core scans it, one contiguous
 * buffer: in place when nginx kept it in one, joined otherwise, inflated
 * when it came with Content-Encoding: gzip.
 */

#include "ngx_http_consent.h"


static ngx_int_t ngx_http_consent_body_join(ngx_http_request_t *r,
    u_char **body, size_t *len);
static ngx_int_t ngx_http_consent_body_inflate(ngx_http_request_t *r,
    ngx_http_consent_ctx_t *ctx, ngx_http_consent_refusal_t *rf);


/*
 * ctx->body and ctx->body_len; otherwise the refusal the client gets
 * (rf->message from the request pool) and NGX_DECLINED
 */

ngx_int_t
ngx_http_consent_body(ngx_http_request_t *r, ngx_http_consent_ctx_t *ctx,
    ngx_http_consent_refusal_t *rf)
{
    ngx_http_consent_loc_conf_t  *clcf;

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_consent_module);

    if (ngx_http_consent_body_join(r, &ctx->body, &ctx->body_len) != NGX_OK) {
        return ngx_http_consent_refusal(r, rf, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                        "internal_error", "the request body "
                                        "could not be read");
    }

    if (ctx->body_len > clcf->max_body_size) {
        return ngx_http_consent_body_too_large(r, rf);
    }

    if (ctx->gzip) {
        return ngx_http_consent_body_inflate(r, ctx, rf);
    }

    return NGX_OK;
}


/* announced (Content-Length) or read: over consent_max_body_size */

ngx_int_t
ngx_http_consent_body_too_large(ngx_http_request_t *r,
    ngx_http_consent_refusal_t *rf)
{
    ngx_http_consent_loc_conf_t  *clcf;

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_consent_module);

    return ngx_http_consent_refusal(r, rf, NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                    "too_large", "request body exceeds %uz "
                                    "bytes", clcf->max_body_size);
}


/* Content-Encoding: none, identity or gzip (x-gzip) */

ngx_int_t
ngx_http_consent_body_encoding(ngx_http_request_t *r, ngx_uint_t *gzip)
{
    ngx_table_elt_t                   *h;
    ngx_http_consent_header_cursor_t   cursor;

    *gzip = 0;
    cursor.part = NULL;

    /* one header at most: stacked codings are not supported */
    h = ngx_http_consent_header_next(r, "content-encoding", 16, &cursor);

    if (h == NULL) {
        return NGX_OK;
    }

    if (ngx_http_consent_header_next(r, "content-encoding", 16, &cursor)) {
        return NGX_DECLINED;
    }

    if ((h->value.len == 4
         && ngx_strncasecmp(h->value.data, (u_char *) "gzip", 4) == 0)
        || (h->value.len == 6
            && ngx_strncasecmp(h->value.data, (u_char *) "x-gzip", 6) == 0))
    {
        *gzip = 1;
        return NGX_OK;
    }

    if (h->value.len == 8
        && ngx_strncasecmp(h->value.data, (u_char *) "identity", 8) == 0)
    {
        return NGX_OK;
    }

    return NGX_DECLINED;
}


/* the inflated body replaces the received one */

static ngx_int_t
ngx_http_consent_body_inflate(ngx_http_request_t *r,
    ngx_http_consent_ctx_t *ctx, ngx_http_consent_refusal_t *rf)
{
    ngx_int_t                     rc;
    ngx_str_t                     out, error;
    ngx_http_consent_loc_conf_t  *clcf;

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_consent_module);

    ngx_str_null(&error);

    rc = ngx_http_consent_inflate(r, ctx->body, ctx->body_len,
                                  clcf->max_body_size, &out, &error);

    switch (rc) {

    case NGX_OK:
        ctx->body = out.data;
        ctx->body_len = out.len;
        return NGX_OK;

    case NGX_DECLINED:
        return ngx_http_consent_refusal(r, rf, NGX_HTTP_BAD_REQUEST,
                                        "invalid_gzip",
                                        "invalid gzip body: %V", &error);

    case NGX_ERROR:
        return ngx_http_consent_refusal(r, rf, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                        "internal_error", "the gzip body "
                                        "could not be inflated");

    default:
        return ngx_http_consent_refusal(r, rf,
                                        NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                        "too_large", "request body inflates "
                                        "to more than %uz bytes",
                                        clcf->max_body_size);
    }
}


/* the body as one buffer: in place when nginx kept it in one */

static ngx_int_t
ngx_http_consent_body_join(ngx_http_request_t *r, u_char **body, size_t *len)
{
    u_char       *p;
    size_t        size;
    ssize_t       n;
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    *body = (u_char *) "";
    *len = 0;

    if (r->request_body == NULL || r->request_body->bufs == NULL) {
        return NGX_OK;
    }

    cl = r->request_body->bufs;

    if (cl->next == NULL && !cl->buf->in_file) {
        *body = cl->buf->pos;
        *len = cl->buf->last - cl->buf->pos;
        return NGX_OK;
    }

    /*
     * nginx keeps the part read with the headers apart (in header_in)
     * even with request_body_in_single_buf, but sizes the buffer for the
     * rest to hold it too: joined there, without a copy of the body.
     */
    b = r->request_body->buf;

    if (cl->next != NULL && cl->next->next == NULL && b != NULL
        && !cl->buf->in_file && !cl->next->buf->in_file
        && cl->next->buf->pos >= b->start && cl->next->buf->last <= b->end)
    {
        size = cl->buf->last - cl->buf->pos;
        p = cl->next->buf->pos;
        n = cl->next->buf->last - p;

        if ((size_t) (b->end - cl->next->buf->last) >= size) {
            ngx_memmove(p + size, p, n);
            ngx_memcpy(p, cl->buf->pos, size);

            *body = p;
            *len = size + n;
            return NGX_OK;
        }
    }

    size = 0;
    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        size += ngx_buf_size(cl->buf);
    }

    p = ngx_pnalloc(r->pool, size + 1);
    if (p == NULL) {
        return NGX_ERROR;
    }

    *body = p;
    *len = size;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        b = cl->buf;

        if (b->in_file) {
            /* a temp file nginx has just written: served from page cache */
            n = ngx_read_file(b->file, p, b->file_last - b->file_pos,
                              b->file_pos);

            if (n != b->file_last - b->file_pos) {
                ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                              "consent: cannot read request body from "
                              "temporary file \"%V\"", &b->file->name);
                return NGX_ERROR;
            }

            p += n;
            continue;
        }

        p = ngx_cpymem(p, b->pos, b->last - b->pos);
    }

    return NGX_OK;
}
