
/*
 * ngx_consent: counting.  The counters live in one shared memory zone,
 * so every worker adds to the same numbers and a reload (same zone
 * size) keeps them; consent_status serves them
 * (ngx_http_consent_status_show.c).  A request is counted when its
 * reply header goes out (so a scrape after a reply sees it), or at the
 * log phase when no reply was sent (client gone, timeout).  Also the
 * per-request variables ($consent_events, ...).
 */

#include "ngx_http_consent_status.h"


#define NGX_HTTP_CONSENT_VAR_EVENTS        0
#define NGX_HTTP_CONSENT_VAR_DELIVERED     1
#define NGX_HTTP_CONSENT_VAR_REJECTED      2
#define NGX_HTTP_CONSENT_VAR_PROFILED      3
#define NGX_HTTP_CONSENT_VAR_PROFILE_FAILED  4


static ngx_http_consent_status_conf_t *ngx_http_consent_status_conf(
    ngx_conf_t *cf);
static ngx_int_t ngx_http_consent_status_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static ngx_int_t ngx_http_consent_status_sync(
    ngx_http_consent_status_conf_t *scf);
static ngx_http_consent_status_code_t *ngx_http_consent_status_code_locked(
    ngx_http_consent_status_shm_t *sh, u_char *name, size_t len);
static void ngx_http_consent_status_reject(ngx_http_consent_status_conf_t *scf,
    const char *code, ngx_uint_t n);
static ngx_uint_t ngx_http_consent_status_of(ngx_http_request_t *r);
static ngx_http_consent_status_shm_t *ngx_http_consent_status_shm(
    ngx_http_request_t *r);
static ngx_uint_t ngx_http_consent_status_ok(ngx_http_consent_ctx_t *ctx,
    ngx_uint_t d);
static void ngx_http_consent_status_count(ngx_http_request_t *r,
    ngx_http_consent_ctx_t *ctx);
static ngx_int_t ngx_http_consent_status_header_filter(ngx_http_request_t *r);
static ngx_int_t ngx_http_consent_status_log_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_consent_status_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_consent_status_error_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);


static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;


static ngx_str_t  ngx_http_consent_status_zone_name =
    ngx_string("consent_status");


/* codes listed (with 0) from the start; others are added when seen */
static const char  *ngx_http_consent_status_glue_codes[] = {
    "method_not_allowed",
    "unknown_endpoint",
    "no_valid_events",
    "invalid_gzip",
    "unsupported_encoding",
    "invalid_body",
    "body_timeout",
    "bad_request",
    NULL
};


/* upper bounds of the latency buckets: Prometheus' defaults */
static ngx_msec_t  ngx_http_consent_status_ms[] = {
    5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000
};

/* the store's round trips: 1 ms is the clock's resolution */
static ngx_msec_t  ngx_http_consent_status_trip_ms[] = {
    1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500
};


static ngx_http_variable_t  ngx_http_consent_status_vars[] = {

    { ngx_string("consent_events"), NULL, ngx_http_consent_status_variable,
      NGX_HTTP_CONSENT_VAR_EVENTS, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("consent_delivered"), NULL,
      ngx_http_consent_status_variable,
      NGX_HTTP_CONSENT_VAR_DELIVERED, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("consent_rejected"), NULL, ngx_http_consent_status_variable,
      NGX_HTTP_CONSENT_VAR_REJECTED, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("consent_profiled"), NULL,
      ngx_http_consent_status_variable,
      NGX_HTTP_CONSENT_VAR_PROFILED, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("consent_profile_failed"), NULL,
      ngx_http_consent_status_variable,
      NGX_HTTP_CONSENT_VAR_PROFILE_FAILED, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("consent_error"), NULL,
      ngx_http_consent_status_error_variable, 0, NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};


/* configuration */

static ngx_http_consent_status_conf_t *
ngx_http_consent_status_conf(ngx_conf_t *cf)
{
    ngx_http_consent_main_conf_t    *cmcf;
    ngx_http_consent_status_conf_t  *scf;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_consent_module);

    if (cmcf->counters != NULL) {
        return cmcf->counters;
    }

    scf = ngx_pcalloc(cf->pool, sizeof(ngx_http_consent_status_conf_t));
    if (scf == NULL) {
        return NULL;
    }

    if (ngx_array_init(&scf->names, cf->pool, 8,
                       sizeof(ngx_http_consent_status_name_t))
        != NGX_OK)
    {
        return NULL;
    }

    scf->size = NGX_CONF_UNSET;
    cmcf->counters = scf;

    return scf;
}


