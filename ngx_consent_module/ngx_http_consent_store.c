
/*
 * ngx_consent: the connection to the profile store (Redis, or any
 * server speaking its protocol: Valkey, KeyDB, a cluster proxy).
 *
 * One connection per worker and store address, opened on first use,
 * on which every request's commands are pipelined: Redis answers in
 * order, so each waiting operation takes the next n replies.  Commands
 * are copied into the connection's own buffer and operations live on
 * the heap, so a request may end while its replies are still due: they
 * are read and dropped.  A round trip over its timeout closes the
 * connection and fails every operation on it; the next one reconnects.
 * This is hiredis's async model on nginx's own event loop, with the
 * RESP parser of the core (consent_profile.c), which is fuzzed.
 */

#include <ngx_sha1.h>

#include "ngx_http_consent.h"
#include "ngx_http_consent_store.h"


#define NGX_HTTP_CONSENT_STORE_BUF       (16 * 1024)
#define NGX_HTTP_CONSENT_STORE_MAX_BUF   (16 * 1024 * 1024)
#define NGX_HTTP_CONSENT_STORE_MAX_BULK  (1024 * 1024)


struct ngx_http_consent_store_op_s {
    ngx_queue_t                   queue;
    ngx_uint_t                    due;          /* replies still due */
    ngx_uint_t                    nreplies;
    ngx_http_consent_store_pt     handler;      /* NULL: nobody waits */
    void                         *data;
    ngx_event_t                   timer;
    ngx_http_consent_store_t     *store;
};


static ngx_int_t ngx_http_consent_store_connect(ngx_http_consent_store_t *st);
static ngx_int_t ngx_http_consent_store_load(ngx_http_consent_store_t *st);
static ngx_int_t ngx_http_consent_store_append(ngx_buf_t *b, u_char *p,
    size_t len);
static void ngx_http_consent_store_write_handler(ngx_event_t *wev);
static ngx_int_t ngx_http_consent_store_flush(ngx_http_consent_store_t *st);
static void ngx_http_consent_store_read_handler(ngx_event_t *rev);
static ngx_int_t ngx_http_consent_store_grow(ngx_http_consent_store_t *st);
static ngx_int_t ngx_http_consent_store_replies(ngx_http_consent_store_t *st);
static void ngx_http_consent_store_timeout(ngx_event_t *ev);
static void ngx_http_consent_store_fail(ngx_http_consent_store_t *st,
    const char *cause, ngx_err_t err);
static void ngx_http_consent_store_loaded(void *data, ngx_int_t rc,
    u_char *replies, size_t len, ngx_uint_t n);


ngx_http_consent_store_t *
ngx_http_consent_store_add(ngx_conf_t *cf, ngx_array_t *stores, ngx_url_t *u)
{
    u_char                      digest[20];
    ngx_uint_t                  i;
    ngx_sha1_t                  sha1;
    ngx_http_consent_store_t  **stp, *st;

    stp = stores->elts;

    for (i = 0; i < stores->nelts; i++) {
        if (stp[i]->name.len == u->url.len
            && ngx_strncmp(stp[i]->name.data, u->url.data, u->url.len) == 0)
        {
            return stp[i];
        }
    }

    st = ngx_pcalloc(cf->pool, sizeof(ngx_http_consent_store_t));
    stp = ngx_array_push(stores);
    if (st == NULL || stp == NULL) {
        return NULL;
    }

    *stp = st;
    st->name = u->url;
    st->addr = &u->addrs[0];
    ngx_queue_init(&st->ops);

    ngx_sha1_init(&sha1);
    ngx_sha1_update(&sha1, CONSENT_PROFILE_SCRIPT,
                    ngx_strlen(CONSENT_PROFILE_SCRIPT));
    ngx_sha1_final(digest, &sha1);
    ngx_hex_dump(st->sha, digest, 20);

    return st;
}


