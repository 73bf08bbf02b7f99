#!/usr/bin/env python3
# tests/integration/test_bad_input.py — a table of malformed requests against discoveryd. Each row
# must get its exact status (and etcd errorCode where the v2 protocol defines one), be answered on a
# keep-alive connection that stays usable (a valid request follows on the same socket), and leave
# the store unchanged (token dir listings and X-Etcd-Index identical before and after; for /new
# failures that means no token was created either).
# Run: DISCOVERYD_BIN=build-itest/discoveryd python3 tests/integration/test_bad_input.py
#      DISCOVERYD_ITEST_BACKEND=etcd python3 tests/integration/test_bad_input.py
#        (runs only the rows whose answer real etcd v2 gives too: validates the table itself)

import os
import sys
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

Q = urllib.parse.quote
K = "/v2/keys/discovery/{T}"          # the main token dir, private form
MEMBER_ID = "aaaa000000000001"
MEMBER_VAL = "b1=http://127.0.0.1:10001"


def row(name, method, path, status, code=None, body=None, etcd=False, headers=None, json_body=None):
    return dict(name=name, method=method, path=path, status=status, code=code, body=body, etcd=etcd,
                headers=headers or {}, json_body=json_body)


def table():
    long_tok = "a" * 129
    long_key = "k" * 256
    rows = [
        # --- /new: size validation (400 text/plain, no token created)
        row("/new size=0", "GET", "/new?size=0", 400),
        row("/new size=-1", "GET", "/new?size=-1", 400),
        row("/new size=16 (> --max-size 15)", "GET", "/new?size=16", 400),
        row("/new size=abc", "GET", "/new?size=abc", 400),
        row("/new size=1.5", "GET", "/new?size=1.5", 400),
        row("/new size= (empty)", "GET", "/new?size=", 400),
        row("/new size=+3", "GET", "/new?size=%2B3", 400),
        row("/new size=99999999999999999999", "GET", "/new?size=99999999999999999999", 400),
        row("/new size=' 3'", "GET", "/new?size=%203", 400),
        row("/new POST body size=abc", "POST", "/new", 400, body="size=abc"),
        row("/new PUT body size=0", "PUT", "/new", 400, body="size=0"),
        row("/new size=%zz (bad percent-encoding)", "GET", "/new?size=%zz", 400),
        # --- token names and paths (400)
        row("private form: token of 129 chars (GET)", "GET", "/v2/keys/discovery/" + long_tok, 400),
        row("private form: token of 129 chars (PUT _config/size)", "PUT",
            "/v2/keys/discovery/%s/_config/size" % long_tok, 400, body="value=3"),
        row("private form: token with bad chars (PUT _config/size)", "PUT",
            "/v2/keys/discovery/bad%24name/_config/size", 400, body="value=3"),
        row("private form: token with '~' (GET)", "GET", "/v2/keys/discovery/ab~cd", 400),
        row("private form: token '..'", "GET", "/v2/keys/discovery/..", 400),
        row("private form: '..' below the token", "GET", K + "/../other", 400),
        row("private form: '.' component", "PUT", K + "/./x", 400, body="value=x"),
        row("private form: encoded slash in token", "GET", "/v2/keys/discovery/{T}%2Fx", 400),
        row("private form: encoded slash in key", "PUT", K + "/a%2Fb", 400, body="value=x"),
        row("private form: bad percent-encoding %zz in key", "PUT", K + "/a%zz", 400, body="value=x"),
        row("private form: truncated percent-encoding %4 in key", "PUT", K + "/a%4", 400, body="value=x"),
        row("private form: non-UTF-8 key %ff%fe", "PUT", K + "/%ff%fe", 400, body="value=x"),
        row("private form: non-UTF-8 value %ff%fe", "PUT", K + "/abc", 400, body="value=%ff%fe"),
        row("private form: key component of 256 bytes", "PUT", K + "/" + long_key, 400, body="value=x"),
        row("short form: token of 129 chars is no route", "GET", "/" + long_tok, 404),
        row("short form: bad percent-encoding in key", "PUT", "/{T}/a%zz", 400, body="value=x"),
        row("short form: encoded slash in key", "PUT", "/{T}/a%2Fb", 400, body="value=x"),
        # --- sizes (413)
        row("value of 4097 bytes", "PUT", K + "/big", 413, body="value=" + "v" * 4097),
        row("body over 64 KiB", "PUT", K + "/big", 413, body="value=x&pad=" + "p" * (64 * 1024 + 16)),
        # --- v2 form errors (400 + errorCode), the same on real etcd
        row("prevExist=maybe", "PUT", K + "/x?prevExist=maybe", 400, 209, body="value=x", etcd=True),
        row("prevExist=maybe in the body", "PUT", K + "/x", 400, 209, body="value=x&prevExist=maybe", etcd=True),
        row("recursive=yes on GET", "GET", K + "?recursive=yes", 400, 209, etcd=True),
        row("dir=2 on PUT", "PUT", K + "/d?dir=2", 400, 209, etcd=True),
        row("sorted=nope on GET", "GET", K + "?sorted=nope", 400, 209, etcd=True),
        row("recursive=yes on DELETE", "DELETE", K + "/" + MEMBER_ID + "?recursive=yes", 400, 209, etcd=True),
        row("stream=true on a watch (refused, not streamed)", "GET", K + "?wait=true&stream=true", 400, 209),
        row("stream=true on a recursive watch, short form", "GET", "/{T}?wait=true&recursive=true&stream=true", 400,
            209),
        row("waitIndex=-1", "GET", K + "?wait=true&waitIndex=-1", 400, 203, etcd=True),
        row("waitIndex=abc", "GET", K + "?wait=true&waitIndex=abc", 400, 203, etcd=True),
        row("waitIndex=1e3", "GET", K + "?wait=true&waitIndex=1e3", 400, 203, etcd=True),
        row("ttl=-5", "PUT", K + "/x?ttl=-5", 400, 202, body="value=x", etcd=True),
        row("ttl=abc", "PUT", K + "/x", 400, 202, body="value=x&ttl=abc", etcd=True),
        row("prevIndex=abc", "PUT", K + "/" + MEMBER_ID + "?prevIndex=abc", 400, 203, body="value=x", etcd=True),
        row("prevIndex=-1", "PUT", K + "/" + MEMBER_ID + "?prevIndex=-1", 400, 203, body="value=x", etcd=True),
        row("prevIndex=abc on DELETE", "DELETE", K + "/" + MEMBER_ID + "?prevIndex=abc", 400, 203, etcd=True),
        row("empty prevValue", "PUT", K + "/" + MEMBER_ID + "?prevValue=", 400, 201, body="value=x", etcd=True),
        row("wait=true on PUT", "PUT", K + "/x?wait=true", 400, 209, body="value=x", etcd=True),
        row("wait=true on DELETE", "DELETE", K + "/" + MEMBER_ID + "?wait=true", 400, 209, etcd=True),
        row("refresh=true with a value", "PUT", K + "/" + MEMBER_ID + "?refresh=true&ttl=30", 400, 211,
            body="value=x", etcd=True),
        row("refresh=true without ttl", "PUT", K + "/" + MEMBER_ID + "?refresh=true&prevExist=true", 400, 212,
            etcd=True),
        row("short form: recursive=yes", "GET", "/{T}?recursive=yes", 400, 209),
        row("short form: prevExist=maybe", "PUT", "/{T}/x?prevExist=maybe", 400, 209, body="value=x"),
        # --- store-level refusals (real etcd codes)
        row("DELETE the token dir without dir/recursive", "DELETE", K, 403, 102, etcd=True),
        row("DELETE the non-empty token dir with dir=true", "DELETE", K + "?dir=true", 403, 108, etcd=True),
        row("PUT prevExist=false on an existing member", "PUT", K + "/" + MEMBER_ID + "?prevExist=false", 412, 105,
            body="value=" + Q(MEMBER_VAL, safe=""), etcd=True),
        row("surplus cap: 3rd registration on a size-1 token with --surplus 1", "PUT",
            "/v2/keys/discovery/{S}/cccc000000000003?prevExist=false", 429,
            body="value=" + Q("s3=http://127.0.0.1:10013", safe="")),
        # --- methods (405)
        row("PATCH on a key", "PATCH", K + "/" + MEMBER_ID, 405, body="value=x", etcd=True),
        row("OPTIONS on a key", "OPTIONS", K + "/" + MEMBER_ID, 405),
        row("TRACE on the token dir", "TRACE", K, 405, etcd=True),
        row("PATCH on the short form", "PATCH", "/{T}", 405),
        # --- outside the discovery namespace (403)
        row("GET /v2/keys/other", "GET", "/v2/keys/other", 403, json_body=True),
        row("PUT /v2/keys/other", "PUT", "/v2/keys/other", 403, body="value=x", json_body=True),
        row("GET /v2/keys/", "GET", "/v2/keys/", 403, json_body=True),
        row("DELETE /v2/keys/_etcd?recursive=true", "DELETE", "/v2/keys/_etcd?recursive=true", 403, json_body=True),
    ]
    return rows


