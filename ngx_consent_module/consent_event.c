
/*
 * Event model, edge validation, consent routing and batch splitting
 * over the token tape of consent_json.c.
 */

#include <string.h>

#include "consent_core.h"


#define IS_KEY(b, t, lit)  consent_json_str_eq(b, t, lit, sizeof(lit) - 1)

#define INTEG_ABSENT  0
#define INTEG_ON      1
#define INTEG_OFF     2


/* the parts of an event (or of a batch envelope) the gateway reads */
typedef struct {
    uint32_t    type;
    uint32_t    event;
    uint32_t    user_id;
    uint32_t    anon_id;
    uint32_t    context;
    uint32_t    integrations;
    uint32_t    consent;        /* context.consent */
    uint32_t    prefs;          /* context.consent.categoryPreferences */
    uint32_t    legacy;         /* context.consentCategories */
    uint32_t    version;        /* context.consent.version */
    unsigned    dup:1;
    unsigned    carries:1;      /* carries a consent object */
    unsigned    broken:1;       /* context.consent is not an object */
} fields_t;


typedef struct {
    const consent_policy_t    *policy;
    const unsigned char       *b;
    const consent_json_tok_t  *tok;
    size_t                     nwords;
    uint8_t                   *batch_integ;     /* per destination */
    uint8_t                    batch_all;
    fields_t                   batch;           /* batch envelope */
} route_t;


static const char  *type_names[] = {
    NULL, "track", "identify", "page", "screen", "group", "alias", "batch",
    "telemetry"
};

/* the one-letter paths of analytics.js and the mobile SDKs, by endpoint */
static const char  short_names[] = {
    0, 't', 'i', 'p', 's', 'g', 'a', 'b', 'm'
};

static const char  *code_names[] = {
    "ok",
    "invalid_json",
    "too_large",
    "empty_batch",
    "no_user_anon_id",
    "consent_categorypreferences_should_exist",
    "consent_categorypreferences_fields_should_be_object",
    "consent_categorypreferences_fields_should_be_bool",
    "consent_version_should_be_number",
    "invalid_type",
    "duplicate_key",
    "invalid_event",
    "lua_rejected",
    "no_memory"
};

static const char  *code_messages[] = {
    "ok",
    "invalid JSON",
    "too large",
    "batch holds no events",
    "userId or anonymousId is required",
    "context.consent.categoryPreferences object is required",
    "context.consent.categoryPreferences must be an object",
    "context.consent.categoryPreferences values must be booleans",
    "context.consent.version must be a number",
    "type is missing, unknown or contradicts the endpoint",
    "duplicate key in event",
    "event must be a JSON object",
    "rejected by the consent hook",
    "out of memory"
};

static const char  *outcome_names[] = {
    "skipped", "delivered", "filtered_consent", "filtered_integrations"
};


const char *
consent_type_name(consent_endpoint_e type)
{
    return (type > CONSENT_EP_NONE && type <= CONSENT_EP_TELEMETRY)
           ? type_names[type] : "unknown";
}


const char *
consent_code_name(consent_code_e code)
{
    return code < CONSENT_CODE_MAX ? code_names[code] : "unknown";
}


const char *
consent_code_message(consent_code_e code)
{
    return code < CONSENT_CODE_MAX ? code_messages[code] : "unknown";
}


const char *
consent_outcome_name(consent_outcome_e outcome)
{
    return outcome <= CONSENT_FILTERED_INTEGRATIONS ? outcome_names[outcome]
                                                    : "unknown";
}


consent_endpoint_e
consent_endpoint(const char *path, size_t len)
{
    const char  *p;
    size_t       n;
    int          i;

    /* last path segment, ignoring one trailing slash */
    if (len && path[len - 1] == '/') {
        len--;
    }

    p = path + len;
    while (p > path && p[-1] != '/') {
        p--;
    }

    n = (size_t) (path + len - p);

    if (n == 1) {
        for (i = CONSENT_EP_TRACK; i <= CONSENT_EP_TELEMETRY; i++) {
            if (*p == short_names[i]) {
                return (consent_endpoint_e) i;
            }
        }

        return CONSENT_EP_NONE;
    }

    for (i = CONSENT_EP_TRACK; i <= CONSENT_EP_BATCH; i++) {
        if (strlen(type_names[i]) == n && memcmp(p, type_names[i], n) == 0) {
            return (consent_endpoint_e) i;
        }
    }

    if (n == 6 && memcmp(p, "import", 6) == 0) {
        return CONSENT_EP_BATCH;
    }

    return CONSENT_EP_NONE;
}


