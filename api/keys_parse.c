/* api/keys_parse.c — v2 keys request validation and the request → kv_cmd mapping (pure).
 * The order of checks and the error causes are etcd 3.4's (v2http parseKeyRequest), so a
 * client sees the same first error etcd would report; discoveryd's caps come after them.
 */
#include "api/keys.h"

#include <stdio.h>
#include <string.h>

/* Longest TTL accepted (10 years): keeps now + ttl far from overflow and expiry times printable. */
#define API_TTL_MAX_S 315360000ULL

enum api_method api_method_of(const char *s, size_t len)
{
#define M(lit, v)                                                                                            \
    if (len == sizeof(lit) - 1 && memcmp(s, lit, len) == 0)                                                  \
        return v;
    M("GET", API_M_GET)
    M("HEAD", API_M_HEAD)
    M("PUT", API_M_PUT)
    M("POST", API_M_POST)
    M("DELETE", API_M_DELETE)
#undef M
    return API_M_OTHER;
}

const char *api_err_message(int code)
{
    switch (code) {
    case API_E_FORBIDDEN:
        return "Not served";
    case API_E_VALUE_TOO_LARGE:
        return "Value too large";
    case API_E_KEY_TOO_LONG:
        return "Key too long";
    case API_E_BODY_TOO_LARGE:
        return "Request body too large";
    case API_E_RATE_LIMITED:
        return "Rate limit exceeded";
    case API_E_TOO_MANY_WATCHES:
        return "Too many watches";
    case API_E_BAD_SIZE:
        return "Invalid size";
    case API_E_TOKENS_FULL:
        return "Too many tokens";
    default:
        return kv_err_message(code);
    }
}

int api_err_http_status(int code)
{
    switch (code) {
    case API_E_FORBIDDEN:
    case KV_ECONFIGLOCKED:
        return 403;
    case API_E_VALUE_TOO_LARGE:
    case API_E_BODY_TOO_LARGE:
        return 413;
    case API_E_KEY_TOO_LONG:
    case API_E_BAD_SIZE:
        return 400;
    case API_E_RATE_LIMITED:
    case API_E_TOO_MANY_WATCHES:
    case KV_ETOOMANYCHILDREN:
        return 429;
    /* etcd's own codes, as etcd v2 answers them (v2error's StatusCode) */
    case KV_ENOTFOUND:
        return 404;
    case KV_ENOTFILE:
    case KV_EDIRNOTEMPTY:
        return 403;
    case KV_ETESTFAILED:
    case KV_EEXISTS:
        return 412;
    case 110: /* EcodeUnauthorized */
        return 401;
    case KV_ERAFT:
    case KV_ELEADERELECT:
        return 500;
    case API_E_TOKENS_FULL:
        return 503;
    default:
        return 400;
    }
}

int api_parse_size(const char *s, size_t len, uint32_t max, uint32_t *out)
{
    uint32_t v;
    if (kv_parse_size(s, len, &v) != 0 || v > max)
        return -1;
    *out = v;
    return 0;
}

static int fail(struct api_keys_err *err, int code, const char *cause)
{
    err->code = code;
    err->http_status = api_err_http_status(code);
    snprintf(err->cause, sizeof(err->cause), "%s", cause);
    return code;
}

/* etcd getBool: absent = false; present = ParseBool of the first value. */
static int get_bool(const struct api_form *f, const char *name, bool *out)
{
    const struct api_param *p = api_form_get(f, name);
    *out = false;
    return p ? api_parse_bool(p->value, p->value_len, out) : 0;
}

static int get_uint(const struct api_form *f, const char *name, uint64_t *out)
{
    const struct api_param *p = api_form_get(f, name);
    *out = 0;
    return p ? api_parse_uint64(p->value, p->value_len, out) : 0;
}

