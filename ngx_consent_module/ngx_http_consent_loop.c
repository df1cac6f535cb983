
/*
 * ngx_consent: destinations that lead back to an ingest location.  Such
 * a destination's subrequest would fan out again, and again, until nginx
 * runs out of request references (thousands of [crit] lines, a worker
 * at 100% CPU).  nginx -t resolves every destination uri in the server of
 * each ingest location the way nginx will, and refuses the loop; what it
 * cannot see (a rewrite, a proxy_pass back to this server) is stopped at
 * run time.
 */

#include "ngx_http_consent.h"


static ngx_http_core_loc_conf_t *ngx_http_consent_loop_find(
    ngx_http_core_loc_conf_t *pclcf, u_char *uri, size_t len,
    ngx_uint_t *final);
static ngx_http_core_loc_conf_t *ngx_http_consent_loop_static(
    ngx_http_location_tree_node_t *node, u_char *uri, size_t len,
    ngx_uint_t *inclusive);


/* consent_ingest in a location: remembered for the check */

ngx_int_t
ngx_http_consent_loop_add(ngx_conf_t *cf,
    ngx_http_consent_main_conf_t *cmcf, ngx_http_consent_loc_conf_t *lcf)
{
    ngx_http_consent_ingest_t  *in;

    if (cmcf->ingests.elts == NULL
        && ngx_array_init(&cmcf->ingests, cf->pool, 4,
                          sizeof(ngx_http_consent_ingest_t))
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    in = ngx_array_push(&cmcf->ingests);
    if (in == NULL) {
        return NGX_ERROR;
    }

    in->server = ngx_http_conf_get_module_srv_conf(cf, ngx_http_core_module);
    in->conf = lcf;
    in->file = cf->conf_file->file.name.data;
    in->line = cf->conf_file->line;

    return NGX_OK;
}


/* postconfiguration: the location trees are built by then */

ngx_int_t
ngx_http_consent_loop_check(ngx_conf_t *cf,
    ngx_http_consent_main_conf_t *cmcf)
{
    ngx_uint_t                     i, d, final;
    ngx_http_consent_ingest_t     *in;
    ngx_http_core_loc_conf_t      *root, *found;
    ngx_http_consent_loc_conf_t   *lcf;
    ngx_http_consent_dest_conf_t  *dest;

    in = cmcf->ingests.elts;

    for (i = 0; i < cmcf->ingests.nelts; i++) {

        if (in[i].conf->dests == NULL) {
            continue;
        }

        root = in[i].server->ctx->loc_conf[ngx_http_core_module.ctx_index];
        dest = in[i].conf->dests->elts;

        for (d = 0; d < in[i].conf->dests->nelts; d++) {
            found = ngx_http_consent_loop_find(root, dest[d].uri.data,
                                               dest[d].uri.len, &final);
            if (found == NULL) {
                continue;
            }

            lcf = found->loc_conf[ngx_http_consent_module.ctx_index];

            if (lcf->ingest != 1) {
                continue;
            }

            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "consent_destination \"%V\" (%s:%ui): its uri "
                          "\"%V\" leads to the consent_ingest location "
                          "\"%V\", so the gateway would deliver to itself "
                          "(used by consent_ingest in %s:%ui)",
                          &dest[d].name, dest[d].file, dest[d].line,
                          &dest[d].uri, &found->name, in[i].file,
                          in[i].line);
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/*
 * The location nginx picks for uri, as ngx_http_core_find_location does:
 * an exact match or a regex match is final (*final); a prefix match
 * looks into its nested locations, then yields to the regexes of its
 * level unless it is "^~".
 */

static ngx_http_core_loc_conf_t *
ngx_http_consent_loop_find(ngx_http_core_loc_conf_t *pclcf, u_char *uri,
    size_t len, ngx_uint_t *final)
{
    ngx_uint_t                  inclusive, noregex, nested_final;
    ngx_http_core_loc_conf_t   *clcf, *nested;
#if (NGX_PCRE)
    ngx_str_t                   s;
    ngx_http_core_loc_conf_t  **re;
#endif

    *final = 1;

    clcf = ngx_http_consent_loop_static(pclcf->static_locations, uri, len,
                                        &inclusive);

    if (clcf != NULL && !inclusive) {
        return clcf;
    }

    noregex = 0;

    if (clcf != NULL) {
        noregex = clcf->noregex;

        nested = ngx_http_consent_loop_find(clcf, uri, len, &nested_final);

        if (nested != NULL) {
            if (nested_final) {
                return nested;
            }

            clcf = nested;
        }
    }

#if (NGX_PCRE)
    if (!noregex && pclcf->regex_locations) {
        s.data = uri;
        s.len = len;

        for (re = pclcf->regex_locations; *re; re++) {
            if (ngx_regex_exec((*re)->regex->regex, &s, NULL, 0) >= 0) {
                nested = ngx_http_consent_loop_find(*re, uri, len,
                                                    &nested_final);
                return nested ? nested : *re;
            }
        }
    }
#endif

    *final = 0;

    return clcf;
}


/* the longest prefix or exact match; *inclusive: a prefix match */

static ngx_http_core_loc_conf_t *
ngx_http_consent_loop_static(ngx_http_location_tree_node_t *node, u_char *uri,
    size_t len, ngx_uint_t *inclusive)
{
    size_t                     n;
    ngx_int_t                  rc;
    ngx_http_core_loc_conf_t  *found;

    found = NULL;
    *inclusive = 0;

    while (node != NULL) {
        n = (len <= (size_t) node->len) ? len : node->len;
        rc = ngx_filename_cmp(uri, node->name, n);

        if (rc != 0) {
            node = (rc < 0) ? node->left : node->right;
            continue;
        }

        if (len > (size_t) node->len) {
            if (node->inclusive) {
                found = node->inclusive;
                *inclusive = 1;
                uri += n;
                len -= n;
                node = node->tree;
                continue;
            }

            node = node->right;
            continue;
        }

        if (len == (size_t) node->len) {
            if (node->exact) {
                *inclusive = 0;
                return node->exact;
            }

            *inclusive = 1;
            return node->inclusive;
        }

        node = node->left;
    }

    return found;
}


/* at run time: an ingest reached by one of its own deliveries */

ngx_uint_t
ngx_http_consent_loop(ngx_http_request_t *r)
{
    ngx_http_request_t  *pr;

    for (pr = r->parent; pr; pr = pr->parent) {
        if (ngx_http_get_module_ctx(pr, ngx_http_consent_module)) {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "consent: destination uri \"%V\" leads back to "
                          "a consent_ingest location, delivery refused",
                          &r->uri);
            return 1;
        }
    }

    return 0;
}