/* sets *slot to the member's value, flags a second occurrence */
static void
take(fields_t *f, uint32_t *slot, uint32_t val)
{
    if (*slot) {
        f->dup = 1;
    }

    *slot = val;
}


static void
read_consent(const unsigned char *b, const consent_json_tok_t *tok,
    uint32_t obj, fields_t *f)
{
    uint32_t  i;

    for (i = obj + 1; i < tok[obj].next; i = tok[i + 1].next) {
        if (IS_KEY(b, &tok[i], "categoryPreferences")) {
            take(f, &f->prefs, i + 1);

        } else if (IS_KEY(b, &tok[i], "version")) {
            take(f, &f->version, i + 1);
        }
    }
}


static void
read_context(const unsigned char *b, const consent_json_tok_t *tok,
    uint32_t obj, fields_t *f)
{
    uint32_t  i;

    for (i = obj + 1; i < tok[obj].next; i = tok[i + 1].next) {
        if (IS_KEY(b, &tok[i], "consent")) {
            take(f, &f->consent, i + 1);

        } else if (IS_KEY(b, &tok[i], "consentCategories")) {
            take(f, &f->legacy, i + 1);
        }
    }

    if (f->consent) {
        if (tok[f->consent].type == CONSENT_JSON_OBJECT) {
            read_consent(b, tok, f->consent, f);

        } else {
            /* a malformed consent object fails closed, whatever else
             * the context holds */
            f->carries = 1;
            f->broken = 1;
        }
    }

    if (f->prefs || f->legacy) {
        f->carries = 1;
    }
}


enum {
    K_OTHER = 0,
    K_TYPE,
    K_EVENT,
    K_BATCH,
    K_USER_ID,
    K_CONTEXT,
    K_ANON_ID,
    K_INTEGRATIONS
};

static const struct {
    const char  *name;
    size_t       len;
} event_keys[] = {
    { "", 0 },
    { "type", 4 },
    { "event", 5 },
    { "batch", 5 },
    { "userId", 6 },
    { "context", 7 },
    { "anonymousId", 11 },
    { "integrations", 12 }
};


/* which of the top-level keys the gateway reads this key is */
static int
event_key(const unsigned char *b, const consent_json_tok_t *k)
{
    const unsigned char  *p = b + k->start + 1;
    size_t                n = k->end - k->start - 2;
    int                   i;

    if (k->escaped) {
        for (i = K_TYPE; i <= K_INTEGRATIONS; i++) {
            if (consent_json_str_eq(b, k, event_keys[i].name,
                                    event_keys[i].len))
            {
                return i;
            }
        }

        return K_OTHER;
    }

    /* keys are at least 4 bytes apart in length but for event/batch */
    switch (n) {
    case 4:
        i = K_TYPE;
        break;
    case 5:
        i = (p[0] == 'e') ? K_EVENT : K_BATCH;
        break;
    case 6:
        i = K_USER_ID;
        break;
    case 7:
        i = K_CONTEXT;
        break;
    case 11:
        i = K_ANON_ID;
        break;
    case 12:
        i = K_INTEGRATIONS;
        break;
    default:
        return K_OTHER;
    }

    return memcmp(p, event_keys[i].name, n) == 0 ? i : K_OTHER;
}


/*
 * Reads the interpreted members of an event or batch object.  Returns
 * the tape index of the "batch" member's value (envelopes only).
 */
static uint32_t
read_fields(const unsigned char *b, const consent_json_tok_t *tok,
    uint32_t obj, fields_t *f, consent_span_t *extra, uint32_t *nextra)
{
    uint32_t   i, batch, *slot;
    int        key;

    memset(f, 0, sizeof(fields_t));
    batch = 0;

    for (i = obj + 1; i < tok[obj].next; i = tok[i + 1].next) {
        key = event_key(b, &tok[i]);

        if (extra != NULL) {
            /* an envelope: its members travel with every forwarded batch */

            if (key == K_BATCH) {
                take(f, &batch, i + 1);
                continue;
            }

            extra[*nextra].start = tok[i].start;
            extra[*nextra].end = tok[i + 1].end;
            (*nextra)++;

            if (key != K_CONTEXT && key != K_INTEGRATIONS) {
                continue;
            }
        }

        switch (key) {
        case K_TYPE:         slot = &f->type; break;
        case K_EVENT:        slot = &f->event; break;
        case K_USER_ID:      slot = &f->user_id; break;
        case K_ANON_ID:      slot = &f->anon_id; break;
        case K_CONTEXT:      slot = &f->context; break;
        case K_INTEGRATIONS: slot = &f->integrations; break;
        default:             continue;
        }

        take(f, slot, i + 1);
    }

    if (f->context && tok[f->context].type == CONSENT_JSON_OBJECT) {
        read_context(b, tok, f->context, f);
    }

    return batch;
}


