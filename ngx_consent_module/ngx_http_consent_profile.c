
/*
 * ngx_consent: consent profiles, the step between routing and delivery.
 *
 * Each accepted event that carries consent records its preferences for
 * its ids; each event that carries none is routed again on the stored
 * preferences of its userId, else its anonymousId.  One pipeline per
 * request (ngx_http_consent_store.c), a second only when an identify or
 * alias links two ids whose stored decisions differ.  The keys and the
 * commands are built in ngx_http_consent_profile_keys.c.
 */

#include "ngx_http_consent.h"
#include "ngx_http_consent_profile.h"


static ngx_int_t ngx_http_consent_profile_send(ngx_http_consent_profile_t *pf,
    ngx_uint_t round);
static void ngx_http_consent_profile_answer(void *data, ngx_int_t rc,
    u_char *replies, size_t len, ngx_uint_t n);
static ngx_uint_t ngx_http_consent_profile_link(ngx_http_consent_profile_t *pf);
static void ngx_http_consent_profile_apply(ngx_http_consent_profile_t *pf);
static void ngx_http_consent_profile_enforce(ngx_http_consent_profile_t *pf,
    uint32_t e, ngx_http_consent_pkey_t *k);
static void ngx_http_consent_profile_cleanup(void *data);


/*
 * NGX_OK: nothing to wait for, go on; NGX_AGAIN: done(r) is called once
 * the store answered or failed; NGX_ERROR.
 */

ngx_int_t
ngx_http_consent_profile(ngx_http_request_t *r, ngx_http_consent_ctx_t *ctx,
    ngx_http_consent_profile_done_pt done)
{
    size_t                        ntok;
    consent_json_tok_t           *tape;
    ngx_pool_cleanup_t           *cln;
    ngx_http_consent_profile_t   *pf;
    ngx_http_consent_loc_conf_t  *clcf;

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_consent_module);

    if (clcf->profiles == NULL || ctx->result.naccepted == 0) {
        return NGX_OK;
    }

    pf = ngx_pcalloc(r->pool, sizeof(ngx_http_consent_profile_t));
    if (pf == NULL) {
        return NGX_ERROR;
    }

    pf->request = r;
    pf->ctx = ctx;
    pf->conf = clcf->profiles;
    pf->policy = &clcf->policy;
    pf->done = done;

    if (ngx_http_consent_profile_keys(pf) != NGX_OK) {
        return NGX_ERROR;
    }

    if (pf->nkeys == 0) {
        return NGX_OK;
    }

    /* the token tape is the worker's scratch, lent to the next request
     * while this one waits: keep a copy */
    ntok = ctx->result.tok[0].next;
    tape = ngx_palloc(r->pool, ntok * sizeof(consent_json_tok_t));
    if (tape == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(tape, ctx->result.tok, ntok * sizeof(consent_json_tok_t));
    ctx->result.tok = tape;

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

    cln->handler = ngx_http_consent_profile_cleanup;
    cln->data = pf;

    if (ngx_http_consent_profile_send(pf, 1) != NGX_OK) {
        /* the store is unreachable: lookups fail closed at once */
        pf->done = NULL;
        ngx_http_consent_profile_answer(pf, NGX_ERROR, NULL, 0, 0);
        return NGX_OK;
    }

    return NGX_AGAIN;
}


static ngx_int_t
ngx_http_consent_profile_send(ngx_http_consent_profile_t *pf,
    ngx_uint_t round)
{
    ngx_str_t  cmds;
    ngx_uint_t n;

    if (ngx_http_consent_profile_commands(pf, round, &cmds, &n) != NGX_OK) {
        return NGX_ERROR;
    }

    pf->round = round;
    pf->sent = ngx_current_msec;
    pf->op = ngx_http_consent_store_send(pf->conf->store, cmds.data,
                                         cmds.len, n, pf->conf->timeout,
                                         ngx_http_consent_profile_answer, pf);

    return pf->op ? NGX_OK : NGX_ERROR;
}


static void
ngx_http_consent_profile_answer(void *data, ngx_int_t rc, u_char *replies,
    size_t len, ngx_uint_t n)
{
    ngx_http_consent_profile_t  *pf = data;

    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    r = pf->request;
    c = r->connection;
    pf->op = NULL;

    ngx_http_consent_status_profile_trip(r, ngx_current_msec - pf->sent);

    if (ngx_http_consent_profile_read(pf, rc == NGX_OK ? replies : NULL,
                                      len, n)
        != NGX_OK && pf->round == 1)
    {
        /* lookups fail closed; a failed link write only goes unstored */
        pf->failed = 1;
    }

    if (pf->round == 1 && !pf->failed
        && ngx_http_consent_profile_link(pf)
           + ngx_http_consent_profile_later(pf)
        && ngx_http_consent_profile_send(pf, 2) == NGX_OK)
    {
        return;
    }

    ngx_http_consent_profile_apply(pf);

    if (pf->done) {
        pf->done(r);
        ngx_http_run_posted_requests(c);
    }
}


