# tests/integration/faultproxy.py — a fault-injecting TCP proxy between discoveryd peers (stdlib only).
# Each member J gets one proxy; the others reach J through it (J's entry in --initial-cluster names the
# proxy's address, J itself listens with --listen-peer-urls on its real one). A peer frame (store/transport.h:
# [u32 len][u8 ver][u8 kind][u64 cluster][u64 from][u64 to][payload], plaintext without peer TLS) only ever
# travels on the sender's own outgoing connection, so the proxy for J parses what flows towards J and can
# drop frames by (from, to): partitions and one-way loss. cut(J) severs every connection into J and refuses
# new ones until heal(). Threads are bounded: one acceptor per proxy, two pumps per connection, all stopped
# by close().

import select
import socket
import struct
import threading

HEADER = 30          # u32 length + u8 version + u8 kind + 3 x u64
MAX_FRAME = 16 << 20 # the transport's cap on the length field


class _Proxy:
    def __init__(self, net, target_port, listen_port=0):
        self.net, self.target = net, ("127.0.0.1", target_port)
        self.lock = threading.Lock()
        self.conns = set()   # (client socket, upstream socket)
        self.threads = []
        self.cut = False
        self.port = listen_port
        self.lsock = None
        self.listen()

    def listen(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", self.port))
        self.port = s.getsockname()[1]
        s.listen(16)
        self.lsock = s
        t = threading.Thread(target=self.accept_loop, args=(s,), daemon=True)
        t.start()
        self.threads.append(t)

    def accept_loop(self, lsock):
        while not self.net.stopping.is_set():
            try:
                r, _, _ = select.select([lsock], [], [], 0.2)
            except (OSError, ValueError):
                return  # closed by cut() or close()
            if not r:
                continue
            try:
                c, _ = lsock.accept()
            except OSError:
                return
            try:
                u = socket.create_connection(self.target, timeout=2)
                u.settimeout(None)
            except OSError:
                c.close()  # the member is down: the sender reconnects later
                continue
            for s in (c, u):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self.lock:
                if self.cut or self.net.stopping.is_set():
                    c.close()
                    u.close()
                    continue
                self.conns.add((c, u))
                self.threads = [t for t in self.threads if t.is_alive()]
                for fn, a in ((self.frames, (c, u)), (self.raw, (u, c))):
                    t = threading.Thread(target=fn, args=a, daemon=True)
                    t.start()
                    self.threads.append(t)

    def _end(self, c, u):
        with self.lock:
            self.conns.discard((c, u))
        for s in (c, u):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def _recv(self, s):
        """Bytes from s, b"" at its end; None when the proxy stops."""
        while not self.net.stopping.is_set():
            try:
                r, _, _ = select.select([s], [], [], 0.2)
                if r:
                    return s.recv(65536)
            except (OSError, ValueError):
                return b""
        return None

    def raw(self, src, dst):
        """The receiver's direction: nothing but TCP (or a TLS handshake) flows here; pass it on."""
        while True:
            data = self._recv(src)
            if not data:
                break
            try:
                dst.sendall(data)
            except OSError:
                break
        self._end(dst, src)

    def frames(self, c, u):
        """The sender's direction: whole frames, each forwarded or dropped by the rules."""
        buf = bytearray()
        while True:
            data = self._recv(c)
            if not data:
                break
            buf += data
            out, off = bytearray(), 0
            bad = False
            while len(buf) - off >= HEADER:
                (n,) = struct.unpack_from("<I", buf, off)
                if n < HEADER - 4 or n > MAX_FRAME + HEADER:
                    bad = True
                    break
                if len(buf) - off < 4 + n:
                    break
                frm, to = struct.unpack_from("<QQ", buf, off + 14)
                if self.net.passes(frm, to):
                    out += buf[off:off + 4 + n]
                off += 4 + n
            del buf[:off]
            if bad:
                break
            if out:
                try:
                    u.sendall(out)
                except OSError:
                    break
        self._end(c, u)

    def sever(self):
        """Close every connection and the listening socket (new connects are refused)."""
        with self.lock:
            self.cut = True
            conns = list(self.conns)
            if self.lsock is not None:
                self.lsock.close()
                self.lsock = None
        for c, u in conns:
            self._end(c, u)

    def restore(self):
        with self.lock:
            if not self.cut:
                return
            self.cut = False
        self.listen()

    def close(self):
        self.sever()
        for t in list(self.threads):
            t.join(5)


class FaultNet:
    """Proxies for a set of members and the rules they apply. Member IDs are ints (the %x of /v2/members).
    Rules: drop(a, b) loses every frame a sends to b (one way); partition(*groups) loses every frame
    between members of different groups; cut(j) severs all connections into j; heal() clears everything."""

    def __init__(self):
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.dropped = set()      # (from, to)
        self.proxies = {}         # key -> _Proxy
        self.counts = {"forwarded": 0, "dropped": 0}

    def add(self, key, target_port):
        """A proxy for the member reached at target_port; returns the port peers should dial."""
        p = _Proxy(self, target_port)
        self.proxies[key] = p
        return p.port

    def passes(self, frm, to):
        with self.lock:
            ok = (frm, to) not in self.dropped
            self.counts["forwarded" if ok else "dropped"] += 1
        return ok

    def drop(self, frm, to):
        with self.lock:
            self.dropped.add((frm, to))

    def partition(self, *groups):
        with self.lock:
            for i, g in enumerate(groups):
                for h in groups[i + 1:]:
                    for a in g:
                        for b in h:
                            self.dropped.add((a, b))
                            self.dropped.add((b, a))

    def cut(self, key):
        self.proxies[key].sever()

    def isolate(self, key, member_id, others):
        """Nothing reaches the member (cut) and nothing it sends to others is delivered."""
        self.cut(key)
        with self.lock:
            for o in others:
                self.dropped.add((member_id, o))

    def heal(self):
        with self.lock:
            self.dropped.clear()
        for p in self.proxies.values():
            p.restore()

    def stats(self):
        with self.lock:
            return dict(self.counts)

    def close(self):
        self.stopping.set()
        for p in self.proxies.values():
            p.close()
