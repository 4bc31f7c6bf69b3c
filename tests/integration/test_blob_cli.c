/* `skyio blob` (the real binary) against a real Azurite: folders, odd names, path guard, failures.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <limits.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "harness_azurite.h"
#include "harness_cli.h"
#include "skyio/blob.h"
#include "harness_group.h"

static sky_test_azurite g_az;
static int g_trace; /* run the CLI with SKYIO_LOG=trace */

/* The environment of every command: the test account, and the trace log when asked. */
static void child_env(void)
{
    setenv("AZURE_STORAGE_CONNECTION_STRING", g_az.connstr, 1);
    if (g_trace)
        setenv("SKYIO_LOG", "trace", 1);
}

/* Run `skyio blob ARGS...` (NULL-terminated) with the test account; capture its output. */
static void run_cli(const char *dir, sky_test_cli_out *r, ...)
{
    const char *argv[32];
    int n = 0;
    argv[n++] = SKY_TEST_BIN;
    argv[n++] = "blob";
    va_list ap;
    va_start(ap, r);
    const char *a;
    while ((a = va_arg(ap, const char *)) != NULL && n < 31)
        argv[n++] = a;
    va_end(ap);
    argv[n] = NULL;
    int in;
    /* a hung command fails its test (exit 142) instead of the whole run */
    pid_t pid = sky_test_cli_spawn(argv, dir, child_env, 300, &in);
    close(in);
    sky_test_cli_finish(pid, dir, r);
}

static void write_file(const char *path, size_t size, unsigned seed)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    for (size_t i = 0; i < size; i++)
        fputc((int)((i * 31 + seed) & 0xff), f);
    fclose(f);
}

static void mkdirs(const char *root, const char *rel)
{
    char p[1024];
    snprintf(p, sizeof(p), "%s/%s", root, rel);
    for (char *s = p + strlen(root) + 1; *s; s++)
        if (*s == '/') {
            *s = '\0';
            mkdir(p, 0755);
            *s = '/';
        }
    mkdir(p, 0755);
}

static int same_files(const char *a, const char *b)
{
    char cmd[2048];
    snprintf(cmd, sizeof(cmd), "diff -r '%s' '%s' >/dev/null 2>&1", a, b);
    return system(cmd) == 0;
}

static int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

SKY_TEST_AZURITE_GROUP(g_az, sky_test_azurite_start)

static int setup(void **state)
{
    char *dir = malloc(256);
    sky_test_tmpdir(dir, 256);
    *state = dir;
    return 0;
}

static int teardown(void **state)
{
    sky_test_rmdir(*state);
    free(*state);
    return 0;
}

/* A tree with spaces, unicode, deep folders and a multi-block file. */
static void make_tree(const char *src)
{
    char p[1024];
    mkdirs(src, "with space/ünïcödé");
    mkdirs(src, "a/b/c/d/e/f");
    snprintf(p, sizeof(p), "%s/top.txt", src);
    write_file(p, 10, 1);
    snprintf(p, sizeof(p), "%s/with space/ünïcödé/file name ñ.txt", src);
    write_file(p, 3000, 2);
    snprintf(p, sizeof(p), "%s/a/b/c/d/e/f/deep.bin", src);
    write_file(p, 3 * 1024 * 1024 + 17, 3);
    snprintf(p, sizeof(p), "%s/empty", src);
    write_file(p, 0, 0);
}

/* dir/src holding the tree, dir/dst's name, and an empty container. */
static void tree_and_container(const char *dir, char *src, char *dst, const char *container)
{
    sky_test_cli_out r;
    snprintf(src, 512, "%s/src", dir);
    snprintf(dst, 512, "%s/dst", dir);
    mkdir(src, 0755);
    make_tree(src);
    run_cli(dir, &r, "mb", container, NULL);
    assert_int_equal(r.code, 0);
}