static int
valid_id(const consent_json_tok_t *t)
{
    if (t->type == CONSENT_JSON_NUMBER) {
        return 1;
    }

    return t->type == CONSENT_JSON_STRING && t->end - t->start > 2;
}


/* marks each destination named in an integrations object on or off */
static void
read_integrations(const route_t *r, uint32_t obj, uint8_t *state,
    uint8_t *all)
{
    const consent_json_tok_t  *tok = r->tok;
    uint32_t                   i;
    long                       d;
    uint8_t                    v;

    if (obj == 0 || tok[obj].type != CONSENT_JSON_OBJECT) {
        return;
    }

    for (i = obj + 1; i < tok[obj].next; i = tok[i + 1].next) {
        /* only the literal false turns a destination off */
        v = (tok[i + 1].type == CONSENT_JSON_FALSE) ? INTEG_OFF : INTEG_ON;

        if (IS_KEY(r->b, &tok[i], "All")) {
            if (*all != INTEG_OFF) {
                *all = v;
            }
            continue;
        }

        d = consent_policy_dest(r->policy, r->b, &tok[i]);

        if (d >= 0 && state[d] != INTEG_OFF) {
            state[d] = v;
        }
    }
}


/*
 * The categories consented to in the object at prefs (any index, the
 * root of a stored profile's tape too): true everywhere they appear.
 */
static void
read_prefs_object(const route_t *r, uint32_t prefs, uint64_t *consented)
{
    const consent_json_tok_t  *tok = r->tok;
    const consent_policy_t    *p = r->policy;
    uint64_t                   no[CONSENT_MASK_WORDS];
    uint32_t                   i;
    long                       c;
    size_t                     w;

    memset(consented, 0, r->nwords * sizeof(uint64_t));
    memset(no, 0, r->nwords * sizeof(uint64_t));

    for (i = prefs + 1; i < tok[prefs].next; i = tok[i + 1].next) {
        c = consent_policy_category(p, r->b, &tok[i]);

        if (c < 0) {
            continue;
        }

        if (tok[i + 1].type == CONSENT_JSON_TRUE) {
            consented[c / 64] |= (uint64_t) 1 << (c % 64);

        } else {
            no[c / 64] |= (uint64_t) 1 << (c % 64);
        }
    }

    for (w = 0; w < r->nwords; w++) {
        consented[w] &= ~no[w];
    }
}


/* the categories of an event's preferences (0: none) */
static void
read_prefs(const route_t *r, uint32_t prefs, uint64_t *consented)
{
    const consent_json_tok_t  *tok = r->tok;

    memset(consented, 0, r->nwords * sizeof(uint64_t));

    if (prefs == 0 || tok[prefs].type != CONSENT_JSON_OBJECT) {
        return;
    }

    read_prefs_object(r, prefs, consented);
}


static consent_code_e
check_pref_event(const route_t *r, const fields_t *src)
{
    const consent_json_tok_t  *tok = r->tok;
    uint32_t                   i, prefs = src->prefs;

    if (prefs == 0) {
        return CONSENT_PREFS_SHOULD_EXIST;
    }

    if (tok[prefs].type != CONSENT_JSON_OBJECT) {
        return CONSENT_PREFS_SHOULD_BE_OBJECT;
    }

    for (i = prefs + 1; i < tok[prefs].next; i = tok[i + 1].next) {
        if (tok[i + 1].type != CONSENT_JSON_TRUE
            && tok[i + 1].type != CONSENT_JSON_FALSE)
        {
            return CONSENT_PREFS_SHOULD_BE_BOOL;
        }
    }

    if (src->version && tok[src->version].type != CONSENT_JSON_NUMBER) {
        return CONSENT_VERSION_SHOULD_BE_NUMBER;
    }

    return CONSENT_OK;
}


