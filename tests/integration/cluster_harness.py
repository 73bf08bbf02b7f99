# tests/integration/cluster_harness.py — a cluster of discoveryd processes for the cluster tests
# (test_cluster.py, test_nemesis.py; test_membership.py builds its own members on Member): members on
# loopback with their own data dirs and logs, started, SIGKILLed, paused and restarted; optionally
# with a fault-injecting proxy (faultproxy.py) in front of every member's peer port, so partitions and
# one-way loss can be made between them.

import os
import re
import shlex
import signal
import time

import harness as h
import faultproxy

BIN = os.environ.get("DISCOVERYD_BIN", "")


class Member:
    """A discoveryd process of a cluster test: what every kind of member shares. A subclass sets
    name, hostport, log and argv (a list) before start()."""
    proc = None
    paused = False

    def start(self):
        with open(self.log, "ab") as f:
            f.write(("=== start %.3f %s\n" % (time.time(), getattr(self, "state", ""))).encode())
        env = {k: v for k, v in os.environ.items() if not k.startswith("DISCOVERYD_")}
        self.proc = h.spawn(self.argv, self.log, env=env)
        self.paused = False

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill9(self):
        if self.alive():
            self.proc.kill()  # SIGKILL works on a stopped process too
            self.proc.wait(timeout=10)
        self.paused = False

    def metrics_text(self):
        return h.http_request(self.hostport, "GET", "/metrics", timeout=2).text

    def metric(self, name, labels=""):
        try:
            t = self.metrics_text()
        except Exception:  # noqa: BLE001
            return None
        m = re.search(r"^%s%s (\d+)$" % (re.escape(name), re.escape(labels)), t, re.M)
        return int(m.group(1)) if m else None

    def healthy(self):
        try:
            return h.http_request(self.hostport, "GET", "/health", timeout=2).status == 200
        except Exception:  # noqa: BLE001
            return False


class Node(Member):
    def __init__(self, checks, name, port, peer_port, cluster_flag, data_dir, listen_peer=None, extra=()):
        self.name, self.port, self.peer_port = name, port, peer_port
        self.hostport = "127.0.0.1:%d" % port
        self.base = "http://" + self.hostport
        self.data_dir = data_dir
        self.id = None  # the member ID (int), once read from /v2/members
        self.log = os.path.join(os.path.dirname(data_dir), name + ".log")
        self.argv = [BIN, "--name", name, "--initial-cluster", cluster_flag, "--listen", self.hostport,
                     "--data-dir", data_dir, "--public-url", self.base, "--snapshot-count", "300"] + \
            (["--listen-peer-urls", listen_peer] if listen_peer else []) + list(extra) + \
            h.DiscoverydBackend.RELAXED_LIMITS + shlex.split(os.environ.get("DISCOVERYD_ITEST_ARGS", ""))
        checks.add_log(name, self.log, 30)
        self.start()

    def pause(self):
        if self.alive():
            self.proc.send_signal(signal.SIGSTOP)
            self.paused = True

    def resume(self):
        if self.alive() and self.paused:
            self.proc.send_signal(signal.SIGCONT)
        self.paused = False


def start_cluster(c, n=3, proxied=False, extra=()):
    """n members d1..dn, every one healthy. proxied: each member's peer URL in --initial-cluster is a
    faultproxy in front of it (returned as the second value, else None), and the member's IDs are read."""
    ports = h.free_ports(2 * n)
    net = faultproxy.FaultNet() if proxied else None
    urls = []
    for i in range(n):
        p = net.add("d%d" % (i + 1), ports[n + i]) if net else ports[n + i]
        urls.append("http://127.0.0.1:%d" % p)
    flag = ",".join("d%d=%s" % (i + 1, urls[i]) for i in range(n))
    root = h.tmpdir("cluster")
    nodes = [Node(c, "d%d" % (i + 1), ports[i], ports[n + i], flag, os.path.join(root, "d%d.data" % (i + 1)),
                  listen_peer="http://127.0.0.1:%d" % ports[n + i] if net else None, extra=extra)
             for i in range(n)]
    try:
        h.wait_until(lambda: all(x.healthy() for x in nodes), 30, 0.1, "every member has a leader")
        ml = h.http_request(nodes[0].hostport, "GET", "/v2/members").json()["members"]
        ids = {m["name"]: int(m["id"], 16) for m in ml}
        for x in nodes:
            x.id = ids.get(x.name)
    except Exception:
        if net:
            net.close()
        raise
    return (nodes, net) if proxied else nodes


def leader(nodes):
    """The member that says it leads (the one in the highest term if two do, as across a partition)."""
    best, term = None, -1
    for x in nodes:
        if x.alive() and not x.paused and x.metric("discoveryd_is_leader") == 1:
            t = x.metric("discoveryd_raft_term") or 0
            if t > term:
                best, term = x, t
    return best


def listing(node, tok):
    r = h.http_request(node.hostport, "GET", "/%s?recursive=true&sorted=true" % tok, timeout=5)
    return r.status, r.body


def stop_all(c, nodes):
    """A graceful stop of every member; each must exit 0 and leave no sanitizer report in its log."""
    for x in nodes:
        x.resume()
        if x.alive():
            x.proc.send_signal(15)
    for x in nodes:
        try:
            rc = x.proc.wait(timeout=h.T(20))
        except Exception:  # noqa: BLE001
            x.kill9()
            rc = "hung"
        c.eq("%s exits 0 on SIGTERM" % x.name, rc, 0)
        log = h.read_text(x.log)
        c.check("%s log has no sanitizer report" % x.name,
                not any(m in log for m in h.DiscoverydBackend.SANITIZER_MARKS))