char *
ngx_http_consent_status_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ssize_t                          size;
    ngx_str_t                       *value;
    ngx_http_consent_status_conf_t  *scf;

    scf = ngx_http_consent_status_conf(cf);
    if (scf == NULL) {
        return NGX_CONF_ERROR;
    }

    if (scf->size != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    value = cf->args->elts;

    size = ngx_parse_size(&value[1]);

    if (size == NGX_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid consent_status_zone size \"%V\"",
                           &value[1]);
        return NGX_CONF_ERROR;
    }

    if (size < (ssize_t) (8 * ngx_pagesize)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "consent_status_zone size \"%V\" is too small, "
                           "at least %uz", &value[1], 8 * ngx_pagesize);
        return NGX_CONF_ERROR;
    }

    scf->size = size;

    return NGX_CONF_OK;
}


char *
ngx_http_consent_status(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_core_loc_conf_t  *core;

    core = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (core->handler == ngx_http_consent_status_handler) {
        return "is duplicate";
    }

    core->handler = ngx_http_consent_status_handler;

    return NGX_CONF_OK;
}


/* every destination name gets one set of counters, whatever its level */

ngx_int_t
ngx_http_consent_status_dest(ngx_conf_t *cf,
    ngx_http_consent_dest_conf_t *dest)
{
    ngx_uint_t                       i;
    ngx_http_consent_status_conf_t  *scf;
    ngx_http_consent_status_name_t  *n;

    scf = ngx_http_consent_status_conf(cf);
    if (scf == NULL) {
        return NGX_ERROR;
    }

    n = scf->names.elts;

    for (i = 0; i < scf->names.nelts; i++) {
        if (n[i].name.len == dest->name.len
            && ngx_strncmp(n[i].name.data, dest->name.data, dest->name.len)
               == 0)
        {
            dest->counters = i;
            return NGX_OK;
        }
    }

    n = ngx_array_push(&scf->names);
    if (n == NULL) {
        return NGX_ERROR;
    }

    n->name = dest->name;
    n->slot = NULL;
    dest->counters = scf->names.nelts - 1;

    return NGX_OK;
}


ngx_int_t
ngx_http_consent_status_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_http_consent_status_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_consent_status_init(ngx_conf_t *cf)
{
    ngx_shm_zone_t                  *zone;
    ngx_http_handler_pt             *h;
    ngx_http_core_main_conf_t       *core;
    ngx_http_consent_status_conf_t  *scf;

    scf = ngx_http_consent_status_conf(cf);
    if (scf == NULL) {
        return NGX_ERROR;
    }

    /* a fixed default size: a zone of another size starts from zero */
    if (scf->size == NGX_CONF_UNSET) {
        scf->size = NGX_HTTP_CONSENT_STATUS_SIZE;
    }

    zone = ngx_shared_memory_add(cf, &ngx_http_consent_status_zone_name,
                                 scf->size, &ngx_http_consent_module);
    if (zone == NULL) {
        return NGX_ERROR;
    }

    zone->init = ngx_http_consent_status_init_zone;
    zone->data = scf;

    core = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&core->phases[NGX_HTTP_LOG_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_consent_status_log_handler;

    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_consent_status_header_filter;

    return NGX_OK;
}


/* the zone: created once, reused by reloads (nginx passes the old data) */

static ngx_int_t
ngx_http_consent_status_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_int_t                        rc;
    ngx_http_consent_status_conf_t  *scf;

    scf = shm_zone->data;
    scf->shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (data != NULL || shm_zone->shm.exists) {
        scf->sh = scf->shpool->data;

    } else {
        scf->sh = ngx_slab_calloc(scf->shpool,
                                  sizeof(ngx_http_consent_status_shm_t));
        if (scf->sh == NULL) {
            return NGX_ERROR;
        }

        scf->shpool->data = scf->sh;

        scf->shpool->log_ctx = ngx_slab_alloc(scf->shpool,
                                         sizeof(" in consent_status zone"));
        if (scf->shpool->log_ctx == NULL) {
            return NGX_ERROR;
        }

        ngx_sprintf(scf->shpool->log_ctx, " in consent_status zone%Z");
    }

    ngx_shmtx_lock(&scf->shpool->mutex);
    rc = ngx_http_consent_status_sync(scf);
    ngx_shmtx_unlock(&scf->shpool->mutex);

    return rc;
}