static consent_code_e
check_event(const route_t *r, consent_endpoint_e ep, uint32_t obj,
    fields_t *f, consent_event_t *ev)
{
    const consent_json_tok_t  *tok = r->tok;
    const fields_t            *src;
    int                        t;

    if (tok[obj].type != CONSENT_JSON_OBJECT) {
        return CONSENT_INVALID_EVENT;
    }

    if (tok[obj].end - tok[obj].start > r->policy->max_event_size) {
        return CONSENT_TOO_LARGE;
    }

    read_fields(r->b, tok, obj, f, NULL, NULL);

    if (f->dup) {
        return CONSENT_DUPLICATE_KEY;
    }

    ev->has_members = tok[obj].next > obj + 1;

    if (f->type == 0) {
        if (ep == CONSENT_EP_BATCH) {
            return CONSENT_INVALID_TYPE;
        }

        ev->insert_type = 1;
        ev->type = (uint8_t) ep;

    } else {
        if (tok[f->type].type != CONSENT_JSON_STRING) {
            return CONSENT_INVALID_TYPE;
        }

        for (t = CONSENT_EP_TRACK; t < CONSENT_EP_BATCH; t++) {
            if (consent_json_str_eq(r->b, &tok[f->type], type_names[t],
                                    strlen(type_names[t])))
            {
                ev->type = (uint8_t) t;
                break;
            }
        }

        if (ev->type == 0 || (ep != CONSENT_EP_BATCH && ev->type != ep)) {
            return CONSENT_INVALID_TYPE;
        }
    }

    if (!(f->user_id && valid_id(&tok[f->user_id]))
        && !(f->anon_id && valid_id(&tok[f->anon_id])))
    {
        return CONSENT_NO_USER_ANON_ID;
    }

    if (ev->type == CONSENT_EP_TRACK && f->event
        && tok[f->event].type == CONSENT_JSON_STRING
        && IS_KEY(r->b, &tok[f->event], CONSENT_PREF_UPDATED))
    {
        src = (!f->carries && r->batch.carries) ? &r->batch : f;
        return check_pref_event(r, src);
    }

    return CONSENT_OK;
}


/* the consent source of an event: its own, else the batch's, else none */
static const fields_t *
consent_source(const route_t *r, const fields_t *f)
{
    return f->carries ? f : (r->batch.carries ? &r->batch : NULL);
}


/* the effective preferences object, 0 when absent or failing closed */
static uint32_t
prefs_token(const fields_t *src)
{
    if (src == NULL || src->broken) {
        return 0;
    }

    return src->prefs ? src->prefs : src->legacy;
}


/*
 * Decides every destination for one accepted event.  A hook's mask,
 * when given, replaces the event's preferences.
 */
static void
route_event(const route_t *r, const fields_t *f, const uint64_t *hook,
    uint8_t *out, uint8_t *integ)
{
    const consent_policy_t  *p = r->policy;
    const fields_t          *src;
    const consent_dest_t    *d;
    uint64_t                 consented[CONSENT_MASK_WORDS];
    uint8_t                  all, st;
    size_t                   i, w;
    int                      carries;

    src = consent_source(r, f);

    /* consent_default deny: no consent counts as nothing consented */
    carries = (src != NULL || hook != NULL || p->default_deny);

    if (hook != NULL) {
        memcpy(consented, hook, r->nwords * sizeof(uint64_t));

    } else if (src != NULL) {
        read_prefs(r, prefs_token(src), consented);

    } else {
        memset(consented, 0, sizeof(consented));
    }

    all = INTEG_ABSENT;
    memset(integ, INTEG_ABSENT, p->ndests);
    read_integrations(r, f->integrations, integ, &all);

    if (all == INTEG_ABSENT) {
        all = r->batch_all;
    }

    for (i = 0; i < p->ndests; i++) {
        d = &p->dests[i];

        if (d->enforce && carries) {
            for (w = 0; w < r->nwords; w++) {
                if (d->mask[w] & ~consented[w]) {
                    break;
                }
            }

            if (w < r->nwords) {
                out[i] = CONSENT_FILTERED_CONSENT;
                continue;
            }
        }

        st = integ[i] != INTEG_ABSENT ? integ[i] : r->batch_integ[i];

        if (st == INTEG_OFF || (st == INTEG_ABSENT && all == INTEG_OFF)) {
            out[i] = CONSENT_FILTERED_INTEGRATIONS;

        } else {
            out[i] = CONSENT_DELIVER;
        }
    }
}


