
/*
 * ngx_consent: status and metrics.  The counters live in one shared
 * memory zone, so every worker adds to the same numbers and a reload
 * (same zone size) keeps them; consent_status serves them as Prometheus
 * text or JSON.  A request is counted when its reply header goes out
 * (so a scrape after a reply sees it), or at the log phase when no
 * reply was sent (client gone, timeout).
 */

#include "ngx_http_consent.h"
#include "ngx_http_consent_batch.h"


#define NGX_HTTP_CONSENT_STATUS_SIZE       (1024 * 1024)
#define NGX_HTTP_CONSENT_STATUS_NSTATUS    1000
#define NGX_HTTP_CONSENT_STATUS_NCODES     64
#define NGX_HTTP_CONSENT_STATUS_CODE_LEN   64
#define NGX_HTTP_CONSENT_STATUS_NBUCKETS   12      /* 11 bounds and +Inf */

/* event outcomes per destination, in output order */
#define NGX_HTTP_CONSENT_OUT_DELIVERED     0
#define NGX_HTTP_CONSENT_OUT_CONSENT       1
#define NGX_HTTP_CONSENT_OUT_INTEGRATIONS  2
#define NGX_HTTP_CONSENT_OUT_FAILED        3
#define NGX_HTTP_CONSENT_OUT_N             4

/* a generous bound of one output line, name and value excluded */
#define NGX_HTTP_CONSENT_STATUS_LINE       160

#define NGX_HTTP_CONSENT_VAR_EVENTS        0
#define NGX_HTTP_CONSENT_VAR_DELIVERED     1
#define NGX_HTTP_CONSENT_VAR_REJECTED      2
#define NGX_HTTP_CONSENT_VAR_PROFILED      3
#define NGX_HTTP_CONSENT_VAR_PROFILE_FAILED  4


typedef struct ngx_http_consent_status_slot_s  ngx_http_consent_status_slot_t;

/* one destination name's counters */
struct ngx_http_consent_status_slot_s {
    ngx_atomic_t                     events[NGX_HTTP_CONSENT_OUT_N];
    ngx_atomic_t                     bucket[NGX_HTTP_CONSENT_STATUS_NBUCKETS];
    ngx_atomic_t                     sum;           /* milliseconds */
    ngx_atomic_t                     batch[NGX_HTTP_CONSENT_BATCH_N];

    /* the master's alone: matched by name when a configuration loads */
    ngx_http_consent_status_slot_t  *next;
    u_char                          *name;
    size_t                           len;
    size_t                           cap;
    ngx_uint_t                       gen;           /* last config using it */
};


typedef struct {
    ngx_atomic_t                     count;
    size_t                           len;
    u_char                           name[NGX_HTTP_CONSENT_STATUS_CODE_LEN];
} ngx_http_consent_status_code_t;


/* consent profiles (ngx_http_consent_profile.c) */
typedef struct {
    ngx_atomic_t                     lookups[NGX_HTTP_CONSENT_LOOKUP_N];
    ngx_atomic_t                     records[NGX_HTTP_CONSENT_RECORD_N];
    ngx_atomic_t                     bucket[NGX_HTTP_CONSENT_STATUS_NBUCKETS];
    ngx_atomic_t                     sum;           /* milliseconds */
} ngx_http_consent_status_profiles_t;


typedef struct {
    ngx_atomic_t                     requests[NGX_HTTP_CONSENT_STATUS_NSTATUS];
    ngx_http_consent_status_profiles_t  profiles;
    ngx_atomic_t                     lua_errors;
    ngx_atomic_t                     telemetry;     /* /v1/m, not routed */
    ngx_atomic_t                     ncodes;        /* published last */
    ngx_http_consent_status_code_t   codes[NGX_HTTP_CONSENT_STATUS_NCODES];
    ngx_http_consent_status_slot_t  *slots;
    ngx_uint_t                       gen;
} ngx_http_consent_status_shm_t;


typedef struct {
    ngx_str_t                        name;
    ngx_http_consent_status_slot_t  *slot;
} ngx_http_consent_status_name_t;


struct ngx_http_consent_status_conf_s {
    ngx_array_t                      names;     /* destination names, once */
    ssize_t                          size;      /* NGX_CONF_UNSET: default */
    ngx_slab_pool_t                 *shpool;
    ngx_http_consent_status_shm_t   *sh;
    ngx_uint_t                       batch;     /* consent_delivery batch */
};


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
static ngx_int_t ngx_http_consent_status_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_consent_status_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_consent_status_error_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static u_char *ngx_http_consent_status_batch_text(u_char *p,
    ngx_http_consent_status_conf_t *scf);
