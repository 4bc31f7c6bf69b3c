/* redis://[[user]:password@]host[:port][/db] into its parts; the password kept out of errors. */
#include <stdlib.h>
#include <string.h>

#include "skyio/batch_redis.h"

static int url_fail(sky_error *err, const char *why)
{
    sky_error_set(err, SKY_EINVAL, "bad Redis URL: %s (want redis://[user:password@]host:port/db)",
                  why);
    return SKY_EINVAL;
}

static int copy_part(char *dst, size_t cap, const char *p, size_t n)
{
    if (n >= cap)
        return -1;
    memcpy(dst, p, n);
    dst[n] = '\0';
    return 0;
}

/* user:password before the '@' (user may be empty, ":password" alone is the default user). */
static int parse_userinfo(sky_redis_url *u, const char *p, size_t n, sky_error *err)
{
    const char *colon = memchr(p, ':', n);
    size_t ulen = colon ? (size_t)(colon - p) : n;
    if (copy_part(u->user, sizeof(u->user), p, ulen) < 0)
        return url_fail(err, "the user name is too long");
    if (colon && copy_part(u->password, sizeof(u->password), colon + 1, n - ulen - 1) < 0)
        return url_fail(err, "the password is too long");
    return 0;
}

static int parse_number(const char *p, size_t n, long lo, long hi, int *out)
{
    char buf[16], *end;
    if (n == 0 || n >= sizeof(buf))
        return -1;
    memcpy(buf, p, n);
    buf[n] = '\0';
    long v = strtol(buf, &end, 10);
    if (*end != '\0' || v < lo || v > hi)
        return -1;
    *out = (int)v;
    return 0;
}

/* host[:port][/db] */
static int parse_hostpart(sky_redis_url *u, const char *p, sky_error *err)
{
    const char *slash = strchr(p, '/');
    size_t hn = slash ? (size_t)(slash - p) : strlen(p);
    const char *colon = memchr(p, ':', hn);
    size_t hlen = colon ? (size_t)(colon - p) : hn;
    if (hlen == 0)
        return url_fail(err, "no host");
    if (copy_part(u->host, sizeof(u->host), p, hlen) < 0)
        return url_fail(err, "the host is too long");
    if (colon && parse_number(colon + 1, hn - hlen - 1, 1, 65535, &u->port) < 0)
        return url_fail(err, "the port is not a number from 1 to 65535");
    if (slash && slash[1] && parse_number(slash + 1, strlen(slash + 1), 0, 1000000, &u->db) < 0)
        return url_fail(err, "the database is not a number");
    return 0;
}

int sky_redis_url_parse(const char *url, sky_redis_url *out, sky_error *err)
{
    static const char scheme[] = "redis://";
    memset(out, 0, sizeof(*out));
    out->port = 6379;
    if (url == NULL || strncmp(url, scheme, strlen(scheme)) != 0)
        return url_fail(err, "it does not start with redis:// (rediss:// needs hiredis 1.0)");
    const char *p = url + strlen(scheme);
    const char *at = strrchr(p, '@');
    int rc = at ? parse_userinfo(out, p, (size_t)(at - p), err) : 0;
    if (rc == 0)
        rc = parse_hostpart(out, at ? at + 1 : p, err);
    const char *env = getenv("REDIS_PASSWORD");
    if (rc == 0 && out->password[0] == '\0' && env && *env &&
        copy_part(out->password, sizeof(out->password), env, strlen(env)) < 0)
        rc = url_fail(err, "REDIS_PASSWORD is too long");
    if (rc < 0)
        sky_redis_url_wipe(out);
    return rc;
}

void sky_redis_url_wipe(sky_redis_url *u)
{
    volatile char *p = u->password;
    for (size_t i = 0; i < sizeof(u->password); i++)
        p[i] = 0;
}
