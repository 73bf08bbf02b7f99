#!/usr/bin/env python3
# tests/integration/test_get_cache.py — an HTTP thread answers a repeated GET of a token's key from
# its copy of the rendered JSON (api/getcache.h), dropped when the apply seam changes the token
# (store/node_view.h). Each scenario reads twice on one keep-alive connection (so the second answer
# comes from the copy on that thread), changes the store, and reads again on the same connection:
# the answer must be what a fresh render gives — after a registration, after a TTL expiry (and the
# ttl field counting down while nothing is written), after a DELETE of the token dir — and the
# per-response headers (X-Etcd-Index, X-Raft-Index) must follow writes to other tokens. Without the
# invalidation each of these reads would return the stale copy. One HTTP thread, so every read
# of a scenario meets the same copy. A repeated target (path and query byte for byte) also skips
# routing and parsing: the token's HTML page (/<token>, no query, for a browser) must still be a
# page after JSON reads of the same target, and a HEAD still gets no body.
# Run: DISCOVERYD_BIN=build/discoveryd python3 tests/integration/test_get_cache.py

import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

MEMBER = "value=m1%3Dhttp%3A%2F%2F127.0.0.1%3A2380"


def get(ka, path):
    r, _ = ka.request("GET", path)
    return r


def nodes(r):
    return [(n["key"].rsplit("/", 1)[1], n.get("value"), n.get("ttl")) for n in r.json()["node"].get("nodes", [])]


def scenario_write(c, d):
    tok, _ = d.private_token(3)
    ka = h.KeepAlive(d.hostport)
    for q in ("", "?recursive=true", "?sorted=true", "?recursive=true&sorted=true"):
        path = d.dir_path(tok) + q
        a, b = get(ka, path), get(ka, path)
        c.eq("GET%s twice: the same bytes" % q, (b.status, b.body), (a.status, a.body))
    path = d.dir_path(tok) + "?recursive=false&sorted=false&quorum=false"
    get(ka, path)
    get(ka, path)
    w = h.http_request(d.hostport, "PUT", "/v2/keys/discovery/%s/aaaa1?prevExist=false" % tok, body=MEMBER)
    c.eq("a member registers", w.status, 201)
    r = get(ka, path)
    c.eq("the next GET on the same connection lists it", [n[0] for n in nodes(r)], ["aaaa1"])
    c.eq("... and its X-Etcd-Index is the write's", r.etcd_index(), w.etcd_index())
    for q in ("?recursive=true", "?sorted=true", "?recursive=true&sorted=true"):
        c.eq("... GET%s (copied before the write) lists it too" % q,
             [n[0] for n in nodes(get(ka, d.dir_path(tok) + q))], ["aaaa1"])
    # the copy of a member key changes with the member's value
    mpath = "/v2/keys/discovery/%s/aaaa1" % tok
    get(ka, mpath)
    get(ka, mpath)
    w = h.http_request(d.hostport, "PUT", mpath, body="value=changed")
    c.eq("the member's value is replaced", w.status, 200)
    c.eq("GET of the member key shows the new value", get(ka, mpath).json()["node"]["value"], "changed")
    # a hidden key under _config: the listing hides it, and a copy of _config shows it at once
    cpath = "/v2/keys/discovery/%s/_config?recursive=true" % tok
    before = [n["key"] for n in get(ka, cpath).json()["node"]["nodes"]]
    get(ka, cpath)
    h.http_request(d.hostport, "PUT", "/v2/keys/discovery/%s/_config/hiddentest" % tok, body="value=x")
    after = [n["key"] for n in get(ka, cpath).json()["node"]["nodes"]]
    c.eq("a new key under _config shows in the next GET of _config", len(after), len(before) + 1)
    c.eq("... and not in the token's listing", [n[0] for n in nodes(get(ka, path))], ["aaaa1"])
    ka.close()


def scenario_headers(c, d):
    """X-Etcd-Index and X-Raft-Index are per response: a write to another token moves them, while
    the body of this token's copy stays the same."""
    tok, _ = d.private_token(3)
    other, _ = d.private_token(3)
    ka = h.KeepAlive(d.hostport)
    path = d.dir_path(tok)
    get(ka, path)
    a = get(ka, path)
    w = h.http_request(d.hostport, "PUT", "/v2/keys/discovery/%s/bbbb1" % other, body=MEMBER)
    b = get(ka, path)
    c.eq("a write to another token leaves this token's body as it was", b.body, a.body)
    c.eq("... X-Etcd-Index is the store's index now (the other write's)", b.etcd_index(), w.etcd_index())
    c.check("... X-Raft-Index moved on", int(b.headers["X-Raft-Index"]) > int(a.headers["X-Raft-Index"]),
            (a.headers["X-Raft-Index"], b.headers["X-Raft-Index"]))
    c.eq("... X-Raft-Term is there", b.headers["X-Raft-Term"], a.headers["X-Raft-Term"])
    ka.close()


