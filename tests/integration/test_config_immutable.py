#!/usr/bin/env python3
# tests/integration/test_config_immutable.py — a token's _config is immutable once the token
# exists: every row that would change or remove _config (DELETE of _config/size or of the _config
# dir, a PUT of another size, prevExist/CAS/refresh/TTL on it, a TTL on the _config dir) is 403
# with errorCode 1002 and a one-line cause, and leaves the token exactly as it was
# (size, listing, X-Etcd-Index). Re-sending the same size is allowed (a retried creation), and the
# owner's cleanup, DELETE of the whole token with recursive=true, works and is logged. Both forms
# (private /v2/keys/discovery/<T> and short /<T>) are covered; the rule is applied by the store in
# log order, so two racing writes cannot both pass it (checked with a burst of concurrent PUTs).
# Run: DISCOVERYD_BIN=build/discoveryd python3 tests/integration/test_config_immutable.py

import os
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

P = "/v2/keys/discovery/{T}"
S = "/{T}"


def row(name, method, path, body=None, status=403, code=1002):
    return dict(name=name, method=method, path=path, body=body, status=status, code=code)


REFUSED = [
    row("DELETE _config/size (private form)", "DELETE", P + "/_config/size"),
    row("DELETE _config/size (short form)", "DELETE", S + "/_config/size"),
    row("DELETE _config dir recursive", "DELETE", P + "/_config?recursive=true"),
    row("DELETE _config dir dir=true", "DELETE", P + "/_config?dir=true"),
    row("DELETE _config/size prevValue=3", "DELETE", P + "/_config/size?prevValue=3"),
    row("PUT _config/size another value", "PUT", P + "/_config/size", "value=5"),
    row("PUT _config/size another value (short form)", "PUT", S + "/_config/size", "value=5"),
    row("PUT _config/size prevExist=true", "PUT", P + "/_config/size?prevExist=true", "value=4"),
    row("PUT _config/size prevValue=3 (CAS)", "PUT", P + "/_config/size?prevValue=3", "value=4"),
    row("PUT _config/size same value with a TTL", "PUT", P + "/_config/size?ttl=5", "value=3"),
    row("PUT _config/size refresh", "PUT", P + "/_config/size?refresh=true&ttl=5&prevExist=true", None),
    row("PUT prevExist=true ttl on the _config dir", "PUT", P + "/_config?dir=true&prevExist=true&ttl=5", None),
]


def snapshot(d, tok):
    st = d.status(tok)
    r = h.http_request(d.hostport, "GET", "/v2/keys/discovery/%s/_config?recursive=true&sorted=true" % tok)
    return st["size"], r.status, r.text


def scenario_table(c, d):
    tok, _ = d.new_token(3)
    before = snapshot(d, tok)
    for rw in REFUSED:
        idx0 = d.listing(tok)[0]
        r = h.http_request(d.hostport, rw["method"], rw["path"].replace("{T}", tok), body=rw["body"])
        try:
            j = r.json()
        except ValueError:
            j = {}
        cause = j.get("cause", "")
        ok = r.status == rw["status"] and j.get("errorCode") == rw["code"] and cause and "\n" not in cause
        c.check("%s: %d errorCode %d, one-line cause" % (rw["name"], rw["status"], rw["code"]), ok, r)
        c.eq("%s: the token is unchanged" % rw["name"], (snapshot(d, tok), d.listing(tok)[0]), (before, idx0))


def scenario_allowed(c, d):
    tok, _ = d.new_token(3)
    r = h.http_request(d.hostport, "PUT", "/v2/keys/discovery/%s/_config/size" % tok, body="value=3")
    c.eq("PUT _config/size with the same value (a retried creation): 200", r.status, 200)
    c.eq("... size still 3", d.status(tok)["size"], 3)
    r = h.http_request(d.hostport, "PUT", "/v2/keys/discovery/%s/_config/hiddentest" % tok, body="value=x")
    c.eq("another key under _config stays writable (hidden keys, as etcd serves them)", r.status, 201)
    r = h.http_request(d.hostport, "DELETE", "/v2/keys/discovery/%s/_config/hiddentest" % tok)
    c.eq("... and deletable", r.status, 200)
    c.eq("... size still 3", d.status(tok)["size"], 3)
    r = h.http_request(d.hostport, "PUT", "/%s/aaaa1" % tok, body="value=m1%3Dhttp%3A%2F%2Fa%3A2380")
    c.eq("a member registers as usual", r.status, 201)
    r = h.http_request(d.hostport, "DELETE", "/%s/aaaa1" % tok)
    c.eq("a member's registration can be deleted", r.status, 200)
    r = h.http_request(d.hostport, "DELETE", "/%s?recursive=true" % tok)
    c.eq("DELETE /<token>?recursive=true (the owner's cleanup): 200", r.status, 200)
    r = h.http_request(d.hostport, "GET", "/status/%s" % tok)
    c.eq("... the token is gone", r.status, 404)
    c.check("... and the deletion is logged", ("token %s deleted" % tok) in d.log_text())
    # a token made by hand: its first size creates it, a second one is refused
    tok2, _ = d.private_token(2)
    r = h.http_request(d.hostport, "PUT", "/v2/keys/discovery/%s/_config/size" % tok2, body="value=7")
    c.eq("hand-made token: a second, different size is 403", r.status, 403)
    c.eq("... size still 2", d.status(tok2)["size"], 2)


def scenario_race(c, d):
    """Racing creations of one hand-made token with different sizes: exactly one size wins, and
    every other PUT is refused (the store decides in log order, not from a stale read)."""
    tok = "race-token-1"
    results = []
    lock = threading.Lock()

    def put(n):
        r = h.http_request(d.hostport, "PUT", "/v2/keys/discovery/%s/_config/size" % tok, body="value=%d" % n)
        with lock:
            results.append((n, r.status))
    threads = [threading.Thread(target=put, args=(n,)) for n in range(1, 9)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    won = [n for n, st in results if st in (200, 201)]
    refused = [n for n, st in results if st == 403]
    c.check("eight racing sizes: exactly one wins, the others are 403", len(won) == 1 and len(refused) == 7,
            sorted(results))
    c.eq("... and the token's size is the winner's", d.status(tok)["size"], won[0] if won else None)


def main():
    c = h.Checks("a token's _config is immutable once created")
    d = h.DiscoverydBackend(c)
    c.run("refused writes", scenario_table, d)
    c.run("allowed writes", scenario_allowed, d)
    c.run("racing creations", scenario_race, d)
    c.finish()


if __name__ == "__main__":
    main()
