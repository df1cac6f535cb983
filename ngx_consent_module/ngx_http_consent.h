
/*
 * ngx_consent: nginx glue shared by the configuration and the handler.
 */

#ifndef _NGX_HTTP_CONSENT_H_INCLUDED_
#define _NGX_HTTP_CONSENT_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "consent_core.h"


#define NGX_HTTP_CONSENT_CORS_OFF   0
#define NGX_HTTP_CONSENT_CORS_ANY   1
#define NGX_HTTP_CONSENT_CORS_LIST  2

#define NGX_HTTP_CONSENT_WAIT        0
#define NGX_HTTP_CONSENT_BACKGROUND  1
#define NGX_HTTP_CONSENT_BATCH       2

#define NGX_HTTP_CONSENT_ALLOW       0
#define NGX_HTTP_CONSENT_DENY        1

/* consent profiles: lookups and records by result */
#define NGX_HTTP_CONSENT_LOOKUP_HIT      0
#define NGX_HTTP_CONSENT_LOOKUP_MISS     1
#define NGX_HTTP_CONSENT_LOOKUP_ERROR    2
#define NGX_HTTP_CONSENT_LOOKUP_N        3

#define NGX_HTTP_CONSENT_RECORD_STORED   0
#define NGX_HTTP_CONSENT_RECORD_OLDER    1
#define NGX_HTTP_CONSENT_RECORD_ERROR    2
#define NGX_HTTP_CONSENT_RECORD_N        3


typedef struct {
    ngx_str_t                   id;
    ngx_str_t                   name;
    ngx_flag_t                  enabled;
    u_char                     *file;
    ngx_uint_t                  line;
} ngx_http_consent_category_t;


/* counters and status, ngx_http_consent_status.c */
typedef struct ngx_http_consent_status_conf_s  ngx_http_consent_status_conf_t;

/* audit trail of configuration changes, ngx_http_consent_audit.c */
typedef struct ngx_http_consent_audit_conf_s  ngx_http_consent_audit_conf_t;

/* consent_delivery batch parameters, ngx_http_consent_batch.c */
typedef struct ngx_http_consent_batch_conf_s  ngx_http_consent_batch_conf_t;


typedef struct {
    ngx_str_t                   name;
    ngx_str_t                   uri;
    ngx_array_t                 categories;     /* of ngx_str_t */
    ngx_flag_t                  enforce;
    ngx_array_t                *pass;           /* pass_header=, lowcase */
    ngx_uint_t                  drop;           /* drop_header=, bits */
    ngx_uint_t                  counters;       /* its slot in the zone */
    u_char                     *file;
    ngx_uint_t                  line;
} ngx_http_consent_dest_conf_t;


typedef struct {
    ngx_str_t                   path;
    u_char                     *file;           /* where it is declared */
    ngx_uint_t                  line;
    int                         ref;            /* per worker: event() */
} ngx_http_consent_hook_t;


typedef struct ngx_http_consent_loc_conf_s  ngx_http_consent_loc_conf_t;


/* the profile store, ngx_http_consent_store.c */
typedef struct ngx_http_consent_store_s  ngx_http_consent_store_t;


/* consent_profiles */
typedef struct {
    ngx_http_consent_store_t   *store;
    ngx_msec_t                  timeout;        /* a round trip */
    time_t                      ttl;            /* seconds */
    ngx_str_t                   prefix;
} ngx_http_consent_profiles_t;


/* what the sequencer does once the profile step is over */
typedef void (*ngx_http_consent_profile_done_pt)(ngx_http_request_t *r);


/* a consent_ingest location, for the nginx -t loop check */
typedef struct {
    ngx_http_core_srv_conf_t     *server;
    ngx_http_consent_loc_conf_t  *conf;
    u_char                       *file;
    ngx_uint_t                    line;
} ngx_http_consent_ingest_t;


typedef struct {
    ngx_array_t                 hooks;          /* ngx_http_consent_hook_t */
    ngx_array_t                 ingests;        /* ngx_http_consent_ingest_t */
    ngx_str_t                   lua_path;
    ngx_uint_t                  max_instructions;
    size_t                      max_memory;
    ngx_http_consent_status_conf_t  *counters;
    ngx_http_consent_audit_conf_t   *audit;
    ngx_array_t                 stores;         /* of store pointers */
    size_t                      malloc_trim;    /* 0: glibc's default */
    ngx_flag_t                  ingest;         /* some consent_ingest */
} ngx_http_consent_main_conf_t;


struct ngx_http_consent_loc_conf_s {
    ngx_array_t                *categories;     /* NULL: inherited */
    ngx_array_t                *dests;          /* NULL: inherited */

    ngx_flag_t                  ingest;
    size_t                      max_body_size;
    size_t                      max_event_size;
    ngx_uint_t                  max_events;

