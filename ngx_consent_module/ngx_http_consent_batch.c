
/*
 * ngx_consent: batched delivery, the queues.  An accepted request's
 * events are copied, per destination, into an entry of that
 * destination's queue in this worker; a queue goes out as one
 * {"batch":[...]} POST (ngx_http_consent_batch_send.c) when it holds
 * "size" events, when its oldest is "flush" old, or at once while the
 * worker is exiting.  One batch per queue is in flight at a time, so the
 * destination sees its events in order; a failed batch is sent again
 * after an exponential backoff with jitter, up to "retries" times.
 */

#include "ngx_http_consent_batch.h"


#define NGX_HTTP_CONSENT_BATCH_BACKOFF      100     /* ms, the first */
#define NGX_HTTP_CONSENT_BATCH_BACKOFF_MAX  30000
#define NGX_HTTP_CONSENT_BATCH_EXIT_WAIT    30000   /* ms, then shutdown */


static char *ngx_http_consent_batch_param(ngx_conf_t *cf, ngx_str_t *v,
    ngx_http_consent_batch_conf_t *bc);
static char *ngx_http_consent_batch_bad(ngx_conf_t *cf, ngx_str_t *v,
    const char *what);
static ngx_http_consent_batch_queue_t *ngx_http_consent_batch_queue(
    ngx_http_request_t *r, ngx_http_consent_dest_conf_t *dest);
static ngx_http_consent_batch_entry_t *ngx_http_consent_batch_entry(
    ngx_http_request_t *r, ngx_http_consent_ctx_t *ctx, ngx_uint_t d,
    ngx_uint_t nevents);
static void ngx_http_consent_batch_push(ngx_http_consent_batch_queue_t *q,
    ngx_http_consent_batch_entry_t *en);
static void ngx_http_consent_batch_pick(ngx_http_consent_batch_queue_t *q);
static void ngx_http_consent_batch_handler(ngx_event_t *ev);
static ngx_msec_t ngx_http_consent_batch_backoff(ngx_uint_t tries);
static void ngx_http_consent_batch_drop(ngx_http_consent_batch_queue_t *q,
    ngx_uint_t nentries, ngx_uint_t why);
static void ngx_http_consent_batch_count(ngx_http_consent_batch_queue_t *q,
    ngx_uint_t what, ngx_int_t n);


/* this worker's queues and the memory they hold */
static ngx_http_consent_batch_queue_t  *ngx_http_consent_batch_queues;
static size_t                           ngx_http_consent_batch_bytes;
static ngx_msec_t                       ngx_http_consent_batch_exiting;


/* consent_delivery wait | background | batch [size=N] [flush=TIME] ... */

