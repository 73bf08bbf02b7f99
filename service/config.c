/* service/config.c — flags and DISCOVERYD_* environment variables → struct svc_config.
 *
 * One table describes every option: its flag, its environment twin (derived from the flag name),
 * its kind, limits, default and help text, so --help, the env file and the parser cannot drift.
 * Order of precedence: defaults, then the environment, then flags. Flags are parsed first and
 * remembered, so a bad environment value that a flag overrides does not stop the start.
 */
#define _GNU_SOURCE
#include "service/config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum opt_kind {
    OPT_UINT,
    OPT_DURATION,
    OPT_RATE,
    OPT_PATH,
    OPT_TEXT, /* a non-empty string kept as given (range_text names its argument in --help) */
    OPT_LISTEN,
    OPT_URL,
    OPT_LOGLEVEL,
    OPT_SECRET, /* a string that may hold a password: never echoed in a message */
    OPT_CIDR,
    OPT_HELP,
    OPT_VERSION,
};

struct opt {
    const char *name; /* flag without dashes; env twin is DISCOVERYD_ + upper(name), '-' -> '_' */
    enum opt_kind kind;
    size_t off;      /* field in struct svc_config */
    double min, max; /* OPT_UINT, OPT_RATE: inclusive; OPT_DURATION: milliseconds */
    bool zero_ok;    /* OPT_DURATION: 0 is allowed besides [min, max] */
    const char *range_text;
    const char *def; /* default as text (shown by --help, parsed at start) */
    const char *help;
};

#define F(field) offsetof(struct svc_config, field)