static u_char *ngx_http_consent_status_batch_json(u_char *p,
    ngx_http_consent_status_conf_t *scf);


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


static const char  *ngx_http_consent_status_outcomes[] = {
    "delivered", "filtered_consent", "filtered_integrations", "failed"
};


/* upper bounds of the latency buckets: Prometheus' defaults */
static ngx_msec_t  ngx_http_consent_status_ms[] = {
    5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000
};

/* the store's round trips: 1 ms is the clock's resolution */
static ngx_msec_t  ngx_http_consent_status_trip_ms[] = {
    1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500
};

static const char  *ngx_http_consent_status_trip_le[] = {
    "0.001", "0.002", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5",
    "1", "2.5", "+Inf"
};

static const char  *ngx_http_consent_status_lookups[] = {
    "hit", "miss", "error"
};

static const char  *ngx_http_consent_status_records[] = {
    "stored", "older_ignored", "error"
};

static const char  *ngx_http_consent_status_le[] = {
    "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5",
    "10", "+Inf"
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

    if (cmcf->status != NULL) {
        return cmcf->status;
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
    cmcf->status = scf;

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
            dest->status = i;
            return NGX_OK;
        }
    }

    n = ngx_array_push(&scf->names);
    if (n == NULL) {
        return NGX_ERROR;
    }

    n->name = dest->name;
    n->slot = NULL;
    dest->status = scf->names.nelts - 1;

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

    return cmcf->status != NULL ? cmcf->status->sh : NULL;
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

    if (cmcf->status == NULL || cmcf->status->sh == NULL) {
        return;
    }

    sh = cmcf->status->sh;

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
        ngx_http_consent_status_reject(cmcf->status, ctx->error, 1);
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
                ngx_http_consent_status_reject(cmcf->status,
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

    if (cmcf->status == NULL || cmcf->status->sh == NULL) {
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
    names = cmcf->status->names.elts;
    slot = names[dests[d].status].slot;
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
    ngx_uint_t               n, d, e, ndests;
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
            if (!ngx_http_consent_status_ok(ctx, d)) {
                continue;
            }

            for (e = 0; e < res->nevents; e++) {
                if (res->outcome[e * ndests + d] == CONSENT_DELIVER) {
                    n++;
                }
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


/* consent_status: the counters as Prometheus text or JSON */

/* a Prometheus label value: backslash, quote and newline escaped */

static u_char *
ngx_http_consent_status_label(u_char *p, u_char *s, size_t len)
{
    while (len--) {
        if (*s == '\\' || *s == '"') {
            *p++ = '\\';
            *p++ = *s++;

        } else if (*s == '\n') {
            *p++ = '\\';
            *p++ = 'n';
            s++;

        } else {
            *p++ = *s++;
        }
    }

    return p;
}


#define ngx_http_consent_status_help(p, name, type, help)                    \
    ngx_cpymem(p, "# HELP " name " " help "\n# TYPE " name " " type "\n",    \
               sizeof("# HELP " name " " help "\n# TYPE " name " " type "\n") \
               - 1)


static u_char *
ngx_http_consent_status_profiles_text(u_char *p,
    ngx_http_consent_status_profiles_t *pr)
{
    ngx_uint_t         i, b;
    ngx_atomic_uint_t  cum;

    p = ngx_http_consent_status_help(p, "ngx_consent_profile_lookups_total",
            "counter", "Events without consent looked up in the profile "
                       "store, by result.");

    for (i = 0; i < NGX_HTTP_CONSENT_LOOKUP_N; i++) {
        p = ngx_sprintf(p, "ngx_consent_profile_lookups_total{result=\"%s\"} "
                           "%uA\n", ngx_http_consent_status_lookups[i],
                        pr->lookups[i]);
    }

    p = ngx_http_consent_status_help(p, "ngx_consent_profile_records_total",
            "counter", "Profile keys written with an event's consent, by "
                       "result.");

    for (i = 0; i < NGX_HTTP_CONSENT_RECORD_N; i++) {
        p = ngx_sprintf(p, "ngx_consent_profile_records_total{result=\"%s\"} "
                           "%uA\n", ngx_http_consent_status_records[i],
                        pr->records[i]);
    }

    p = ngx_http_consent_status_help(p,
            "ngx_consent_profile_store_seconds", "histogram",
            "Profile store round trips, answered or failed.");

    cum = 0;

    for (b = 0; b < NGX_HTTP_CONSENT_STATUS_NBUCKETS; b++) {
        cum += pr->bucket[b];
        p = ngx_sprintf(p, "ngx_consent_profile_store_seconds_bucket"
                           "{le=\"%s\"} %uA\n",
                        ngx_http_consent_status_trip_le[b], cum);
    }

    p = ngx_sprintf(p, "ngx_consent_profile_store_seconds_sum %uA.%03uA\n"
                       "ngx_consent_profile_store_seconds_count %uA\n",
                    pr->sum / 1000, pr->sum % 1000, cum);

    p = ngx_http_consent_status_help(p, "ngx_consent_profile_round_trips_total",
            "counter", "Profile store round trips.");

    return ngx_sprintf(p, "ngx_consent_profile_round_trips_total %uA\n", cum);
}


static u_char *
ngx_http_consent_status_profiles_json(u_char *p,
    ngx_http_consent_status_profiles_t *pr)
{
    ngx_uint_t         i;
    ngx_atomic_uint_t  trips;

    trips = 0;

    for (i = 0; i < NGX_HTTP_CONSENT_STATUS_NBUCKETS; i++) {
        trips += pr->bucket[i];
    }

    p = ngx_cpymem(p, ",\"profiles\":{\"lookups\":",
                   sizeof(",\"profiles\":{\"lookups\":") - 1);

    for (i = 0; i < NGX_HTTP_CONSENT_LOOKUP_N; i++) {
        p = ngx_sprintf(p, "%c\"%s\":%uA", i ? ',' : '{',
                        ngx_http_consent_status_lookups[i], pr->lookups[i]);
    }

    p = ngx_cpymem(p, "},\"records\":", sizeof("},\"records\":") - 1);

    for (i = 0; i < NGX_HTTP_CONSENT_RECORD_N; i++) {
        p = ngx_sprintf(p, "%c\"%s\":%uA", i ? ',' : '{',
                        ngx_http_consent_status_records[i], pr->records[i]);
    }

    return ngx_sprintf(p, "},\"round_trips\":%uA,\"store_ms_sum\":%uA}",
                       trips, pr->sum);
}


static u_char *
ngx_http_consent_status_text(u_char *p, ngx_http_consent_status_conf_t *scf,
    ngx_atomic_uint_t *req, ngx_uint_t ncodes)
{
    ngx_uint_t                       i, b, k;
    ngx_atomic_uint_t                cum;
    ngx_http_consent_status_shm_t   *sh;
    ngx_http_consent_status_slot_t  *slot;
    ngx_http_consent_status_name_t  *n;

    sh = scf->sh;
    n = scf->names.elts;

    p = ngx_http_consent_status_help(p, "ngx_consent_requests_total",
            "counter", "Requests to consent_ingest locations by reply status.");

    for (i = 0; i < NGX_HTTP_CONSENT_STATUS_NSTATUS; i++) {
        if (req[i]) {
            p = ngx_sprintf(p, "ngx_consent_requests_total{status=\"%03ui\"} "
                               "%uA\n", i, req[i]);
        }
    }

    p = ngx_http_consent_status_help(p, "ngx_consent_events_total",
            "counter", "Events per destination by outcome.");

    for (i = 0; i < scf->names.nelts; i++) {
        for (k = 0; k < NGX_HTTP_CONSENT_OUT_N; k++) {
            p = ngx_cpymem(p, "ngx_consent_events_total{destination=\"",
                           sizeof("ngx_consent_events_total{destination=\"")
                           - 1);
            p = ngx_http_consent_status_label(p, n[i].name.data,
                                              n[i].name.len);
            p = ngx_sprintf(p, "\",outcome=\"%s\"} %uA\n",
                            ngx_http_consent_status_outcomes[k],
                            n[i].slot->events[k]);
        }
    }

    p = ngx_http_consent_status_help(p, "ngx_consent_rejected_total",
            "counter", "Rejected events and refused requests by code.");

    for (i = 0; i < ncodes; i++) {
        p = ngx_cpymem(p, "ngx_consent_rejected_total{code=\"",
                       sizeof("ngx_consent_rejected_total{code=\"") - 1);
        p = ngx_http_consent_status_label(p, sh->codes[i].name,
                                          sh->codes[i].len);
        p = ngx_sprintf(p, "\"} %uA\n", sh->codes[i].count);
    }

    p = ngx_http_consent_status_help(p, "ngx_consent_lua_errors_total",
            "counter", "Lua hook calls that failed; their events failed "
                       "closed.");
    p = ngx_sprintf(p, "ngx_consent_lua_errors_total %uA\n", sh->lua_errors);

    p = ngx_http_consent_status_help(p, "ngx_consent_telemetry_total",
            "counter", "Client telemetry posts (/v1/m), answered and "
                       "forwarded nowhere.");
    p = ngx_sprintf(p, "ngx_consent_telemetry_total %uA\n", sh->telemetry);

    p = ngx_http_consent_status_help(p,
            "ngx_consent_destination_latency_seconds", "histogram",
            "Destination subrequest time, from creation to completion.");

    for (i = 0; i < scf->names.nelts; i++) {
        slot = n[i].slot;
        cum = 0;

        for (b = 0; b < NGX_HTTP_CONSENT_STATUS_NBUCKETS; b++) {
            cum += slot->bucket[b];

            p = ngx_cpymem(p, "ngx_consent_destination_latency_seconds_bucket"
                              "{destination=\"",
                           sizeof("ngx_consent_destination_latency_seconds_"
                                  "bucket{destination=\"") - 1);
            p = ngx_http_consent_status_label(p, n[i].name.data,
                                              n[i].name.len);
            p = ngx_sprintf(p, "\",le=\"%s\"} %uA\n",
                            ngx_http_consent_status_le[b], cum);
        }

        p = ngx_cpymem(p, "ngx_consent_destination_latency_seconds_sum"
                          "{destination=\"",
                       sizeof("ngx_consent_destination_latency_seconds_sum"
                              "{destination=\"") - 1);
        p = ngx_http_consent_status_label(p, n[i].name.data, n[i].name.len);
        p = ngx_sprintf(p, "\"} %uA.%03uA\n", slot->sum / 1000,
                        slot->sum % 1000);

        p = ngx_cpymem(p, "ngx_consent_destination_latency_seconds_count"
                          "{destination=\"",
                       sizeof("ngx_consent_destination_latency_seconds_count"
                              "{destination=\"") - 1);
        p = ngx_http_consent_status_label(p, n[i].name.data, n[i].name.len);

        /* the +Inf bucket, so that the two always agree */
        p = ngx_sprintf(p, "\"} %uA\n", cum);
    }

    return ngx_http_consent_status_batch_text(p, scf);
}


static u_char *
ngx_http_consent_status_json(u_char *p, ngx_http_consent_status_conf_t *scf,
    ngx_atomic_uint_t *req, ngx_uint_t ncodes,
    ngx_http_consent_status_profiles_t *profiles)
{
    ngx_uint_t                       i, b, k;
    ngx_atomic_uint_t                cum;
    ngx_http_consent_status_shm_t   *sh;
    ngx_http_consent_status_slot_t  *slot;
    ngx_http_consent_status_name_t  *n;

    sh = scf->sh;
    n = scf->names.elts;

    p = ngx_cpymem(p, "{\"requests_total\":{", 19);

    for (i = 0; i < NGX_HTTP_CONSENT_STATUS_NSTATUS; i++) {
        if (req[i]) {
            p = ngx_sprintf(p, "%s\"%03ui\":%uA", p[-1] == '{' ? "" : ",",
                            i, req[i]);
        }
    }

    p = ngx_cpymem(p, "},\"events_total\":{", 18);

    for (i = 0; i < scf->names.nelts; i++) {
        if (i) {
            *p++ = ',';
        }

        p = ngx_http_consent_json_str(p, n[i].name.data,
                                             n[i].name.len);
        *p++ = ':';

        for (k = 0; k < NGX_HTTP_CONSENT_OUT_N; k++) {
            p = ngx_sprintf(p, "%c\"%s\":%uA", k ? ',' : '{',
                            ngx_http_consent_status_outcomes[k],
                            n[i].slot->events[k]);
        }

        *p++ = '}';
    }

    p = ngx_cpymem(p, "},\"rejected_total\":{", 20);

    for (i = 0; i < ncodes; i++) {
        if (i) {
            *p++ = ',';
        }

        p = ngx_http_consent_json_str(p, sh->codes[i].name,
                                             sh->codes[i].len);
        p = ngx_sprintf(p, ":%uA", sh->codes[i].count);
    }

    p = ngx_sprintf(p, "},\"lua_errors_total\":%uA,\"telemetry_total\":%uA,"
                       "\"destination_latency_seconds\":{",
                    sh->lua_errors, sh->telemetry);

    for (i = 0; i < scf->names.nelts; i++) {
        slot = n[i].slot;
        cum = 0;

        if (i) {
            *p++ = ',';
        }

        p = ngx_http_consent_json_str(p, n[i].name.data,
                                             n[i].name.len);
        p = ngx_cpymem(p, ":{\"buckets\":{", 13);

        for (b = 0; b < NGX_HTTP_CONSENT_STATUS_NBUCKETS; b++) {
            cum += slot->bucket[b];
            p = ngx_sprintf(p, "%s\"%s\":%uA", b ? "," : "",
                            ngx_http_consent_status_le[b], cum);
        }

        p = ngx_sprintf(p, "},\"sum\":%uA.%03uA,\"count\":%uA}",
                        slot->sum / 1000, slot->sum % 1000, cum);
    }

    *p++ = '}';
    p = ngx_http_consent_status_batch_json(p, scf);

    if (profiles) {
        p = ngx_http_consent_status_profiles_json(p, profiles);
    }

    return ngx_cpymem(p, "}\n", 2);
}


static ngx_int_t
ngx_http_consent_status_handler(ngx_http_request_t *r)
{
    u_char                          *buf, *p;
    size_t                           size;
    ngx_int_t                        rc;
    ngx_str_t                        format;
    ngx_buf_t                       *b;
    ngx_uint_t                       i, json, nreq, ncodes;
    ngx_chain_t                      out;
    ngx_atomic_uint_t               *req;
    ngx_http_consent_status_conf_t  *scf;
    ngx_http_consent_status_name_t  *n;
    ngx_http_consent_main_conf_t    *cmcf;
    ngx_http_consent_status_profiles_t  *profiles;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    json = 0;

    if (ngx_http_arg(r, (u_char *) "format", 6, &format) == NGX_OK) {
        if (format.len == 4 && ngx_strncmp(format.data, "json", 4) == 0) {
            json = 1;

        } else if (!(format.len == 10
                     && ngx_strncmp(format.data, "prometheus", 10) == 0))
        {
            return NGX_HTTP_BAD_REQUEST;
        }
    }

    cmcf = ngx_http_get_module_main_conf(r, ngx_http_consent_module);
    scf = cmcf->status;

    if (scf == NULL || scf->sh == NULL) {
        return NGX_HTTP_SERVICE_UNAVAILABLE;
    }

    /* a snapshot of the statuses: how many lines they take is fixed */
    req = ngx_palloc(r->pool, NGX_HTTP_CONSENT_STATUS_NSTATUS
                              * sizeof(ngx_atomic_uint_t));
    if (req == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    nreq = 0;
    for (i = 0; i < NGX_HTTP_CONSENT_STATUS_NSTATUS; i++) {
        req[i] = scf->sh->requests[i];
        nreq += req[i] ? 1 : 0;
    }

    ncodes = scf->sh->ncodes;
    ngx_memory_barrier();

    /* 6144: the fixed lines, the profiles' and batch's included */
    size = 6144 + (nreq + ncodes) * (NGX_HTTP_CONSENT_STATUS_LINE
                                     + NGX_HTTP_CONSENT_STATUS_CODE_LEN * 6);

    n = scf->names.elts;
    for (i = 0; i < scf->names.nelts; i++) {
        size += (NGX_HTTP_CONSENT_OUT_N + NGX_HTTP_CONSENT_STATUS_NBUCKETS
                 + 2 + NGX_HTTP_CONSENT_BATCH_N)
                * (NGX_HTTP_CONSENT_STATUS_LINE + n[i].name.len * 6);
    }

    buf = ngx_pnalloc(r->pool, size);
    if (buf == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* profile metrics only where some location uses a store */
    profiles = cmcf->stores.nelts ? &scf->sh->profiles : NULL;

    if (json) {
        p = ngx_http_consent_status_json(buf, scf, req, ncodes, profiles);
        ngx_str_set(&r->headers_out.content_type, "application/json");

    } else {
        p = ngx_http_consent_status_text(buf, scf, req, ncodes);

        if (profiles) {
            p = ngx_http_consent_status_profiles_text(p, profiles);
        }

        ngx_str_set(&r->headers_out.content_type,
                    "text/plain; version=0.0.4");
    }

    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;
    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = p - buf;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->pos = buf;
    b->last = p;
    b->memory = 1;
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}



/*
 * Batched delivery (consent_delivery batch, ngx_http_consent_batch.c):
 * per destination queue gauges (the workers' sum), batches, retries and
 * dropped events by reason; listed once some location uses batch.
 */

static const char  *ngx_http_consent_status_batch_reasons[] = {
    "retries_exhausted", "backlog_full", "shutdown"
};


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


/* name{destination="d"[,reason="r"]} value */

static u_char *
ngx_http_consent_status_batch_line(u_char *p, const char *name,
    ngx_str_t *dest, const char *reason, ngx_atomic_uint_t v)
{
    p = ngx_sprintf(p, "%s{destination=\"", name);
    p = ngx_http_consent_status_label(p, dest->data, dest->len);

    if (reason) {
        p = ngx_sprintf(p, "\",reason=\"%s", reason);
    }

    /* a gauge is a sum of the workers' deltas, read as signed */
    return ngx_sprintf(p, "\"} %A\n", (ngx_atomic_int_t) v);
}


static u_char *
ngx_http_consent_status_batch_text(u_char *p,
    ngx_http_consent_status_conf_t *scf)
{
    ngx_uint_t                       i, k, f;
    ngx_http_consent_status_slot_t  *slot;
    ngx_http_consent_status_name_t  *n;

    static const char  *names[] = {
        "ngx_consent_batch_queue_events", "ngx_consent_batch_queue_bytes",
        "ngx_consent_batches_total", "ngx_consent_batch_retries_total"
    };

    if (!scf->batch) {
        return p;
    }

    n = scf->names.elts;

    for (f = 0; f < 5; f++) {
        switch (f) {
        case 0:
            p = ngx_http_consent_status_help(p,
                    "ngx_consent_batch_queue_events", "gauge",
                    "Events queued for batched delivery, all workers.");
            break;
        case 1:
            p = ngx_http_consent_status_help(p,
                    "ngx_consent_batch_queue_bytes", "gauge",
                    "Memory of the queued events, all workers.");
            break;
        case 2:
            p = ngx_http_consent_status_help(p, "ngx_consent_batches_total",
                    "counter", "Batches a destination answered with 2xx.");
            break;
        case 3:
            p = ngx_http_consent_status_help(p,
                    "ngx_consent_batch_retries_total", "counter",
                    "Failed batches scheduled to be sent again.");
            break;
        default:
            p = ngx_http_consent_status_help(p,
                    "ngx_consent_batch_dropped_total", "counter",
                    "Queued events dropped, by reason (also failed).");
        }

        for (i = 0; i < scf->names.nelts; i++) {
            slot = n[i].slot;

            if (f < 4) {
                p = ngx_http_consent_status_batch_line(p, names[f],
                                          &n[i].name, NULL, slot->batch[f]);
                continue;
            }

            for (k = 0; k < 3; k++) {
                p = ngx_http_consent_status_batch_line(p,
                        "ngx_consent_batch_dropped_total", &n[i].name,
                        ngx_http_consent_status_batch_reasons[k],
                        slot->batch[NGX_HTTP_CONSENT_BATCH_DROP_RETRIES + k]);
            }
        }
    }

    return p;
}


static u_char *
ngx_http_consent_status_batch_json(u_char *p,
    ngx_http_consent_status_conf_t *scf)
{
    ngx_uint_t                       i, k;
    ngx_http_consent_status_slot_t  *slot;
    ngx_http_consent_status_name_t  *n;

    if (!scf->batch) {
        return p;
    }

    n = scf->names.elts;
    p = ngx_cpymem(p, ",\"batch\":{", 10);

    for (i = 0; i < scf->names.nelts; i++) {
        slot = n[i].slot;

        if (i) {
            *p++ = ',';
        }

        p = ngx_http_consent_json_str(p, n[i].name.data, n[i].name.len);
        p = ngx_sprintf(p, ":{\"queue_events\":%A,\"queue_bytes\":%A,"
                           "\"batches\":%uA,\"retries\":%uA,\"dropped\":{",
                        (ngx_atomic_int_t) slot->batch[0],
                        (ngx_atomic_int_t) slot->batch[1],
                        slot->batch[2], slot->batch[3]);

        for (k = 0; k < 3; k++) {
            p = ngx_sprintf(p, "%s\"%s\":%uA", k ? "," : "",
                            ngx_http_consent_status_batch_reasons[k],
                            slot->batch[NGX_HTTP_CONSENT_BATCH_DROP_RETRIES
                                        + k]);
        }

        p = ngx_cpymem(p, "}}", 2);
    }

    *p++ = '}';

    return p;
}
