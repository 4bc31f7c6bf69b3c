/* skyio — the batch engine: requests from a source, through the pipeline, results into a store. */
#ifndef SKYIO_BATCH_H
#define SKYIO_BATCH_H

#include <jansson.h>
#include <uv.h>

#include "ai.h"
#include "batchline.h"
#include "common.h"
#include "error.h"
#include "journal.h"
#include "pipeline.h"
#include "route.h"

/*
 * A batch job. Every line of a *source* becomes a request (an OpenAI Batch JSONL line, or in
 * text mode a prompt), goes through one pipeline (rate limit, adaptive concurrency, retries,
 * circuit breaker) to an AI endpoint, and ends as one record in a *store*: exactly once per
 * custom_id, so a rerun over the same store skips what it holds and does the rest.
 *
 *   sky_batch_new -> sky_batch_start -> events ... -> SKY_BATCH_EVENT_FINISHED -> sky_batch_free
 *
 * The rules the engine keeps:
 * - Reading follows sending: at most max_pending lines are read ahead of their results (and
 *   at most twice the concurrency limit in force, 16 more), and nothing is read or sent
 *   while the store is behind (its append said SKY_EBUSY): the pipeline is held until the
 *   store drains, so what is paid for and not yet written stays bounded.
 * - A refusal of the whole account (401, 403, 429 insufficient_quota) stops the run: what
 *   waits is not sent, and nothing refused is recorded, so the run after the fix does it.
 * - An endpoint that has never answered and cannot be reached (connect, resolve, TLS) stops
 *   the run the same way. One that fails after answering (the breaker opens) makes requests
 *   wait until it answers again. The engine's own timer (every 500 ms) and each call's
 *   result drive these rules; progress events play no part in them.
 * - A request canceled, refused or never sent is not recorded, nor is a result once the
 *   store can no longer write: the summary then calls the run unfinished.
 *
 * Everything runs on the loop given to sky_batch_new; no function may be called from another
 * thread. The engine prints nothing and asks nothing of a terminal: it reports through one
 * event callback.
 */

/** Long-lived: one batch run, from sky_batch_new to sky_batch_free. */
typedef struct sky_batch sky_batch;

/* ---- the source: where the lines come from ---- */

/** A source's next: no line is ready now; the source calls sky_batch_source_ready once one is. */
#define SKY_BATCH_SOURCE_WAIT 1
/** A source's next: there are no more lines. */
#define SKY_BATCH_SOURCE_END 2

/** One input line. Borrowed from the source: valid until its next call to next or close. */
typedef struct sky_batch_source_line {
    sky_span text;   /**< the line, maybe with its "\n" or "\r\n" */
    uint64_t number; /**< 1-based, every line counted (blank and too long ones too) */
    int too_long;    /**< longer than the source's limit: text is empty; recorded as a bad line */
} sky_batch_source_line;

typedef struct sky_batch_source sky_batch_source;

/**
 * A request source. An implementation embeds this struct (first member, say), fills the
 * functions, and hands it to sky_batch_new. The engine calls them on its loop; none is
 * called from inside another.
 */
struct sky_batch_source {
    /**
     * The next line into @p out: 0; SKY_BATCH_SOURCE_WAIT when none is ready yet (call
     * sky_batch_source_ready once one is, from the loop, never from inside next);
     * SKY_BATCH_SOURCE_END when there are no more; or a negative SKY_E code with @p err
     * filled (reading failed: the run stops).
     */
    int (*next)(sky_batch_source *src, sky_batch_source_line *out, sky_error *err);
    /** Optional: the engine will not ask for lines for a while (its window is full, or the
     *  store is behind): a source that reads ahead may stop. */
    void (*pause)(sky_batch_source *src);
    /** Optional: the engine asks for lines again after a pause. */
    void (*resume)(sky_batch_source *src);
    /** Optional: how far the source has got, in bytes of @p out_total (0 when unknown), for
     *  the estimate of lines in all. */
    void (*position)(const sky_batch_source *src, uint64_t *out_done, uint64_t *out_total);
    /** No more calls: release what the source holds. Each implementation says whether this
     *  frees it (the file source) or its own _free does (the memory source). */
    void (*close)(sky_batch_source *src);
    /* Set by the engine (sky_batch_new); the source leaves them alone. */
    void (*on_ready)(void *engine);
    void *engine;
};