/*
 * Queues n pipelined commands (cmds, RESP).  handler(data, ...) gets
 * their n replies, or NGX_ERROR, once.  NULL: failed at once (the
 * store is unreachable or overloaded), the handler is not called.
 */

ngx_http_consent_store_op_t *
ngx_http_consent_store_send(ngx_http_consent_store_t *st, u_char *cmds,
    size_t len, ngx_uint_t n, ngx_msec_t timeout,
    ngx_http_consent_store_pt handler, void *data)
{
    ngx_http_consent_store_op_t  *op;

    if (st->connection == NULL && ngx_http_consent_store_connect(st) != NGX_OK)
    {
        return NULL;
    }

    op = ngx_calloc(sizeof(ngx_http_consent_store_op_t), ngx_cycle->log);
    if (op == NULL) {
        return NULL;
    }

    if (!st->loaded) {
        /* first on a connection, or after NOSCRIPT (SCRIPT FLUSH) */
        if (ngx_http_consent_store_load(st) != NGX_OK) {
            ngx_free(op);
            return NULL;
        }
    }

    if (ngx_http_consent_store_append(&st->out, cmds, len) != NGX_OK) {
        ngx_free(op);
        ngx_http_consent_store_fail(st, "too many commands waiting", 0);
        return NULL;
    }

    op->due = n;
    op->nreplies = n;
    op->handler = handler;
    op->data = data;
    op->store = st;
    op->timer.handler = ngx_http_consent_store_timeout;
    op->timer.data = op;
    op->timer.log = ngx_cycle->log;
    ngx_add_timer(&op->timer, timeout);

    ngx_queue_insert_tail(&st->ops, &op->queue);

    /* written once the current event is handled: the commands of every
     * request handled meanwhile go in one write */
    if (!st->connection->write->posted) {
        ngx_post_event(st->connection->write, &ngx_posted_events);
    }

    return op;
}


/* the request waiting for op is gone: its replies are read and dropped */

void
ngx_http_consent_store_cancel(ngx_http_consent_store_op_t *op)
{
    op->handler = NULL;
    op->data = NULL;

    if (op->timer.timer_set) {
        ngx_del_timer(&op->timer);
    }
}


static ngx_int_t
ngx_http_consent_store_load(ngx_http_consent_store_t *st)
{
    size_t                        len;
    u_char                       *p;
    const char                   *argv[3];
    size_t                        lens[3];
    ngx_http_consent_store_op_t  *op;

    argv[0] = "SCRIPT";
    lens[0] = 6;
    argv[1] = "LOAD";
    lens[1] = 4;
    argv[2] = CONSENT_PROFILE_SCRIPT;
    lens[2] = ngx_strlen(CONSENT_PROFILE_SCRIPT);

    len = consent_resp_command(NULL, 0, 3, argv, lens);

    p = ngx_alloc(len, ngx_cycle->log);
    op = ngx_calloc(sizeof(ngx_http_consent_store_op_t), ngx_cycle->log);

    if (p == NULL || op == NULL
        || consent_resp_command((char *) p, len, 3, argv, lens) != len
        || ngx_http_consent_store_append(&st->out, p, len) != NGX_OK)
    {
        ngx_free(p);
        ngx_free(op);
        return NGX_ERROR;
    }

    ngx_free(p);

    /* no timer: the operation queued after it bounds the round trip */
    op->due = 1;
    op->nreplies = 1;
    op->handler = ngx_http_consent_store_loaded;
    op->data = st;
    op->store = st;
    ngx_queue_insert_tail(&st->ops, &op->queue);

    st->loaded = 1;

    return NGX_OK;
}


