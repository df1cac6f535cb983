
/*
 * ngx_consent: batched delivery (consent_delivery batch).  Per worker
 * and per destination queues of events copied out of their requests,
 * sent as one {"batch":[...]} POST each, apart from any client request.
 */

#ifndef _NGX_HTTP_CONSENT_BATCH_H_INCLUDED_
#define _NGX_HTTP_CONSENT_BATCH_H_INCLUDED_


#include "ngx_http_consent.h"


/* counters of ngx_http_consent_status_batch(), per destination */
#define NGX_HTTP_CONSENT_BATCH_QUEUED_EVENTS  0   /* gauges */
#define NGX_HTTP_CONSENT_BATCH_QUEUED_BYTES   1
#define NGX_HTTP_CONSENT_BATCH_SENT           2
#define NGX_HTTP_CONSENT_BATCH_RETRIES        3
#define NGX_HTTP_CONSENT_BATCH_DROP_RETRIES   4   /* events */
#define NGX_HTTP_CONSENT_BATCH_DROP_BACKLOG   5
#define NGX_HTTP_CONSENT_BATCH_DROP_SHUTDOWN  6
#define NGX_HTTP_CONSENT_BATCH_N              7
/* not ours: the events_total outcomes */
#define NGX_HTTP_CONSENT_BATCH_DELIVERED      7
#define NGX_HTTP_CONSENT_BATCH_FAILED         8

/* drop_header=Authorization: bit 0 of ngx_http_consent_dest_conf_t.drop */
#define NGX_HTTP_CONSENT_BATCH_DROP_AUTH      0x01


struct ngx_http_consent_batch_conf_s {
    ngx_uint_t                  size;
    ngx_msec_t                  flush;
    ngx_uint_t                  retries;
    size_t                      backlog;
};


typedef struct ngx_http_consent_batch_entry_s  ngx_http_consent_batch_entry_t;
typedef struct ngx_http_consent_batch_queue_s  ngx_http_consent_batch_queue_t;


/* one request's events for one destination, and what must go with them */
struct ngx_http_consent_batch_entry_s {
    ngx_http_consent_batch_entry_t  *next;
    ngx_msec_t                  queued;
    ngx_uint_t                  nevents;
    ngx_str_t                   events;     /* "ev,ev,..." */
    ngx_str_t                   tail;       /* ",member,..." of a batch */
    ngx_str_t                   auth;       /* Authorization, or empty */
    size_t                      size;       /* what the backlog counts */
};


/* one send: a fake connection and request, and its subrequest's outcome */
typedef struct {
    ngx_http_consent_batch_queue_t  *queue;
    ngx_connection_t           *connection;
    ngx_http_request_t         *request;
    ngx_msec_t                  start;
    ngx_uint_t                  status;
    unsigned                    done:1;
    unsigned                    failed:1;
} ngx_http_consent_batch_send_t;


struct ngx_http_consent_batch_queue_s {
    ngx_http_consent_batch_queue_t  *next;     /* the worker's queues */
    ngx_http_consent_dest_conf_t    *dest;
    ngx_http_conf_ctx_t             *server;   /* where uri is found */
    ngx_http_consent_batch_conf_t   *conf;
    ngx_http_consent_status_conf_t  *counters;
    size_t                      max_bytes;  /* of one batch's body */

    ngx_http_consent_batch_entry_t  *head;
    ngx_http_consent_batch_entry_t **last;
    ngx_uint_t                  nevents;
    size_t                      bytes;

    /* the batch at the head: its entries, events, tries so far */
    ngx_uint_t                  nentries;
    ngx_uint_t                  nbatch;
    ngx_uint_t                  tries;
    ngx_http_consent_batch_send_t   *send;     /* in flight */

    ngx_event_t                 event;      /* flush, backoff, next */
    unsigned                    dropping:1; /* backlog full, logged */
};


ngx_int_t ngx_http_consent_batch_send(ngx_http_consent_batch_queue_t *q);
void ngx_http_consent_batch_done(ngx_http_consent_batch_queue_t *q,
    ngx_uint_t ok, ngx_msec_t elapsed);

ngx_int_t ngx_http_consent_status_batch_used(ngx_conf_t *cf);
void ngx_http_consent_status_batch(ngx_http_consent_status_conf_t *scf,
    ngx_uint_t dest, ngx_uint_t what, ngx_int_t n);
void ngx_http_consent_status_batch_latency(
    ngx_http_consent_status_conf_t *scf, ngx_uint_t dest, ngx_msec_t ms);


#endif /* _NGX_HTTP_CONSENT_BATCH_H_INCLUDED_ */
