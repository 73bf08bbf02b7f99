#!/usr/bin/env python3
"""tests/integration/test_conformance.py — replays the recorded etcd 3.4 discovery exchanges
(reference/etcd-3.4-trace/proxy-run2.jsonl and store-json-examples.txt) against discoveryd and
compares status, the headers members depend on, and JSON bodies byte for byte modulo indexes/tokens.

Run:  DISCOVERYD_BIN=build-itest/discoveryd python3 tests/integration/test_conformance.py
      python3 tests/integration/test_conformance.py --target etcd   (proves the comparison on etcd 3.4)
Exit 0 when every check passes. Python 3 standard library only.

Normalisation (why it still catches real differences):
  * tokens: each recorded token is replaced by a fresh uuid4 name (same length) everywhere;
  * indexes: every phase starts by creating its token; the offset between the recorded
    modifiedIndex of that write and the one the server returns is fixed for the whole phase, and
    every recorded modifiedIndex/createdIndex/index/X-Etcd-Index/waitIndex (and the numbers in a
    401 "cleared [oldest/requested]" cause) is shifted by it. A wrong relative index, a missing
    or extra mutation, therefore fails. When all indexes of one exchange are off by the same k
    the failure says so and the offset is re-anchored, so one skew is reported once;
  * bodies: compared as JSON with object member order kept (field order matters), plus a raw
    check that the body is Go-compact JSON followed by exactly one "\\n". Only the children of an
    unsorted directory listing are compared as a set (etcd lists them in Go map order).
"""

import argparse
import http.client
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# The report, the servers, the JSON helpers and the recorded exchanges live beside this file.
from conformance_trace import (  # noqa: E402
    CLEARED_RE, CURL_HEADERS, FORM, INDEX_FIELDS, Exchange, Report, Server, canon, collect_indexes,
    go_encode, is_obj, load_run2, load_store_examples, obj_get, parse_ordered, synth_write)

REQ_TIMEOUT = 10.0        # seconds for any single request that should answer at once
WATCH_JOIN_TIMEOUT = 10.0  # seconds a woken long-poll may take to deliver its event
EARLY_WINDOW = 0.3        # how long a parked watch is observed before its trigger is written

# --------------------------------------------------------------------------------------------
# replay machinery


class Result:
    def __init__(self):
        self.status = None
        self.headers = []
        self.body = b""
        self.chunked = False
        self.will_close = False
        self.error = None
        self.t_head = None
        self.t_done = None


class Mapper:
    """Recorded tokens/indexes -> this run's tokens/indexes (per phase)."""

    def __init__(self, short_form=False):
        self.tokens = {}
        self.offset = None
        self.short_form = short_form  # send /<token>/... instead of /v2/keys/discovery/<token>/...

    def token(self, rec):
        if rec not in self.tokens:
            self.tokens[rec] = str(uuid.uuid4())
        return self.tokens[rec]

    def text(self, s):
        for a, b in self.tokens.items():
            s = s.replace(a, b)
        return s

    def index(self, v):
        if v == 0 or self.offset is None:
            return v
        return max(1, v + self.offset)

    def target(self, t, private=False):
        t = self.text(t)
        if self.short_form and not private and t.startswith("/v2/keys/discovery/"):
            t = "/" + t[len("/v2/keys/discovery/"):]
        return re.sub(r"waitIndex=(\d+)", lambda m: "waitIndex=%d" % self.index(int(m.group(1))), t)

    def body_value(self, v):
        if is_obj(v):
            pairs = []
            is_cleared = obj_get(v, "errorCode") == 401
            for k, x in v[1]:
                if k in INDEX_FIELDS and isinstance(x, int):
                    x = self.index(x)
                elif k == "cause" and is_cleared and isinstance(x, str):
                    x = CLEARED_RE.sub(lambda m: "[%d/%d]" % (self.index(int(m.group(1))),
                                                              self.index(int(m.group(2)))), x)
                else:
                    x = self.body_value(x)
                pairs.append((k, x))
            return ("obj", pairs)
        if isinstance(v, list):
            return [self.body_value(x) for x in v]
        if isinstance(v, str):
            return self.text(v)
        return v


