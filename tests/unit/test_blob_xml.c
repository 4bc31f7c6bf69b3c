/* Tests for the Blob XML readers: listings, block lists, error bodies. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "azure/blob/internal.h"

static void test_list_blobs_with_prefixes(void **state)
{
    (void)state;
    const char xml[] =
        "\xEF\xBB\xBF<?xml version=\"1.0\" encoding=\"utf-8\"?>"
        "<EnumerationResults ServiceEndpoint=\"http://x/\" ContainerName=\"c\">"
        "<Prefix>d</Prefix><Delimiter>/</Delimiter><Blobs>"
        "<Blob><Name>a &amp; b.txt</Name><Properties><Content-Length>12</Content-Length>"
        "<Content-MD5>abc==</Content-MD5><Etag>0x1</Etag>"
        "<Last-Modified>Mon, 01 Jan 2024 00:00:00 GMT</Last-Modified></Properties>"
        "<Metadata><Name>not a blob name</Name></Metadata></Blob>"
        "<BlobPrefix><Name>dir/</Name></BlobPrefix>"
        "<Blob><Name>z</Name><Properties><Content-Length>0</Content-Length>"
        "<Content-MD5 /></Properties></Blob>"
        "</Blobs><NextMarker>2!16!bm9wZQ--</NextMarker></EnumerationResults>";
    sky__blob_list l;
    assert_int_equal(sky__blob_parse_list(sky_span_make(xml, sizeof(xml) - 1), &l), 0);
    assert_int_equal(l.count, 3);
    assert_string_equal(l.items[0].name, "a & b.txt");
    assert_int_equal(l.items[0].size, 12);
    assert_string_equal(l.items[0].content_md5, "abc==");
    assert_string_equal(l.items[0].etag, "0x1");
    assert_string_equal(l.items[0].last_modified, "Mon, 01 Jan 2024 00:00:00 GMT");
    assert_string_equal(l.items[1].name, "dir/");
    assert_int_equal(l.items[1].is_prefix, 1);
    assert_int_equal(l.items[1].size, -1);
    assert_string_equal(l.items[2].name, "z");
    assert_int_equal(l.items[2].size, 0);
    assert_null(l.items[2].content_md5);
    assert_string_equal(l.next_marker, "2!16!bm9wZQ--");
    sky__blob_list_free(&l);
}

static void test_list_containers_last_page(void **state)
{
    (void)state;
    const char xml[] = "<EnumerationResults><Containers><Container><Name>one</Name>"
                       "<Properties><Etag>e</Etag></Properties></Container>"
                       "<Container><Name>two</Name></Container></Containers>"
                       "<NextMarker /></EnumerationResults>";
    sky__blob_list l;
    assert_int_equal(sky__blob_parse_list(sky_span_make(xml, sizeof(xml) - 1), &l), 0);
    assert_int_equal(l.count, 2);
    assert_string_equal(l.items[1].name, "two");
    assert_null(l.next_marker);
    sky__blob_list_free(&l);
}

/* Elements named like a listing's, nested where no listing has them, are not items. */
static void test_list_nested_names_are_not_items(void **state)
{
    (void)state;
    const char *xml = "<?xml version=\"1.0\"?><EnumerationResults><Blobs><Blob><Name>a</Name>"
                      "<Properties><Content-Length>3</Content-Length><Content-MD5>"
                      "<Blobs><BlobPrefix><Name>p/</Name></BlobPrefix></Blobs>"
                      "</Content-MD5></Properties></Blob>"
                      "<BlobPrefix><Name>q/</Name></BlobPrefix>"
                      "<Blob><Name>b</Name></Blob></Blobs></EnumerationResults>";
    sky__blob_list l;
    assert_int_equal(sky__blob_parse_list(sky_span_cstr(xml), &l), 0);
    assert_int_equal(l.count, 3);
    assert_string_equal(l.items[0].name, "a");
    assert_int_equal(l.items[0].size, 3);
    assert_string_equal(l.items[1].name, "q/");
    assert_true(l.items[1].is_prefix);
    assert_int_equal(l.items[1].size, -1);
    assert_string_equal(l.items[2].name, "b");
    sky__blob_list_free(&l);
}

static void test_bad_xml(void **state)
{
    (void)state;
    sky__blob_list l;
    assert_int_equal(sky__blob_parse_list(SKY_SPAN_LIT("<EnumerationResults><Blobs>"), &l),
                     SKY_EPROTO);
    assert_int_equal(sky__blob_parse_list(SKY_SPAN_LIT("not xml"), &l), SKY_EPROTO);
    sky__blob_blocks b;
    assert_int_equal(sky__blob_parse_blocks(SKY_SPAN_LIT("<BlockList><x></BlockList>"), &b),
                     SKY_EPROTO);
}

static void test_block_list(void **state)
{
    (void)state;
    const char xml[] = "<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList>"
                       "<CommittedBlocks><Block><Name>QUFB</Name><Size>4</Size></Block>"
                       "</CommittedBlocks><UncommittedBlocks>"
                       "<Block><Name>QkJC</Name><Size>7</Size></Block>"
                       "<Block><Name>Q0ND</Name><Size>1</Size></Block>"
                       "</UncommittedBlocks></BlockList>";
    sky__blob_blocks b;
    assert_int_equal(sky__blob_parse_blocks(sky_span_make(xml, sizeof(xml) - 1), &b), 0);
    assert_int_equal(b.count, 3);
    assert_string_equal(b.names[0], "QUFB");
    assert_int_equal(b.sizes[0], 4);
    assert_string_equal(b.names[2], "Q0ND");
    assert_int_equal(b.sizes[2], 1);
    sky__blob_blocks_free(&b);
}

static void test_error_body(void **state)
{
    (void)state;
    char code[64], msg[128];
    const char xml[] = "<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>BlobNotFound</Code>"
                       "<Message>The specified blob does not exist.\nRequestId:42\nTime:x"
                       "</Message></Error>";
    sky__blob_parse_error(sky_span_make(xml, sizeof(xml) - 1), code, sizeof(code), msg,
                          sizeof(msg));
    assert_string_equal(code, "BlobNotFound");
    assert_string_equal(msg, "The specified blob does not exist.");
    sky__blob_parse_error(SKY_SPAN_LIT("garbage"), code, sizeof(code), msg, sizeof(msg));
    assert_string_equal(code, "");
    assert_string_equal(msg, "");
    sky__blob_parse_error(SKY_SPAN_LIT(""), code, 4, msg, sizeof(msg));
    assert_string_equal(code, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_list_blobs_with_prefixes),
        cmocka_unit_test(test_list_containers_last_page),
        cmocka_unit_test(test_list_nested_names_are_not_items),
        cmocka_unit_test(test_bad_xml),
        cmocka_unit_test(test_block_list),
        cmocka_unit_test(test_error_body),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
