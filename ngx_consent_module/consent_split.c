
/*
 * Batch splitting: the forwarded body of one destination as a list of
 * slices, most of them pointing into the request body.
 */

#include <string.h>

#include "consent_core.h"


#define LIT(s)  (const unsigned char *) s, sizeof(s) - 1


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
    out[n].data = p;
    out[n].len = len;
    return n + 1;
}


size_t
consent_split_max(const consent_result_t *res)
{
    return 3 + 3 * (size_t) res->nevents + 2 * (size_t) res->nextra;
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
    const consent_event_t  *ev;

    n = put(out, 0, LIT("{\"batch\":["));
    run = 0;
    events = 0;

    for (e = 0; e < res->nevents; e++) {

        if (res->outcome[e * res->ndests + d] != CONSENT_DELIVER) {
            run = 0;
            continue;
        }

        ev = &res->events[e];

        if (run) {
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
        run = 1;
    }

    n = put(out, n, LIT("]"));

    for (e = 0; e < res->nextra; e++) {
        n = put(out, n, LIT(","));
        n = put(out, n, body + res->extra[e].start,
                res->extra[e].end - res->extra[e].start);
    }

    return put(out, n, LIT("}"));
}