/** For a source: a line is ready after next said SKY_BATCH_SOURCE_WAIT. Not from inside next. */
SKY_EXTERN void sky_batch_source_ready(sky_batch_source *src);

/**
 * The file source: the lines of @p path, read in 64 KiB chunks with libuv's fs calls on
 * @p loop, by offset (a rerun finds the same lines at the same places); "-" reads standard
 * input as a stream. A regular file or "-" only: a device may never end, a FIFO without a
 * writer blocks the open, a directory reads as nothing. A line longer than
 * @p max_line_bytes (0: SKY_BATCHLINE_MAX_DEFAULT) comes as too_long. The open is
 * synchronous; call it at start-up. Returns 0 and *out (closing it frees it, a read in
 * progress first), or with @p err filled: SKY_EIO (cannot open or read), SKY_EINVAL (not a
 * regular file: the message names what it is), SKY_ENOMEM.
 */
SKY_EXTERN int sky_batch_file_source_open(uv_loop_t *loop, const char *path, size_t max_line_bytes,
                                          sky_batch_source **out, sky_error *err) SKY_NODISCARD;

/** Nonzero when @p path names the file that file source @p src reads (a link to it, say). */
SKY_EXTERN int sky_batch_file_source_reads(const sky_batch_source *src, const char *path);

/**
 * The memory source: lines given by the caller, copied, handed over in order. Until
 * sky_batch_memory_source_end, a source that has run out says WAIT and wakes the engine
 * at the next add. Closing it does not free it: sky_batch_memory_source_free does.
 * Returns NULL on out of memory.
 */
SKY_EXTERN sky_batch_source *sky_batch_memory_source_new(void);
/** Add one line (copied; its "\n" may be left out). 0 or SKY_ENOMEM; SKY_ESTATE after end. */
SKY_EXTERN int sky_batch_memory_source_add(sky_batch_source *src, sky_span line) SKY_NODISCARD;
/** No more lines will be added. */
SKY_EXTERN void sky_batch_memory_source_end(sky_batch_source *src);
/** Free a memory source (not while an engine still uses it). NULL is a no-op. */
SKY_EXTERN void sky_batch_memory_source_free(sky_batch_source *src);

/* ---- the store: where the results go ---- */

/** A store's append: a record under this custom_id is already there; nothing was added. */
#define SKY_BATCH_STORE_DUP 1

/** One result, in the OpenAI Batch output format. Borrowed for the call that gets it. */
typedef struct sky_batch_record {
    const char *custom_id; /**< NUL-terminated */
    sky_span line;         /**< one JSON object, without a newline */
    int failed;            /**< a failure or a bad input line (a store may keep them apart) */
} sky_batch_record;

typedef struct sky_batch_store sky_batch_store;

/** A store has closed: @p err is NULL when everything it took is kept, else the first
 *  failure; @p unwritten counts records it took and then lost. @p st and @p err are
 *  borrowed until the callback returns. */
typedef void (*sky_batch_store_closed_cb)(sky_batch_store *st, const sky_error *err,
                                          uint64_t unwritten, void *user_data);

/**
 * A result store. An implementation embeds this struct, fills the functions, and hands it to
 * sky_batch_new. The engine calls them on its loop.
 */
struct sky_batch_store {
    /** Nonzero when a record for @p custom_id is kept (or queued to be). */
    int (*is_done)(const sky_batch_store *st, const char *custom_id);
    /**
     * Take one record (copy what it keeps): 0; SKY_BATCH_STORE_DUP; SKY_EBUSY when it is
     * full (nothing taken: call sky_batch_store_drained once there is room again); any other
     * negative SKY_E code when it cannot write at all (the run stops).
     */
    int (*append)(sky_batch_store *st, const sky_batch_record *rec);
    /**
     * Keep everything taken (flush, sync), close, then call @p cb exactly once (it may run
     * inside this call). Each implementation says whether this frees it.
     */
    void (*close)(sky_batch_store *st, sky_batch_store_closed_cb cb, void *user_data);
    /* Set by the engine (sky_batch_new); the store leaves them alone. */
    void (*on_drain)(void *engine);
    void (*on_fail)(void *engine, const sky_error *err);
    void *engine;
};

