#!/usr/bin/env python3
# tests/integration/test_web_http.py — the web pages at the HTTP level: curl's answers do not
# change (/, /new, /<token> with Accept */* or none), browsers (Accept: text/html) get the pages
# with CSP, nosniff and caching headers, /new answers the no-JavaScript form with 303, assets
# carry ETags and answer If-None-Match with 304, hostile member values are HTML-escaped by the
# server, and /status carries "registered" and a Link to the page. (The browser itself: tests/e2e.)
# Run: DISCOVERYD_BIN=build/discoveryd python3 tests/integration/test_web_http.py

import os
import re
import sys
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

HTML = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
CURL = {"Accept": "*/*"}
HOME_LINE = ("discoveryd: an etcd discovery service. Create a token with: curl -w \"\\n\" "
             "'http://<this host>/new?size=3'\n")


def scenario_curl_unchanged(c, d):
    for hdrs, label in ((CURL, "Accept */*"), ({}, "no Accept"), ({"Accept": "application/json"}, "Accept json")):
        r = h.http_request(d.hostport, "GET", "/", headers=hdrs)
        c.eq("/ with %s: status" % label, r.status, 200)
        c.eq("/ with %s: the one plain line" % label, r.text, HOME_LINE)
        c.eq("/ with %s: text/plain" % label, r.header("Content-Type"), "text/plain; charset=utf-8")
    r = h.http_request(d.hostport, "GET", "/new?size=3", headers=CURL)
    c.eq("/new with Accept */*: 200", r.status, 200)
    c.check("/new with Accept */*: the URL, no newline", re.fullmatch(re.escape(d.base) + "/[0-9a-f]{32}", r.text), r.text)
    c.eq("/new with Accept */*: no Location", r.header("Location"), None)
    tok = r.text.rsplit("/", 1)[1]
    h.http_request(d.hostport, "PUT", "/v2/keys/discovery/%s/m1" % tok, body="value=n1=http://127.0.0.1:1")
    want = h.http_request(d.hostport, "GET", "/v2/keys/discovery/%s" % tok)
    for hdrs, label in ((CURL, "Accept */*"), ({}, "no Accept")):
        r = h.http_request(d.hostport, "GET", "/" + tok, headers=hdrs)
        c.eq("/<token> with %s: 200" % label, r.status, 200)
        c.eq("/<token> with %s: application/json" % label, r.header("Content-Type"), "application/json")
        c.eq("/<token> with %s: the v2 JSON of the private form" % label, r.body, want.body)
    # a browser asking for anything but the bare token gets the protocol, not the page
    for path in ("/%s?recursive=true" % tok, "/%s/m1" % tok, "/v2/keys/discovery/%s" % tok):
        r = h.http_request(d.hostport, "GET", path, headers=HTML)
        c.eq("%s with Accept text/html: still JSON" % path.replace(tok, "<token>"), r.header("Content-Type"),
             "application/json")
    r = h.http_request(d.hostport, "PUT", "/" + tok + "/m2", body="value=n2=http://127.0.0.1:2", headers=HTML)
    c.eq("PUT /<token>/m2 with Accept text/html: a v2 create", r.status, 201)