char *
ngx_http_consent_delivery_conf(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_consent_loc_conf_t *clcf = conf;

    ngx_str_t                      *value;
    ngx_uint_t                      i;
    ngx_http_consent_batch_conf_t  *bc;

    if (clcf->delivery != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;
    clcf->batch = NULL;

    if (ngx_strcmp(value[1].data, "batch") != 0) {
        if (ngx_strcmp(value[1].data, "wait") == 0) {
            clcf->delivery = NGX_HTTP_CONSENT_WAIT;

        } else if (ngx_strcmp(value[1].data, "background") == 0) {
            clcf->delivery = NGX_HTTP_CONSENT_BACKGROUND;

        } else {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid value \"%V\" in \"%V\" directive, "
                               "it must be \"wait\", \"background\" or "
                               "\"batch\"", &value[1], &cmd->name);
            return NGX_CONF_ERROR;
        }

        if (cf->args->nelts > 2) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\": only \"batch\" "
                               "takes parameters", &value[2]);
            return NGX_CONF_ERROR;
        }

        return NGX_CONF_OK;
    }

    bc = ngx_palloc(cf->pool, sizeof(ngx_http_consent_batch_conf_t));
    if (bc == NULL) {
        return NGX_CONF_ERROR;
    }

    bc->size = 100;
    bc->flush = 100;
    bc->retries = 5;
    bc->backlog = 16 * 1024 * 1024;

    for (i = 2; i < cf->args->nelts; i++) {
        if (ngx_http_consent_batch_param(cf, &value[i], bc) != NGX_CONF_OK) {
            return NGX_CONF_ERROR;
        }
    }

    if (ngx_http_consent_status_batch_used(cf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    clcf->delivery = NGX_HTTP_CONSENT_BATCH;
    clcf->batch = bc;

    return NGX_CONF_OK;
}


static char *
ngx_http_consent_batch_param(ngx_conf_t *cf, ngx_str_t *v,
    ngx_http_consent_batch_conf_t *bc)
{
    ssize_t     size;
    ngx_int_t   n;
    ngx_str_t   s;

    s.data = (u_char *) ngx_strchr(v->data, '=');

    if (s.data == NULL) {
        goto invalid;
    }

    s.data++;
    s.len = v->len - (s.data - v->data);

    if (ngx_strncmp(v->data, "size=", 5) == 0) {
        n = ngx_atoi(s.data, s.len);
        if (n < 1 || n > 10000) {
            return ngx_http_consent_batch_bad(cf, v, "a number from 1 to "
                                                     "10000");
        }

        bc->size = n;

    } else if (ngx_strncmp(v->data, "flush=", 6) == 0) {
        n = ngx_parse_time(&s, 0);
        if (n == NGX_ERROR || n < 1 || n > 60000) {
            return ngx_http_consent_batch_bad(cf, v, "a time from 1ms to "
                                                     "60s");
        }

        bc->flush = n;

    } else if (ngx_strncmp(v->data, "retries=", 8) == 0) {
        n = ngx_atoi(s.data, s.len);
        if (n == NGX_ERROR || n > 100) {
            return ngx_http_consent_batch_bad(cf, v, "a number from 0 to "
                                                     "100");
        }

        bc->retries = n;

    } else if (ngx_strncmp(v->data, "backlog=", 8) == 0) {
        size = ngx_parse_size(&s);
        if (size < 64 * 1024) {
            return ngx_http_consent_batch_bad(cf, v, "a size of at least "
                                                     "64k");
        }

        bc->backlog = size;

    } else {
        goto invalid;
    }

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid parameter \"%V\", expected \"size=\", "
                       "\"flush=\", \"retries=\" or \"backlog=\"", v);
    return NGX_CONF_ERROR;
}


static char *
ngx_http_consent_batch_bad(ngx_conf_t *cf, ngx_str_t *v, const char *what)
{
    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid parameter \"%V\" of \"consent_delivery "
                       "batch\", it must be %s", v, what);
    return NGX_CONF_ERROR;
}


/* an accepted request: its events, per destination, join the queues */

void
ngx_http_consent_batch_enqueue(ngx_http_request_t *r,
    ngx_http_consent_ctx_t *ctx)
{
    ngx_uint_t                       d, n, ndests;
    consent_result_t                *res;
    ngx_http_consent_batch_queue_t  *q;
    ngx_http_consent_batch_entry_t  *en;
    ngx_http_consent_dest_conf_t    *dests;
    ngx_http_consent_loc_conf_t     *clcf;
    ngx_http_consent_main_conf_t    *cmcf;

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_consent_module);
    cmcf = ngx_http_get_module_main_conf(r, ngx_http_consent_module);
    res = &ctx->result;
    ndests = clcf->policy.ndests;
    dests = ndests ? clcf->dests->elts : NULL;

    for (d = 0; d < ndests; d++) {
        n = consent_delivered(res, d);

        if (n == 0) {
            continue;
        }

        q = ngx_http_consent_batch_queue(r, &dests[d]);
        en = q ? ngx_http_consent_batch_entry(r, ctx, d, n) : NULL;

        if (en != NULL) {
            ngx_http_consent_batch_push(q, en);
            continue;
        }

        ngx_http_consent_status_batch(cmcf->counters, dests[d].counters,
                                      NGX_HTTP_CONSENT_BATCH_DROP_BACKLOG, n);
        ngx_http_consent_status_batch(cmcf->counters, dests[d].counters,
                                      NGX_HTTP_CONSENT_BATCH_FAILED, n);

        if (q != NULL && !q->dropping) {
            q->dropping = 1;
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "consent: destination \"%V\": batch backlog "
                          "full (%uz bytes), events dropped",
                          &dests[d].name, ngx_http_consent_batch_bytes);
        }
    }
}