static void
route_init(route_t *r, const consent_policy_t *policy,
    const unsigned char *b, const consent_json_tok_t *tok)
{
    memset(r, 0, sizeof(route_t));
    r->policy = policy;
    r->b = b;
    r->tok = tok;
    r->nwords = (policy->ncategories + 63) / 64;
}


static uint8_t
event_source(const fields_t *src, const fields_t *f)
{
    if (src == NULL) {
        return CONSENT_SRC_NONE;
    }

    if (src->broken) {
        return CONSENT_SRC_CLOSED;
    }

    return src == f ? CONSENT_SRC_EVENT : CONSENT_SRC_BATCH;
}


void
consent_route(const consent_policy_t *policy, consent_result_t *res,
    uint32_t i, const uint64_t *mask)
{
    route_t   r;
    fields_t  f;

    route_init(&r, policy, res->body, res->tok);
    r.batch_integ = res->batch_integ;
    r.batch_all = res->batch_all;

    memset(&f, 0, sizeof(fields_t));
    f.integrations = res->events[i].integ;

    route_event(&r, &f, mask, &res->outcome[(size_t) i * policy->ndests],
                res->integ);
}


int
consent_profile_mask(const consent_policy_t *policy, const char *value,
    size_t len, consent_alloc_pt alloc, void *ctx, uint64_t *mask,
    consent_str_t *prefs)
{
    route_t         r;
    uint32_t        p;
    consent_json_t  js;

    if (consent_json_scan(&js, (const unsigned char *) value, len, alloc,
                          ctx)
        != 0 || js.tok[0].type != CONSENT_JSON_OBJECT)
    {
        return -1;
    }

    p = consent_json_member((const unsigned char *) value, js.tok, 0, "p", 1);

    if (p == 0 || js.tok[p].type != CONSENT_JSON_OBJECT) {
        return -1;
    }

    route_init(&r, policy, (const unsigned char *) value, js.tok);
    read_prefs_object(&r, p, mask);

    prefs->data = value + js.tok[p].start;
    prefs->len = js.tok[p].end - js.tok[p].start;

    return 0;
}


static consent_code_e
fail(consent_result_t *res, consent_code_e code, const char *reason,
    size_t offset)
{
    res->code = code;
    res->reason = reason;
    res->offset = offset;
    return code;
}


consent_code_e
consent_process(const consent_policy_t *policy, consent_endpoint_e ep,
    const unsigned char *body, size_t len, consent_alloc_pt alloc,
    void *ctx, consent_result_t *res)
{
    return consent_process_hooked(policy, ep, body, len, alloc, ctx, NULL,
                                  NULL, res);
}


consent_code_e
consent_process_hooked(const consent_policy_t *policy, consent_endpoint_e ep,
    const unsigned char *body, size_t len, consent_alloc_pt alloc,
    void *ctx, consent_hook_pt hook, void *hook_ctx, consent_result_t *res)
{
    return consent_process_tape(policy, ep, body, len, alloc, ctx, alloc,
                                ctx, hook, hook_ctx, res);
}


