#!/usr/bin/env python3
# tests/integration/test_membership.py — membership changes at run time on a three-member discoveryd
# cluster under a bounded registration load: a 4th member is added (POST /v2/members, then started with
# --initial-cluster-state existing and an empty data dir; a small --snapshot-count makes it catch up by
# snapshot) and serves every acknowledged write; a follower is removed; the leader is removed (the others
# elect and go on); a member whose data dir was wiped is removed and added back under the same peer URL
# with a new ID and catches up; refusals: a duplicate peer URL (409), an unknown ID (404), bad JSON (400),
# and a removal that would lose quorum (412). After every step each acknowledged write is on every live
# member with its createdIndex ("acknowledged writes lost: 0"); a restart takes the membership from the
# data dir, not from --initial-cluster; with peer mutual TLS a member joins over TLS.
# Run: DISCOVERYD_BIN=build/discoveryd python3 tests/integration/test_membership.py

import json
import os
import random
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cluster_harness as ch  # noqa: E402
import harness as h  # noqa: E402

BIN = os.environ.get("DISCOVERYD_BIN", "")
SNAPSHOT_COUNT = "40"


def stable_ports(n):
    """n free loopback ports below the kernel's ephemeral range: a member restarted after kill -9 must
    find its ports free, and one in the ephemeral range can meanwhile be taken by any outgoing
    connection (the load's, the members')."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    if low <= 12000:
        return h.free_ports(n)
    rnd = random.Random()
    socks, ports = [], []
    try:
        for _ in range(200 * n):
            if len(ports) == n:
                break
            p = rnd.randrange(10000, low)
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                s.bind(("127.0.0.1", p))
            except OSError:
                s.close()
                continue
            socks.append(s)
            ports.append(p)
    finally:
        for s in socks:
            s.close()
    return ports if len(ports) == n else h.free_ports(n)


class Node(ch.Member):
    def __init__(self, checks, root, name, cluster_flag, state="new", extra=()):
        self.name, self.extra = name, list(extra)
        self.port, self.peer_port = stable_ports(2)
        self.hostport = "127.0.0.1:%d" % self.port
        self.peer_url = "http://127.0.0.1:%d" % self.peer_port
        self.data_dir = os.path.join(root, name + ".data")
        self.log = os.path.join(root, name + ".log")
        self.root, self.checks = root, checks
        self.cluster_flag, self.state = cluster_flag, state
        checks.add_log(name, self.log, 30)

    @property
    def argv(self):  # the state and the cluster flag change between starts
        return [BIN, "--name", self.name, "--initial-cluster", self.cluster_flag,
                "--initial-cluster-state", self.state, "--listen", self.hostport, "--data-dir", self.data_dir,
                "--public-url", "http://" + self.hostport, "--snapshot-count", SNAPSHOT_COUNT] + self.extra + \
            h.DiscoverydBackend.RELAXED_LIMITS + shlex.split(os.environ.get("DISCOVERYD_ITEST_ARGS", ""))

    def members(self):
        return h.http_request(self.hostport, "GET", "/v2/members", timeout=5).json()["members"]

    def my_id(self):
        """This member's ID: GET /v2/members gives a member's own client URL only for itself."""
        for m in self.members():
            if m["clientURLs"] == ["http://" + self.hostport]:
                return m["id"]
        return None


def dump(nodes):
    """On a failure: what each member says about itself (for the log, not asserted)."""
    for x in nodes:
        if not x.alive():
            continue
        try:
            t = h.http_request(x.hostport, "GET", "/metrics", timeout=2).text
            hl = h.http_request(x.hostport, "GET", "/health", timeout=2).body[:200]
            ms = [(m["id"], m["name"]) for m in x.members()]
        except Exception as e:  # noqa: BLE001
            print("# %s: %s" % (x.name, e))
            continue
        keep = [ln for ln in t.splitlines() if re.match(r"discoveryd_(is_leader|raft_|"
                                                        r"snapshot_index|leader_changes)", ln)]
        print("# %s: %s health=%s members=%s" % (x.name, " ".join(keep), hl, ms), flush=True)


def wait_healthy(x, others, what):
    try:
        h.wait_until(lambda: x.healthy(), 30, 0.1, what)
    except Exception:
        dump(others + [x])
        raise


def id_settles(x, want):
    """x's own ID as it lists itself, once it applied the change that added it (bounded wait)."""
    try:
        return h.wait_until(lambda: x.my_id() == want and want, 10, 0.1, "%s lists itself" % x.name) and want
    except Exception:  # noqa: BLE001
        return x.my_id()


