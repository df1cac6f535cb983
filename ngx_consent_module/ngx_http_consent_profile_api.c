
/*
 * ngx_consent: consent_profile_api, a location that reads (GET) or
 * erases (DELETE) the stored profiles of one id, the last component of
 * the URI: its userId key and its anonymousId key, both.  For an
 * internal or protected location (README: the profile API).
 */

#include "ngx_http_consent_profile.h"


typedef struct {
    ngx_http_request_t           *request;
    ngx_str_t                     id;
    ngx_http_consent_pkey_t       keys[2];      /* {u:ID}, {a:ID} */
    ngx_http_consent_store_op_t  *op;
} ngx_http_consent_api_t;


static ngx_int_t ngx_http_consent_api_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_consent_api_send(ngx_http_consent_api_t *api,
    ngx_http_consent_profiles_t *pr);
static void ngx_http_consent_api_answer(void *data, ngx_int_t rc,
    u_char *replies, size_t len, ngx_uint_t n);
static ngx_int_t ngx_http_consent_api_get(ngx_http_consent_api_t *api,
    u_char *replies, size_t len);
static ngx_int_t ngx_http_consent_api_delete(ngx_http_consent_api_t *api,
    u_char *replies, size_t len);
static u_char *ngx_http_consent_api_profile(ngx_http_request_t *r, u_char *p,
    ngx_http_consent_pkey_t *k);
static ngx_int_t ngx_http_consent_api_error(ngx_http_request_t *r,
    ngx_uint_t status, const char *code, const char *message);
static ngx_int_t ngx_http_consent_api_bad_reply(ngx_http_request_t *r);
static void ngx_http_consent_api_cleanup(void *data);


