/* service/log.c — the process logger: "2026-11-20T23:40:01.123Z info message" lines on stderr.
 *
 * The level is process-wide state, which is allowed in service/ only; it is written before the
 * threads start and only read afterwards.
 */
#include "service/log.h"

#include "api/api.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static enum svc_log_level svc_log_level = SVC_LOG_INFO;

void svc_log_set_level(enum svc_log_level level)
{
    svc_log_level = level;
}

static void vlog(enum svc_log_level level, const char *fmt, va_list ap)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};
    char msg[2048], line[4096], stamp[32];
    struct timespec ts;
    struct tm tm;
    if (level < svc_log_level)
        return;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    /* One line per entry: a caller's trailing newline is dropped; every other control byte, in
     * particular one from a client (a key, a name, a Host), is escaped (api_log_escape). */
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    api_log_escape(line, sizeof(line), msg, n);
    fprintf(stderr, "%s.%03ldZ %s %s\n", stamp, ts.tv_nsec / 1000000, names[level], line);
}

void svc_log(enum svc_log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog(level, fmt, ap);
    va_end(ap);
}

void svc_api_log(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog(SVC_LOG_INFO, fmt, ap);
    va_end(ap);
}