def leader(nodes):
    for x in nodes:
        if x.alive() and x.metric("discoveryd_is_leader") == 1:
            return x
    return None


def post_member(node, body, timeout=15):
    return h.http_request(node.hostport, "POST", "/v2/members", body=body,
                          headers={"Content-Type": "application/json"}, timeout=timeout)


def add_member(c, via, peer_url):
    """POST until it is not 503 (a previous change may still be committing), bounded."""
    r = None
    for _ in range(40):
        r = post_member(via, json.dumps({"peerURLs": [peer_url]}))
        if r.status != 503:
            break
        time.sleep(0.25)
    return r


def delete_member(via, mid):
    r = None
    for _ in range(40):
        r = h.http_request(via.hostport, "DELETE", "/v2/members/%s" % mid, timeout=15)
        if r.status != 503:
            break
        time.sleep(0.25)
    return r


class Load:
    """Registration writers over every live member; acked: key -> createdIndex of each 201."""

    def __init__(self, live, tok, writers=3):
        self.live, self.tok = live, tok
        self.acked, self.lock, self.stop = {}, threading.Lock(), threading.Event()
        self.sent = self.failed = 0
        self.threads = [threading.Thread(target=self.writer, args=(w,)) for w in range(writers)]
        for t in self.threads:
            t.start()

    def writer(self, w):
        i = 0
        t_end = time.time() + 110
        while not self.stop.is_set() and i < 20000 and time.time() < t_end:
            i += 1
            with self.lock:
                nodes = [x for x in self.live if x.alive()]
            if not nodes:
                time.sleep(0.1)
                continue
            with self.lock:
                self.sent += 1
            x = random.choice(nodes)
            key = "w%d-%d" % (w, i)
            try:
                r = h.http_request(x.hostport, "PUT", "/v2/keys/discovery/%s/load/%s?prevExist=false"
                                   % (self.tok, key), body="value=%s" % key, timeout=6)
                if r.status == 201:
                    with self.lock:
                        self.acked[key] = r.json()["node"]["createdIndex"]
                    time.sleep(0.01)
                    continue
            except Exception:  # noqa: BLE001
                pass
            with self.lock:
                self.failed += 1
            time.sleep(0.05)

    def set_live(self, live):
        with self.lock:
            self.live = list(live)

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(30)


def loaded(node, tok):
    r = h.http_request(node.hostport, "GET", "/v2/keys/discovery/%s/load?sorted=true" % tok, timeout=5)
    if r.status != 200:
        return {}
    return {n["key"].rsplit("/", 1)[1]: n["createdIndex"] for n in r.json()["node"].get("nodes", [])}


def check_writes(c, label, load, live):
    with load.lock:
        acked = dict(load.acked)
    missing = {}

    def every_node_has_all():
        for x in live:
            got = loaded(x, load.tok)
            missing[x.name] = [k for k, ci in acked.items() if got.get(k) != ci]
        return all(not m for m in missing.values()) or None
    try:
        h.wait_until(every_node_has_all, 30, 0.2, "every acknowledged write on every live member")
    except Exception:  # noqa: BLE001
        pass
    lost = sum(len(m) for m in missing.values())
    print("# %s: %d writes acknowledged so far; acknowledged writes lost: %d (live: %s)"
          % (label, len(acked), lost, ",".join(x.name for x in live)), flush=True)
    c.eq("%s: acknowledged writes lost on the live members" % label, lost, 0)


def ids(node):
    return {m["id"]: m for m in node.members()}