def snapshot(backend, toks):
    """X-Etcd-Index and the recursive listing of every token, read on a separate connection."""
    out = []
    for t in toks:
        r = h.http_request(backend.hostport, "GET", "/v2/keys/discovery/%s?recursive=true&sorted=true" % t)
        try:
            nodes = r.json().get("node", {}).get("nodes", [])
        except ValueError:
            nodes = None
        out.append((r.status, r.etcd_index(), nodes))
    r = h.http_request(backend.hostport, "GET", "/v2/keys/discovery/%s/_config/size" % toks[0])
    out.append((r.status, r.body))
    return out


def describe_change(before, after):
    parts = []
    for i, (b, a) in enumerate(zip(before[:-1], after[:-1])):
        if b != a:
            bk = sorted(n.get("key", "?") for n in (b[2] or []))
            ak = sorted(n.get("key", "?") for n in (a[2] or []))
            parts.append("token #%d: status %s->%s, X-Etcd-Index %s->%s, keys added %s, removed %s" % (
                i, b[0], a[0], b[1], a[1], [k[-40:] for k in ak if k not in bk], [k[-40:] for k in bk if k not in ak]))
    if before[-1] != after[-1]:
        parts.append("_config/size changed")
    return "; ".join(parts)[:600]


def run_row(c, backend, rw, toks):
    subst = {"T": toks[0], "S": toks[1] if len(toks) > 1 else "none"}
    path = rw["path"].format(**subst)
    before = snapshot(backend, toks)
    problems = []
    ka = h.KeepAlive(backend.hostport)
    try:
        r, will_close = ka.request(rw["method"], path, body=rw["body"], headers=rw["headers"])
        if r.status != rw["status"]:
            problems.append("status %d, want %d (body %r)" % (r.status, rw["status"], r.body[:200]))
        if r.header("Content-Length") is None:
            problems.append("no Content-Length")
        if rw["code"] is not None:
            try:
                j = r.json()
                if j.get("errorCode") != rw["code"]:
                    problems.append("errorCode %r, want %d" % (j.get("errorCode"), rw["code"]))
            except ValueError:
                problems.append("body is not JSON: %r" % r.body[:200])
            if not (r.header("Content-Type") or "").startswith("application/json"):
                problems.append("Content-Type %r" % r.header("Content-Type"))
            if r.header("X-Etcd-Index") is None:
                problems.append("no X-Etcd-Index")
        if rw["json_body"]:
            try:
                r.json()
            except ValueError:
                problems.append("body is not JSON: %r" % r.body[:200])
        if path.startswith("/new") and not (r.header("Content-Type") or "").startswith("text/plain"):
            problems.append("/new error Content-Type %r, want text/plain" % r.header("Content-Type"))
        if will_close:
            problems.append("server closed the keep-alive connection")
        else:
            r2, _ = ka.request("GET", backend.dir_path(toks[0]))
            if r2.status != 200:
                problems.append("follow-up GET on the same connection: %d" % r2.status)
            if not ka.same_socket():
                problems.append("follow-up GET needed a new connection")
    except Exception as e:  # noqa: BLE001
        problems.append("exception %s: %s" % (type(e).__name__, e))
    finally:
        ka.close()
    after = snapshot(backend, toks)
    if after != before:
        problems.append("store changed: %s" % describe_change(before, after))
    want = "%d%s" % (rw["status"], "/%d" % rw["code"] if rw["code"] is not None else "")
    c.check("%s %s -> %s" % (rw["method"], rw["name"], want), not problems, "; ".join(problems))


