
/*
 * Batch splitting: the forwarded body of one destination as a list of
 * slices, most of them pointing into the request body.
 */

#include <string.h>

#include "consent_core.h"


#define LIT(s)  (const unsigned char *) s, sizeof(s) - 1

/* what the last slice is a run of: none, body events, whole events */
#define RUN_NONE   0
#define RUN_BODY   1
#define RUN_WHOLE  2


/* "{"type":"<t>"," for events posted to a single-event endpoint */
static const char  *type_insert[] = {
    NULL,
    "{\"type\":\"track\",",
    "{\"type\":\"identify\",",
    "{\"type\":\"page\",",
    "{\"type\":\"screen\",",
    "{\"type\":\"group\",",
    "{\"type\":\"alias\","
};


static size_t
put(consent_slice_t *out, size_t n, const unsigned char *p, size_t len)
{
    /* empty buffers upset nginx's output chain */
    if (len == 0) {
        return n;
    }

    out[n].data = p;
    out[n].len = len;
    return n + 1;
}


size_t
consent_delivered(const consent_result_t *res, size_t d)
{
    size_t  e, n;

    for (n = 0, e = 0; e < res->nevents; e++) {
        n += (res->outcome[e * res->ndests + d] == CONSENT_DELIVER);
    }

    return n;
}


size_t
consent_split_max(const consent_result_t *res)
{
    return 3 + 7 * (size_t) res->nevents + 2 * (size_t) res->nextra;
}


/* where a hook's preferences go into an event, and what wraps them */
typedef struct {
    uint32_t      at;               /* body offset of the splice */
    uint32_t      len;              /* bytes it replaces */
    const char   *pre;
    const char   *post;
    int           top;              /* adds a member to the event itself */
} edit_t;


static int
has_members(const consent_json_tok_t *tok, uint32_t obj)
{
    return tok[obj].next > obj + 1;
}


static void
edit_point(const consent_result_t *res, const consent_event_t *ev,
    edit_t *ed)
{
    uint32_t                   c, k, p;
    const unsigned char       *b = res->body;
    const consent_json_tok_t  *tok = res->tok;

    ed->top = 0;
    ed->len = 0;

    c = consent_json_member(b, tok, ev->tok, "context", 7);

    if (c == 0) {
        ed->at = tok[ev->tok].start + 1;
        ed->pre = "\"context\":{\"consent\":{\"categoryPreferences\":";
        ed->post = ev->has_members ? "}}," : "}}";
        ed->top = 1;
        return;
    }

    if (tok[c].type != CONSENT_JSON_OBJECT) {
        ed->at = tok[c].start;
        ed->len = tok[c].end - tok[c].start;
        ed->pre = "{\"consent\":{\"categoryPreferences\":";
        ed->post = "}}";
        return;
    }

    k = consent_json_member(b, tok, c, "consent", 7);

    if (k == 0) {
        ed->at = tok[c].start + 1;
        ed->pre = "\"consent\":{\"categoryPreferences\":";
        ed->post = has_members(tok, c) ? "}," : "}";
        return;
    }

    if (tok[k].type != CONSENT_JSON_OBJECT) {
        ed->at = tok[k].start;
        ed->len = tok[k].end - tok[k].start;
        ed->pre = "{\"categoryPreferences\":";
        ed->post = "}";
        return;
    }

    p = consent_json_member(b, tok, k, "categoryPreferences", 19);

    if (p == 0) {
        ed->at = tok[k].start + 1;
        ed->pre = "\"categoryPreferences\":";
        ed->post = has_members(tok, k) ? "," : "";
        return;
    }

    ed->at = tok[p].start;
    ed->len = tok[p].end - tok[p].start;
    ed->pre = "";
    ed->post = "";
}


/* an event whose consent object a hook rewrote, type inserted or not */
static size_t
put_rewritten(const consent_result_t *res, const consent_event_t *ev,
    const consent_str_t *prefs, const unsigned char *body,
    consent_slice_t *out, size_t n)
{
    edit_t       ed;
    size_t       from;
    const char  *ins;

    edit_point(res, ev, &ed);

    from = ev->start;

    if (ev->insert_type && ev->type < CONSENT_EP_BATCH) {
        ins = type_insert[ev->type];
        n = put(out, n, (const unsigned char *) ins,
                strlen(ins) - ((ev->has_members || ed.top) ? 0 : 1));
        from++;
    }

    n = put(out, n, body + from, ed.at - from);
    n = put(out, n, (const unsigned char *) ed.pre, strlen(ed.pre));
    n = put(out, n, (const unsigned char *) prefs->data, prefs->len);
    n = put(out, n, (const unsigned char *) ed.post, strlen(ed.post));

    return put(out, n, body + ed.at + ed.len, ev->end - ed.at - ed.len);
}


