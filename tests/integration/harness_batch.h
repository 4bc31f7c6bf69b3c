/* Integration-test harness: the batch engine's memory source and store, filled and read. */
#ifndef SKY_TEST_HARNESS_BATCH_H
#define SKY_TEST_HARNESS_BATCH_H

#include <stddef.h>

#include "skyio/batch.h"

/*
 * Add @p n chat lines to @p src and end it: the i-th is "req-i", asks "question i" with
 * max_tokens 5 and names @p model, or @p odd_model for odd i when that is not NULL.
 */
void sky_test_batch_add_lines(sky_batch_source *src, int n, const char *model,
                              const char *odd_model);

/* The records of @p st that succeeded; fails the test when a custom_id is there twice. */
size_t sky_test_batch_count_ok(const sky_batch_store *st);

#endif