/*
 * Gives every destination name of the configuration being loaded its
 * counters.  A name the previous configuration had keeps its slot and
 * counts.  A new name takes a slot no longer used by this configuration
 * nor by the previous one (whose workers may still be finishing
 * requests), else a new one.  Slots are never freed: old workers may
 * still write to them.
 */

static ngx_int_t
ngx_http_consent_status_sync(ngx_http_consent_status_conf_t *scf)
{
    u_char                          *p;
    ngx_uint_t                       i, gen;
    const char                     **g;
    consent_code_e                   c;
    ngx_http_consent_status_shm_t   *sh;
    ngx_http_consent_status_slot_t  *slot, **last;
    ngx_http_consent_status_name_t  *n;

    sh = scf->sh;
    gen = ++sh->gen;

    for (c = CONSENT_OK + 1; c < CONSENT_CODE_MAX; c++) {
        if (c != CONSENT_NO_MEMORY) {
            p = (u_char *) consent_code_name(c);
            (void) ngx_http_consent_status_code_locked(sh, p, ngx_strlen(p));
        }
    }

    for (g = ngx_http_consent_status_glue_codes; *g; g++) {
        p = (u_char *) *g;
        (void) ngx_http_consent_status_code_locked(sh, p, ngx_strlen(p));
    }

    n = scf->names.elts;

    for (i = 0; i < scf->names.nelts; i++) {
        for (slot = sh->slots; slot; slot = slot->next) {
            if (slot->len == n[i].name.len
                && ngx_memcmp(slot->name, n[i].name.data, slot->len) == 0)
            {
                break;
            }
        }

        if (slot == NULL) {
            continue;
        }

        if (slot->gen + 1 != gen) {
            /* removed by an earlier reload, back now: starts over */
            ngx_memzero(slot, offsetof(ngx_http_consent_status_slot_t,
                                       next));
        }

        slot->gen = gen;
        n[i].slot = slot;
    }

    for (i = 0; i < scf->names.nelts; i++) {
        if (n[i].slot != NULL) {
            continue;
        }

        last = &sh->slots;

        for (slot = sh->slots; slot; slot = slot->next) {
            if (slot->gen + 1 < gen) {
                break;
            }

            last = &slot->next;
        }

        if (slot == NULL) {
            slot = ngx_slab_calloc_locked(scf->shpool,
                                     sizeof(ngx_http_consent_status_slot_t));
            if (slot == NULL) {
                goto nomem;
            }

            *last = slot;
        }

        if (slot->cap < n[i].name.len) {
            p = ngx_slab_alloc_locked(scf->shpool, n[i].name.len);
            if (p == NULL) {
                goto nomem;
            }

            if (slot->name) {
                ngx_slab_free_locked(scf->shpool, slot->name);
            }

            slot->name = p;
            slot->cap = n[i].name.len;
        }

        ngx_memzero(slot, offsetof(ngx_http_consent_status_slot_t, next));
        ngx_memcpy(slot->name, n[i].name.data, n[i].name.len);
        slot->len = n[i].name.len;
        slot->gen = gen;
        n[i].slot = slot;
    }

    return NGX_OK;

nomem:

    ngx_log_error(NGX_LOG_EMERG, ngx_cycle->log, 0,
                  "consent_status_zone is too small for %ui destinations",
                  scf->names.nelts);

    return NGX_ERROR;
}


/* a rejection code's counter, added if new; the zone is locked */