static void test_recursive_put_get_and_sync(void **state)
{
    const char *dir = *state;
    char src[512], dst[512];
    sky_test_cli_out r;
    tree_and_container(dir, src, dst, "tree");
    run_cli(dir, &r, "put", "-r", src, "tree/pre", "--block-size", "1048576", "--json", NULL);
    if (r.code != 0)
        fail_msg("put -r: %d %s", r.code, r.err);
    assert_non_null(strstr(r.out, "\"uploaded\":4,\"skipped\":0,\"failed\":0"));
    run_cli(dir, &r, "ls", "-r", "tree", NULL);
    assert_int_equal(r.code, 0);
    assert_non_null(strstr(r.out, "pre/with space/ünïcödé/file name ñ.txt"));
    assert_non_null(strstr(r.out, "3145745 pre/a/b/c/d/e/f/deep.bin"));
    run_cli(dir, &r, "ls", "tree/pre/", NULL);
    assert_non_null(strstr(r.out, "pre/a/\n"));
    assert_null(strstr(r.out, "deep.bin"));
    /* A rerun finds every file unchanged (size and MD5) and sends nothing. */
    run_cli(dir, &r, "put", "-r", src, "tree/pre", "--block-size", "1048576", "--json", NULL);
    assert_int_equal(r.code, 0);
    assert_non_null(strstr(r.out, "\"uploaded\":0,\"skipped\":4,\"failed\":0"));
    /* One file changed: only it goes again. */
    char p[1024];
    snprintf(p, sizeof(p), "%s/top.txt", src);
    write_file(p, 10, 9);
    run_cli(dir, &r, "put", "-r", src, "tree/pre", "--json", NULL);
    assert_non_null(strstr(r.out, "\"uploaded\":1,\"skipped\":3,\"failed\":0"));
    run_cli(dir, &r, "get", "-r", "tree/pre", dst, "-j", "2", NULL);
    if (r.code != 0)
        fail_msg("get -r: %d %s", r.code, r.err);
    assert_true(same_files(src, dst));
    /* Single file both ways. */
    run_cli(dir, &r, "get", "tree/pre/top.txt", dir, NULL);
    assert_int_equal(r.code, 0);
    snprintf(p, sizeof(p), "%s/top.txt", dir);
    assert_true(exists(p));
    run_cli(dir, &r, "rm", "-r", "tree/pre/a", NULL);
    assert_int_equal(r.code, 0);
    run_cli(dir, &r, "ls", "-r", "tree", NULL);
    assert_null(strstr(r.out, "deep.bin"));
    assert_non_null(strstr(r.out, "top.txt"));
    run_cli(dir, &r, "rb", "tree", NULL);
    assert_int_equal(r.code, 0);
    run_cli(dir, &r, "ls", "tree", NULL);
    assert_int_equal(r.code, 3);
    assert_non_null(strstr(r.err, "ContainerNotFound"));
}

static void on_put(sky_blob_op *op, const sky_blob_reply *rep, const sky_error *err, void *ud)
{
    (void)op, (void)rep;
    assert_null(err);
    ++*(int *)ud;
}

/* Blobs whose names would escape a folder, made with the library. */
static void put_evil(void)
{
    uv_loop_t *loop = sky_test_loop_new();
    sky_http_client *http = NULL;
    assert_int_equal(sky_http_client_new(loop, NULL, &http), 0);
    sky_blob_client_options o;
    sky_blob_client_options_init(&o);
    o.endpoint = g_az.endpoint;
    o.account_name = "devstoreaccount1";
    o.account_key = SKY_TEST_AZURITE_KEY;
    sky_blob_client *c = NULL;
    assert_int_equal(sky_blob_client_new(loop, http, &o, &c, NULL), 0);
    static const char *const names[] = {"in/../../escape.txt", "/abs.txt", "in/ok.txt",
                                        "in/./dot.txt", "in/../ok2.txt"};
    int done = 0;
    for (size_t i = 0; i < SKY_ARRAY_LEN(names); i++)
        assert_int_equal(sky_blob_put(c, "guard", names[i], SKY_SPAN_LIT("x"), NULL, NULL, on_put,
                                      &done, NULL, NULL),
                         0);
    while (done < (int)SKY_ARRAY_LEN(names))
        uv_run(loop, UV_RUN_ONCE);
    sky_blob_client_free(c);
    sky_http_client_free(http);
    sky_test_loop_free(loop);
}