static const struct opt opts[] = {
    {"listen", OPT_LISTEN, F(listen), 0, 0, false, NULL, "0.0.0.0:8087,[::]:8087",
     "address to serve HTTP on, ADDR:PORT or [IPV6]:PORT; repeatable (env: comma-separated)"},
    {"public-url", OPT_URL, F(public_url), 0, 0, false, NULL, "",
     "base URL /new prints, e.g. https://discovery.example.com (default: http:// + Host header)"},
    {"data-dir", OPT_PATH, F(data_dir), 0, 0, false, NULL, "./discoveryd-data",
     "directory for durable state (created if missing)"},
    {"snapshot-count", OPT_UINT, F(snapshot_count), 1, 1000000000, false, NULL, "10000",
     "take a snapshot of the store every this many applied log entries (at least)"},
    {"max-size", OPT_UINT, F(max_size), 1, 1000, false, NULL, "15", "largest cluster size /new accepts"},
    {"watch-timeout", OPT_DURATION, F(watch_timeout_ms), 100, 3600000, false, "from 100ms to 1h", "60s",
     "a parked watch is answered 200 with an empty body after this long"},
    {"token-ttl", OPT_DURATION, F(token_ttl_ms), 1000, 87600.0 * 3600000, true,
     "from 1s to 87600h, or 0 for never", "168h", "tokens are deleted this long after creation"},
    {"threads", OPT_UINT, F(threads), 1, 1024, false, NULL, "number of cores", "HTTP threads"},
    {"surplus", OPT_UINT, F(surplus), 0, 1000, false, NULL, "16",
     "members a token accepts beyond its size (racing late registrations)"},
    {"max-value", OPT_UINT, F(max_value), 1, 1048576, false, NULL, "4096", "largest value in bytes"},
    {"max-key", OPT_UINT, F(max_key), 1, 4096, false, NULL, "255", "longest key name in bytes"},
    {"max-body", OPT_UINT, F(max_body), 1024, 16777216, false, NULL, "65536",
     "largest request body in bytes"},
    {"max-watches", OPT_UINT, F(max_watches), 1, 10000000, false, NULL, "65536", "parked watches in total"},
    {"max-watches-per-client", OPT_UINT, F(max_watches_per_client), 1, 10000000, false, NULL, "1024",
     "parked watches per client address"},
    {"max-tokens", OPT_UINT, F(max_tokens), 0, 1000000000, false, NULL, "900000",
     "live tokens; beyond, /new answers 503 + Retry-After (0: no cap; an empty token holds ~0.6 KB)"},
    {"history", OPT_UINT, F(history), 1000, 1000000, false, NULL, "1000", "events kept per token"},
    {"new-rate", OPT_RATE, F(new_rate), 0.001, 1000000, false, NULL, "1",
     "token creations per second per client address (IPv4 /32, IPv6 /64)"},
    {"new-burst", OPT_UINT, F(new_burst), 1, 1000000, false, NULL, "20",
     "burst of token creations per client address"},
    {"new-range-rate", OPT_RATE, F(new_range_rate), 0.001, 1000000, false, NULL, "10",
     "token creations per second per address range (IPv4 /24, IPv6 /48)"},
    {"new-range-burst", OPT_UINT, F(new_range_burst), 1, 1000000, false, NULL, "200",
     "burst of token creations per address range"},
    {"token-write-rate", OPT_RATE, F(token_write_rate), 0.001, 1000000, false, NULL, "10",
     "writes per second per token"},
    {"token-write-burst", OPT_UINT, F(token_write_burst), 1, 1000000, false, NULL, "100",
     "burst of writes per token"},
    {"postgres", OPT_SECRET, F(postgres), 0, 0, false, NULL, "",
     "PostgreSQL for rate limits shared by every node: libpq connection string or URI, e.g. "
     "postgresql://discoveryd:secret@db.example/discoveryd (default: limits per process)"},
    {"postgres-pool", OPT_UINT, F(postgres_pool), 1, 64, false, NULL, "4", "connections to --postgres"},
    {"postgres-timeout", OPT_DURATION, F(postgres_timeout_ms), 1, 10000, false, "from 1ms to 10s", "200ms",
     "longest wait for PostgreSQL's answer; then the per-process limiter decides that request"},
    {"trusted-proxy", OPT_CIDR, F(trusted), 0, 0, false, NULL, "",
     "CIDR of a proxy whose X-Forwarded-For names the client (right-most untrusted entry); "
     "repeatable (env: comma-separated)"},
    {"tls-cert", OPT_PATH, F(tls_cert), 0, 0, false, NULL, "",
     "PEM certificate chain; with --tls-key, serve HTTPS"},
    {"tls-key", OPT_PATH, F(tls_key), 0, 0, false, NULL, "", "PEM private key for --tls-cert"},
    {"name", OPT_TEXT, F(name), 0, 0, false, "NAME", "default", "this member's name in --initial-cluster"},
    {"initial-cluster", OPT_TEXT, F(initial_cluster), 0, 0, false, "NAME=URL,...", "",
     "every member of a new cluster: name=peer URL pairs (default: a one-member cluster of this node)"},
    {"initial-cluster-state", OPT_TEXT, F(initial_cluster_state), 0, 0, false, "new|existing", "new",
     "new: the members of --initial-cluster form a cluster; existing: join one that runs already, "
     "once POST /v2/members added this member's peer URL"},
    {"listen-peer-urls", OPT_TEXT, F(listen_peer_urls), 0, 0, false, "URL", "",
     "http://ADDR:PORT to accept other members on (default: this member's URL in --initial-cluster)"},
    {"initial-advertise-peer-urls", OPT_TEXT, F(advertise_peer_urls), 0, 0, false, "URL", "",
     "this member's peer URL as the others reach it (default: its URL in --initial-cluster)"},
    {"advertise-client-urls", OPT_TEXT, F(advertise_client_urls), 0, 0, false, "URL", "",
     "this member's client URL, for /v2/members (not built yet: accepted and unused)"},
    {"heartbeat-interval", OPT_DURATION, F(heartbeat_ms), 10, 10000, false, "from 10ms to 10s", "100ms",
     "how often the leader contacts the others (one Raft tick)"},
    {"election-timeout", OPT_DURATION, F(election_ms), 50, 60000, false, "from 50ms to 60s", "1s",
     "how long a member waits for the leader before it starts an election (>= 5 heartbeats)"},
    {"peer-cert-file", OPT_PATH, F(peer_cert), 0, 0, false, NULL, "", "PEM certificate for peer TLS"},
    {"peer-key-file", OPT_PATH, F(peer_key), 0, 0, false, NULL, "", "PEM private key for peer TLS"},
    {"peer-trusted-ca-file", OPT_PATH, F(peer_ca), 0, 0, false, NULL, "",
     "CA that every peer's certificate must come from (mutual TLS between members)"},
    {"log-level", OPT_LOGLEVEL, F(log_level), 0, 0, false, NULL, "info", "debug, info, warn or error"},
    {"help", OPT_HELP, 0, 0, 0, false, NULL, NULL, "print this help and exit"},
    {"version", OPT_VERSION, 0, 0, 0, false, NULL, NULL, "print the version and exit"},
};
#define N_OPTS (sizeof(opts) / sizeof(opts[0]))