def scenario(c):
    root = h.tmpdir("membership")
    names = ["d1", "d2", "d3"]
    nodes = [Node(c, root, n, "") for n in names]
    flag = ",".join("%s=%s" % (x.name, x.peer_url) for x in nodes)
    for x in nodes:
        x.cluster_flag = flag
        x.start()
    h.wait_until(lambda: all(x.healthy() for x in nodes), 30, 0.1, "every member has a leader")
    live = list(nodes)
    r = h.http_request(nodes[0].hostport, "GET", "/new?size=3")
    tok = r.text.rsplit("/", 1)[1]
    load = Load(live, tok)
    try:
        steps(c, root, nodes, flag, live, load)
    finally:
        load.finish()
        for y in nodes:
            if y.alive():
                y.proc.send_signal(15)
        for y in nodes:
            if y.proc is None:
                continue
            try:
                y.proc.wait(timeout=h.T(20))
            except Exception:  # noqa: BLE001
                y.kill9()
            c.check("%s log has no sanitizer report" % y.name,
                    not any(mk in h.read_text(y.log) for mk in h.DiscoverydBackend.SANITIZER_MARKS))


def steps(c, root, nodes, flag, live, load):
    time.sleep(1.5)

    # (e) refusals first: nothing changes
    before = ids(nodes[0])
    r = post_member(nodes[1], json.dumps({"peerURLs": [nodes[2].peer_url]}))
    c.eq("adding a peer URL that is already a member's is 409", r.status, 409)
    r = post_member(nodes[1], '{"peerURLs": ["http://127.0.0.1:1"')
    c.check("bad JSON is 400 with a reason", r.status == 400 and b"JSON" in r.body, (r.status, r.body))
    r = post_member(nodes[1], '{"peerURLs": ["ftp://x"]}')
    c.eq("a peer URL that is not http://HOST:PORT is 400", r.status, 400)
    r = h.http_request(nodes[1].hostport, "DELETE", "/v2/members/123abc", timeout=10)
    c.eq("removing an unknown ID is 404", r.status, 404)
    r = h.http_request(nodes[1].hostport, "DELETE", "/v2/members/xyz", timeout=10)
    c.eq("removing a non-hex ID is 400", r.status, 400)
    c.eq("the refusals changed nothing", ids(nodes[0]), before)

    # (a) add a 4th member under load; it catches up (by snapshot: the others compacted long ago)
    d4 = Node(c, root, "d4", "")
    r = add_member(c, nodes[1], d4.peer_url)  # through a follower or the leader, either works
    c.eq("POST /v2/members adds a member: 201", r.status, 201)
    m = r.json() if r.status == 201 else {}
    c.check("the answer is etcd's member shape with a new ID and the peer URL",
            re.fullmatch(r"[0-9a-f]{1,16}", m.get("id", "")) is not None and m.get("peerURLs") == [d4.peer_url]
            and m.get("clientURLs") == [] and m.get("name") == "", m)
    h.wait_until(lambda: all(m.get("id") in ids(x) for x in nodes), 10, 0.1,
                 "every member lists the new member (once it applied the change)")
    d4.cluster_flag = flag + ",d4=" + d4.peer_url
    d4.state = "existing"
    # the leader keeps 1000 entries behind its latest snapshot: once that is past 1100, a member
    # starting empty can only catch up by the snapshot
    h.wait_until(lambda: all((x.metric("discoveryd_snapshot_index") or 0) > 1100 for x in nodes), 40, 0.2,
                 "the members compacted their logs past 1100 entries")
    d4.start()
    wait_healthy(d4, live, "the 4th member has a leader")
    c.eq("the 4th member learned its ID from the members", id_settles(d4, m.get("id")), m.get("id"))
    h.wait_until(lambda: all(ids(x).get(m.get("id"), {}).get("name") == "d4" for x in nodes + [d4]), 15, 0.1,
                 "the 4th member published its --name (every member lists it)")
    live.append(d4)
    nodes.append(d4)
    load.set_live(live)
    time.sleep(1.0)
    c.check("the 4th member caught up by a snapshot from the leader",
            "installed the leader's snapshot" in h.read_text(d4.log), h.tail(d4.log, 5))
    check_writes(c, "after adding d4", load, live)

    # (b) remove a follower
    L = h.wait_until(lambda: leader(live), 15, 0.1, "a leader")
    f = [x for x in live if x is not L and x is not d4][0]
    fid = f.my_id()
    r = delete_member(L if random.random() < 0.5 else d4, fid)
    c.eq("DELETE /v2/members/<follower> is 204", r.status, 204)
    live.remove(f)
    load.set_live(live)
    h.wait_until(lambda: all(fid not in ids(x) for x in live), 10, 0.1,
                 "the removed follower is gone from every member's list")
    h.wait_until(lambda: not f.healthy(), 15, 0.1, "the removed member stops serving")
    h.wait_until(lambda: "was removed from the cluster" in h.read_text(f.log), 15, 0.1,
                 "the removed member learns it was removed (a member tells it)")
    c.check("the removed member says why its /health is 503",
            b"removed" in h.http_request(f.hostport, "GET", "/health", timeout=5).body)
    f.kill9()
    check_writes(c, "after removing follower %s" % f.name, load, live)

    # (c) remove the leader: the rest elect and go on
    L = h.wait_until(lambda: leader(live), 15, 0.1, "a leader")
    lid = L.my_id()
    other = [x for x in live if x is not L][0]
    r = delete_member(other, lid)
    c.eq("DELETE /v2/members/<leader> is 204", r.status, 204)
    live.remove(L)
    load.set_live(live)
    L2 = h.wait_until(lambda: (lambda x: x if x and x is not L else None)(leader(live)), 15, 0.1, "a new leader")
    c.check("another member leads after the leader was removed", L2 is not None and L2 is not L)
    L.kill9()
    h.wait_until(lambda: all(x.healthy() for x in live), 20, 0.1, "the two left are healthy")
    check_writes(c, "after removing the leader %s" % L.name, load, live)
    c.check("GET /v2/members lists the two members left", len(ids(live[0])) == 2, ids(live[0]))

    # (d) a member whose data dir was wiped: removed and added back under a new ID, same peer URL
    # first bring the cluster back to three, so that one can be down
    d5 = Node(c, root, "d5", "")
    r = add_member(c, live[0], d5.peer_url)
    c.eq("adding d5 is 201", r.status, 201)
    d5.cluster_flag = ",".join("%s=%s" % (x.name, x.peer_url) for x in live) + ",d5=" + d5.peer_url
    d5.state = "existing"
    d5.start()
    wait_healthy(d5, live, "d5 has a leader")
    live.append(d5)
    nodes.append(d5)
    load.set_live(live)
    w = [x for x in live if x is not leader(live)][0]
    old_id = w.my_id()
    w.kill9()  # its disk is lost
    live.remove(w)
    load.set_live(live)
    shutil.rmtree(w.data_dir)
    r = delete_member(live[0], old_id)
    c.eq("removing the wiped member is 204", r.status, 204)
    if r.status != 204:
        dump(live)
    r = add_member(c, live[-1], w.peer_url)
    c.eq("adding it back under the same peer URL is 201", r.status, 201)
    new_id = r.json().get("id") if r.status == 201 else None
    c.check("it comes back under a new ID", new_id is not None and new_id != old_id, (old_id, new_id))
    w.cluster_flag = ",".join("%s=%s" % (x.name, x.peer_url) for x in live) + ",%s=%s" % (w.name, w.peer_url)
    w.state = "existing"
    w.start()
    wait_healthy(w, live, "the re-added member has a leader")
    c.eq("the re-added member has its new ID", id_settles(w, new_id), new_id)
    live.append(w)
    load.set_live(live)
    time.sleep(1.0)
    check_writes(c, "after replacing the wiped %s" % w.name, load, live)

    # a restart takes the membership from the data dir, not from --initial-cluster
    x = live[0]
    x.kill9()
    x.cluster_flag = "%s=%s" % (x.name, x.peer_url) if x.state == "existing" else x.cluster_flag
    x.start()
    h.wait_until(lambda: x.healthy(), 30, 0.1, "%s back after a restart" % x.name)
    c.eq("after a restart GET /v2/members is the membership of the data dir", sorted(ids(x)),
         sorted(ids(live[1])))
    c.check("... and the log says the data dir's membership is used",
            "membership" in h.read_text(x.log) or "ignored" in h.read_text(x.log))

    # (e) a removal that would lose quorum: with one of three down, removing a live one is refused
    load.finish()
    check_writes(c, "before the quorum refusal", load, live)
    down = [y for y in live if y is not leader(live)][0]
    down.kill9()
    Lq = h.wait_until(lambda: leader(live), 15, 0.1, "a leader")
    victim = [y for y in live if y is not Lq and y is not down][0]
    time.sleep(1.0)  # the leader's link to the killed member has closed (a SIGKILL resets it at once)
    r = delete_member(Lq, victim.my_id())
    c.check("with one of three down, removing a live member is 412 with a reason",
            r.status == 412 and b"quorum" in r.body, (r.status, r.body))
    c.check("... and nothing changed", victim.my_id() in ids(Lq) and len(ids(Lq)) == 3, ids(Lq))
    down.start()
    h.wait_until(lambda: down.healthy(), 30, 0.1, "the stopped member back")

    print("# load: %d sent, %d acknowledged, %d failed or indeterminate" % (load.sent, len(load.acked), load.failed),
          flush=True)


