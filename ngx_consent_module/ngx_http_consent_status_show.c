
/*
 * ngx_consent: consent_status, the zone's counters as Prometheus text or
 * JSON (counted in ngx_http_consent_status.c).
 */

#include "ngx_http_consent_status.h"


static u_char *ngx_http_consent_status_batch_text(u_char *p,
    ngx_http_consent_status_conf_t *scf);
static u_char *ngx_http_consent_status_batch_json(u_char *p,
    ngx_http_consent_status_conf_t *scf);


static const char  *ngx_http_consent_status_outcomes[] = {
    "delivered", "filtered_consent", "filtered_integrations", "failed"
};

static const char  *ngx_http_consent_status_trip_le[] = {
    "0.001", "0.002", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5",
    "1", "2.5", "+Inf"
};

static const char  *ngx_http_consent_status_lookups[] = {
    "hit", "miss", "error"
};

static const char  *ngx_http_consent_status_records[] = {
    "stored", "older_ignored", "error"
};

static const char  *ngx_http_consent_status_le[] = {
    "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5",
    "10", "+Inf"
};

static const char  *ngx_http_consent_status_batch_reasons[] = {
    "retries_exhausted", "backlog_full", "shutdown"
};


/* a Prometheus label value: backslash, quote and newline escaped */

static u_char *
ngx_http_consent_status_label(u_char *p, u_char *s, size_t len)
{
    while (len--) {
        if (*s == '\\' || *s == '"') {
            *p++ = '\\';
            *p++ = *s++;

        } else if (*s == '\n') {
            *p++ = '\\';
            *p++ = 'n';
            s++;

        } else {
            *p++ = *s++;
        }
    }

    return p;
}


#define ngx_http_consent_status_help(p, name, type, help)                    \
    ngx_cpymem(p, "# HELP " name " " help "\n# TYPE " name " " type "\n",    \
               sizeof("# HELP " name " " help "\n# TYPE " name " " type "\n") \
               - 1)


/* metric{result="..."} value, a line per result */

static u_char *
ngx_http_consent_status_results(u_char *p, const char *metric,
    const char **results, ngx_atomic_t *v, ngx_uint_t n)
{
    ngx_uint_t  i;

    for (i = 0; i < n; i++) {
        p = ngx_sprintf(p, "%s{result=\"%s\"} %uA\n", metric, results[i],
                        v[i]);
    }

    return p;
}


static u_char *
ngx_http_consent_status_profiles_text(u_char *p,
    ngx_http_consent_status_profiles_t *pr)
{
    ngx_uint_t         b;
    ngx_atomic_uint_t  cum;

    p = ngx_http_consent_status_help(p, "ngx_consent_profile_lookups_total",
            "counter", "Events without consent looked up in the profile "
                       "store, by result.");

    p = ngx_http_consent_status_results(p,
                                        "ngx_consent_profile_lookups_total",
                                        ngx_http_consent_status_lookups,
                                        pr->lookups, NGX_HTTP_CONSENT_LOOKUP_N);

    p = ngx_http_consent_status_help(p, "ngx_consent_profile_records_total",
            "counter", "Profile keys written with an event's consent, by "
                       "result.");

    p = ngx_http_consent_status_results(p,
                                        "ngx_consent_profile_records_total",
                                        ngx_http_consent_status_records,
                                        pr->records, NGX_HTTP_CONSENT_RECORD_N);

    p = ngx_http_consent_status_help(p,
            "ngx_consent_profile_store_seconds", "histogram",
            "Profile store round trips, answered or failed.");

    cum = 0;

    for (b = 0; b < NGX_HTTP_CONSENT_STATUS_NBUCKETS; b++) {
        cum += pr->bucket[b];
        p = ngx_sprintf(p, "ngx_consent_profile_store_seconds_bucket"
                           "{le=\"%s\"} %uA\n",
                        ngx_http_consent_status_trip_le[b], cum);
    }

    p = ngx_sprintf(p, "ngx_consent_profile_store_seconds_sum %uA.%03uA\n"
                       "ngx_consent_profile_store_seconds_count %uA\n",
                    pr->sum / 1000, pr->sum % 1000, cum);

    p = ngx_http_consent_status_help(p, "ngx_consent_profile_round_trips_total",
            "counter", "Profile store round trips.");

    return ngx_sprintf(p, "ngx_consent_profile_round_trips_total %uA\n", cum);
}


