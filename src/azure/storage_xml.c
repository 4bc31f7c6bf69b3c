/* What the Blob and Queue XML readers share: a walk over a body's elements through expat. */
#include "storage_xml.h"

#include <expat.h>
#include <stdio.h>
#include <string.h>

typedef struct xml_walk {
    XML_Parser p;
    sky_buf path;
    sky_buf text;
    sky__xml_start_fn on_start;
    sky__xml_end_fn on_end;
    void *ud;
    int rc;
} xml_walk;

static void XMLCALL on_start(void *ud, const XML_Char *name, const XML_Char **attrs)
{
    xml_walk *w = ud;
    (void)attrs;
    if (w->rc == 0)
        w->rc = sky_buf_printf(&w->path, "/%s", name);
    sky_buf_reset(&w->text);
    if (w->rc == 0 && w->on_start)
        w->rc = w->on_start(w->ud, w->path.data ? w->path.data : "");
    if (w->rc != 0)
        XML_StopParser(w->p, XML_FALSE);
}

static void XMLCALL on_end(void *ud, const XML_Char *name)
{
    xml_walk *w = ud;
    if (w->rc == 0 && w->text.data == NULL)
        w->rc = sky_buf_append(&w->text, "", 0);
    if (w->rc == 0)
        w->rc =
            w->on_end(w->ud, w->path.data ? w->path.data : "", w->text.data ? w->text.data : "");
    size_t n = strlen(name) + 1;
    w->path.len = w->path.len >= n ? w->path.len - n : 0;
    if (w->path.data)
        w->path.data[w->path.len] = '\0';
    sky_buf_reset(&w->text);
    if (w->rc != 0)
        XML_StopParser(w->p, XML_FALSE);
}

static void XMLCALL on_text(void *ud, const XML_Char *s, int len)
{
    xml_walk *w = ud;
    if (w->rc == 0)
        w->rc = sky_buf_append(&w->text, s, (size_t)len); /* SKY_ETOOBIG or SKY_ENOMEM */
}

int sky__xml_walk(sky_span xml, sky__xml_start_fn start, sky__xml_end_fn end, void *ud)
{
    xml_walk w;
    memset(&w, 0, sizeof(w));
    w.on_start = start;
    w.on_end = end;
    w.ud = ud;
    sky_buf_init(&w.path, 4096);
    sky_buf_init(&w.text, 1 << 20);
    w.p = XML_ParserCreate("UTF-8");
    if (w.p == NULL)
        return SKY_ENOMEM;
    XML_SetUserData(w.p, &w);
    XML_SetElementHandler(w.p, on_start, on_end);
    XML_SetCharacterDataHandler(w.p, on_text);
    /* Azure bodies may start with a UTF-8 BOM, which expat handles itself. */
    if (XML_Parse(w.p, xml.ptr ? xml.ptr : "", (int)xml.len, XML_TRUE) == XML_STATUS_ERROR &&
        w.rc == 0)
        w.rc = SKY_EPROTO;
    XML_ParserFree(w.p);
    sky_buf_free(&w.path);
    sky_buf_free(&w.text);
    return w.rc;
}

int sky__xml_depth(const char *path)
{
    int d = 0;
    for (const char *p = path; *p; p++)
        d += *p == '/';
    return d;
}

const char *sky__xml_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}
