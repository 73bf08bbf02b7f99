/* service/server.h — the HTTP side of the process: listening sockets, TLS, and the HTTP threads
 * (each a libuv loop with its own h2o context) whose single catch-all handler is api_handle().
 *
 * Called from the main thread only, in this order: svc_server_new (binds every --listen address,
 * loads TLS; fails early naming the address), svc_server_start (threads up, serving),
 * svc_server_stop_accepting (returns once no thread accepts or hands a request to the api any
 * more: from then on the node may be stopped), svc_server_drain (threads deliver what the node
 * completed, close connections, exit and are joined), svc_server_free.
 */
#ifndef DISCOVERYD_SERVICE_SERVER_H
#define DISCOVERYD_SERVICE_SERVER_H

#include <stddef.h>
#include <stdint.h>
#include "api/api.h"
#include "service/config.h"

struct svc_server;

/* Bind and listen on every cfg->listen address, create the TLS context when configured.
 * 0, or -1 with a one-line reason in err (e.g. `cannot listen on 127.0.0.1:8087: Address already
 * in use`). cfg must outlive the server. */
int svc_server_new(struct svc_server **out, const struct svc_config *cfg, char *err, size_t errlen);

/* The addresses actually bound (port 0 resolved), as "http://127.0.0.1:8087, http://[::]:8087". */
const char *svc_server_addresses(const struct svc_server *srv);

/* Start cfg->threads HTTP threads serving through api. 0, or -1 with a reason in err. */
int svc_server_start(struct svc_server *srv, struct api *api, char *err, size_t errlen);

/* Close the listeners; requests that arrive after this are answered 503 without reaching the api.
 * Returns after every thread has acknowledged. */
void svc_server_stop_accepting(struct svc_server *srv);

/* Let every thread send the responses still owed (the node has completed them), close idle
 * connections, stop, and join. Gives up waiting for connections after grace_ms. Returns the
 * number of connections that had to be abandoned (0 on a clean drain). */
size_t svc_server_drain(struct svc_server *srv, int64_t grace_ms);

void svc_server_free(struct svc_server *srv);

#endif
