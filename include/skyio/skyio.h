/* skyio — the umbrella header: rate-limit-aware asynchronous calls to cloud and AI APIs. */
#ifndef SKYIO_SKYIO_H
#define SKYIO_SKYIO_H

#define SKYIO_VERSION "0.1.0"

#include "common.h"
#include "error.h"
#include "buf.h"
#include "clock.h"
#include "rand.h"
#include "log.h"
#include "json.h"
#include "metrics.h"
#include "loop.h"
#include "headers.h"
#include "sse.h"
#include "http.h"
#include "retry.h"
#include "ratelimit.h"
#include "concurrency.h"
#include "breaker.h"
#include "credential.h"
#include "pipeline.h"
#include "ai.h"
#include "idset.h"
#include "journal.h"
#include "batchline.h"
#include "batch.h"
#include "report.h"
#include "server.h"
#include "gateway.h"
#include "arm.h"
#include "storage.h"
#include "blob.h"
#include "blob_transfer.h"
#include "queue.h"

#endif