static ngx_http_consent_status_code_t *
ngx_http_consent_status_code_locked(ngx_http_consent_status_shm_t *sh,
    u_char *name, size_t len)
{
    ngx_uint_t                       i, n;
    ngx_http_consent_status_code_t  *c;

    n = sh->ncodes;

    for (i = 0; i < n; i++) {
        if (sh->codes[i].len == len
            && ngx_memcmp(sh->codes[i].name, name, len) == 0)
        {
            return &sh->codes[i];
        }
    }

    if (n == NGX_HTTP_CONSENT_STATUS_NCODES
        || len >= NGX_HTTP_CONSENT_STATUS_CODE_LEN)
    {
        return NULL;
    }

    c = &sh->codes[n];
    c->count = 0;
    c->len = len;
    ngx_memcpy(c->name, name, len);

    /* readers scan without the lock: the entry first, then the count */
    ngx_memory_barrier();
    sh->ncodes = n + 1;

    return c;
}


static void
ngx_http_consent_status_reject(ngx_http_consent_status_conf_t *scf,
    const char *code, ngx_uint_t n)
{
    size_t                           len;
    ngx_uint_t                       i, ncodes;
    ngx_http_consent_status_shm_t   *sh;
    ngx_http_consent_status_code_t  *c;

    sh = scf->sh;
    len = ngx_strlen(code);
    ncodes = sh->ncodes;
    c = NULL;

    for (i = 0; i < ncodes; i++) {
        if (sh->codes[i].len == len
            && ngx_memcmp(sh->codes[i].name, code, len) == 0)
        {
            c = &sh->codes[i];
            break;
        }
    }

    if (c == NULL) {
        ngx_shmtx_lock(&scf->shpool->mutex);
        c = ngx_http_consent_status_code_locked(sh, (u_char *) code, len);
        ngx_shmtx_unlock(&scf->shpool->mutex);

        if (c == NULL) {
            return;
        }
    }

    (void) ngx_atomic_fetch_add(&c->count, n);
}


/* call sites in the handler and the Lua glue */

void
ngx_http_consent_status_error(ngx_http_request_t *r, const char *code)
{
    ngx_http_consent_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_consent_module);

    if (ctx == NULL) {
        /* refused before the body was read */
        ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_consent_ctx_t));
        if (ctx == NULL) {
            return;
        }

        ngx_http_set_ctx(r, ctx, ngx_http_consent_module);
    }

    ctx->error = code;
}


/* the lookups and records of one request's profile step */

void
ngx_http_consent_status_profile(ngx_http_request_t *r, ngx_uint_t *lookups,
    ngx_uint_t *records)
{
    ngx_uint_t                       i;
    ngx_http_consent_status_shm_t   *sh;

    sh = ngx_http_consent_status_shm(r);

    if (sh == NULL) {
        return;
    }

    for (i = 0; i < NGX_HTTP_CONSENT_LOOKUP_N; i++) {
        if (lookups[i]) {
            (void) ngx_atomic_fetch_add(&sh->profiles.lookups[i], lookups[i]);
        }
    }

    for (i = 0; i < NGX_HTTP_CONSENT_RECORD_N; i++) {
        if (records[i]) {
            (void) ngx_atomic_fetch_add(&sh->profiles.records[i], records[i]);
        }
    }
}


/* one store round trip, answered or failed */

void
ngx_http_consent_status_profile_trip(ngx_http_request_t *r, ngx_msec_t ms)
{
    ngx_uint_t                      b;
    ngx_http_consent_status_shm_t  *sh;

    sh = ngx_http_consent_status_shm(r);

    if (sh == NULL) {
        return;
    }

    for (b = 0; b < NGX_HTTP_CONSENT_STATUS_NBUCKETS - 1; b++) {
        if (ms <= ngx_http_consent_status_trip_ms[b]) {
            break;
        }
    }

    (void) ngx_atomic_fetch_add(&sh->profiles.bucket[b], 1);
    (void) ngx_atomic_fetch_add(&sh->profiles.sum, ms);
}


/* the zone's counters, NULL without a zone (nginx -t, a failed start) */

