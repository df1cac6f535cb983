
/*
 * ngx_consent: the ingest handler.  It only sequences a request: the
 * body (ngx_http_consent_body.c), parsing and consent (the core, with
 * the Lua hooks of ngx_http_consent_lua.c), stored consent
 * (ngx_http_consent_profile.c, which may wait for the store), delivery
 * (ngx_http_consent_delivery.c) and the reply (ngx_http_consent_reply.c).
 */

#include "ngx_http_consent.h"


#define NGX_HTTP_CONSENT_LOOP_DETECTED  508


static void ngx_http_consent_body_handler(ngx_http_request_t *r);
static void ngx_http_consent_deliver_step(ngx_http_request_t *r);
static ngx_int_t ngx_http_consent_process(ngx_http_request_t *r,
    ngx_http_consent_ctx_t *ctx, ngx_http_consent_refusal_t *rf);
static void ngx_http_consent_wake(ngx_http_request_t *r);


ngx_int_t
ngx_http_consent_handler(ngx_http_request_t *r)
{
    ngx_int_t                     rc;
    ngx_str_t                     msg;
    ngx_uint_t                    gzip;
    consent_endpoint_e            ep;
    ngx_http_consent_ctx_t       *ctx;
    ngx_http_consent_refusal_t    rf;
    ngx_http_consent_loc_conf_t  *clcf;

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_consent_module);

    if (ngx_http_consent_loop(r)) {
        return NGX_HTTP_CONSENT_LOOP_DETECTED;
    }

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
        (void) ngx_http_consent_body_too_large(r, &rf);
        return ngx_http_consent_refuse(r, rf.status, rf.code, &rf.message);
    }

    if (ngx_http_consent_body_encoding(r, &gzip) != NGX_OK) {
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
    ctx->background = (clcf->delivery != NGX_HTTP_CONSENT_WAIT);
    ctx->batch = (clcf->delivery == NGX_HTTP_CONSENT_BATCH);
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
    ngx_int_t                    rc;
    ngx_http_consent_ctx_t      *ctx;
    ngx_http_consent_refusal_t   rf;

    ctx = ngx_http_get_module_ctx(r, ngx_http_consent_module);

    if (ngx_http_consent_body(r, ctx, &rf) != NGX_OK
        || ngx_http_consent_process(r, ctx, &rf) != NGX_OK)
    {
        ngx_http_finalize_request(r, ngx_http_consent_refused(r, &rf));
        return;
    }

    /* the stored consent of the events that carry none: may wait */
    rc = ngx_http_consent_profile(r, ctx, ngx_http_consent_deliver_step);

    if (rc == NGX_AGAIN) {
        return;
    }

    if (rc != NGX_OK) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    ngx_http_consent_deliver_step(r);
}


/* deliver, then reply: at once, or when the last delivery is done */

static void
ngx_http_consent_deliver_step(ngx_http_request_t *r)
{
    ngx_http_consent_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_consent_module);

    if (ctx->result.naccepted == 0) {
        /* a batch whose every event was rejected */
        ngx_http_finalize_request(r, ngx_http_consent_reply(r, ctx));
        return;
    }

    if (ctx->batch) {
        /* queued for ngx_http_consent_batch.c; what it drops it counts */
        ngx_http_consent_batch_enqueue(r, ctx);
        ngx_http_finalize_request(r, ngx_http_consent_reply(r, ctx));
        return;
    }

    if (ngx_http_consent_deliver(r, ctx) != NGX_OK) {
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


/* parse, validate, resolve consent (hooks included) and route */

static ngx_int_t
ngx_http_consent_process(ngx_http_request_t *r, ngx_http_consent_ctx_t *ctx,
    ngx_http_consent_refusal_t *rf)
{
    consent_code_e                code;
    consent_result_t             *res;
    ngx_http_consent_loc_conf_t  *clcf;

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_consent_module);
    res = &ctx->result;

    /* the tape is the worker's scratch until the fan-out is built */
    ngx_http_consent_scratch_reset();

    code = consent_process_tape(&clcf->policy, ctx->endpoint, ctx->body,
                                ctx->body_len, ngx_http_consent_palloc,
                                r->pool, ngx_http_consent_scratch_tape, r,
                                clcf->hook ? ngx_http_consent_lua_event
                                           : NULL,
                                r, res);

    if (clcf->hook) {
        ngx_http_consent_lua_done(r, ctx);
    }

    switch (code) {

    case CONSENT_OK:
        return NGX_OK;

    case CONSENT_NO_MEMORY:
        return ngx_http_consent_refusal(r, rf, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                        "internal_error", "out of memory");

    case CONSENT_INVALID_JSON:
        if (res->syntax) {
            return ngx_http_consent_refusal(r, rf, NGX_HTTP_BAD_REQUEST,
                                            "invalid_json",
                                            "invalid JSON at byte %uz: %s",
                                            res->offset, res->reason);
        }

        return ngx_http_consent_refusal(r, rf, NGX_HTTP_BAD_REQUEST,
                                        "invalid_json", "%s", res->reason);

    case CONSENT_TOO_LARGE:
        if (ctx->endpoint == CONSENT_EP_BATCH) {
            return ngx_http_consent_refusal(r, rf, NGX_HTTP_BAD_REQUEST,
                                            "too_large",
                                            "batch exceeds %ui events",
                                            clcf->max_events);
        }

        return ngx_http_consent_refusal(r, rf, NGX_HTTP_BAD_REQUEST,
                                        "too_large", "event exceeds %uz bytes",
                                        clcf->max_event_size);

    case CONSENT_LUA_REJECTED:
        if (ctx->reasons && ctx->reasons[0].len) {
            rf->status = NGX_HTTP_BAD_REQUEST;
            rf->code = consent_code_name(code);
            rf->message = ctx->reasons[0];
            return NGX_DECLINED;
        }

        /* fall through */

    default:
        return ngx_http_consent_refusal(r, rf, NGX_HTTP_BAD_REQUEST,
                                        consent_code_name(code), "%s",
                                        consent_code_message(code));
    }
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