static void env_name(const struct opt *o, char *buf, size_t len)
{
    size_t n = (size_t)snprintf(buf, len, "DISCOVERYD_");
    for (const char *p = o->name; *p && n + 1 < len; p++)
        buf[n++] = *p == '-' ? '_' : (char)toupper((unsigned char)*p);
    buf[n] = '\0';
}

static int fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (errlen > 0)
        vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return SVC_EXIT_USAGE;
}

/* Decimal digits only: no sign, no spaces, no hex (strtoul would accept all three). */
static int parse_uint(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    if (*s == '\0')
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        if (v > (UINT64_MAX - 9) / 10)
            return -1;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    *out = v;
    return 0;
}

/* "12", "0.5", "3." : digits with at most one '.'; rejects what strtod would also take
 * (inf, nan, hex floats, exponents, signs). */
static int parse_decimal(const char *s, double *out)
{
    int digits = 0, dots = 0;
    for (const char *p = s; *p; p++) {
        if (*p >= '0' && *p <= '9')
            digits++;
        else if (*p == '.' && dots == 0)
            dots++;
        else
            return -1;
    }
    if (digits == 0)
        return -1;
    *out = strtod(s, NULL);
    return 0;
}

int svc_parse_duration(const char *s, int64_t *ms)
{
    static const struct {
        const char *unit;
        double ns;
    } units[] = {
        /* longest first so "ms" is not read as "m" followed by garbage */
        {"ns", 1},   {"us", 1e3}, {"\xc2\xb5s", 1e3}, {"\xce\xbcs", 1e3},
        {"ms", 1e6}, {"s", 1e9},  {"m", 60e9},        {"h", 3600e9},
    };
    double total = 0;
    if (s == NULL || *s == '\0')
        return -1;
    if (strcmp(s, "0") == 0) {
        *ms = 0;
        return 0;
    }
    while (*s) {
        const char *start = s;
        bool seen_digit = false, seen_dot = false;
        while ((*s >= '0' && *s <= '9') || (*s == '.' && !seen_dot)) {
            if (*s == '.')
                seen_dot = true;
            else
                seen_digit = true;
            s++;
        }
        if (!seen_digit)
            return -1;
        char num[64];
        if ((size_t)(s - start) >= sizeof(num))
            return -1;
        memcpy(num, start, (size_t)(s - start));
        num[s - start] = '\0';
        double v = strtod(num, NULL);
        size_t u;
        for (u = 0; u < sizeof(units) / sizeof(units[0]); u++) {
            size_t ul = strlen(units[u].unit);
            if (strncmp(s, units[u].unit, ul) == 0) {
                s += ul;
                break;
            }
        }
        if (u == sizeof(units) / sizeof(units[0]))
            return -1; /* Go requires a unit on every number except a lone "0" */
        total += v * units[u].ns;
        if (total > 9.2e18)
            return -1;
    }
    *ms = (int64_t)(total / 1e6);
    return 0;
}

static int parse_listen(const char *s, struct svc_listen *l)
{
    char host[64];
    const char *colon;
    memset(l, 0, sizeof(*l));
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (close == NULL || close[1] != ':' || (size_t)(close - s - 1) >= sizeof(host))
            return -1;
        memcpy(host, s + 1, (size_t)(close - s - 1));
        host[close - s - 1] = '\0';
        colon = close + 1;
        l->v6 = true;
    } else {
        colon = strrchr(s, ':');
        if (colon == NULL || (size_t)(colon - s) >= sizeof(host) || memchr(s, ':', (size_t)(colon - s)))
            return -1; /* an unbracketed IPv6 address is ambiguous */
        memcpy(host, s, (size_t)(colon - s));
        host[colon - s] = '\0';
    }
    uint64_t port;
    if (parse_uint(colon + 1, &port) != 0 || port > 65535)
        return -1;
    if (l->v6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&l->addr;
        if (inet_pton(AF_INET6, host, &a->sin6_addr) != 1)
            return -1;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        l->addrlen = sizeof(*a);
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&l->addr;
        if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
            return -1;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)port);
        l->addrlen = sizeof(*a);
    }
    snprintf(l->text, sizeof(l->text), l->v6 ? "[%s]:%u" : "%s:%u", host, (unsigned)port);
    return 0;
}