static u_char *
ngx_http_consent_status_profiles_json(u_char *p,
    ngx_http_consent_status_profiles_t *pr)
{
    ngx_uint_t         i;
    ngx_atomic_uint_t  trips;

    trips = 0;

    for (i = 0; i < NGX_HTTP_CONSENT_STATUS_NBUCKETS; i++) {
        trips += pr->bucket[i];
    }

    p = ngx_cpymem(p, ",\"profiles\":{\"lookups\":",
                   sizeof(",\"profiles\":{\"lookups\":") - 1);

    for (i = 0; i < NGX_HTTP_CONSENT_LOOKUP_N; i++) {
        p = ngx_sprintf(p, "%c\"%s\":%uA", i ? ',' : '{',
                        ngx_http_consent_status_lookups[i], pr->lookups[i]);
    }

    p = ngx_cpymem(p, "},\"records\":", sizeof("},\"records\":") - 1);

    for (i = 0; i < NGX_HTTP_CONSENT_RECORD_N; i++) {
        p = ngx_sprintf(p, "%c\"%s\":%uA", i ? ',' : '{',
                        ngx_http_consent_status_records[i], pr->records[i]);
    }

    return ngx_sprintf(p, "},\"round_trips\":%uA,\"store_ms_sum\":%uA}",
                       trips, pr->sum);
}


static u_char *
ngx_http_consent_status_text(u_char *p, ngx_http_consent_status_conf_t *scf,
    ngx_atomic_uint_t *req, ngx_uint_t ncodes)
{
    ngx_uint_t                       i, b, k;
    ngx_atomic_uint_t                cum;
    ngx_http_consent_status_shm_t   *sh;
    ngx_http_consent_status_slot_t  *slot;
    ngx_http_consent_status_name_t  *n;

    sh = scf->sh;
    n = scf->names.elts;

    p = ngx_http_consent_status_help(p, "ngx_consent_requests_total",
            "counter", "Requests to consent_ingest locations by reply status.");

    for (i = 0; i < NGX_HTTP_CONSENT_STATUS_NSTATUS; i++) {
        if (req[i]) {
            p = ngx_sprintf(p, "ngx_consent_requests_total{status=\"%03ui\"} "
                               "%uA\n", i, req[i]);
        }
    }

    p = ngx_http_consent_status_help(p, "ngx_consent_events_total",
            "counter", "Events per destination by outcome.");

    for (i = 0; i < scf->names.nelts; i++) {
        for (k = 0; k < NGX_HTTP_CONSENT_OUT_N; k++) {
            p = ngx_cpymem(p, "ngx_consent_events_total{destination=\"",
                           sizeof("ngx_consent_events_total{destination=\"")
                           - 1);
            p = ngx_http_consent_status_label(p, n[i].name.data,
                                              n[i].name.len);
            p = ngx_sprintf(p, "\",outcome=\"%s\"} %uA\n",
                            ngx_http_consent_status_outcomes[k],
                            n[i].slot->events[k]);
        }
    }

    p = ngx_http_consent_status_help(p, "ngx_consent_rejected_total",
            "counter", "Rejected events and refused requests by code.");

    for (i = 0; i < ncodes; i++) {
        p = ngx_cpymem(p, "ngx_consent_rejected_total{code=\"",
                       sizeof("ngx_consent_rejected_total{code=\"") - 1);
        p = ngx_http_consent_status_label(p, sh->codes[i].name,
                                          sh->codes[i].len);
        p = ngx_sprintf(p, "\"} %uA\n", sh->codes[i].count);
    }

    p = ngx_http_consent_status_help(p, "ngx_consent_lua_errors_total",
            "counter", "Lua hook calls that failed; their events failed "
                       "closed.");
    p = ngx_sprintf(p, "ngx_consent_lua_errors_total %uA\n", sh->lua_errors);

    p = ngx_http_consent_status_help(p, "ngx_consent_telemetry_total",
            "counter", "Client telemetry posts (/v1/m), answered and "
                       "forwarded nowhere.");
    p = ngx_sprintf(p, "ngx_consent_telemetry_total %uA\n", sh->telemetry);

    p = ngx_http_consent_status_help(p,
            "ngx_consent_destination_latency_seconds", "histogram",
            "Destination subrequest time, from creation to completion.");

    for (i = 0; i < scf->names.nelts; i++) {
        slot = n[i].slot;
        cum = 0;

        for (b = 0; b < NGX_HTTP_CONSENT_STATUS_NBUCKETS; b++) {
            cum += slot->bucket[b];

            p = ngx_cpymem(p, "ngx_consent_destination_latency_seconds_bucket"
                              "{destination=\"",
                           sizeof("ngx_consent_destination_latency_seconds_"
                                  "bucket{destination=\"") - 1);
            p = ngx_http_consent_status_label(p, n[i].name.data,
                                              n[i].name.len);
            p = ngx_sprintf(p, "\",le=\"%s\"} %uA\n",
                            ngx_http_consent_status_le[b], cum);
        }

        p = ngx_cpymem(p, "ngx_consent_destination_latency_seconds_sum"
                          "{destination=\"",
                       sizeof("ngx_consent_destination_latency_seconds_sum"
                              "{destination=\"") - 1);
        p = ngx_http_consent_status_label(p, n[i].name.data, n[i].name.len);
        p = ngx_sprintf(p, "\"} %uA.%03uA\n", slot->sum / 1000,
                        slot->sum % 1000);

        p = ngx_cpymem(p, "ngx_consent_destination_latency_seconds_count"
                          "{destination=\"",
                       sizeof("ngx_consent_destination_latency_seconds_count"
                              "{destination=\"") - 1);
        p = ngx_http_consent_status_label(p, n[i].name.data, n[i].name.len);

        /* the +Inf bucket, so that the two always agree */
        p = ngx_sprintf(p, "\"} %uA\n", cum);
    }

    return ngx_http_consent_status_batch_text(p, scf);
}