class Replayer:
    def __init__(self, server, report, target_kind):
        self.server = server
        self.report = report
        self.kind = target_kind
        self.conns = {}
        self.cluster_id = None

    def conn(self, key):
        if key is None:
            return http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=REQ_TIMEOUT)
        c = self.conns.get(key)
        if c is None:
            c = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=REQ_TIMEOUT)
            self.conns[key] = c
        return c

    def send(self, ex, mapper, timeout=REQ_TIMEOUT, result=None):
        res = result or Result()
        c = self.conn(ex.conn_key)
        try:
            c.timeout = timeout
            if c.sock is not None:
                c.sock.settimeout(timeout)
            body = mapper.text(ex.req_body).encode() if ex.req_body or ex.method in ("PUT", "POST") else None
            headers = dict(ex.req_headers)
            c.request(ex.method, mapper.target(ex.target, ex.private), body=body, headers=headers)
            r = c.getresponse()
            res.t_head = time.time()
            res.status = r.status
            res.headers = r.getheaders()
            res.chunked = bool(r.chunked)
            res.will_close = bool(r.will_close)
            res.body = r.read()
            res.t_done = time.time()
        except Exception as e:  # noqa: BLE001 - any transport failure is a finding
            res.error = "%s: %s" % (type(e).__name__, e)
            res.t_done = time.time()
            c.close()
        if ex.conn_key is None:
            c.close()
        return res

    # ----------------------------------------------------------------------------------
    def compare(self, ex, res, mapper, alt_label=""):
        """All checks of one exchange. Returns the parsed actual body (or None)."""
        rpt = self.report
        what = "%s %s %s%s" % (ex.label, ex.method, mapper.target(ex.target, ex.private), alt_label)
        if res.error:
            rpt.fail(what + ": transport", "expected status %d, got %s" % (ex.status, res.error))
            return None
        bad = []

        def hv(name):
            vals = [v for k, v in res.headers if k.lower() == name.lower()]
            if len(vals) > 1:
                bad.append("header %s appears %d times: %r" % (name, len(vals), vals))
            return vals[0] if vals else None

        # status
        if res.status != ex.status:
            bad.append("status: expected %d, got %d" % (ex.status, res.status))
        # headers that matter
        ct = hv("Content-Type")
        if ct != "application/json":
            bad.append("Content-Type: expected 'application/json', got %r" % ct)
        if hv("Content-Encoding"):
            bad.append("Content-Encoding present (%r); etcd never compresses" % hv("Content-Encoding"))
        cid = hv("X-Etcd-Cluster-Id")
        if cid is None or not re.fullmatch(r"[0-9a-f]{1,16}", cid):
            bad.append("X-Etcd-Cluster-Id: expected 1-16 lower-case hex digits, got %r" % cid)
        elif self.cluster_id is None:
            self.cluster_id = cid
        elif cid != self.cluster_id:
            bad.append("X-Etcd-Cluster-Id changed: %r then %r" % (self.cluster_id, cid))
        for name in ("X-Raft-Index", "X-Raft-Term"):
            want = ex.hdr(name) is not None
            got = hv(name)
            if want and (got is None or not got.isdigit()):
                bad.append("%s: expected a number (present on success), got %r" % (name, got))
            if not want and got is not None:
                bad.append("%s: expected absent (error reply), got %r" % (name, got))
        idx_pairs = []  # (expected, got) for the re-anchor heuristic
        xi = hv("X-Etcd-Index")
        if xi is None or not xi.isdigit():
            bad.append("X-Etcd-Index: expected a number, got %r" % xi)
        else:
            rec = int(ex.hdr("X-Etcd-Index"))
            want = mapper.index(rec)
            idx_pairs.append((want, int(xi)))
            if int(xi) != want:
                bad.append("X-Etcd-Index: expected %d (recorded %d, offset %+d), got %s"
                           % (want, rec, mapper.offset or 0, xi))
        # Informational only (members do not look at these): headers etcd sends that the target
        # omits, header-name spelling, and watch framing. Summarised once at the end.
        got_names = {k for k, _ in res.headers}
        got_lower = {k.lower() for k in got_names}
        for k, _ in ex.resp_headers:
            kl = k.lower()
            if kl in ("date", "content-length", "transfer-encoding"):
                continue
            if kl not in got_lower:
                self.report.header_notes["omits header %s" % k] = self.report.header_notes.get(
                    "omits header %s" % k, 0) + 1
            elif k not in got_names:
                key = "spells header %s as %r" % (k, next(n for n in got_names if n.lower() == kl))
                self.report.header_notes[key] = self.report.header_notes.get(key, 0) + 1
        if ex.chunked and not res.chunked:
            key = "frames watch replies with Content-Length instead of chunked"
            self.report.header_notes[key] = self.report.header_notes.get(key, 0) + 1
        cl = hv("Content-Length")
        if ex.chunked:
            # A watch: etcd streams it chunked; a Content-Length framing is equally fine for
            # the Go client, but if present it must be right.
            if cl is not None and (not cl.isdigit() or int(cl) != len(res.body)):
                bad.append("Content-Length: %r but body has %d bytes" % (cl, len(res.body)))
            if cl is None and not res.chunked:
                bad.append("watch reply framed neither by Content-Length nor chunked")
        else:
            if cl is None:
                bad.append("Content-Length: expected present (%s), got absent%s"
                           % (ex.hdr("Content-Length"), " (chunked)" if res.chunked else ""))
            elif not cl.isdigit() or int(cl) != len(res.body):
                bad.append("Content-Length: %r but body has %d bytes" % (cl, len(res.body)))
        if res.will_close:
            bad.append("connection not kept alive (server closes it after this reply)")
        # body
        parsed = None
        text = res.body.decode("utf-8", "replace")
        exp = mapper.body_value(parse_ordered(ex.resp_body))
        exp_text = go_encode(exp) + "\n"
        try:
            parsed = parse_ordered(text)
        except ValueError as e:
            bad.append("body is not JSON (%s)\n  expected: %s\n  got:      %r" % (e, exp_text.rstrip("\n"), text))
        if parsed is not None:
            if go_encode(parsed) + "\n" != text:
                bad.append("body is not compact JSON ending in exactly one newline\n  got: %r" % text)
            unordered = ex.method == "GET" and "sorted=true" not in ex.target and not ex.is_watch
            if canon(parsed, unordered) != canon(exp, unordered):
                got_idx = collect_indexes(parsed, [])
                exp_idx = collect_indexes(exp, [])
                bad.append("body differs%s\n  expected: %s\n  got:      %s"
                           % (" (directory children compared as a set)" if unordered else "",
                              exp_text.rstrip("\n"), text.rstrip("\n")))
                if len(got_idx) == len(exp_idx):
                    idx_pairs += list(zip(exp_idx, got_idx))
        if bad:
            deltas = {g - e for e, g in idx_pairs if e != 0}
            if len(deltas) == 1 and 0 not in deltas and len(idx_pairs) >= 1 and mapper.offset is not None:
                k = deltas.pop()
                bad.append("every index of this reply is off by %+d: re-anchoring the offset so the "
                           "skew is reported once" % k)
                mapper.offset += k
            rpt.fail(what, "\n".join(bad))
        else:
            rpt.ok(what + " -> %d" % res.status)
        return parsed

    def anchor(self, ex, res, mapper):
        """The phase's token-creation write fixes the recorded->actual index offset."""
        rec = int(ex.hdr("X-Etcd-Index"))
        got = None
        try:
            got = obj_get(obj_get(parse_ordered(res.body.decode()), "node"), "modifiedIndex")
        except (ValueError, AttributeError):
            pass
        if not isinstance(got, int):
            xi = dict((k.lower(), v) for k, v in res.headers).get("x-etcd-index", "")
            got = int(xi) if xi.isdigit() else rec
        mapper.offset = got - rec
        Report.note("%s: index offset recorded->actual is %+d" % (ex.label, mapper.offset))


