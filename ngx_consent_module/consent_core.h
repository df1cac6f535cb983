
/*
 * ngx_consent pure core: JSON scanning, event model, validation,
 * consent routing and batch splitting.  libc only, no nginx headers,
 * so that it can be unit-tested and fuzzed on its own.
 */

#ifndef _CONSENT_CORE_H_INCLUDED_
#define _CONSENT_CORE_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>


#define CONSENT_MAX_DEPTH            128
#define CONSENT_MAX_CATEGORIES       1024
#define CONSENT_MASK_WORDS           (CONSENT_MAX_CATEGORIES / 64)

#define CONSENT_PREF_UPDATED         "Segment Consent Preference Updated"


typedef struct {
    const char  *data;
    size_t       len;
} consent_str_t;


/*
 * endpoints, from the last path component of the request URI; the stock
 * Segment clients' short forms (analytics.js /v1/t, mobile SDKs /v1/b)
 * name the same endpoints
 */
typedef enum {
    CONSENT_EP_NONE = 0,
    CONSENT_EP_TRACK,
    CONSENT_EP_IDENTIFY,
    CONSENT_EP_PAGE,
    CONSENT_EP_SCREEN,
    CONSENT_EP_GROUP,
    CONSENT_EP_ALIAS,
    CONSENT_EP_BATCH,           /* also /v1/import */
    CONSENT_EP_TELEMETRY        /* analytics.js's own metrics: /v1/m */
} consent_endpoint_e;


/* request- and event-level result codes; see consent_code_name() */
typedef enum {
    CONSENT_OK = 0,
    CONSENT_INVALID_JSON,
    CONSENT_TOO_LARGE,
    CONSENT_EMPTY_BATCH,
    CONSENT_NO_USER_ANON_ID,
    CONSENT_PREFS_SHOULD_EXIST,
    CONSENT_PREFS_SHOULD_BE_OBJECT,
    CONSENT_PREFS_SHOULD_BE_BOOL,
    CONSENT_VERSION_SHOULD_BE_NUMBER,
    CONSENT_INVALID_TYPE,
    CONSENT_DUPLICATE_KEY,
    CONSENT_INVALID_EVENT,
    CONSENT_LUA_REJECTED,
    CONSENT_NO_MEMORY,
    CONSENT_CODE_MAX
} consent_code_e;


/* per (event, destination) outcome */
typedef enum {
    CONSENT_SKIP = 0,           /* event rejected: nobody gets it */
    CONSENT_DELIVER,
    CONSENT_FILTERED_CONSENT,
    CONSENT_FILTERED_INTEGRATIONS
} consent_outcome_e;


typedef struct {
    consent_str_t    name;          /* matched against integrations keys */
    unsigned         enforce:1;
    uint64_t         mask[CONSENT_MASK_WORDS];  /* enabled categories */
} consent_dest_t;


/*
 * The routing configuration of one ingest location.  Only enabled
 * categories are listed; a destination's mask indexes into them.
 */
typedef struct {
    const consent_str_t   *categories;
    size_t                 ncategories;
    const consent_dest_t  *dests;
    size_t                 ndests;
    size_t                 max_event_size;
    size_t                 max_events;
    int                    default_deny;    /* no consent: as if {} */

    /* filled by consent_policy_prepare() */
    uint16_t              *cat_index;
    size_t                 cat_mask;
    uint16_t              *dest_index;
    size_t                 dest_mask;
} consent_policy_t;


typedef struct {
    uint32_t         start;         /* event slice [start, end) of body */
    uint32_t         end;
    uint32_t         tok;           /* the event object in res->tok */
    uint32_t         prefs;         /* effective categoryPreferences, or 0 */
    uint8_t          type;          /* consent_endpoint_e, 0 if unknown */
    uint8_t          code;          /* consent_code_e, 0 if accepted */
    uint8_t          insert_type;   /* single event without "type" */
    uint8_t          has_members;   /* object is not {} */
    uint8_t          broken;        /* context.consent is not an object */
    uint8_t          source;        /* consent_source_e, accepted events */
    uint32_t         integ;         /* its integrations object, or 0 */
    uint32_t         user_id;       /* its userId value, or 0 */
    uint32_t         anon_id;       /* its anonymousId value, or 0 */
} consent_event_t;


