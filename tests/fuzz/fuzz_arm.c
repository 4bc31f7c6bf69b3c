/*
 * libFuzzer target for what ARM hands us: the resume token (from a user, any
 * process), ARM error bodies, and the operation decisions over a reply body.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "azure/arm/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A token either decodes to a usable state that encodes back, or is refused cleanly. */
static void fz_token(const char *s)
{
    sky__arm_lro_state st;
    sky_error err;
    sky_error_clear(&err);
    int rc = sky__arm_token_decode(s, &st, &err);
    if (rc == 0) {
        if (st.poll_url == NULL || st.resource_url == NULL || st.style == SKY_ARM_POLL_NONE)
            abort();
        char *again = sky__arm_token_encode(&st);
        sky__arm_lro_state st2;
        if (again && sky__arm_token_decode(again, &st2, &err) != 0)
            abort();
        if (again)
            sky__arm_lro_state_free(&st2);
        free(again);
        sky__arm_lro_state_free(&st);
    } else if (rc != SKY_EINVAL && rc != SKY_ENOMEM) {
        abort();
    }
}

static void fz_bodies(const char *s, size_t n)
{
    sky_error err;
    sky__arm_lro_state st;
    sky__arm_decision d;
    sky_span body = sky_span_make(s, n);
    sky_error_clear(&err);
    if (sky_arm_error_from_reply(400, body, &err) != SKY_EHTTP || err.http_status != 400 ||
        strlen(err.message) >= sizeof(err.message))
        abort();
    sky_error_clear(&err);
    if (sky__arm_lro_first(&st, "PUT", "https://a/r", 201, NULL, body, 10, NULL, &d, &err) == 0 &&
        d.step == SKY__ARM_POLL) {
        sky_error_clear(&err);
        (void)sky__arm_lro_next(&st, 200, NULL, body, 10, NULL, &d, &err);
    }
    sky__arm_lro_state_free(&st);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (s == NULL)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    fz_token(s);
    fz_bodies(s, size);
    free(s);
    return 0;
}
