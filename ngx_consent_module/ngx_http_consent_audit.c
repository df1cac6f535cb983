
/*
 * ngx_consent: audit trail of configuration changes.
 *
 * At configuration time the categories, destinations and mappings each
 * level declares are taken as records keyed by (kind, scope, id).  When
 * the master commits a configuration (init_module: the cycle can no
 * longer fail, and "nginx -t" is excluded), the records are compared
 * with the last recorded state, the differences are appended to the
 * trail as JSON lines, and the state is saved to "<file>.state" so that
 * a restart compares against it too.
 */

#include "ngx_http_consent.h"


#define NGX_HTTP_CONSENT_AUDIT_CATEGORY  0
#define NGX_HTTP_CONSENT_AUDIT_DEST      1
#define NGX_HTTP_CONSENT_AUDIT_MAPPING   2

#define NGX_HTTP_CONSENT_AUDIT_VERSION   "1"

/* a state file larger than this is not one we wrote */
#define NGX_HTTP_CONSENT_AUDIT_MAX_STATE  (64 * 1024 * 1024)


typedef struct {
    ngx_uint_t                  type;
    ngx_str_t                   scope;      /* "http", "server > ..." */
    ngx_str_t                   scope_at;   /* file:line of the block */
    ngx_str_t                   id;         /* category id, destination */
    ngx_str_t                   name;       /* name, uri, category id */
    ngx_flag_t                  on;         /* enabled, enforce */
    ngx_str_t                   at;         /* file:line of the directive */
    ngx_uint_t                  matched;    /* diff: has a counterpart */
} ngx_http_consent_audit_rec_t;


struct ngx_http_consent_audit_conf_s {
    ngx_str_t                   path;       /* null-terminated */
    ngx_str_t                   state;      /* path ".state" */
    ngx_str_t                   state_tmp;  /* path ".state.tmp" */
    ngx_array_t                 recs;       /* this configuration's */
    ngx_array_t                *scopes;     /* of ngx_str_t, while building */
};


typedef struct {
    u_char                     *start;
    u_char                     *pos;
    u_char                     *end;
    ngx_pool_t                 *pool;
    ngx_uint_t                  failed;
} ngx_http_consent_audit_buf_t;


static ngx_int_t ngx_http_consent_audit_level(ngx_conf_t *cf,
    ngx_http_consent_audit_conf_t *acf, ngx_http_consent_loc_conf_t *lcf,
    ngx_str_t *scope, ngx_str_t *scope_at);
static ngx_int_t ngx_http_consent_audit_add(ngx_conf_t *cf,
    ngx_http_consent_audit_conf_t *acf, ngx_http_consent_audit_rec_t *rec,
    u_char *file, ngx_uint_t line);
static ngx_int_t ngx_http_consent_audit_locations(ngx_conf_t *cf,
    ngx_http_consent_audit_conf_t *acf, ngx_queue_t *locations,
    ngx_str_t *parent);
static ngx_int_t ngx_http_consent_audit_scope(ngx_conf_t *cf,
    ngx_http_consent_audit_conf_t *acf, ngx_str_t *scope);
static ngx_int_t ngx_http_consent_audit_at(ngx_pool_t *pool, ngx_str_t *at,
    u_char *file, ngx_uint_t line);

static ngx_array_t *ngx_http_consent_audit_previous(ngx_cycle_t *cycle,
    ngx_http_consent_audit_conf_t *acf, ngx_pool_t *pool, ngx_str_t *text);
static ngx_int_t ngx_http_consent_audit_read(ngx_cycle_t *cycle,
    ngx_str_t *name, ngx_pool_t *pool, ngx_str_t *text);
static ngx_array_t *ngx_http_consent_audit_parse(ngx_pool_t *pool,
    ngx_str_t *text, const char **err);
static ngx_array_t *ngx_http_consent_audit_old_cycle(ngx_cycle_t *cycle,
    ngx_http_consent_audit_conf_t *acf, ngx_pool_t *pool);
static void ngx_http_consent_audit_diff(ngx_http_consent_audit_buf_t *b,
    ngx_array_t *prev, ngx_array_t *recs, ngx_str_t *time);
static int ngx_libc_cdecl ngx_http_consent_audit_cmp(const void *one,
    const void *two);
static void ngx_http_consent_audit_line(ngx_http_consent_audit_buf_t *b,
    ngx_str_t *time, const char *change, ngx_http_consent_audit_rec_t *r,
    ngx_str_t *old, ngx_uint_t flag);
static void ngx_http_consent_audit_json(ngx_http_consent_audit_buf_t *b,
    ngx_http_consent_audit_rec_t *r, ngx_str_t *old, ngx_uint_t flag);
static void ngx_http_consent_audit_state(ngx_http_consent_audit_buf_t *b,
    ngx_array_t *recs);
static ngx_int_t ngx_http_consent_audit_write(ngx_cycle_t *cycle,
    ngx_str_t *name, ngx_str_t *tmp, u_char *data, size_t len);

static void ngx_http_consent_audit_raw(ngx_http_consent_audit_buf_t *b,
    const char *s);
static void ngx_http_consent_audit_field(ngx_http_consent_audit_buf_t *b,
    const char *key, ngx_str_t *value);
static u_char *ngx_http_consent_audit_reserve(ngx_http_consent_audit_buf_t *b,
    size_t n);


static const char  *ngx_http_consent_audit_types[] = {
    "category", "destination", "mapping"
};