static void test_path_guard(void **state)
{
    const char *dir = *state;
    char dst[512], p[1024];
    sky_test_cli_out r;
    run_cli(dir, &r, "mb", "guard", NULL);
    assert_int_equal(r.code, 0);
    put_evil();
    snprintf(dst, sizeof(dst), "%s/deep/dst", dir);
    mkdirs(dir, "deep/dst");
    run_cli(dir, &r, "get", "-r", "guard", dst, NULL);
    assert_int_equal(r.code, 1); /* some refused, the rest done */
    /* Each name rule on its own words, before any folder is made: a '..' is refused even
     * where it would stay inside (ok2.txt) or where the folder walk would catch it too. */
    assert_non_null(strstr(
        r.err,
        "in/../../escape.txt: refused: 'in/../../escape.txt' has a '..' part, which climbs"));
    assert_non_null(
        strstr(r.err, "in/../ok2.txt: refused: 'in/../ok2.txt' has a '..' part, which climbs"));
    assert_non_null(strstr(r.err, "/abs.txt: refused: '/abs.txt' begins with '/'"));
    assert_non_null(strstr(r.err, "in/./dot.txt: refused: 'in/./dot.txt' has a '.' part"));
    snprintf(p, sizeof(p), "%s/deep/dst/in/ok.txt", dir);
    assert_true(exists(p));
    snprintf(p, sizeof(p), "%s/deep/dst/ok2.txt", dir);
    assert_false(exists(p));
    snprintf(p, sizeof(p), "%s/deep/escape.txt", dir);
    assert_false(exists(p));
    snprintf(p, sizeof(p), "%s/escape.txt", dir);
    assert_false(exists(p));
    assert_false(exists("/abs.txt"));
    /* A symlink inside the destination that points out is not followed. */
    char link[1024], outside[1024];
    mkdirs(dir, "dst2");
    mkdirs(dir, "outside");
    snprintf(link, sizeof(link), "%s/dst2/in", dir);
    snprintf(outside, sizeof(outside), "%s/outside", dir);
    assert_int_equal(symlink(outside, link), 0);
    snprintf(p, sizeof(p), "%s/dst2", dir);
    run_cli(dir, &r, "get", "-r", "guard", p, NULL);
    assert_int_equal(r.code, 1);
    assert_non_null(
        strstr(r.err, "in/ok.txt: refused: 'in' in the destination is a symbolic link"));
    snprintf(p, sizeof(p), "%s/outside/ok.txt", dir);
    assert_false(exists(p));
    /* A symlink at the file itself, pointing out: refused, and the outside file is unchanged. */
    mkdirs(dir, "dst3/in");
    snprintf(outside, sizeof(outside), "%s/outside/target.txt", dir);
    write_file(outside, 5, 4);
    snprintf(link, sizeof(link), "%s/dst3/in/ok.txt", dir);
    assert_int_equal(symlink(outside, link), 0);
    snprintf(p, sizeof(p), "%s/dst3", dir);
    run_cli(dir, &r, "get", "-r", "guard", p, NULL);
    assert_int_equal(r.code, 1);
    assert_non_null(
        strstr(r.err, "in/ok.txt: refused: 'in/ok.txt' in the destination is a symbolic link"));
    struct stat st;
    assert_int_equal(stat(outside, &st), 0);
    assert_int_equal(st.st_size, 5);
}

/* How many entries folder @p path holds (-1 when it cannot be read). */
static int entries(const char *path)
{
    char cmd[1200], out[64];
    snprintf(cmd, sizeof(cmd), "ls -A '%s' | wc -l", path);
    FILE *p = popen(cmd, "r");
    if (p == NULL || fgets(out, sizeof(out), p) == NULL) {
        if (p)
            pclose(p);
        return -1;
    }
    pclose(p);
    return atoi(out);
}

/*
 * One blob at a time, with a single path: the last part of its name becomes the file's
 * name in DIR, so it must be one; each refusal says which rule, and nothing is written.
 */
static void test_single_get_of_a_non_file_name(void **state)
{
    const char *dir = *state;
    char into[512];
    sky_test_cli_out r;
    snprintf(into, sizeof(into), "%s/into", dir);
    mkdirs(dir, "into");
    static const struct {
        const char *src, *why;
    } cases[] = {
        {"guard1/..", "has a '..' part"},
        {"guard1/in/..", "has a '..' part"},
        {"guard1/.", "has a '.' part"},
        {"guard1/in/.", "has a '.' part"},
        {"guard1/in/", "ends with '/' (a folder: use get -r)"},
    };
    for (size_t i = 0; i < SKY_ARRAY_LEN(cases); i++) {
        run_cli(dir, &r, "get", cases[i].src, into, NULL);
        if (r.code != 2 || strstr(r.err, "cannot be saved into") == NULL ||
            strstr(r.err, cases[i].why) == NULL)
            fail_msg("get %s: exit %d: %s", cases[i].src, r.code, r.err);
    }
    assert_int_equal(entries(into), 0);
    assert_int_equal(entries(dir), 3); /* into, out, err */
}

/*
 * Symbolic links planted at each depth of the destination, pointing out of it: no folder or
 * file is made or written through any of them (the folders are made one part at a time,
 * never following a link), and each file says why it was refused. A link that stays inside
 * is refused too (documented), and so is a file where a folder should be.
 */