class Watch(threading.Thread):
    """A long-poll on its own (member) connection, so the main thread can write meanwhile."""

    def __init__(self, rp, ex, mapper):
        super().__init__(daemon=True)
        self.rp, self.ex, self.mapper = rp, ex, mapper
        self.res = Result()
        self.t_start = time.time()

    def run(self):
        self.rp.send(self.ex, self.mapper, timeout=60, result=self.res)

    def done(self):
        return self.res.t_done is not None

    def start_and_settle(self):
        self.start()
        # etcd sends the head at once; wait for it (or a short while when the server holds
        # the head back) so that the watch is registered before the write that should wake it.
        deadline = time.time() + 0.5
        while self.res.t_head is None and not self.done() and time.time() < deadline:
            time.sleep(0.01)
        time.sleep(0.05)
        if self.res.t_head is None or (self.res.t_head - self.t_start) > 0.4:
            Report.note("%s: response head not sent when the watch parked (etcd sends it at once; "
                        "the Go client waits for the whole reply either way)" % self.ex.label)

    def check_pending(self, before):
        """The watch must not have completed yet (nothing it waits for was written)."""
        label = "%s still parked before %s" % (self.ex.label, before)
        if self.done():
            body = self.res.body.decode("utf-8", "replace").rstrip("\n")
            self.rp.report.fail(label, "completed early with status %s body %r" % (self.res.status, body))
            return False
        return True

    def finish(self, alt=""):
        self.join(WATCH_JOIN_TIMEOUT)
        if self.is_alive():
            self.rp.report.fail("%s %s: woken" % (self.ex.label, self.mapper.target(self.ex.target)),
                                "still parked %.0f s after the write that should wake it" % WATCH_JOIN_TIMEOUT)
            return
        self.rp.compare(self.ex, self.res, self.mapper, alt)


