/* Who may call the mock (its keys) and which models it serves (--model). */
#include <strings.h>

#include "worker.h"

int sky__mock_model_known(const sky__mock_worker *m, const char *model)
{
    if (m->cfg.n_models == 0)
        return 1;
    for (size_t i = 0; i < m->cfg.n_models; i++)
        if (strcmp(model, m->cfg.models[i]) == 0)
            return 1;
    return 0;
}

static int key_ok(const sky__mock_worker *m, sky_span key)
{
    for (size_t i = 0; i < m->cfg.n_keys; i++)
        if (sky_span_eq_cstr(key, m->cfg.keys[i]))
            return 1;
    return 0;
}

/* Azure's api-key header, or OpenAI's bearer token; no keys configured: everyone. */
int sky__mock_authorized(const sky__mock_worker *m, const sky_server_req *r)
{
    sky_span v;
    if (m->cfg.n_keys == 0)
        return 1;
    if (sky_server_req_header(r, "api-key", &v) && key_ok(m, v))
        return 1;
    if (sky_server_req_header(r, "authorization", &v) && v.len > 7 &&
        strncasecmp(v.ptr, "Bearer ", 7) == 0)
        return key_ok(m, sky_span_make(v.ptr + 7, v.len - 7));
    return 0;
}
