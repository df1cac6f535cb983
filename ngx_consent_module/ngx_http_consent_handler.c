
/*
 * ngx_consent: the ingest handler.  Reads the body, runs the core,
 * fans the accepted events out as one POST subrequest per destination
 * (a buffer chain of slices of the body) and answers once every
 * destination has.
 */

#include "ngx_http_consent.h"


#define NGX_HTTP_CONSENT_REPLY_EVENT  160   /* bytes per rejected event */


static void ngx_http_consent_body_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_consent_read_body(ngx_http_request_t *r,
    u_char **body, size_t *len);
static ngx_int_t ngx_http_consent_encoding(ngx_http_request_t *r,
    ngx_uint_t *gzip);
static ngx_int_t ngx_http_consent_inflate_body(ngx_http_request_t *r,
    u_char **body, size_t *len);
static void *ngx_http_consent_alloc(void *pool, size_t size);
static ngx_int_t ngx_http_consent_fan_out(ngx_http_request_t *r,
    ngx_http_consent_ctx_t *ctx);
static ngx_chain_t *ngx_http_consent_batch_chain(ngx_http_request_t *r,
    ngx_http_consent_ctx_t *ctx, ngx_uint_t d, off_t *len);
static ngx_int_t ngx_http_consent_delivered(ngx_http_request_t *sr,
    void *data, ngx_int_t rc);
static ngx_uint_t ngx_http_consent_cut_short(ngx_http_request_t *sr);
static void ngx_http_consent_wake(ngx_http_request_t *r);
static void ngx_http_consent_log_failed(ngx_http_request_t *r,
    ngx_http_consent_delivery_t *dl);
static ngx_int_t ngx_http_consent_reply(ngx_http_request_t *r,
    ngx_http_consent_ctx_t *ctx);
static ngx_int_t ngx_http_consent_telemetry(ngx_http_request_t *r);
static ngx_int_t ngx_http_consent_refuse(ngx_http_request_t *r,
    ngx_uint_t status, const char *code, ngx_str_t *message);
static ngx_int_t ngx_http_consent_error(ngx_http_request_t *r,
    ngx_uint_t status, const char *code, ngx_str_t *message);
static ngx_int_t ngx_http_consent_send(ngx_http_request_t *r,
    ngx_uint_t status, u_char *body, size_t len);
static ngx_int_t ngx_http_consent_cors(ngx_http_request_t *r);
static ngx_int_t ngx_http_consent_preflight(ngx_http_request_t *r);
static u_char *ngx_http_consent_json_str(u_char *p, const u_char *s,
    size_t len);
static ngx_int_t ngx_http_consent_body_filter(ngx_http_request_t *r,
    ngx_chain_t *in);


static ngx_http_output_body_filter_pt  ngx_http_next_body_filter;


static ngx_str_t  ngx_http_consent_post = ngx_string("POST");


