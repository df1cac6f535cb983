
/*
 * ngx_consent: the status zone's layout, shared by the counting
 * (ngx_http_consent_status.c) and the exposition
 * (ngx_http_consent_status_show.c).
 */

#ifndef _NGX_HTTP_CONSENT_STATUS_H_INCLUDED_
#define _NGX_HTTP_CONSENT_STATUS_H_INCLUDED_


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


ngx_int_t ngx_http_consent_status_handler(ngx_http_request_t *r);


#endif /* _NGX_HTTP_CONSENT_STATUS_H_INCLUDED_ */