static void test_links_at_each_depth(void **state)
{
    const char *dir = *state;
    char f[512], dest[512], outside[512], p[1024];
    sky_test_cli_out r;
    static const char *const names[] = {
        "link/x.txt",     "link/deeper/x.txt",     "a/link/deeper/y.txt",
        "a/b/link/z.txt", "a/b/link/deeper/z.txt", "inner/x.txt",
        "file/x.txt",     "a/b/fine.txt"};
    run_cli(dir, &r, "mb", "links", NULL);
    assert_int_equal(r.code, 0);
    snprintf(f, sizeof(f), "%s/f.txt", dir);
    write_file(f, 7, 3);
    for (size_t i = 0; i < SKY_ARRAY_LEN(names); i++) {
        snprintf(p, sizeof(p), "links/%s", names[i]);
        run_cli(dir, &r, "put", f, p, NULL);
        assert_int_equal(r.code, 0);
    }
    snprintf(dest, sizeof(dest), "%s/dest", dir);
    snprintf(outside, sizeof(outside), "%s/outside", dir);
    mkdirs(dir, "outside");
    mkdirs(dir, "dest/a/b");
    mkdirs(dir, "dest/real");
    static const char *const at[] = {"link", "a/link", "a/b/link"};
    for (size_t i = 0; i < SKY_ARRAY_LEN(at); i++) {
        snprintf(p, sizeof(p), "%s/%s", dest, at[i]);
        assert_int_equal(symlink(outside, p), 0);
    }
    snprintf(p, sizeof(p), "%s/inner", dest);
    assert_int_equal(symlink("real", p), 0); /* stays inside */
    snprintf(p, sizeof(p), "%s/file", dest);
    write_file(p, 1, 1);
    run_cli(dir, &r, "get", "-r", "links", dest, NULL);
    assert_int_equal(r.code, 1);
    static const char *const said[] = {
        "link/x.txt: refused: 'link' in the destination is a symbolic link",
        "link/deeper/x.txt: refused: 'link' in the destination is a symbolic link",
        "a/link/deeper/y.txt: refused: 'a/link' in the destination is a symbolic link",
        "a/b/link/z.txt: refused: 'a/b/link' in the destination is a symbolic link",
        "a/b/link/deeper/z.txt: refused: 'a/b/link' in the destination is a symbolic link",
        "inner/x.txt: refused: 'inner' in the destination is a symbolic link",
        "file/x.txt: refused: 'file' in the destination is a file, not a folder",
    };
    for (size_t i = 0; i < SKY_ARRAY_LEN(said); i++)
        if (strstr(r.err, said[i]) == NULL)
            fail_msg("missing '%s' in:\n%s", said[i], r.err);
    assert_int_equal(entries(outside), 0);
    snprintf(p, sizeof(p), "%s/real", dest);
    assert_int_equal(entries(p), 0);
    snprintf(p, sizeof(p), "%s/a/b/fine.txt", dest);
    assert_true(exists(p));
    run_cli(dir, &r, "rb", "links", NULL);
}

/* Every command against @p endpoint: exit 3 within seconds, saying why, writing nothing. */
static void expect_unreachable(const char *dir, const char *endpoint, const char *why)
{
    char cs[512], f[512], dest[512], file[512];
    sky_test_cli_out r;
    snprintf(cs, sizeof(cs),
             "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=%s;"
             "BlobEndpoint=%s",
             SKY_TEST_AZURITE_KEY, endpoint);
    snprintf(f, sizeof(f), "%s/f.txt", dir);
    write_file(f, 10, 1);
    snprintf(dest, sizeof(dest), "%s/dest", dir);
    snprintf(file, sizeof(file), "%s/got.txt", dir);
    const char *const cmds[][4] = {
        {"ls", NULL},
        {"ls", "cont", NULL},
        {"mb", "cont", NULL},
        {"put", f, "cont/x.txt", NULL},
        {"put", "-r", dir, "cont/p"},
        {"get", "cont/x.txt", file, NULL},
        {"get", "-r", "cont/p", dest},
        {"rm", "-r", "cont/p", NULL},
    };
    for (size_t i = 0; i < SKY_ARRAY_LEN(cmds); i++) {
        const char *const *a = cmds[i];
        double t0 = sky_test_now_s();
        /* the variadic list ends at the first NULL of a */
        run_cli(dir, &r, a[0], "--connection-string", cs, "--json", a[1], a[2], a[3], NULL);
        double secs = sky_test_now_s() - t0;
        if (r.code != 3 || secs > 10 || strstr(r.err, "cannot reach the endpoint") == NULL ||
            strstr(r.err, why) == NULL)
            fail_msg("%s %s on %s: exit %d after %.1f s:\n%s", a[0], a[1] ? a[1] : "", endpoint,
                     r.code, secs, r.err);
        assert_string_equal(r.out, ""); /* no summary: nothing was done */
        assert_null(strstr(r.err, SKY_TEST_AZURITE_KEY));
    }
    assert_false(exists(dest)); /* get -r makes DIR only once the listing worked */
    assert_false(exists(file));
}