/* Comma- or space-separated items (the environment form; a flag carries one), each parsed by one()
 * into slot *n (at most max). bad names an item that is not one, unparsed (too long, or none at
 * all), bad_parse one that one() refused, too_many the cap ("%s: more than %d addresses"). */
struct list_kind {
    int (*one)(const char *item, struct svc_config *cfg, size_t i);
    size_t max;
    const char *bad, *bad_parse, *too_many;
};

static int parse_list(const char *s, struct svc_config *cfg, size_t *n, const struct list_kind *k,
                      const char *who, char *err, size_t errlen)
{
    const char *p = s;
    bool any = false;
    while (*p) {
        while (*p == ',' || *p == ' ' || *p == '\t')
            p++;
        if (*p == '\0')
            break;
        const char *e = p;
        while (*e && *e != ',' && *e != ' ' && *e != '\t')
            e++;
        char item[128];
        if (*n == k->max)
            return fail(err, errlen, k->too_many, who, (int)k->max);
        if ((size_t)(e - p) >= sizeof(item))
            return fail(err, errlen, k->bad, who, (int)(e - p), p);
        memcpy(item, p, (size_t)(e - p));
        item[e - p] = '\0';
        if (k->one(item, cfg, *n) != 0)
            return fail(err, errlen, k->bad_parse, who, (int)strlen(item), item);
        (*n)++;
        any = true;
        p = e;
    }
    if (!any)
        return fail(err, errlen, k->bad, who, (int)strlen(s), s);
    return 0;
}

static int one_listen(const char *item, struct svc_config *cfg, size_t i)
{
    return parse_listen(item, &cfg->listen[i]);
}

static int parse_listen_list(const char *s, struct svc_config *cfg, bool append, const char *who, char *err,
                             size_t errlen)
{
    static const struct list_kind k = {
        one_listen, SVC_MAX_LISTEN, "%s: \"%.*s\" is not ADDR:PORT (e.g. 0.0.0.0:8087 or [::]:8087)",
        "%s: \"%.*s\" is not ADDR:PORT (e.g. 0.0.0.0:8087 or [::]:8087)", "%s: more than %d addresses"};
    if (!append)
        cfg->n_listen = 0;
    return parse_list(s, cfg, &cfg->n_listen, &k, who, err, errlen);
}

int svc_parse_cidr(const char *s, struct svc_cidr *out)
{
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    char host[64];
    const char *slash = strchr(s, '/');
    size_t hl = slash ? (size_t)(slash - s) : strlen(s);
    uint64_t bits = 0;
    bool v6 = memchr(s, ':', hl) != NULL;
    memset(out, 0, sizeof(*out));
    if (hl == 0 || hl >= sizeof(host))
        return -1;
    memcpy(host, s, hl);
    host[hl] = '\0';
    if (slash != NULL && (parse_uint(slash + 1, &bits) != 0 || strlen(slash + 1) > 3))
        return -1;
    if (v6) {
        if (inet_pton(AF_INET6, host, out->addr) != 1 || (slash ? bits : (bits = 128)) > 128)
            return -1;
        out->bits = (unsigned)bits;
    } else {
        struct in_addr a4;
        if (inet_pton(AF_INET, host, &a4) != 1 || (slash ? bits : (bits = 32)) > 32)
            return -1;
        memcpy(out->addr, mapped, 12);
        memcpy(out->addr + 12, &a4, 4);
        out->bits = (unsigned)bits + 96;
    }
    for (unsigned i = out->bits; i < 128; i++)
        if (out->addr[i / 8] & (0x80u >> (i % 8)))
            return -1; /* host bits set: say what you mean */
    snprintf(out->text, sizeof(out->text), "%s/%u", host, (unsigned)bits);
    return 0;
}

