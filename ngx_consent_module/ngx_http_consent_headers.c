
/*
 * ngx_consent: the request headers a destination receives.  A consent
 * gateway must not hand the end user's cookies or credentials to third
 * parties, so destinations get an explicit set, not the client's
 * headers: Content-Type (the forwarded body is always JSON), the write
 * key's Authorization, User-Agent, and X-Forwarded-For / X-Real-IP built
 * from the connection.  consent_destination's pass_header= adds a client
 * header, drop_header= removes one of the set; hop-by-hop headers and
 * those the client named in Connection are never passed.
 */

#include "ngx_http_consent.h"


typedef struct {
    ngx_str_t                   name;
    ngx_str_t                   lowcase;
} ngx_http_consent_header_name_t;


/* the default set, by bit of ngx_http_consent_dest_conf_t.drop */
#define NGX_HTTP_CONSENT_H_AUTHORIZATION   0
#define NGX_HTTP_CONSENT_H_USER_AGENT      1
#define NGX_HTTP_CONSENT_H_CONTENT_TYPE    2
#define NGX_HTTP_CONSENT_H_FORWARDED_FOR   3
#define NGX_HTTP_CONSENT_H_REAL_IP         4
#define NGX_HTTP_CONSENT_H_N               5


#define ngx_http_consent_header_name(n, l)                                    \
    { ngx_string(n), ngx_string(l) }

static ngx_http_consent_header_name_t  ngx_http_consent_default_headers[] = {
    ngx_http_consent_header_name("Authorization", "authorization"),
    ngx_http_consent_header_name("User-Agent", "user-agent"),
    ngx_http_consent_header_name("Content-Type", "content-type"),
    ngx_http_consent_header_name("X-Forwarded-For", "x-forwarded-for"),
    ngx_http_consent_header_name("X-Real-IP", "x-real-ip")
};


/* hop-by-hop (RFC 9110 7.6.1) and framing: the module's or nginx's own */
static ngx_str_t  ngx_http_consent_never_passed[] = {
    ngx_string("connection"),
    ngx_string("keep-alive"),
    ngx_string("proxy-connection"),
    ngx_string("proxy-authenticate"),
    ngx_string("proxy-authorization"),
    ngx_string("te"),
    ngx_string("trailer"),
    ngx_string("transfer-encoding"),
    ngx_string("upgrade"),
    ngx_string("content-length"),
    ngx_string("content-encoding"),
    ngx_string("host"),
    ngx_string("expect"),
    ngx_null_string
};


static ngx_list_t *ngx_http_consent_headers_build(ngx_http_request_t *r,
    ngx_http_consent_dest_conf_t *dest);
static ngx_int_t ngx_http_consent_headers_copy(ngx_http_request_t *r,
    ngx_list_t *list, ngx_str_t *lowcase);
static ngx_int_t ngx_http_consent_headers_set(ngx_http_request_t *r,
    ngx_list_t *list, ngx_http_consent_header_name_t *name, ngx_str_t *value);
static ngx_int_t ngx_http_consent_headers_forwarded_for(ngx_http_request_t *r,
    ngx_list_t *list);
static ngx_uint_t ngx_http_consent_headers_in_connection(ngx_http_request_t *r,
    ngx_str_t *lowcase);


/* "pass_header=Name" or "drop_header=Name" of consent_destination */