/* the worker's queue of a destination, for this request's server */

static ngx_http_consent_batch_queue_t *
ngx_http_consent_batch_queue(ngx_http_request_t *r,
    ngx_http_consent_dest_conf_t *dest)
{
    ngx_http_core_srv_conf_t        *cscf;
    ngx_http_consent_batch_queue_t  *q;
    ngx_http_consent_loc_conf_t     *clcf;
    ngx_http_consent_main_conf_t    *cmcf;

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_consent_module);
    cscf = ngx_http_get_module_srv_conf(r, ngx_http_core_module);

    for (q = ngx_http_consent_batch_queues; q; q = q->next) {
        if (q->dest == dest && q->server == cscf->ctx
            && q->conf == clcf->batch)
        {
            return q;
        }
    }

    q = ngx_calloc(sizeof(ngx_http_consent_batch_queue_t),
                   r->connection->log);
    if (q == NULL) {
        return NULL;
    }

    cmcf = ngx_http_get_module_main_conf(r, ngx_http_consent_module);

    q->dest = dest;
    q->server = cscf->ctx;
    q->conf = clcf->batch;
    q->counters = cmcf->counters;
    q->max_bytes = clcf->max_body_size;
    q->last = &q->head;

    q->event.handler = ngx_http_consent_batch_handler;
    q->event.data = q;
    q->event.log = ngx_cycle->log;

    q->next = ngx_http_consent_batch_queues;
    ngx_http_consent_batch_queues = q;

    return q;
}


/*
 * Destination d's events of the request, copied: the events as they
 * would go in the request's own {"batch":[...]} (consent_split()), the
 * envelope members after them, the Authorization; NULL past the backlog.
 */

static ngx_http_consent_batch_entry_t *
ngx_http_consent_batch_entry(ngx_http_request_t *r,
    ngx_http_consent_ctx_t *ctx, ngx_uint_t d, ngx_uint_t nevents)
{
    u_char                          *p;
    size_t                           i, n, k, elen, tlen, size;
    ngx_str_t                        auth;
    consent_slice_t                 *sl;
    ngx_http_consent_batch_entry_t  *en;
    ngx_http_consent_dest_conf_t    *dests;
    ngx_http_consent_loc_conf_t     *clcf;

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_consent_module);
    dests = clcf->dests->elts;

    sl = ngx_http_consent_scratch_slices(consent_split_max(&ctx->result));
    if (sl == NULL) {
        return NULL;
    }

    /* "{"batch":[", events..., "]", ("," member) per extra, "}" */
    n = consent_split(&ctx->result, d, ctx->body, sl);
    k = n - 2 - 2 * ctx->result.nextra;

    elen = 0;
    for (i = 1; i < k; i++) {
        elen += sl[i].len;
    }

    tlen = 0;
    for (i = k + 1; i < n - 1; i++) {
        tlen += sl[i].len;
    }

    ngx_str_null(&auth);

    if (r->headers_in.authorization
        && !(dests[d].drop & NGX_HTTP_CONSENT_BATCH_DROP_AUTH))
    {
        auth = r->headers_in.authorization->value;
    }

    size = sizeof(ngx_http_consent_batch_entry_t) + elen + tlen + auth.len;

    if (ngx_http_consent_batch_bytes + size > clcf->batch->backlog) {
        return NULL;
    }

    en = ngx_alloc(size, r->connection->log);
    if (en == NULL) {
        return NULL;
    }

    p = (u_char *) (en + 1);

    en->events.data = p;
    for (i = 1; i < k; i++) {
        p = ngx_cpymem(p, sl[i].data, sl[i].len);
    }

    en->tail.data = p;
    for (i = k + 1; i < n - 1; i++) {
        p = ngx_cpymem(p, sl[i].data, sl[i].len);
    }

    en->auth.data = p;
    ngx_memcpy(p, auth.data, auth.len);

    en->next = NULL;
    en->queued = ngx_current_msec;
    en->nevents = nevents;
    en->events.len = elen;
    en->tail.len = tlen;
    en->auth.len = auth.len;
    en->size = size;

    return en;
}