/*
 * Each rewritten event written out whole, once, in event order, with a
 * comma after each, into one buffer: consecutive rewritten events are
 * then adjacent there as body events are in the body, and go as one
 * slice to every destination instead of five slices each per event.
 */

int
consent_split_rewrites(consent_result_t *res, const unsigned char *body,
    consent_alloc_pt alloc, void *ctx)
{
    size_t            e, i, k, n, size;
    unsigned char    *p;
    consent_slice_t  *sl;

    if (res->rewrite == NULL) {
        return 0;
    }

    for (n = 0, e = 0; e < res->nevents; e++) {
        n += (res->rewrite[e].data != NULL && res->events[e].code == 0);
    }

    if (n == 0) {
        return 0;
    }

    /* the slices of each, found once: 6 at most (put_rewritten) */
    sl = alloc(ctx, 6 * n * sizeof(consent_slice_t));
    res->whole = alloc(ctx, res->nevents * sizeof(consent_str_t));
    if (sl == NULL || res->whole == NULL) {
        res->whole = NULL;
        return -1;
    }

    memset(res->whole, 0, res->nevents * sizeof(consent_str_t));

    for (size = 0, k = 0, e = 0; e < res->nevents; e++) {
        if (res->rewrite[e].data == NULL || res->events[e].code != 0) {
            continue;
        }

        /* whole[e].len: the number of slices until the copy */
        n = put_rewritten(res, &res->events[e], &res->rewrite[e], body,
                          sl + k, 0);
        res->whole[e].len = n;

        for (i = k; i < k + n; i++) {
            size += sl[i].len;
        }

        k += n;
        size++;
    }

    p = alloc(ctx, size);
    if (p == NULL) {
        res->whole = NULL;
        return -1;
    }

    for (k = 0, e = 0; e < res->nevents; e++) {
        if (res->rewrite[e].data == NULL || res->events[e].code != 0) {
            continue;
        }

        n = res->whole[e].len;
        res->whole[e].data = (const char *) p;

        for (i = k; i < k + n; i++) {
            memcpy(p, sl[i].data, sl[i].len);
            p += sl[i].len;
        }

        k += n;
        res->whole[e].len = (const char *) p - res->whole[e].data;
        *p++ = ',';
    }

    return 0;
}


/*
 * {"batch":[ev,ev,...],<envelope members>}.  Consecutive delivered
 * events go as one slice, with the separator the client used between
 * them, so a batch delivered whole is three slices.
 */

size_t
consent_split(const consent_result_t *res, size_t d,
    const unsigned char *body, consent_slice_t *out)
{
    size_t                  n, e, run, events;
    const char             *ins;
    const unsigned char    *w;
    const consent_event_t  *ev;

    n = put(out, 0, LIT("{\"batch\":["));
    run = RUN_NONE;
    events = 0;

    for (e = 0; e < res->nevents; e++) {

        if (res->outcome[e * res->ndests + d] != CONSENT_DELIVER) {
            run = RUN_NONE;
            continue;
        }

        ev = &res->events[e];

        if (res->whole != NULL && res->whole[e].data != NULL) {
            w = (const unsigned char *) res->whole[e].data;

            if (run == RUN_WHOLE) {
                out[n - 1].len = (size_t) (w + res->whole[e].len
                                           - out[n - 1].data);
                continue;
            }

            if (events++) {
                n = put(out, n, LIT(","));
            }

            n = put(out, n, w, res->whole[e].len);
            run = RUN_WHOLE;
            continue;
        }

        if (res->rewrite != NULL && res->rewrite[e].data != NULL) {
            /* a rewritten event is never part of a run */
            if (events++) {
                n = put(out, n, LIT(","));
            }

            n = put_rewritten(res, ev, &res->rewrite[e], body, out, n);
            run = RUN_NONE;
            continue;
        }

        if (run == RUN_BODY) {
            out[n - 1].len = (size_t) (body + ev->end - out[n - 1].data);
            continue;
        }

        if (events++) {
            n = put(out, n, LIT(","));
        }

        if (ev->insert_type && ev->type < CONSENT_EP_BATCH) {
            ins = type_insert[ev->type];

            /* an object without members takes the type without a comma */
            n = put(out, n, (const unsigned char *) ins,
                    strlen(ins) - (ev->has_members ? 0 : 1));
            n = put(out, n, body + ev->start + 1, ev->end - ev->start - 1);
            continue;
        }

        n = put(out, n, body + ev->start, ev->end - ev->start);
        run = RUN_BODY;
    }

    n = put(out, n, LIT("]"));

    for (e = 0; e < res->nextra; e++) {
        n = put(out, n, LIT(","));
        n = put(out, n, body + res->extra[e].start,
                res->extra[e].end - res->extra[e].start);
    }

    return put(out, n, LIT("}"));
}
