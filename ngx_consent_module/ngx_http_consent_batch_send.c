
/*
 * ngx_consent: batched delivery, one send.  nginx has no request-less
 * upstream call, so a batch goes out as a POST subrequest of a fake
 * request on a fake connection (no socket, fd -1), as lua-nginx-module
 * runs ngx.timer.at callbacks: the destination's location (proxy_pass,
 * its headers, timeouts, TLS, keepalive) works as for a client's
 * request, and nothing of a client request is involved.  The fake
 * request lives until its subrequest ends, then both are freed.
 */

#include "ngx_http_consent_batch.h"


static ngx_connection_t *ngx_http_consent_batch_connection(
    ngx_http_consent_batch_queue_t *q);
static void ngx_http_consent_batch_close(ngx_connection_t *c);
static ngx_chain_t *ngx_http_consent_batch_body(ngx_http_request_t *r,
    ngx_http_consent_batch_queue_t *q, off_t *len);
static ngx_list_t *ngx_http_consent_batch_headers(ngx_http_request_t *r,
    ngx_http_consent_batch_queue_t *q);
static void ngx_http_consent_batch_finish(ngx_http_request_t *r);
static u_char *ngx_http_consent_batch_log(ngx_log_t *log, u_char *buf,
    size_t len);


static struct sockaddr_in  ngx_http_consent_batch_addr;


ngx_int_t
ngx_http_consent_batch_send(ngx_http_consent_batch_queue_t *q)
{
    off_t                           len;
    ngx_list_t                     *headers;
    ngx_chain_t                    *body;
    ngx_connection_t               *c;
    ngx_http_request_t             *r, *sr;
    ngx_http_request_body_t        *rb;
    ngx_http_post_subrequest_t     *ps;
    ngx_http_consent_batch_send_t  *s;

    c = ngx_http_consent_batch_connection(q);
    if (c == NULL) {
        return NGX_ERROR;
    }

    r = ngx_http_create_request(c);
    if (r == NULL) {
        ngx_http_consent_batch_close(c);
        return NGX_ERROR;
    }

    c->data = r;
    r->logged = 1;              /* no access log line for the fake one */

    s = ngx_pcalloc(r->pool, sizeof(ngx_http_consent_batch_send_t));
    ps = ngx_palloc(r->pool, sizeof(ngx_http_post_subrequest_t));
    rb = ngx_pcalloc(r->pool, sizeof(ngx_http_request_body_t));
    body = ngx_http_consent_batch_body(r, q, &len);
    headers = ngx_http_consent_batch_headers(r, q);

    if (s == NULL || ps == NULL || rb == NULL || body == NULL
        || headers == NULL)
    {
        goto failed;
    }

    s->queue = q;
    s->connection = c;
    s->request = r;
    s->start = ngx_current_msec;
    ngx_http_set_ctx(r, s, ngx_http_consent_module);

    ps->handler = ngx_http_consent_batch_sent;
    ps->data = s;

    if (ngx_http_subrequest(r, &q->dest->uri, NULL, &sr, ps,
                            NGX_HTTP_SUBREQUEST_WAITED)
        != NGX_OK)
    {
        goto failed;
    }

    ngx_http_consent_post_body(sr, headers, rb, body, len);

    r->write_event_handler = ngx_http_consent_batch_finish;
    q->send = s;

    /* may end at once (a location answering by itself): c is gone then */
    ngx_http_run_posted_requests(c);

    return NGX_OK;

failed:

    ngx_http_free_request(r, 0);
    ngx_http_consent_batch_close(c);

    return NGX_ERROR;
}


/* a connection without socket for the fake request, as lua's timers */

