/*
 * `skyio mock`: an OpenAI- and Azure-OpenAI-compatible server for tests,
 * benchmarks and offline demos. Replies have the real shape and are
 * generated from the request, so the same request gets the same words.
 *
 * This file starts and stops it: one worker (a loop and a server) per thread.
 * The routes are in routes.c; a model call's path from request to reply in
 * call.c, its replies in plain.c and stream.c, its failures in faults.c.
 */
#include <stdlib.h>

#include "worker.h"

static int worker_listen(sky__mock_worker *w, int port, sky_error *err)
{
    sky_server_options so;
    const sky_mock_config *c = &w->cfg;
    sky_server_options_init(&so);
    so.host = c->host;
    so.port = port;
    so.tls_cert_file = c->tls_cert_file;
    so.tls_key_file = c->tls_key_file;
    so.max_request_body = c->max_body;
    so.reuse_port = w->owner->n_workers > 1;
    int rc = sky_server_new(w->loop, &so, &w->srv, err);
    if (rc == 0 && (rc = sky__mock_routes_add(w)) < 0)
        sky_error_set(err, rc, "cannot add routes");
    if (rc == 0)
        rc = sky_server_listen(w->srv, err);
    return rc;
}

static void on_worker_down(sky_server *s, void *ud)
{
    sky__mock_worker *w = ud;
    (void)s;
    if (w->has_thread) {
        uv_close((uv_handle_t *)&w->wake, NULL);
        uv_stop(w->loop);
    }
    /* Wakes coalesce: the count says how many are down. */
    __atomic_fetch_add(&w->owner->workers_down, 1, __ATOMIC_ACQ_REL);
    uv_async_send(&w->owner->down);
}

static void on_wake(uv_async_t *a)
{
    sky__mock_worker *w = a->data;
    sky_server_shutdown(w->srv, w->owner->grace_ms, on_worker_down, w);
}

static void worker_main(void *arg)
{
    sky__mock_worker *w = arg;
    uv_run(w->loop, UV_RUN_DEFAULT);
    /* down: free the server on its own loop, and let its handles close */
    sky_server_free(w->srv);
    w->srv = NULL;
    for (int i = 0; i < 8; i++)
        uv_run(w->loop, UV_RUN_NOWAIT);
}

static void on_all_down(uv_async_t *a)
{
    sky_mock *m = a->data;
    if (__atomic_load_n(&m->workers_down, __ATOMIC_ACQUIRE) < m->n_workers)
        return;
    void (*cb)(sky_mock *, void *) = m->shutdown_cb;
    m->shutdown_cb = NULL;
    if (cb)
        cb(m, m->shutdown_ud);
}

static void worker_init(sky_mock *m, sky__mock_worker *w, int index)
{
    w->owner = m;
    w->index = index;
    w->cfg = m->cfg;
    w->rng = m->cfg.seed + (uint64_t)index * 0x9e3779b97f4a7c15ull;
}

static int start_threads(sky_mock *m, sky_error *err)
{
    int port = sky_server_port(m->workers[0].srv);
    for (int i = 1; i < m->n_workers; i++) {
        sky__mock_worker *w = &m->workers[i];
        if (uv_loop_init(&w->own_loop) != 0)
            return sky_error_set(err, SKY_EINTERNAL, "cannot make a loop for thread %d", i);
        w->loop = &w->own_loop;
        uv_async_init(w->loop, &w->wake, on_wake);
        w->wake.data = w;
        int rc = worker_listen(w, port, err);
        if (rc < 0)
            return rc;
        if (uv_thread_create(&w->thread, worker_main, w) != 0)
            return sky_error_set(err, SKY_EINTERNAL, "cannot start thread %d", i);
        w->has_thread = 1;
    }
    return 0;
}

int sky_mock_start(uv_loop_t *loop, const sky_mock_config *c, sky_mock **out_mock, sky_error *err)
{
    int n = c->threads > 0 ? c->threads : 1;
    sky_mock *m = calloc(1, sizeof(*m));
    sky__mock_worker *ws = calloc((size_t)n, sizeof(*ws));
    if (m == NULL || ws == NULL) {
        free(m);
        free(ws);
        return sky_error_set(err, SKY_ENOMEM, "out of memory");
    }
    m->loop = loop;
    m->cfg = *c;
    m->n_workers = n;
    m->workers = ws;
    if ((m->arm = sky__mock_arm_new(&c->arm, c->tls_cert_file != NULL, c->host)) == NULL ||
        (m->identity = sky__mock_identity_new(&c->identity, c->tls_cert_file != NULL)) == NULL) {
        sky__mock_arm_free(m->arm);
        free(m);
        free(ws);
        return sky_error_set(err, SKY_ENOMEM, "out of memory");
    }
    uv_mutex_init(&m->limiter_lock);
    sky__mock_limiter_init(&m->limiter, c->rpm, c->tpm, c->window_ms);
    uv_async_init(loop, &m->down, on_all_down);
    m->down.data = m;
    for (int i = 0; i < n; i++)
        worker_init(m, &ws[i], i);
    ws[0].loop = loop;
    int rc = worker_listen(&ws[0], c->port, err);
    if (rc == 0 && n > 1)
        rc = start_threads(m, err);
    if (rc < 0) {
        sky_mock_free(m);
        return rc;
    }
    *out_mock = m;
    return 0;
}

int sky_mock_port(const sky_mock *m)
{
    return sky_server_port(m->workers[0].srv);
}

void sky_mock_shutdown(sky_mock *m, uint64_t grace_ms, void (*cb)(sky_mock *, void *),
                       void *user_data)
{
    m->shutdown_cb = cb;
    m->shutdown_ud = user_data;
    m->grace_ms = grace_ms;
    __atomic_store_n(&m->workers_down, 0, __ATOMIC_RELEASE);
    sky_server_shutdown(m->workers[0].srv, grace_ms, on_worker_down, &m->workers[0]);
    for (int i = 1; i < m->n_workers; i++)
        if (m->workers[i].has_thread)
            uv_async_send(&m->workers[i].wake);
}

void sky_mock_free(sky_mock *m)
{
    if (m == NULL)
        return;
    for (int i = 1; i < m->n_workers; i++) {
        sky__mock_worker *w = &m->workers[i];
        if (w->has_thread) {
            uv_thread_join(&w->thread);
            uv_loop_close(&w->own_loop);
        } else if (w->loop) {
            /* set up but never started: tear down here */
            sky_server_free(w->srv);
            uv_close((uv_handle_t *)&w->wake, NULL);
            uv_run(w->loop, UV_RUN_DEFAULT);
            uv_loop_close(w->loop);
        }
    }
    sky_server_free(m->workers[0].srv);
    for (int i = 0; i < m->n_workers; i++)
        sky__mock_json_name_free(&m->workers[i].model_json);
    uv_close((uv_handle_t *)&m->down, NULL);
    uv_mutex_destroy(&m->limiter_lock);
    sky__mock_arm_free(m->arm);
    sky__mock_identity_free(m->identity);
    free(m->workers);
    free(m);
}
