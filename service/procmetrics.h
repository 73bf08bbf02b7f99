/* service/procmetrics.h — the process's own /metrics lines: Prometheus's standard process_*
 * metrics (resident memory, open descriptors, CPU seconds, start time) and
 * discoveryd_build_info{version,commit}. Read from /proc at scrape time; HTTP threads.
 */
#ifndef DISCOVERYD_SERVICE_PROCMETRICS_H
#define DISCOVERYD_SERVICE_PROCMETRICS_H

#include <stddef.h>

/* Write the lines through write(wctx, s, n), as api_config.metrics_extra does. */
void svc_process_metrics(void (*write)(void *wctx, const char *s, size_t n), void *wctx);

#endif
