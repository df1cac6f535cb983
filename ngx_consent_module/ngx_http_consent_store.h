
/*
 * ngx_consent: the connection to the profile store, see
 * ngx_http_consent_store.c.
 */

#ifndef _NGX_HTTP_CONSENT_STORE_H_INCLUDED_
#define _NGX_HTTP_CONSENT_STORE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <ngx_event_connect.h>


typedef struct ngx_http_consent_store_op_s  ngx_http_consent_store_op_t;

/*
 * rc NGX_OK: replies holds the n replies (RESP), valid during the call;
 * NGX_ERROR: the store failed (unreachable, timed out, garbage).
 */
typedef void (*ngx_http_consent_store_pt)(void *data, ngx_int_t rc,
    u_char *replies, size_t len, ngx_uint_t n);


/* one store address: its configuration and, per worker, its connection */
struct ngx_http_consent_store_s {
    ngx_str_t                   name;           /* as configured */
    ngx_addr_t                 *addr;
    u_char                      sha[40];        /* the profile script's */

    ngx_connection_t           *connection;
    ngx_buf_t                   out;            /* commands to write */
    ngx_buf_t                   in;             /* replies read */
    u_char                     *reply;          /* the head op's first */
    ngx_queue_t                 ops;            /* awaiting replies */
    const char                 *cause;          /* the failure logged */
    unsigned                    connecting:1;
    unsigned                    loaded:1;       /* SCRIPT LOAD sent */
};


ngx_http_consent_store_t *ngx_http_consent_store_add(ngx_conf_t *cf,
    ngx_array_t *stores, ngx_url_t *u);
ngx_http_consent_store_op_t *ngx_http_consent_store_send(
    ngx_http_consent_store_t *st, u_char *cmds, size_t len, ngx_uint_t n,
    ngx_msec_t timeout, ngx_http_consent_store_pt handler, void *data);
void ngx_http_consent_store_cancel(ngx_http_consent_store_op_t *op);
void ngx_http_consent_store_exit(ngx_array_t *stores);


#endif /* _NGX_HTTP_CONSENT_STORE_H_INCLUDED_ */
