/* service/svc.h — the process's life: wire config → node → rate limiter → api → HTTP threads,
 * wait for SIGINT/SIGTERM, then shut down in the order that lets every parked watch be answered.
 *
 * Called from one thread (main(), or a test), in order: svc_start, then svc_stop once.
 * svc_run is both around a wait for SIGINT/SIGTERM.
 *
 * Error convention of service/ (as of api/): functions return 0, or -1 with a one-line reason in
 * an errbuf that names the flag or file at fault; a bad start-up exits 2 with that line. Cleanup in
 * a function with several exits goes through lowercase labels: `fail:` unwinds, `out:` is the one
 * exit both paths share (the same in store/ and api/).
 */
#ifndef DISCOVERYD_SERVICE_SVC_H
#define DISCOVERYD_SERVICE_SVC_H

#include <stddef.h>
#include "service/config.h"

#define SVC_VERSION "0.1.0"

struct svc;

/* Start everything (data dir, listeners, node, rate limiter, api, HTTP threads) and log the
 * startup line. 0, or -1 with nothing left running and a one-line reason in err (also logged).
 * cfg must outlive the service. */
int svc_start(struct svc **out, const struct svc_config *cfg, char *err, size_t errlen);

/* "http://127.0.0.1:8087, http://[::]:8087": the addresses bound (port 0 resolved). */
const char *svc_addresses(const struct svc *s);

/* Graceful stop: stop accepting, complete parked watches, deliver every response owed, join the
 * threads, free everything. */
void svc_stop(struct svc *s);

/* Block SIGINT/SIGTERM (before any thread starts, so only sigwait sees them), ignore SIGPIPE,
 * start, wait for a stop signal, stop. Returns the process exit status: 0 after a clean stop,
 * 1 when something could not start (the reason is logged, naming the flag or address). */
int svc_run(const struct svc_config *cfg);

#endif