def scenario_tls(c):
    """With peer mutual TLS the joining member asks who it is over TLS too."""
    root = h.tmpdir("membership-tls")
    cert, key = os.path.join(root, "peer.pem"), os.path.join(root, "peer.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-days", "1", "-subj", "/CN=discoveryd peers", "-keyout", key, "-out", cert], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
    tls = ["--peer-cert-file", cert, "--peer-key-file", key, "--peer-trusted-ca-file", cert]
    nodes = [Node(c, root, n, "", extra=tls) for n in ["t1", "t2", "t3"]]
    flag = ",".join("%s=%s" % (x.name, x.peer_url) for x in nodes)
    try:
        for x in nodes:
            x.cluster_flag = flag
            x.start()
        h.wait_until(lambda: all(x.healthy() for x in nodes), 30, 0.1, "every TLS member has a leader")
        t4 = Node(c, root, "t4", "", state="existing", extra=tls)
        nodes.append(t4)
        r = add_member(c, nodes[0], t4.peer_url)
        c.eq("adding a member to a cluster with peer TLS is 201", r.status, 201)
        t4.cluster_flag = flag + ",t4=" + t4.peer_url
        t4.start()
        wait_healthy(t4, nodes[:3], "the TLS member joined")
        want = r.json().get("id") if r.status == 201 else None
        c.eq("it joined under the ID the add gave it", id_settles(t4, want), want)
        r = h.http_request(t4.hostport, "GET", "/new?size=3", timeout=10)
        c.eq("a token created through the joined TLS member", r.status, 200)
        tok = r.text.rsplit("/", 1)[1]
        w = h.http_request(t4.hostport, "PUT", "/%s/m1?prevExist=false" % tok, body="value=x", timeout=10)
        c.eq("a registration through the joined TLS member is acknowledged", w.status, 201)
        # a member stopped after it learned its ID but before the leader sent it anything asks again
        t5 = Node(c, root, "t5", flag + ",t4=%s,t5=" % t4.peer_url, state="existing", extra=tls)
        nodes.append(t5)
        t5.cluster_flag += t5.peer_url
        r = add_member(c, nodes[1], t5.peer_url)
        c.eq("adding a fifth member is 201", r.status, 201)
        L = h.wait_until(lambda: leader(nodes[:4]), 15, 0.1, "a leader")
        L.proc.send_signal(signal.SIGSTOP)
        try:
            t5.start()
            h.wait_until(lambda: "listening on" in h.read_text(t5.log), 15, 0.02, "t5 started")
            t5.kill9()
        finally:
            L.proc.send_signal(signal.SIGCONT)
        t5.start()
        wait_healthy(t5, nodes[:4], "t5, restarted, joined")
        c.check("... after asking the members again (its data dir held IDs but no membership)",
                "asked the members again" in h.read_text(t5.log), h.tail(t5.log, 6))
    finally:
        for x in nodes:
            if x.alive():
                x.proc.send_signal(15)
        for x in nodes:
            if x.proc is not None:
                try:
                    x.proc.wait(timeout=h.T(20))
                except Exception:  # noqa: BLE001
                    x.kill9()


def main():
    c = h.Checks("membership changes at run time")
    c.run("add, remove a follower, remove the leader, replace a wiped member, refusals", scenario)
    c.run("a member joins a cluster with peer mutual TLS", scenario_tls)
    c.finish()


if __name__ == "__main__":
    main()