/*
 * An identify or alias links its ids: the newest decision stored for
 * any of them goes to all of them, in memory now and in the store by
 * a second round trip.  Returns how many keys that writes.
 */

static ngx_uint_t
ngx_http_consent_profile_link(ngx_http_consent_profile_t *pf)
{
    ngx_uint_t                e, j, n;
    ngx_http_consent_pkey_t  *k, *best;

    n = 0;

    for (e = 0; e < pf->ctx->result.nevents; e++) {
        if (!pf->link[e]) {
            continue;
        }

        best = NULL;

        for (j = 0; j < NGX_HTTP_CONSENT_PROFILE_IDS; j++) {
            k = ngx_http_consent_profile_key(pf, e, j);

            if (k != NULL && k->found
                && (best == NULL || k->st > best->st
                    || (k->st == best->st && k->so > best->so)))
            {
                best = k;
            }
        }

        for (j = 0; best && j < NGX_HTTP_CONSENT_PROFILE_IDS; j++) {
            k = ngx_http_consent_profile_key(pf, e, j);

            if (k == NULL || k == best
                || (k->found && k->st == best->st && k->so == best->so))
            {
                continue;
            }

            k->found = 1;
            k->st = best->st;
            k->so = best->so;
            k->stored = best->stored;
            k->relink = 1;
            k->write = 1;
            k->round = 2;
            n++;
        }
    }

    return n;
}


/* routes the events that carry no consent on what the store holds */

static void
ngx_http_consent_profile_apply(ngx_http_consent_profile_t *pf)
{
    uint32_t                  e;
    consent_event_t          *ev;
    consent_result_t         *res;
    ngx_http_consent_pkey_t  *k;

    res = &pf->ctx->result;

    for (e = 0; e < res->nevents; e++) {
        ev = &res->events[e];

        if (ev->code != CONSENT_OK || ev->source != CONSENT_SRC_NONE) {
            continue;
        }

        /* its userId's profile, else its anonymousId's */
        k = ngx_http_consent_profile_key(pf, e, 0);

        if (k == NULL || (!k->found && !pf->failed)) {
            k = ngx_http_consent_profile_key(pf, e, 1);
        }

        ngx_http_consent_profile_enforce(pf, e, k);
    }

    ngx_http_consent_status_profile(pf->request, pf->lookups, pf->records);
}


static void
ngx_http_consent_profile_enforce(ngx_http_consent_profile_t *pf, uint32_t e,
    ngx_http_consent_pkey_t *k)
{
    uint64_t           mask[CONSENT_MASK_WORDS];
    consent_result_t  *res;

    res = &pf->ctx->result;

    if (pf->failed || (k != NULL && k->failed)) {
        goto closed;
    }

    if (k == NULL || !k->found) {
        /* no profile: consent_default, as routed already */
        pf->lookups[NGX_HTTP_CONSENT_LOOKUP_MISS]++;
        return;
    }

    /* once per key, however many events it routes */
    if (k->mask == NULL) {
        k->mask = ngx_palloc(pf->request->pool,
                             CONSENT_MASK_WORDS * sizeof(uint64_t));

        if (k->mask == NULL
            || consent_profile_mask(pf->policy, (char *) k->stored.data,
                                    k->stored.len, ngx_http_consent_palloc,
                                    pf->request->pool, k->mask, &k->prefs)
               != 0)
        {
            ngx_log_error(NGX_LOG_ERR, pf->request->connection->log, 0,
                          "consent: stored profile \"%V\" is not valid",
                          &k->key);
            k->mask = NULL;
            k->failed = 1;
            goto closed;
        }
    }

    consent_route(pf->policy, res, e, k->mask);

    /* destinations see what was enforced */
    res->rewrite[e] = k->prefs;
    pf->ctx->profiled++;
    pf->lookups[NGX_HTTP_CONSENT_LOOKUP_HIT]++;
    return;

closed:

    /* fail closed: as if categoryPreferences were {} */
    ngx_memzero(mask, sizeof(mask));
    consent_route(pf->policy, res, e, mask);
    pf->ctx->profile_failed++;
    pf->lookups[NGX_HTTP_CONSENT_LOOKUP_ERROR]++;
}


/* the request ends first (a client gone): its replies are dropped */

static void
ngx_http_consent_profile_cleanup(void *data)
{
    ngx_http_consent_profile_t  *pf = data;

    if (pf->op) {
        ngx_http_consent_store_cancel(pf->op);
        pf->op = NULL;
    }
}