char *
ngx_http_consent_profile_api(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_consent_loc_conf_t *clcf = conf;

    ngx_http_core_loc_conf_t  *core;

    if (clcf->profile_api != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    clcf->profile_api = 1;

    core = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    core->handler = ngx_http_consent_api_handler;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_consent_api_handler(ngx_http_request_t *r)
{
    u_char                       *p, *last;
    ngx_int_t                     rc;
    ngx_uint_t                    i;
    ngx_pool_cleanup_t           *cln;
    ngx_http_consent_api_t       *api;
    ngx_http_consent_loc_conf_t  *clcf;

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    if (r->method != NGX_HTTP_GET && r->method != NGX_HTTP_DELETE) {
        return ngx_http_consent_api_error(r, NGX_HTTP_NOT_ALLOWED,
                                          "method_not_allowed",
                                          "only GET and DELETE are accepted");
    }

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_consent_module);

    api = ngx_pcalloc(r->pool, sizeof(ngx_http_consent_api_t));
    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (api == NULL || cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* the id: the URI's last component, percent-decoded by nginx */
    last = r->uri.data + r->uri.len;
    for (p = last; p > r->uri.data && p[-1] != '/'; p--) { /* void */ }

    if (p == last) {
        return ngx_http_consent_api_error(r, NGX_HTTP_NOT_FOUND,
                                          "profile_not_found",
                                          "no id in the URI");
    }

    api->request = r;
    api->id.data = p;
    api->id.len = last - p;

    for (i = 0; i < 2; i++) {
        api->keys[i].key.len = consent_profile_key(NULL, 0,
                                   (char *) clcf->profiles->prefix.data,
                                   clcf->profiles->prefix.len, "ua"[i],
                                   (char *) p, api->id.len);
        api->keys[i].key.data = ngx_pnalloc(r->pool, api->keys[i].key.len);
        if (api->keys[i].key.data == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        (void) consent_profile_key((char *) api->keys[i].key.data,
                                   api->keys[i].key.len,
                                   (char *) clcf->profiles->prefix.data,
                                   clcf->profiles->prefix.len, "ua"[i],
                                   (char *) p, api->id.len);
    }

    cln->handler = ngx_http_consent_api_cleanup;
    cln->data = api;

    if (ngx_http_consent_api_send(api, clcf->profiles) != NGX_OK) {
        return ngx_http_consent_api_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                          "store_unavailable",
                                          "the profile store is unavailable");
    }

    r->main->count++;

    return NGX_DONE;
}


/* GET: HMGET t o v of both keys; DELETE: DEL of each, one key a command */

static ngx_int_t
ngx_http_consent_api_send(ngx_http_consent_api_t *api,
    ngx_http_consent_profiles_t *pr)
{
    u_char      *p, *last;
    size_t       size, len;
    ngx_uint_t   i, pass, argc;
    const char  *argv[5];
    size_t       lens[5];

    argv[0] = (api->request->method == NGX_HTTP_GET) ? "HMGET" : "DEL";
    lens[0] = ngx_strlen(argv[0]);
    argv[2] = "t";
    argv[3] = "o";
    argv[4] = "v";
    lens[2] = 1;
    lens[3] = 1;
    lens[4] = 1;
    argc = (api->request->method == NGX_HTTP_GET) ? 5 : 2;

    p = NULL;
    last = NULL;
    size = 0;

    /* pass 0 sizes the commands, pass 1 writes them */
    for (pass = 0; pass < 2; pass++) {
        for (i = 0; i < 2; i++) {
            argv[1] = (char *) api->keys[i].key.data;
            lens[1] = api->keys[i].key.len;

            len = consent_resp_command((char *) p, last - p, argc, argv,
                                       lens);
            if (pass == 0) {
                size += len;

            } else {
                p += len;
            }
        }

        if (pass == 0) {
            p = ngx_pnalloc(api->request->pool, size);
            if (p == NULL) {
                return NGX_ERROR;
            }

            last = p + size;
        }
    }

    api->op = ngx_http_consent_store_send(pr->store, last - size, size, 2,
                                          pr->timeout,
                                          ngx_http_consent_api_answer, api);

    return api->op ? NGX_OK : NGX_ERROR;
}


static void
ngx_http_consent_api_answer(void *data, ngx_int_t rc, u_char *replies,
    size_t len, ngx_uint_t n)
{
    ngx_http_consent_api_t  *api = data;

    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    r = api->request;
    c = r->connection;
    api->op = NULL;

    if (rc != NGX_OK || n != 2) {
        rc = ngx_http_consent_api_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                        "store_unavailable",
                                        "the profile store is unavailable");

    } else if (r->method == NGX_HTTP_GET) {
        rc = ngx_http_consent_api_get(api, replies, len);

    } else {
        rc = ngx_http_consent_api_delete(api, replies, len);
    }

    ngx_http_finalize_request(r, rc);
    ngx_http_run_posted_requests(c);
}


static ngx_int_t
ngx_http_consent_api_get(ngx_http_consent_api_t *api, u_char *replies,
    size_t len)
{
    u_char              *buf, *p;
    size_t               size;
    ssize_t              rc;
    ngx_uint_t           i;
    consent_resp_t       reply;
    ngx_http_request_t  *r;

    r = api->request;
    size = sizeof("{\"id\":,\"userId\":,\"anonymousId\":}")
           + api->id.len * 6;

    for (i = 0; i < 2; i++) {
        rc = consent_resp_parse((char *) replies, len, &reply);

        if (rc <= 0 || reply.type != CONSENT_RESP_ARRAY || reply.nelts != 3
            || ngx_http_consent_profile_stored(r->pool, reply.elts,
                                               reply.elts_len, &api->keys[i])
               != NGX_OK)
        {
            return ngx_http_consent_api_bad_reply(r);
        }

        replies += rc;
        len -= rc;
        size += api->keys[i].stored.len + 128;
    }

    if (!api->keys[0].found && !api->keys[1].found) {
        return ngx_http_consent_api_error(r, NGX_HTTP_NOT_FOUND,
                                          "profile_not_found",
                                          "no profile stored for this id");
    }

    buf = ngx_pnalloc(r->pool, size);
    if (buf == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_cpymem(buf, "{\"id\":", 6);
    p = ngx_http_consent_json_str(p, api->id.data, api->id.len);
    p = ngx_cpymem(p, ",\"userId\":", 10);
    p = ngx_http_consent_api_profile(r, p, &api->keys[0]);
    p = ngx_cpymem(p, ",\"anonymousId\":", 15);
    p = ngx_http_consent_api_profile(r, p, &api->keys[1]);
    *p++ = '}';

    return ngx_http_consent_send(r, NGX_HTTP_OK, buf, p - buf);
}


/*
 * {"preferences":{...},"decided_at":"...Z","t":ms,"event":"..."}, or
 * null; p has room for the stored value and 128 bytes
 */

static u_char *
ngx_http_consent_api_profile(ngx_http_request_t *r, u_char *p,
    ngx_http_consent_pkey_t *k)
{
    int64_t            sec;
    ngx_tm_t           tm;
    consent_profile_t  pr;

    if (!k->found
        || consent_profile_decode((char *) k->stored.data, k->stored.len,
                                  ngx_http_consent_palloc, r->pool, &pr)
           != 0)
    {
        return ngx_cpymem(p, "null", 4);
    }

    sec = pr.t >= 0 ? pr.t / 1000 : (pr.t - 999) / 1000;
    ngx_gmtime((time_t) sec, &tm);

    p = ngx_cpymem(p, "{\"preferences\":", 15);
    p = ngx_cpymem(p, pr.prefs.data, pr.prefs.len);
    p = ngx_sprintf(p, ",\"decided_at\":\"%4d-%02d-%02dT%02d:%02d:%02d.%03LZ\","
                       "\"t\":%L,\"event\":\"",
                    tm.ngx_tm_year, tm.ngx_tm_mon, tm.ngx_tm_mday,
                    tm.ngx_tm_hour, tm.ngx_tm_min, tm.ngx_tm_sec,
                    pr.t - sec * 1000, pr.t);
    p = ngx_cpymem(p, pr.source.data, pr.source.len);

    return ngx_cpymem(p, "\"}", 2);
}


static ngx_int_t
ngx_http_consent_api_delete(ngx_http_consent_api_t *api, u_char *replies,
    size_t len)
{
    u_char              *buf;
    ssize_t              rc;
    ngx_uint_t           i;
    int64_t              deleted;
    consent_resp_t       reply;
    ngx_http_request_t  *r;

    r = api->request;
    deleted = 0;

    for (i = 0; i < 2; i++) {
        rc = consent_resp_parse((char *) replies, len, &reply);

        if (rc <= 0 || reply.type != CONSENT_RESP_INTEGER) {
            return ngx_http_consent_api_bad_reply(r);
        }

        replies += rc;
        len -= rc;
        deleted += reply.integer;
    }

    if (deleted == 0) {
        return ngx_http_consent_api_error(r, NGX_HTTP_NOT_FOUND,
                                          "profile_not_found",
                                          "no profile stored for this id");
    }

    ngx_log_error(NGX_LOG_NOTICE, r->connection->log, 0,
                  "consent: profile of \"%V\" erased", &api->id);

    buf = ngx_pnalloc(r->pool, sizeof("{\"success\":true,\"deleted\":}")
                               + NGX_INT64_LEN);
    if (buf == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_consent_send(r, NGX_HTTP_OK, buf,
                                 ngx_sprintf(buf, "{\"success\":true,"
                                             "\"deleted\":%L}", deleted)
                                 - buf);
}


static ngx_int_t
ngx_http_consent_api_error(ngx_http_request_t *r, ngx_uint_t status,
    const char *code, const char *message)
{
    ngx_str_t  msg;

    msg.data = (u_char *) message;
    msg.len = ngx_strlen(message);

    return ngx_http_consent_error(r, status, code, &msg);
}


static ngx_int_t
ngx_http_consent_api_bad_reply(ngx_http_request_t *r)
{
    return ngx_http_consent_api_error(r, NGX_HTTP_BAD_GATEWAY, "store_error",
                                      "unexpected profile store reply");
}


static void
ngx_http_consent_api_cleanup(void *data)
{
    ngx_http_consent_api_t  *api = data;

    if (api->op) {
        ngx_http_consent_store_cancel(api->op);
        api->op = NULL;
    }
}