static void
ngx_http_consent_store_loaded(void *data, ngx_int_t rc, u_char *replies,
    size_t len, ngx_uint_t n)
{
    ngx_http_consent_store_t  *st = data;

    consent_resp_t  reply;

    if (rc != NGX_OK) {
        return;
    }

    if (consent_resp_parse((char *) replies, len, &reply) <= 0
        || reply.type != CONSENT_RESP_BULK || reply.len != 40
        || ngx_strncasecmp((u_char *) reply.data, st->sha, 40) != 0)
    {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "consent: profile store \"%V\" did not load the "
                      "profile script: \"%*s\"", &st->name,
                      ngx_min(len, 200), replies);
    }
}


static ngx_int_t
ngx_http_consent_store_connect(ngx_http_consent_store_t *st)
{
    ngx_int_t               rc;
    ngx_connection_t       *c;
    ngx_peer_connection_t   pc;

    ngx_memzero(&pc, sizeof(ngx_peer_connection_t));

    pc.sockaddr = st->addr->sockaddr;
    pc.socklen = st->addr->socklen;
    pc.name = &st->name;
    pc.get = ngx_event_get_peer;
    pc.log = ngx_cycle->log;
    pc.log_error = NGX_ERROR_ERR;

    rc = ngx_event_connect_peer(&pc);

    if (rc == NGX_ERROR || rc == NGX_BUSY || rc == NGX_DECLINED) {
        if (pc.connection) {
            ngx_close_connection(pc.connection);
        }

        ngx_http_consent_store_fail(st, "cannot connect", ngx_socket_errno);
        return NGX_ERROR;
    }

    c = pc.connection;
    c->data = st;
    c->read->handler = ngx_http_consent_store_read_handler;
    c->write->handler = ngx_http_consent_store_write_handler;
    c->log = ngx_cycle->log;
    c->read->log = c->log;
    c->write->log = c->log;
    c->pool = NULL;

    st->connection = c;
    st->connecting = (rc == NGX_AGAIN);
    st->loaded = 0;

    if (st->in.start == NULL) {
        st->in.start = ngx_alloc(NGX_HTTP_CONSENT_STORE_BUF, ngx_cycle->log);
        if (st->in.start == NULL) {
            ngx_http_consent_store_fail(st, "out of memory", 0);
            return NGX_ERROR;
        }

        st->in.end = st->in.start + NGX_HTTP_CONSENT_STORE_BUF;
    }

    st->in.pos = st->in.start;
    st->in.last = st->in.start;
    st->reply = st->in.start;

    return NGX_OK;
}


/* appends to a heap buffer, growing it up to the limit */

static ngx_int_t
ngx_http_consent_store_append(ngx_buf_t *b, u_char *p, size_t len)
{
    size_t   size, used;
    u_char  *n;

    if ((size_t) (b->end - b->last) < len) {
        used = b->last - b->pos;
        size = ngx_max((size_t) (b->end - b->start),
                       NGX_HTTP_CONSENT_STORE_BUF);

        while (size < used + len) {
            size *= 2;
        }

        if (size > NGX_HTTP_CONSENT_STORE_MAX_BUF) {
            return NGX_ERROR;
        }

        if (size > (size_t) (b->end - b->start)) {
            n = ngx_alloc(size, ngx_cycle->log);
            if (n == NULL) {
                return NGX_ERROR;
            }

            ngx_memcpy(n, b->pos, used);
            ngx_free(b->start);
            b->start = n;
            b->end = n + size;

        } else {
            ngx_memmove(b->start, b->pos, used);
        }

        b->pos = b->start;
        b->last = b->start + used;
    }

    b->last = ngx_cpymem(b->last, p, len);

    return NGX_OK;
}


static void
ngx_http_consent_store_write_handler(ngx_event_t *wev)
{
    int                        err;
    socklen_t                  len;
    ngx_connection_t          *c;
    ngx_http_consent_store_t  *st;

    c = wev->data;
    st = c->data;

    if (st->connecting) {
        if (!wev->ready) {
            /* posted by a send, before the connect completed */
            return;
        }

        err = 0;
        len = sizeof(int);

        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, (void *) &err, &len)
            == -1)
        {
            err = ngx_socket_errno;
        }

        if (err) {
            ngx_http_consent_store_fail(st, "cannot connect", err);
            return;
        }

        st->connecting = 0;
    }

    (void) ngx_http_consent_store_flush(st);
}


