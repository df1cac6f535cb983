
/*
 * ngx_consent: delivery.  One POST subrequest per destination with
 * events, its body a buffer chain of slices of the request body; the
 * outcome of each, logged once when it fails; the destinations' response
 * bodies kept from the client.
 */

#include "ngx_http_consent.h"


static ngx_chain_t *ngx_http_consent_batch_chain(ngx_http_request_t *r,
    ngx_http_consent_ctx_t *ctx, ngx_uint_t d, off_t *len);
static ngx_int_t ngx_http_consent_delivered(ngx_http_request_t *sr,
    void *data, ngx_int_t rc);
static ngx_uint_t ngx_http_consent_cut_short(ngx_http_request_t *sr);
static void ngx_http_consent_log_failed(ngx_http_request_t *r,
    ngx_http_consent_delivery_t *dl);
static ngx_int_t ngx_http_consent_body_filter(ngx_http_request_t *r,
    ngx_chain_t *in);
static ngx_uint_t ngx_http_consent_is_delivery(ngx_http_request_t *r);


static ngx_http_output_body_filter_pt  ngx_http_next_body_filter;


static ngx_str_t  ngx_http_consent_post = ngx_string("POST");


ngx_int_t
ngx_http_consent_deliver(ngx_http_request_t *r, ngx_http_consent_ctx_t *ctx)
{
    off_t                          len;
    ngx_uint_t                     d, ndests;
    ngx_list_t                    *headers;
    ngx_chain_t                   *chain;
    ngx_http_request_t            *sr;
    consent_result_t              *res;
    ngx_http_request_body_t       *rb;
    ngx_http_post_subrequest_t    *ps;
    ngx_http_consent_delivery_t   *dl;
    ngx_http_consent_dest_conf_t  *dests;
    ngx_http_consent_loc_conf_t   *clcf;

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_consent_module);
    res = &ctx->result;
    ndests = clcf->policy.ndests;

    if (ndests == 0) {
        return NGX_OK;
    }

    dests = clcf->dests->elts;

    /* rewritten events (hooks, profiles): written out once for all */
    if (consent_split_rewrites(res, ctx->body, ngx_http_consent_palloc,
                               r->pool)
        != 0)
    {
        return NGX_ERROR;
    }

    ctx->deliveries = ngx_pcalloc(r->pool,
                                  ndests * sizeof(ngx_http_consent_delivery_t));
    if (ctx->deliveries == NULL) {
        return NGX_ERROR;
    }

    ctx->ndeliveries = ndests;

    for (d = 0; d < ndests; d++) {
        dl = &ctx->deliveries[d];
        dl->request = r;
        dl->conf = &dests[d];

        dl->nevents = consent_delivered(res, d);

        if (dl->nevents == 0) {
            dl->done = 1;
            continue;
        }

        chain = ngx_http_consent_batch_chain(r, ctx, d, &len);
        if (chain == NULL) {
            return NGX_ERROR;
        }

        ps = ngx_palloc(r->pool, sizeof(ngx_http_post_subrequest_t));
        rb = ngx_pcalloc(r->pool, sizeof(ngx_http_request_body_t));
        if (ps == NULL || rb == NULL) {
            return NGX_ERROR;
        }

        ps->handler = ngx_http_consent_delivered;
        ps->data = dl;
        dl->start = ngx_current_msec;

        if (ngx_http_subrequest(r, &dests[d].uri, NULL, &sr, ps,
                                ctx->background
                                ? NGX_HTTP_SUBREQUEST_BACKGROUND
                                : NGX_HTTP_SUBREQUEST_WAITED)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        headers = ngx_http_consent_headers(r, ctx, &dests[d]);
        if (headers == NULL) {
            return NGX_ERROR;
        }

        ngx_http_consent_post_body(sr, headers, rb, chain, len);

        ctx->pending++;
    }

    return NGX_OK;
}


/* a destination subrequest becomes a POST of body, with headers */

void
ngx_http_consent_post_body(ngx_http_request_t *sr, ngx_list_t *headers,
    ngx_http_request_body_t *rb, ngx_chain_t *body, off_t len)
{
    sr->headers_in.headers = *headers;

    /*
     * client_max_body_size guards against what clients send: this body
     * is the module's, bounded by consent_max_body_size and the hooks'
     * rewrites, so a rewrite that grows a batch past it must not make a
     * valid request fail forever.  nginx skips the check for a request
     * whose body it discards (a subrequest reads none); the flag is
     * cleared once the location is found, before nginx could finalize
     * the subrequest with it, which would linger on the client's
     * connection.
     */
    sr->discard_body = 1;

    rb->bufs = body;
    sr->request_body = rb;
    sr->method = NGX_HTTP_POST;
    sr->method_name = ngx_http_consent_post;
    sr->headers_in.content_length_n = len;
    sr->headers_in.chunked = 0;
}


ngx_buf_t *
ngx_http_consent_add(ngx_http_request_t *r, ngx_chain_t ***last, u_char *pos,
    size_t size, off_t *len)
{
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    b = ngx_calloc_buf(r->pool);
    cl = ngx_alloc_chain_link(r->pool);
    if (b == NULL || cl == NULL) {
        return NULL;
    }

    /* start == pos: an upstream retry rewinds to start */
    b->start = pos;
    b->pos = pos;
    b->last = pos + size;
    b->end = b->last;
    b->memory = 1;

    cl->buf = b;
    cl->next = NULL;
    **last = cl;
    *last = &cl->next;
    *len += size;

    return b;
}