static void
ngx_http_consent_batch_push(ngx_http_consent_batch_queue_t *q,
    ngx_http_consent_batch_entry_t *en)
{
    *q->last = en;
    q->last = &en->next;
    q->nevents += en->nevents;
    q->bytes += en->size;
    q->dropping = 0;
    ngx_http_consent_batch_bytes += en->size;

    ngx_http_consent_batch_count(q, NGX_HTTP_CONSENT_BATCH_QUEUED_EVENTS,
                                 en->nevents);
    ngx_http_consent_batch_count(q, NGX_HTTP_CONSENT_BATCH_QUEUED_BYTES,
                                 en->size);

    if (q->send != NULL || q->tries) {
        return;             /* its end or its backoff timer goes on */
    }

    if (q->nevents >= q->conf->size || q->bytes >= q->max_bytes
        || ngx_exiting)
    {
        if (q->event.timer_set) {
            ngx_del_timer(&q->event);
        }

        if (!q->event.posted) {
            ngx_post_event(&q->event, &ngx_posted_events);
        }

        return;
    }

    if (!q->event.timer_set && !q->event.posted) {
        ngx_add_timer(&q->event, q->conf->flush);
    }
}


/* the entries of the next batch: same envelope and Authorization */

static void
ngx_http_consent_batch_pick(ngx_http_consent_batch_queue_t *q)
{
    size_t                           len;
    ngx_uint_t                       n, k;
    ngx_http_consent_batch_entry_t  *en, *next;

    en = q->head;
    n = en->nevents;
    len = en->events.len + en->tail.len;
    k = 1;

    for (next = en->next; next; next = next->next) {
        if (n + next->nevents > q->conf->size
            || len + next->events.len + 1 > q->max_bytes
            || next->tail.len != en->tail.len
            || next->auth.len != en->auth.len
            || ngx_memcmp(next->tail.data, en->tail.data, en->tail.len) != 0
            || ngx_memcmp(next->auth.data, en->auth.data, en->auth.len) != 0)
        {
            break;
        }

        n += next->nevents;
        len += next->events.len + 1;
        k++;
    }

    q->nentries = k;
    q->nbatch = n;
}


/* flush time, a retry's backoff, or the queue's turn after a batch */

static void
ngx_http_consent_batch_handler(ngx_event_t *ev)
{
    ngx_msec_t                       age;
    ngx_http_consent_batch_queue_t  *q;

    q = ev->data;

    if (q->send != NULL || q->head == NULL) {
        return;
    }

    if (q->tries == 0) {
        age = ngx_current_msec - q->head->queued;

        if (q->nevents < q->conf->size && q->bytes < q->max_bytes
            && age < q->conf->flush && !ngx_exiting)
        {
            ngx_add_timer(ev, q->conf->flush - age);
            return;
        }

        ngx_http_consent_batch_pick(q);
    }

    if (ngx_http_consent_batch_send(q) != NGX_OK) {
        ngx_http_consent_batch_done(q, 0, 0);
    }
}


static ngx_msec_t
ngx_http_consent_batch_backoff(ngx_uint_t tries)
{
    ngx_msec_t  ms;

    ms = NGX_HTTP_CONSENT_BATCH_BACKOFF_MAX;

    if (tries < 10) {
        ms = ngx_min(ms, (ngx_msec_t) NGX_HTTP_CONSENT_BATCH_BACKOFF
                         << (tries - 1));
    }

    /* "equal jitter": half fixed, half random */
    return ms / 2 + (ngx_msec_t) ngx_random() % (ms / 2 + 1);
}


/* the batch at the head got its answer: 2xx (ok), or a failure */

