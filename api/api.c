/* api/api.c — the api's process-wide state (api.h): configuration defaults, api_new/api_free, the
 * default log sink, and the small shared helpers of api_int.h. It calls no other api file, so
 * every route and helper may build on it.
 */
#include "api/api_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

size_t api_log_escape(char *dst, size_t cap, const char *src, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)src[i];
        if (c < 0x20 || c == 0x7f) {
            if (o + 4 >= cap)
                break;
            dst[o++] = '\\';
            dst[o++] = 'x';
            dst[o++] = hex[c >> 4];
            dst[o++] = hex[c & 15];
        } else {
            if (o + 1 >= cap)
                break;
            dst[o++] = (char)c;
        }
    }
    dst[o] = '\0';
    return o;
}

static void log_stderr(const char *fmt, ...)
{
    char ts[32], msg[2048], line[4096];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    api_log_escape(line, sizeof(line), msg, (size_t)n < sizeof(msg) ? (size_t)n : sizeof(msg) - 1);
    fprintf(stderr, "%s api: %s\n", ts, line);
}

void (*api_log)(const char *fmt, ...) = log_stderr;

const double api_lat_bounds[API_LAT_BUCKETS] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                 0.1,    0.25,  1,      5,     30,    60};

const int api_metric_codes[API_NCODES - 1] = {200, 201, 400, 403, 404, 405, 412, 413, 429, 500, 503, 0};

void api_config_defaults(struct api_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->max_size = 15;
    cfg->surplus = 16;
    cfg->max_value_bytes = 4096;
    cfg->max_key_bytes = 255;
    cfg->max_body_bytes = 65536;
    cfg->token_ttl_ms = NODE_TOKEN_TTL_DEFAULT_MS;
    cfg->rate_timeout_ms = 200;
}

int api_new(struct api **out, const struct api_config *cfg, struct node *node)
{
    struct api *api = calloc(1, sizeof(*api));
    if (api == NULL)
        return -1;
    api->cfg = *cfg;
    if (cfg->public_url != NULL) {
        /* the printed URL is base + "/" + token: drop trailing slashes once, here */
        size_t n = strlen(cfg->public_url);
        while (n > 0 && cfg->public_url[n - 1] == '/')
            n--;
        char *p = strndup(cfg->public_url, n);
        if (p == NULL) {
            free(api);
            return -1;
        }
        api->cfg.public_url = p;
    }
    api->node = node;
    *out = api;
    return 0;
}

void api_free(struct api *api)
{
    if (api == NULL)
        return;
    free((char *)api->cfg.public_url);
    free(api);
}

void *api_pool_alloc(void *pool, size_t sz)
{
    return h2o_mem_alloc_pool((h2o_mem_pool_t *)pool, sz);
}