/* JSON keys of a record's id, name and flag, by type */
static const char  *ngx_http_consent_audit_keys[][3] = {
    { "category", "name", "enabled" },
    { "destination", "uri", "enforce" },
    { "destination", "category", NULL }
};

static const char  *ngx_http_consent_audit_old_keys[] = {
    "old_name", "old_uri", NULL
};


char *
ngx_http_consent_audit_log(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_consent_main_conf_t *cmcf = conf;

    u_char                         *p;
    ngx_str_t                      *value, path;
    ngx_http_consent_audit_conf_t  *acf;

    if (cmcf->audit) {
        return "is duplicate";
    }

    value = cf->args->elts;
    path = value[1];

    if (path.len == 0) {
        return "has an empty file name";
    }

    if (ngx_conf_full_name(cf->cycle, &path, 0) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    acf = ngx_pcalloc(cf->pool, sizeof(ngx_http_consent_audit_conf_t));
    if (acf == NULL) {
        return NGX_CONF_ERROR;
    }

    /* one allocation: "path\0path.state\0path.state.tmp\0" */

    p = ngx_pnalloc(cf->pool, 3 * path.len + sizeof(".state")
                              + sizeof(".state.tmp") + 1);
    if (p == NULL) {
        return NGX_CONF_ERROR;
    }

    acf->path.data = p;
    acf->path.len = path.len;
    p = ngx_cpymem(p, path.data, path.len);
    *p++ = '\0';

    acf->state.data = p;
    acf->state.len = path.len + sizeof(".state") - 1;
    p = ngx_cpymem(p, path.data, path.len);
    p = ngx_cpymem(p, ".state", sizeof(".state"));

    acf->state_tmp.data = p;
    acf->state_tmp.len = path.len + sizeof(".state.tmp") - 1;
    p = ngx_cpymem(p, path.data, path.len);
    ngx_memcpy(p, ".state.tmp", sizeof(".state.tmp"));

    if (ngx_array_init(&acf->recs, cf->pool, 16,
                       sizeof(ngx_http_consent_audit_rec_t))
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    cmcf->audit = acf;

    return NGX_CONF_OK;
}


/*
 * Called from init_main_conf: parsing is over, the levels are not merged
 * yet (a NULL list is one the level does not declare) and the location
 * queues are still those of the configuration file.
 */

ngx_int_t
ngx_http_consent_audit_snapshot(ngx_conf_t *cf,
    ngx_http_consent_main_conf_t *cmcf)
{
    ngx_str_t                       scope, scope_at, *name;
    ngx_uint_t                      s;
    ngx_http_conf_ctx_t            *ctx;
    ngx_http_server_name_t         *sn;
    ngx_http_core_srv_conf_t      **cscfp, *cscf;
    ngx_http_core_loc_conf_t       *clcf;
    ngx_http_core_main_conf_t      *core;
    ngx_http_consent_audit_conf_t  *acf;

    acf = cmcf->audit;

    if (acf == NULL) {
        return NGX_OK;
    }

    acf->scopes = ngx_array_create(cf->temp_pool, 16, sizeof(ngx_str_t));
    if (acf->scopes == NULL) {
        return NGX_ERROR;
    }

    ctx = cf->ctx;

    /* core's create_srv_conf notes where each srv conf was created: for
     * the http level, the http block */

    cscf = ctx->srv_conf[ngx_http_core_module.ctx_index];

    ngx_str_set(&scope, "http");

    if (ngx_http_consent_audit_at(cf->pool, &scope_at, cscf->file_name,
                                  cscf->line)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (ngx_http_consent_audit_level(cf, acf,
                          ctx->loc_conf[ngx_http_consent_module.ctx_index],
                          &scope, &scope_at)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    core = ctx->main_conf[ngx_http_core_module.ctx_index];
    cscfp = core->servers.elts;

    for (s = 0; s < core->servers.nelts; s++) {
        cscf = cscfp[s];

        /* a server is named by its first server_name; unnamed or
         * repeated names get "#N" (see ngx_http_consent_audit_scope) */

        sn = cscf->server_names.elts;
        name = (cscf->server_names.nelts && sn[0].name.len)
               ? &sn[0].name : NULL;

        scope.len = sizeof("server ") - 1 + (name ? name->len : 0);
        scope.data = ngx_pnalloc(cf->pool, scope.len);
        if (scope.data == NULL) {
            return NGX_ERROR;
        }

        if (name) {
            ngx_sprintf(scope.data, "server %V", name);

        } else {
            scope.len--;
            ngx_memcpy(scope.data, "server", scope.len);
        }

        if (ngx_http_consent_audit_scope(cf, acf, &scope) != NGX_OK
            || ngx_http_consent_audit_at(cf->pool, &scope_at,
                                         cscf->file_name, cscf->line)
               != NGX_OK)
        {
            return NGX_ERROR;
        }

        if (ngx_http_consent_audit_level(cf, acf,
                    cscf->ctx->loc_conf[ngx_http_consent_module.ctx_index],
                    &scope, &scope_at)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        clcf = cscf->ctx->loc_conf[ngx_http_core_module.ctx_index];

        if (ngx_http_consent_audit_locations(cf, acf, clcf->locations,
                                             &scope)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    acf->scopes = NULL;

    return NGX_OK;
}


static ngx_int_t
ngx_http_consent_audit_locations(ngx_conf_t *cf,
    ngx_http_consent_audit_conf_t *acf, ngx_queue_t *locations,
    ngx_str_t *parent)
{
    u_char                     *p;
    size_t                      len;
    ngx_str_t                   scope, scope_at;
    const char                 *mod;
    ngx_queue_t                *q;
    ngx_http_core_loc_conf_t   *clcf;
    ngx_http_location_queue_t  *lq;

    if (locations == NULL) {
        return NGX_OK;
    }

    for (q = ngx_queue_head(locations);
         q != ngx_queue_sentinel(locations);
         q = ngx_queue_next(q))
    {
        lq = (ngx_http_location_queue_t *) q;
        clcf = lq->exact ? lq->exact : lq->inclusive;

        /* "if" blocks and limit_except cannot hold consent directives */
        if (clcf->noname) {
            continue;
        }

        if (clcf->exact_match) {
            mod = "= ";

        } else if (clcf->noregex) {
            mod = "^~ ";

#if (NGX_PCRE)
        } else if (clcf->regex) {
            mod = "~ ";
#endif

        } else {
            mod = "";
        }

        len = parent->len + sizeof(" > location ") - 1 + ngx_strlen(mod)
              + clcf->name.len;

        p = ngx_pnalloc(cf->pool, len);
        if (p == NULL) {
            return NGX_ERROR;
        }

        scope.data = p;
        scope.len = ngx_sprintf(p, "%V > location %s%V", parent, mod,
                                &clcf->name)
                    - p;

        if (ngx_http_consent_audit_scope(cf, acf, &scope) != NGX_OK
            || ngx_http_consent_audit_at(cf->pool, &scope_at, lq->file_name,
                                         lq->line)
               != NGX_OK)
        {
            return NGX_ERROR;
        }

        if (ngx_http_consent_audit_level(cf, acf,
                              clcf->loc_conf[ngx_http_consent_module.ctx_index],
                              &scope, &scope_at)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        if (ngx_http_consent_audit_locations(cf, acf, clcf->locations, &scope)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/*
 * Scopes are the keys across reloads, so they must be unique: a scope
 * seen before ("server" twice, "~" and "~*" with the same regex) gets
 * " #2", " #3"...
 */

static ngx_int_t
ngx_http_consent_audit_scope(ngx_conf_t *cf,
    ngx_http_consent_audit_conf_t *acf, ngx_str_t *scope)
{
    u_char      *p;
    ngx_str_t   *s, try;
    ngx_uint_t   i, n;

    if (ngx_http_consent_json_utf8(cf->pool, scope) != NGX_OK) {
        return NGX_ERROR;
    }

    try = *scope;
    p = NULL;

    for (n = 2; /* void */; n++) {

        s = acf->scopes->elts;

        for (i = 0; i < acf->scopes->nelts; i++) {
            if (s[i].len == try.len
                && ngx_strncmp(s[i].data, try.data, try.len) == 0)
            {
                break;
            }
        }

        if (i == acf->scopes->nelts) {
            break;
        }

        if (p == NULL) {
            p = ngx_pnalloc(cf->pool, scope->len + 2 + NGX_INT_T_LEN);
            if (p == NULL) {
                return NGX_ERROR;
            }

            try.data = p;
        }

        try.len = ngx_sprintf(p, "%V #%ui", scope, n) - p;
    }

    s = ngx_array_push(acf->scopes);
    if (s == NULL) {
        return NGX_ERROR;
    }

    *s = try;
    *scope = try;

    return NGX_OK;
}


static ngx_int_t
ngx_http_consent_audit_level(ngx_conf_t *cf,
    ngx_http_consent_audit_conf_t *acf, ngx_http_consent_loc_conf_t *lcf,
    ngx_str_t *scope, ngx_str_t *scope_at)
{
    ngx_str_t                     *names;
    ngx_uint_t                     i, j, k;
    ngx_http_consent_category_t   *cat;
    ngx_http_consent_dest_conf_t  *dest;
    ngx_http_consent_audit_rec_t   rec;

    if (lcf == NULL) {
        return NGX_OK;
    }

    ngx_memzero(&rec, sizeof(ngx_http_consent_audit_rec_t));
    rec.scope = *scope;
    rec.scope_at = *scope_at;

    if (lcf->categories) {
        cat = lcf->categories->elts;

        for (i = 0; i < lcf->categories->nelts; i++) {
            rec.type = NGX_HTTP_CONSENT_AUDIT_CATEGORY;
            rec.id = cat[i].id;
            rec.name = cat[i].name;
            rec.on = cat[i].enabled ? 1 : 0;

            if (ngx_http_consent_audit_add(cf, acf, &rec, cat[i].file,
                                           cat[i].line)
                != NGX_OK)
            {
                return NGX_ERROR;
            }
        }
    }

    if (lcf->dests == NULL) {
        return NGX_OK;
    }

    dest = lcf->dests->elts;

    for (i = 0; i < lcf->dests->nelts; i++) {
        rec.type = NGX_HTTP_CONSENT_AUDIT_DEST;
        rec.id = dest[i].name;
        rec.name = dest[i].uri;
        rec.on = dest[i].enforce ? 1 : 0;

        if (ngx_http_consent_audit_add(cf, acf, &rec, dest[i].file,
                                       dest[i].line)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        names = dest[i].categories.elts;

        for (j = 0; j < dest[i].categories.nelts; j++) {

            /* "C1 C1" is one mapping */
            for (k = 0; k < j; k++) {
                if (names[k].len == names[j].len
                    && ngx_strncmp(names[k].data, names[j].data,
                                   names[j].len) == 0)
                {
                    break;
                }
            }

            if (k < j) {
                continue;
            }

            rec.type = NGX_HTTP_CONSENT_AUDIT_MAPPING;
            rec.id = dest[i].name;
            rec.name = names[j];
            rec.on = 0;

            if (ngx_http_consent_audit_add(cf, acf, &rec, dest[i].file,
                                           dest[i].line)
                != NGX_OK)
            {
                return NGX_ERROR;
            }
        }
    }

    return NGX_OK;
}


/* appends a copy of rec with its directive's file:line, as valid UTF-8 */

static ngx_int_t
ngx_http_consent_audit_add(ngx_conf_t *cf,
    ngx_http_consent_audit_conf_t *acf, ngx_http_consent_audit_rec_t *rec,
    u_char *file, ngx_uint_t line)
{
    ngx_http_consent_audit_rec_t  *r;

    r = ngx_array_push(&acf->recs);
    if (r == NULL) {
        return NGX_ERROR;
    }

    *r = *rec;

    if (ngx_http_consent_audit_at(cf->pool, &r->at, file, line) != NGX_OK
        || ngx_http_consent_json_utf8(cf->pool, &r->id) != NGX_OK
        || ngx_http_consent_json_utf8(cf->pool, &r->name) != NGX_OK)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_consent_audit_at(ngx_pool_t *pool, ngx_str_t *at, u_char *file,
    ngx_uint_t line)
{
    size_t  len;

    if (file == NULL) {
        ngx_str_null(at);
        return NGX_OK;
    }

    len = ngx_strlen(file);

    at->data = ngx_pnalloc(pool, len + 1 + NGX_INT_T_LEN);
    if (at->data == NULL) {
        return NGX_ERROR;
    }

    at->len = ngx_sprintf(at->data, "%s:%ui", file, line) - at->data;

    return ngx_http_consent_json_utf8(pool, at);
}


/*
 * init_module: runs in the master (or the single process) once the new
 * cycle is committed, before the old one is released; blocking file
 * I/O is fine here.  It never fails: the trail must not stop nginx.
 */

ngx_int_t
ngx_http_consent_audit_init_module(ngx_cycle_t *cycle)
{
    struct timeval                  tv;
    ngx_tm_t                        tm;
    ngx_str_t                       text, time;
    ngx_pool_t                     *pool;
    ngx_array_t                    *prev;
    ngx_http_consent_audit_buf_t    lines, state;
    ngx_http_consent_audit_conf_t  *acf;
    ngx_http_consent_main_conf_t   *cmcf;
    u_char                          tbuf[sizeof("2024-01-01T00:00:00.000Z")];

    if (ngx_test_config) {
        return NGX_OK;
    }

    cmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_consent_module);

    if (cmcf == NULL || cmcf->audit == NULL) {
        return NGX_OK;
    }

    acf = cmcf->audit;

    pool = ngx_create_pool(16384, cycle->log);
    if (pool == NULL) {
        return NGX_OK;
    }

    ngx_gettimeofday(&tv);
    ngx_gmtime(tv.tv_sec, &tm);

    time.data = tbuf;
    time.len = ngx_sprintf(tbuf, "%4d-%02d-%02dT%02d:%02d:%02d.%03dZ",
                           tm.ngx_tm_year, tm.ngx_tm_mon, tm.ngx_tm_mday,
                           tm.ngx_tm_hour, tm.ngx_tm_min, tm.ngx_tm_sec,
                           (int) (tv.tv_usec / 1000))
               - tbuf;

    prev = ngx_http_consent_audit_previous(cycle, acf, pool, &text);
    if (prev == NULL) {
        goto done;
    }

    ngx_memzero(&lines, sizeof(ngx_http_consent_audit_buf_t));
    ngx_memzero(&state, sizeof(ngx_http_consent_audit_buf_t));
    lines.pool = pool;
    state.pool = pool;

    ngx_http_consent_audit_diff(&lines, prev, &acf->recs, &time);
    ngx_http_consent_audit_state(&state, &acf->recs);

    if (lines.failed || state.failed) {
        ngx_log_error(NGX_LOG_CRIT, cycle->log, 0,
                      "consent audit: out of memory, \"%V\" not written",
                      &acf->path);
        goto done;
    }

    if (lines.pos != lines.start
        && ngx_http_consent_audit_write(cycle, &acf->path, NULL, lines.start,
                                        lines.pos - lines.start)
           != NGX_OK)
    {
        /* the state stays as recorded: the next cycle records these
         * changes again */
        goto done;
    }

    if ((size_t) (state.pos - state.start) != text.len
        || ngx_memcmp(state.start, text.data, text.len) != 0)
    {
        (void) ngx_http_consent_audit_write(cycle, &acf->state,
                                            &acf->state_tmp, state.start,
                                            state.pos - state.start);
    }

done:

    ngx_destroy_pool(pool);

    return NGX_OK;
}


/*
 * The previous state: the one the trail last recorded (the state file),
 * else the previous cycle's configuration if it wrote the same trail,
 * else none (everything is created).  text is the state file's content.
 */

static ngx_array_t *
ngx_http_consent_audit_previous(ngx_cycle_t *cycle,
    ngx_http_consent_audit_conf_t *acf, ngx_pool_t *pool, ngx_str_t *text)
{
    ngx_int_t     rc;
    const char   *err;
    ngx_array_t  *prev;

    ngx_str_null(text);

    rc = ngx_http_consent_audit_read(cycle, &acf->state, pool, text);

    if (rc == NGX_OK) {
        err = NULL;
        prev = ngx_http_consent_audit_parse(pool, text, &err);

        if (prev) {
            return prev;
        }

        if (err == NULL) {
            return NULL;
        }

        ngx_log_error(NGX_LOG_ERR, cycle->log, 0,
                      "consent audit: ignoring invalid state file \"%V\": %s",
                      &acf->state, err);
    }

    if (rc == NGX_ERROR) {
        return NULL;
    }

    prev = ngx_http_consent_audit_old_cycle(cycle, acf, pool);
    if (prev) {
        return prev;
    }

    return ngx_array_create(pool, 1, sizeof(ngx_http_consent_audit_rec_t));
}


/* NGX_OK: read, NGX_DECLINED: no usable file, NGX_ERROR: no memory */

static ngx_int_t
ngx_http_consent_audit_read(ngx_cycle_t *cycle, ngx_str_t *name,
    ngx_pool_t *pool, ngx_str_t *text)
{
    u_char           *p;
    size_t            size;
    ssize_t           n;
    ngx_fd_t          fd;
    ngx_err_t         err;
    ngx_file_info_t   fi;

    fd = ngx_open_file(name->data, NGX_FILE_RDONLY|O_NOFOLLOW, NGX_FILE_OPEN,
                       0);

    if (fd == NGX_INVALID_FILE) {
        err = ngx_errno;

        if (err != NGX_ENOENT) {
            ngx_log_error(NGX_LOG_CRIT, cycle->log, err,
                          "consent audit: " ngx_open_file_n " \"%V\" failed",
                          name);
        }

        return NGX_DECLINED;
    }

    if (ngx_fd_info(fd, &fi) == NGX_FILE_ERROR) {
        ngx_log_error(NGX_LOG_CRIT, cycle->log, ngx_errno,
                      "consent audit: " ngx_fd_info_n " \"%V\" failed", name);
        goto failed;
    }

    if (ngx_file_size(&fi) > NGX_HTTP_CONSENT_AUDIT_MAX_STATE) {
        ngx_log_error(NGX_LOG_ERR, cycle->log, 0,
                      "consent audit: ignoring state file \"%V\": "
                      "too large", name);
        goto failed;
    }

    size = (size_t) ngx_file_size(&fi);

    p = ngx_pnalloc(pool, size + 1);
    if (p == NULL) {
        (void) ngx_close_file(fd);
        return NGX_ERROR;
    }

    text->data = p;
    text->len = 0;

    while (text->len < size) {
        n = ngx_read_fd(fd, p + text->len, size - text->len);

        if (n == -1) {
            ngx_log_error(NGX_LOG_CRIT, cycle->log, ngx_errno,
                          "consent audit: " ngx_read_fd_n " \"%V\" failed",
                          name);
            goto failed;
        }

        if (n == 0) {
            break;
        }

        text->len += n;
    }

    (void) ngx_close_file(fd);

    return NGX_OK;

failed:

    (void) ngx_close_file(fd);
    ngx_str_null(text);

    return NGX_DECLINED;
}


/* NULL with *err set: not a state file; NULL alone: no memory */

static ngx_array_t *
ngx_http_consent_audit_parse(ngx_pool_t *pool, ngx_str_t *text,
    const char **err)
{
    u_char                        *base;
    const char                    *name, **keys;
    uint32_t                       v, arr, i, k, idx[5];
    ngx_str_t                     *dst[5];
    ngx_uint_t                     t;
    ngx_array_t                   *recs;
    consent_json_t                 js;
    consent_json_tok_t            *tok;
    ngx_http_consent_audit_rec_t  *r;

    base = text->data;

    if (consent_json_scan(&js, base, text->len, ngx_http_consent_palloc,
                          pool)
        != 0)
    {
        *err = (js.err == CONSENT_JSON_ENOMEM) ? NULL : "not JSON";
        return NULL;
    }

    tok = js.tok;
    *err = "unexpected content";

    v = consent_json_member(base, tok, 0, "version", 7);

    if (v == 0
        || tok[v].type != CONSENT_JSON_NUMBER
        || tok[v].end - tok[v].start != 1
        || base[tok[v].start] != '1')
    {
        *err = "unknown version";
        return NULL;
    }

    arr = consent_json_member(base, tok, 0, "records", 7);

    if (arr == 0 || tok[arr].type != CONSENT_JSON_ARRAY) {
        return NULL;
    }

    recs = ngx_array_create(pool, 16, sizeof(ngx_http_consent_audit_rec_t));
    if (recs == NULL) {
        *err = NULL;
        return NULL;
    }

    for (i = arr + 1; i < tok[arr].next; i = tok[i].next) {

        k = consent_json_member(base, tok, i, "type", 4);

        if (k == 0 || tok[k].type != CONSENT_JSON_STRING) {
            return NULL;
        }

        for (t = 0; t < 3; t++) {
            name = ngx_http_consent_audit_types[t];

            if (consent_json_str_eq(base, &tok[k], name, ngx_strlen(name))) {
                break;
            }
        }

        if (t == 3) {
            return NULL;
        }

        r = ngx_array_push(recs);
        if (r == NULL) {
            *err = NULL;
            return NULL;
        }

        ngx_memzero(r, sizeof(ngx_http_consent_audit_rec_t));
        r->type = t;

        dst[0] = &r->scope;
        dst[1] = &r->scope_at;
        dst[2] = &r->at;
        dst[3] = &r->id;
        dst[4] = &r->name;

        keys = ngx_http_consent_audit_keys[t];

        idx[0] = consent_json_member(base, tok, i, "scope", 5);
        idx[1] = consent_json_member(base, tok, i, "scope_at", 8);
        idx[2] = consent_json_member(base, tok, i, "at", 2);
        idx[3] = consent_json_member(base, tok, i, keys[0],
                                     ngx_strlen(keys[0]));
        idx[4] = consent_json_member(base, tok, i, keys[1],
                                     ngx_strlen(keys[1]));

        for (k = 0; k < 5; k++) {
            if (idx[k] == 0 || tok[idx[k]].type != CONSENT_JSON_STRING) {
                return NULL;
            }

            dst[k]->data = ngx_pnalloc(pool, tok[idx[k]].end
                                             - tok[idx[k]].start);
            if (dst[k]->data == NULL) {
                *err = NULL;
                return NULL;
            }

            dst[k]->len = consent_json_str_decode(base, &tok[idx[k]],
                                                  dst[k]->data);
        }

        if (keys[2] == NULL) {
            continue;
        }

        v = consent_json_member(base, tok, i, keys[2], ngx_strlen(keys[2]));

        if (v == 0
            || (tok[v].type != CONSENT_JSON_TRUE
                && tok[v].type != CONSENT_JSON_FALSE))
        {
            return NULL;
        }

        r->on = (tok[v].type == CONSENT_JSON_TRUE);
    }

    return recs;
}


/*
 * The previous cycle's records, when it wrote the same trail.  Its
 * configuration is still allocated during init_module.  The module's
 * ctx_index is that of the previous cycle only if the previous cycle
 * had this module loaded (nginx keeps the index of a module that stays
 * loaded); otherwise its main_conf array may not even reach the index.
 */

static ngx_array_t *
ngx_http_consent_audit_old_cycle(ngx_cycle_t *cycle,
    ngx_http_consent_audit_conf_t *acf, ngx_pool_t *pool)
{
    ngx_uint_t                      i;
    ngx_cycle_t                    *old;
    ngx_array_t                    *recs;
    ngx_http_consent_audit_conf_t  *oacf;
    ngx_http_consent_main_conf_t   *ocmcf;

    old = cycle->old_cycle;

    if (old == NULL || ngx_is_init_cycle(old) || old->modules == NULL) {
        return NULL;
    }

    for (i = 0; old->modules[i]; i++) {
        if (old->modules[i] == &ngx_http_consent_module) {
            break;
        }
    }

    if (old->modules[i] == NULL) {
        return NULL;
    }

    ocmcf = ngx_http_cycle_get_module_main_conf(old, ngx_http_consent_module);

    if (ocmcf == NULL || ocmcf->audit == NULL) {
        return NULL;
    }

    oacf = ocmcf->audit;

    if (oacf->path.len != acf->path.len
        || ngx_strncmp(oacf->path.data, acf->path.data, acf->path.len) != 0)
    {
        return NULL;
    }

    /* a copy: the diff marks records */

    recs = ngx_array_create(pool, oacf->recs.nelts + 1,
                            sizeof(ngx_http_consent_audit_rec_t));
    if (recs == NULL) {
        return NULL;
    }

    ngx_memcpy(recs->elts, oacf->recs.elts,
               oacf->recs.nelts * sizeof(ngx_http_consent_audit_rec_t));
    recs->nelts = oacf->recs.nelts;

    return recs;
}


/*
 * Removals first, in the previous order (mappings, destinations,
 * categories), then creations and changes in configuration order
 * (categories, destinations, mappings): a category exists before a
 * mapping to it and outlives it.
 */

static void
ngx_http_consent_audit_diff(ngx_http_consent_audit_buf_t *b,
    ngx_array_t *prev, ngx_array_t *recs, ngx_str_t *time)
{
    void                           *hit;
    ngx_int_t                       t;
    ngx_uint_t                      i;
    ngx_http_consent_audit_rec_t   *o, *n, *m, **sorted, **found;

    o = prev->elts;
    n = recs->elts;

    sorted = ngx_palloc(b->pool, (prev->nelts + 1) * sizeof(void *));
    found = ngx_pcalloc(b->pool, (recs->nelts + 1) * sizeof(void *));
    if (sorted == NULL || found == NULL) {
        b->failed = 1;
        return;
    }

    for (i = 0; i < prev->nelts; i++) {
        o[i].matched = 0;
        sorted[i] = &o[i];
    }

    ngx_qsort(sorted, prev->nelts, sizeof(void *),
              ngx_http_consent_audit_cmp);

    for (i = 0; i < recs->nelts; i++) {
        m = &n[i];

        hit = prev->nelts ? bsearch(&m, sorted, prev->nelts, sizeof(void *),
                                    ngx_http_consent_audit_cmp)
                          : NULL;

        if (hit) {
            found[i] = *(ngx_http_consent_audit_rec_t **) hit;
            found[i]->matched = 1;
        }
    }

    for (t = NGX_HTTP_CONSENT_AUDIT_MAPPING;
         t >= NGX_HTTP_CONSENT_AUDIT_CATEGORY;
         t--)
    {
        for (i = 0; i < prev->nelts; i++) {
            if (o[i].type != (ngx_uint_t) t || o[i].matched) {
                continue;
            }

            ngx_http_consent_audit_line(b, time,
                (t == NGX_HTTP_CONSENT_AUDIT_MAPPING) ? "mapping_removed"
                : (t == NGX_HTTP_CONSENT_AUDIT_DEST) ? "destination_removed"
                : "category_removed",
                &o[i], NULL, 0);
        }
    }

    for (t = NGX_HTTP_CONSENT_AUDIT_CATEGORY;
         t <= NGX_HTTP_CONSENT_AUDIT_MAPPING;
         t++)
    {
        for (i = 0; i < recs->nelts; i++) {
            if (n[i].type != (ngx_uint_t) t) {
                continue;
            }

            m = found[i];

            if (m == NULL) {
                ngx_http_consent_audit_line(b, time,
                    (t == NGX_HTTP_CONSENT_AUDIT_MAPPING) ? "mapping_created"
                    : (t == NGX_HTTP_CONSENT_AUDIT_DEST)
                      ? "destination_created" : "category_created",
                    &n[i], NULL, 1);
                continue;
            }

            if (t == NGX_HTTP_CONSENT_AUDIT_MAPPING) {
                continue;
            }

            if (m->name.len != n[i].name.len
                || ngx_strncmp(m->name.data, n[i].name.data, n[i].name.len)
                   != 0)
            {
                ngx_http_consent_audit_line(b, time,
                    (t == NGX_HTTP_CONSENT_AUDIT_DEST)
                    ? "destination_uri_changed" : "category_renamed",
                    &n[i], &m->name, 0);
            }

            if (m->on != n[i].on) {
                ngx_http_consent_audit_line(b, time,
                    (t == NGX_HTTP_CONSENT_AUDIT_DEST)
                    ? (n[i].on ? "destination_enforce_on"
                               : "destination_enforce_off")
                    : (n[i].on ? "category_turned_on"
                               : "category_turned_off"),
                    &n[i], NULL, 0);
            }
        }
    }
}


static ngx_int_t
ngx_http_consent_audit_str_cmp(ngx_str_t *a, ngx_str_t *b)
{
    ngx_int_t  rc;

    rc = ngx_memn2cmp(a->data, b->data, a->len, b->len);

    return (rc > 0) - (rc < 0);
}


static int ngx_libc_cdecl
ngx_http_consent_audit_cmp(const void *one, const void *two)
{
    ngx_int_t                      rc;
    ngx_http_consent_audit_rec_t  *a, *b;

    a = *(ngx_http_consent_audit_rec_t **) one;
    b = *(ngx_http_consent_audit_rec_t **) two;

    if (a->type != b->type) {
        return (a->type < b->type) ? -1 : 1;
    }

    rc = ngx_http_consent_audit_str_cmp(&a->scope, &b->scope);
    if (rc) {
        return rc;
    }

    rc = ngx_http_consent_audit_str_cmp(&a->id, &b->id);
    if (rc || a->type != NGX_HTTP_CONSENT_AUDIT_MAPPING) {
        return rc;
    }

    return ngx_http_consent_audit_str_cmp(&a->name, &b->name);
}


static void
ngx_http_consent_audit_line(ngx_http_consent_audit_buf_t *b, ngx_str_t *time,
    const char *change, ngx_http_consent_audit_rec_t *r, ngx_str_t *old,
    ngx_uint_t flag)
{
    ngx_str_t  s;

    ngx_http_consent_audit_raw(b, "{");
    ngx_http_consent_audit_field(b, "time", time);
    s.data = (u_char *) change;
    s.len = ngx_strlen(change);
    ngx_http_consent_audit_field(b, "change", &s);
    ngx_http_consent_audit_json(b, r, old, flag);
    ngx_http_consent_audit_raw(b, "}\n");
}


/* a record's members after the first one: ,"scope":...,"at":... */

static void
ngx_http_consent_audit_json(ngx_http_consent_audit_buf_t *b,
    ngx_http_consent_audit_rec_t *r, ngx_str_t *old, ngx_uint_t flag)
{
    const char  **keys;

    keys = ngx_http_consent_audit_keys[r->type];

    ngx_http_consent_audit_field(b, "scope", &r->scope);
    ngx_http_consent_audit_field(b, "scope_at", &r->scope_at);
    ngx_http_consent_audit_field(b, keys[0], &r->id);
    ngx_http_consent_audit_field(b, keys[1], &r->name);

    if (old) {
        ngx_http_consent_audit_field(b,
                                 ngx_http_consent_audit_old_keys[r->type],
                                 old);
    }

    if (flag && keys[2]) {
        ngx_http_consent_audit_raw(b, ",\"");
        ngx_http_consent_audit_raw(b, keys[2]);
        ngx_http_consent_audit_raw(b, r->on ? "\":true" : "\":false");
    }

    ngx_http_consent_audit_field(b, "at", &r->at);
}


static void
ngx_http_consent_audit_state(ngx_http_consent_audit_buf_t *b,
    ngx_array_t *recs)
{
    ngx_uint_t                     i;
    ngx_http_consent_audit_rec_t  *r;

    ngx_http_consent_audit_raw(b, "{\"version\":"
                                  NGX_HTTP_CONSENT_AUDIT_VERSION
                                  ",\"records\":[");
    r = recs->elts;

    /* one record a line, each an object as in a "created" line */
    for (i = 0; i < recs->nelts; i++) {
        ngx_http_consent_audit_raw(b, i ? ",\n{\"type\":\"" : "\n{\"type\":\"");
        ngx_http_consent_audit_raw(b, ngx_http_consent_audit_types[r[i].type]);
        ngx_http_consent_audit_raw(b, "\"");
        ngx_http_consent_audit_json(b, &r[i], NULL, 1);
        ngx_http_consent_audit_raw(b, "}");
    }

    ngx_http_consent_audit_raw(b, "\n]}\n");
}


/*
 * Appends to name or, with tmp, replaces name (through tmp and rename(),
 * so that a crash leaves the old or the new state, never half of one).
 * Errors are logged.
 */

static ngx_int_t
ngx_http_consent_audit_write(ngx_cycle_t *cycle, ngx_str_t *name,
    ngx_str_t *tmp, u_char *data, size_t len)
{
    size_t      done;
    ssize_t     n;
    ngx_fd_t    fd;
    ngx_str_t  *file;

    file = tmp ? tmp : name;

    /*
     * the master runs as root: a ".state.tmp" planted as a symlink must
     * not make it write through the link, so the temporary file is
     * always a new one (the link itself is removed, never followed)
     */
    if (tmp && ngx_delete_file(tmp->data) == NGX_FILE_ERROR
        && ngx_errno != NGX_ENOENT)
    {
        ngx_log_error(NGX_LOG_CRIT, cycle->log, ngx_errno,
                      "consent audit: " ngx_delete_file_n " \"%V\" failed",
                      tmp);
        return NGX_ERROR;
    }

    fd = ngx_open_file(file->data,
                       (tmp ? NGX_FILE_WRONLY|O_NOFOLLOW : NGX_FILE_APPEND),
                       (tmp ? NGX_FILE_CREATE_OR_OPEN|O_EXCL
                            : NGX_FILE_CREATE_OR_OPEN),
                       NGX_FILE_DEFAULT_ACCESS);

    if (fd == NGX_INVALID_FILE) {
        ngx_log_error(NGX_LOG_CRIT, cycle->log, ngx_errno,
                      "consent audit: " ngx_open_file_n " \"%V\" failed",
                      file);
        return NGX_ERROR;
    }

    for (done = 0; done < len; done += n) {
        n = ngx_write_fd(fd, data + done, len - done);

        if (n == -1) {
            ngx_log_error(NGX_LOG_CRIT, cycle->log, ngx_errno,
                          "consent audit: " ngx_write_fd_n " to \"%V\" failed",
                          file);
            (void) ngx_close_file(fd);
            return NGX_ERROR;
        }
    }

    if (tmp && fsync(fd) == -1) {
        ngx_log_error(NGX_LOG_CRIT, cycle->log, ngx_errno,
                      "consent audit: fsync() \"%V\" failed", file);
        (void) ngx_close_file(fd);
        return NGX_ERROR;
    }

    if (ngx_close_file(fd) == NGX_FILE_ERROR) {
        ngx_log_error(NGX_LOG_CRIT, cycle->log, ngx_errno,
                      "consent audit: " ngx_close_file_n " \"%V\" failed",
                      file);
        return NGX_ERROR;
    }

    if (tmp && ngx_rename_file(tmp->data, name->data) == NGX_FILE_ERROR) {
        ngx_log_error(NGX_LOG_CRIT, cycle->log, ngx_errno,
                      "consent audit: " ngx_rename_file_n " \"%V\" to "
                      "\"%V\" failed", tmp, name);
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* output buffer: grows in the temporary pool; a failure is sticky */

static u_char *
ngx_http_consent_audit_reserve(ngx_http_consent_audit_buf_t *b, size_t n)
{
    u_char  *p;
    size_t   size, used;

    if (b->failed) {
        return NULL;
    }

    if ((size_t) (b->end - b->pos) >= n) {
        return b->pos;
    }

    used = b->pos - b->start;
    size = ngx_max(2 * (size_t) (b->end - b->start), used + n);
    size = ngx_max(size, 4096);

    p = ngx_pnalloc(b->pool, size);
    if (p == NULL) {
        b->failed = 1;
        return NULL;
    }

    if (used) {
        ngx_memcpy(p, b->start, used);
        ngx_pfree(b->pool, b->start);
    }

    b->start = p;
    b->pos = p + used;
    b->end = p + size;

    return b->pos;
}


static void
ngx_http_consent_audit_raw(ngx_http_consent_audit_buf_t *b, const char *s)
{
    size_t   n;
    u_char  *p;

    n = ngx_strlen(s);

    p = ngx_http_consent_audit_reserve(b, n);
    if (p == NULL) {
        return;
    }

    b->pos = ngx_cpymem(p, s, n);
}


/* ,"key":"value" with the value escaped */

static void
ngx_http_consent_audit_field(ngx_http_consent_audit_buf_t *b,
    const char *key, ngx_str_t *value)
{
    size_t   n;
    u_char  *p;

    n = value->len + ngx_escape_json(NULL, value->data, value->len);

    p = ngx_http_consent_audit_reserve(b, ngx_strlen(key) + n + 6);
    if (p == NULL) {
        return;
    }

    /* the first member of a line follows "{" without a comma */
    if (p > b->start && p[-1] != '{') {
        *p++ = ',';
    }

    *p++ = '"';
    p = ngx_cpymem(p, key, ngx_strlen(key));
    *p++ = '"';
    *p++ = ':';
    *p++ = '"';
    p = (u_char *) ngx_escape_json(p, value->data, value->len);
    *p++ = '"';

    b->pos = p;
}