/*
 * An endpoint that never answered and cannot be reached (connection refused, unknown host,
 * TLS failure) is not retried 10 times over two minutes: the command stops at once, exit 3.
 */
static void test_unreachable_endpoint_stops_at_once(void **state)
{
    const char *dir = *state;
    char ep[256];
    sky_test_mock tls;
    expect_unreachable(dir, "http://127.0.0.1:1/devstoreaccount1", "ECONNECT");
    /* (an unknown host is the same rule; no test looks one up: a lookup is DNS traffic
     * off this machine) */
    /* a TLS server whose certificate no trusted CA signed */
    memset(&tls, 0, sizeof(tls));
    tls.tls = 1;
    sky_test_mock_start(&tls, NULL);
    snprintf(ep, sizeof(ep), "%s/devstoreaccount1", tls.base_url);
    expect_unreachable(dir, ep, "ETLS");
    assert_int_equal(sky_test_mock_stop(&tls), 0);
}

/*
 * Names too long, each with its own limit: Azure's 1,024 characters for a blob name, and
 * the local file system's NAME_MAX per part and PATH_MAX for a download's path.
 */
static void test_long_names(void **state)
{
    const char *dir = *state;
    char f[512], into[512], name[1100], target[1200], p[2048];
    sky_test_cli_out r;
    run_cli(dir, &r, "mb", "long", NULL);
    assert_int_equal(r.code, 0);
    snprintf(f, sizeof(f), "%s/f.txt", dir);
    write_file(f, 10, 1);
    snprintf(into, sizeof(into), "%s/into", dir);
    mkdirs(dir, "into");
    /* 1,025 characters: refused before anything is sent */
    memset(name, 'a', 1025);
    name[1025] = '\0';
    snprintf(target, sizeof(target), "long/%s", name);
    run_cli(dir, &r, "put", f, target, NULL);
    assert_int_equal(r.code, 2);
    assert_non_null(strstr(r.err, "1025 characters long: Azure allows at most 1,024"));
    run_cli(dir, &r, "get", target, into, NULL);
    assert_int_equal(r.code, 2);
    assert_non_null(strstr(r.err, "Azure allows at most 1,024"));
    /* 304 bytes: a fine blob name, but no file name here */
    name[304] = '\0';
    snprintf(target, sizeof(target), "long/%s", name);
    run_cli(dir, &r, "put", f, target, NULL);
    assert_int_equal(r.code, 0);
    run_cli(dir, &r, "get", target, into, NULL);
    assert_int_equal(r.code, 2);
    assert_non_null(strstr(r.err, "a part of 304 bytes"));
    assert_non_null(strstr(r.err, "NAME_MAX"));
    assert_null(strstr(r.err, "EIO"));
    snprintf(p, sizeof(p), "%s/short.txt", into); /* saved under another name: fine */
    run_cli(dir, &r, "get", target, p, NULL);
    assert_int_equal(r.code, 0);
    assert_true(exists(p));
    /* 250 bytes: a file name, though "<name>.skyio-partial" would not be one */
    memset(name, 'b', 250);
    name[250] = '\0';
    snprintf(target, sizeof(target), "long/%s", name);
    run_cli(dir, &r, "put", f, target, NULL);
    assert_int_equal(r.code, 0);
    run_cli(dir, &r, "get", target, into, NULL);
    if (r.code != 0)
        fail_msg("get of a 250-byte name: %d %s", r.code, r.err);
    snprintf(p, sizeof(p), "%s/%s", into, name);
    assert_true(exists(p));
    assert_int_equal(entries(into), 2); /* short.txt and it: no partial file left */
    /* get -r: each too-long name refused with its reason, the rest downloaded */
    snprintf(p, sizeof(p), "%s/all", dir);
    run_cli(dir, &r, "get", "-r", "long", p, NULL);
    assert_int_equal(r.code, 1);
    assert_non_null(strstr(r.err, "refused: 'aaaaaaaaaaaaaaaaaaaaaaaa...aaaaaaaaaaaaaaaaaaaaaaaa "
                                  "(304 bytes)' has a part of 304 bytes"));
    snprintf(p, sizeof(p), "%s/all/%s", dir, name);
    assert_true(exists(p));
    /* a path over PATH_MAX */
    static char deep[PATH_MAX + 64];
    snprintf(deep, sizeof(deep), "%s/", dir);
    while (strlen(deep) < PATH_MAX)
        strcat(deep, "d/");
    strcat(deep, "f.txt");
    run_cli(dir, &r, "get", "long/short-missing.txt", deep, NULL);
    assert_int_equal(r.code, 1);
    assert_non_null(strstr(r.err, "PATH_MAX"));
    run_cli(dir, &r, "rb", "long", NULL);
}

