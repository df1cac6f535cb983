
/*
 * Policy index: hash tables over category ids and destination names,
 * built once per configuration, so routing costs one probe per key of
 * an event's categoryPreferences and integrations objects.
 */

#include <string.h>

#include "consent_core.h"


static uint32_t
hash(const unsigned char *p, size_t n)
{
    uint32_t  h = 2166136261u;

    while (n--) {
        h = (h ^ *p++) * 16777619u;
    }

    return h;
}


static uint16_t *
build(const consent_str_t *names, size_t n, size_t stride, size_t *mask,
    consent_alloc_pt alloc, void *ctx)
{
    size_t                size, i, j;
    uint16_t             *t;
    const consent_str_t  *s;

    for (size = 8; size < n * 2; size *= 2) { /* void */ }

    t = alloc(ctx, size * sizeof(uint16_t));
    if (t == NULL) {
        return NULL;
    }

    memset(t, 0, size * sizeof(uint16_t));

    for (i = 0; i < n; i++) {
        s = (const consent_str_t *) ((const char *) names + i * stride);
        j = hash((const unsigned char *) s->data, s->len) & (size - 1);

        while (t[j]) {
            j = (j + 1) & (size - 1);
        }

        t[j] = (uint16_t) (i + 1);
    }

    *mask = size - 1;
    return t;
}


int
consent_policy_prepare(consent_policy_t *p, consent_alloc_pt alloc,
    void *ctx)
{
    p->cat_index = build(p->categories, p->ncategories,
                         sizeof(consent_str_t), &p->cat_mask, alloc, ctx);

    p->dest_index = build(p->ndests ? &p->dests[0].name : NULL, p->ndests,
                          sizeof(consent_dest_t), &p->dest_mask, alloc, ctx);

    return (p->cat_index && p->dest_index) ? 0 : -1;
}


static long
lookup(const uint16_t *t, size_t mask, const consent_str_t *names,
    size_t stride, const unsigned char *key, size_t n)
{
    size_t                j;
    const consent_str_t  *s;

    j = hash(key, n) & mask;

    while (t[j]) {
        s = (const consent_str_t *) ((const char *) names
                                     + (t[j] - 1) * stride);

        if (s->len == n && memcmp(s->data, key, n) == 0) {
            return t[j] - 1;
        }

        j = (j + 1) & mask;
    }

    return -1;
}


/* the index of the category (or destination) a key names, or -1 */

long
consent_policy_category(const consent_policy_t *p, const unsigned char *b,
    const consent_json_tok_t *key)
{
    size_t  i;

    /* escaped keys, and policies without an index, compare one by one */
    if (!key->escaped && p->cat_index != NULL) {
        return lookup(p->cat_index, p->cat_mask, p->categories,
                      sizeof(consent_str_t), b + key->start + 1,
                      key->end - key->start - 2);
    }

    for (i = 0; i < p->ncategories; i++) {
        if (consent_json_str_eq(b, key, p->categories[i].data,
                                p->categories[i].len))
        {
            return (long) i;
        }
    }

    return -1;
}


long
consent_policy_dest(const consent_policy_t *p, const unsigned char *b,
    const consent_json_tok_t *key)
{
    size_t  i;

    if (!key->escaped && p->dest_index != NULL) {
        return lookup(p->dest_index, p->dest_mask, &p->dests[0].name,
                      sizeof(consent_dest_t), b + key->start + 1,
                      key->end - key->start - 2);
    }

    for (i = 0; i < p->ndests; i++) {
        if (consent_json_str_eq(b, key, p->dests[i].name.data,
                                p->dests[i].name.len))
        {
            return (long) i;
        }
    }

    return -1;
}


long
consent_policy_find(const consent_policy_t *p, const char *id, size_t len)
{
    size_t  i;

    if (p->cat_index != NULL) {
        return lookup(p->cat_index, p->cat_mask, p->categories,
                      sizeof(consent_str_t), (const unsigned char *) id, len);
    }

    for (i = 0; i < p->ncategories; i++) {
        if (p->categories[i].len == len
            && memcmp(p->categories[i].data, id, len) == 0)
        {
            return (long) i;
        }
    }

    return -1;
}
