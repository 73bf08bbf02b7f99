/* service/log.h — one-line, timestamped logs to stderr, filtered by --log-level.
 *
 * The level is set once by main before any thread starts (svc_log_set_level); after that
 * svc_log may be called from any thread (each line is written with one fprintf, which stdio
 * locks, so lines never interleave). svc_api_log is what api_log points to.
 */
#ifndef DISCOVERYD_SERVICE_LOG_H
#define DISCOVERYD_SERVICE_LOG_H

#include "service/config.h"

void svc_log_set_level(enum svc_log_level level);
void svc_log(enum svc_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* api_log: the api's lines are logged at info level. */
void svc_api_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
