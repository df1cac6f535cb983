#ifndef _GEN_BATCH_H_INCLUDED_
#define _GEN_BATCH_H_INCLUDED_

#include <stddef.h>

#define GEN_CATEGORIES    20
#define GEN_DESTINATIONS  10

size_t gen_event(char *p, unsigned i, unsigned pad);
size_t gen_batch(char *p, size_t cap, unsigned nevents);

#endif
