
/*
 * ngx_consent: a request's profile keys and their commands.
 *
 * Every id of an accepted event that records or needs a decision is a
 * key, once per request however many events name it: the newest
 * decision of the request for it is recorded (EVALSHA of the
 * compare-and-set script), a key that records nothing is read (HMGET).
 * One command per key, each on one key, so each on one cluster slot.
 */

#include "ngx_http_consent_profile.h"


#define NGX_HTTP_CONSENT_ORDER_BITS  10     /* events a ms, per worker */


static ngx_int_t ngx_http_consent_profile_event(ngx_http_consent_profile_t *pf,
    uint32_t e, int64_t now, ngx_uint_t *seq);
static uint32_t ngx_http_consent_profile_member(
    ngx_http_consent_profile_t *pf, uint32_t e, const char *name, size_t len);
static ngx_int_t ngx_http_consent_profile_id(ngx_http_consent_profile_t *pf,
    uint32_t m, ngx_str_t *id);
static int64_t ngx_http_consent_profile_time(ngx_http_consent_profile_t *pf,
    uint32_t e, int64_t now);
static ngx_int_t ngx_http_consent_profile_value(ngx_http_consent_profile_t *pf,
    uint32_t e, int64_t t, ngx_str_t *value);
static ngx_uint_t ngx_http_consent_profile_argv(
    ngx_http_consent_profile_t *pf, ngx_http_consent_pkey_t *k,
    const char **argv, size_t *lens, u_char num[][NGX_INT64_LEN]);
static ngx_int_t ngx_http_consent_profile_add(ngx_http_consent_profile_t *pf,
    uint32_t e, ngx_uint_t j, char kind, ngx_str_t *id, ngx_str_t *value,
    int64_t t, int64_t o, ngx_uint_t later);


static ngx_uint_t  ngx_http_consent_profile_seq;