/* where an accepted event's routing preferences came from */
typedef enum {
    CONSENT_SRC_NONE = 0,           /* none: consent_default, or a profile */
    CONSENT_SRC_EVENT,              /* its own context.consent */
    CONSENT_SRC_BATCH,              /* the batch envelope's */
    CONSENT_SRC_HOOK,               /* a hook's preferences */
    CONSENT_SRC_CLOSED              /* failed closed: broken, hook error */
} consent_source_e;


typedef struct {
    uint32_t         start;
    uint32_t         end;
} consent_span_t;


typedef struct {
    const unsigned char  *data;
    size_t                len;
} consent_slice_t;


typedef void *(*consent_alloc_pt)(void *ctx, size_t size);


typedef struct {
    consent_code_e    code;         /* request-level error, 0 if none */
    const char       *reason;       /* static detail for request errors */
    size_t            offset;       /* byte offset of a JSON error */
    int               syntax;       /* a JSON syntax error at offset */

    consent_event_t  *events;
    uint32_t          nevents;
    uint32_t          naccepted;

    /* nevents x ndests outcomes, row per event */
    uint8_t          *outcome;
    size_t            ndests;

    /* members of a batch object other than "batch", in order */
    consent_span_t   *extra;
    uint32_t          nextra;

    /* the scanned request, for hooks reading event members */
    const unsigned char       *body;
    const struct consent_json_tok_s  *tok;

    /*
     * Set by the caller for events whose hook returned preferences:
     * the JSON object written as context.consent.categoryPreferences.
     */
    consent_str_t    *rewrite;

    /* the rewritten events written out whole, see consent_split_rewrites */
    consent_str_t    *whole;

    /* the batch envelope's integrations, for consent_route() */
    uint8_t          *batch_integ;
    uint8_t           batch_all;
    uint8_t          *integ;            /* its scratch, ndests + 1 */
} consent_result_t;


/* what a hook decided for one accepted event */
typedef enum {
    CONSENT_HOOK_KEEP = 0,          /* route as the event says */
    CONSENT_HOOK_SET,               /* route on the mask it filled */
    CONSENT_HOOK_REJECT,            /* reject with CONSENT_LUA_REJECTED */
    CONSENT_HOOK_FAIL               /* fail closed: nothing consented */
} consent_hook_e;

typedef consent_hook_e (*consent_hook_pt)(void *ctx, consent_result_t *res,
    uint32_t i, uint64_t *consented);


/* builds the lookup index of a policy; call once after filling it */
int consent_policy_prepare(consent_policy_t *p, consent_alloc_pt alloc,
    void *ctx);


/*
 * Scans, validates and routes one request body.  Returns the request
 * level code (also in res->code).  All memory comes from alloc(ctx, n),
 * which is never freed by the core (a request pool).
 */
consent_code_e consent_process(const consent_policy_t *policy,
    consent_endpoint_e ep, const unsigned char *body, size_t len,
    consent_alloc_pt alloc, void *ctx, consent_result_t *res);

/* the same, calling hook(hook_ctx, ...) per accepted event before routing */
consent_code_e consent_process_hooked(const consent_policy_t *policy,
    consent_endpoint_e ep, const unsigned char *body, size_t len,
    consent_alloc_pt alloc, void *ctx, consent_hook_pt hook, void *hook_ctx,
    consent_result_t *res);

/*
 * The same, with the token tape from tape_alloc(tape_ctx, n): the tape
 * is read until consent_split() is done with the result, so a caller
 * handling one request at a time may lend the same buffer to each.
 */
consent_code_e consent_process_tape(const consent_policy_t *policy,
    consent_endpoint_e ep, const unsigned char *body, size_t len,
    consent_alloc_pt alloc, void *ctx, consent_alloc_pt tape_alloc,
    void *tape_ctx, consent_hook_pt hook, void *hook_ctx,
    consent_result_t *res);

/*
 * Routes accepted event i again on the categories in mask (a profile's
 * preferences found after consent_process()), as a hook's mask would.
 */
void consent_route(const consent_policy_t *policy, consent_result_t *res,
    uint32_t i, const uint64_t *mask);

/*
 * The categories a stored profile value, {"p":{...},...} (see
 * consent_profile_encode), consents to: one scan gives the mask of its
 * "p" object (true where it says true, false winning over true) and,
 * in prefs, the object's bytes.  0, or -1 if there is no such object.
 * The tape comes from alloc.
 */
int consent_profile_mask(const consent_policy_t *policy, const char *value,
    size_t len, consent_alloc_pt alloc, void *ctx, uint64_t *mask,
    consent_str_t *prefs);