# --------------------------------------------------------------------------------------------
# phases


def in_namespace(target):
    return target.startswith("/v2/keys/discovery/")


def phase_run2(rp, path, short_form=False):
    rpt = rp.report
    if short_form:
        print("== phase C: the same member exchanges through the public short form /<token>/... "
              "(expected: the same replies, keys still /discovery/<token>/...)", flush=True)
    else:
        print("== phase A: member exchanges of run 2 (%s)" % path, flush=True)
    exchanges = load_run2(path)
    for ex in exchanges:
        if short_form:
            ex.label = ex.label.replace("run2", "short")
    mapper = Mapper(short_form)
    rec_tok = "4068fe4b-9f9f-4768-9ea2-6208e77632aa"
    new_tok = mapper.token(rec_tok)
    # Token creation happened before the recording started (trace §1); its reply shape is in §1.
    key = "/discovery/%s/_config/size" % rec_tok
    setup = synth_write("%s setup: create token" % ("short" if short_form else "run2"),
                        "/v2/keys/discovery/%s/_config/size" % rec_tok, "3", 201, "set", key, 4)
    setup.private = True
    res = rp.send(setup, mapper)
    if res.error or res.status != 201:
        rpt.fail("run2 setup: PUT _config/size on token %s" % new_tok,
                 "got %s %s" % (res.status or res.error, res.body[:300]))
        return
    rp.anchor(setup, res, mapper)
    rp.compare(setup, res, mapper, " (setup; expectation from trace §1)")

    pending = []
    for ex in exchanges:
        if not in_namespace(ex.target):
            Report.skip("%s %s %s: outside /v2/keys/discovery (discoveryd serves only the discovery "
                        "namespace)" % (ex.label, ex.method, ex.target))
            continue
        for w in list(pending):
            if w.ex.t_end <= ex.t_req:
                w.finish()
                pending.remove(w)
            else:
                w.check_pending(ex.label)
        if ex.longpoll:
            w = Watch(rp, ex, mapper)
            w.start_and_settle()
            pending.append(w)
            continue
        res = rp.send(ex, mapper)
        rp.compare(ex, res, mapper)
    for w in pending:
        w.finish()
    for c in rp.conns.values():
        c.close()
    rp.conns.clear()