/** For a store: after an append said SKY_EBUSY, there is room again. */
SKY_EXTERN void sky_batch_store_drained(sky_batch_store *st);
/** For a store: writing failed for good (@p err borrowed for the call): the run stops. */
SKY_EXTERN void sky_batch_store_failed(sky_batch_store *st, const sky_error *err);

/**
 * The journal store: results in @p output, failures too unless @p errors (may be NULL)
 * takes them; a custom_id is done when either holds it. The store takes both journals
 * whatever it returns (on failure it closes them) and replaces their on_error and on_drain
 * (sky_journal_set_handlers). Its close closes both and frees it. Returns 0 and *out,
 * SKY_EINVAL (no output) or SKY_ENOMEM.
 */
SKY_EXTERN int sky_batch_journal_store_new(sky_journal *output, sky_journal *errors,
                                           sky_batch_store **out) SKY_NODISCARD;

/**
 * The journal store over new journals: @p output and, when not NULL, @p errors opened (and
 * scanned: sky_journal_open, synchronous) with the batch's settings: records up to 65 MiB,
 * around the largest reply the client takes, and with @p retry_failed the failed records
 * removed so they are done again. Returns 0 and *out, or the journal's code with @p err
 * saying which file and why (nothing is left open).
 */
SKY_EXTERN int sky_batch_journal_store_open(uv_loop_t *loop, const char *output, const char *errors,
                                            int retry_failed, sky_batch_store **out,
                                            sky_error *err) SKY_NODISCARD;

/** What opening found in the output (@p errors 0) or the errors journal (1) of a journal
 *  store, into @p out: 0, or SKY_EINVAL when @p st has no such journal. */
SKY_EXTERN int sky_batch_journal_store_scan(const sky_batch_store *st, int errors,
                                            sky_journal_stats *out) SKY_NODISCARD;

/**
 * The memory store: records kept in memory, in the order taken. Closing it does not free
 * it: read the records, then sky_batch_memory_store_free. NULL on out of memory.
 */
SKY_EXTERN sky_batch_store *sky_batch_memory_store_new(void);
/** Count @p custom_id as done, as a store left by an earlier run would. 0 or SKY_ENOMEM. */
SKY_EXTERN int sky_batch_memory_store_mark_done(sky_batch_store *st,
                                                const char *custom_id) SKY_NODISCARD;
/** Records taken so far. */
SKY_EXTERN size_t sky_batch_memory_store_count(const sky_batch_store *st);
/** Record @p i (< count) into @p out; its strings are the store's, valid until it is freed.
 *  0, or SKY_EINVAL when out of range. */
SKY_EXTERN int sky_batch_memory_store_get(const sky_batch_store *st, size_t i,
                                          sky_batch_record *out) SKY_NODISCARD;
/** Free a memory store (not while an engine still uses it). NULL is a no-op. */
SKY_EXTERN void sky_batch_memory_store_free(sky_batch_store *st);

/* ---- events ---- */

/** Why the provider refused the account. */
typedef enum sky_batch_refusal {
    SKY_BATCH_REFUSED_NONE = 0,
    SKY_BATCH_REFUSED_CREDENTIALS, /**< 401: the key or token */
    SKY_BATCH_REFUSED_ACCESS,      /**< 403: no access (a missing role, network rules) */
    SKY_BATCH_REFUSED_QUOTA        /**< 429 insufficient_quota: no credit left */
} sky_batch_refusal;

/** What went wrong in the run itself, for SKY_BATCH_EVENT_FAULT. Each stops the run. */
typedef enum sky_batch_fault {
    SKY_BATCH_FAULT_NONE = 0,
    SKY_BATCH_FAULT_SOURCE,      /**< reading the source failed */
    SKY_BATCH_FAULT_START,       /**< a request could not be started (memory, the pipeline) */
    SKY_BATCH_FAULT_RECORD,      /**< the store refused a record (custom_id names it) */
    SKY_BATCH_FAULT_HOLD,        /**< no memory to keep a record while the store is behind */
    SKY_BATCH_FAULT_STORE,       /**< the store failed writing (sky_batch_store_failed) */
    SKY_BATCH_FAULT_STORE_CLOSE, /**< closing the store failed */
    /** the pipeline's credential gave no token at the start: nothing was sent; the error is
     *  the credential's own */
    SKY_BATCH_FAULT_CREDENTIAL
} sky_batch_fault;