/* A prefix names a folder: "dir" takes dir/a.txt, never dirfoo/x.txt. */
static void test_prefix_is_a_folder(void **state)
{
    const char *dir = *state;
    char src[512], dst[512], p[1024];
    sky_test_cli_out r;
    run_cli(dir, &r, "mb", "pfx", NULL);
    assert_int_equal(r.code, 0);
    snprintf(src, sizeof(src), "%s/f.txt", dir);
    write_file(src, 10, 1);
    run_cli(dir, &r, "put", src, "pfx/dir/a.txt", NULL);
    assert_int_equal(r.code, 0);
    run_cli(dir, &r, "put", src, "pfx/dirfoo/x.txt", NULL);
    assert_int_equal(r.code, 0);
    snprintf(dst, sizeof(dst), "%s/dst", dir);
    mkdirs(dir, "dst");
    run_cli(dir, &r, "get", "-r", "pfx/dir", dst, "--json", NULL);
    if (r.code != 0)
        fail_msg("get -r: %d %s", r.code, r.err);
    assert_non_null(strstr(r.out, "\"downloaded\":1,"));
    snprintf(p, sizeof(p), "%s/a.txt", dst);
    assert_true(exists(p));
    snprintf(p, sizeof(p), "%s/foo/x.txt", dst);
    assert_false(exists(p));
    run_cli(dir, &r, "rm", "-r", "pfx/dir", NULL);
    assert_int_equal(r.code, 0);
    run_cli(dir, &r, "ls", "-r", "pfx", NULL);
    assert_null(strstr(r.out, "dir/a.txt"));
    assert_non_null(strstr(r.out, "dirfoo/x.txt"));
}

static void test_partial_failure_and_rollback(void **state)
{
    const char *dir = *state;
    char src[512], p[1024];
    sky_test_cli_out r;
    run_cli(dir, &r, "mb", "partial", NULL);
    assert_int_equal(r.code, 0);
    snprintf(src, sizeof(src), "%s/src", dir);
    mkdirs(dir, "src/sub");
    for (int i = 0; i < 5; i++) {
        snprintf(p, sizeof(p), "%s/sub/f%d.txt", src, i);
        write_file(p, 100, (unsigned)i);
    }
    snprintf(p, sizeof(p), "%s/allowed.txt", src);
    write_file(p, 100, 7);
    /* A SAS that allows exactly one blob: the others fail, that one succeeds. */
    sky_storage_sas_options so;
    sky_storage_sas_options_init(&so);
    so.permissions = "rcwd";
    so.expiry = (int64_t)time(NULL) + 3600;
    so.container = "partial";
    so.blob = "up/allowed.txt";
    sky_buf sas;
    sky_buf_init(&sas, 4096);
    assert_int_equal(
        sky_storage_sas_service("devstoreaccount1", SKY_TEST_AZURITE_KEY, &so, &sas, NULL), 0);
    run_cli(dir, &r, "put", "-r", src, "partial/up", "--no-sync", "--sas", sas.data, "--endpoint",
            g_az.endpoint, "--json", NULL);
    assert_int_equal(r.code, 1);
    assert_non_null(strstr(r.out, "\"uploaded\":1,\"skipped\":0,\"failed\":5"));
    assert_non_null(strstr(r.err, "failed: up/sub/f3.txt:"));
    assert_non_null(strstr(r.err, "AuthorizationFailure"));
    assert_null(strstr(r.err, "sig="));
    run_cli(dir, &r, "ls", "-r", "partial", NULL);
    assert_non_null(strstr(r.out, "up/allowed.txt"));
    /* With rollback, what this run uploaded is deleted again. */
    run_cli(dir, &r, "rm", "partial/up/allowed.txt", NULL);
    assert_int_equal(r.code, 0);
    run_cli(dir, &r, "put", "-r", src, "partial/up", "--no-sync", "--sas", sas.data, "--endpoint",
            g_az.endpoint, "--rollback-on-failure", "--json", NULL);
    assert_int_equal(r.code, 1);
    assert_non_null(strstr(r.out, "\"rolled_back\":1"));
    run_cli(dir, &r, "ls", "-r", "partial", NULL);
    assert_null(strstr(r.out, "up/allowed.txt"));
    sky_buf_free(&sas);
}

/*
 * --checksum none hashes nothing it does not need: blocks go without Content-MD5 and the
 * big file's blob gets no MD5. A rerun still skips files whose blob has an MD5 (a single
 * put's, which the service computes) after hashing just those; the big one goes again.
 */
