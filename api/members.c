/* api/members.c — /v2/members in etcd v2's shape: GET lists the committed membership of the cluster
 * this node belongs to ({"members":[{"id","name","peerURLs","clientURLs"}]}; a node alone lists
 * itself); POST {"peerURLs":["http://HOST:PORT"]} adds a member and DELETE /v2/members/<hex id>
 * removes one, each through a NODE_OP_MEMBER (a Raft configuration change the leader makes, one at
 * a time), answered once it committed: 201 with the new member, 204; refusals as etcd's: 400 bad
 * body, 409 a peer URL that is already a member's, 404 an unknown ID, 412 a removal (or an addition)
 * that would leave the members the leader reaches short of a quorum, 503 while another change is
 * under way or there is no leader. PUT (changing a member's peer URLs) is not built: 501. HTTP threads.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "api/handlers.h"
#include "api/handoff.h"
#include "api/members.h"
#include "api/reply.h"
#include "store/node_members.h"

static const char *skip_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

/* A JSON string without escapes other than \/ (URLs need none): its bytes into out. */
static const char *json_string(const char *p, const char *end, char *out, size_t cap, size_t *outlen)
{
    if (p >= end || *p != '"')
        return NULL;
    size_t n = 0;
    for (p++; p < end && *p != '"'; p++) {
        char c = *p;
        if (c == '\\') {
            if (++p >= end || *p != '/')
                return NULL;
            c = '/';
        } else if ((unsigned char)c < 0x20) {
            return NULL;
        }
        if (n + 1 >= cap)
            return NULL;
        out[n++] = c;
    }
    if (p >= end)
        return NULL;
    out[n] = 0;
    *outlen = n;
    return p + 1;
}

static int refuse(char *why, size_t whylen, const char *what)
{
    snprintf(why, whylen, "%s", what);
    return -1;
}

int api_members_parse_add(const char *body, size_t len, char *url, size_t cap, char *why, size_t whylen)
{
    const char *p = body, *end = body + len;
    char key[32];
    size_t kl, ul = 0;
    bool have = false;
    p = skip_ws(p, end);
    if (p >= end || *p++ != '{')
        return refuse(why, whylen, "the body is not a JSON object like {\"peerURLs\":[\"http://HOST:PORT\"]}");
    p = skip_ws(p, end);
    while (p < end && *p != '}') {
        if (!(p = json_string(p, end, key, sizeof(key), &kl)) || (p = skip_ws(p, end)) >= end || *p++ != ':')
            return refuse(why, whylen, "the body is not valid JSON");
        p = skip_ws(p, end);
        if (strcmp(key, "peerURLs") != 0)
            return refuse(why, whylen, "unknown field in the body (only peerURLs is taken)");
        if (have || p >= end || *p++ != '[')
            return refuse(why, whylen, "peerURLs must be given once, as an array of strings");
        p = skip_ws(p, end);
        if (p < end && *p == ']')
            return refuse(why, whylen, "peerURLs is empty: give the new member's peer URL");
        if (!(p = json_string(p, end, url, cap, &ul)))
            return refuse(why, whylen, "peerURLs must hold one string of at most 255 bytes");
        p = skip_ws(p, end);
        if (p < end && *p == ',')
            return refuse(why, whylen, "peerURLs holds more than one URL: a member has one peer URL here");
        if (p >= end || *p++ != ']')
            return refuse(why, whylen, "the body is not valid JSON");
        have = true;
        p = skip_ws(p, end);
        if (p < end && *p == ',')
            p = skip_ws(p + 1, end);
    }
    if (p >= end || *p++ != '}' || skip_ws(p, end) != end)
        return refuse(why, whylen, "the body is not valid JSON");
    if (!have)
        return refuse(why, whylen, "peerURLs is missing: give the new member's peer URL");
    char host[256];
    uint16_t port;
    if (ul >= 256 || node_member_parse_url(url, ul, host, sizeof(host), &port) != 0)
        return refuse(why, whylen, "the peer URL is not http://HOST:PORT");
    return 0;
}

int api_members_parse_id(const char *s, size_t len, uint64_t *id)
{
    uint64_t v = 0;
    if (len == 0 || len > 16)
        return -1;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0)
            return -1;
        v = v << 4 | (uint64_t)d;
    }
    if (v == 0)
        return -1;
    *id = v;
    return 0;
}

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

static void send_message(struct api_thread *t, h2o_req_t *req, int status, const char *msg)
{
    struct api_buf b = {0};
    api_buf_puts(&b, "{\"message\":");
    api_json_str(&b, msg, strlen(msg));
    api_buf_puts(&b, "}\n");
    api_send_buf(t, req, API_ROUTE_MEMBERS, status, "application/json", &b);
}