def phase_store_examples(rp, path):
    rpt = rp.report
    print("== phase B: store JSON examples of trace §5 (%s)" % path, flush=True)
    items = load_store_examples(path)
    mapper = Mapper()
    tok = "3ca67c9f-5e6b-4705-8f60-a8e758d1ce15"
    mapper.token(tok)
    mapper.token("00000000-0000-0000-0000-000000000000")
    mapper.token("filler-token-for-index-gaps-000000000")
    base = "/v2/keys/discovery/" + tok
    # State before the examples (run 1): size=3 at 6, m1..m3 at 7..9, current index 16
    # (indexes 10..16 were other tokens' writes: replayed as 7 writes to a filler token).
    setup = [synth_write("store setup: create token", base + "/_config/size", "3", 201, "set",
                         "/discovery/%s/_config/size" % tok, 6)]
    members = [("fc594def544cceea", "m1=http://127.0.0.1:12380"),
               ("9be2e60fa3f1cda3", "m2=http://127.0.0.1:22380"),
               ("f4c2476e5521206b", "m3=http://127.0.0.1:32380")]
    for i, (mid, val) in enumerate(members):
        setup.append(synth_write("store setup: register " + val[:2], base + "/" + mid, val, 201, "create",
                                 "/discovery/%s/%s" % (tok, mid), 7 + i, prev_exist=False))
    fb = "/v2/keys/discovery/filler-token-for-index-gaps-000000000"
    setup.append(synth_write("store setup: filler token", fb + "/_config/size", "1", 201, "set",
                             "/discovery/filler-token-for-index-gaps-000000000/_config/size", 10))
    for i in range(6):
        setup.append(synth_write("store setup: filler member %d" % i, fb + "/f%d" % i, "x", 201, "create",
                                 "/discovery/filler-token-for-index-gaps-000000000/f%d" % i, 11 + i,
                                 prev_exist=False))
    for i, ex in enumerate(setup):
        res = rp.send(ex, mapper)
        if i == 0:
            if res.error or res.status != 201:
                rpt.fail("store setup: PUT _config/size", "got %s %r" % (res.status or res.error, res.body[:300]))
                return
            rp.anchor(ex, res, mapper)
        rp.compare(ex, res, mapper, " (setup)")

    exs = [e for kind, e in items if kind == "ex"]
    background = next(e for e in exs if e.background)
    watch = None
    for kind, ex in items:
        if kind == "note":
            if rp.kind == "etcd":
                Report.note("%s: writing 1100 PUTs to /v2/keys/scratch/k as recorded (setup, not compared)" % ex)
                c = http.client.HTTPConnection("127.0.0.1", rp.server.port, timeout=REQ_TIMEOUT)
                for n in range(1100):
                    c.request("PUT", "/v2/keys/scratch/k", body="value=%d" % n, headers=dict([FORM]))
                    r = c.getresponse()
                    r.read()
                c.close()
            else:
                per_token_history(rp, mapper, exs)
                return
            continue
        if ex.background:
            continue
        if watch is None and ex.method == "PUT" and ex.target.endswith("/_config/hiddentest"):
            watch = Watch(rp, background, mapper)
            watch.start_and_settle()
            res = rp.send(ex, mapper)
            rp.compare(ex, res, mapper)
            time.sleep(EARLY_WINDOW)
            watch.check_pending("the member write (a hidden _config write must not wake a recursive watch)")
            continue
        if not in_namespace(ex.target):
            Report.skip("%s %s %s: outside /v2/keys/discovery" % (ex.label, ex.method, ex.target))
            continue
        res = rp.send(ex, mapper)
        rp.compare(ex, res, mapper)
        if watch is not None and "feedfacecafebeef" in ex.target and ex.method == "PUT":
            watch.finish()