static int one_cidr(const char *item, struct svc_config *cfg, size_t i)
{
    return svc_parse_cidr(item, &cfg->trusted[i]);
}

static int parse_cidr_list(const char *s, struct svc_config *cfg, bool append, const char *who, char *err,
                           size_t errlen)
{
    static const struct list_kind k = {
        one_cidr, SVC_MAX_TRUSTED, "%s: \"%.*s\" is not a network (e.g. 10.0.0.0/8 or fd00::/8)",
        "%s: \"%.*s\" is not a network (e.g. 10.0.0.0/8 or fd00::/8; host bits must be zero)",
        "%s: more than %d networks"};
    if (!append)
        cfg->n_trusted = 0;
    return parse_list(s, cfg, &cfg->n_trusted, &k, who, err, errlen);
}

/* scheme://host[:port][/] — nothing else: /new appends "/<token>" to it. */
static int parse_url(const char *s, char *out, size_t outlen)
{
    const char *p;
    if (strncasecmp(s, "http://", 7) == 0)
        p = s + 7;
    else if (strncasecmp(s, "https://", 8) == 0)
        p = s + 8;
    else
        return -1;
    if (*p == '[') {
        const char *close = strchr(p, ']');
        if (close == NULL || close == p + 1)
            return -1;
        char h[64];
        struct in6_addr a6;
        if ((size_t)(close - p - 1) >= sizeof(h))
            return -1;
        memcpy(h, p + 1, (size_t)(close - p - 1));
        h[close - p - 1] = '\0';
        if (inet_pton(AF_INET6, h, &a6) != 1)
            return -1;
        p = close + 1;
    } else {
        const char *h = p;
        while (isalnum((unsigned char)*p) || *p == '.' || *p == '-' || *p == '_' || *p == '~')
            p++;
        if (p == h)
            return -1;
    }
    if (*p == ':') {
        const char *d = ++p;
        uint64_t port = 0;
        while (*p >= '0' && *p <= '9')
            p++;
        char num[8];
        if (p == d || (size_t)(p - d) >= sizeof(num))
            return -1;
        memcpy(num, d, (size_t)(p - d));
        num[p - d] = '\0';
        if (parse_uint(num, &port) != 0 || port == 0 || port > 65535)
            return -1;
    }
    size_t len = (size_t)(p - s);
    if (*p == '/' && p[1] == '\0')
        p++;
    if (*p != '\0' || len >= outlen)
        return -1;
    memcpy(out, s, len);
    out[len] = '\0';
    return 0;
}

