/* What the two readers of a Batch line share: the jansson one and the scan beside it. */
#ifndef SKY_JOBS_BATCHLINE_INTERNAL_H
#define SKY_JOBS_BATCHLINE_INTERNAL_H

#include "skyio/batchline.h"

/* Prompt text sits at most this deep: input[] -> item -> content[] -> part. */
#define SKY__ESTIMATE_DEPTH_MAX 4
/* A token id in an input array costs one token: four characters. */
#define SKY__CHARS_PER_TOKEN 4

/* The canonical path for a line's url ("/v1/..."; Azure's form without /v1 too), or NULL. */
const char *sky__batchline_url(sky_span url);
/* ceil(prompt chars / 4) + max_tokens, saturating. */
uint64_t sky__batchline_token_estimate(uint64_t prompt_chars, uint64_t max_tokens);

/*
 * The fast reader: fill @p req from a well-formed line without building a tree; its body is
 * the line's own bytes. Returns 0 when it did; 1 when the line needs the full reader (any
 * error, anything the scan cannot vouch for), with @p req left empty; SKY_ENOMEM.
 */
int sky__batchline_scan(sky_span line, sky_batchline_request *req);

/* sky_batchline_parse without the fast reader: for tests that hold the two side by side. */
int sky__batchline_parse_tree(sky_span line, uint64_t line_no, const sky_batchline_options *opts,
                              sky_batchline_request *out_req, sky_batchline_error *out_err);

#endif
