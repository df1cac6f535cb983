
/*
 * The fuzz targets' property check: a failed one aborts, so libFuzzer
 * keeps the input that broke it.
 */

#ifndef _FUZZ_CHECK_H_INCLUDED_
#define _FUZZ_CHECK_H_INCLUDED_


#include <stdio.h>
#include <stdlib.h>


#define CHECK(cond)                                                          \
    if (!(cond)) {                                                           \
        fprintf(stderr, "property failed: %s (%s:%d)\n", #cond, __FILE__,   \
                __LINE__);                                                   \
        abort();                                                             \
    }


#endif /* _FUZZ_CHECK_H_INCLUDED_ */