/* Applies one value to its field. who is "--flag" or "DISCOVERYD_FLAG", for the message. */
static int apply(const struct opt *o, const char *v, struct svc_config *cfg, bool append, const char *who,
                 char *err, size_t errlen)
{
    /* Fields are reached by offset (one table for every option); memcpy keeps that free of
     * aliasing and alignment questions. */
    char *base = (char *)cfg;
    switch (o->kind) {
    case OPT_UINT: {
        uint64_t n;
        if (parse_uint(v, &n) != 0 || (double)n < o->min || (double)n > o->max)
            return fail(err, errlen, "%s: \"%s\" is not an integer from %.0f to %.0f", who, v, o->min,
                        o->max);
        uint32_t u = (uint32_t)n;
        memcpy(base + o->off, &u, sizeof(u));
        return 0;
    }
    case OPT_DURATION: {
        int64_t ms;
        if (svc_parse_duration(v, &ms) != 0 ||
            !((ms == 0 && o->zero_ok) || ((double)ms >= o->min && (double)ms <= o->max)))
            return fail(err, errlen, "%s: \"%s\" is not a duration %s (e.g. 90s, 15m, 1h30m)", who, v,
                        o->range_text);
        memcpy(base + o->off, &ms, sizeof(ms));
        return 0;
    }
    case OPT_RATE: {
        double d;
        if (parse_decimal(v, &d) != 0 || d < o->min || d > o->max)
            return fail(err, errlen, "%s: \"%s\" is not a number from 0.001 to 1000000 (per second)", who, v);
        memcpy(base + o->off, &d, sizeof(d));
        return 0;
    }
    case OPT_PATH:
        if (*v == '\0')
            return fail(err, errlen, "%s: must not be empty", who);
        memcpy(base + o->off, &v, sizeof(v));
        return 0;
    case OPT_TEXT:
    case OPT_SECRET:
        if (*v == '\0')
            return fail(err, errlen, "%s: must not be empty", who);
        memcpy(base + o->off, &v, sizeof(v));
        return 0;
    case OPT_CIDR:
        return parse_cidr_list(v, cfg, append, who, err, errlen);
    case OPT_LISTEN:
        cfg->listen_is_default = false;
        return parse_listen_list(v, cfg, append, who, err, errlen);
    case OPT_URL:
        if (parse_url(v, cfg->public_url, sizeof(cfg->public_url)) != 0)
            return fail(err, errlen,
                        "%s: \"%s\" is not an http:// or https:// URL without path, query or fragment", who,
                        v);
        return 0;
    case OPT_LOGLEVEL: {
        static const char *const names[] = {"debug", "info", "warn", "error"};
        for (int i = 0; i < 4; i++)
            if (strcasecmp(v, names[i]) == 0) {
                cfg->log_level = (enum svc_log_level)i;
                return 0;
            }
        return fail(err, errlen, "%s: \"%s\" is not one of debug, info, warn, error", who, v);
    }
    case OPT_HELP:
    case OPT_VERSION:
        break;
    }
    return 0;
}

static void set_defaults(struct svc_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    for (size_t i = 0; i < N_OPTS; i++) {
        const struct opt *o = &opts[i];
        if (o->def == NULL || o->def[0] == '\0' || o->kind == OPT_PATH || o->kind == OPT_SECRET)
            continue;
        if (o->kind == OPT_UINT && !isdigit((unsigned char)o->def[0]))
            continue; /* "number of cores" */
        char e[8];
        apply(o, o->def, cfg, false, o->name, e, sizeof(e)); /* the table's defaults are valid */
    }
    cfg->data_dir = "./discoveryd-data";
    cfg->listen_is_default = true;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    cfg->threads = n < 1 ? 1 : n > 1024 ? 1024 : (uint32_t)n;
}

static const char *env_lookup(char **envp, const char *name)
{
    size_t nl = strlen(name);
    for (char **e = envp; e != NULL && *e != NULL; e++)
        if (strncmp(*e, name, nl) == 0 && (*e)[nl] == '=')
            return *e + nl + 1;
    return NULL;
}

int svc_config_parse(struct svc_config *cfg, int argc, char **argv, char **envp, char *err, size_t errlen)
{
    bool by_flag[N_OPTS] = {false};
    if (errlen > 0)
        err[0] = '\0';
    set_defaults(cfg);

    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (arg[0] != '-' || arg[1] == '\0')
            return fail(err, errlen, "unexpected argument \"%s\" (see --help)", arg);
        /* Go's flag package accepts -flag and --flag; etcd users type both. */
        const char *name = arg + (arg[1] == '-' ? 2 : 1);
        const char *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        const struct opt *o = NULL;
        size_t oi;
        for (oi = 0; oi < N_OPTS; oi++)
            if (strlen(opts[oi].name) == nlen && strncmp(opts[oi].name, name, nlen) == 0) {
                o = &opts[oi];
                break;
            }
        if (o == NULL && nlen == 1 && name[0] == 'h') {
            o = &opts[N_OPTS - 2];
            oi = N_OPTS - 2;
        }
        if (o == NULL)
            return fail(err, errlen, "unknown flag \"%s\" (see --help)", arg);
        char who[64];
        snprintf(who, sizeof(who), "--%s", o->name);
        if (o->kind == OPT_HELP || o->kind == OPT_VERSION) {
            if (eq != NULL)
                return fail(err, errlen, "%s: takes no value", who);
            if (o->kind == OPT_HELP)
                cfg->help = true;
            else
                cfg->version = true;
            return 0;
        }
        const char *val;
        if (eq != NULL) {
            val = eq + 1;
        } else {
            if (i + 1 >= argc)
                return fail(err, errlen, "%s: missing value", who);
            val = argv[++i];
        }
        /* --listen and --trusted-proxy repeat: the first one replaces the default (or the
         * environment's) list, later ones add to it. */
        int rc = apply(o, val, cfg, (o->kind == OPT_LISTEN || o->kind == OPT_CIDR) && by_flag[oi], who, err,
                       errlen);
        if (rc != 0)
            return rc;
        by_flag[oi] = true;
    }

    for (size_t oi = 0; oi < N_OPTS; oi++) {
        const struct opt *o = &opts[oi];
        if (by_flag[oi] || o->kind == OPT_HELP || o->kind == OPT_VERSION)
            continue;
        char name[64];
        env_name(o, name, sizeof(name));
        const char *v = env_lookup(envp, name);
        if (v == NULL || *v == '\0')
            continue; /* an empty VAR= line in an env file means "unset" */
        int rc = apply(o, v, cfg, false, name, err, errlen);
        if (rc != 0)
            return rc;
    }

    if ((cfg->tls_cert == NULL) != (cfg->tls_key == NULL))
        return fail(err, errlen,
                    cfg->tls_cert ? "--tls-cert: given without --tls-key"
                                  : "--tls-key: given without --tls-cert");
    return 0;
}