static ngx_connection_t *
ngx_http_consent_batch_connection(ngx_http_consent_batch_queue_t *q)
{
    ngx_log_t               *log;
    ngx_connection_t        *c, *saved;
    ngx_http_log_ctx_t      *ctx;
    ngx_http_connection_t   *hc;

    /* a valid fd (0) keeps ngx_get_connection() happy; files[] unchanged */
    saved = ngx_cycle->files ? ngx_cycle->files[0] : NULL;
    c = ngx_get_connection(0, ngx_cycle->log);
    if (ngx_cycle->files) {
        ngx_cycle->files[0] = saved;
    }

    if (c == NULL) {
        return NULL;
    }

    c->fd = (ngx_socket_t) -1;
    c->number = ngx_atomic_fetch_add(ngx_connection_counter, 1);

    c->pool = ngx_create_pool(512, ngx_cycle->log);
    if (c->pool == NULL) {
        ngx_http_consent_batch_close(c);
        return NULL;
    }

    log = ngx_palloc(c->pool, sizeof(ngx_log_t));
    ctx = ngx_pcalloc(c->pool, sizeof(ngx_http_log_ctx_t));
    hc = ngx_pcalloc(c->pool, sizeof(ngx_http_connection_t));
    if (log == NULL || ctx == NULL || hc == NULL) {
        ngx_http_consent_batch_close(c);
        return NULL;
    }

    *log = *ngx_cycle->log;
    log->connection = c->number;
    log->handler = ngx_http_consent_batch_log;
    log->data = ctx;
    log->action = NULL;
    ctx->connection = c;

    c->log = log;
    c->log_error = NGX_ERROR_INFO;
    c->read->log = log;
    c->write->log = log;

    hc->conf_ctx = q->server;
    c->data = hc;

    /* the loopback address, for variables such as $remote_addr */
    if (ngx_http_consent_batch_addr.sin_family == 0) {
        ngx_http_consent_batch_addr.sin_family = AF_INET;
        ngx_http_consent_batch_addr.sin_addr.s_addr =
                                                  htonl(INADDR_LOOPBACK);
    }

    c->sockaddr = (struct sockaddr *) &ngx_http_consent_batch_addr;
    c->socklen = sizeof(struct sockaddr_in);
    c->local_sockaddr = c->sockaddr;
    c->local_socklen = c->socklen;
    ngx_str_set(&c->addr_text, "127.0.0.1");

    /* nothing to add to epoll, no socket options to set */
    c->read->active = 1;
    c->write->active = 1;
    c->write->ready = 1;
    c->tcp_nodelay = NGX_TCP_NODELAY_DISABLED;
    c->tcp_nopush = NGX_TCP_NOPUSH_DISABLED;

    return c;
}


static void
ngx_http_consent_batch_close(ngx_connection_t *c)
{
    ngx_pool_t        *pool;
    ngx_connection_t  *saved;

    c->destroyed = 1;

    if (c->read->timer_set) {
        ngx_del_timer(c->read);
    }

    if (c->write->timer_set) {
        ngx_del_timer(c->write);
    }

    if (c->read->posted) {
        ngx_delete_posted_event(c->read);
    }

    if (c->write->posted) {
        ngx_delete_posted_event(c->write);
    }

    pool = c->pool;
    c->pool = NULL;

    if (pool) {
        ngx_destroy_pool(pool);
    }

    saved = ngx_cycle->files ? ngx_cycle->files[0] : NULL;
    c->fd = 0;
    ngx_free_connection(c);
    c->fd = (ngx_socket_t) -1;
    if (ngx_cycle->files) {
        ngx_cycle->files[0] = saved;
    }
}


/* {"batch":[ev,...,ev]<envelope>}, the entries' bytes, not copied */

static ngx_chain_t *
ngx_http_consent_batch_body(ngx_http_request_t *r,
    ngx_http_consent_batch_queue_t *q, off_t *len)
{
    ngx_buf_t                       *b;
    ngx_uint_t                       i;
    ngx_chain_t                     *chain, **last;
    ngx_http_consent_batch_entry_t  *en;

    static u_char  open[] = "{\"batch\":[", comma[] = ",", close[] = "]";
    static u_char  end[] = "}";

    chain = NULL;
    last = &chain;
    *len = 0;

    if (ngx_http_consent_add(r, &last, open, sizeof(open) - 1, len) == NULL) {
        return NULL;
    }

    en = q->head;

    for (i = 0; i < q->nentries; i++, en = en->next) {
        if ((i && ngx_http_consent_add(r, &last, comma, 1, len) == NULL)
            || ngx_http_consent_add(r, &last, en->events.data,
                                    en->events.len, len)
               == NULL)
        {
            return NULL;
        }
    }

    en = q->head;

    if (ngx_http_consent_add(r, &last, close, 1, len) == NULL
        || (en->tail.len
            && ngx_http_consent_add(r, &last, en->tail.data, en->tail.len,
                                    len)
               == NULL))
    {
        return NULL;
    }

    b = ngx_http_consent_add(r, &last, end, 1, len);
    if (b == NULL) {
        return NULL;
    }

    b->last_buf = 1;

    return chain;
}