int api_keys_parse(const struct api_config *cfg, enum api_method m, const char *key, uint32_t key_len,
                   uint32_t token_len, uint32_t longest, const struct api_form *form, int64_t now_ms,
                   struct api_keys_req *out, struct api_keys_err *err)
{
    memset(out, 0, sizeof(*out));
    memset(err, 0, sizeof(*err));
    if (m == API_M_OTHER) {
        err->http_status = 405;
        snprintf(err->cause, sizeof(err->cause), "Method Not Allowed");
        return 405;
    }
    uint64_t prev_index, wait_index;
    bool rec, sorted, wait, dir, quorum, stream, novalue;
    if (get_uint(form, "prevIndex", &prev_index) != 0)
        return fail(err, KV_EINDEXNAN, "invalid value for \"prevIndex\"");
    if (get_uint(form, "waitIndex", &wait_index) != 0)
        return fail(err, KV_EINDEXNAN, "invalid value for \"waitIndex\"");
    if (get_bool(form, "recursive", &rec) != 0)
        return fail(err, KV_EINVALIDFIELD, "invalid value for \"recursive\"");
    if (get_bool(form, "sorted", &sorted) != 0)
        return fail(err, KV_EINVALIDFIELD, "invalid value for \"sorted\"");
    if (get_bool(form, "wait", &wait) != 0)
        return fail(err, KV_EINVALIDFIELD, "invalid value for \"wait\"");
    if (get_bool(form, "dir", &dir) != 0)
        return fail(err, KV_EINVALIDFIELD, "invalid value for \"dir\"");
    if (get_bool(form, "quorum", &quorum) != 0)
        return fail(err, KV_EINVALIDFIELD, "invalid value for \"quorum\"");
    if (get_bool(form, "stream", &stream) != 0)
        return fail(err, KV_EINVALIDFIELD, "invalid value for \"stream\"");
    if (wait && m != API_M_GET)
        return fail(err, KV_EINVALIDFIELD, "\"wait\" can only be used with GET requests");
    /* Streaming watches would hold a connection and a parked-watch slot for as long as the client
     * likes and send events under no cap of ours; etcd's discovery client never asks for them. */
    if (wait && stream)
        return fail(err, KV_EINVALIDFIELD,
                    "stream=true is not served: watch with wait=true&waitIndex=<last modifiedIndex + 1> again "
                    "after each event");
    const struct api_param *pv = api_form_get(form, "prevValue");
    if (pv != NULL && pv->value_len == 0)
        return fail(err, KV_EPREVVALUE, "\"prevValue\" cannot be empty");
    if (get_bool(form, "noValueOnSuccess", &novalue) != 0)
        return fail(err, KV_EINVALIDFIELD, "invalid value for \"noValueOnSuccess\"");
    const struct api_param *ttlp = api_form_get(form, "ttl");
    bool has_ttl = false;
    uint64_t ttl = 0;
    if (ttlp != NULL && ttlp->value_len > 0) {
        if (api_parse_uint64(ttlp->value, ttlp->value_len, &ttl) != 0 || ttl > API_TTL_MAX_S)
            return fail(err, KV_ETTLNAN, "invalid value for \"ttl\"");
        has_ttl = true;
    }
    const struct api_param *pe = api_form_get(form, "prevExist");
    bool prev_exist = false;
    if (pe != NULL && api_parse_bool(pe->value, pe->value_len, &prev_exist) != 0)
        return fail(err, KV_EINVALIDFIELD, "invalid value for prevExist");
    const struct api_param *rp = api_form_get(form, "refresh");
    const struct api_param *val = api_form_get(form, "value");
    bool refresh = false;
    if (rp != NULL) {
        if (api_parse_bool(rp->value, rp->value_len, &refresh) != 0)
            return fail(err, KV_EINVALIDFIELD, "invalid value for refresh");
        if (refresh && val != NULL && val->value_len > 0)
            return fail(err, KV_EREFRESHVALUE, "A value was provided on a refresh");
        if (refresh && !has_ttl)
            return fail(err, KV_EREFRESHTTL, "No TTL value set");
    }

    /* discoveryd's caps: nothing above them is ever stored */
    if (longest > cfg->max_key_bytes) {
        snprintf(err->cause, sizeof(err->cause), "a key component is longer than %u bytes",
                 cfg->max_key_bytes);
        err->code = API_E_KEY_TOO_LONG;
        err->http_status = 400;
        return err->code;
    }
    if (val != NULL && val->value_len > cfg->max_value_bytes) {
        snprintf(err->cause, sizeof(err->cause), "the value is larger than %u bytes", cfg->max_value_bytes);
        err->code = API_E_VALUE_TOO_LARGE;
        err->http_status = 413;
        return err->code;
    }