void svc_config_usage(FILE *out)
{
    fprintf(out, "Usage: discoveryd [flags]\n"
                 "A self-hostable etcd discovery service (drop-in for discovery.etcd.io).\n"
                 "Every flag also reads its environment twin; a flag wins over the environment.\n\n");
    for (size_t i = 0; i < N_OPTS; i++) {
        const struct opt *o = &opts[i];
        char env[64], argbuf[64];
        const char *arg = "";
        switch (o->kind) {
        case OPT_UINT:
            arg = " N";
            break;
        case OPT_DURATION:
            arg = " DURATION";
            break;
        case OPT_RATE:
            arg = " RATE";
            break;
        case OPT_PATH:
            arg = strcmp(o->name, "data-dir") == 0 ? " DIR" : " FILE";
            break;
        case OPT_LISTEN:
            arg = " ADDR:PORT";
            break;
        case OPT_URL:
            arg = " URL";
            break;
        case OPT_LOGLEVEL:
            arg = " LEVEL";
            break;
        case OPT_SECRET:
            arg = " URL";
            break;
        case OPT_TEXT:
            snprintf(argbuf, sizeof(argbuf), " %s", o->range_text);
            arg = argbuf;
            break;
        case OPT_CIDR:
            arg = " CIDR";
            break;
        case OPT_HELP:
        case OPT_VERSION:
            break;
        }
        fprintf(out, "  --%s%s\n      %s\n", o->name, arg, o->help);
        if (o->kind == OPT_HELP || o->kind == OPT_VERSION)
            continue;
        env_name(o, env, sizeof(env));
        fprintf(out, "      env %s; default: %s\n", env, o->def[0] ? o->def : "(none)");
    }
    fprintf(out, "\nDurations are Go-style: 500ms, 90s, 15m, 168h, 1h30m.\n");
}

int svc_config_prepare_data_dir(const struct svc_config *cfg, char *err, size_t errlen)
{
    char path[4096];
    struct stat st;
    if (strlen(cfg->data_dir) >= sizeof(path)) {
        snprintf(err, errlen, "--data-dir: path too long");
        return -1;
    }
    strcpy(path, cfg->data_dir);
    /* mkdir -p: create each missing component in turn. */
    for (char *p = path + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p = '\0';
            if (mkdir(path, 0700) != 0 && errno != EEXIST) {
                snprintf(err, errlen, "--data-dir: cannot create \"%s\": %s", path, strerror(errno));
                return -1;
            }
            *p = c;
            if (c == '\0')
                break;
        }
    }
    if (stat(cfg->data_dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "--data-dir: \"%s\" is not a directory", cfg->data_dir);
        return -1;
    }
    if (access(cfg->data_dir, W_OK | X_OK) != 0) {
        snprintf(err, errlen, "--data-dir: \"%s\" is not writable: %s", cfg->data_dir, strerror(errno));
        return -1;
    }
    return 0;
}