def per_token_history(rp, mapper, exs):
    """discoveryd keeps history per token: 1100 writes to ANOTHER token must not clear this
    token's history (where etcd's global 1000-event history answers 401, trace §5.7)."""
    rpt = rp.report
    Report.note("store (note): etcd wrote 1100 PUTs to /v2/keys/scratch (outside the namespace); on "
                "discoveryd the 401 of §5.7 is replaced by the per-token rule: 1100 writes to another token")
    other = str(uuid.uuid4())
    c = http.client.HTTPConnection("127.0.0.1", rp.server.port, timeout=REQ_TIMEOUT)
    errors = []
    last = None
    statuses = {}
    c.request("PUT", "/v2/keys/discovery/%s/_config/size" % other, body="value=3", headers=dict([FORM]))
    r = c.getresponse()
    r.read()
    statuses[r.status] = statuses.get(r.status, 0) + 1
    for n in range(1100):
        c.request("PUT", "/v2/keys/discovery/%s/k" % other, body="value=%d" % n, headers=dict([FORM]))
        r = c.getresponse()
        body = r.read()
        statuses[r.status] = statuses.get(r.status, 0) + 1
        if r.status not in (200, 201) and len(errors) < 3:
            errors.append("%d %r" % (r.status, body[:200]))
        last = r.getheader("X-Etcd-Index") or last
    c.close()
    if not rpt.check(not errors, "per-token: 1100 overwrites of /discovery/<other>/k succeed",
                     "statuses %r, first errors: %s" % (statuses, "; ".join(errors))):
        return
    # Expected: the recorded 5.5b reply (oldest event of this token: the _config/size set) and
    # the 5.5a reply (m1's create) — not the 401 etcd gave after the scratch writes.
    by_target = {(e.target, e.status): e for e in exs}
    tok = "3ca67c9f-5e6b-4705-8f60-a8e758d1ce15"
    base = "/v2/keys/discovery/" + tok
    for wi, src_target in ((1, base + "?recursive=true&wait=true&waitIndex=1"),
                           (7, base + "/fc594def544cceea?recursive=false&wait=true&waitIndex=7")):
        src = by_target[(src_target, 200)]
        ex = Exchange("per-token (replaces store 401 example, waitIndex=%d)" % wi, "GET",
                      base + "?recursive=true&wait=true&waitIndex=%d" % wi, list(CURL_HEADERS), None, 200,
                      [(k, v) for k, v in src.resp_headers if k != "X-Etcd-Index"]
                      + [("X-Etcd-Index", str(int(last) - mapper.offset) if last else "0")],
                      src.resp_body, True)
        res = rp.send(ex, mapper)
        rp.compare(ex, res, mapper, " (history of this token survives writes to another)")


# --------------------------------------------------------------------------------------------


