
/*
 * ngx_consent: the consent_profiles directive.
 *
 *     consent_profiles ADDRESS [timeout=TIME] [ttl=TIME] [prefix=STRING];
 *     consent_profiles off;
 */

#include "ngx_http_consent_profile.h"


#define NGX_HTTP_CONSENT_PROFILE_PORT     6379
#define NGX_HTTP_CONSENT_PROFILE_TIMEOUT  100               /* ms */
#define NGX_HTTP_CONSENT_PROFILE_TTL      (395 * 86400)     /* 13 months */


static char *ngx_http_consent_profiles_param(ngx_conf_t *cf,
    ngx_http_consent_profiles_t *pr, ngx_str_t *v);


char *
ngx_http_consent_profiles(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_consent_loc_conf_t *clcf = conf;

    char                          *rv;
    u_char                        *p;
    ngx_str_t                     *value;
    ngx_url_t                      u;
    ngx_uint_t                     i, j;
    ngx_http_consent_profiles_t   *pr;
    ngx_http_consent_main_conf_t  *cmcf;

    if (clcf->profiles != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        if (cf->args->nelts != 2) {
            return "takes no parameters with \"off\"";
        }

        clcf->profiles = NULL;
        return NGX_CONF_OK;
    }

    pr = ngx_pcalloc(cf->pool, sizeof(ngx_http_consent_profiles_t));
    if (pr == NULL) {
        return NGX_CONF_ERROR;
    }

    pr->timeout = NGX_HTTP_CONSENT_PROFILE_TIMEOUT;
    pr->ttl = NGX_HTTP_CONSENT_PROFILE_TTL;
    ngx_str_set(&pr->prefix, "consent:");

    for (i = 2; i < cf->args->nelts; i++) {
        for (j = 2; j < i; j++) {
            p = ngx_strlchr(value[j].data, value[j].data + value[j].len, '=');

            if (p != NULL
                && ngx_strncmp(value[j].data, value[i].data,
                               p + 1 - value[j].data) == 0)
            {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "duplicate \"%*s\" in \"consent_profiles\"",
                                   p + 1 - value[j].data, value[j].data);
                return NGX_CONF_ERROR;
            }
        }

        rv = ngx_http_consent_profiles_param(cf, pr, &value[i]);
        if (rv != NGX_CONF_OK) {
            return rv;
        }
    }

    ngx_memzero(&u, sizeof(ngx_url_t));
    u.url = value[1];
    u.default_port = NGX_HTTP_CONSENT_PROFILE_PORT;

    if (ngx_parse_url(cf->pool, &u) != NGX_OK || u.naddrs == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid address \"%V\" in \"consent_profiles\""
                           "%s%s, expected host:port or unix:/path", &u.url,
                           u.err ? ": " : "", u.err ? u.err : "");
        return NGX_CONF_ERROR;
    }

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_consent_module);

    pr->store = ngx_http_consent_store_add(cf, &cmcf->stores, &u);
    if (pr->store == NULL) {
        return NGX_CONF_ERROR;
    }

    clcf->profiles = pr;

    return NGX_CONF_OK;
}


static char *
ngx_http_consent_profiles_param(ngx_conf_t *cf,
    ngx_http_consent_profiles_t *pr, ngx_str_t *v)
{
    ngx_str_t   s;
    ngx_int_t   n;
    ngx_uint_t  i;

    if (ngx_strncmp(v->data, "timeout=", 8) == 0) {
        s.data = v->data + 8;
        s.len = v->len - 8;
        n = ngx_parse_time(&s, 0);

        if (n == NGX_ERROR || n == 0) {
            goto invalid;
        }

        pr->timeout = (ngx_msec_t) n;
        return NGX_CONF_OK;
    }

    if (ngx_strncmp(v->data, "ttl=", 4) == 0) {
        s.data = v->data + 4;
        s.len = v->len - 4;
        n = ngx_parse_time(&s, 1);

        if (n == NGX_ERROR || n == 0) {
            goto invalid;
        }

        pr->ttl = (time_t) n;
        return NGX_CONF_OK;
    }

    if (ngx_strncmp(v->data, "prefix=", 7) == 0) {
        pr->prefix.data = v->data + 7;
        pr->prefix.len = v->len - 7;

        /* a brace would become the key's cluster hash tag */
        for (i = 0; i < pr->prefix.len; i++) {
            if (pr->prefix.data[i] == '{' || pr->prefix.data[i] == '}') {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid \"%V\" in \"consent_profiles\": "
                                   "a prefix must not hold \"{\" or \"}\"",
                                   v);
                return NGX_CONF_ERROR;
            }
        }

        return NGX_CONF_OK;
    }

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid parameter \"%V\" in \"consent_profiles\", "
                       "expected timeout=, ttl= or prefix=", v);
    return NGX_CONF_ERROR;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid \"%V\" in \"consent_profiles\": not a "
                       "positive time", v);
    return NGX_CONF_ERROR;
}


ngx_int_t
ngx_http_consent_profiles_merge(ngx_conf_t *cf,
    ngx_http_consent_loc_conf_t *prev, ngx_http_consent_loc_conf_t *conf)
{
    ngx_conf_merge_ptr_value(conf->profiles, prev->profiles, NULL);
    /* a location's own handler: not inherited */
    if (conf->profile_api == NGX_CONF_UNSET) {
        conf->profile_api = 0;
    }

    if (conf->profile_api && conf->profiles == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"consent_profile_api\" needs a store: "
                           "\"consent_profiles\" in its location or above");
        return NGX_ERROR;
    }

    return NGX_OK;
}


void
ngx_http_consent_profiles_exit(ngx_cycle_t *cycle)
{
    ngx_http_consent_main_conf_t  *cmcf;

    cmcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_consent_module);

    if (cmcf != NULL) {
        ngx_http_consent_store_exit(&cmcf->stores);
    }
}