static ngx_chain_t *
ngx_http_consent_batch_chain(ngx_http_request_t *r,
    ngx_http_consent_ctx_t *ctx, ngx_uint_t d, off_t *len)
{
    size_t            i, n;
    ngx_buf_t        *b;
    ngx_chain_t      *chain, **last;
    consent_slice_t  *sl;

    sl = ngx_http_consent_scratch_slices(consent_split_max(&ctx->result));
    if (sl == NULL) {
        return NULL;
    }

    n = consent_split(&ctx->result, d, ctx->body, sl);

    chain = NULL;
    last = &chain;
    *len = 0;
    b = NULL;

    for (i = 0; i < n; i++) {
        b = ngx_http_consent_add(r, &last, (u_char *) sl[i].data, sl[i].len,
                                 len);
        if (b == NULL) {
            return NULL;
        }
    }

    b->last_buf = 1;

    return chain;
}


static ngx_int_t
ngx_http_consent_delivered(ngx_http_request_t *sr, void *data, ngx_int_t rc)
{
    ngx_http_consent_delivery_t *dl = data;

    ngx_uint_t               status, failed;
    ngx_http_consent_ctx_t  *ctx;

    sr->discard_body = 0;       /* in case it ended before preaccess */

    if (rc == NGX_AGAIN) {
        return rc;
    }

    status = ngx_http_consent_outcome(sr, rc, &failed);

    /*
     * called again for an error page (a waited subrequest only, so a
     * timeout logged 504 in background mode showed 502 in wait mode):
     * the first failure and its status stand
     */
    if (dl->done) {
        if (failed && !dl->failed) {
            dl->failed = 1;
            dl->status = status;
            ngx_http_consent_log_failed(dl->request, dl);
        }

        return rc;
    }

    dl->status = status;
    dl->failed = failed;
    dl->done = 1;
    dl->elapsed = ngx_current_msec - dl->start;
    if (dl->failed) {
        ngx_http_consent_log_failed(dl->request, dl);
    }

    ctx = ngx_http_get_module_ctx(dl->request, ngx_http_consent_module);
    ctx->pending--;

    if (!ctx->background) {
        return rc;
    }

    /* the client has had its 200: the counters tell */

    if (ctx->counted) {
        ngx_http_consent_status_delivery(dl->request, ctx,
                                         dl - ctx->deliveries);
    }

    return rc;
}


static void
ngx_http_consent_log_failed(ngx_http_request_t *r,
    ngx_http_consent_delivery_t *dl)
{
    ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                  "consent: destination \"%V\" (%V) failed with "
                  "status %ui, %ui events not delivered",
                  &dl->conf->name, &dl->conf->uri, dl->status,
                  dl->nevents);
}


/* a destination subrequest's status, and whether it failed */

ngx_uint_t
ngx_http_consent_outcome(ngx_http_request_t *sr, ngx_int_t rc,
    ngx_uint_t *failed)
{
    ngx_uint_t  status;

    status = (rc >= NGX_HTTP_SPECIAL_RESPONSE) ? (ngx_uint_t) rc
             : sr->headers_out.status;

    if (rc == NGX_OK && ngx_http_consent_cut_short(sr)) {
        status = NGX_HTTP_BAD_GATEWAY;
    }

    *failed = (rc == NGX_ERROR || status < 200 || status > 299);

    return status;
}


/*
 * An upstream that closes in the middle of its response body ends the
 * subrequest with rc 0 and its 2xx status (nginx has already sent the
 * header, so it can only stop): nginx's own test for a complete body
 * tells.
 */

static ngx_uint_t
ngx_http_consent_cut_short(ngx_http_request_t *sr)
{
    ngx_event_pipe_t     *p;
    ngx_http_upstream_t  *u;

    u = sr->upstream;

    if (u == NULL) {
        return 0;
    }

    if (u->buffering) {
        p = u->pipe;

        return p != NULL && !p->upstream_done
               && !(p->upstream_eof && p->length == -1);
    }

    return u->length > 0;
}


/* the destinations' response bodies are not the client's business */

static ngx_int_t
ngx_http_consent_body_filter(ngx_http_request_t *r, ngx_chain_t *in)
{
    ngx_chain_t  *cl;

    if (!ngx_http_consent_is_delivery(r)) {
        return ngx_http_next_body_filter(r, in);
    }

    for (cl = in; cl; cl = cl->next) {
        cl->buf->pos = cl->buf->last;
        cl->buf->file_pos = cl->buf->file_last;
    }

    return NGX_OK;
}


/* past find-config: see ngx_http_consent_deliver() */

static ngx_int_t
ngx_http_consent_preaccess(ngx_http_request_t *r)
{
    if (ngx_http_consent_is_delivery(r)) {
        r->discard_body = 0;
    }

    return NGX_DECLINED;
}


/* a destination's subrequest: a client's, or a queued batch's */

static ngx_uint_t
ngx_http_consent_is_delivery(ngx_http_request_t *r)
{
    return r != r->main && r->post_subrequest != NULL
           && (r->post_subrequest->handler == ngx_http_consent_delivered
               || r->post_subrequest->handler == ngx_http_consent_batch_sent);
}


ngx_int_t
ngx_http_consent_delivery_init(ngx_conf_t *cf)
{
    ngx_http_handler_pt        *h;
    ngx_http_core_main_conf_t  *cmcf;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_PREACCESS_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_consent_preaccess;

    ngx_http_next_body_filter = ngx_http_top_body_filter;
    ngx_http_top_body_filter = ngx_http_consent_body_filter;

    return NGX_OK;
}