def self_test(report, ref):
    """Offline proof of the comparison: every recorded reply, fed back as if a server sent it,
    must pass; every mutation a wrong server could make must fail."""
    exs = [e for e in load_run2(os.path.join(ref, "proxy-run2.jsonl")) if in_namespace(e.target)]
    exs += [e for k, e in load_store_examples(os.path.join(ref, "store-json-examples.txt")) if k == "ex"]

    def as_result(ex, headers=None, body=None, chunked=None):
        r = Result()
        r.status = ex.status
        r.headers = list(ex.resp_headers if headers is None else headers)
        r.body = (ex.resp_body if body is None else body).encode()
        r.chunked = ex.chunked if chunked is None else chunked
        r.t_head = r.t_done = time.time()
        return r

    def verdict(ex, res, offset=0):
        quiet = Report(quiet=True)
        rp = Replayer(None, quiet, "self-test")
        m = Mapper()
        m.offset = offset
        rp.compare(ex, res, m)
        return quiet

    accepted, rejected, missed = 0, 0, []
    for ex in exs:
        v = verdict(ex, as_result(ex))
        if v.failed:
            missed.append("recorded reply rejected: %s %s" % (ex.label, v.failures))
        else:
            accepted += 1
    # An offset must be applied to indexes (recorded +5 everywhere passes with offset 5).
    big = next(e for e in exs if e.label == "store #1")  # token dir, 3 members: indexes 6..9

    def shift(text, k):
        return re.sub(r'"(modifiedIndex|createdIndex|index)":(\d+)',
                      lambda mm: '"%s":%d' % (mm.group(1), int(mm.group(2)) + k), text)
    shifted = shift(big.resp_body, 5)
    hs = [(k, str(int(v) + 5) if k == "X-Etcd-Index" else str(len(shifted)) if k == "Content-Length" else v)
          for k, v in big.resp_headers]
    v = verdict(big, as_result(big, headers=hs, body=shifted), offset=5)
    if v.failed:
        missed.append("a consistently shifted reply is rejected: %s" % v.failures)
    else:
        accepted += 1
    # A listing in another child order passes when unsorted.
    parsed = parse_ordered(big.resp_body)
    node = obj_get(parsed, "node")
    kids = obj_get(node, "nodes")
    kids.reverse()
    if verdict(big, as_result(big, body=go_encode(parsed) + "\n")).failed:
        missed.append("an unsorted listing in another order is rejected")
    else:
        accepted += 1
    kids.reverse()

    err = next(e for e in exs if e.status == 404)
    watch = next(e for e in exs if e.chunked and e.status == 200)
    sortd = next(e for e in exs if "sorted=true" in e.target)

    def m_hdr(ex, name, value):
        h = [(k, v) for k, v in ex.resp_headers if k.lower() != name.lower()]
        if value is not None:
            h.append((name, value))
        return h

    def swap_fields(text):
        return text.replace('"modifiedIndex":7,"createdIndex":7', '"createdIndex":7,"modifiedIndex":7', 1)

    mutations = [
        ("field order swapped", big, dict(body=swap_fields(big.resp_body))),
        ("trailing newline dropped", big, dict(body=big.resp_body.rstrip("\n"))),
        ("two trailing newlines", big, dict(body=big.resp_body + "\n")),
        ("pretty-printed", big, dict(body=big.resp_body.replace(",", ", "))),
        ("extra field", big, dict(body=big.resp_body.replace('"action":"get"', '"action":"get","x":1'))),
        ("field omitted", big, dict(body=big.resp_body.replace('"dir":true,', ""))),
        ("one child index off by one", big, dict(body=big.resp_body.replace('"modifiedIndex":8,', '"modifiedIndex":9,'))),
        ("dir index off by one", big, dict(body='"createdIndex":7'.join(big.resp_body.rsplit('"createdIndex":6', 1)))),
        ("a member missing", big, dict(body=go_encode(("obj", [("action", "get"), ("node", ("obj", [
            (k, (v[:-1] if k == "nodes" else v)) for k, v in node[1]]))])) + "\n")),
        ("X-Etcd-Index off by one", big, dict(headers=m_hdr(big, "X-Etcd-Index",
                                                             str(int(big.hdr("X-Etcd-Index")) + 1)))),
        ("X-Etcd-Index missing", big, dict(headers=m_hdr(big, "X-Etcd-Index", None))),
        ("X-Raft-Index missing on success", big, dict(headers=m_hdr(big, "X-Raft-Index", None))),
        ("X-Raft-Term on an error", err, dict(headers=m_hdr(err, "X-Raft-Term", "2"))),
        ("X-Etcd-Cluster-Id not hex", big, dict(headers=m_hdr(big, "X-Etcd-Cluster-Id", "cluster-1"))),
        ("Content-Type text/plain", big, dict(headers=m_hdr(big, "Content-Type", "text/plain"))),
        ("Content-Length missing", big, dict(headers=m_hdr(big, "Content-Length", None), chunked=True)),
        ("Content-Length wrong", big, dict(headers=m_hdr(big, "Content-Length", "5"))),
        ("watch Content-Length wrong", watch, dict(headers=m_hdr(watch, "Content-Length", "7"))),
        ("error code differs", err, dict(body=err.resp_body.replace('"errorCode":100', '"errorCode":105'))),
        ("error cause differs", err, dict(body=err.resp_body.replace('"cause":"/discovery/', '"cause":"/discovery/x'))),
        ("sorted listing out of order", sortd, dict(body=sortd.resp_body.replace("9be2e60fa3f1cda3", "TMP").replace(
            "fc594def544cceea", "9be2e60fa3f1cda3").replace("TMP", "fc594def544cceea").replace(
            "m2=", "TMP=").replace("m1=", "m2=").replace("TMP=", "m1="))),
    ]
    for name, ex, kw in mutations:
        res = as_result(ex, **kw)
        if name == "status":
            res.status += 1
        if verdict(ex, res).failed:
            rejected += 1
        else:
            missed.append("mutation not detected: " + name)
    res = as_result(big)
    res.status = 201
    if verdict(big, res).failed:
        rejected += 1
    else:
        missed.append("mutation not detected: status")
    report.check(not missed, "normaliser self-test: %d recorded/equivalent replies accepted, %d wrong replies "
                 "rejected" % (accepted, rejected), "\n".join(missed))


