
/*
 * Generates the benchmark input shared by bench_core.c and
 * bench_core.lua: realistic Segment batches with consent objects over
 * 20 categories, mixed consent.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gen_batch.h"


static unsigned long  seed = 42;


static unsigned
rnd(void)
{
    seed = seed * 6364136223846793005UL + 1442695040888963407UL;
    return (unsigned) (seed >> 33);
}


/* one event of about 200 bytes of payload plus its consent object */
size_t
gen_event(char *p, unsigned i, unsigned pad)
{
    char      *s = p;
    unsigned   c;

    if (i % 3 == 2) {
        s += sprintf(s, "{\"type\":\"identify\",\"userId\":\"user-%u\","
                        "\"traits\":{\"email\":\"user%u@example.com\","
                        "\"plan\":\"pro\",\"logins\":%u}", i, i, rnd() % 100);
    } else {
        s += sprintf(s, "{\"type\":\"track\",\"anonymousId\":"
                        "\"a1b2c3d4-%08x\",\"event\":\"Product Viewed\","
                        "\"properties\":{\"product_id\":\"sku-%u\","
                        "\"price\":%u.99,\"currency\":\"EUR\","
                        "\"name\":\"Caf\\u00e9 grinder\"}",
                     rnd(), i, rnd() % 500);
    }

    if (pad) {
        s += sprintf(s, ",\"description\":\"");
        memset(s, 'x', pad);
        s += pad;
        *s++ = '"';
    }

    s += sprintf(s, ",\"messageId\":\"msg-%u-%08x\",\"timestamp\":"
                    "\"2026-11-23T09:00:00.000Z\",\"context\":{\"ip\":"
                    "\"203.0.113.7\",\"library\":{\"name\":\"analytics.js\","
                    "\"version\":\"2.11.0\"},\"consent\":{"
                    "\"categoryPreferences\":{", i, rnd());

    for (c = 1; c <= GEN_CATEGORIES; c++) {
        /* mostly consented, some users decline a few categories */
        s += sprintf(s, "%s\"C%04u\":%s", c > 1 ? "," : "", c,
                     (rnd() % 8) ? "true" : "false");
    }

    s += sprintf(s, "}}}");

    if (i % 10 == 0) {
        s += sprintf(s, ",\"integrations\":{\"dest%u\":false}", rnd() % 10);
    }

    *s++ = '}';
    *s = '\0';

    return (size_t) (s - p);
}


size_t
gen_batch(char *p, size_t cap, unsigned nevents)
{
    char      *s = p;
    unsigned   i;

    s += sprintf(s, "{\"batch\":[");

    for (i = 0; i < nevents && (size_t) (s - p) + 4096 < cap; i++) {
        if (i) {
            *s++ = ',';
        }

        s += gen_event(s, i, 0);
    }

    s += sprintf(s, "],\"writeKey\":\"wk_123\",\"sentAt\":"
                    "\"2026-11-23T09:00:01.000Z\"}");

    return (size_t) (s - p);
}
