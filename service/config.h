/* service/config.h — discoveryd's command line and DISCOVERYD_* environment, parsed into one struct.
 *
 * Owned by main(): parsed once before anything starts, then read-only. svc_config_parse is pure
 * (no I/O besides reading the core count for the --threads default) so it is unit-tested directly.
 * Strings that are not copied (data_dir, tls paths) point into argv/envp, which outlive the config.
 */
#ifndef DISCOVERYD_SERVICE_CONFIG_H
#define DISCOVERYD_SERVICE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#define SVC_MAX_LISTEN 16
#define SVC_MAX_TRUSTED 64
#define SVC_DEFAULT_PORT 8087

enum svc_log_level { SVC_LOG_DEBUG, SVC_LOG_INFO, SVC_LOG_WARN, SVC_LOG_ERROR };

/* One --listen address: numeric IPv4 "1.2.3.4:80" or bracketed IPv6 "[::1]:80". Port 0 asks the
 * kernel for a free port (the startup log names the port actually bound). */
struct svc_listen {
    struct sockaddr_storage addr;
    socklen_t addrlen;
    bool v6;
    char text[80]; /* as written, normalised: "127.0.0.1:8087", "[::1]:8087" */
};

/* One --trusted-proxy network. IPv4 is kept IPv4-mapped (::ffff:a.b.c.d, bits + 96), so one
 * comparison serves both families. */
struct svc_cidr {
    uint8_t addr[16]; /* host bits zero */
    unsigned bits;    /* 0..128 */
    char text[80];    /* as written, normalised: "10.0.0.0/8", "2001:db8::/32" */
};

struct svc_config {
    struct svc_listen listen[SVC_MAX_LISTEN];
    size_t n_listen;
    bool listen_is_default; /* no --listen / DISCOVERYD_LISTEN: an address family the host lacks is skipped */
    char public_url[512];   /* "" = derive from Host; else scheme://host[:port] without trailing '/' */
    const char *data_dir;
    uint32_t max_size;
    int64_t watch_timeout_ms;
    int64_t token_ttl_ms; /* 0 = tokens never expire */
    uint32_t threads;
    uint32_t surplus;
    uint32_t max_value;
    uint32_t max_key;
    uint32_t max_body;
    uint32_t max_watches;
    uint32_t max_watches_per_client;
    uint32_t max_tokens; /* 0 = no cap */
    uint32_t history;
    uint32_t snapshot_count;
    double new_rate;
    uint32_t new_burst;
    double new_range_rate;
    uint32_t new_range_burst;
    double token_write_rate;
    uint32_t token_write_burst;
    const char *postgres; /* libpq connection string or URI; NULL: rate limits per process */
    uint32_t postgres_pool;
    int64_t postgres_timeout_ms;
    struct svc_cidr trusted[SVC_MAX_TRUSTED]; /* peers whose X-Forwarded-For is believed */
    size_t n_trusted;
    const char *tls_cert;
    const char *tls_key;
    /* a cluster of several discoveryd (etcd's flags; service/cluster.c turns them into members) */
    const char *name;
    const char *initial_cluster;       /* NULL: a one-member cluster of this node */
    const char *initial_cluster_state; /* "new" or "existing" */
    const char *listen_peer_urls;
    const char *advertise_peer_urls;
    const char *advertise_client_urls;
    int64_t heartbeat_ms;
    int64_t election_ms;
    const char *peer_cert;
    const char *peer_key;
    const char *peer_ca;
    enum svc_log_level log_level;
    bool help;    /* --help given: print svc_config_usage and exit 0 */
    bool version; /* --version given */
};

/* Exit status for a bad command line or environment. */
#define SVC_EXIT_USAGE 2

/* Parse argv (argv[0] is the program name) and envp (NULL-terminated "NAME=value" strings, or
 * NULL) into *cfg, defaults first, then the environment, then flags (a flag wins over its
 * DISCOVERYD_* twin). Returns 0, or SVC_EXIT_USAGE with a one-line reason naming the flag (or the
 * environment variable) in err, e.g. `--max-size: "abc" is not an integer from 1 to 1000`.
 * With --help or --version it stops early and returns 0 with cfg->help / cfg->version set. */
int svc_config_parse(struct svc_config *cfg, int argc, char **argv, char **envp, char *err, size_t errlen);

/* Every flag with its environment twin, default and meaning. */
void svc_config_usage(FILE *out);

/* Parse a Go-style duration ("500ms", "90s", "1h30m", "1.5h") into milliseconds. 0 or -1. */
int svc_parse_duration(const char *s, int64_t *ms);

/* "10.0.0.0/8", "::1/128", "192.0.2.7" (a host): 0, or -1 (not a network, or host bits set). */
int svc_parse_cidr(const char *s, struct svc_cidr *out);

/* Create cfg->data_dir (and missing parents, mode 0700) if it does not exist and check it is a
 * writable directory. 0, or -1 with a one-line reason in err. */
int svc_config_prepare_data_dir(const struct svc_config *cfg, char *err, size_t errlen);

#endif