/* a category's index among the enabled ones, or -1 */
long consent_policy_find(const consent_policy_t *p, const char *id,
    size_t len);

/* the tape index of member key of object obj, or 0 */
uint32_t consent_json_member(const unsigned char *base,
    const struct consent_json_tok_s *tok, uint32_t obj, const char *key,
    size_t len);

/* writes the unescaped string to out (room: token length); its length */
size_t consent_json_str_decode(const unsigned char *base,
    const struct consent_json_tok_s *t, unsigned char *out);

/*
 * The forwarded body of destination d, {"batch":[...],...}, as slices
 * written to out, which must hold consent_split_max(res) entries.
 * Returns the number of slices.
 */
size_t consent_split_max(const consent_result_t *res);

/* the events routed to destination d (outcome CONSENT_DELIVER) */
size_t consent_delivered(const consent_result_t *res, size_t d);
int consent_split_rewrites(consent_result_t *res, const unsigned char *body,
    consent_alloc_pt alloc, void *ctx);
size_t consent_split(const consent_result_t *res, size_t d,
    const unsigned char *body, consent_slice_t *out);

consent_endpoint_e consent_endpoint(const char *path, size_t len);
const char *consent_type_name(consent_endpoint_e type);
const char *consent_code_name(consent_code_e code);
const char *consent_code_message(consent_code_e code);
const char *consent_outcome_name(consent_outcome_e outcome);


/* JSON scanner: a flat tape of tokens over the unmodified input */

typedef enum {
    CONSENT_JSON_OBJECT = 1,
    CONSENT_JSON_ARRAY,
    CONSENT_JSON_STRING,
    CONSENT_JSON_NUMBER,
    CONSENT_JSON_TRUE,
    CONSENT_JSON_FALSE,
    CONSENT_JSON_NULL
} consent_json_type_e;


typedef struct consent_json_tok_s {
    uint32_t         start;         /* first byte (a string's quote) */
    uint32_t         end;           /* one past the last byte */
    uint32_t         next;          /* tape index after this subtree */
    uint16_t         type;
    uint16_t         escaped;       /* string holds a backslash */
} consent_json_tok_t;


typedef struct {
    consent_json_tok_t  *tok;
    uint32_t             ntok;
    uint32_t             cap;
    size_t               err_offset;
    const char          *err;
} consent_json_t;


/* js->err on allocation failure (compare the pointer) */
extern const char  CONSENT_JSON_ENOMEM[];

int consent_json_scan(consent_json_t *js, const unsigned char *p,
    size_t len, consent_alloc_pt alloc, void *ctx);
int consent_json_str_eq(const unsigned char *base,
    const consent_json_tok_t *t, const char *s, size_t n);
int consent_json_hex4(const unsigned char *p, unsigned *v);

/* the length of the valid UTF-8 sequence at p (< end), or 0 */
size_t consent_utf8_len(const unsigned char *p, const unsigned char *end);


/*
 * A preference set as a hook returns it, written as the JSON object
 * that becomes context.consent.categoryPreferences: keys sorted
 * (bytewise, shorter first) so the body does not depend on hashing,
 * escaped as JSON.  consent_prefs_size() is the room out needs.
 * Returns the length written, or 0 if a key is not valid UTF-8 (the
 * forwarded body must be valid JSON).  Sorts prefs in place.
 */
typedef struct {
    consent_str_t    key;
    int              value;
} consent_pref_t;

size_t consent_prefs_size(const consent_pref_t *prefs, size_t n);
size_t consent_prefs_json(consent_pref_t *prefs, size_t n, char *out);


long consent_policy_category(const consent_policy_t *p,
    const unsigned char *b, const consent_json_tok_t *key);
long consent_policy_dest(const consent_policy_t *p, const unsigned char *b,
    const consent_json_tok_t *key);


/* bytes as a JSON string body (room: 6 * len); NULL if not UTF-8 */
char *consent_json_str_escape(char *o, const unsigned char *p, size_t len);


/* ------------------------------------------------------------------ */
/*
 * Consent profiles (issue 13): the pure pieces the Redis glue needs,
 * in consent_profile.c.
 */

