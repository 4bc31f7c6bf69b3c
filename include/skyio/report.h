/* skyio — a batch run's report: one self-contained HTML file with charts over time. */
#ifndef SKYIO_REPORT_H
#define SKYIO_REPORT_H

#include <stddef.h>
#include <stdio.h>

#include "common.h"
#include "error.h"

/**
 * What a report is made from: a batch's output file (OpenAI Batch output JSONL), its
 * errors file when the run had one, and the timeline the engine wrote beside the output
 * (sky_batch_options.timeline_path). Paths are borrowed for the call.
 */
typedef struct sky_report_options {
    const char *output;   /**< required: the results */
    const char *errors;   /**< optional: the failures and bad lines, when kept apart */
    const char *timeline; /**< optional: default OUTPUT.timeline.jsonl when that exists */
    const char *title;    /**< optional: default "skyio batch: OUTPUT" */
    size_t examples;      /**< examples shown per failure code; default 3 */
    size_t slowest;       /**< slowest requests listed; default 10 */
} sky_report_options;

/** Set every default (no paths). */
SKY_EXTERN void sky_report_options_init(sky_report_options *o);

/**
 * Write the report of @p o to @p out as one HTML file that needs no network to open: the
 * summary, charts drawn as inline SVG (throughput, in flight against the limits, 429s and
 * failures, latency percentiles, each over the run's time), the failures grouped by code
 * with examples, and the slowest requests. Every text from the files is escaped.
 * Reads the files with blocking calls: call it from a command, not from a loop callback.
 * Returns 0; SKY_EIO (a file cannot be read or @p out written: @p err names which),
 * SKY_EINVAL (no output given), SKY_ENOMEM. Lines that are not JSON are counted and
 * shown, not fatal.
 */
SKY_EXTERN int sky_report_write_html(const sky_report_options *o, FILE *out,
                                     sky_error *err) SKY_NODISCARD;

/** The default timeline path of @p output ("OUTPUT.timeline.jsonl"); free() it. NULL on
 *  out of memory. */
SKY_EXTERN char *sky_report_timeline_path(const char *output);

#endif