def register(backend, tok, mid, value):
    r = h.http_request(backend.hostport, "PUT", "/v2/keys/discovery/%s/%s?prevExist=false" % (tok, mid),
                       body="value=" + Q(value, safe=""))
    if r.status != 201:
        raise RuntimeError("registration %s/%s: %r" % (tok, mid, r))


def main():
    c = h.Checks("bad input: status, keep-alive, store unchanged")
    try:
        backend = h.start_backend(c, surplus=1, max_size=15)
    except Exception as e:  # noqa: BLE001
        c.check("backend started", False, e)
        c.finish()
    T, _ = backend.new_token(3)
    register(backend, T, MEMBER_ID, MEMBER_VAL)
    toks = [T]
    if backend.kind == "discoveryd":
        S, _ = backend.new_token(1)
        register(backend, S, "cccc000000000001", "s1=http://127.0.0.1:10011")
        register(backend, S, "cccc000000000002", "s2=http://127.0.0.1:10012")
        toks.append(S)
    rows = table()
    print("# %d rows" % len(rows))
    for rw in rows:
        if backend.kind != "discoveryd" and not rw["etcd"]:
            continue
        run_row(c, backend, rw, toks)
    # The valid counterparts still work afterwards (the table did not wedge anything).
    r = h.http_request(backend.hostport, "PUT", "/v2/keys/discovery/%s/bbbb000000000002?prevExist=false" % T,
                       body="value=" + Q("b2=http://127.0.0.1:10002", safe=""))
    c.eq("a valid registration after the table: 201", r.status, 201)
    if backend.kind == "discoveryd":
        r = h.http_request(backend.hostport, "GET", "/new?size=15")
        c.eq("/new?size=15 (= --max-size) is 200", r.status, 200)
    c.check("backend still running", backend.alive())
    c.finish()


if __name__ == "__main__":
    main()