ngx_int_t
ngx_http_consent_handler(ngx_http_request_t *r)
{
    ngx_int_t                     rc;
    ngx_str_t                     msg;
    ngx_uint_t                    gzip;
    consent_endpoint_e            ep;
    ngx_http_consent_ctx_t       *ctx;
    ngx_http_consent_loc_conf_t  *clcf;

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_consent_module);

    if (r->method == NGX_HTTP_OPTIONS) {
        return ngx_http_consent_preflight(r);
    }

    if (r->method != NGX_HTTP_POST) {
        ngx_str_set(&msg, "only POST is accepted");
        return ngx_http_consent_refuse(r, NGX_HTTP_NOT_ALLOWED,
                                       "method_not_allowed", &msg);
    }

    ep = consent_endpoint((const char *) r->uri.data, r->uri.len);

    if (ep == CONSENT_EP_NONE) {
        ngx_str_set(&msg, "unknown endpoint, expected .../track, identify, "
                          "page, screen, group, alias, batch or import "
                          "(or t, i, p, s, g, a, b, m)");
        return ngx_http_consent_refuse(r, NGX_HTTP_NOT_FOUND,
                                       "unknown_endpoint", &msg);
    }

    if (ep == CONSENT_EP_TELEMETRY) {
        return ngx_http_consent_telemetry(r);
    }

    if (r->headers_in.content_length_n > (off_t) clcf->max_body_size) {
        msg.data = ngx_pnalloc(r->pool, 64);
        if (msg.data == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        msg.len = ngx_sprintf(msg.data, "request body exceeds %uz bytes",
                              clcf->max_body_size) - msg.data;

        return ngx_http_consent_refuse(r, NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                       "too_large", &msg);
    }

    if (ngx_http_consent_encoding(r, &gzip) != NGX_OK) {
        ngx_str_set(&msg, "Content-Encoding must be gzip or identity");
        return ngx_http_consent_refuse(r, NGX_HTTP_UNSUPPORTED_MEDIA_TYPE,
                                       "unsupported_encoding", &msg);
    }

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_consent_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->endpoint = ep;
    ctx->gzip = gzip;
    ctx->background = (clcf->delivery == NGX_HTTP_CONSENT_BACKGROUND);
    ngx_http_set_ctx(r, ctx, ngx_http_consent_module);

    /* the core scans one contiguous buffer */
    r->request_body_in_single_buf = 1;

    rc = ngx_http_read_client_request_body(r, ngx_http_consent_body_handler);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
}