static ngx_int_t
ngx_http_consent_store_flush(ngx_http_consent_store_t *st)
{
    ssize_t            n;
    ngx_buf_t         *b;
    ngx_connection_t  *c;

    c = st->connection;
    b = &st->out;

    if (c == NULL || st->connecting) {
        return NGX_OK;
    }

    while (b->pos < b->last) {
        n = c->send(c, b->pos, b->last - b->pos);

        if (n == NGX_AGAIN) {
            break;
        }

        if (n == NGX_ERROR) {
            ngx_http_consent_store_fail(st, "cannot send", ngx_socket_errno);
            return NGX_ERROR;
        }

        b->pos += n;
    }

    if (b->pos == b->last) {
        b->pos = b->start;
        b->last = b->start;
    }

    if (ngx_handle_write_event(c->write, 0) != NGX_OK) {
        ngx_http_consent_store_fail(st, "cannot send", 0);
        return NGX_ERROR;
    }

    return NGX_OK;
}


static void
ngx_http_consent_store_read_handler(ngx_event_t *rev)
{
    ssize_t                    n;
    ngx_buf_t                 *b;
    ngx_connection_t          *c;
    ngx_http_consent_store_t  *st;

    c = rev->data;
    st = c->data;
    b = &st->in;

    for ( ;; ) {
        if (b->last == b->end && ngx_http_consent_store_grow(st) != NGX_OK) {
            ngx_http_consent_store_fail(st, "reply too large", 0);
            return;
        }

        n = c->recv(c, b->last, b->end - b->last);

        if (n == NGX_AGAIN) {
            break;
        }

        if (n == 0 || n == NGX_ERROR) {
            ngx_http_consent_store_fail(st, "connection closed",
                                        n ? ngx_socket_errno : 0);
            return;
        }

        b->last += n;

        if (ngx_http_consent_store_replies(st) != NGX_OK) {
            return;
        }
    }

    if (ngx_handle_read_event(rev, 0) != NGX_OK) {
        ngx_http_consent_store_fail(st, "cannot read", 0);
    }
}


/* makes room in the reply buffer, which holds [reply, last) */

static ngx_int_t
ngx_http_consent_store_grow(ngx_http_consent_store_t *st)
{
    size_t      size, used, pos;
    u_char     *n;
    ngx_buf_t  *b;

    b = &st->in;
    used = b->last - st->reply;
    pos = b->pos - st->reply;

    if (st->reply > b->start) {
        ngx_memmove(b->start, st->reply, used);

    } else {
        size = 2 * (b->end - b->start);

        if (size > NGX_HTTP_CONSENT_STORE_MAX_BUF) {
            return NGX_ERROR;
        }

        n = ngx_alloc(size, ngx_cycle->log);
        if (n == NULL) {
            return NGX_ERROR;
        }

        ngx_memcpy(n, b->start, used);
        ngx_free(b->start);
        b->start = n;
        b->end = n + size;
    }

    st->reply = b->start;
    b->pos = b->start + pos;
    b->last = b->start + used;

    return NGX_OK;
}


/* hands each operation whose replies are all in to its handler */

