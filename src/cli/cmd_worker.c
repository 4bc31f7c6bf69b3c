/* `skyio worker --redis URL --job NAME`: one more machine working on a batch kept in Redis. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const char usage[] =
    "usage: skyio worker --redis URL --job NAME [options]\n"
    "\n"
    "Work on a batch job that `skyio batch INPUT -o OUTPUT --redis URL --job NAME` loaded\n"
    "into Redis: take requests from the job's stream through its consumer group, send\n"
    "them through this machine's own pipeline, hand each result back and acknowledge it.\n"
    "Run as many as you like, on any machines. A worker that dies leaves its requests\n"
    "pending; another claims them after --claim-idle. A result is kept once per custom_id\n"
    "even when two workers finished the same request. The worker ends when the job has\n"
    "nothing left (or is canceled); started before the loader, it waits for the job.\n"
    "\n"
    "  --redis URL          redis://[user:password@]host:port/db; the password may come\n"
    "                       from REDIS_PASSWORD instead, and is scrubbed from `ps`\n"
    "  --job NAME           the job (letters, digits, . _ -)\n"
    "  --claim-idle MS      claim requests another worker has held this long (60000)\n"
    "  --journal PATH       where results wait while Redis is away (default: the first\n"
    "                       free ~/.local/state/skyio/redis/NAME-K.jsonl)\n"
    "\n"
    "The endpoint and the pipeline as `skyio batch` takes them: OPENAI_API_KEY,\n"
    "OPENAI_BASE_URL, AZURE_OPENAI_* from the environment, and --base-url URL, --azure,\n"
    "--cacert FILE, --rpm N, --tpm N, --concurrency N, --max-concurrency N,\n"
    "--max-retries N, --timeout-ms N, --no-rate-limit, --json.\n"
    "\n"
    "If Redis goes away, the worker takes no new work, finishes what is in flight, keeps\n"
    "the results in its journal and hands them over once Redis is back (it reconnects\n"
    "with backoff); killed meanwhile, the next worker started with the same journal hands\n"
    "them over first, and none is sent again. If the job's state is gone (Redis came back empty), "
    "it stops: nothing is\n"
    "sent again behind your back.\n"
    "exit: 0 the job is done; 1 some requests failed, or a stop left work in the job;\n"
    "2 usage; 3 could not start (a bad URL, a refused password, not a Redis server, no\n"
    "endpoint), or the job was lost.\n";

int sky_cli_worker(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
            return fputs(usage, stdout), SKY_EXIT_OK;
    return sky_cli_redis_run(argc, argv, 0);
}