static void
ngx_http_consent_body_handler(ngx_http_request_t *r)
{
    u_char                       *body;
    size_t                        len;
    ngx_int_t                     rc;
    ngx_str_t                     msg;
    consent_code_e                code;
    ngx_http_consent_ctx_t       *ctx;
    ngx_http_consent_loc_conf_t  *clcf;

    ctx = ngx_http_get_module_ctx(r, ngx_http_consent_module);
    clcf = ngx_http_get_module_loc_conf(r, ngx_http_consent_module);

    rc = ngx_http_consent_read_body(r, &body, &len);

    if (rc != NGX_OK) {
        ngx_http_finalize_request(r, rc);
        return;
    }

    msg.data = ngx_pnalloc(r->pool, 128);
    if (msg.data == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    if (len > clcf->max_body_size) {
        msg.len = ngx_sprintf(msg.data, "request body exceeds %uz bytes",
                              clcf->max_body_size) - msg.data;
        ngx_http_finalize_request(r,
            ngx_http_consent_error(r, NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                   "too_large", &msg));
        return;
    }

    if (ctx->gzip) {
        if (ngx_http_consent_inflate_body(r, &body, &len) != NGX_OK) {
            return;
        }
    }

    ctx->body = body;
    ctx->body_len = len;

    /* the tape is the worker's scratch until the fan-out is built */
    ngx_http_consent_scratch_reset();

    code = consent_process_tape(&clcf->policy, ctx->endpoint, body, len,
                                ngx_http_consent_alloc, r->pool,
                                ngx_http_consent_scratch_tape, r,
                                clcf->hook ? ngx_http_consent_lua_event
                                           : NULL,
                                r, &ctx->result);

    if (clcf->hook) {
        ngx_http_consent_lua_done(r, ctx);
    }

    switch (code) {

    case CONSENT_OK:
        break;

    case CONSENT_NO_MEMORY:
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;

    case CONSENT_INVALID_JSON:
        if (ctx->result.syntax) {
            msg.len = ngx_snprintf(msg.data, 128,
                                   "invalid JSON at byte %uz: %s",
                                   ctx->result.offset, ctx->result.reason)
                      - msg.data;

        } else {
            msg.len = ngx_snprintf(msg.data, 128, "%s", ctx->result.reason)
                      - msg.data;
        }

        break;

    case CONSENT_TOO_LARGE:
        if (ctx->endpoint == CONSENT_EP_BATCH) {
            msg.len = ngx_sprintf(msg.data, "batch exceeds %ui events",
                                  clcf->max_events) - msg.data;
        } else {
            msg.len = ngx_sprintf(msg.data, "event exceeds %uz bytes",
                                  clcf->max_event_size) - msg.data;
        }

        break;

    case CONSENT_LUA_REJECTED:
        if (ctx->reasons && ctx->reasons[0].len) {
            msg = ctx->reasons[0];
            break;
        }

        /* fall through */

    default:
        msg.len = ngx_snprintf(msg.data, 128, "%s",
                               consent_code_message(code)) - msg.data;
        break;
    }

    if (code != CONSENT_OK) {
        ngx_http_finalize_request(r,
            ngx_http_consent_error(r, NGX_HTTP_BAD_REQUEST,
                                   consent_code_name(code), &msg));
        return;
    }

    if (ctx->result.naccepted == 0) {
        /* a batch whose every event was rejected */
        ngx_http_finalize_request(r, ngx_http_consent_reply(r, ctx));
        return;
    }

    rc = ngx_http_consent_fan_out(r, ctx);

    if (rc != NGX_OK) {
        if (ctx->pending == 0) {
            ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
            return;
        }

        /* answer 500 once the subrequests already started are done */
        ctx->internal_error = 1;
    }

    /* background: the deliveries go on after the reply, as mirror's do */
    if (ctx->pending == 0 || ctx->background) {
        ngx_http_finalize_request(r, ngx_http_consent_reply(r, ctx));
        return;
    }

    r->write_event_handler = ngx_http_consent_wake;
}


/* Content-Encoding: none, identity or gzip (x-gzip) */

static ngx_int_t
ngx_http_consent_encoding(ngx_http_request_t *r, ngx_uint_t *gzip)
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


/*
 * The inflated body replaces *body.  Otherwise the request is finalized
 * here with the client's error reply and NGX_DONE returned.
 */

static ngx_int_t
ngx_http_consent_inflate_body(ngx_http_request_t *r, u_char **body,
    size_t *len)
{
    ngx_int_t                     rc;
    ngx_str_t                     out, error, msg;
    ngx_uint_t                    status;
    const char                   *code;
    ngx_http_consent_loc_conf_t  *clcf;

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_consent_module);

    ngx_str_null(&error);

    rc = ngx_http_consent_inflate(r, *body, *len, clcf->max_body_size, &out,
                                  &error);

    if (rc == NGX_OK) {
        *body = out.data;
        *len = out.len;
        return NGX_OK;
    }

    msg.data = ngx_pnalloc(r->pool, error.len + 64);

    if (rc == NGX_ERROR || msg.data == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return NGX_DONE;
    }

    if (rc == NGX_DECLINED) {
        status = NGX_HTTP_BAD_REQUEST;
        code = "invalid_gzip";
        msg.len = ngx_sprintf(msg.data, "invalid gzip body: %V", &error)
                  - msg.data;

    } else {
        status = NGX_HTTP_REQUEST_ENTITY_TOO_LARGE;
        code = "too_large";
        msg.len = ngx_sprintf(msg.data, "request body inflates to more "
                              "than %uz bytes", clcf->max_body_size)
                  - msg.data;
    }

    ngx_http_finalize_request(r, ngx_http_consent_error(r, status, code,
                                                        &msg));
    return NGX_DONE;
}


/* the body as one buffer: in place when nginx kept it in one */

static ngx_int_t
ngx_http_consent_read_body(ngx_http_request_t *r, u_char **body, size_t *len)
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
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
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
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

            p += n;
            continue;
        }

        p = ngx_cpymem(p, b->pos, b->last - b->pos);
    }

    return NGX_OK;
}


static void *
ngx_http_consent_alloc(void *pool, size_t size)
{
    return ngx_palloc(pool, size);
}