def scenario_pages(c, d):
    r = h.http_request(d.hostport, "GET", "/", headers=HTML)
    c.eq("/ for a browser: 200", r.status, 200)
    c.eq("/ for a browser: text/html", r.header("Content-Type"), "text/html; charset=utf-8")
    csp = r.header("Content-Security-Policy") or ""
    c.check("/ CSP: default-src 'none', scripts only from self, nothing inline",
            "default-src 'none'" in csp and "script-src 'self'" in csp and "unsafe" not in csp, csp)
    c.eq("/ nosniff", r.header("X-Content-Type-Options"), "nosniff")
    c.eq("/ Cache-Control", r.header("Cache-Control"), "no-cache")
    c.eq("/ Vary", r.header("Vary"), "Accept")
    c.check("/ shows the real host in the commands", ("curl -w &quot;\\n&quot; &#39;%s/new?size=" % d.base) in r.text
            or ("'%s/new?size=" % d.base) in r.text, r.text[:200])
    c.check("/ has a form posting to /new", '<form id="new-form" method="post" action="/new">' in r.text)
    c.check("/ has no inline script", re.search(r"<script(?![^>]*\bsrc=)", r.text) is None)
    r = h.http_request(d.hostport, "HEAD", "/", headers=HTML)
    c.eq("HEAD / for a browser: 200, no body", (r.status, r.body), (200, b""))
    r = h.http_request(d.hostport, "POST", "/", headers=HTML)
    c.eq("POST / for a browser: 405", r.status, 405)

    # the form without JavaScript: POST /new from a browser lands on the token page
    r = h.http_request(d.hostport, "POST", "/new", body="size=2", headers=HTML)
    c.eq("POST /new from the form: 303", r.status, 303)
    loc = r.header("Location") or ""
    c.check("POST /new from the form: Location is the token page", re.fullmatch("/[0-9a-f]{32}", loc), loc)
    c.eq("POST /new from the form: no-store", r.header("Cache-Control"), "no-store")
    tok = loc[1:]
    c.eq("the redirected-to token exists with size 2", d.status(tok).get("size"), 2)
    r = h.http_request(d.hostport, "POST", "/new", body="size=99", headers=HTML)
    c.eq("POST /new from the form with a bad size: still the one-line 400", (r.status, r.text),
         (400, "size must be an integer from 1 to 15\n"))

    # the token page, with a hostile member value escaped by the server
    hostile = "<script>alert(1)</script>"
    r = h.http_request(d.hostport, "PUT", "/v2/keys/discovery/%s/x1" % tok,
                       body="value=" + urllib.parse.quote(hostile + "=http://x\" onmouseover=\"y"))
    c.eq("hostile registration accepted", r.status, 201)
    r = h.http_request(d.hostport, "GET", "/" + tok, headers=HTML)
    c.eq("/<token> for a browser: 200", r.status, 200)
    c.eq("/<token> for a browser: text/html", r.header("Content-Type"), "text/html; charset=utf-8")
    c.eq("/<token> for a browser: no-store", r.header("Cache-Control"), "no-store")
    c.check("/<token> page has a CSP", "default-src 'none'" in (r.header("Content-Security-Policy") or ""))
    c.check("the hostile name is escaped", "&lt;script&gt;alert(1)&lt;/script&gt;" in r.text, r.text[-800:])
    c.check("no hostile markup survives", "<script>alert" not in r.text and '" onmouseover="' not in r.text)
    c.check("the page states 1 of 2", "Waiting for members: 1 of 2 registered." in r.text)
    c.check("the page shows the discovery URL", "%s/%s" % (d.base, tok) in r.text)
    r = h.http_request(d.hostport, "GET", "/0123456789abcdef0123456789abcdef", headers=HTML)
    c.eq("an unknown token's page: 404", r.status, 404)
    c.check("an unknown token's page says so", "No token by this name exists" in r.text)

    st = h.http_request(d.hostport, "GET", "/status/" + tok)
    c.eq("/status Link to the page", st.header("Link"), '</%s>; rel="alternate"; type="text/html"' % tok)
    m = st.json()["members"][0]
    c.check("/status members carry registered", re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", m.get("registered", "")), m)


def scenario_assets(c, d):
    page = h.http_request(d.hostport, "GET", "/", headers=HTML).text
    for name, ctype in (("app.css", "text/css; charset=utf-8"), ("app.js", "text/javascript; charset=utf-8"),
                        ("favicon.svg", "image/svg+xml")):
        m = re.search(r'/static/%s\?v=([0-9a-f]{16})' % re.escape(name), page)
        if not c.check("the page links %s by a versioned URL" % name, m):
            continue
        r = h.http_request(d.hostport, "GET", m.group(0))
        c.eq("%s: 200" % name, r.status, 200)
        c.eq("%s: Content-Type" % name, r.header("Content-Type"), ctype)
        c.eq("%s: ETag is the version" % name, r.header("ETag"), '"%s"' % m.group(1))
        c.eq("%s: nosniff" % name, r.header("X-Content-Type-Options"), "nosniff")
        c.eq("%s: versioned URL is immutable" % name, r.header("Cache-Control"), "public, max-age=31536000, immutable")
        r2 = h.http_request(d.hostport, "GET", "/static/" + name)
        c.eq("%s: unversioned URL revalidates" % name, r2.header("Cache-Control"), "no-cache")
        c.eq("%s: same bytes either way" % name, r2.body, r.body)
        r3 = h.http_request(d.hostport, "GET", "/static/" + name, headers={"If-None-Match": r.header("ETag")})
        c.eq("%s: If-None-Match gives 304 and no body" % name, (r3.status, r3.body), (304, b""))
        r4 = h.http_request(d.hostport, "GET", "/static/" + name, headers={"If-None-Match": '"0000000000000000"'})
        c.eq("%s: another ETag gives 200" % name, r4.status, 200)
    for path, want in (("/static/index.html", 404), ("/static/nope.js", 404), ("/static/app.js/x", 404),
                       ("/static", 404)):
        c.eq("GET %s" % path, h.http_request(d.hostport, "GET", path).status, want)
    c.eq("POST /static/app.js: 405", h.http_request(d.hostport, "POST", "/static/app.js").status, 405)
    metrics = d.metrics()
    c.check("/metrics counts page and static routes",
            'route="page",code="200"' in metrics and 'route="static",code="200"' in metrics)


def main():
    c = h.Checks("web pages over HTTP")
    if h.BACKEND != "discoveryd":
        c.skip("web pages", "discoveryd-only")
        print("0 passed, 0 failed")
        return
    try:
        d = h.DiscoverydBackend(c)
    except Exception as e:  # noqa: BLE001
        c.check("discoveryd started", False, e)
        c.finish()
    c.run("1. curl's answers do not change", scenario_curl_unchanged, d)
    c.run("2. pages for browsers, the form's redirect, escaping", scenario_pages, d)
    c.run("3. assets: ETag, 304, Cache-Control", scenario_assets, d)
    c.finish()


if __name__ == "__main__":
    main()
