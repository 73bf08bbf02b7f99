/* service/main.c — discoveryd's entry point: parse flags and environment, then run.
 *
 * Exit status: 0 after a clean stop (or --help/--version), 2 for a bad flag or environment value,
 * 1 when the service cannot start (address in use, data dir not writable, bad TLS files).
 */
#include <stdio.h>

#include "service/cluster.h"
#include "service/config.h"
#include "service/svc.h"

extern char **environ;

int main(int argc, char **argv)
{
    static struct svc_config cfg;
    char err[512];
    if (svc_config_parse(&cfg, argc, argv, environ, err, sizeof(err)) != 0) {
        fprintf(stderr, "discoveryd: %s\n", err);
        return SVC_EXIT_USAGE;
    }
    if (cfg.help) {
        svc_config_usage(stdout);
        return 0;
    }
    if (cfg.version) {
        printf("discoveryd %s\n", SVC_VERSION);
        return 0;
    }
    static struct node_cluster cluster; /* flags that do not fit together are a usage error too */
    if (svc_cluster_from_config(&cfg, &cluster, err, sizeof(err)) != 0) {
        fprintf(stderr, "discoveryd: %s\n", err);
        return SVC_EXIT_USAGE;
    }
    return svc_run(&cfg);
}