static ngx_int_t
ngx_http_consent_fan_out(ngx_http_request_t *r, ngx_http_consent_ctx_t *ctx)
{
    off_t                          len;
    ngx_uint_t                     d, e, nevents, ndests;
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

        nevents = 0;
        for (e = 0; e < res->nevents; e++) {
            if (res->outcome[e * ndests + d] == CONSENT_DELIVER) {
                nevents++;
            }
        }

        dl->nevents = nevents;

        if (nevents == 0) {
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

        headers = ngx_http_consent_headers(r, &dests[d]);
        if (headers == NULL) {
            return NGX_ERROR;
        }

        sr->headers_in.headers = *headers;

        rb->bufs = chain;
        sr->request_body = rb;
        sr->method = NGX_HTTP_POST;
        sr->method_name = ngx_http_consent_post;
        sr->headers_in.content_length_n = len;
        sr->headers_in.chunked = 0;

        ctx->pending++;
    }

    return NGX_OK;
}


static ngx_buf_t *
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

    ngx_http_consent_ctx_t  *ctx;

    if (rc == NGX_AGAIN) {
        return rc;
    }

    dl->status = (rc >= NGX_HTTP_SPECIAL_RESPONSE) ? (ngx_uint_t) rc
                 : sr->headers_out.status;

    if (rc == NGX_OK && ngx_http_consent_cut_short(sr)) {
        dl->status = NGX_HTTP_BAD_GATEWAY;
    }

    /* called again for an error page: failure is sticky */
    if (rc == NGX_ERROR || rc >= NGX_HTTP_SPECIAL_RESPONSE
        || dl->status < 200 || dl->status > 299)
    {
        dl->failed = 1;
    }

    if (dl->done) {
        return rc;
    }

    dl->done = 1;
    dl->elapsed = ngx_current_msec - dl->start;
    ctx = ngx_http_get_module_ctx(dl->request, ngx_http_consent_module);
    ctx->pending--;

    if (!ctx->background) {
        return rc;
    }

    /* the client has had its 200: the log and the counters tell */

    if (dl->failed) {
        ngx_http_consent_log_failed(dl->request, dl);
    }

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


static void
ngx_http_consent_wake(ngx_http_request_t *r)
{
    ngx_http_consent_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_consent_module);

    if (ctx->pending || ctx->replied) {
        return;
    }

    ngx_http_finalize_request(r, ngx_http_consent_reply(r, ctx));
}


/* the final reply: rejected events, failed destinations */