static ngx_int_t
ngx_http_consent_store_replies(ngx_http_consent_store_t *st)
{
    ssize_t                       rc;
    ngx_buf_t                    *b;
    consent_resp_t                reply;
    ngx_connection_t             *c;
    ngx_http_consent_store_op_t  *op;

    b = &st->in;
    c = st->connection;

    while (!ngx_queue_empty(&st->ops)) {
        op = ngx_queue_data(ngx_queue_head(&st->ops),
                            ngx_http_consent_store_op_t, queue);

        rc = consent_resp_parse_max((char *) b->pos, b->last - b->pos,
                                    NGX_HTTP_CONSENT_STORE_MAX_BULK, &reply);
        if (rc == 0) {
            return NGX_OK;
        }

        if (rc < 0) {
            ngx_http_consent_store_fail(st, "malformed reply", 0);
            return NGX_ERROR;
        }

        if (reply.type == CONSENT_RESP_ERROR && reply.len >= 8
            && ngx_strncmp(reply.data, "NOSCRIPT", 8) == 0)
        {
            /* SCRIPT FLUSH, or a failover to a replica without it */
            st->loaded = 0;
        }

        b->pos += rc;

        if (--op->due) {
            continue;
        }

        ngx_queue_remove(&op->queue);

        if (op->timer.timer_set) {
            ngx_del_timer(&op->timer);
        }

        if (st->cause) {
            ngx_log_error(NGX_LOG_NOTICE, ngx_cycle->log, 0,
                          "consent: profile store \"%V\" answers again",
                          &st->name);
            st->cause = NULL;
        }

        if (op->handler) {
            op->handler(op->data, NGX_OK, st->reply, b->pos - st->reply,
                        op->nreplies);
        }

        ngx_free(op);
        st->reply = b->pos;

        if (st->connection != c) {
            return NGX_ERROR;
        }
    }

    if (b->pos < b->last) {
        ngx_http_consent_store_fail(st, "unexpected reply", 0);
        return NGX_ERROR;
    }

    b->pos = b->start;
    b->last = b->start;
    st->reply = b->start;

    return NGX_OK;
}


static void
ngx_http_consent_store_timeout(ngx_event_t *ev)
{
    ngx_http_consent_store_op_t  *op = ev->data;

    ngx_http_consent_store_fail(op->store, "timed out", 0);
}


/*
 * Closes the connection and fails every operation on it.  Logged once
 * per cause until the store answers again.
 */

static void
ngx_http_consent_store_fail(ngx_http_consent_store_t *st, const char *cause,
    ngx_err_t err)
{
    ngx_queue_t                   ops, *q;
    ngx_http_consent_store_op_t  *op;

    if (cause != NULL && cause != st->cause) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, err,
                      "consent: profile store \"%V\": %s", &st->name, cause);
        st->cause = cause;
    }

    if (st->connection) {
        ngx_close_connection(st->connection);
        st->connection = NULL;
    }

    st->connecting = 0;
    st->out.pos = st->out.start;
    st->out.last = st->out.start;
    st->in.pos = st->in.start;
    st->in.last = st->in.start;
    st->reply = st->in.start;

    /* handlers may queue new operations: take the old ones out first */
    ngx_queue_init(&ops);

    if (!ngx_queue_empty(&st->ops)) {
        ngx_queue_add(&ops, &st->ops);
        ngx_queue_init(&st->ops);
    }

    while (!ngx_queue_empty(&ops)) {
        q = ngx_queue_head(&ops);
        ngx_queue_remove(q);
        op = ngx_queue_data(q, ngx_http_consent_store_op_t, queue);

        if (op->timer.timer_set) {
            ngx_del_timer(&op->timer);
        }

        if (op->handler) {
            op->handler(op->data, NGX_ERROR, NULL, 0, 0);
        }

        ngx_free(op);
    }
}


/* a worker exits: its connections close, their operations fail */

void
ngx_http_consent_store_exit(ngx_array_t *stores)
{
    ngx_uint_t                  i;
    ngx_http_consent_store_t  **stp;

    stp = stores->elts;

    for (i = 0; i < stores->nelts; i++) {
        ngx_http_consent_store_fail(stp[i], NULL, 0);

        ngx_free(stp[i]->in.start);
        ngx_free(stp[i]->out.start);
        ngx_memzero(&stp[i]->in, sizeof(ngx_buf_t));
        ngx_memzero(&stp[i]->out, sizeof(ngx_buf_t));
        stp[i]->reply = NULL;
    }
}
