/*
 * The one place a model call's outcome is recorded, once per call, whatever ended it: the
 * metrics count it, the key's use today grows by its tokens and cost (daily.c), the usage
 * store keeps its record and the access log (when there is one) writes its line. And the call's
 * request id: the client's x-request-id when it sent a sane one, else a new one; it goes
 * upstream and back to the client.
 */
#include "skyio/rand.h"
#include "internal.h"
#include "store/store.h"

/* Under the lock: the call's tokens and cost in its key's use today; an unpriced call
 * counted. */
static void count_use(sky_gateway *g, const gw_record *r)
{
    if (r->model && !r->priced && r->used.total > 0)
        sky__gw_shared_usage_counts(g->shared)->unpriced++;
    if (r->budget == NULL)
        return;
    int64_t in = r->used.prompt > 0 ? r->used.prompt : 0;
    int64_t out = r->used.completion > 0 ? r->used.completion : 0;
    int64_t tokens = in + out > 0 ? in + out : r->used.total;
    sky__gw_daily_add(r->budget, sky__store_now_ms(), tokens, r->cost);
}

void sky__gw_record(sky_gateway *g, const gw_record *r)
{
    sky__gw_shared_lock(g->shared);
    sky__gw_metrics_count(sky__gw_shared_metrics(g->shared), r);
    sky__gw_history_count(sky__gw_shared_history(g->shared), r, uv_hrtime() / 1000000);
    count_use(g, r);
    sky__gw_shared_unlock(g->shared);
    sky__gw_usage_record(g, r);
    if (g->access_log)
        sky__gw_access_log_write(g->access_log, r);
}

/* An id a log can hold as it is: 1 to GW_REQUEST_ID_MAX of letters, digits and "-_.:/+=" */
static int sane(sky_span v)
{
    if (v.len == 0 || v.len > GW_REQUEST_ID_MAX)
        return 0;
    for (size_t i = 0; i < v.len; i++) {
        char c = v.ptr[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 strchr("-_.:/+=", c) != NULL;
        if (!ok || c == '\0')
            return 0;
    }
    return 1;
}

void sky__gw_request_id(sky_server_req *r, char out[GW_REQUEST_ID_MAX + 1])
{
    sky_span v;
    if (sky_server_req_header(r, "x-request-id", &v) && sane(v)) {
        memcpy(out, v.ptr, v.len);
        out[v.len] = '\0';
    } else {
        sky_rand_uuid(out);
    }
    sky_server_add_header(r, "x-request-id", sky_span_cstr(out));
}