void
ngx_http_consent_batch_done(ngx_http_consent_batch_queue_t *q,
    ngx_uint_t ok, ngx_msec_t elapsed)
{
    ngx_msec_t  delay;

    q->send = NULL;

    if (ok) {
        ngx_http_consent_batch_count(q, NGX_HTTP_CONSENT_BATCH_SENT, 1);
        ngx_http_consent_batch_count(q, NGX_HTTP_CONSENT_BATCH_DELIVERED,
                                     q->nbatch);
        ngx_http_consent_batch_drop(q, q->nentries, NGX_HTTP_CONSENT_BATCH_N);
        goto next;
    }

    q->tries++;
    delay = ngx_http_consent_batch_backoff(q->tries);

    if (ngx_exiting && ngx_http_consent_batch_exiting == 0) {
        ngx_http_consent_batch_exiting = ngx_current_msec;
    }

    if (q->tries > q->conf->retries) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "consent: destination \"%V\" (%V): batch of %ui "
                      "events dropped after %ui tries",
                      &q->dest->name, &q->dest->uri, q->nbatch, q->tries);
        ngx_http_consent_batch_drop(q, q->nentries,
                                    NGX_HTTP_CONSENT_BATCH_DROP_RETRIES);
        goto next;
    }

    if (ngx_exiting
        && ngx_current_msec + delay - ngx_http_consent_batch_exiting
           > NGX_HTTP_CONSENT_BATCH_EXIT_WAIT)
    {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "consent: destination \"%V\" (%V): worker exiting, "
                      "batch of %ui events dropped after %ui tries",
                      &q->dest->name, &q->dest->uri, q->nbatch, q->tries);
        ngx_http_consent_batch_drop(q, q->nentries,
                                    NGX_HTTP_CONSENT_BATCH_DROP_SHUTDOWN);
        goto next;
    }

    ngx_http_consent_batch_count(q, NGX_HTTP_CONSENT_BATCH_RETRIES, 1);
    ngx_add_timer(&q->event, delay);

    return;

next:

    q->tries = 0;

    if (q->head != NULL && !q->event.posted) {
        if (q->event.timer_set) {
            ngx_del_timer(&q->event);
        }

        ngx_post_event(&q->event, &ngx_posted_events);
    }
}


/* the first n entries leave the queue: sent, or dropped and counted */

static void
ngx_http_consent_batch_drop(ngx_http_consent_batch_queue_t *q, ngx_uint_t n,
    ngx_uint_t why)
{
    ngx_uint_t                       events;
    ngx_http_consent_batch_entry_t  *en;

    while (n-- && q->head != NULL) {
        en = q->head;
        q->head = en->next;

        if (q->head == NULL) {
            q->last = &q->head;
        }

        events = en->nevents;
        q->nevents -= events;
        q->bytes -= en->size;
        ngx_http_consent_batch_bytes -= en->size;

        ngx_http_consent_batch_count(q, NGX_HTTP_CONSENT_BATCH_QUEUED_EVENTS,
                                     - (ngx_int_t) events);
        ngx_http_consent_batch_count(q, NGX_HTTP_CONSENT_BATCH_QUEUED_BYTES,
                                     - (ngx_int_t) en->size);

        if (why != NGX_HTTP_CONSENT_BATCH_N) {
            ngx_http_consent_batch_count(q, why, events);
            ngx_http_consent_batch_count(q, NGX_HTTP_CONSENT_BATCH_FAILED,
                                         events);
        }

        ngx_free(en);
    }
}


static void
ngx_http_consent_batch_count(ngx_http_consent_batch_queue_t *q,
    ngx_uint_t what, ngx_int_t n)
{
    ngx_http_consent_status_batch(q->counters, q->dest->counters, what, n);
}


/* the worker ends: what is still queued is lost, and counted */

void
ngx_http_consent_batch_exit(ngx_cycle_t *cycle)
{
    ngx_http_consent_batch_queue_t  *q, *next;

    for (q = ngx_http_consent_batch_queues; q; q = next) {
        next = q->next;

        if (q->nevents) {
            ngx_log_error(NGX_LOG_ERR, cycle->log, 0,
                          "consent: destination \"%V\" (%V): worker exits "
                          "with %ui events queued, dropped",
                          &q->dest->name, &q->dest->uri, q->nevents);
        }

        ngx_http_consent_batch_drop(q, (ngx_uint_t) -1,
                                    NGX_HTTP_CONSENT_BATCH_DROP_SHUTDOWN);

        if (q->event.timer_set) {
            ngx_del_timer(&q->event);
        }

        if (q->event.posted) {
            ngx_delete_posted_event(&q->event);
        }

        ngx_free(q);
    }

    ngx_http_consent_batch_queues = NULL;
}
