/* The mock's rate limiter: fixed short windows, requests and tokens. */
#include "internal.h"

void sky__mock_limiter_init(sky__mock_limiter *l, int64_t rpm, int64_t tpm, int64_t window_ms)
{
    memset(l, 0, sizeof(*l));
    l->window_ms = window_ms > 0 ? window_ms : 1000;
    l->rpm = rpm;
    l->tpm = tpm;
    if (rpm > 0) {
        l->req_allow = rpm * l->window_ms / 60000;
        if (l->req_allow < 1)
            l->req_allow = 1;
    }
    if (tpm > 0) {
        l->tok_allow = tpm * l->window_ms / 60000;
        if (l->tok_allow < 1)
            l->tok_allow = 1;
    }
}

/* Note a request that passed, in its second's slot. */
static void minute_add(sky__mock_limiter *l, uint64_t now_ms, int64_t tokens)
{
    uint64_t sec = now_ms / 1000 + 1; /* + 1: slot time 0 means empty */
    size_t i = (size_t)(sec % 60);
    if (l->sec_at[i] != sec) {
        l->sec_at[i] = sec;
        l->sec_req[i] = 0;
        l->sec_tok[i] = 0;
    }
    l->sec_req[i]++;
    l->sec_tok[i] += tokens;
}

/* What passed in the last minute, and when the oldest of it leaves it. */
static void minute_sum(const sky__mock_limiter *l, uint64_t now_ms, sky__mock_verdict *out)
{
    uint64_t sec = now_ms / 1000 + 1, oldest = 0;
    int64_t req = 0, tok = 0;
    for (size_t i = 0; i < 60; i++) {
        if (l->sec_at[i] == 0 || l->sec_at[i] + 60 <= sec)
            continue;
        req += l->sec_req[i];
        tok += l->sec_tok[i];
        if (oldest == 0 || l->sec_at[i] < oldest)
            oldest = l->sec_at[i];
    }
    out->minute_req_left = l->rpm > req ? l->rpm - req : 0;
    out->minute_tok_left = l->tpm > tok ? l->tpm - tok : 0;
    out->minute_reset_ms = oldest ? (int64_t)((oldest - 1 + 60) * 1000 - now_ms) : 0;
}

void sky__mock_limiter_take(sky__mock_limiter *l, uint64_t now_ms, int64_t tokens,
                            sky__mock_verdict *out)
{
    if (now_ms >= l->window_start + (uint64_t)l->window_ms) {
        l->window_start = now_ms - (now_ms % (uint64_t)l->window_ms);
        l->req_used = 0;
        l->tok_used = 0;
    }
    memset(out, 0, sizeof(*out));
    out->reset_ms = (int64_t)(l->window_start + (uint64_t)l->window_ms - now_ms);
    int req_ok = l->req_allow == 0 || l->req_used < l->req_allow;
    /* A request larger than a whole window's tokens still passes in a fresh
     * window; otherwise it could never pass at all. */
    int tok_ok = l->tok_allow == 0 || l->tok_used + tokens <= l->tok_allow || l->tok_used == 0;
    out->allowed = req_ok && tok_ok;
    out->by_tokens = req_ok && !tok_ok;
    if (out->allowed) {
        l->req_used++;
        l->tok_used += tokens;
        minute_add(l, now_ms, tokens);
    } else {
        out->retry_ms = out->reset_ms > 0 ? out->reset_ms : 1;
    }
    out->req_left = l->req_allow ? l->req_allow - l->req_used : -1;
    out->tok_left = l->tok_allow ? l->tok_allow - l->tok_used : -1;
    if (out->tok_left < -1)
        out->tok_left = 0;
    minute_sum(l, now_ms, out);
}
