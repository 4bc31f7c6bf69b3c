/* What the Blob and Queue XML readers share: a walk over a body's elements through expat. */
#ifndef SKY_AZURE_STORAGE_XML_H
#define SKY_AZURE_STORAGE_XML_H

#include "skyio/buf.h"
#include "skyio/error.h"

/* An element's start, with its slash-joined path ("/A/B"): 0, or an error that stops the walk. */
typedef int (*sky__xml_start_fn)(void *ud, const char *path);
/* An element's end, with its path and its text (never NULL): 0, or an error that stops it. */
typedef int (*sky__xml_end_fn)(void *ud, const char *path, const char *text);

/**
 * Walk @p xml (an empty body is malformed), calling @p on_start (may be NULL) and @p on_end
 * at each element. 0; the first nonzero a callback returned; SKY_EPROTO for malformed XML;
 * SKY_ETOOBIG (a path over 4 KiB, a text over 1 MiB) or SKY_ENOMEM.
 */
int sky__xml_walk(sky_span xml, sky__xml_start_fn on_start, sky__xml_end_fn on_end, void *ud);

/** How deep @p path is: its number of '/' ("/A/B": 2). */
int sky__xml_depth(const char *path);

/** The last name of @p path ("/A/B": "B"). */
const char *sky__xml_name(const char *path);

#endif