/** Where the run stands. */
typedef struct sky_batch_progress {
    uint64_t ok;          /**< recorded successes */
    uint64_t failed;      /**< recorded failures */
    uint64_t skipped;     /**< lines the store already held */
    uint64_t bad_lines;   /**< input lines recorded as errors (bad, duplicate, too long) */
    uint64_t lines_read;  /**< the last line number read */
    uint64_t lines_total; /**< lines in all: known at the end, else estimated from bytes */
    int input_ended;      /**< the source has no more lines */
    uint64_t sending;     /**< requests holding a concurrency slot (on the wire) */
    uint64_t waiting;     /**< requests started and waiting: a slot, the rate, a retry */
    uint64_t tokens_in;   /**< prompt tokens of the successes */
    uint64_t tokens_out;  /**< completion tokens of the successes */
    uint64_t retries;     /**< attempts after the first, over the recorded requests */
    uint64_t responses_429;
    int concurrency;             /**< the concurrency limit now; 0 when off */
    double rpm;                  /**< the rate limiter's pace; 0 while unpaced or off */
    uint64_t rate_limit_wait_ms; /**< time calls spent held by the rate limiter */
    uint64_t elapsed_ms;         /**< since sky_batch_start */
    int endpoint_down;           /**< the breaker is open: requests wait for the endpoint */
} sky_batch_progress;

/** How a run ended. */
typedef struct sky_batch_summary {
    sky_batch_progress progress; /**< the counts at the end */
    uint64_t latency_p50_ms;     /**< the provider's latency (last attempt), not the queueing */
    uint64_t latency_p90_ms;
    uint64_t latency_p99_ms;
    int stopped;        /**< it stopped early: sky_batch_stop, a refusal, unreachable, a fault */
    int fatal;          /**< a fault ended it (results not writable, memory, the source) */
    int refusal;        /**< sky_batch_refusal */
    int unreachable;    /**< the endpoint was never reached */
    int unfinished;     /**< work is left for the next run: lines unread, requests unrecorded */
    uint64_t unwritten; /**< results the store took and then lost to a write error */
} sky_batch_summary;

typedef enum sky_batch_event_kind {
    SKY_BATCH_EVENT_PROGRESS = 1,  /**< every progress_interval_ms: progress */
    SKY_BATCH_EVENT_REFUSED,       /**< refusal, said, advice, error; the run stops */
    SKY_BATCH_EVENT_ENDPOINT_DOWN, /**< error: the last fault; requests wait */
    SKY_BATCH_EVENT_ENDPOINT_UP,   /**< the endpoint answers again */
    SKY_BATCH_EVENT_UNREACHABLE,   /**< error: why; the run stops, nothing more is recorded */
    SKY_BATCH_EVENT_FAULT,         /**< fault, error, custom_id (RECORD); the run stops */
    SKY_BATCH_EVENT_FINISHED       /**< summary: once, last, after the store has closed */
} sky_batch_event_kind;

/** One event. Borrowed, with everything it points to, until the callback returns. A FAULT's
 *  error message is a whole sentence ("cannot record c-7: input/output error; stopping"),
 *  its code the cause's. */
typedef struct sky_batch_event {
    int kind;                           /**< sky_batch_event_kind */
    const sky_batch_progress *progress; /**< PROGRESS */
    int refusal;                        /**< REFUSED: sky_batch_refusal */
    const char *said;   /**< REFUSED: what the provider did ("refused the credentials") */
    const char *advice; /**< REFUSED: what to do ("fix the key or token") */
    int fault;          /**< FAULT: sky_batch_fault */
    /** REFUSED: the reply's error, its message cleared of secrets (sky_redact); ENDPOINT_DOWN,
     *  UNREACHABLE: the last fault; FAULT: see above */
    const sky_error *error;
    const char *custom_id;            /**< FAULT of a record: its custom_id; else NULL */
    const sky_batch_summary *summary; /**< FINISHED */
} sky_batch_event;

