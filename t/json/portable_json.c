
/*
 * The scanner of ngx_consent_module/consent_json.c built a second time
 * without SSE2 (its portable word-at-a-time string loop), under other
 * names, so that run_corpus checks both paths on an x86-64 machine.
 */

#define CONSENT_JSON_NO_SIMD  1

#define consent_json_scan     portable_json_scan
#define consent_json_str_eq   portable_json_str_eq
#define consent_json_hex4     portable_json_hex4
#define consent_utf8_len      portable_utf8_len
#define CONSENT_JSON_ENOMEM   PORTABLE_JSON_ENOMEM

#include "consent_json.c"