    /* where the key sits relative to its token: "/discovery/" + token [+ "/" rest] */
    size_t tok_end = sizeof(KV_DISCOVERY_DIR) + token_len;
    out->token_dir = key_len == tok_end;
    const char *rest = out->token_dir ? "" : key + tok_end + 1;
    size_t rest_len = out->token_dir ? 0 : key_len - tok_end - 1;
    bool child = rest_len > 0 && memchr(rest, '/', rest_len) == NULL; /* directly under the token dir */
    bool config_size = rest_len == sizeof("_config/size") - 1 && memcmp(rest, "_config/size", rest_len) == 0;

    out->recursive = rec;
    out->sorted = sorted;
    out->quorum = quorum;
    out->stream = stream;
    out->no_value_on_success = novalue;
    if (m == API_M_GET || m == API_M_HEAD) {
        out->head = m == API_M_HEAD;
        /* etcd's HEAD is always a plain Get: no watch, no quorum */
        if (wait && m == API_M_GET) {
            out->kind = API_KEYS_WATCH;
            out->wait_index = wait_index;
        } else {
            out->kind = API_KEYS_READ;
            if (m == API_M_HEAD)
                out->quorum = false;
        }
        return 0;
    }

    struct kv_cmd *c = &out->cmd;
    out->kind = API_KEYS_WRITE;
    c->now_ms = now_ms;
    c->key = key;
    c->key_len = key_len;
    if (has_ttl)
        c->expire_ms = now_ms + (int64_t)ttl * 1000;
    c->refresh = refresh;
    if (pv != NULL) {
        c->has_prev_value = true;
        c->prev_value = pv->value;
        c->prev_value_len = pv->value_len;
    }
    c->prev_index = prev_index;
    bool compare = prev_index > 0 || pv != NULL;
    if (!dir && val != NULL) {
        c->value = val->value;
        c->value_len = val->value_len;
    }
    c->dir = dir;
    switch (m) {
    case API_M_PUT:
        if (pe != NULL) {
            if (prev_exist)
                c->type = compare ? KV_CMD_CAS : KV_CMD_UPDATE;
            else
                c->type = KV_CMD_CREATE;
        } else {
            c->type = compare ? KV_CMD_CAS : KV_CMD_SET;
        }
        if (c->type != KV_CMD_CAS) { /* etcd's Set/Create/Update ignore prevValue/prevIndex */
            c->has_prev_value = false;
            c->prev_value = NULL;
            c->prev_value_len = 0;
            c->prev_index = 0;
        }
        out->registration = child && rest[0] != '_' && (c->type == KV_CMD_SET || c->type == KV_CMD_CREATE);
        out->config_size = config_size;
        if (config_size && !dir && !refresh) {
            uint32_t size;
            if (c->value == NULL || api_parse_size(c->value, c->value_len, cfg->max_size, &size) != 0) {
                snprintf(err->cause, sizeof(err->cause), "size must be an integer from 1 to %u",
                         cfg->max_size);
                err->code = API_E_BAD_SIZE;
                err->http_status = 400;
                return err->code;
            }
        }
        break;
    case API_M_POST:
        c->type = KV_CMD_POST;
        c->refresh = false;
        c->has_prev_value = false;
        c->prev_value = NULL;
        c->prev_value_len = 0;
        c->prev_index = 0;
        out->registration = out->token_dir;
        break;
    case API_M_DELETE:
        c->value = NULL;
        c->value_len = 0;
        c->expire_ms = 0;
        c->refresh = false;
        if (compare) {
            c->type = KV_CMD_CAD;
            c->dir = false;
        } else {
            c->type = KV_CMD_DELETE;
            c->has_prev_value = false;
            c->recursive = rec;
            if (rec)
                c->dir = true;
        }
        break;
    default:
        break;
    }
    return 0;
}