static ngx_http_consent_status_shm_t *
ngx_http_consent_status_shm(ngx_http_request_t *r)
{
    ngx_http_consent_main_conf_t  *cmcf;

    cmcf = ngx_http_get_module_main_conf(r, ngx_http_consent_module);

    return cmcf->counters != NULL ? cmcf->counters->sh : NULL;
}


void
ngx_http_consent_status_lua_error(ngx_http_request_t *r)
{
    ngx_http_consent_status_shm_t  *sh;

    sh = ngx_http_consent_status_shm(r);

    if (sh != NULL) {
        (void) ngx_atomic_fetch_add(&sh->lua_errors, 1);
    }
}


void
ngx_http_consent_status_telemetry(ngx_http_request_t *r)
{
    ngx_http_consent_status_shm_t  *sh;

    sh = ngx_http_consent_status_shm(r);

    if (sh != NULL) {
        (void) ngx_atomic_fetch_add(&sh->telemetry, 1);
    }
}


/* counting */

/* the status as $status shows it */

static ngx_uint_t
ngx_http_consent_status_of(ngx_http_request_t *r)
{
    if (r->err_status) {
        return r->err_status;
    }

    return r->headers_out.status;
}


/* destination d got its events: its subrequest ran and answered 2xx */

static ngx_uint_t
ngx_http_consent_status_ok(ngx_http_consent_ctx_t *ctx, ngx_uint_t d)
{
    ngx_http_consent_delivery_t  *dl;

    if (ctx->deliveries == NULL || d >= ctx->ndeliveries) {
        return 0;
    }

    dl = &ctx->deliveries[d];

    return dl->nevents && dl->done && !dl->failed;
}


static void
ngx_http_consent_status_count(ngx_http_request_t *r,
    ngx_http_consent_ctx_t *ctx)
{
    ngx_uint_t                       status, d, e;
    ngx_uint_t                       codes[CONSENT_CODE_MAX];
    consent_result_t                *res;
    ngx_http_consent_status_shm_t   *sh;
    ngx_http_consent_delivery_t     *dl;
    ngx_http_consent_main_conf_t    *cmcf;

    cmcf = ngx_http_get_module_main_conf(r, ngx_http_consent_module);

    if (cmcf->counters == NULL || cmcf->counters->sh == NULL) {
        return;
    }

    sh = cmcf->counters->sh;

    status = ngx_http_consent_status_of(r);
    if (status >= NGX_HTTP_CONSENT_STATUS_NSTATUS) {
        status = 0;
    }

    (void) ngx_atomic_fetch_add(&sh->requests[status], 1);

    if (ctx == NULL) {
        return;
    }

    /* a refused request; delivery_failed and 500s are not refusals */
    if (ctx->error && status >= 400 && status < 500) {
        ngx_http_consent_status_reject(cmcf->counters, ctx->error, 1);
    }

    res = &ctx->result;

    if (res->events == NULL) {
        return;
    }

    /* a single event's code is the request's, counted above */
    if (ctx->endpoint == CONSENT_EP_BATCH && res->naccepted < res->nevents) {
        ngx_memzero(codes, sizeof(codes));

        for (e = 0; e < res->nevents; e++) {
            if (res->events[e].code < CONSENT_CODE_MAX) {
                codes[res->events[e].code]++;
            }
        }

        for (e = CONSENT_OK + 1; e < CONSENT_CODE_MAX; e++) {
            if (codes[e]) {
                ngx_http_consent_status_reject(cmcf->counters,
                    consent_code_name((consent_code_e) e), codes[e]);
            }
        }
    }

    for (d = 0; d < res->ndests; d++) {
        dl = (ctx->deliveries && d < ctx->ndeliveries)
             ? &ctx->deliveries[d] : NULL;

        /* a background delivery still under way counts when it ends */
        if (ctx->background && dl && dl->nevents && !dl->done) {
            continue;
        }

        ngx_http_consent_status_delivery(r, ctx, d);
    }
}


/* destination d's events of one request, and its latency */

