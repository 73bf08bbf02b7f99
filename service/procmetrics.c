/* service/procmetrics.c — process_* metrics and the build info line (procmetrics.h). The start
 * time is the kernel's (/proc/self/stat starttime after boot, /proc/stat btime), so it is the
 * process's real start, not when we first looked.
 */
#define _GNU_SOURCE
#include "service/procmetrics.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "service/svc.h"

#ifndef DISCOVERYD_COMMIT
#define DISCOVERYD_COMMIT "unknown"
#endif

static double start_time_seconds(void)
{
    char buf[1024];
    FILE *f = fopen("/proc/self/stat", "r");
    if (f == NULL)
        return 0;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* field 22 (starttime); fields 3.. follow the ")" that closes the command name */
    char *p = strrchr(buf, ')');
    if (p == NULL)
        return 0;
    unsigned long long start = 0;
    int field = 2;
    for (char *tok = strtok(p + 1, " "); tok != NULL; tok = strtok(NULL, " ")) {
        if (++field == 22) {
            start = strtoull(tok, NULL, 10);
            break;
        }
    }
    unsigned long long btime = 0;
    f = fopen("/proc/stat", "r");
    if (f == NULL)
        return 0;
    char line[256];
    while (fgets(line, sizeof(line), f) != NULL)
        if (sscanf(line, "btime %llu", &btime) == 1)
            break;
    fclose(f);
    long hz = sysconf(_SC_CLK_TCK);
    return hz > 0 ? (double)btime + (double)start / (double)hz : 0;
}

static long open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return -1;
    long n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1; /* the directory's own descriptor */
}

static unsigned long long resident_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long long size = 0, rss = 0;
    if (f == NULL)
        return 0;
    if (fscanf(f, "%llu %llu", &size, &rss) != 2)
        rss = 0;
    fclose(f);
    return rss * (unsigned long long)sysconf(_SC_PAGESIZE);
}

void svc_process_metrics(void (*write)(void *wctx, const char *s, size_t n), void *wctx)
{
    char b[1536];
    struct timespec cpu;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu);
    int n = snprintf(
        b, sizeof(b),
        "# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
        "# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes %llu\n"
        "# HELP process_open_fds Number of open file descriptors.\n"
        "# TYPE process_open_fds gauge\nprocess_open_fds %ld\n"
        "# HELP process_max_fds Maximum number of open file descriptors.\n"
        "# TYPE process_max_fds gauge\nprocess_max_fds %ld\n"
        "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n"
        "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total %.3f\n"
        "# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.\n"
        "# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds %.2f\n"
        "# HELP discoveryd_build_info The running build: version and source commit.\n"
        "# TYPE discoveryd_build_info gauge\ndiscoveryd_build_info{version=\"%s\",commit=\"%s\"} 1\n",
        resident_bytes(), open_fds(), sysconf(_SC_OPEN_MAX), (double)cpu.tv_sec + (double)cpu.tv_nsec / 1e9,
        start_time_seconds(), SVC_VERSION, DISCOVERYD_COMMIT);
    if (n > 0 && (size_t)n < sizeof(b))
        write(wctx, b, (size_t)n);
}