consent_code_e
consent_process_tape(const consent_policy_t *policy, consent_endpoint_e ep,
    const unsigned char *body, size_t len, consent_alloc_pt alloc,
    void *ctx, consent_alloc_pt tape_alloc, void *tape_ctx,
    consent_hook_pt hook, void *hook_ctx, consent_result_t *res)
{
    consent_json_t       js;
    route_t              r;
    fields_t             f;
    uint32_t             root, batch, i, n, e;
    uint8_t             *integ;
    uint64_t             mask[CONSENT_MASK_WORDS];
    consent_event_t     *ev;
    consent_code_e       code;
    consent_hook_e       verdict;
    const fields_t      *src;

    memset(res, 0, sizeof(consent_result_t));
    res->ndests = policy->ndests;

    if (consent_json_scan(&js, body, len, tape_alloc, tape_ctx) != 0) {
        if (js.err == CONSENT_JSON_ENOMEM) {
            return fail(res, CONSENT_NO_MEMORY, js.err, 0);
        }

        res->syntax = 1;
        return fail(res, CONSENT_INVALID_JSON, js.err, js.err_offset);
    }

    root = 0;
    res->body = body;
    res->tok = js.tok;

    if (js.tok[root].type != CONSENT_JSON_OBJECT) {
        return fail(res, CONSENT_INVALID_JSON,
                    "request body must be a JSON object", 0);
    }

    route_init(&r, policy, body, js.tok);

    r.batch_integ = alloc(ctx, policy->ndests + 1);
    integ = alloc(ctx, policy->ndests + 1);
    if (r.batch_integ == NULL || integ == NULL) {
        return fail(res, CONSENT_NO_MEMORY, "out of memory", 0);
    }

    memset(r.batch_integ, INTEG_ABSENT, policy->ndests + 1);

    if (ep == CONSENT_EP_BATCH) {
        /* the envelope's members (a key, then its value's subtree) */
        n = 0;
        for (i = root + 1; i < js.tok[root].next; i = js.tok[i + 1].next) {
            n++;
        }

        res->extra = alloc(ctx, (n + 1) * sizeof(consent_span_t));
        if (res->extra == NULL) {
            return fail(res, CONSENT_NO_MEMORY, "out of memory", 0);
        }

        batch = read_fields(body, js.tok, root, &r.batch, res->extra,
                            &res->nextra);

        if (r.batch.dup) {
            return fail(res, CONSENT_INVALID_JSON,
                        "duplicate key in batch envelope", 0);
        }

        if (batch == 0 || js.tok[batch].type != CONSENT_JSON_ARRAY) {
            return fail(res, CONSENT_INVALID_JSON,
                        "\"batch\" must be an array of events", 0);
        }

        read_integrations(&r, r.batch.integrations, r.batch_integ,
                          &r.batch_all);

        n = 0;
        for (i = batch + 1; i < js.tok[batch].next; i = js.tok[i].next) {
            n++;
        }

        if (n == 0) {
            return fail(res, CONSENT_EMPTY_BATCH, "batch holds no events", 0);
        }

        if (n > policy->max_events) {
            return fail(res, CONSENT_TOO_LARGE, "too many events", 0);
        }

        e = batch + 1;

    } else {
        n = 1;
        e = root;
    }

    res->events = alloc(ctx, n * sizeof(consent_event_t));
    res->outcome = alloc(ctx, (size_t) n * policy->ndests + 1);
    if (res->events == NULL || res->outcome == NULL) {
        return fail(res, CONSENT_NO_MEMORY, "out of memory", 0);
    }

    memset(res->events, 0, n * sizeof(consent_event_t));
    memset(res->outcome, CONSENT_SKIP, (size_t) n * policy->ndests);
    res->nevents = n;

    for (i = 0; i < n; i++, e = js.tok[e].next) {
        ev = &res->events[i];
        ev->start = js.tok[e].start;
        ev->end = js.tok[e].end;
        ev->tok = e;

        code = check_event(&r, ep, e, &f, ev);

        if (code != CONSENT_OK) {
            ev->code = (uint8_t) code;
            continue;
        }

        src = consent_source(&r, &f);
        ev->prefs = prefs_token(src);
        ev->broken = (src != NULL && src->broken);
        ev->integ = f.integrations;
        ev->user_id = f.user_id;
        ev->anon_id = f.anon_id;
        ev->source = event_source(src, &f);
        verdict = CONSENT_HOOK_KEEP;

        if (hook != NULL) {
            memset(mask, 0, sizeof(mask));
            verdict = hook(hook_ctx, res, i, mask);

            if (verdict == CONSENT_HOOK_REJECT) {
                ev->code = CONSENT_LUA_REJECTED;
                continue;
            }

            if (verdict == CONSENT_HOOK_FAIL) {
                /* fail closed: as if categoryPreferences were {} */
                memset(mask, 0, sizeof(mask));
                ev->source = CONSENT_SRC_CLOSED;

            } else if (verdict == CONSENT_HOOK_SET) {
                ev->source = CONSENT_SRC_HOOK;
            }
        }

        res->naccepted++;
        route_event(&r, &f, verdict == CONSENT_HOOK_KEEP ? NULL : mask,
                    &res->outcome[(size_t) i * policy->ndests], integ);
    }

    res->batch_integ = r.batch_integ;
    res->batch_all = r.batch_all;
    res->integ = integ;

    if (ep != CONSENT_EP_BATCH && res->events[0].code != CONSENT_OK) {
        res->code = (consent_code_e) res->events[0].code;
        res->reason = consent_code_message(res->code);
    }

    return res->code;
}
