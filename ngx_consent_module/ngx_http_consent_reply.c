
/*
 * ngx_consent: what the client is told.  The final reply (rejected
 * events, failed destinations), refusals, telemetry, CORS and preflight;
 * and, for an ingest request nginx itself ends with an error (a body it
 * could not read), the same JSON instead of nginx's HTML page.
 */

#include "ngx_http_consent.h"


#define NGX_HTTP_CONSENT_REPLY_EVENT  160   /* bytes per rejected event */


static u_char *ngx_http_consent_json_error(u_char *p, const char *code,
    ngx_str_t *message);
static ngx_int_t ngx_http_consent_cors(ngx_http_request_t *r);
static ngx_int_t ngx_http_consent_reply_header_filter(ngx_http_request_t *r);
static ngx_int_t ngx_http_consent_reply_body_filter(ngx_http_request_t *r,
    ngx_chain_t *in);


static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;
static ngx_http_output_body_filter_pt    ngx_http_next_body_filter;


/* nginx's own error statuses for an ingest request, as our codes */
static struct {
    ngx_uint_t   status;
    const char  *code;
    const char  *message;
} ngx_http_consent_nginx_errors[] = {
    { NGX_HTTP_BAD_REQUEST, "invalid_body",
      "the request body is malformed (HTTP framing)" },
    { NGX_HTTP_REQUEST_TIME_OUT, "body_timeout",
      "the request body did not arrive in time" },
    { NGX_HTTP_REQUEST_ENTITY_TOO_LARGE, "too_large",
      "request body exceeds client_max_body_size" },
    { 0, "bad_request", "the request could not be read" }
};


/* the final reply: rejected events, failed destinations */

ngx_int_t
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

    if (ctx->profiled) {
        p = ngx_sprintf(p, ",\"profiled\":%ui", ctx->profiled);
    }

    if (ctx->profile_failed) {
        p = ngx_sprintf(p, ",\"profile_failed\":%ui", ctx->profile_failed);
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

ngx_int_t
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

ngx_int_t
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


ngx_int_t
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

    p = ngx_http_consent_json_error(buf, code, message);

    return ngx_http_consent_send(r, status, buf, p - buf);
}


/* {"success":false,...}; p must have room for message->len * 6 + 64 */

static u_char *
ngx_http_consent_json_error(u_char *p, const char *code, ngx_str_t *message)
{
    p = ngx_sprintf(p, "{\"success\":false,\"code\":\"%s\",\"message\":",
                    code);
    p = ngx_http_consent_json_str(p, message->data, message->len);
    *p++ = '}';

    return p;
}


ngx_int_t
ngx_http_consent_send(ngx_http_request_t *r, ngx_uint_t status, u_char *body,
    size_t len)
{
    ngx_int_t                rc;
    ngx_buf_t               *b;
    ngx_chain_t              out;
    ngx_http_consent_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_consent_module);
    if (ctx != NULL) {
        ctx->json = 1;
    }

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
    ngx_str_t  name;

    name.len = ngx_strlen(key);
    name.data = (u_char *) key;

    return ngx_http_consent_header_push(&r->headers_out.headers, &name, NULL,
                                        value);
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


ngx_int_t
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


/*
 * A refusal for the client: status, code and a message formatted into
 * the request pool.  Returns NGX_DECLINED, what the steps return.
 */

ngx_int_t
ngx_http_consent_refusal(ngx_http_request_t *r, ngx_http_consent_refusal_t *rf,
    ngx_uint_t status, const char *code, const char *fmt, ...)
{
    u_char   *p;
    va_list   args;

    rf->status = status;
    rf->code = code;

    p = ngx_pnalloc(r->pool, NGX_HTTP_CONSENT_MESSAGE_LEN);
    if (p == NULL) {
        ngx_str_set(&rf->message, "out of memory");
        return NGX_DECLINED;
    }

    va_start(args, fmt);
    rf->message.len = ngx_vslprintf(p, p + NGX_HTTP_CONSENT_MESSAGE_LEN, fmt,
                                    args) - p;
    va_end(args);

    rf->message.data = p;

    return NGX_DECLINED;
}