char *
ngx_http_consent_headers_param(ngx_conf_t *cf,
    ngx_http_consent_dest_conf_t *dest, ngx_str_t *param)
{
    ngx_str_t   name, *s;
    ngx_uint_t  i, pass;

    if (ngx_strncmp(param->data, "pass_header=", 12) == 0) {
        pass = 1;

    } else if (ngx_strncmp(param->data, "drop_header=", 12) == 0) {
        pass = 0;

    } else {
        return NGX_CONF_OK;
    }

    name.len = param->len - 12;
    name.data = ngx_pnalloc(cf->pool, name.len);
    if (name.data == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_strlow(name.data, param->data + 12, name.len);

    for (i = 0; i < name.len; i++) {
        if (ngx_http_consent_token_char(name.data[i]) == 0) {
            break;
        }
    }

    if (name.len == 0 || i < name.len) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid header name in \"%V\"", param);
        return NGX_CONF_ERROR;
    }

    for (i = 0; i < NGX_HTTP_CONSENT_H_N; i++) {
        s = &ngx_http_consent_default_headers[i].lowcase;

        if (s->len == name.len && ngx_strncmp(s->data, name.data, s->len) == 0)
        {
            if (pass) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "\"%V\": destinations get it by default",
                                   param);
                return NGX_CONF_ERROR;
            }

            dest->drop |= 1 << i;
            return NGX_CONF_OK;
        }
    }

    if (!pass) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\": destinations do not get it unless "
                           "passed", param);
        return NGX_CONF_ERROR;
    }

    for (s = ngx_http_consent_never_passed; s->len; s++) {
        if (s->len == name.len && ngx_strncmp(s->data, name.data, s->len) == 0)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"%V\": a hop-by-hop or framing header "
                               "is never passed", param);
            return NGX_CONF_ERROR;
        }
    }

    if (dest->pass == NULL) {
        dest->pass = ngx_array_create(cf->pool, 2, sizeof(ngx_str_t));
        if (dest->pass == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    s = ngx_array_push(dest->pass);
    if (s == NULL) {
        return NGX_CONF_ERROR;
    }

    *s = name;

    return NGX_CONF_OK;
}


/*
 * the headers of a subrequest to dest, replacing the client's; the
 * destinations without pass_header= or drop_header= share one list
 * (the proxy module only reads it), built once per request
 */

ngx_list_t *
ngx_http_consent_headers(ngx_http_request_t *r, ngx_http_consent_ctx_t *ctx,
    ngx_http_consent_dest_conf_t *dest)
{
    if (dest->pass != NULL || dest->drop != 0) {
        return ngx_http_consent_headers_build(r, dest);
    }

    if (ctx->dest_headers == NULL) {
        ctx->dest_headers = ngx_http_consent_headers_build(r, dest);
    }

    return ctx->dest_headers;
}


static ngx_list_t *
ngx_http_consent_headers_build(ngx_http_request_t *r,
    ngx_http_consent_dest_conf_t *dest)
{
    ngx_str_t                        json, *pass;
    ngx_uint_t                       i;
    ngx_list_t                      *list;
    ngx_http_consent_header_name_t  *h;

    h = ngx_http_consent_default_headers;

    list = ngx_list_create(r->pool, 8, sizeof(ngx_table_elt_t));
    if (list == NULL) {
        return NULL;
    }

    for (i = NGX_HTTP_CONSENT_H_AUTHORIZATION;
         i <= NGX_HTTP_CONSENT_H_USER_AGENT;
         i++)
    {
        if (!(dest->drop & (1 << i))
            && ngx_http_consent_headers_copy(r, list, &h[i].lowcase)
               != NGX_OK)
        {
            return NULL;
        }
    }

    ngx_str_set(&json, "application/json");

    if (!(dest->drop & (1 << NGX_HTTP_CONSENT_H_CONTENT_TYPE))
        && ngx_http_consent_headers_set(r, list,
                                        &h[NGX_HTTP_CONSENT_H_CONTENT_TYPE],
                                        &json)
           != NGX_OK)
    {
        return NULL;
    }

    if (!(dest->drop & (1 << NGX_HTTP_CONSENT_H_FORWARDED_FOR))
        && ngx_http_consent_headers_forwarded_for(r, list) != NGX_OK)
    {
        return NULL;
    }

    if (!(dest->drop & (1 << NGX_HTTP_CONSENT_H_REAL_IP))
        && ngx_http_consent_headers_set(r, list,
                                        &h[NGX_HTTP_CONSENT_H_REAL_IP],
                                        &r->connection->addr_text)
           != NGX_OK)
    {
        return NULL;
    }

    if (dest->pass == NULL) {
        return list;
    }

    pass = dest->pass->elts;

    for (i = 0; i < dest->pass->nelts; i++) {
        if (!ngx_http_consent_headers_in_connection(r, &pass[i])
            && ngx_http_consent_headers_copy(r, list, &pass[i]) != NGX_OK)
        {
            return NULL;
        }
    }

    return list;
}


/* every client header called lowcase, as it came */

static ngx_int_t
ngx_http_consent_headers_copy(ngx_http_request_t *r, ngx_list_t *list,
    ngx_str_t *lowcase)
{
    ngx_table_elt_t                   *h, *copy;
    ngx_http_consent_header_cursor_t   cursor;

    cursor.part = NULL;

    while ((h = ngx_http_consent_header_next(r, (char *) lowcase->data,
                                             lowcase->len, &cursor)))
    {
        copy = ngx_list_push(list);
        if (copy == NULL) {
            return NGX_ERROR;
        }

        *copy = *h;
#if (nginx_version >= 1023000)
        copy->next = NULL;
#endif
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_consent_headers_set(ngx_http_request_t *r, ngx_list_t *list,
    ngx_http_consent_header_name_t *name, ngx_str_t *value)
{
    return ngx_http_consent_header_push(list, &name->name, &name->lowcase,
                                        value);
}


/*
 * One more header in list (request or response headers).  The proxy
 * module matches request header names by hash and lowcase_key; a
 * response header needs only a non-zero hash (lowcase NULL).
 */

ngx_int_t
ngx_http_consent_header_push(ngx_list_t *list, ngx_str_t *key,
    ngx_str_t *lowcase, ngx_str_t *value)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(list);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->key = *key;
    h->value = *value;

    if (lowcase != NULL) {
        h->lowcase_key = lowcase->data;
        h->hash = ngx_hash_key(lowcase->data, lowcase->len);

    } else {
        h->lowcase_key = NULL;
        h->hash = 1;
    }

#if (nginx_version >= 1023000)
    h->next = NULL;
#endif

    return NGX_OK;
}


/* the client's X-Forwarded-For values and its address, as a proxy adds */

static ngx_int_t
ngx_http_consent_headers_forwarded_for(ngx_http_request_t *r,
    ngx_list_t *list)
{
    u_char                            *p;
    size_t                             len;
    ngx_str_t                          value, *addr;
    ngx_table_elt_t                   *h;
    ngx_http_consent_header_cursor_t   cursor;

    addr = &r->connection->addr_text;
    len = addr->len;

    cursor.part = NULL;
    while ((h = ngx_http_consent_header_next(r, "x-forwarded-for", 15,
                                             &cursor)))
    {
        len += h->value.len + 2;
    }

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    value.data = p;

    cursor.part = NULL;
    while ((h = ngx_http_consent_header_next(r, "x-forwarded-for", 15,
                                             &cursor)))
    {
        p = ngx_cpymem(p, h->value.data, h->value.len);
        *p++ = ',';
        *p++ = ' ';
    }

    p = ngx_cpymem(p, addr->data, addr->len);
    value.len = p - value.data;

    return ngx_http_consent_headers_set(r, list,
               &ngx_http_consent_default_headers
                   [NGX_HTTP_CONSENT_H_FORWARDED_FOR],
               &value);
}


/* the client named lowcase in Connection: hop-by-hop, not passed */

static ngx_uint_t
ngx_http_consent_headers_in_connection(ngx_http_request_t *r,
    ngx_str_t *lowcase)
{
    u_char                            *p, *last, *start;
    ngx_table_elt_t                   *h;
    ngx_http_consent_header_cursor_t   cursor;

    cursor.part = NULL;

    while ((h = ngx_http_consent_header_next(r, "connection", 10, &cursor))) {
        p = h->value.data;
        last = p + h->value.len;

        while (p < last) {
            while (p < last && !ngx_http_consent_token_char(*p)) {
                p++;
            }

            start = p;

            while (p < last && ngx_http_consent_token_char(*p)) {
                p++;
            }

            if ((size_t) (p - start) == lowcase->len
                && ngx_strncasecmp(start, lowcase->data, lowcase->len) == 0)
            {
                return 1;
            }
        }
    }

    return 0;
}


/* RFC 9110 tchar */

ngx_uint_t
ngx_http_consent_token_char(u_char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
        || (c >= '0' && c <= '9'))
    {
        return 1;
    }

    return c != '\0' && ngx_strchr("!#$%&'*+-.^_`|~", c) != NULL;
}


/*
 * The next request header called name (any case) after *prev, or the
 * first one when *prev is NULL: repeated headers are walked in order.
 */
ngx_table_elt_t *
ngx_http_consent_header_next(ngx_http_request_t *r, const char *name,
    size_t len, ngx_http_consent_header_cursor_t *c)
{
    ngx_table_elt_t  *h;

    if (c->part == NULL) {
        c->part = &r->headers_in.headers.part;
        c->i = 0;
    }

    for ( ;; ) {

        if (c->i >= c->part->nelts) {
            if (c->part->next == NULL) {
                return NULL;
            }

            c->part = c->part->next;
            c->i = 0;
            continue;
        }

        h = (ngx_table_elt_t *) c->part->elts + c->i++;

        if (h->key.len == len
            && ngx_strncasecmp(h->key.data, (u_char *) name, len) == 0)
        {
            return h;
        }
    }
}