static void on_member_done(struct node_op *nop)
{
    struct api_op *op = nop->data;
    h2o_req_t *req = api_op_take_req(op);
    struct api_thread *t = op->t;
    if (req == NULL)
        goto out;
    char why[640], line[700];
    switch (nop->status) {
    case NODE_OK:
        if (nop->member_op == NODE_MEMBER_REMOVE) {
            api_send(t, req, API_ROUTE_MEMBERS, 204, "application/json", "", 0);
        } else {
            struct api_buf b = {0};
            member_json(&b, nop->member->id, nop->member->name, nop->member->peer_url, "");
            api_buf_puts(&b, "\n");
            api_send_buf(t, req, API_ROUTE_MEMBERS, 201, "application/json", &b);
        }
        break;
    case NODE_EMEMBER_EXISTS:
        send_message(t, req, 409, "the peer URL is already a member's");
        break;
    case NODE_EMEMBER_FULL:
        send_message(t, req, 409, "the cluster has 16 members, the most it can have");
        break;
    case NODE_EMEMBER_ALONE:
        send_message(t, req, 409, "this discoveryd runs alone (no --initial-cluster): it has no membership to change");
        break;
    case NODE_EMEMBER_UNKNOWN:
        send_message(t, req, 404, "no member has this ID");
        break;
    case NODE_EMEMBER_BADURL:
        send_message(t, req, 400, "the peer URL is not http://HOST:PORT");
        break;
    case NODE_EMEMBER_QUORUM:
        send_message(t, req, 412,
                     "refused: the members the leader reaches now would not be a quorum after this change "
                     "(bring the missing members back first)");
        break;
    case NODE_EMEMBER_BUSY:
        send_message(t, req, 503, "another membership change is not committed yet (or a new leader has not "
                                  "committed an entry yet): retry");
        break;
    case NODE_ENOMEM:
        send_message(t, req, 500, "out of memory");
        break;
    default:
        snprintf(why, sizeof(why), "the store cannot commit right now");
        node_healthy(t->api->node, why, sizeof(why));
        snprintf(line, sizeof(line), "the membership change did not commit: %s", why);
        send_message(t, req, 503, line);
        break;
    }
out:
    api_op_free(op);
}

static void submit(struct api_thread *t, h2o_req_t *req, enum node_member_op mop, uint64_t id, const char *url)
{
    size_t ul = url ? strlen(url) : 0;
    struct api_op *op = api_op_new(t, req, API_ROUTE_MEMBERS, sizeof(struct node_member) + ul + 1);
    if (op == NULL) {
        send_message(t, req, 500, "out of memory");
        return;
    }
    op->op.type = NODE_OP_MEMBER;
    op->op.member_op = mop;
    op->op.member_id = id;
    op->op.member = (struct node_member *)op->buf; /* buf is aligned for it (handoff.h) */
    if (url) {
        memcpy(op->buf + sizeof(struct node_member), url, ul + 1);
        op->op.peer_url = op->buf + sizeof(struct node_member);
    }
    op->op.done = on_member_done;
    api_op_submit(op);
}

static void list(struct api_thread *t, h2o_req_t *req)
{
    struct node_cluster *c = malloc(sizeof(*c));
    if (c == NULL) {
        send_message(t, req, 500, "out of memory");
        return;
    }
    node_cluster(t->api->node, c);
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
    free(c);
    api_send_buf(t, req, API_ROUTE_MEMBERS, 200, "application/json", &b);
}

void api_members_handle(struct api_thread *t, h2o_req_t *req, const struct api_route *r)
{
    char why[200];
    if (r->token == NULL && api_is_method(req, "POST")) {
        char url[256];
        const char *body = req->entity.base ? req->entity.base : "";
        size_t len = req->entity.base ? req->entity.len : 0;
        if (len > t->api->cfg.max_body_bytes) {
            send_message(t, req, 413, "the request body is too large");
            return;
        }
        if (api_members_parse_add(body, len, url, sizeof(url), why, sizeof(why)) != 0) {
            send_message(t, req, 400, why);
            return;
        }
        submit(t, req, NODE_MEMBER_ADD, 0, url);
        return;
    }
    if (r->token != NULL && api_is_method(req, "DELETE")) {
        uint64_t id;
        if (api_members_parse_id(r->token, r->token_len, &id) != 0) {
            send_message(t, req, 400, "the member ID is not a hex number (as GET /v2/members lists it)");
            return;
        }
        submit(t, req, NODE_MEMBER_REMOVE, id, NULL);
        return;
    }
    if (r->token != NULL && api_is_method(req, "PUT")) {
        send_message(t, req, 501, "changing a member's peer URLs is not built: remove the member and add it "
                                  "again under the new URL");
        return;
    }
    if (r->token != NULL || (!api_is_method(req, "GET") && !api_is_method(req, "HEAD"))) {
        api_send_405(t, req, API_ROUTE_MEMBERS, r->token ? "PUT, DELETE" : "GET, HEAD, POST");
        return;
    }
    list(t, req);
}