static void test_checksum_none(void **state)
{
    const char *dir = *state;
    char src[512], dst[512];
    sky_test_cli_out r;
    tree_and_container(dir, src, dst, "nosum");
    run_cli(dir, &r, "put", "-r", src, "nosum/p", "--block-size", "1048576", "--checksum", "none",
            "--json", NULL);
    if (r.code != 0)
        fail_msg("put -r: %d %s", r.code, r.err);
    assert_non_null(strstr(r.out, "\"uploaded\":4,\"skipped\":0,\"failed\":0"));
    run_cli(dir, &r, "get", "-r", "nosum/p", dst, NULL);
    assert_int_equal(r.code, 0);
    assert_true(same_files(src, dst));
    run_cli(dir, &r, "put", "-r", src, "nosum/p", "--block-size", "1048576", "--checksum", "none",
            "--json", NULL);
    assert_int_equal(r.code, 0);
    assert_non_null(strstr(r.out, "\"uploaded\":1,\"skipped\":3,\"failed\":0"));
    /* The default stores the big file's MD5: from then on everything is skipped. */
    run_cli(dir, &r, "put", "-r", src, "nosum/p", "--block-size", "1048576", "--json", NULL);
    assert_non_null(strstr(r.out, "\"uploaded\":1,\"skipped\":3,\"failed\":0"));
    run_cli(dir, &r, "put", "-r", src, "nosum/p", "--checksum", "none", "--json", NULL);
    assert_non_null(strstr(r.out, "\"uploaded\":0,\"skipped\":4,\"failed\":0"));
    run_cli(dir, &r, "put", "-r", src, "nosum/p", "--checksum", "sha1", NULL);
    assert_int_equal(r.code, 2);
    assert_non_null(strstr(r.err, "--checksum: 'sha1' is not md5 or none"));
    run_cli(dir, &r, "rb", "nosum", NULL);
    assert_int_equal(r.code, 0);
}