/*
 * An event's timestamp (RFC 3339 as Segment clients send it) to
 * milliseconds since the epoch, UTC.  Accepted:
 * YYYY-MM-DD(T|t| )HH:MM:SS[.fraction][Z|z|+HH:MM|+HHMM|+HH], "-" too;
 * no offset is UTC; the fraction has any number of digits, truncated
 * to milliseconds; second 60 (leap) reads as 59.999.  Rejected: date
 * only, no seconds, hour 24, impossible dates, anything trailing.
 * Returns 0, or -1 with *ms untouched.
 */
int consent_time_parse(const char *s, size_t len, int64_t *ms);

/* days since 1970-01-01 of a proleptic Gregorian date (m 1-12) */
int64_t consent_days_from_civil(int64_t y, unsigned m, unsigned d);


/*
 * RESP2 (the Redis protocol).  consent_resp_command() writes one
 * command as an array of bulk strings, *N\r\n$len\r\narg\r\n...;
 * it returns the length it needs and writes only when that fits in
 * cap (append pipelined commands at buf + used); 0 on size overflow.
 */
size_t consent_resp_command(char *buf, size_t cap, size_t argc,
    const char *const argv[], const size_t lens[]);

typedef enum {
    CONSENT_RESP_STATUS = 1,    /* +OK */
    CONSENT_RESP_ERROR,         /* -ERR ... */
    CONSENT_RESP_INTEGER,       /* :42 */
    CONSENT_RESP_BULK,          /* $3 abc, or null $-1 (data NULL) */
    CONSENT_RESP_ARRAY          /* *2 ..., or null *-1 */
} consent_resp_type_e;

#define CONSENT_RESP_MAX_BULK      (512 * 1024 * 1024)  /* as Redis */
#define CONSENT_RESP_MAX_ELTS      (1024 * 1024)
#define CONSENT_RESP_MAX_DEPTH     8
#define CONSENT_RESP_MAX_LINE      4096   /* +, -, : lines and headers */

/*
 * One reply.  data/len: the status or error text, the bulk payload
 * (data NULL for null).  integer: the integer, or for bulk strings and
 * arrays their length, -1 for null.  For arrays, elts/elts_len are the
 * bytes of the nelts elements: each is a complete, already checked
 * reply, so calling consent_resp_parse() nelts times walks them.
 */
typedef struct {
    consent_resp_type_e   type;
    const char           *data;
    size_t                len;
    int64_t               integer;
    size_t                nelts;
    const char           *elts;
    size_t                elts_len;
} consent_resp_t;

/*
 * Parses one complete reply at p.  Returns the bytes it takes, 0 if
 * more are needed, -1 if malformed (bad type byte or number, missing
 * CRLF, a bulk string longer than max_bulk, an array longer than
 * CONSENT_RESP_MAX_ELTS or deeper than CONSENT_RESP_MAX_DEPTH).
 */
ptrdiff_t consent_resp_parse(const char *p, size_t len, consent_resp_t *out);
ptrdiff_t consent_resp_parse_max(const char *p, size_t len, size_t max_bulk,
    consent_resp_t *out);


/*
 * A stored decision: {"p":{...},"t":<ms>,"e":"<source>"}.  encode
 * copies prefs as given (the caller passes a scanned JSON object) and
 * escapes the source; it returns the length it needs, writing only
 * when that fits in cap, 0 if the source is not UTF-8.  decode checks
 * the value with consent_json_scan() (memory from alloc) and fills out:
 * prefs the object's bytes, source the string's body as stored (JSON
 * escaped); members it does not know are ignored.  0 or -1.
 */
typedef struct {
    consent_str_t    prefs;
    int64_t          t;
    consent_str_t    source;
} consent_profile_t;

size_t consent_profile_encode(char *out, size_t cap, const char *prefs,
    size_t prefs_len, int64_t t, const char *source, size_t source_len);
int consent_profile_decode(const char *s, size_t len, consent_alloc_pt alloc,
    void *ctx, consent_profile_t *out);

/*
 * A profile's key, prefix{u:ID} (kind 'u', userId) or prefix{a:ID}
 * ('a', anonymousId): the hash tag keeps each id's key in one Redis
 * Cluster slot.  Returns the length it needs, writing only when that
 * fits in cap.
 */
size_t consent_profile_key(char *out, size_t cap, const char *prefix,
    size_t prefix_len, char kind, const char *id, size_t id_len);

/* the compare-and-set script, see consent_profile.c */
extern const char  CONSENT_PROFILE_SCRIPT[];

/* ------------------------------------------------------------------ */


#endif /* _CONSENT_CORE_H_INCLUDED_ */