static ngx_int_t
ngx_http_consent_reply(ngx_http_request_t *r, ngx_http_consent_ctx_t *ctx)
{
    u_char                       *buf, *p;
    size_t                        size;
    ngx_uint_t                    e, d, nrejected, nfailed, nsent, status;
    consent_event_t              *ev;
    consent_result_t             *res;
    const char                   *s;
    ngx_http_consent_delivery_t  *dl;
    ngx_http_consent_loc_conf_t  *clcf;

    ctx->replied = 1;
    res = &ctx->result;

    if (ctx->internal_error) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_consent_module);

    nrejected = res->nevents - res->naccepted;
    nfailed = 0;
    nsent = 0;

    size = sizeof("{\"success\":false,\"code\":\"delivery_failed\","
                  "\"message\":\"\",\"failed\":[],\"rejected\":[]}") + 128;

    for (d = 0; d < ctx->ndeliveries; d++) {
        dl = &ctx->deliveries[d];
        nsent += dl->nevents ? 1 : 0;

        if (dl->failed) {
            nfailed++;
            size += dl->conf->name.len * 6 + 3;
            ngx_http_consent_log_failed(r, dl);
        }
    }

    size += nrejected * NGX_HTTP_CONSENT_REPLY_EVENT;

    if (ctx->reasons) {
        for (e = 0; e < res->nevents; e++) {
            size += ctx->reasons[e].len * 6;
        }
    }

    buf = ngx_pnalloc(r->pool, size);
    if (buf == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = buf;

    if (nfailed) {
        status = NGX_HTTP_BAD_GATEWAY;
        ctx->error = "delivery_failed";
        p = ngx_sprintf(p, "{\"success\":false,\"code\":\"delivery_failed\","
                           "\"message\":\"%ui of %ui destinations failed\","
                           "\"failed\":[", nfailed, nsent);

        for (d = 0; d < ctx->ndeliveries; d++) {
            dl = &ctx->deliveries[d];
            if (dl->failed) {
                if (p[-1] != '[') {
                    *p++ = ',';
                }

                p = ngx_http_consent_json_str(p, dl->conf->name.data,
                                              dl->conf->name.len);
            }
        }

        *p++ = ']';

    } else if (res->naccepted == 0) {
        status = NGX_HTTP_BAD_REQUEST;
        ctx->error = "no_valid_events";
        p = ngx_sprintf(p, "{\"success\":false,\"code\":\"no_valid_events\","
                           "\"message\":\"every event in the batch was "
                           "rejected\"");

        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "consent: request refused: no_valid_events, "
                      "%ui events rejected", nrejected);

    } else {
        status = NGX_HTTP_OK;
        p = ngx_cpymem(p, "{\"success\":true", 15);
    }

    if (nrejected) {
        p = ngx_cpymem(p, ",\"rejected\":[", 13);

        for (e = 0; e < res->nevents; e++) {
            ev = &res->events[e];

            if (ev->code == CONSENT_OK) {
                continue;
            }

            if (p[-1] != '[') {
                *p++ = ',';
            }

            if (ev->code == CONSENT_TOO_LARGE) {
                p = ngx_sprintf(p, "{\"index\":%ui,\"code\":\"too_large\","
                                   "\"message\":\"event exceeds %uz bytes\"}",
                                e, clcf->max_event_size);
                continue;
            }

            p = ngx_sprintf(p, "{\"index\":%ui,\"code\":\"%s\",\"message\":",
                            e, consent_code_name(ev->code));

            if (ev->code == CONSENT_LUA_REJECTED && ctx->reasons
                && ctx->reasons[e].len)
            {
                p = ngx_http_consent_json_str(p, ctx->reasons[e].data,
                                              ctx->reasons[e].len);

            } else {
                s = consent_code_message(ev->code);
                p = ngx_http_consent_json_str(p, (u_char *) s, ngx_strlen(s));
            }

            *p++ = '}';
        }

        *p++ = ']';
    }

    *p++ = '}';

    return ngx_http_consent_send(r, status, buf, p - buf);
}


/*
 * analytics.js posts its own delivery metrics to .../m: they are about
 * the client, not the user, so they are counted and forwarded nowhere
 */

static ngx_int_t
ngx_http_consent_telemetry(ngx_http_request_t *r)
{
    ngx_int_t         rc;
    static ngx_str_t  ok = ngx_string("{\"success\":true}");

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    ngx_http_consent_status_telemetry(r);

    return ngx_http_consent_send(r, NGX_HTTP_OK, ok.data, ok.len);
}


/* a refusal before the body is read: discard it, keep the connection */

static ngx_int_t
ngx_http_consent_refuse(ngx_http_request_t *r, ngx_uint_t status,
    const char *code, ngx_str_t *message)
{
    ngx_int_t  rc;

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    return ngx_http_consent_error(r, status, code, message);
}


static ngx_int_t
ngx_http_consent_error(ngx_http_request_t *r, ngx_uint_t status,
    const char *code, ngx_str_t *message)
{
    u_char  *buf, *p;

    ngx_http_consent_status_error(r, code);

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "consent: request refused: %s: %V", code, message);

    buf = ngx_pnalloc(r->pool, message->len * 6 + ngx_strlen(code) + 64);
    if (buf == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_sprintf(buf, "{\"success\":false,\"code\":\"%s\",\"message\":",
                    code);
    p = ngx_http_consent_json_str(p, message->data, message->len);
    *p++ = '}';

    return ngx_http_consent_send(r, status, buf, p - buf);
}