void
ngx_http_consent_status_delivery(ngx_http_request_t *r,
    ngx_http_consent_ctx_t *ctx, ngx_uint_t d)
{
    ngx_uint_t                       e, b, ndests, ok;
    ngx_uint_t                       n[NGX_HTTP_CONSENT_OUT_N];
    consent_result_t                *res;
    ngx_http_consent_status_slot_t  *slot;
    ngx_http_consent_status_name_t  *names;
    ngx_http_consent_delivery_t     *dl;
    ngx_http_consent_dest_conf_t    *dests;
    ngx_http_consent_loc_conf_t     *clcf;
    ngx_http_consent_main_conf_t    *cmcf;

    cmcf = ngx_http_get_module_main_conf(r, ngx_http_consent_module);

    if (cmcf->counters == NULL || cmcf->counters->sh == NULL) {
        return;
    }

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_consent_module);
    res = &ctx->result;
    ndests = res->ndests;

    if (res->outcome == NULL || d >= ndests || clcf->dests == NULL
        || clcf->dests->nelts != ndests)
    {
        return;
    }

    dests = clcf->dests->elts;
    names = cmcf->counters->names.elts;
    slot = names[dests[d].counters].slot;
    ok = ngx_http_consent_status_ok(ctx, d);

    ngx_memzero(n, sizeof(n));

    for (e = 0; e < res->nevents; e++) {
        switch (res->outcome[e * ndests + d]) {

        case CONSENT_DELIVER:
            if (ctx->batch) {
                break;      /* counted when its batch ends */
            }

            n[ok ? NGX_HTTP_CONSENT_OUT_DELIVERED
                 : NGX_HTTP_CONSENT_OUT_FAILED]++;
            break;

        case CONSENT_FILTERED_CONSENT:
            n[NGX_HTTP_CONSENT_OUT_CONSENT]++;
            break;

        case CONSENT_FILTERED_INTEGRATIONS:
            n[NGX_HTTP_CONSENT_OUT_INTEGRATIONS]++;
            break;

        default:
            break;
        }
    }

    for (e = 0; e < NGX_HTTP_CONSENT_OUT_N; e++) {
        if (n[e]) {
            (void) ngx_atomic_fetch_add(&slot->events[e], n[e]);
        }
    }

    if (ctx->deliveries == NULL || d >= ctx->ndeliveries) {
        return;
    }

    dl = &ctx->deliveries[d];

    /* a subrequest that finished; done alone also means "nothing" */
    if (dl->nevents == 0 || !dl->done) {
        return;
    }

    for (b = 0; b < NGX_HTTP_CONSENT_STATUS_NBUCKETS - 1; b++) {
        if (dl->elapsed <= ngx_http_consent_status_ms[b]) {
            break;
        }
    }

    (void) ngx_atomic_fetch_add(&slot->bucket[b], 1);
    (void) ngx_atomic_fetch_add(&slot->sum, dl->elapsed);
}


static ngx_int_t
ngx_http_consent_status_header_filter(ngx_http_request_t *r)
{
    ngx_http_consent_ctx_t       *ctx;
    ngx_http_consent_loc_conf_t  *clcf;

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_consent_module);

    if (r != r->main || !clcf->ingest) {
        return ngx_http_next_header_filter(r);
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_consent_module);

    if (ctx == NULL) {
        /* nginx's own reply (413 of client_max_body_size, ...) */
        ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_consent_ctx_t));
        if (ctx == NULL) {
            return ngx_http_next_header_filter(r);  /* the log phase counts */
        }

        ngx_http_set_ctx(r, ctx, ngx_http_consent_module);
    }

    if (!ctx->counted) {
        ctx->counted = 1;
        ngx_http_consent_status_count(r, ctx);
    }

    return ngx_http_next_header_filter(r);
}


/* requests that ended without a reply: client gone, timeouts */

static ngx_int_t
ngx_http_consent_status_log_handler(ngx_http_request_t *r)
{
    ngx_http_consent_ctx_t       *ctx;
    ngx_http_consent_loc_conf_t  *clcf;

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_consent_module);

    if (r != r->main || !clcf->ingest) {
        return NGX_OK;
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_consent_module);

    if (ctx == NULL || !ctx->counted) {
        if (ctx) {
            ctx->counted = 1;
        }

        ngx_http_consent_status_count(r, ctx);
    }

    return NGX_OK;
}


/* variables */

