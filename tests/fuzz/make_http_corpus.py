#!/usr/bin/env python3
# tests/fuzz/make_http_corpus.py — writes fuzz_http's seed corpus: every request of the recorded
# etcd 3.4 exchange (tests/integration/reference/etcd-3.4-trace/proxy-run2.jsonl) as the raw bytes
# of one connection, and one seed per bug fixed in issue 11 (request framing, Host, _config, log
# escaping, stream=true, the token cap). Run: python3 tests/fuzz/make_http_corpus.py tests/fuzz/corpus/http

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TRACE = os.path.join(HERE, "..", "integration", "reference", "etcd-3.4-trace", "proxy-run2.jsonl")
TOK = "4068fe4b-9f9f-4768-9ea2-6208e77632aa"
FORM = "Content-Type: application/x-www-form-urlencoded\r\n"

BUGS = {
    "bug-two-content-lengths": "PUT /v2/keys/discovery/%s/k1 HTTP/1.1\r\nHost: x\r\n%sContent-Length: 7\r\n"
                               "Content-Length: 40\r\n\r\nvalue=x" % (TOK, FORM),
    "bug-length-and-chunked": "PUT /v2/keys/discovery/%s/k2 HTTP/1.1\r\nHost: x\r\n%sContent-Length: 4\r\n"
                              "Transfer-Encoding: chunked\r\n\r\n7\r\nvalue=x\r\n0\r\n\r\n" % (TOK, FORM),
    "bug-huge-chunk": "PUT /v2/keys/discovery/%s/k3 HTTP/1.1\r\nHost: x\r\n%sTransfer-Encoding: chunked\r\n\r\n"
                      "100000000\r\nvalue=x" % (TOK, FORM),
    "chunked-ok": "PUT /%s/k4 HTTP/1.1\r\nHost: x\r\n%sTransfer-Encoding: chunked\r\n\r\n3\r\nval\r\n4\r\nue=x\r\n"
                  "0\r\n\r\nGET /%s HTTP/1.1\r\nHost: x\r\n\r\n" % (TOK, FORM, TOK),
    "bug-bad-host": "GET /new?size=3 HTTP/1.1\r\nHost: a\"b<script>\r\n\r\nGET /new HTTP/1.1\r\nHost: [::1]:80\r\n\r\n",
    "bug-no-host-page": "GET / HTTP/1.0\r\nAccept: text/html\r\n\r\n",
    "bug-config-delete": "DELETE /v2/keys/discovery/%s/_config/size HTTP/1.1\r\nHost: x\r\n\r\n"
                         "PUT /%s/_config/size HTTP/1.1\r\nHost: x\r\n%sContent-Length: 7\r\n\r\nvalue=5" % (TOK, TOK, FORM),
    "bug-esc-key": "PUT /%s/%%1b%%5b31mred HTTP/1.1\r\nHost: x\r\n%sContent-Length: 7\r\n\r\nvalue=x" % (TOK, FORM),
    "bug-stream": "GET /v2/keys/discovery/%s?wait=true&stream=true HTTP/1.1\r\nHost: x\r\n\r\n" % TOK,
    "new-by-form": "POST /new HTTP/1.1\r\nHost: 127.0.0.1:8087\r\nAccept: text/html\r\n%sContent-Length: 6\r\n\r\n"
                   "size=5" % FORM,
    "metrics-health-status": "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\nGET /health HTTP/1.1\r\nHost: x\r\n\r\n"
                             "GET /status/%s HTTP/1.1\r\nHost: x\r\n\r\n" % TOK,
    "watch-history": "GET /%s?wait=true&recursive=true&waitIndex=1 HTTP/1.1\r\nHost: x\r\n\r\n" % TOK,
}


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    n = 0
    for line in open(TRACE):
        e = json.loads(line)
        if e.get("ev") != "exchange":
            continue
        target = e["target"]
        head = "%s %s HTTP/1.1\r\n" % (e["method"], target)
        body = e.get("req_body", "") or ""
        for k, v in e.get("req_headers", []):
            if k.lower() == "content-length":
                v = str(len(body.encode()))
            head += "%s: %s\r\n" % (k, v)
        raw = (head + "\r\n" + body).encode()
        n += 1
        with open(os.path.join(out, "etcd-%02d" % n), "wb") as f:
            f.write(raw)
    for name, raw in BUGS.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(raw.encode())
    print("%d seeds from the etcd exchange, %d for issue 11's bugs" % (n, len(BUGS)))


if __name__ == "__main__":
    main()