static ngx_int_t
ngx_http_consent_send(ngx_http_request_t *r, ngx_uint_t status, u_char *body,
    size_t len)
{
    ngx_int_t     rc;
    ngx_buf_t    *b;
    ngx_chain_t   out;

    r->headers_out.status = status;
    r->headers_out.content_length_n = len;
    ngx_str_set(&r->headers_out.content_type, "application/json");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;

    if (ngx_http_consent_cors(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->pos = body;
    b->last = body + len;
    b->memory = 1;
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    return ngx_http_output_filter(r, &out);
}


static ngx_int_t
ngx_http_consent_add_header(ngx_http_request_t *r, const char *key,
    ngx_str_t *value)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    h->key.len = ngx_strlen(key);
    h->key.data = (u_char *) key;
    h->value = *value;
#if (nginx_version >= 1023000)
    h->next = NULL;
#endif

    return NGX_OK;
}


static ngx_int_t
ngx_http_consent_cors(ngx_http_request_t *r)
{
    ngx_str_t                          *o, vary, any;
    ngx_uint_t                          i;
    ngx_table_elt_t                    *origin;
    ngx_http_consent_loc_conf_t        *clcf;
    ngx_http_consent_header_cursor_t    cursor;

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_consent_module);

    if (clcf->cors == NGX_HTTP_CONSENT_CORS_OFF) {
        return NGX_OK;
    }

    if (clcf->cors == NGX_HTTP_CONSENT_CORS_ANY) {
        ngx_str_set(&any, "*");
        return ngx_http_consent_add_header(r, "Access-Control-Allow-Origin",
                                           &any);
    }

    ngx_str_set(&vary, "Origin");
    if (ngx_http_consent_add_header(r, "Vary", &vary) != NGX_OK) {
        return NGX_ERROR;
    }

    cursor.part = NULL;
    origin = ngx_http_consent_header_next(r, "origin", 6, &cursor);

    if (origin == NULL) {
        return NGX_OK;
    }

    o = clcf->cors_origins->elts;
    for (i = 0; i < clcf->cors_origins->nelts; i++) {
        if (o[i].len == origin->value.len
            && ngx_strncmp(o[i].data, origin->value.data, o[i].len) == 0)
        {
            return ngx_http_consent_add_header(r,
                                               "Access-Control-Allow-Origin",
                                               &origin->value);
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_consent_preflight(ngx_http_request_t *r)
{
    ngx_int_t                     rc;
    ngx_str_t                     v;
    ngx_http_consent_loc_conf_t  *clcf;

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_consent_module);

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    r->headers_out.status = NGX_HTTP_NO_CONTENT;
    r->headers_out.content_length_n = 0;
    r->header_only = 1;

    if (clcf->cors == NGX_HTTP_CONSENT_CORS_OFF) {
        return ngx_http_send_header(r);
    }

    if (ngx_http_consent_cors(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_str_set(&v, "POST, OPTIONS");
    if (ngx_http_consent_add_header(r, "Access-Control-Allow-Methods", &v)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_str_set(&v, "Content-Type, Authorization, Content-Encoding");
    if (ngx_http_consent_add_header(r, "Access-Control-Allow-Headers", &v)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_str_set(&v, "86400");
    if (ngx_http_consent_add_header(r, "Access-Control-Max-Age", &v)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_send_header(r);
}


/* writes s as a JSON string; p must have room for len * 6 + 2 */

static u_char *
ngx_http_consent_json_str(u_char *p, const u_char *s, size_t len)
{
    *p++ = '"';
    p = (u_char *) ngx_escape_json(p, (u_char *) s, len);
    *p++ = '"';

    return p;
}


/* the destinations' response bodies are not the client's business */

static ngx_int_t
ngx_http_consent_body_filter(ngx_http_request_t *r, ngx_chain_t *in)
{
    ngx_chain_t  *cl;

    if (r == r->main || r->post_subrequest == NULL
        || r->post_subrequest->handler != ngx_http_consent_delivered)
    {
        return ngx_http_next_body_filter(r, in);
    }

    for (cl = in; cl; cl = cl->next) {
        cl->buf->pos = cl->buf->last;
        cl->buf->file_pos = cl->buf->file_last;
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_consent_filter_init(ngx_conf_t *cf)
{
    ngx_http_next_body_filter = ngx_http_top_body_filter;
    ngx_http_top_body_filter = ngx_http_consent_body_filter;

    return NGX_OK;
}