/* How many times @p needle occurs in the file at @p path. */
static int count_in_file(const char *path, const char *needle)
{
    static char buf[1 << 20];
    sky_test_slurp(path, buf, sizeof(buf));
    int n = 0;
    for (const char *p = buf; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

/* `skyio blob ARGS...` with SKYIO_LOG=trace (every request logged), stderr into @p err. */
static pid_t spawn_cli(const char *err, const char *const *args)
{
    const char *argv[16];
    int n = 0;
    argv[n++] = SKY_TEST_BIN;
    argv[n++] = "blob";
    for (; *args && n < 15; args++)
        argv[n++] = *args;
    argv[n] = NULL;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fe = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int fo = open("/dev/null", O_WRONLY);
        dup2(fo, 1);
        dup2(fe, 2);
        setenv("AZURE_STORAGE_CONNECTION_STRING", g_az.connstr, 1);
        setenv("SKYIO_LOG", "trace", 1);
        execv(SKY_TEST_BIN, (char *const *)(uintptr_t)argv);
        _exit(127);
    }
    return pid;
}

/*
 * kill -9 in the middle of a block upload, then the same command again: nothing was
 * committed by the first, the second sends only the blocks the service does not have,
 * and the blob is the file.
 */
static void test_kill_mid_upload_resumes(void **state)
{
    const char *dir = *state;
    char src[512], back[512], err1[512], err2[512];
    sky_test_cli_out r;
    snprintf(src, sizeof(src), "%s/big.bin", dir);
    snprintf(back, sizeof(back), "%s/back.bin", dir);
    snprintf(err1, sizeof(err1), "%s/run1.err", dir);
    snprintf(err2, sizeof(err2), "%s/run2.err", dir);
    enum { BLOCKS = 64 };
    write_file(src, BLOCKS * 512 * 1024, 5);
    run_cli(dir, &r, "mb", "killed", NULL);
    assert_int_equal(r.code, 0);
    static const char *const args[] = {
        "put", NULL, "killed/big.bin", "--block-size", "524288", "--concurrency", "1", NULL};
    const char *a[8];
    memcpy(a, args, sizeof(a));
    a[1] = src;
    /* With one block at a time, a fifth block started means four are on the service. */
    pid_t pid = spawn_cli(err1, a);
    int started = 0, status = 0;
    for (int i = 0; i < 6000 && started < 5; i++) {
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
        started = count_in_file(err1, "comp=block&blockid");
        assert_int_equal(waitpid(pid, &status, WNOHANG), 0); /* still running */
    }
    assert_true(started >= 5);
    kill(pid, SIGKILL);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    run_cli(dir, &r, "ls", "killed", NULL);
    assert_int_equal(r.code, 0);
    assert_null(strstr(r.out, "big.bin")); /* never committed */
    pid = spawn_cli(err2, a);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    int sent = count_in_file(err2, "comp=block&blockid");
    assert_true(sent >= 1 && sent <= BLOCKS - 4);
    run_cli(dir, &r, "get", "killed/big.bin", back, NULL);
    assert_int_equal(r.code, 0);
    char cmd[1200];
    snprintf(cmd, sizeof(cmd), "cmp -s '%s' '%s'", src, back);
    assert_int_equal(system(cmd), 0);
    run_cli(dir, &r, "rb", "killed", NULL);
}

static void test_usage_and_config_errors(void **state)
{
    const char *dir = *state;
    sky_test_cli_out r;
    run_cli(dir, &r, "--help", NULL);
    assert_int_equal(r.code, 0);
    assert_non_null(strstr(r.out, "put -r DIR"));
    run_cli(dir, &r, "frobnicate", NULL);
    assert_int_equal(r.code, 2);
    run_cli(dir, &r, "put", "onlyone", NULL);
    assert_int_equal(r.code, 2);
    run_cli(dir, &r, "ls", "--connection-string", "AccountName=x;AccountKey=SECRET!!", NULL);
    assert_int_equal(r.code, 3);
    assert_null(strstr(r.err, "SECRET"));
    /* A wrong key: the service refuses, exit 3, no key in the output. */
    run_cli(dir, &r, "ls", "--account-name", "devstoreaccount1", "--account-key",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", "--endpoint", g_az.endpoint, NULL);
    assert_int_equal(r.code, 3);
    assert_non_null(strstr(r.err, "AuthorizationFailure"));
    assert_null(strstr(r.err, "AAAAAAAAAAAA"));
    /* A misspelt option with a secret after '=': the value is never echoed. */
    run_cli(dir, &r, "ls", "--acount-key=SECRETVALUE", NULL);
    assert_int_equal(r.code, 2);
    assert_non_null(strstr(r.err, "unknown option '--acount-key'"));
    assert_null(strstr(r.err, "SECRETVALUE"));
    run_cli(dir, &r, "ls", "--sas=sv=2022&sig=SECRETVALUE", "--bogus", NULL);
    assert_int_equal(r.code, 2);
    assert_null(strstr(r.err, "SECRETVALUE"));
    run_cli(dir, &r, "ls", "--json=SECRETVALUE", NULL);
    assert_int_equal(r.code, 2);
    assert_null(strstr(r.err, "SECRETVALUE"));
    /* The --opt=value form works for the value options. */
    char ep[512];
    snprintf(ep, sizeof(ep), "--endpoint=%s", g_az.endpoint);
    run_cli(dir, &r, "ls", "--account-name=devstoreaccount1",
            "--account-key=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", ep, NULL);
    assert_int_equal(r.code, 3);
    assert_non_null(strstr(r.err, "AuthorizationFailure"));
    assert_null(strstr(r.err, "AAAAAAAAAAAA"));
    /* account names: 3 to 24 lowercase letters and digits, said as such (not ENOMEM) */
    static char cs[5300], huge[5001];
    memset(huge, 'a', 5000);
    snprintf(cs, sizeof(cs), "AccountName=%s;AccountKey=%s", huge, SKY_TEST_AZURITE_KEY);
    run_cli(dir, &r, "ls", "--connection-string", cs, NULL);
    assert_int_equal(r.code, 3);
    assert_non_null(strstr(r.err, "it is 5000 characters long"));
    assert_non_null(strstr(r.err, "3 to 24 lowercase letters and digits"));
    assert_null(strstr(r.err, "ENOMEM"));
    run_cli(dir, &r, "ls", "--account-name", huge, "--account-key", SKY_TEST_AZURITE_KEY, NULL);
    assert_int_equal(r.code, 2);
    assert_non_null(strstr(r.err, "it is 5000 characters long"));
    run_cli(dir, &r, "ls", "--account-name", "Dev_Store", "--account-key", SKY_TEST_AZURITE_KEY,
            "--endpoint", g_az.endpoint, NULL);
    assert_int_equal(r.code, 2);
    assert_non_null(strstr(r.err, "'D' (character 1) is not a lowercase letter or digit"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_recursive_put_get_and_sync, setup, teardown),
        cmocka_unit_test_setup_teardown(test_path_guard, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prefix_is_a_folder, setup, teardown),
        cmocka_unit_test_setup_teardown(test_partial_failure_and_rollback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checksum_none, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kill_mid_upload_resumes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_usage_and_config_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_single_get_of_a_non_file_name, setup, teardown),
        cmocka_unit_test_setup_teardown(test_links_at_each_depth, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unreachable_endpoint_stops_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_names, setup, teardown),
    };
    return sky_test_run_group(tests, group_setup, group_teardown);
}