/*
 * A batch mixes clients: it carries no client's User-Agent or address,
 * only the Authorization its entries share (the write key), unless the
 * destination drops it.
 */

static ngx_list_t *
ngx_http_consent_batch_headers(ngx_http_request_t *r,
    ngx_http_consent_batch_queue_t *q)
{
    ngx_list_t  *list;

    static ngx_str_t  ct = ngx_string("Content-Type");
    static ngx_str_t  ct_lc = ngx_string("content-type");
    static ngx_str_t  json = ngx_string("application/json");
    static ngx_str_t  ua = ngx_string("User-Agent");
    static ngx_str_t  ua_lc = ngx_string("user-agent");
    static ngx_str_t  ua_value = ngx_string("ngx_consent batch");
    static ngx_str_t  auth = ngx_string("Authorization");
    static ngx_str_t  auth_lc = ngx_string("authorization");

    list = ngx_list_create(r->pool, 4, sizeof(ngx_table_elt_t));
    if (list == NULL) {
        return NULL;
    }

    if (ngx_http_consent_header_push(list, &ct, &ct_lc, &json) != NGX_OK
        || ngx_http_consent_header_push(list, &ua, &ua_lc, &ua_value)
           != NGX_OK)
    {
        return NULL;
    }

    if (q->head->auth.len
        && ngx_http_consent_header_push(list, &auth, &auth_lc,
                                        &q->head->auth)
           != NGX_OK)
    {
        return NULL;
    }

    return list;
}


/*
 * The subrequest's end.  Every outcome is kept here and the fake request
 * woken; an error is not passed on (nginx would terminate the fake
 * request as it would a client's).
 */

ngx_int_t
ngx_http_consent_batch_sent(ngx_http_request_t *sr, void *data,
    ngx_int_t rc)
{
    ngx_http_consent_batch_send_t *s = data;

    ngx_uint_t  status, failed;

    sr->discard_body = 0;       /* in case it ended before preaccess */

    if (rc == NGX_AGAIN) {
        return rc;
    }

    status = ngx_http_consent_outcome(sr, rc, &failed);

    if (!s->done || (failed && !s->failed)) {
        s->done = 1;
        s->failed = failed;
        s->status = status;
    }

    return NGX_OK;
}


/* the fake request, woken when its subrequest is done */

static void
ngx_http_consent_batch_finish(ngx_http_request_t *r)
{
    ngx_uint_t                       ok;
    ngx_msec_t                       elapsed;
    ngx_connection_t                *c;
    ngx_http_consent_batch_send_t   *s;
    ngx_http_consent_batch_queue_t  *q;

    s = ngx_http_get_module_ctx(r, ngx_http_consent_module);

    if (!s->done) {
        return;
    }

    q = s->queue;
    c = r->connection;
    ok = !s->failed;
    elapsed = ngx_current_msec - s->start;

    ngx_http_consent_status_batch_latency(q->counters, q->dest->counters,
                                          elapsed);

    if (!ok) {
        ngx_log_error(NGX_LOG_ERR, c->log, 0,
                      "consent: destination \"%V\" (%V) failed with "
                      "status %ui, batch of %ui events not delivered "
                      "(try %ui of %ui)", &q->dest->name, &q->dest->uri,
                      s->status, q->nbatch, q->tries + 1,
                      q->conf->retries + 1);
    }

    ngx_http_free_request(r, 0);
    ngx_http_consent_batch_close(c);

    ngx_http_consent_batch_done(q, ok, elapsed);
}


static u_char *
ngx_http_consent_batch_log(ngx_log_t *log, u_char *buf, size_t len)
{
    u_char              *p;
    ngx_http_request_t  *r;
    ngx_http_log_ctx_t  *ctx;

    p = buf;

    if (log->action) {
        p = ngx_snprintf(p, len, " while %s", log->action);
        len -= p - buf;
    }

    ctx = log->data;
    r = ctx->current_request;

    if (r != NULL && r != r->main) {
        return ngx_snprintf(p, len, ", consent batch to \"%V\"", &r->uri);
    }

    return ngx_snprintf(p, len, ", consent batch");
}
