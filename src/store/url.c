/*
 * Store URLs with their secrets taken out, for messages and logs: the password of
 * "scheme://user:password@host" and any "password=" value (a URL's query, or a libpq
 * key=value string) become "***".
 */
#include <string.h>
#include <strings.h>

#include "internal.h"

/* Append @p n bytes of @p p to out, keeping room for the NUL. */
static void put(char *out, size_t out_len, size_t *pos, const char *p, size_t n)
{
    while (n-- > 0 && *pos + 1 < out_len)
        out[(*pos)++] = *p++;
}

/* Where the userinfo's password starts and ends in @p url, or 0. */
static int userinfo_password(const char *url, const char **start, const char **end)
{
    const char *scheme = strstr(url, "://");
    if (!scheme)
        return 0;
    const char *host = scheme + 3;
    const char *at = NULL;
    for (const char *p = host; *p && *p != '/' && *p != '?'; p++)
        if (*p == '@')
            at = p; /* the last '@' ends the userinfo */
    if (!at)
        return 0;
    const char *colon = memchr(host, ':', (size_t)(at - host));
    if (!colon)
        return 0;
    *start = colon + 1;
    *end = at;
    return 1;
}

void sky__store_url_scrub(const char *url, char *out, size_t out_len)
{
    if (!out_len)
        return;
    size_t pos = 0;
    const char *ps = NULL, *pe = NULL;
    int has_userinfo = userinfo_password(url, &ps, &pe);
    const char *p = url;
    while (*p) {
        if (has_userinfo && p == ps) {
            put(out, out_len, &pos, "***", 3);
            p = pe;
            continue;
        }
        if (strncasecmp(p, "password=", 9) == 0 && (p == url || strchr("?& ", p[-1]))) {
            put(out, out_len, &pos, p, 9);
            put(out, out_len, &pos, "***", 3);
            p += 9;
            while (*p && *p != '&' && *p != ' ')
                p++;
            continue;
        }
        put(out, out_len, &pos, p, 1);
        p++;
    }
    out[pos] = '\0';
}