def scenario_ttl(c, d):
    tok, _ = d.private_token(3)
    ka = h.KeepAlive(d.hostport)
    path = d.dir_path(tok)
    w = h.http_request(d.hostport, "PUT", "/v2/keys/discovery/%s/cccc1?ttl=3" % tok, body=MEMBER)
    c.eq("a member registers with ttl=3", w.status, 201)
    first = nodes(get(ka, path))
    get(ka, path)
    c.check("the listing shows it with a ttl", len(first) == 1 and first[0][2] in (2, 3), first)
    seen = []

    def counted_down():
        n = nodes(get(ka, path))
        seen.append(n)
        return n and n[0][2] is not None and n[0][2] < first[0][2]
    h.wait_until(counted_down, 5, 0.05, "the ttl field to count down")
    c.check("with nothing written, the copy's ttl counts down", True)

    # the expiry is a SWEEP the store applies: a watch on another connection reports it; until then
    # this connection keeps reading, so that its copy is as fresh as it can be when the sweep lands
    done = threading.Event()
    ev = {}

    def watch():
        r = h.http_request(d.hostport, "GET", path + "/cccc1?wait=true&waitIndex=%d" % (w.etcd_index() + 1),
                           timeout=20)
        ev["r"] = r
        done.set()
    threading.Thread(target=watch, daemon=True).start()
    t_end = time.monotonic() + 15
    while not done.is_set() and time.monotonic() < t_end:
        get(ka, path)
    c.check("the watch reports the expiry", done.is_set() and ev["r"].json().get("action") == "expire",
            ev.get("r"))
    c.eq("the first GET after the expiry on the same connection no longer lists it", nodes(get(ka, path)), [])
    ka.close()


def scenario_delete(c, d):
    tok, _ = d.private_token(3)
    ka = h.KeepAlive(d.hostport)
    h.http_request(d.hostport, "PUT", "/v2/keys/discovery/%s/dddd1" % tok, body=MEMBER)
    path = d.dir_path(tok)
    get(ka, path)
    c.eq("the token dir reads 200", get(ka, path).status, 200)
    r = h.http_request(d.hostport, "DELETE", path + "?recursive=true")
    c.eq("DELETE of the token dir", r.status, 200)
    g = get(ka, path)
    c.eq("the next GET on the same connection is 404", g.status, 404)
    c.eq("... errorCode 100", json.loads(g.body).get("errorCode"), 100)
    # the same name made again starts from nothing
    h.http_request(d.hostport, "PUT", "/v2/keys/discovery/%s/_config/size" % tok, body="value=3")
    c.eq("made again, it lists no member", nodes(get(ka, path)), [])
    ka.close()


def scenario_targets(c, d):
    tok, _ = d.private_token(3)
    h.http_request(d.hostport, "PUT", "/v2/keys/discovery/%s/eeee1" % tok, body=MEMBER)
    ka = h.KeepAlive(d.hostport)
    html = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
    for path in ("/" + tok, "/" + tok + "?recursive=false", d.dir_path(tok)):
        a, b = get(ka, path), get(ka, path)
        c.eq("GET %s twice: JSON both times, the same bytes" % path.replace(tok, "<token>"),
             (b.status, b.header("Content-Type"), b.body), (200, "application/json", a.body))
        r, _ = ka.request("GET", path, headers=html)
        page = path == "/" + tok  # only the short form without a query is the token's page
        c.eq("... then a browser's GET of it: %s" % ("the HTML page" if page else "still JSON"),
             (r.status, r.header("Content-Type").split(";")[0]), (200, "text/html" if page else "application/json"))
        r, _ = ka.request("HEAD", path)
        c.eq("... a HEAD: 200, no body", (r.status, r.body), (200, b""))
        c.eq("... and JSON again after", get(ka, path).body, a.body)
    ka.close()


def main():
    c = h.Checks("copies of GET answers follow every change of their token")
    d = h.DiscoverydBackend(c, extra_args=["--threads", "1"])
    c.run("a write", scenario_write, d)
    c.run("per-response headers", scenario_headers, d)
    c.run("a TTL expiry", scenario_ttl, d)
    c.run("a DELETE of the token dir", scenario_delete, d)
    c.run("repeated targets", scenario_targets, d)
    c.finish()


if __name__ == "__main__":
    main()
