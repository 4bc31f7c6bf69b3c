/* Message text as Queue Storage carries it: base64 (the SDKs' default) or escaped raw text. */
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "internal.h"

static const char body_head[] =
    "<?xml version=\"1.0\" encoding=\"utf-8\"?><QueueMessage><MessageText>";
static const char body_tail[] = "</MessageText></QueueMessage>";

static int too_big(size_t n, int raw, sky_error *err)
{
    return sky_error_set(err, SKY_ETOOBIG,
                         "queue: the message is %zu bytes%s; Azure Storage Queues take at most "
                         "%d (64 KiB)%s",
                         n, raw ? "" : " once base64-encoded", SKY_QUEUE_MESSAGE_MAX,
                         raw ? "" : ": send at most 49152 bytes, or raw text");
}

static int append_b64(sky_span text, sky_buf *out)
{
    size_t n = 4 * ((text.len + 2) / 3);
    int rc = sky_buf_reserve(out, n + 1);
    if (rc != 0)
        return rc;
    EVP_EncodeBlock((unsigned char *)out->data + out->len, (const unsigned char *)text.ptr,
                    (int)text.len);
    out->len += n;
    out->data[out->len] = '\0';
    return 0;
}

/* XML 1.0 cannot carry most control characters, escaped or not. */
static int xml_can_carry(sky_span text)
{
    for (size_t i = 0; i < text.len; i++) {
        unsigned char ch = (unsigned char)text.ptr[i];
        if (ch < 0x20 && ch != '\t' && ch != '\n' && ch != '\r')
            return 0;
    }
    return 1;
}

static int append_escaped(sky_span text, sky_buf *out)
{
    int rc = 0;
    for (size_t i = 0; i < text.len && rc == 0; i++) {
        char ch = text.ptr[i];
        const char *e = ch == '&'    ? "&amp;"
                        : ch == '<'  ? "&lt;"
                        : ch == '>'  ? "&gt;"
                        : ch == '"'  ? "&quot;"
                        : ch == '\'' ? "&apos;"
                        : ch == '\r' ? "&#13;"
                                     : NULL;
        rc = e ? sky_buf_append_str(out, e) : sky_buf_append(out, &ch, 1);
    }
    return rc;
}

int sky__queue_message_body(sky_span text, int raw, sky_buf *out, sky_error *err)
{
    size_t sent = raw ? text.len : 4 * ((text.len + 2) / 3);
    if (sent > SKY_QUEUE_MESSAGE_MAX)
        return too_big(sent, raw, err);
    if (raw && !xml_can_carry(text))
        return sky_error_set(err, SKY_EINVAL,
                             "queue: raw text cannot carry control characters (XML forbids "
                             "them): send it base64-encoded (the default)");
    int rc = sky_buf_append_str(out, body_head);
    if (rc == 0)
        rc = raw ? append_escaped(text, out) : append_b64(text, out);
    if (rc == 0)
        rc = sky_buf_append_str(out, body_tail);
    if (rc != 0)
        return sky_error_set(err, rc, "queue: cannot build the message (%s)", sky_err_name(rc));
    return 0;
}

/* Base64 @p s decoded into a new buffer (NUL after it), or NULL when it is not base64. */
static char *b64_decode(const char *s, size_t len, size_t *out_len)
{
    if (len % 4 != 0)
        return NULL;
    unsigned char *out = malloc(len / 4 * 3 + 1);
    if (out == NULL)
        return NULL;
    int n = len ? EVP_DecodeBlock(out, (const unsigned char *)s, (int)len) : 0;
    if (n < 0) {
        free(out);
        return NULL;
    }
    /* EVP_DecodeBlock counts the padding's bytes as zeros */
    if (len >= 1 && s[len - 1] == '=')
        n--;
    if (len >= 2 && s[len - 2] == '=')
        n--;
    out[n] = '\0';
    *out_len = (size_t)n;
    return (char *)out;
}

int sky__queue_decode_texts(sky__queue_parsed *p, int raw)
{
    for (size_t i = 0; i < p->count && !raw; i++) {
        sky_queue_message *m = &p->messages[i];
        size_t n = 0;
        char *d = p->texts[i] ? b64_decode(p->texts[i], strlen(p->texts[i]), &n) : NULL;
        if (d == NULL) {
            m->not_base64 = p->texts[i] != NULL;
            continue;
        }
        free(p->texts[i]);
        p->texts[i] = d;
        m->text.ptr = d;
        m->text.len = n;
    }
    return 0;
}
