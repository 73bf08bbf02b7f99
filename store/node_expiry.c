/* store/node_expiry.c — token and TTL expiry: a timer on the store thread that, when something is
 * due, proposes a SWEEP command through the log like any other write, so every member applies the
 * same expirations at the same log position (the state machine never reads a clock).
 *
 * One SWEEP is in flight at a time; each removes at most SWEEP_BATCH nodes, so applying one holds
 * the store thread (and its write lock) for a bounded time (a few ms). When it applied and more is
 * already due, the next SWEEP is proposed on the next loop turn (other work goes between), so the
 * work follows what is due: expiry keeps up with any creation rate the log itself sustains. With
 * nothing left due the timer waits for the next due time (at most once a second, at least once a
 * minute).
 */
#include <string.h>

#include "store/node_int.h"
#include "store/node_raft.h"

#define SWEEP_MIN_MS 1000
#define SWEEP_MAX_MS 60000
#define SWEEP_BATCH 512

static void on_stimer(uv_timer_t *t);

/* Delay until the next sweep: the next due time, but at most every second, at least every 60 s. */
static int64_t sweep_delay(struct node *n, int64_t now)
{
    int64_t due = kv_next_due(n->kv, n->cfg.token_ttl_ms);
    int64_t d = due == INT64_MAX ? SWEEP_MAX_MS : due - now;
    if (d < SWEEP_MIN_MS)
        d = SWEEP_MIN_MS;
    if (d > SWEEP_MAX_MS)
        d = SWEEP_MAX_MS;
    return d;
}

static void rearm(struct node *n, int64_t now)
{
    int64_t d = sweep_delay(n, now);
    n->sweep_at = now + d;
    uv_timer_start(&n->stimer, on_stimer, (uint64_t)d, 0);
}

static void on_sweep_done(struct node_op *op)
{
    struct node *n = op->data;
    n->sweep_pending = false;
    kv_event_unref(op->event);
    op->event = NULL;
    bool failed = op->status != 0;
    kv_error_clear(&op->err);
    if (uv_is_closing((uv_handle_t *)&n->stimer))
        return;
    int64_t now = node_wall_ms();
    if (!failed && kv_next_due(n->kv, n->cfg.token_ttl_ms) <= now) {
        /* a backlog: the next batch at once (a failed one waits for the timer, not a spin) */
        __atomic_add_fetch(&n->st_sweeps_chained, 1, __ATOMIC_RELAXED);
        n->sweep_at = now;
        uv_timer_start(&n->stimer, on_stimer, 0, 0);
        return;
    }
    rearm(n, now);
}

static void on_stimer(uv_timer_t *t)
{
    struct node *n = t->data;
    int64_t now = node_wall_ms();
    if (n->sweep_pending || !node_raft_leads(n) || kv_next_due(n->kv, n->cfg.token_ttl_ms) > now) {
        rearm(n, now);
        return;
    }
    struct node_op *op = &n->sweep_op;
    memset(op, 0, sizeof(*op));
    op->type = NODE_OP_WRITE;
    op->cmd.type = KV_CMD_SWEEP;
    op->cmd.key = "";
    op->cmd.token_ttl_ms = n->cfg.token_ttl_ms > 0 ? n->cfg.token_ttl_ms : 0;
    op->cmd.sweep_max = SWEEP_BATCH;
    op->done = on_sweep_done;
    op->data = n;
    n->sweep_pending = true;
    __atomic_add_fetch(&n->st_sweeps, 1, __ATOMIC_RELAXED);
    node_raft_propose(n, op, NULL);
}

void node_expiry_after_apply(struct node *n)
{
    /* Only ever pulls the sweep earlier, so a steady stream of writes cannot keep postponing it. */
    if (n->sweep_pending || uv_is_closing((uv_handle_t *)&n->stimer))
        return;
    int64_t now = node_wall_ms();
    if (now + sweep_delay(n, now) < n->sweep_at)
        rearm(n, now);
}

void node_expiry_init(struct node *n)
{
    uv_timer_init(&n->loop, &n->stimer);
    n->stimer.data = n;
    rearm(n, node_wall_ms());
}

void node_expiry_close(struct node *n)
{
    uv_close((uv_handle_t *)&n->stimer, NULL);
}
