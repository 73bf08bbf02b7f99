/* api/members.c — /v2/members in etcd v2's shape: the members of the discoveryd cluster this node
 * belongs to, with their IDs, names and peer URLs ({"members":[{"id","name","peerURLs",
 * "clientURLs"}]}). Membership is fixed at start for now, so POST (add) and DELETE (remove) answer
 * 501 with a reason. A node alone lists itself. HTTP threads.
 */
#include <inttypes.h>
#include <stdio.h>

#include "api/handlers.h"
#include "api/reply.h"

static void member_json(struct api_buf *b, uint64_t id, const char *name, const char *peer,
                        const char *client)
{
    api_buf_printf(b, "{\"id\":\"%" PRIx64 "\",\"name\":", id);
    api_json_str(b, name, strlen(name));
    api_buf_puts(b, ",\"peerURLs\":[");
    if (peer[0])
        api_json_str(b, peer, strlen(peer));
    api_buf_puts(b, "],\"clientURLs\":[");
    if (client[0])
        api_json_str(b, client, strlen(client));
    api_buf_puts(b, "]}");
}

void api_members_handle(struct api_thread *t, h2o_req_t *req, const struct api_route *r)
{
    if (api_is_method(req, "POST") || api_is_method(req, "DELETE") || api_is_method(req, "PUT")) {
        static const char body[] = "{\"message\":\"adding or removing members at run time is not built yet; "
                                   "restart every member with the new --initial-cluster\"}\n";
        api_send(t, req, API_ROUTE_MEMBERS, 501, "application/json", body, sizeof(body) - 1);
        return;
    }
    if (r->token != NULL || (!api_is_method(req, "GET") && !api_is_method(req, "HEAD"))) {
        api_send_405(t, req, API_ROUTE_MEMBERS, r->token ? "PUT, DELETE" : "GET, HEAD, POST");
        return;
    }
    const struct node_cluster *c = node_cluster(t->api->node);
    struct node_stats st;
    node_stats(t->api->node, &st);
    const char *self_client = t->api->cfg.public_url ? t->api->cfg.public_url : "";
    struct api_buf b = {0};
    api_buf_puts(&b, "{\"members\":[");
    if (c->n == 0)
        member_json(&b, st.member_id, "default", "", self_client);
    for (size_t i = 0; i < c->n; i++) {
        if (i)
            api_buf_puts(&b, ",");
        member_json(&b, c->members[i].id, c->members[i].name, c->members[i].peer_url,
                    i == c->self ? self_client : "");
    }
    api_buf_puts(&b, "]}\n");
    api_send_buf(t, req, API_ROUTE_MEMBERS, 200, "application/json", &b);
}