/** The engine reports. It may call sky_batch_stop and sky_batch_free (deferred until it
 *  returns). */
typedef void (*sky_batch_event_cb)(sky_batch *b, const sky_batch_event *ev, void *user_data);

/* ---- the engine ---- */

/** Settings of a batch; fill with sky_batch_options_init, then change what you need. */
typedef struct sky_batch_options {
    /**
     * The batch's pipeline profile (sky_batch_options_init): not paced until the provider
     * announces or enforces a limit (then learned, cut by a fifth on a 429); adaptive
     * concurrency from 16 in slow start, at most 1024; retries of OpenAI's statuses, 10;
     * 600 s a try (OpenAI's SDKs wait as long); a breaker that waits instead of failing,
     * opens after 2 s of nothing but failures, and probes after 5 s up to a minute; a 503
     * or 529 among successes is load shed (overload_is_rate); OpenAI's reply rules. Each
     * reply is read once, by the engine (its usage, and whether it is JSON). Auth comes
     * from the endpoint; set credential (and scope, default the endpoint's Entra ID scope)
     * for an Azure endpoint without a key: the engine then gets a token before it reads a
     * line, and stops with SKY_BATCH_FAULT_CREDENTIAL when there is none.
     */
    sky_pipeline_options pipeline;
    /** A fixed number of requests in flight; 0 (default): the limiter's adaptive limit. */
    int concurrency;
    /** The concurrency limiter over the profile's: SKY_LIMITER_GRADIENT (default: slow start,
     *  then the gradient), SKY_LIMITER_AIMD (no slow start), or SKY_LIMITER_FIXED (at
     *  pipeline.concurrency.initial, or at concurrency when it is set). */
    int limiter;
    sky_batchline_options line; /**< line limit; text mode's model, system, temperature... */
    int text;                   /**< 1: each line is a prompt (sky_batchline_text_parse) */
    /** The endpoint, or else deployments (one of the two); borrowed, must outlive the batch:
     *  URLs and auth headers. Only read. */
    sky_ai_endpoint *endpoint;
    /**
     * Several deployments instead of one endpoint (`skyio batch --config gateway.json`; see
     * skyio/route.h), copied by sky_batch_new. Each gets its own pipeline of the profile
     * above (its own learned limits, concurrency limit and breaker; a deployment's rpm, tpm,
     * concurrency or max_concurrency over the profile's), without retries of its own. A line
     * goes to the model its body names (or the only model) and there to the deployment with
     * the most headroom, by weight; a failure another deployment could mend (429, overload,
     * 5xx, timeout, reset) moves it to another one, then to the model's fallbacks; when
     * every one failed it waits its backoff (a Retry-After honoured) and goes round again.
     * pipeline.retry.max_retries bounds its attempts over all of them. A line whose model no
     * deployment serves is recorded as a bad line. Azure deployments without a key take
     * tokens from pipeline.credential. Records are in the same Batch format (the reply's body
     * says which model answered).
     */
    const sky_route_deployment *deployments;
    size_t n_deployments;
    const sky_route_fallback *fallbacks; /**< borrowed for sky_batch_new */
    size_t n_fallbacks;
    /** Lines read and not yet finished, at most; 0 (default): 4096, or concurrency plus
     *  1024 when that is more. Fewer while the concurrency limit is low: twice it, 16 more. */
    uint64_t max_pending;
    uint64_t progress_interval_ms; /**< PROGRESS events this often; 0 (default): none */
    /**
     * When set, a line a second of what the run did (requests and tokens a second, on the
     * wire and waiting, the limits, 429s, failures by kind, latency percentiles, the slowest
     * calls) is appended to this file (a journal: a rerun goes on after the last run's
     * time), for `skyio report`. Borrowed for sky_batch_new. NULL (default): none.
     */
    const char *timeline_path;
    /** A graceful stop waits this long for what is on the wire, then stops at once;
     *  0: no limit. Default 30000. */
    uint64_t stop_grace_ms;
    sky_batch_event_cb on_event; /**< optional (but FINISHED is how the run's end is known) */
    void *user_data;
} sky_batch_options;

/** Every default: the profile above, Batch JSONL lines, no endpoint, no events. */
SKY_EXTERN void sky_batch_options_init(sky_batch_options *o);

