/* api/new.c — /new: validate the size, apply the creation rate limits, mint a token and store
 * /discovery/<token>/_config/size with a CREATE (so a collision could never overwrite a token),
 * once the limiter allowed it (possibly later, on this thread), then answer "<public base>/<token>"
 * with no trailing newline, as discovery.etcd.io does.
 */
#include <stdio.h>

#include "api/handlers.h"
#include "api/handoff.h"
#include "api/reply.h"
#include "api/request.h"
#include "api/web.h"

static void on_new_done(struct node_op *nop)
{
    struct api_op *op = nop->data;
    h2o_req_t *req = api_op_take_req(op);
    if (nop->status == 0) {
        atomic_fetch_add_explicit(&op->t->api->tokens_created, 1, memory_order_relaxed);
    }
    if (req == NULL)
        goto out;
    if (nop->status == 0 && api_web_wants_html(req)) {
        api_web_new_redirect(op->t, req, op->token, op->token_len); /* the form, without JavaScript */
    } else if (nop->status == 0) {
        char *body = h2o_mem_alloc_pool(&req->pool, op->answer_len);
        memcpy(body, op->answer, op->answer_len);
        api_send(op->t, req, API_ROUTE_NEW, 200, "text/plain; charset=utf-8", body, op->answer_len);
    } else if (nop->status == NODE_EUNAVAILABLE) {
        char why[640] = "the store cannot commit right now", line[700];
        node_healthy(op->t->api->node, why, sizeof(why));
        snprintf(line, sizeof(line), "unable to create a token: %s", why);
        api_send_text(op->t, req, API_ROUTE_NEW, 503, line);
    } else {
        char line[160];
        snprintf(line, sizeof(line), "unable to create a token: %s",
                 nop->status > 0 ? kv_err_message(nop->status) : "internal error");
        api_send_text(op->t, req, API_ROUTE_NEW, 500, line);
    }
out:
    api_op_free(op);
}

/* The creation limits decided (now, or later on this thread): store the token or answer 429. */
static void on_new_rate_checked(struct api_op *op, int refused, uint32_t retry_after)
{
    if (api_rate_settled(op, refused, retry_after))
        return;
    op->op.cmd.now_ms = node_wall_ms();
    api_op_submit(op);
}

void api_new_handle(struct api_thread *t, h2o_req_t *req)
{
    const struct api_config *cfg = &t->api->cfg;
    if (!api_is_method(req, "GET") && !api_is_method(req, "POST") && !api_is_method(req, "PUT")) {
        api_send_405(t, req, API_ROUTE_NEW, "GET, POST, PUT");
        return;
    }
    char line[160];
    if (req->entity.base != NULL && req->entity.len > cfg->max_body_bytes) {
        snprintf(line, sizeof(line), "the request body is larger than %u bytes", cfg->max_body_bytes);
        api_send_text(t, req, API_ROUTE_NEW, 413, line);
        return;
    }
    struct api_form form;
    int rc = api_request_form(req, &form);
    if (rc == -2) {
        api_send_text(t, req, API_ROUTE_NEW, 500, "out of memory");
        return;
    }
    if (rc != 0) {
        snprintf(line, sizeof(line), "bad form: %s", form.err);
        api_send_text(t, req, API_ROUTE_NEW, 400, line);
        return;
    }
    uint32_t size = 3 <= cfg->max_size ? 3 : cfg->max_size;
    const struct api_param *p = api_form_get(&form, "size");
    if (p != NULL && api_parse_size(p->value, p->value_len, cfg->max_size, &size) != 0) {
        snprintf(line, sizeof(line), "size must be an integer from 1 to %u", cfg->max_size);
        api_send_text(t, req, API_ROUTE_NEW, 400, line);
        return;
    }
    if (api_tokens_at_cap(t, req, API_ROUTE_NEW))
        return;
    char token[API_TOKEN_HEX_LEN + 1];
    if (api_token_mint(token) != 0) {
        api_send_text(t, req, API_ROUTE_NEW, 503, "unable to create a token: no cryptographic randomness");
        return;
    }

    /* the answer: the base URL (--public-url, or the listener's scheme + a valid Host) */
    struct api_buf base = {0};
    const char *why = NULL;
    if (api_base_url(t, req, &base, &why) != 0) {
        api_send_text(t, req, API_ROUTE_NEW, 400, why);
        return;
    }
    if (base.oom) {
        api_buf_free(&base);
        api_send_text(t, req, API_ROUTE_NEW, 500, "out of memory");
        return;
    }
    size_t base_len = base.len;
    char key[sizeof(KV_DISCOVERY_DIR) + API_TOKEN_HEX_LEN + 16];
    int key_len = snprintf(key, sizeof(key), KV_DISCOVERY_DIR "/%s/_config/size", token);
    char value[12];
    int value_len = snprintf(value, sizeof(value), "%u", size);
    size_t answer_len = base_len + 1 + API_TOKEN_HEX_LEN;
    struct api_op *op =
        api_op_new(t, req, API_ROUTE_NEW, (size_t)key_len + 1 + (size_t)value_len + 1 + answer_len);
    if (op == NULL) {
        api_buf_free(&base);
        api_send_text(t, req, API_ROUTE_NEW, 500, "out of memory");
        return;
    }
    char *b = op->buf;
    memcpy(b, key, (size_t)key_len + 1);
    op->op.cmd.key = b;
    op->op.cmd.key_len = (uint32_t)key_len;
    b += key_len + 1;
    memcpy(b, value, (size_t)value_len + 1);
    op->op.cmd.value = b;
    op->op.cmd.value_len = (uint32_t)value_len;
    b += value_len + 1;
    op->answer = b;
    memcpy(b, base.p, base_len);
    api_buf_free(&base);
    b[base_len] = '/';
    memcpy(b + base_len + 1, token, API_TOKEN_HEX_LEN);
    op->answer_len = answer_len;
    memcpy(op->token, token, API_TOKEN_HEX_LEN + 1);
    op->token_len = API_TOKEN_HEX_LEN;
    op->op.type = NODE_OP_WRITE;
    op->op.cmd.type = KV_CMD_CREATE;
    op->op.done = on_new_done;
    api_rate_add_new(op, req);
    api_op_rate_check(op, on_new_rate_checked);
}
