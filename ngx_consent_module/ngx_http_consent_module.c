
/*
 * ngx_consent: directives and configuration.
 */

#include "ngx_http_consent.h"
#include "ngx_consent_lua_dir.h"

#if (__GLIBC__)
#include <malloc.h>
#endif


/* glibc refuses an mmap threshold above 32 MB (64-bit) */
#define NGX_HTTP_CONSENT_MALLOC_TRIM_MAX  (32 * 1024 * 1024)


static char *ngx_http_consent_category(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_consent_destination(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_consent_ingest(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_consent_cors_origins(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_consent_conf_enum(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_consent_malloc_trim(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_http_consent_postconfiguration(ngx_conf_t *cf);
static void *ngx_http_consent_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_consent_init_main_conf(ngx_conf_t *cf, void *conf);
static ngx_int_t ngx_http_consent_init_process(ngx_cycle_t *cycle);
static void ngx_http_consent_exit_process(ngx_cycle_t *cycle);
static void *ngx_http_consent_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_consent_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static ngx_int_t ngx_http_consent_build_policy(ngx_conf_t *cf,
    ngx_http_consent_loc_conf_t *clcf);


/* what an event without consent (and without a profile) gets */
static ngx_conf_enum_t  ngx_http_consent_defaults[] = {
    { ngx_string("allow"), NGX_HTTP_CONSENT_ALLOW },
    { ngx_string("deny"), NGX_HTTP_CONSENT_DENY },
    { ngx_null_string, 0 }
};


static ngx_command_t  ngx_http_consent_commands[] = {

    { ngx_string("consent_category"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE123,
      ngx_http_consent_category,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("consent_destination"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_2MORE,
      ngx_http_consent_destination,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("consent_ingest"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_consent_ingest,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("consent_max_body_size"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_consent_loc_conf_t, max_body_size),
      NULL },

    { ngx_string("consent_max_event_size"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_consent_loc_conf_t, max_event_size),
      NULL },

    { ngx_string("consent_max_batch_events"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_consent_loc_conf_t, max_events),
      NULL },

    { ngx_string("consent_delivery"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_consent_delivery_conf,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("consent_default"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_consent_conf_enum,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_consent_loc_conf_t, default_consent),
      &ngx_http_consent_defaults },

    { ngx_string("consent_profiles"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_consent_profiles,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("consent_profile_api"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_consent_profile_api,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("consent_cors_origins"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_consent_cors_origins,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("consent_lua_hook"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_consent_lua_hook,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("consent_lua_path"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_consent_main_conf_t, lua_path),
      NULL },

    { ngx_string("consent_lua_max_instructions"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_consent_main_conf_t, max_instructions),
      NULL },

    { ngx_string("consent_lua_max_memory"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_consent_main_conf_t, max_memory),
      NULL },

    { ngx_string("consent_audit_log"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_consent_audit_log,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("consent_malloc_trim"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_consent_malloc_trim,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("consent_status_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_consent_status_zone,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("consent_status"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_consent_status,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_consent_module_ctx = {
    ngx_http_consent_status_add_variables, /* preconfiguration */
    ngx_http_consent_postconfiguration,    /* postconfiguration */

    ngx_http_consent_create_main_conf,     /* create main configuration */
    ngx_http_consent_init_main_conf,       /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_consent_create_loc_conf,      /* create location configuration */
    ngx_http_consent_merge_loc_conf        /* merge location configuration */
};


ngx_module_t  ngx_http_consent_module = {
    NGX_MODULE_V1,
    &ngx_http_consent_module_ctx,          /* module context */
    ngx_http_consent_commands,             /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    ngx_http_consent_audit_init_module,    /* init module */
    ngx_http_consent_init_process,         /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_consent_exit_process,         /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_int_t
ngx_http_consent_postconfiguration(ngx_conf_t *cf)
{
    ngx_http_consent_main_conf_t  *cmcf;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_consent_module);

    if (ngx_http_consent_lua_check(cf, cmcf) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_http_consent_loop_check(cf, cmcf) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_http_consent_status_init(cf) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_http_consent_reply_init(cf) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_consent_delivery_init(cf);
}


/* consent_malloc_trim size | off; */

static char *
ngx_http_consent_malloc_trim(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_consent_main_conf_t *cmcf = conf;

    ssize_t     size;
    ngx_str_t  *value;

    if (cmcf->malloc_trim != NGX_CONF_UNSET_SIZE) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        cmcf->malloc_trim = 0;
        return NGX_CONF_OK;
    }

    size = ngx_parse_size(&value[1]);

    if (size < 128 * 1024 || size > NGX_HTTP_CONSENT_MALLOC_TRIM_MAX) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid value \"%V\" in \"%V\" directive, "
                           "it must be \"off\" or a size from 128k to 32m",
                           &value[1], &cmd->name);
        return NGX_CONF_ERROR;
    }

    cmcf->malloc_trim = size;

    return NGX_CONF_OK;
}


/* a one-of directive whose nginx -t error names the valid values */

static char *
ngx_http_consent_conf_enum(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    char  *p = conf;

    u_char           buf[128], *b;
    ngx_str_t       *value;
    ngx_uint_t      *np, i;
    ngx_conf_enum_t *e;

    np = (ngx_uint_t *) (p + cmd->offset);

    if (*np != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;

    for (e = cmd->post; e->name.len; e++) {
        if (e->name.len == value[1].len
            && ngx_strcmp(e->name.data, value[1].data) == 0)
        {
            *np = e->value;
            return NGX_CONF_OK;
        }
    }

    b = buf;
    e = cmd->post;

    for (i = 0; e[i].name.len; i++) {
        b = ngx_slprintf(b, buf + sizeof(buf), "%s\"%V\"",
                         i == 0 ? "" : (e[i + 1].name.len ? ", " : " or "),
                         &e[i].name);
    }

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid value \"%V\" in \"%V\" directive, "
                       "it must be %*s", &value[1], &cmd->name, b - buf, buf);

    return NGX_CONF_ERROR;
}


static void *
ngx_http_consent_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_consent_main_conf_t  *cmcf;

    cmcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_consent_main_conf_t));
    if (cmcf == NULL) {
        return NULL;
    }

    if (ngx_array_init(&cmcf->hooks, cf->pool, 4,
                       sizeof(ngx_http_consent_hook_t))
        != NGX_OK)
    {
        return NULL;
    }

    if (ngx_array_init(&cmcf->stores, cf->pool, 1,
                       sizeof(ngx_http_consent_store_t *))
        != NGX_OK)
    {
        return NULL;
    }

    cmcf->max_instructions = NGX_CONF_UNSET_UINT;
    cmcf->max_memory = NGX_CONF_UNSET_SIZE;
    cmcf->malloc_trim = NGX_CONF_UNSET_SIZE;

    return cmcf;
}


static char *
ngx_http_consent_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_consent_main_conf_t *cmcf = conf;

    if (cmcf->lua_path.data == NULL) {
        ngx_str_set(&cmcf->lua_path, NGX_HTTP_CONSENT_LUA_PATH);
    }

    ngx_conf_init_uint_value(cmcf->max_instructions, 1000000);
    ngx_conf_init_size_value(cmcf->max_memory, 16 * 1024 * 1024);
    ngx_conf_init_size_value(cmcf->malloc_trim, 16 * 1024 * 1024);

    if (cmcf->max_instructions == 0 || cmcf->max_instructions > 0x7fffffff) {
        return "has an invalid \"consent_lua_max_instructions\"";
    }

    /* the levels as declared: before merging and location trees */
    if (ngx_http_consent_audit_snapshot(cf, cmcf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_consent_init_process(ngx_cycle_t *cycle)
{
    ngx_http_consent_main_conf_t  *cmcf;

    cmcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_consent_module);

    if (cmcf == NULL) {
        return NGX_OK;
    }

#if (__GLIBC__)

    /*
     * glibc gives the free top of the heap back to the kernel past
     * 128 KB; with batches in flight that happened on most requests and
     * each paid page faults to map it again (README, consent_malloc_trim)
     */
    if (cmcf->ingest && cmcf->malloc_trim) {
        if (mallopt(M_TRIM_THRESHOLD, (int) cmcf->malloc_trim) != 1
            || mallopt(M_MMAP_THRESHOLD, (int) cmcf->malloc_trim) != 1)
        {
            ngx_log_error(NGX_LOG_WARN, cycle->log, 0,
                          "consent: mallopt(%uz) failed, glibc's malloc "
                          "defaults stay", cmcf->malloc_trim);
        }
    }

#endif

    return ngx_http_consent_lua_init_worker(cycle, cmcf);
}


static void
ngx_http_consent_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_consent_batch_exit(cycle);
    ngx_http_consent_lua_exit_worker();
    ngx_http_consent_profiles_exit(cycle);
    ngx_http_consent_scratch_free();
}


static char *
ngx_http_consent_category(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_consent_loc_conf_t *clcf = conf;

    ngx_str_t                    *value;
    ngx_uint_t                    i, n;
    ngx_http_consent_category_t  *cat, *c;

    value = cf->args->elts;
    n = cf->args->nelts;

    if (clcf->categories == NULL) {
        clcf->categories = ngx_array_create(cf->pool, 8,
                                        sizeof(ngx_http_consent_category_t));
        if (clcf->categories == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    if (value[1].len == 0) {
        return "has an empty category id";
    }

    if (value[1].data[0] >= '0' && value[1].data[0] <= '9') {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid consent category id \"%V\": "
                           "must not start with a digit", &value[1]);
        return NGX_CONF_ERROR;
    }

    if (value[1].len >= 35) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid consent category id \"%V\": "
                           "must be shorter than 35 characters", &value[1]);
        return NGX_CONF_ERROR;
    }

    for (i = 0; i < value[1].len; i++) {
        if (value[1].data[i] <= ' ' || value[1].data[i] == '"'
            || value[1].data[i] == '\\' || value[1].data[i] == 0x7f)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid consent category id \"%V\": "
                               "spaces, quotes and backslashes are not "
                               "allowed", &value[1]);
            return NGX_CONF_ERROR;
        }
    }

    c = clcf->categories->elts;
    for (i = 0; i < clcf->categories->nelts; i++) {
        if (c[i].id.len == value[1].len
            && ngx_strncmp(c[i].id.data, value[1].data, value[1].len) == 0)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "duplicate consent category \"%V\" "
                               "(also declared in %s:%ui)",
                               &value[1], c[i].file, c[i].line);
            return NGX_CONF_ERROR;
        }
    }

    if (clcf->categories->nelts == CONSENT_MAX_CATEGORIES) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "too many consent categories (at most %d)",
                           CONSENT_MAX_CATEGORIES);
        return NGX_CONF_ERROR;
    }

    cat = ngx_array_push(clcf->categories);
    if (cat == NULL) {
        return NGX_CONF_ERROR;
    }

    cat->id = value[1];
    cat->name = value[1];
    cat->enabled = 1;
    cat->file = cf->conf_file->file.name.data;
    cat->line = cf->conf_file->line;

    /* "off"/"on" as the last argument is the switch, not a name */
    if (n > 2
        && ((value[n - 1].len == 3
             && ngx_strncmp(value[n - 1].data, "off", 3) == 0)
            || (value[n - 1].len == 2
                && ngx_strncmp(value[n - 1].data, "on", 2) == 0)))
    {
        cat->enabled = (value[n - 1].len == 2);
        n--;
    }

    if (n == 3) {
        cat->name = value[2];

    } else if (n > 3) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\", expected \"on\" or "
                           "\"off\"", &value[3]);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_consent_destination(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_consent_loc_conf_t *clcf = conf;

    ngx_str_t                     *value, *s;
    ngx_uint_t                     i;
    ngx_http_consent_dest_conf_t  *dest, *d;

    value = cf->args->elts;

    if (clcf->dests == NULL) {
        clcf->dests = ngx_array_create(cf->pool, 8,
                                       sizeof(ngx_http_consent_dest_conf_t));
        if (clcf->dests == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    if (value[1].len == 0
        || (value[1].len == 3 && ngx_strncmp(value[1].data, "All", 3) == 0))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid consent destination name \"%V\": "
                           "\"All\" and \"\" are reserved", &value[1]);
        return NGX_CONF_ERROR;
    }

    d = clcf->dests->elts;
    for (i = 0; i < clcf->dests->nelts; i++) {
        if (d[i].name.len == value[1].len
            && ngx_strncmp(d[i].name.data, value[1].data, value[1].len) == 0)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "duplicate consent destination \"%V\" "
                               "(also declared in %s:%ui)",
                               &value[1], d[i].file, d[i].line);
            return NGX_CONF_ERROR;
        }
    }

    if (value[2].len == 0 || value[2].data[0] != '/') {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid consent destination uri \"%V\": "
                           "must start with \"/\"", &value[2]);
        return NGX_CONF_ERROR;
    }

    dest = ngx_array_push(clcf->dests);
    if (dest == NULL) {
        return NGX_CONF_ERROR;
    }

    dest->name = value[1];
    dest->uri = value[2];
    dest->enforce = 1;
    dest->pass = NULL;
    dest->drop = 0;
    dest->file = cf->conf_file->file.name.data;
    dest->line = cf->conf_file->line;

    if (ngx_http_consent_status_dest(cf, dest) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (ngx_array_init(&dest->categories, cf->pool, 4, sizeof(ngx_str_t))
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    for (i = 3; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "enforce=", 8) == 0) {
            if (ngx_strcmp(value[i].data + 8, "off") == 0) {
                dest->enforce = 0;

            } else if (ngx_strcmp(value[i].data + 8, "on") == 0) {
                dest->enforce = 1;

            } else {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid parameter \"%V\", expected "
                                   "\"enforce=on\" or \"enforce=off\"",
                                   &value[i]);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "pass_header=", 12) == 0
            || ngx_strncmp(value[i].data, "drop_header=", 12) == 0)
        {
            if (ngx_http_consent_headers_param(cf, dest, &value[i])
                != NGX_CONF_OK)
            {
                return NGX_CONF_ERROR;
            }

            continue;
        }

        s = ngx_array_push(&dest->categories);
        if (s == NULL) {
            return NGX_CONF_ERROR;
        }

        *s = value[i];
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_consent_ingest(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_consent_loc_conf_t *clcf = conf;

    ngx_http_core_loc_conf_t      *core;
    ngx_http_consent_main_conf_t  *cmcf;

    if (clcf->ingest != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    clcf->ingest = 1;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_consent_module);
    cmcf->ingest = 1;

    if (ngx_http_consent_loop_add(cf, cmcf, clcf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    core = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    core->handler = ngx_http_consent_handler;

    return NGX_CONF_OK;
}


static char *
ngx_http_consent_cors_origins(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_consent_loc_conf_t *clcf = conf;

    ngx_str_t   *value, *s;
    ngx_uint_t   i;

    if (clcf->cors != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (cf->args->nelts == 2 && ngx_strcmp(value[1].data, "off") == 0) {
        clcf->cors = NGX_HTTP_CONSENT_CORS_OFF;
        return NGX_CONF_OK;
    }

    if (cf->args->nelts == 2 && ngx_strcmp(value[1].data, "*") == 0) {
        clcf->cors = NGX_HTTP_CONSENT_CORS_ANY;
        return NGX_CONF_OK;
    }

    clcf->cors = NGX_HTTP_CONSENT_CORS_LIST;
    clcf->cors_origins = ngx_array_create(cf->pool, cf->args->nelts,
                                          sizeof(ngx_str_t));
    if (clcf->cors_origins == NULL) {
        return NGX_CONF_ERROR;
    }

    for (i = 1; i < cf->args->nelts; i++) {
        if (ngx_strcmp(value[i].data, "*") == 0
            || ngx_strcmp(value[i].data, "off") == 0)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"%V\" cannot be combined with origins",
                               &value[i]);
            return NGX_CONF_ERROR;
        }

        s = ngx_array_push(clcf->cors_origins);
        if (s == NULL) {
            return NGX_CONF_ERROR;
        }

        *s = value[i];
    }

    return NGX_CONF_OK;
}


static void *
ngx_http_consent_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_consent_loc_conf_t  *conf;

    conf = ngx_pcalloc(cf->pool, sizeof(ngx_http_consent_loc_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     conf->categories = NULL;
     *     conf->dests = NULL;
     *     conf->cors_origins = NULL;
     *     conf->policy = { 0 };
     */

    conf->ingest = NGX_CONF_UNSET;
    conf->max_body_size = NGX_CONF_UNSET_SIZE;
    conf->max_event_size = NGX_CONF_UNSET_SIZE;
    conf->max_events = NGX_CONF_UNSET_UINT;
    conf->cors = NGX_CONF_UNSET_UINT;
    conf->delivery = NGX_CONF_UNSET_UINT;
    conf->batch = NGX_CONF_UNSET_PTR;
    conf->default_consent = NGX_CONF_UNSET_UINT;
    conf->hook = NGX_CONF_UNSET_UINT;
    conf->profiles = NGX_CONF_UNSET_PTR;
    conf->profile_api = NGX_CONF_UNSET;

    return conf;
}


static char *
ngx_http_consent_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_consent_loc_conf_t *prev = parent;
    ngx_http_consent_loc_conf_t *conf = child;

    /* lists are inherited whole: a level that declares none takes its
     * parent's */

    if (conf->categories == NULL) {
        conf->categories = prev->categories;
    }

    if (conf->dests == NULL) {
        conf->dests = prev->dests;
    }

    ngx_conf_merge_value(conf->ingest, prev->ingest, 0);
    ngx_conf_merge_size_value(conf->max_body_size, prev->max_body_size,
                              500 * 1024);
    ngx_conf_merge_size_value(conf->max_event_size, prev->max_event_size,
                              32 * 1024);
    ngx_conf_merge_uint_value(conf->max_events, prev->max_events, 2500);
    ngx_conf_merge_uint_value(conf->hook, prev->hook, 0);
    ngx_conf_merge_uint_value(conf->delivery, prev->delivery,
                              NGX_HTTP_CONSENT_WAIT);
    ngx_conf_merge_ptr_value(conf->batch, prev->batch, NULL);
    ngx_conf_merge_uint_value(conf->default_consent, prev->default_consent,
                              NGX_HTTP_CONSENT_ALLOW);

    if (ngx_http_consent_profiles_merge(cf, prev, conf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (conf->cors == NGX_CONF_UNSET_UINT) {
        conf->cors = (prev->cors == NGX_CONF_UNSET_UINT)
                     ? NGX_HTTP_CONSENT_CORS_ANY : prev->cors;
        conf->cors_origins = prev->cors_origins;
    }

    if (conf->max_body_size > 0x7fffffff) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"consent_max_body_size\" must be below 2g");
        return NGX_CONF_ERROR;
    }

    if (conf->max_events == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"consent_max_batch_events\" must be positive");
        return NGX_CONF_ERROR;
    }

    if (ngx_http_consent_build_policy(cf, conf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* resolves category names to bits of the enabled categories */

static ngx_int_t
ngx_http_consent_build_policy(ngx_conf_t *cf,
    ngx_http_consent_loc_conf_t *conf)
{
    ngx_str_t                     *names;
    ngx_uint_t                     i, j, k, ncats, nenabled, ndests;
    consent_str_t                 *ids;
    consent_dest_t                *pd;
    ngx_http_consent_category_t   *cats;
    ngx_http_consent_dest_conf_t  *dests;

    ncats = conf->categories ? conf->categories->nelts : 0;
    ndests = conf->dests ? conf->dests->nelts : 0;
    cats = ncats ? conf->categories->elts : NULL;
    dests = ndests ? conf->dests->elts : NULL;

    if (conf->ingest && ndests > NGX_HTTP_MAX_SUBREQUESTS) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "too many consent destinations for one "
                           "location: %ui (at most %d)",
                           ndests, NGX_HTTP_MAX_SUBREQUESTS);
        return NGX_ERROR;
    }

    ids = ngx_pcalloc(cf->pool, (ncats + 1) * sizeof(consent_str_t));
    pd = ngx_pcalloc(cf->pool, (ndests + 1) * sizeof(consent_dest_t));
    if (ids == NULL || pd == NULL) {
        return NGX_ERROR;
    }

    nenabled = 0;
    for (i = 0; i < ncats; i++) {
        if (cats[i].enabled) {
            ids[nenabled].data = (const char *) cats[i].id.data;
            ids[nenabled].len = cats[i].id.len;
            nenabled++;
        }
    }

    for (i = 0; i < ndests; i++) {
        pd[i].name.data = (const char *) dests[i].name.data;
        pd[i].name.len = dests[i].name.len;
        pd[i].enforce = dests[i].enforce ? 1 : 0;

        names = dests[i].categories.elts;

        for (j = 0; j < dests[i].categories.nelts; j++) {

            for (k = 0; k < ncats; k++) {
                if (cats[k].id.len == names[j].len
                    && ngx_strncmp(cats[k].id.data, names[j].data,
                                   names[j].len) == 0)
                {
                    break;
                }
            }

            if (k == ncats) {
                if (!conf->ingest) {
                    /* checked where the list is used: a deeper level
                     * may declare the category; this policy is unused */
                    continue;
                }

                ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                              "consent_destination \"%V\" maps to unknown "
                              "consent category \"%V\" in %s:%ui",
                              &dests[i].name, &names[j],
                              dests[i].file, dests[i].line);
                return NGX_ERROR;
            }

            if (!cats[k].enabled) {
                continue;
            }

            /* index among enabled categories */
            for (nenabled = 0; k > 0; k--) {
                if (cats[k - 1].enabled) {
                    nenabled++;
                }
            }

            pd[i].mask[nenabled / 64] |= (uint64_t) 1 << (nenabled % 64);
        }
    }

    nenabled = 0;
    for (i = 0; i < ncats; i++) {
        nenabled += cats[i].enabled ? 1 : 0;
    }

    conf->policy.categories = ids;
    conf->policy.ncategories = nenabled;
    conf->policy.dests = pd;
    conf->policy.ndests = ndests;
    conf->policy.max_event_size = conf->max_event_size;
    conf->policy.max_events = conf->max_events;
    conf->policy.default_deny = (conf->default_consent
                                 == NGX_HTTP_CONSENT_DENY);

    if (consent_policy_prepare(&conf->policy, ngx_http_consent_palloc,
                               cf->pool)
        != 0)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}