/**
 * A batch on @p loop, sending through @p client (borrowed: it must outlive the batch).
 * @p o is copied (its pointers stay borrowed). The batch takes @p source and @p store
 * whatever this returns: it closes them when the run ends, in sky_batch_free when it never
 * ran, or here on failure (a store's close may need the loop to run to finish). Returns 0
 * and *out (free it with sky_batch_free), or SKY_EINVAL (no endpoint or deployments, both, a
 * bad deployment, no source or store),
 * SKY_ENOMEM or the pipeline's code, with @p err filled.
 */
SKY_EXTERN int sky_batch_new(uv_loop_t *loop, sky_http_client *client, const sky_batch_options *o,
                             sky_batch_source *source, sky_batch_store *store, sky_batch **out,
                             sky_error *err) SKY_NODISCARD;

/**
 * Start reading and sending. Events follow from the loop, never from inside this call;
 * FINISHED comes exactly once, last. Returns 0, or SKY_ESTATE when already started.
 */
SKY_EXTERN int sky_batch_start(sky_batch *b) SKY_NODISCARD;

/** How to stop. */
typedef enum sky_batch_stop_mode {
    /** Send nothing new (what waits for a slot, the rate or a retry is canceled, and left
     *  for the next run), let what is on the wire finish and be recorded, for at most
     *  stop_grace_ms; then as NOW. */
    SKY_BATCH_STOP_GRACEFUL = 0,
    /** Cancel everything, on the wire too: nothing more is recorded. */
    SKY_BATCH_STOP_NOW
} sky_batch_stop_mode;

/** What a stop found. */
typedef struct sky_batch_stop_info {
    uint64_t on_wire;  /**< requests left to finish (GRACEFUL) */
    uint64_t canceled; /**< requests canceled before they were sent */
} sky_batch_stop_info;

/**
 * Stop the run (@p mode: sky_batch_stop_mode); FINISHED follows from the loop. @p out may be
 * NULL. Allowed from an event callback. Returns 0, or SKY_ESTATE when the batch has not
 * started or has finished.
 */
SKY_EXTERN int sky_batch_stop(sky_batch *b, int mode, sky_batch_stop_info *out);

/** The counts now into @p out (zeros before the start). */
SKY_EXTERN void sky_batch_get_progress(const sky_batch *b, sky_batch_progress *out);

/**
 * Free the batch. A run in progress is stopped at once first, and its FINISHED event still
 * comes, from the loop, before the memory goes; keep running the loop. Allowed from an
 * event callback (deferred until it returns). The memory of the engine's timers goes when
 * the loop has closed them. NULL is a no-op.
 */
SKY_EXTERN void sky_batch_free(sky_batch *b);

/**
 * The progress as one line for a person, appended to @p out (no newline): "120/1000 ETA
 * 0m12s  120 done (118 ok, 2 failed, 0 skipped, 0 bad lines)  55.0 req/s  ...  retries 3",
 * and "  ENDPOINT DOWN, waiting" when @p running and the endpoint is down. The line
 * `skyio batch` prints. 0, or SKY_ENOMEM / SKY_ETOOBIG (past out's cap).
 */
SKY_EXTERN int sky_batch_progress_text(const sky_batch_progress *p, int running,
                                       sky_buf *out) SKY_NODISCARD;

/**
 * Where a batch of @p input writes its results unless told: @p input with ".jsonl" replaced
 * by ".out.jsonl" (or ".out.jsonl" added), so that a rerun finds them. A new string (free
 * it), NULL on out of memory.
 */
SKY_EXTERN char *sky_batch_default_output(const char *input);

/**
 * The summary as the JSON `skyio batch --json` prints (new reference; NULL on out of
 * memory): ok, failed, skipped, bad_lines, seconds, requests_per_second, tokens {in, out},
 * latency_ms {p50, p90, p99}, retries, responses_429, rate_limit_wait_ms, interrupted, and
 * when they hold: credentials_refused, access_denied, quota_exhausted, endpoint_unreachable,
 * unfinished, unwritten.
 */
SKY_EXTERN json_t *sky_batch_summary_json(const sky_batch_summary *s);

#endif