    ngx_uint_t                  cors;
    ngx_array_t                *cors_origins;   /* of ngx_str_t */

    ngx_uint_t                  hook;           /* index + 1, 0: none */
    ngx_uint_t                  delivery;       /* NGX_HTTP_CONSENT_WAIT */
    ngx_http_consent_batch_conf_t  *batch;      /* consent_delivery batch */
    ngx_uint_t                  default_consent;  /* consent_default */
    ngx_http_consent_profiles_t  *profiles;     /* NULL: off */
    ngx_flag_t                  profile_api;

    consent_policy_t            policy;         /* built at merge time */
};


/* one destination's delivery within a request */
typedef struct {
    ngx_http_request_t         *request;        /* the parent */
    ngx_http_consent_dest_conf_t  *conf;
    ngx_uint_t                  nevents;
    ngx_uint_t                  status;
    ngx_msec_t                  start;          /* subrequest created */
    ngx_msec_t                  elapsed;        /* until it finished */
    unsigned                    done:1;
    unsigned                    failed:1;
} ngx_http_consent_delivery_t;


typedef struct {
    consent_endpoint_e          endpoint;
    u_char                     *body;
    size_t                      body_len;
    consent_result_t            result;
    ngx_http_consent_delivery_t  *deliveries;
    ngx_uint_t                  ndeliveries;
    ngx_uint_t                  pending;
    ngx_str_t                  *reasons;        /* lua_rejected, per event */
    ngx_uint_t                  profiled;       /* routed on a profile */
    ngx_uint_t                  profile_failed; /* lookup failed closed */
    ngx_str_t                   page;           /* JSON for nginx's error */
    ngx_list_t                 *dest_headers;   /* the default set */
    const char                 *error;          /* request-level code */
    unsigned                    gzip:1;
    unsigned                    background:1;
    unsigned                    batch:1;        /* queued, not sent */
    unsigned                    replied:1;
    unsigned                    internal_error:1;
    unsigned                    counted:1;      /* in the status zone */
    unsigned                    json:1;         /* the reply is ours */
} ngx_http_consent_ctx_t;


/* what a step tells the client when the request cannot go on */
typedef struct {
    ngx_uint_t                  status;
    const char                 *code;
    ngx_str_t                   message;
} ngx_http_consent_refusal_t;

#define NGX_HTTP_CONSENT_MESSAGE_LEN  256


/* a position in the request headers, for repeated ones */
typedef struct {
    ngx_list_part_t            *part;           /* NULL: from the start */
    ngx_uint_t                  i;
} ngx_http_consent_header_cursor_t;


extern ngx_module_t  ngx_http_consent_module;


ngx_int_t ngx_http_consent_handler(ngx_http_request_t *r);

ngx_int_t ngx_http_consent_body_encoding(ngx_http_request_t *r,
    ngx_uint_t *gzip);
ngx_int_t ngx_http_consent_body(ngx_http_request_t *r,
    ngx_http_consent_ctx_t *ctx, ngx_http_consent_refusal_t *rf);
ngx_int_t ngx_http_consent_body_too_large(ngx_http_request_t *r,
    ngx_http_consent_refusal_t *rf);

ngx_int_t ngx_http_consent_deliver(ngx_http_request_t *r,
    ngx_http_consent_ctx_t *ctx);
ngx_int_t ngx_http_consent_delivery_init(ngx_conf_t *cf);
ngx_uint_t ngx_http_consent_outcome(ngx_http_request_t *sr, ngx_int_t rc,
    ngx_uint_t *failed);
void ngx_http_consent_post_body(ngx_http_request_t *sr, ngx_list_t *headers,
    ngx_http_request_body_t *rb, ngx_chain_t *body, off_t len);
ngx_buf_t *ngx_http_consent_add(ngx_http_request_t *r, ngx_chain_t ***last,
    u_char *pos, size_t size, off_t *len);