static u_char *
ngx_http_consent_status_json(u_char *p, ngx_http_consent_status_conf_t *scf,
    ngx_atomic_uint_t *req, ngx_uint_t ncodes,
    ngx_http_consent_status_profiles_t *profiles)
{
    ngx_uint_t                       i, b, k;
    ngx_atomic_uint_t                cum;
    ngx_http_consent_status_shm_t   *sh;
    ngx_http_consent_status_slot_t  *slot;
    ngx_http_consent_status_name_t  *n;

    sh = scf->sh;
    n = scf->names.elts;

    p = ngx_cpymem(p, "{\"requests_total\":{", 19);

    for (i = 0; i < NGX_HTTP_CONSENT_STATUS_NSTATUS; i++) {
        if (req[i]) {
            p = ngx_sprintf(p, "%s\"%03ui\":%uA", p[-1] == '{' ? "" : ",",
                            i, req[i]);
        }
    }

    p = ngx_cpymem(p, "},\"events_total\":{", 18);

    for (i = 0; i < scf->names.nelts; i++) {
        if (i) {
            *p++ = ',';
        }

        p = ngx_http_consent_json_str(p, n[i].name.data,
                                             n[i].name.len);
        *p++ = ':';

        for (k = 0; k < NGX_HTTP_CONSENT_OUT_N; k++) {
            p = ngx_sprintf(p, "%c\"%s\":%uA", k ? ',' : '{',
                            ngx_http_consent_status_outcomes[k],
                            n[i].slot->events[k]);
        }

        *p++ = '}';
    }

    p = ngx_cpymem(p, "},\"rejected_total\":{", 20);

    for (i = 0; i < ncodes; i++) {
        if (i) {
            *p++ = ',';
        }

        p = ngx_http_consent_json_str(p, sh->codes[i].name,
                                             sh->codes[i].len);
        p = ngx_sprintf(p, ":%uA", sh->codes[i].count);
    }

    p = ngx_sprintf(p, "},\"lua_errors_total\":%uA,\"telemetry_total\":%uA,"
                       "\"destination_latency_seconds\":{",
                    sh->lua_errors, sh->telemetry);

    for (i = 0; i < scf->names.nelts; i++) {
        slot = n[i].slot;
        cum = 0;

        if (i) {
            *p++ = ',';
        }

        p = ngx_http_consent_json_str(p, n[i].name.data,
                                             n[i].name.len);
        p = ngx_cpymem(p, ":{\"buckets\":{", 13);

        for (b = 0; b < NGX_HTTP_CONSENT_STATUS_NBUCKETS; b++) {
            cum += slot->bucket[b];
            p = ngx_sprintf(p, "%s\"%s\":%uA", b ? "," : "",
                            ngx_http_consent_status_le[b], cum);
        }

        p = ngx_sprintf(p, "},\"sum\":%uA.%03uA,\"count\":%uA}",
                        slot->sum / 1000, slot->sum % 1000, cum);
    }

    *p++ = '}';
    p = ngx_http_consent_status_batch_json(p, scf);

    if (profiles) {
        p = ngx_http_consent_status_profiles_json(p, profiles);
    }

    return ngx_cpymem(p, "}\n", 2);
}


