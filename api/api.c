/* api/api.c — the api's process-wide state (api.h): configuration defaults, api_new/api_free, the
 * default log sink, and the small shared helpers of api_int.h. It calls no other api file, so
 * every route and helper may build on it.
 */
#include "api/api_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static void log_stderr(const char *fmt, ...)
{
    char ts[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s api: ", ts);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

void (*api_log)(const char *fmt, ...) = log_stderr;

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
