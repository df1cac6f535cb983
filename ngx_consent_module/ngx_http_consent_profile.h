
/*
 * ngx_consent: consent profiles, shared by the step
 * (ngx_http_consent_profile.c), its keys and commands
 * (ngx_http_consent_profile_keys.c) and the profile API
 * (ngx_http_consent_profile_api.c).
 */

#ifndef _NGX_HTTP_CONSENT_PROFILE_H_INCLUDED_
#define _NGX_HTTP_CONSENT_PROFILE_H_INCLUDED_


#include "ngx_http_consent.h"
#include "ngx_http_consent_store.h"


/* an event's ids, in the order a lookup tries them */
#define NGX_HTTP_CONSENT_PROFILE_IDS  3     /* userId, anonymousId, previousId */


/* one profile key of a request: what it records, what the store holds */
typedef struct {
    ngx_str_t                   key;            /* prefix{u:ID} */
    ngx_str_t                   value;          /* to record, or empty */
    int64_t                     t;              /* of value */
    int64_t                     o;
    ngx_str_t                   stored;         /* after the round trip */
    int64_t                     st;
    int64_t                     so;
    uint64_t                   *mask;           /* stored's, or NULL */
    consent_str_t               prefs;          /* stored's "p" */
    unsigned                    found:1;        /* stored holds one */
    unsigned                    failed:1;       /* its reply was an error */
    unsigned                    round:2;        /* sent in: 1, 2, 0 never */
    unsigned                    write:1;        /* EVALSHA, not HMGET */
    unsigned                    relink:1;       /* round 2 writes stored */
} ngx_http_consent_pkey_t;


typedef struct {
    ngx_http_request_t         *request;
    ngx_http_consent_ctx_t     *ctx;
    ngx_http_consent_profiles_t  *conf;
    const consent_policy_t     *policy;
    ngx_http_consent_profile_done_pt  done;

    ngx_http_consent_pkey_t    *keys;
    ngx_uint_t                  nkeys;
    ngx_uint_t                 *ids;            /* per event: key + 1, or 0 */
    u_char                     *link;           /* per event: links its ids */
    ngx_uint_t                 *table;          /* key + 1, by hash */
    ngx_uint_t                  mask;
    ngx_uint_t                 *sent_keys;      /* the keys of the commands */
    ngx_uint_t                  nsent;

    ngx_http_consent_store_op_t  *op;
    ngx_msec_t                  sent;
    ngx_uint_t                  round;
    ngx_uint_t                  lookups[NGX_HTTP_CONSENT_LOOKUP_N];
    ngx_uint_t                  records[NGX_HTTP_CONSENT_RECORD_N];
    unsigned                    failed:1;
} ngx_http_consent_profile_t;


ngx_int_t ngx_http_consent_profile_keys(ngx_http_consent_profile_t *pf);
ngx_http_consent_pkey_t *ngx_http_consent_profile_key(
    ngx_http_consent_profile_t *pf, ngx_uint_t e, ngx_uint_t j);
ngx_int_t ngx_http_consent_profile_commands(ngx_http_consent_profile_t *pf,
    ngx_uint_t round, ngx_str_t *cmds, ngx_uint_t *n);
ngx_uint_t ngx_http_consent_profile_later(ngx_http_consent_profile_t *pf);
ngx_int_t ngx_http_consent_profile_read(ngx_http_consent_profile_t *pf,
    u_char *replies, size_t len, ngx_uint_t n);
ngx_int_t ngx_http_consent_profile_stored(ngx_pool_t *pool, const char *p,
    size_t len, ngx_http_consent_pkey_t *k);


#endif /* _NGX_HTTP_CONSENT_PROFILE_H_INCLUDED_ */
