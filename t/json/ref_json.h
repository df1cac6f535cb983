#ifndef _REF_JSON_H_INCLUDED_
#define _REF_JSON_H_INCLUDED_

#include "consent_core.h"

int ref_json_scan(consent_json_t *js, const unsigned char *p, size_t len,
    consent_alloc_pt alloc, void *ctx);
int ref_json_str_eq(const unsigned char *base, const consent_json_tok_t *t,
    const char *s, size_t n);

#endif
