/* web/web_files.h — the files under web/ as the build embeds them (web/embed.cmake writes the
 * table; no file is read at run time). Read-only data, any thread. api/web.c serves them.
 */
#ifndef DISCOVERYD_WEB_WEB_FILES_H
#define DISCOVERYD_WEB_WEB_FILES_H

#include <stddef.h>

struct web_file {
    const char *name;          /* file name under web/, e.g. "app.css" */
    const char *type;          /* Content-Type, from the extension */
    const unsigned char *data; /* the bytes, plus a NUL after the last (not counted in len) */
    size_t len;
    const char *etag; /* quoted strong ETag: "\"<16 hex of SHA-256>\"" */
};

extern const struct web_file web_files[];
extern const size_t web_files_count;

#endif