static ngx_int_t
ngx_http_consent_status_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    u_char                  *p;
    ngx_uint_t               n, d, ndests;
    consent_result_t        *res;
    ngx_http_consent_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_consent_module);

    if (ctx == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    res = &ctx->result;
    n = 0;

    switch (data) {

    case NGX_HTTP_CONSENT_VAR_EVENTS:
        n = res->nevents;
        break;

    case NGX_HTTP_CONSENT_VAR_REJECTED:
        n = res->nevents - res->naccepted;
        break;

    case NGX_HTTP_CONSENT_VAR_PROFILED:
        n = ctx->profiled;
        break;

    case NGX_HTTP_CONSENT_VAR_PROFILE_FAILED:
        n = ctx->profile_failed;
        break;

    default: /* NGX_HTTP_CONSENT_VAR_DELIVERED */
        ndests = res->ndests;

        if (res->outcome == NULL) {
            break;
        }

        for (d = 0; d < ndests; d++) {
            if (ngx_http_consent_status_ok(ctx, d)) {
                n += consent_delivered(res, d);
            }
        }

        break;
    }

    p = ngx_pnalloc(r->pool, NGX_INT_T_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    v->len = ngx_sprintf(p, "%ui", n) - p;
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;
    v->data = p;

    return NGX_OK;
}


static ngx_int_t
ngx_http_consent_status_error_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    const char              *code;
    ngx_http_consent_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_consent_module);

    code = NULL;

    if (ctx != NULL) {
        code = ctx->error;

        if (code == NULL
            && ngx_http_consent_status_of(r) == NGX_HTTP_INTERNAL_SERVER_ERROR)
        {
            code = "internal_error";
        }
    }

    if (code == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    v->len = ngx_strlen(code);
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;
    v->data = (u_char *) code;

    return NGX_OK;
}


/*
 * Batched delivery (consent_delivery batch, ngx_http_consent_batch.c):
 * per destination queue gauges (the workers' sum), batches, retries and
 * dropped events by reason; listed once some location uses batch.
 */


ngx_int_t
ngx_http_consent_status_batch_used(ngx_conf_t *cf)
{
    ngx_http_consent_status_conf_t  *scf;

    scf = ngx_http_consent_status_conf(cf);
    if (scf == NULL) {
        return NGX_ERROR;
    }

    scf->batch = 1;

    return NGX_OK;
}


void
ngx_http_consent_status_batch(ngx_http_consent_status_conf_t *scf,
    ngx_uint_t dest, ngx_uint_t what, ngx_int_t n)
{
    ngx_atomic_t                    *a;
    ngx_http_consent_status_slot_t  *slot;
    ngx_http_consent_status_name_t  *names;

    if (scf == NULL || scf->sh == NULL || n == 0) {
        return;
    }

    names = scf->names.elts;
    slot = names[dest].slot;

    switch (what) {

    case NGX_HTTP_CONSENT_BATCH_DELIVERED:
        a = &slot->events[NGX_HTTP_CONSENT_OUT_DELIVERED];
        break;

    case NGX_HTTP_CONSENT_BATCH_FAILED:
        a = &slot->events[NGX_HTTP_CONSENT_OUT_FAILED];
        break;

    default:
        a = &slot->batch[what];
    }

    (void) ngx_atomic_fetch_add(a, (ngx_atomic_int_t) n);
}


void
ngx_http_consent_status_batch_latency(ngx_http_consent_status_conf_t *scf,
    ngx_uint_t dest, ngx_msec_t ms)
{
    ngx_uint_t                       b;
    ngx_http_consent_status_slot_t  *slot;
    ngx_http_consent_status_name_t  *names;

    if (scf == NULL || scf->sh == NULL) {
        return;
    }

    names = scf->names.elts;
    slot = names[dest].slot;

    for (b = 0; b < NGX_HTTP_CONSENT_STATUS_NBUCKETS - 1; b++) {
        if (ms <= ngx_http_consent_status_ms[b]) {
            break;
        }
    }

    (void) ngx_atomic_fetch_add(&slot->bucket[b], 1);
    (void) ngx_atomic_fetch_add(&slot->sum, ms);
}
