/* Integration-test harness: batch sources and stores. See harness_batch.h. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>

#include "harness_batch.h"
#include "skyio/json.h"

void sky_test_batch_add_lines(sky_batch_source *src, int n, const char *model,
                              const char *odd_model)
{
    char line[512];
    for (int i = 0; i < n; i++) {
        snprintf(line, sizeof(line),
                 "{\"custom_id\":\"req-%d\",\"method\":\"POST\",\"url\":\"/v1/chat/completions\","
                 "\"body\":{\"model\":\"%s\",\"messages\":[{\"role\":\"user\","
                 "\"content\":\"question %d\"}],\"max_tokens\":5}}",
                 i, odd_model && i % 2 ? odd_model : model, i);
        assert_int_equal(sky_batch_memory_source_add(src, sky_span_cstr(line)), 0);
    }
    sky_batch_memory_source_end(src);
}

size_t sky_test_batch_count_ok(const sky_batch_store *st)
{
    sky_batch_record rec;
    json_t *seen = json_object();
    size_t ok = 0;
    for (size_t i = 0; i < sky_batch_memory_store_count(st); i++) {
        assert_int_equal(sky_batch_memory_store_get(st, i, &rec), 0);
        assert_null(json_object_get(seen, rec.custom_id));
        json_object_set_new(seen, rec.custom_id, json_true());
        ok += !rec.failed;
    }
    json_decref(seen);
    return ok;
}
