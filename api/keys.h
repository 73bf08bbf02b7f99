/* api/keys.h — the etcd v2 keys protocol: request parsing (pure) and the HTTP handler.
 *
 * api_keys_parse() turns method + store key + form into a typed request or an etcd error,
 * checking parameters in etcd's own order (v2http parseKeyRequest) and mapping PUT/POST/DELETE
 * onto kv_cmd exactly as etcd's applier does (upstream-behaviour §2.1). It needs no h2o, no
 * clock (now_ms is passed in) and no store, so it is unit-tested directly.
 */
#ifndef DISCOVERYD_API_KEYS_H
#define DISCOVERYD_API_KEYS_H

#include <stdbool.h>
#include <stdint.h>
#include "api/api.h"
#include "api/form.h"
#include "store/kv.h"

enum api_method { API_M_GET, API_M_HEAD, API_M_PUT, API_M_POST, API_M_DELETE, API_M_OTHER };
enum api_method api_method_of(const char *s, size_t len);

/* discoveryd's own error codes on the keys surface (the store uses 1001..1099). */
enum api_ecode {
    API_E_FORBIDDEN = 1100,        /* 403: outside /v2/keys/discovery/<token> */
    API_E_VALUE_TOO_LARGE = 1101,  /* 413 */
    API_E_KEY_TOO_LONG = 1102,     /* 400 */
    API_E_BODY_TOO_LARGE = 1103,   /* 413 */
    API_E_RATE_LIMITED = 1104,     /* 429 */
    API_E_TOO_MANY_WATCHES = 1105, /* 429 */
    API_E_BAD_SIZE = 1106,         /* 400: _config/size must be 1..max_size */
    API_E_TOKENS_FULL = 1107,      /* 503: --max-tokens live tokens (capacity is transient) */
};
/* Message for etcd codes (kv_err_message) and for the api's own. */
const char *api_err_message(int code);
/* HTTP status for etcd codes (as etcd v2 answers them) and for the api's own. */
int api_err_http_status(int code);

enum api_keys_kind {
    API_KEYS_READ,  /* GET/HEAD: read (quorum: through a NODE_OP_QUORUM barrier first) */
    API_KEYS_WATCH, /* GET wait=true */
    API_KEYS_WRITE, /* PUT/POST/DELETE: cmd */
};

struct api_keys_req {
    enum api_keys_kind kind;
    bool head; /* HEAD: headers only */
    bool recursive, sorted, quorum, stream;
    bool no_value_on_success;
    uint64_t wait_index; /* WATCH */
    struct kv_cmd cmd;   /* WRITE: strings point into the key and the form */
    bool registration;   /* WRITE that may add a member directly under the token dir */
    bool config_size;    /* WRITE of <token>/_config/size (may create a token by hand) */
    bool token_dir;      /* the key is the token dir itself */
};

struct api_keys_err {
    int code; /* etcd / api error code; 0 with http_status 405 for a bad method */
    int http_status;
    char cause[160];
};

/* Parse one keys request. key is the store key from the route ("/discovery/<token>[/rest]"),
 * longest its longest component below the token. Returns 0 with *out filled, or the error code
 * (405 for an unsupported method) with *err filled. Form errors carry index 0, as etcd. */
int api_keys_parse(const struct api_config *cfg, enum api_method m, const char *key, uint32_t key_len,
                   uint32_t token_len, uint32_t longest, const struct api_form *form, int64_t now_ms,
                   struct api_keys_req *out, struct api_keys_err *err);

/* Parse a size as /new and _config/size accept it: kv_parse_size (the store's rule), then <= max.
 * 0 or -1. */
int api_parse_size(const char *s, size_t len, uint32_t max, uint32_t *out);

#endif
