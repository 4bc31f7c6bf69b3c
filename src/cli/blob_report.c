/* `skyio blob`: what it prints: failures, the progress line and the summary. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "cmd_blob.h"

/* ---- saying what failed ---- */

void sky_cli_blob_print_err(const char *what, const sky_error *err)
{
    char line[512];
    fprintf(stderr, "skyio blob: %s: %s\n", what, sky_error_format(err, line, sizeof(line)));
}

void sky_cli_blob_say_unreachable(const sky_error *err)
{
    char line[512];
    fprintf(stderr,
            "skyio blob: cannot reach the endpoint: %s\n"
            "skyio blob: stopped; nothing was transferred. Check the endpoint (connection "
            "string or --endpoint), the network or the TLS certificates, and run again.\n",
            sky_error_format(err, line, sizeof(line)));
}

/* A command of one request failed: say why and choose the exit code. */
void sky_cli_blob_one_request_failed(sky_cli_blob_app *a, const char *what, const sky_error *err)
{
    int code = err->code;
    if ((code == SKY_ECONNECT || code == SKY_ERESOLVE || code == SKY_ETLS) &&
        sky_blob_client_answered(a->blob) == 0)
        sky_cli_blob_say_unreachable(
            err); /* never reached: the URL, the host or the certificates */
    else
        sky_cli_blob_print_err(what, err);
    int start = code == SKY_EAUTH || code == SKY_ECONNECT || code == SKY_ERESOLVE ||
                code == SKY_ETLS || err->http_status == 401 || err->http_status == 403 ||
                strcmp(err->service_code, "ContainerNotFound") == 0;
    a->exit_code = start ? SKY_EXIT_START : SKY_EXIT_FAILED;
}

/* ---- progress and summary ---- */

static void human(double v, char *out, size_t len)
{
    const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (v >= 1024 && u < 4)
        v /= 1024, u++;
    snprintf(out, len, u ? "%.1f %s" : "%.0f %s", v, units[u]);
}

void sky_cli_blob_on_progress(sky_blob_folder *fo, const sky_blob_folder_stats *st, void *ud)
{
    (void)fo, (void)ud;
    if (st->files_total == 0)
        return;
    double secs = (double)st->elapsed_ms / 1000.0;
    double rate = secs > 0 ? (double)st->bytes_done / secs : 0;
    char hb[32], ht[32], hr[32], eta[32] = "-";
    human((double)st->bytes_done, hb, sizeof(hb));
    human((double)st->bytes_total, ht, sizeof(ht));
    human(rate, hr, sizeof(hr));
    if (rate > 0 && st->bytes_total > st->bytes_done)
        snprintf(eta, sizeof(eta), "%.0fs", (double)(st->bytes_total - st->bytes_done) / rate);
    fprintf(stderr, "\r\033[K%zu/%zu files  %s / %s  %s/s  ETA %s", st->files_finished,
            st->files_total, hb, ht, hr, eta);
    fflush(stderr);
}

void sky_cli_blob_summary(sky_cli_blob_app *a, const sky_blob_folder_stats *st)
{
    double secs = (double)st->elapsed_ms / 1000.0;
    if (a->tty)
        fprintf(stderr, "\r\033[K");
    for (size_t i = 0; i < sky_blob_folder_count(a->folder); i++) {
        const sky_blob_folder_item *it = sky_blob_folder_item_at(a->folder, i);
        if (it->state == SKY_BLOB_ITEM_FAILED)
            fprintf(stderr, "failed: %s: %s\n", it->name, it->error);
    }
    const char *what = a->verb == V_PUT ? "uploaded" : a->verb == V_GET ? "downloaded" : "deleted";
    if (a->f.json) {
        printf("{\"%s\":%zu,\"skipped\":%zu,\"failed\":%zu,\"rolled_back\":%zu,\"bytes\":%" PRId64
               ",\"seconds\":%.3f}\n",
               what, st->done, st->skipped, st->failed, st->rolled_back, st->bytes_done, secs);
    } else {
        char hb[32];
        human((double)st->bytes_done, hb, sizeof(hb));
        fprintf(stderr, "%s %zu file(s), %s in %.1fs; %zu unchanged, %zu failed", what, st->done,
                hb, secs, st->skipped, st->failed);
        if (st->rollback)
            fprintf(stderr, "; rolled back %zu", st->rolled_back);
        fputc('\n', stderr);
    }
    if (st->failed > 0)
        a->exit_code = SKY_EXIT_FAILED;
}