def find_reference():
    cands = []
    if os.environ.get("DISCOVERYD_REFERENCE"):
        cands.append(os.environ["DISCOVERYD_REFERENCE"])
    src = os.environ.get("DISCOVERYD_SOURCE") or os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))))
    cands.append(os.path.join(src, "tests", "integration", "reference"))
    for c in cands:
        d = os.path.join(c, "etcd-3.4-trace")
        if os.path.isfile(os.path.join(d, "proxy-run2.jsonl")) and \
                os.path.isfile(os.path.join(d, "store-json-examples.txt")):
            return d
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--target", choices=("discoveryd", "etcd"),
                    default=os.environ.get("CONFORMANCE_TARGET", "discoveryd"))
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (logs, data)")
    args = ap.parse_args()
    ref = find_reference()
    if not ref:
        print("FAIL  recording not found: set DISCOVERYD_REFERENCE to the dir holding etcd-3.4-trace/")
        print("0 passed, 1 failed")
        return 1
    report = Report()
    self_test(report, ref)
    tmp = tempfile.mkdtemp(prefix="dd-conformance-")
    server = Server(args.target, tmp)
    try:
        server.start()
        print("target: %s on 127.0.0.1:%d (%s)" % (args.target, server.port, " ".join(server.cmd)), flush=True)
        rp = Replayer(server, report, args.target)
        phase_run2(rp, os.path.join(ref, "proxy-run2.jsonl"))
        rp = Replayer(server, report, args.target)
        phase_store_examples(rp, os.path.join(ref, "store-json-examples.txt"))
        if args.target == "discoveryd":
            rp = Replayer(server, report, args.target)
            phase_run2(rp, os.path.join(ref, "proxy-run2.jsonl"), short_form=True)
        else:
            Report.skip("phase C (short form /<token>/...): etcd has no short form")
    except Exception as e:  # noqa: BLE001 - report, then clean up
        import traceback
        traceback.print_exc()
        report.fail("harness: %s: %s" % (type(e).__name__, e), server.tail())
    finally:
        rc = server.stop()
        if server.proc is not None and rc not in (0, -signal.SIGTERM, 128 + signal.SIGTERM):
            report.fail("%s exits cleanly on SIGTERM" % args.target, "exit status %s\n%s" % (rc, server.tail()))
        if args.keep or report.failed:
            print("logs and data kept in " + tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    for k, n in sorted(report.header_notes.items()):
        Report.note("informational, not a failure: %s %s (%d replies)" % (args.target, k, n))
    print("%d passed, %d failed" % (report.passed, report.failed))
    return 0 if report.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