/* the reply to a request the module could not process */

ngx_int_t
ngx_http_consent_refused(ngx_http_request_t *r, ngx_http_consent_refusal_t *rf)
{
    return ngx_http_consent_error(r, rf->status, rf->code, &rf->message);
}


static ngx_int_t
ngx_http_consent_reply_header_filter(ngx_http_request_t *r)
{
    ngx_uint_t               i;
    ngx_str_t                msg;
    ngx_http_consent_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_consent_module);

    if (r != r->main || ctx == NULL || ctx->json
        || r->headers_out.status < NGX_HTTP_BAD_REQUEST)
    {
        return ngx_http_next_header_filter(r);
    }

    /* an nginx error page for an ingest request: ours instead */

    for (i = 0; ngx_http_consent_nginx_errors[i].status; i++) {
        if (ngx_http_consent_nginx_errors[i].status
            == r->headers_out.status)
        {
            break;
        }
    }

    if (r->headers_out.status >= NGX_HTTP_INTERNAL_SERVER_ERROR) {
        ctx->error = "internal_error";
        ngx_str_set(&msg, "internal error, see the error log");

    } else {
        ngx_http_consent_status_error(r, ngx_http_consent_nginx_errors[i].code);
        msg.data = (u_char *) ngx_http_consent_nginx_errors[i].message;
        msg.len = ngx_strlen(msg.data);
    }

    ctx->json = 1;

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "consent: request refused: %s: %V", ctx->error, &msg);

    ctx->page.data = ngx_pnalloc(r->pool, msg.len * 6 + 64);
    if (ctx->page.data == NULL) {
        return NGX_ERROR;
    }

    ctx->page.len = ngx_http_consent_json_error(ctx->page.data, ctx->error,
                                                &msg)
                    - ctx->page.data;

    ngx_str_set(&r->headers_out.content_type, "application/json");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;
    r->headers_out.content_length_n = ctx->page.len;

    if (r->headers_out.content_length) {
        r->headers_out.content_length->hash = 0;
        r->headers_out.content_length = NULL;
    }

    ngx_http_clear_accept_ranges(r);
    ngx_http_clear_last_modified(r);
    ngx_http_clear_etag(r);

    if (ngx_http_consent_cors(r) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_next_header_filter(r);
}


/* the HTML page goes, the JSON of the header filter takes its place */

static ngx_int_t
ngx_http_consent_reply_body_filter(ngx_http_request_t *r, ngx_chain_t *in)
{
    ngx_buf_t               *b;
    ngx_uint_t               last;
    ngx_chain_t             *cl, out;
    ngx_http_consent_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_consent_module);

    if (r != r->main || ctx == NULL || ctx->page.data == NULL) {
        return ngx_http_next_body_filter(r, in);
    }

    last = 0;

    for (cl = in; cl; cl = cl->next) {
        last |= cl->buf->last_buf;
        cl->buf->pos = cl->buf->last;
        cl->buf->file_pos = cl->buf->file_last;
    }

    if (!last) {
        return NGX_OK;
    }

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->pos = ctx->page.data;
    b->last = ctx->page.data + ctx->page.len;
    b->memory = 1;
    b->last_buf = 1;

    ctx->page.data = NULL;

    out.buf = b;
    out.next = NULL;

    return ngx_http_next_body_filter(r, &out);
}


ngx_int_t
ngx_http_consent_reply_init(ngx_conf_t *cf)
{
    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_consent_reply_header_filter;

    ngx_http_next_body_filter = ngx_http_top_body_filter;
    ngx_http_top_body_filter = ngx_http_consent_reply_body_filter;

    return NGX_OK;
}