ngx_int_t
ngx_http_consent_profile_keys(ngx_http_consent_profile_t *pf)
{
    int64_t            now;
    uint32_t           e;
    ngx_uint_t         n;
    ngx_time_t        *tp;
    consent_result_t  *res;
    ngx_pool_t        *pool;

    res = &pf->ctx->result;
    pool = pf->request->pool;
    n = res->nevents;

    pf->keys = ngx_pcalloc(pool, n * NGX_HTTP_CONSENT_PROFILE_IDS
                                 * sizeof(ngx_http_consent_pkey_t));
    pf->ids = ngx_pcalloc(pool, n * NGX_HTTP_CONSENT_PROFILE_IDS
                                * sizeof(ngx_uint_t));
    pf->sent_keys = ngx_palloc(pool, n * NGX_HTTP_CONSENT_PROFILE_IDS
                                     * sizeof(ngx_uint_t));
    pf->link = ngx_pcalloc(pool, n);

    /* open addressing, at most half full */
    for (pf->mask = 1; pf->mask < 2 * n * NGX_HTTP_CONSENT_PROFILE_IDS;
         pf->mask <<= 1)
    {
        /* void */
    }

    pf->table = ngx_pcalloc(pool, pf->mask * sizeof(ngx_uint_t));
    pf->mask--;

    if (pf->keys == NULL || pf->ids == NULL || pf->sent_keys == NULL
        || pf->link == NULL || pf->table == NULL)
    {
        return NGX_ERROR;
    }

    if (res->rewrite == NULL) {
        res->rewrite = ngx_pcalloc(pool, n * sizeof(consent_str_t));
        if (res->rewrite == NULL) {
            return NGX_ERROR;
        }
    }

    tp = ngx_timeofday();
    now = (int64_t) tp->sec * 1000 + tp->msec;

    for (e = 0; e < n; e++) {
        if (res->events[e].code == CONSENT_OK
            && ngx_http_consent_profile_event(pf, e, now,
                                              &ngx_http_consent_profile_seq)
               != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/* the keys of accepted event e, with the decision it records, if any */

static ngx_int_t
ngx_http_consent_profile_event(ngx_http_consent_profile_t *pf, uint32_t e,
    int64_t now, ngx_uint_t *seq)
{
    int64_t           t, o;
    ngx_str_t         ids[NGX_HTTP_CONSENT_PROFILE_IDS], value;
    ngx_uint_t        j, n, later;
    consent_event_t  *ev;

    static const char  kinds[] = { 'u', 'a', 'a' };

    ev = &pf->ctx->result.events[e];

    if (ngx_http_consent_profile_id(pf, ev->user_id, &ids[0]) != NGX_OK
        || ngx_http_consent_profile_id(pf, ev->anon_id, &ids[1]) != NGX_OK)
    {
        return NGX_ERROR;
    }

    ngx_str_null(&ids[2]);

    /* alias: previousId, the anonymousId analytics.js sends by default */
    if (ev->type == CONSENT_EP_ALIAS
        && ngx_http_consent_profile_id(pf,
               ngx_http_consent_profile_member(pf, e, "previousId", 10),
               &ids[2])
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    n = (ids[0].len != 0) + (ids[1].len != 0) + (ids[2].len != 0);
    pf->link[e] = (n > 1
                   && (ev->type == CONSENT_EP_IDENTIFY
                       || ev->type == CONSENT_EP_ALIAS));

    ngx_str_null(&value);
    t = 0;
    o = 0;

    if (ev->source == CONSENT_SRC_EVENT || ev->source == CONSENT_SRC_BATCH
        || ev->source == CONSENT_SRC_HOOK)
    {
        t = ngx_http_consent_profile_time(pf, e, now);
        o = (now << NGX_HTTP_CONSENT_ORDER_BITS)
            + ((*seq)++ & ((1 << NGX_HTTP_CONSENT_ORDER_BITS) - 1));

        if (ngx_http_consent_profile_value(pf, e, t, &value) != NGX_OK) {
            return NGX_ERROR;
        }

    } else if (ev->source != CONSENT_SRC_NONE && !pf->link[e]) {
        /* failed closed: nothing to record, nothing to look up */
        return NGX_OK;
    }

    /*
     * A lookup reads the anonymousId's profile only when the userId has
     * none: in a second round trip, which known users never need.
     */
    later = (value.len == 0 && !pf->link[e] && ids[0].len);

    for (j = 0; j < NGX_HTTP_CONSENT_PROFILE_IDS; j++) {
        if (ids[j].len
            && ngx_http_consent_profile_add(pf, e, j, kinds[j], &ids[j],
                                            &value, t, o, j == 1 && later)
               != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


static uint32_t
ngx_http_consent_profile_member(ngx_http_consent_profile_t *pf, uint32_t e,
    const char *name, size_t len)
{
    consent_result_t  *res = &pf->ctx->result;

    return consent_json_member(res->body, res->tok, res->events[e].tok, name,
                               len);
}


/* a string or number value (tape index m) as an id; empty if none */

static ngx_int_t
ngx_http_consent_profile_id(ngx_http_consent_profile_t *pf, uint32_t m,
    ngx_str_t *id)
{
    consent_result_t          *res;
    const consent_json_tok_t  *t;

    res = &pf->ctx->result;
    ngx_str_null(id);

    if (m == 0) {
        return NGX_OK;
    }

    t = &res->tok[m];

    if (t->type == CONSENT_JSON_NUMBER) {
        id->data = (u_char *) res->body + t->start;
        id->len = t->end - t->start;
        return NGX_OK;
    }

    if (t->type != CONSENT_JSON_STRING) {
        return NGX_OK;
    }

    if (!t->escaped) {
        id->data = (u_char *) res->body + t->start + 1;
        id->len = t->end - t->start - 2;
        return NGX_OK;
    }

    id->data = ngx_pnalloc(pf->request->pool, t->end - t->start);
    if (id->data == NULL) {
        return NGX_ERROR;
    }

    id->len = consent_json_str_decode(res->body, t, id->data);

    return NGX_OK;
}


/*
 * When the decision was made: the event's timestamp, else its
 * originalTimestamp, else now.  A clock ahead of ours is capped at
 * now, or it would outrank every later decision until it passed.
 */

static int64_t
ngx_http_consent_profile_time(ngx_http_consent_profile_t *pf, uint32_t e,
    int64_t now)
{
    int64_t    ms;
    ngx_str_t  s;

    if ((ngx_http_consent_profile_id(pf,
             ngx_http_consent_profile_member(pf, e, "timestamp", 9), &s)
         == NGX_OK
         && s.len
         && consent_time_parse((char *) s.data, s.len, &ms) == 0)
        || (ngx_http_consent_profile_id(pf,
                ngx_http_consent_profile_member(pf, e, "originalTimestamp",
                                                17), &s)
            == NGX_OK
            && s.len
            && consent_time_parse((char *) s.data, s.len, &ms) == 0))
    {
        return ngx_min(ms, now);
    }

    return now;
}


/* the stored value: {"p":<its preferences>,"t":ms,"e":"<messageId>"} */

static ngx_int_t
ngx_http_consent_profile_value(ngx_http_consent_profile_t *pf, uint32_t e,
    int64_t t, ngx_str_t *value)
{
    size_t                     len;
    ngx_str_t                  prefs, source;
    consent_event_t           *ev;
    consent_result_t          *res;
    const consent_json_tok_t  *tok;

    res = &pf->ctx->result;
    ev = &res->events[e];

    if (ev->source == CONSENT_SRC_HOOK) {
        prefs.data = (u_char *) res->rewrite[e].data;
        prefs.len = res->rewrite[e].len;

    } else {
        tok = &res->tok[ev->prefs];

        if (ev->prefs == 0 || tok->type != CONSENT_JSON_OBJECT) {
            ngx_str_null(value);
            return NGX_OK;
        }

        prefs.data = (u_char *) res->body + tok->start;
        prefs.len = tok->end - tok->start;
    }

    if (prefs.data == NULL
        || ngx_http_consent_profile_id(pf,
               ngx_http_consent_profile_member(pf, e, "messageId", 9),
               &source)
           != NGX_OK)
    {
        ngx_str_null(value);
        return prefs.data == NULL ? NGX_OK : NGX_ERROR;
    }

    len = consent_profile_encode(NULL, 0, (char *) prefs.data, prefs.len, t,
                                 (char *) source.data, source.len);

    value->data = ngx_pnalloc(pf->request->pool, len);
    if (value->data == NULL) {
        return NGX_ERROR;
    }

    value->len = consent_profile_encode((char *) value->data, len,
                                        (char *) prefs.data, prefs.len, t,
                                        (char *) source.data, source.len);
    if (value->len == 0) {
        /* a messageId that is not UTF-8: recorded without it */
        value->len = consent_profile_encode((char *) value->data, len,
                                            (char *) prefs.data, prefs.len,
                                            t, "", 0);
    }

    return NGX_OK;
}


/* id j of event e as a key, merged with the request's other mentions */

static ngx_int_t
ngx_http_consent_profile_add(ngx_http_consent_profile_t *pf, uint32_t e,
    ngx_uint_t j, char kind, ngx_str_t *id, ngx_str_t *value, int64_t t,
    int64_t o, ngx_uint_t later)
{
    u_char                   *p;
    size_t                    len;
    ngx_uint_t                i, h, hash;
    ngx_str_t                *prefix;
    ngx_http_consent_pkey_t  *k;

    prefix = &pf->conf->prefix;
    len = consent_profile_key(NULL, 0, (char *) prefix->data, prefix->len,
                              kind, (char *) id->data, id->len);

    p = ngx_pnalloc(pf->request->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    (void) consent_profile_key((char *) p, len, (char *) prefix->data,
                               prefix->len, kind, (char *) id->data, id->len);

    hash = ngx_hash_key(p, len);

    for (h = hash & pf->mask; pf->table[h]; h = (h + 1) & pf->mask) {
        k = &pf->keys[pf->table[h] - 1];

        if (k->key.len == len && ngx_memcmp(k->key.data, p, len) == 0) {
            break;
        }
    }

    if (pf->table[h] == 0) {
        pf->table[h] = ++pf->nkeys;
        pf->keys[pf->nkeys - 1].key.data = p;
        pf->keys[pf->nkeys - 1].key.len = len;
    }

    i = pf->table[h] - 1;
    k = &pf->keys[i];

    pf->ids[e * NGX_HTTP_CONSENT_PROFILE_IDS + j] = i + 1;

    /* the request's newest decision for the key: later events arrive
     * later */
    if (value->len && (k->value.len == 0 || t >= k->t)) {
        k->value = *value;
        k->t = t;
        k->o = o;
        k->write = 1;
    }

    if (!later) {
        k->round = 1;
    }

    return NGX_OK;
}


ngx_http_consent_pkey_t *
ngx_http_consent_profile_key(ngx_http_consent_profile_t *pf, ngx_uint_t e,
    ngx_uint_t j)
{
    ngx_uint_t  i;

    i = pf->ids[e * NGX_HTTP_CONSENT_PROFILE_IDS + j];

    return i ? &pf->keys[i - 1] : NULL;
}


/*
 * The commands of the keys due in a round: round 1 records or reads
 * what the events name, round 2 writes linked ids and reads the
 * anonymousIds of events whose userId had no profile.
 */

ngx_int_t
ngx_http_consent_profile_commands(ngx_http_consent_profile_t *pf,
    ngx_uint_t round, ngx_str_t *cmds, ngx_uint_t *n)
{
    u_char                   *p, *last;
    size_t                    size, len;
    ngx_uint_t                i, pass, argc;
    const char               *argv[8];
    size_t                    lens[8];
    u_char                    num[3][NGX_INT64_LEN];
    ngx_http_consent_pkey_t  *k;

    p = NULL;
    last = NULL;
    size = 0;

    /* pass 0 sizes the commands, pass 1 writes them */
    for (pass = 0; pass < 2; pass++) {
        *n = 0;

        for (i = 0; i < pf->nkeys; i++) {
            k = &pf->keys[i];

            if (k->round != round) {
                continue;
            }

            argc = ngx_http_consent_profile_argv(pf, k, argv, lens, num);

            len = consent_resp_command((char *) p, last - p, argc, argv,
                                       lens);
            if (len == 0) {
                return NGX_ERROR;
            }

            if (pass == 0) {
                size += len;

            } else {
                p += len;
            }

            pf->sent_keys[(*n)++] = i;
        }

        if (pass == 0) {
            p = ngx_pnalloc(pf->request->pool, size);
            if (p == NULL) {
                return NGX_ERROR;
            }

            cmds->data = p;
            last = p + size;
        }
    }

    cmds->len = size;
    pf->nsent = *n;

    return NGX_OK;
}


static ngx_uint_t
ngx_http_consent_profile_argv(ngx_http_consent_profile_t *pf,
    ngx_http_consent_pkey_t *k, const char **argv, size_t *lens,
    u_char num[][NGX_INT64_LEN])
{
    ngx_str_t  *v;
    int64_t     t, o;

#define ARG(i, s, l)  argv[i] = (const char *) (s); lens[i] = (l)

    if (!k->write) {
        ARG(0, "HMGET", 5);
        ARG(1, k->key.data, k->key.len);
        ARG(2, "t", 1);
        ARG(3, "o", 1);
        ARG(4, "v", 1);
        return 5;
    }

    if (!k->relink) {
        v = &k->value;
        t = k->t;
        o = k->o;

    } else {
        v = &k->stored;
        t = k->st;
        o = k->so;
    }

    ARG(0, "EVALSHA", 7);
    ARG(1, pf->conf->store->sha, 40);
    ARG(2, "1", 1);
    ARG(3, k->key.data, k->key.len);
    ARG(4, v->data, v->len);
    ARG(5, num[0], ngx_sprintf(num[0], "%L", t) - num[0]);
    ARG(6, num[1], ngx_sprintf(num[1], "%L", o) - num[1]);
    ARG(7, num[2], ngx_sprintf(num[2], "%L", (int64_t) pf->conf->ttl * 1000)
                   - num[2]);

#undef ARG

    return 8;
}


/*
 * The replies of a round, in the order of its commands.  replies NULL:
 * the store failed, every key of the round with it.
 */

ngx_int_t
ngx_http_consent_profile_read(ngx_http_consent_profile_t *pf,
    u_char *replies, size_t len, ngx_uint_t n)
{
    size_t                    left;
    ssize_t                   rc, wrc;
    ngx_uint_t                i, record;
    const char               *p;
    consent_resp_t            r, w;
    ngx_http_consent_pkey_t  *k;

    for (i = 0; i < pf->nsent; i++) {
        k = &pf->keys[pf->sent_keys[i]];
        record = k->write;

        rc = -1;

        if (replies != NULL && i < n) {
            rc = consent_resp_parse((char *) replies, len, &r);
        }

        if (rc <= 0) {
            /* failed, or fewer replies than commands */
            replies = NULL;
            k->failed = (pf->round == 1);
            pf->records[NGX_HTTP_CONSENT_RECORD_ERROR] += record;
            continue;
        }

        replies += rc;
        len -= rc;

        if (r.type != CONSENT_RESP_ARRAY || r.nelts != 3 + record) {
            goto failed;
        }

        p = r.elts;
        left = r.elts_len;

        if (record) {
            wrc = consent_resp_parse(p, left, &w);

            if (wrc <= 0 || w.type != CONSENT_RESP_INTEGER) {
                goto failed;
            }

            pf->records[w.integer ? NGX_HTTP_CONSENT_RECORD_STORED
                                  : NGX_HTTP_CONSENT_RECORD_OLDER]++;
            p += wrc;
            left -= wrc;
        }

        if (ngx_http_consent_profile_stored(pf->request->pool, p, left, k)
            != NGX_OK)
        {
            goto failed;
        }

        continue;

    failed:

        ngx_log_error(NGX_LOG_ERR, pf->request->connection->log, 0,
                      "consent: profile store: unexpected reply for \"%V\": "
                      "\"%*s\"", &k->key, ngx_min((size_t) rc, 200),
                      replies - rc);
        k->failed = (pf->round == 1);
        pf->records[NGX_HTTP_CONSENT_RECORD_ERROR] += record;
    }

    return replies != NULL ? NGX_OK : NGX_ERROR;
}


/* the elements t, o, v of a reply (HMGET's, the script's tail) */

ngx_int_t
ngx_http_consent_profile_stored(ngx_pool_t *pool, const char *p, size_t len,
    ngx_http_consent_pkey_t *k)
{
    ssize_t         rc;
    ngx_uint_t      i;
    consent_resp_t  e[3];

    for (i = 0; i < 3; i++) {
        rc = consent_resp_parse(p, len, &e[i]);

        if (rc <= 0 || e[i].type != CONSENT_RESP_BULK) {
            return NGX_ERROR;
        }

        p += rc;
        len -= rc;
    }

    if (e[2].data == NULL) {
        k->found = 0;
        return NGX_OK;
    }

    k->st = e[0].data ? ngx_atoof((u_char *) e[0].data, e[0].len) : -1;
    k->so = e[1].data ? ngx_atoof((u_char *) e[1].data, e[1].len) : -1;

    if (k->st < 0 || k->so < 0) {
        return NGX_ERROR;
    }

    k->stored.data = ngx_pnalloc(pool, e[2].len);
    if (k->stored.data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(k->stored.data, e[2].data, e[2].len);
    k->stored.len = e[2].len;
    k->found = 1;

    return NGX_OK;
}


/*
 * After round 1: the anonymousIds to read in round 2, of the events
 * without consent whose userId has no profile.  Returns how many.
 */

ngx_uint_t
ngx_http_consent_profile_later(ngx_http_consent_profile_t *pf)
{
    uint32_t                  e;
    ngx_uint_t                n;
    consent_event_t          *ev;
    ngx_http_consent_pkey_t  *u, *a;

    n = 0;

    for (e = 0; e < pf->ctx->result.nevents; e++) {
        ev = &pf->ctx->result.events[e];

        if (ev->code != CONSENT_OK || ev->source != CONSENT_SRC_NONE) {
            continue;
        }

        u = ngx_http_consent_profile_key(pf, e, 0);
        a = ngx_http_consent_profile_key(pf, e, 1);

        if (u != NULL && !u->found && !u->failed && a != NULL
            && a->round == 0)
        {
            a->round = 2;
            n++;
        }
    }

    return n;
}