ngx_int_t
ngx_http_consent_status_handler(ngx_http_request_t *r)
{
    u_char                          *buf, *p;
    size_t                           size;
    ngx_int_t                        rc;
    ngx_str_t                        format;
    ngx_buf_t                       *b;
    ngx_uint_t                       i, json, nreq, ncodes;
    ngx_chain_t                      out;
    ngx_atomic_uint_t               *req;
    ngx_http_consent_status_conf_t  *scf;
    ngx_http_consent_status_name_t  *n;
    ngx_http_consent_main_conf_t    *cmcf;
    ngx_http_consent_status_profiles_t  *profiles;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    json = 0;

    if (ngx_http_arg(r, (u_char *) "format", 6, &format) == NGX_OK) {
        if (format.len == 4 && ngx_strncmp(format.data, "json", 4) == 0) {
            json = 1;

        } else if (!(format.len == 10
                     && ngx_strncmp(format.data, "prometheus", 10) == 0))
        {
            return NGX_HTTP_BAD_REQUEST;
        }
    }

    cmcf = ngx_http_get_module_main_conf(r, ngx_http_consent_module);
    scf = cmcf->counters;

    if (scf == NULL || scf->sh == NULL) {
        return NGX_HTTP_SERVICE_UNAVAILABLE;
    }

    /* a snapshot of the statuses: how many lines they take is fixed */
    req = ngx_palloc(r->pool, NGX_HTTP_CONSENT_STATUS_NSTATUS
                              * sizeof(ngx_atomic_uint_t));
    if (req == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    nreq = 0;
    for (i = 0; i < NGX_HTTP_CONSENT_STATUS_NSTATUS; i++) {
        req[i] = scf->sh->requests[i];
        nreq += req[i] ? 1 : 0;
    }

    ncodes = scf->sh->ncodes;
    ngx_memory_barrier();

    /* 6144: the fixed lines, the profiles' and batch's included */
    size = 6144 + (nreq + ncodes) * (NGX_HTTP_CONSENT_STATUS_LINE
                                     + NGX_HTTP_CONSENT_STATUS_CODE_LEN * 6);

    n = scf->names.elts;
    for (i = 0; i < scf->names.nelts; i++) {
        size += (NGX_HTTP_CONSENT_OUT_N + NGX_HTTP_CONSENT_STATUS_NBUCKETS
                 + 2 + NGX_HTTP_CONSENT_BATCH_N)
                * (NGX_HTTP_CONSENT_STATUS_LINE + n[i].name.len * 6);
    }

    buf = ngx_pnalloc(r->pool, size);
    if (buf == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* profile metrics only where some location uses a store */
    profiles = cmcf->stores.nelts ? &scf->sh->profiles : NULL;

    if (json) {
        p = ngx_http_consent_status_json(buf, scf, req, ncodes, profiles);
        ngx_str_set(&r->headers_out.content_type, "application/json");

    } else {
        p = ngx_http_consent_status_text(buf, scf, req, ncodes);

        if (profiles) {
            p = ngx_http_consent_status_profiles_text(p, profiles);
        }

        ngx_str_set(&r->headers_out.content_type,
                    "text/plain; version=0.0.4");
    }

    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;
    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = p - buf;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->pos = buf;
    b->last = p;
    b->memory = 1;
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


/* name{destination="d"[,reason="r"]} value */

static u_char *
ngx_http_consent_status_batch_line(u_char *p, const char *name,
    ngx_str_t *dest, const char *reason, ngx_atomic_uint_t v)
{
    p = ngx_sprintf(p, "%s{destination=\"", name);
    p = ngx_http_consent_status_label(p, dest->data, dest->len);

    if (reason) {
        p = ngx_sprintf(p, "\",reason=\"%s", reason);
    }

    /* a gauge is a sum of the workers' deltas, read as signed */
    return ngx_sprintf(p, "\"} %A\n", (ngx_atomic_int_t) v);
}


static u_char *
ngx_http_consent_status_batch_text(u_char *p,
    ngx_http_consent_status_conf_t *scf)
{
    ngx_uint_t                       i, k, f;
    ngx_http_consent_status_slot_t  *slot;
    ngx_http_consent_status_name_t  *n;

    static const char  *names[] = {
        "ngx_consent_batch_queue_events", "ngx_consent_batch_queue_bytes",
        "ngx_consent_batches_total", "ngx_consent_batch_retries_total"
    };

    if (!scf->batch) {
        return p;
    }

    n = scf->names.elts;

    for (f = 0; f < 5; f++) {
        switch (f) {
        case 0:
            p = ngx_http_consent_status_help(p,
                    "ngx_consent_batch_queue_events", "gauge",
                    "Events queued for batched delivery, all workers.");
            break;
        case 1:
            p = ngx_http_consent_status_help(p,
                    "ngx_consent_batch_queue_bytes", "gauge",
                    "Memory of the queued events, all workers.");
            break;
        case 2:
            p = ngx_http_consent_status_help(p, "ngx_consent_batches_total",
                    "counter", "Batches a destination answered with 2xx.");
            break;
        case 3:
            p = ngx_http_consent_status_help(p,
                    "ngx_consent_batch_retries_total", "counter",
                    "Failed batches scheduled to be sent again.");
            break;
        default:
            p = ngx_http_consent_status_help(p,
                    "ngx_consent_batch_dropped_total", "counter",
                    "Queued events dropped, by reason (also failed).");
        }

        for (i = 0; i < scf->names.nelts; i++) {
            slot = n[i].slot;

            if (f < 4) {
                p = ngx_http_consent_status_batch_line(p, names[f],
                                          &n[i].name, NULL, slot->batch[f]);
                continue;
            }

            for (k = 0; k < 3; k++) {
                p = ngx_http_consent_status_batch_line(p,
                        "ngx_consent_batch_dropped_total", &n[i].name,
                        ngx_http_consent_status_batch_reasons[k],
                        slot->batch[NGX_HTTP_CONSENT_BATCH_DROP_RETRIES + k]);
            }
        }
    }

    return p;
}


static u_char *
ngx_http_consent_status_batch_json(u_char *p,
    ngx_http_consent_status_conf_t *scf)
{
    ngx_uint_t                       i, k;
    ngx_http_consent_status_slot_t  *slot;
    ngx_http_consent_status_name_t  *n;

    if (!scf->batch) {
        return p;
    }

    n = scf->names.elts;
    p = ngx_cpymem(p, ",\"batch\":{", 10);

    for (i = 0; i < scf->names.nelts; i++) {
        slot = n[i].slot;

        if (i) {
            *p++ = ',';
        }

        p = ngx_http_consent_json_str(p, n[i].name.data, n[i].name.len);
        p = ngx_sprintf(p, ":{\"queue_events\":%A,\"queue_bytes\":%A,"
                           "\"batches\":%uA,\"retries\":%uA,\"dropped\":{",
                        (ngx_atomic_int_t) slot->batch[0],
                        (ngx_atomic_int_t) slot->batch[1],
                        slot->batch[2], slot->batch[3]);

        for (k = 0; k < 3; k++) {
            p = ngx_sprintf(p, "%s\"%s\":%uA", k ? "," : "",
                            ngx_http_consent_status_batch_reasons[k],
                            slot->batch[NGX_HTTP_CONSENT_BATCH_DROP_RETRIES
                                        + k]);
        }

        p = ngx_cpymem(p, "}}", 2);
    }

    *p++ = '}';

    return p;
}