char *ngx_http_consent_delivery_conf(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
void ngx_http_consent_batch_enqueue(ngx_http_request_t *r,
    ngx_http_consent_ctx_t *ctx);
ngx_int_t ngx_http_consent_batch_sent(ngx_http_request_t *sr, void *data,
    ngx_int_t rc);
void ngx_http_consent_batch_exit(ngx_cycle_t *cycle);

ngx_int_t ngx_http_consent_reply(ngx_http_request_t *r,
    ngx_http_consent_ctx_t *ctx);
ngx_int_t ngx_http_consent_telemetry(ngx_http_request_t *r);
ngx_int_t ngx_http_consent_send(ngx_http_request_t *r, ngx_uint_t status,
    u_char *body, size_t len);
ngx_int_t ngx_http_consent_preflight(ngx_http_request_t *r);
ngx_int_t ngx_http_consent_refuse(ngx_http_request_t *r, ngx_uint_t status,
    const char *code, ngx_str_t *message);
ngx_int_t ngx_http_consent_error(ngx_http_request_t *r, ngx_uint_t status,
    const char *code, ngx_str_t *message);
ngx_int_t ngx_http_consent_refusal(ngx_http_request_t *r,
    ngx_http_consent_refusal_t *rf, ngx_uint_t status, const char *code,
    const char *fmt, ...);
ngx_int_t ngx_http_consent_refused(ngx_http_request_t *r,
    ngx_http_consent_refusal_t *rf);
u_char *ngx_http_consent_json_str(u_char *p, const u_char *s, size_t len);
ngx_int_t ngx_http_consent_json_utf8(ngx_pool_t *pool, ngx_str_t *s);
ngx_int_t ngx_http_consent_reply_init(ngx_conf_t *cf);

void *ngx_http_consent_palloc(void *pool, size_t size);

ngx_int_t ngx_http_consent_loop_add(ngx_conf_t *cf,
    ngx_http_consent_main_conf_t *cmcf, ngx_http_consent_loc_conf_t *lcf);
ngx_int_t ngx_http_consent_loop_check(ngx_conf_t *cf,
    ngx_http_consent_main_conf_t *cmcf);
ngx_uint_t ngx_http_consent_loop(ngx_http_request_t *r);

char *ngx_http_consent_headers_param(ngx_conf_t *cf,
    ngx_http_consent_dest_conf_t *dest, ngx_str_t *param);
ngx_list_t *ngx_http_consent_headers(ngx_http_request_t *r,
    ngx_http_consent_ctx_t *ctx, ngx_http_consent_dest_conf_t *dest);
ngx_int_t ngx_http_consent_header_push(ngx_list_t *list, ngx_str_t *key,
    ngx_str_t *lowcase, ngx_str_t *value);
ngx_uint_t ngx_http_consent_token_char(u_char c);
ngx_table_elt_t *ngx_http_consent_header_next(ngx_http_request_t *r,
    const char *name, size_t len, ngx_http_consent_header_cursor_t *c);

char *ngx_http_consent_lua_hook(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_http_consent_lua_check(ngx_conf_t *cf,
    ngx_http_consent_main_conf_t *cmcf);
ngx_int_t ngx_http_consent_lua_init_worker(ngx_cycle_t *cycle,
    ngx_http_consent_main_conf_t *cmcf);
void ngx_http_consent_lua_exit_worker(void);
consent_hook_e ngx_http_consent_lua_event(void *data, consent_result_t *res,
    uint32_t i, uint64_t *consented);
void ngx_http_consent_lua_done(ngx_http_request_t *r,
    ngx_http_consent_ctx_t *ctx);

ngx_int_t ngx_http_consent_profile(ngx_http_request_t *r,
    ngx_http_consent_ctx_t *ctx, ngx_http_consent_profile_done_pt done);
char *ngx_http_consent_profiles(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_consent_profile_api(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_http_consent_profiles_merge(ngx_conf_t *cf,
    ngx_http_consent_loc_conf_t *prev, ngx_http_consent_loc_conf_t *conf);
void ngx_http_consent_profiles_exit(ngx_cycle_t *cycle);

char *ngx_http_consent_status_zone(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_consent_status(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_http_consent_status_dest(ngx_conf_t *cf,
    ngx_http_consent_dest_conf_t *dest);
ngx_int_t ngx_http_consent_status_add_variables(ngx_conf_t *cf);
ngx_int_t ngx_http_consent_status_init(ngx_conf_t *cf);
void ngx_http_consent_status_error(ngx_http_request_t *r, const char *code);
void ngx_http_consent_status_lua_error(ngx_http_request_t *r);
void ngx_http_consent_status_telemetry(ngx_http_request_t *r);
void ngx_http_consent_status_profile(ngx_http_request_t *r,
    ngx_uint_t *lookups, ngx_uint_t *records);
void ngx_http_consent_status_profile_trip(ngx_http_request_t *r,
    ngx_msec_t ms);
void ngx_http_consent_status_delivery(ngx_http_request_t *r,
    ngx_http_consent_ctx_t *ctx, ngx_uint_t d);

void ngx_http_consent_scratch_reset(void);
void *ngx_http_consent_scratch_tape(void *data, size_t size);
consent_slice_t *ngx_http_consent_scratch_slices(size_t n);
void ngx_http_consent_scratch_free(void);

ngx_int_t ngx_http_consent_inflate(ngx_http_request_t *r, u_char *in,
    size_t len, size_t max, ngx_str_t *out, ngx_str_t *error);

char *ngx_http_consent_audit_log(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_http_consent_audit_snapshot(ngx_conf_t *cf,
    ngx_http_consent_main_conf_t *cmcf);
ngx_int_t ngx_http_consent_audit_init_module(ngx_cycle_t *cycle);


#endif /* _NGX_HTTP_CONSENT_H_INCLUDED_ */
