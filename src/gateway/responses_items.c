/*
 * Input items as the gateway keeps them (a turn's input and output, a conversation's
 * items) and as it sends them upstream again when it rebuilds the earlier turns.
 */
#include "skyio/json.h"
#include "responses_turn.h"

/* A string content as the one text part OpenAI keeps it as. */
static json_t *parts_of(const char *role, const json_t *content)
{
    if (!json_is_string(content))
        return json_deep_copy(content);
    const char *type = strcmp(role, "assistant") == 0 ? "output_text" : "input_text";
    json_t *part = json_pack("{ss sO}", "type", type, "text", content);
    if (part && strcmp(type, "output_text") == 0)
        json_object_set_new(part, "annotations", json_array());
    return json_pack("[o]", part);
}

static json_t *kept_item(const json_t *in, int with_ids)
{
    json_t *item = json_deep_copy(in);
    const char *type = sky_json_str(in, "type", NULL); /* item's is replaced */
    if (item == NULL)
        return NULL;
    if (type == NULL || strcmp(type, "message") == 0) {
        const char *role = sky_json_str(in, "role", "user"); /* item's is replaced */
        json_object_set_new(item, "type", json_string("message"));
        json_object_set_new(item, "role", json_string(role));
        json_object_set_new(item, "content", parts_of(role, json_object_get(in, "content")));
    }
    if (with_ids && !json_object_get(item, "id")) {
        char id[48];
        sky__gw_new_id(type && strcmp(type, "function_call") == 0 ? "fc" : "msg", id);
        json_object_set_new(item, "id", json_string(id));
    }
    if (with_ids && !json_object_get(item, "status"))
        json_object_set_new(item, "status", json_string("completed"));
    return item;
}

json_t *sky__gw_items_of_input(const json_t *input, int with_ids)
{
    json_t *items = json_array();
    if (json_is_string(input)) {
        json_t *m = json_pack("{ss sO}", "role", "user", "content", input);
        json_array_append_new(items, kept_item(m, with_ids));
        json_decref(m);
        return items;
    }
    size_t i;
    json_t *v;
    if (!json_is_array(input))
        goto bad;
    json_array_foreach(input, i, v)
    {
        json_t *item = json_is_object(v) ? kept_item(v, with_ids) : NULL;
        if (item == NULL)
            goto bad;
        json_array_append_new(items, item);
    }
    return items;
bad:
    json_decref(items);
    return NULL;
}

json_t *sky__gw_items_text(const json_t *content)
{
    if (json_is_string(content))
        return json_deep_copy(content);
    sky_buf b;
    sky_buf_init(&b, SIZE_MAX / 2);
    size_t i;
    json_t *p;
    json_array_foreach(content, i, p)
    {
        if (sky_buf_append_str(&b, sky_json_str(p, "text", "")) < 0)
            break;
    }
    json_t *s = json_stringn(b.len ? (const char *)b.data : "", b.len);
    sky_buf_free(&b);
    return s;
}

static json_t *upstream_item(const json_t *item)
{
    const char *type = sky_json_str(item, "type", "message");
    if (strcmp(type, "reasoning") == 0)
        return NULL; /* valid only with the upstream's own state */
    json_t *out = json_deep_copy(item);
    json_object_del(out, "id");
    json_object_del(out, "status");
    if (strcmp(type, "message") == 0 && strcmp(sky_json_str(item, "role", ""), "assistant") == 0) {
        json_object_del(out, "type");
        json_object_set_new(out, "content", sky__gw_items_text(json_object_get(item, "content")));
    }
    return out;
}

json_t *sky__gw_items_for_upstream(const json_t *items)
{
    json_t *out = json_array();
    size_t i;
    json_t *item;
    json_array_foreach(items, i, item)
    {
        json_t *u = upstream_item(item);
        if (u)
            json_array_append_new(out, u);
    }
    return out;
}

json_t *sky__gw_items_of_output(const json_t *response)
{
    json_t *out = json_array();
    size_t i;
    json_t *item;
    json_array_foreach(json_object_get(response, "output"), i, item)
    {
        if (json_is_object(item))
            json_array_append_new(out, json_deep_copy(item));
    }
    return out;
}
