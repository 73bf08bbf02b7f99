#!/usr/bin/env python3
# tests/integration/test_disk_full.py — discoveryd on a file system that runs out of space: its
# --data-dir on a small tmpfs (80 MiB: the first 64 MiB WAL segment fits, the roll-over to the
# second does not) and on a loop-mounted ext4 image with a filler file. Writers fill the WAL until
# a write is refused; then every write answers 5xx (never 4xx, never a hang), reads still work,
# /health is 503 with a reason, the log names the error; SIGTERM stops it; space is freed (tmpfs
# remounted bigger / filler removed) and a restart holds every acknowledged write (lost = 0) and
# accepts writes again.
# Needs root (mount); a variant that cannot mount is skipped with the reason printed.
# Bounded: writes capped by bytes (3x the file system) and time; every request has a timeout.
# Run: DISCOVERYD_BIN=build/discoveryd python3 tests/integration/test_disk_full.py

import http.client
import os
import shutil
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
import durable as d  # noqa: E402

MIB = 1 << 20
VALUE_BYTES = 200 * 1024
WRITERS = 4
AFTER_REFUSAL = 8        # writes each writer still sends once a refusal was seen
MAX_SECONDS = 180


def run(argv, timeout=60):
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=timeout)
    return p.returncode, p.stdout.decode("utf-8", "replace").strip()


class Mount:
    """A mounted file system at a fresh directory; umount() is idempotent."""

    def __init__(self, kind, mnt, size_mib):
        self.kind, self.mnt, self.size_mib = kind, mnt, size_mib
        self.mounted = False
        self.image = None

    def mount(self):
        if self.kind == "tmpfs":
            rc, out = run(["mount", "-t", "tmpfs", "-o", "size=%dm,mode=0700" % self.size_mib, "tmpfs", self.mnt])
        else:
            mkfs = shutil.which("mkfs.ext4") or "/sbin/mkfs.ext4"
            if not os.access(mkfs, os.X_OK):
                return "mkfs.ext4 not found"
            self.image = self.mnt + ".img"
            with open(self.image, "wb") as f:
                f.truncate(self.size_mib * MIB)
            rc, out = run([mkfs, "-q", "-F", "-m", "0", self.image])
            if rc != 0:
                return "mkfs.ext4 failed: %s" % out
            rc, out = run(["mount", "-o", "loop", self.image, self.mnt])
        if rc != 0:
            return "mount failed (rc %d): %s" % (rc, out)
        self.mounted = True
        return None

    def free(self):
        st = os.statvfs(self.mnt)
        return st.f_bavail * st.f_frsize

    def umount(self, checks=None):
        if self.mounted:
            rc, out = run(["umount", self.mnt])
            if rc != 0:
                run(["umount", "-l", self.mnt])
            self.mounted = False
        if self.image:
            try:
                os.unlink(self.image)
            except OSError:
                pass
            self.image = None


class Writer(threading.Thread):
    def __init__(self, tid, backend, tok, refused, deadline, byte_cap):
        super().__init__(daemon=True)
        self.tid, self.backend, self.tok = tid, backend, tok
        self.refused = refused          # threading.Event: some write was refused
        self.deadline = deadline
        self.byte_cap = byte_cap
        self.records = []

    def run(self):
        c = d.Client(self.backend.hostport, timeout=15)
        after = 0
        n = 0
        while time.monotonic() < self.deadline and after < AFTER_REFUSAL and n * VALUE_BYTES < self.byte_cap:
            n += 1
            key = "f%d-%05d" % (self.tid, n)
            value = (key + "-") * (VALUE_BYTES // (len(key) + 1))
            rec = {"key": key, "value": value, "tok": self.tok, "status": None, "created": None}
            self.records.append(rec)
            if self.refused.is_set():
                after += 1
            t0 = time.monotonic()
            try:
                r = c.request("PUT", "/%s/%s?prevExist=false" % (self.tok, key), "value=" + value)
            except (OSError, http.client.HTTPException) as e:
                rec["error"] = "%s after %.1fs" % (type(e).__name__, time.monotonic() - t0)
                continue
            rec["status"] = r.status
            if r.status == 201:
                rec["created"] = r.json()["node"]["createdIndex"]
            else:
                rec["body"] = r.body[:200]
                self.refused.set()
        c.close()


def get_keys(backend, recs):
    """{key: (status, value, createdIndex)} for each record's key (individual GETs)."""
    jobs = [("GET", "/%s/%s" % (r["tok"], r["key"]), None) for r in recs]
    out = {}
    for (_, path, _), r in d.parallel(backend.hostport, jobs, threads=4, timeout=15):
        key = path.rsplit("/", 1)[1]
        if isinstance(r, Exception):
            out[key] = (repr(r), None, None)
        elif r.status == 200:
            n = r.json()["node"]
            out[key] = (200, n.get("value"), n.get("createdIndex"))
        else:
            out[key] = (r.status, None, None)
    return out


def scenario(c, kind, size_mib, filler_mib):
    root = h.tmpdir("diskfull-" + kind)
    mnt = os.path.join(root, "mnt")
    os.makedirs(mnt)
    m = Mount(kind, mnt, size_mib)
    why = m.mount()
    if why:
        c.skip("disk full on %s" % kind, why)
        return False
    filler = os.path.join(mnt, "filler")
    if filler_mib:
        with open(filler, "wb") as f:
            for _ in range(filler_mib):
                f.write(b"\0" * MIB)
            f.flush()
            os.fsync(f.fileno())
    data = os.path.join(mnt, "data")
    label = "discoveryd-" + kind
    try:
        backend = h.DiscoverydBackend(c, label=label, extra_args=[
            "--data-dir", data, "--max-size", "1000", "--surplus", "1000",
            "--max-value", str(2 * VALUE_BYTES), "--max-body", str(4 * VALUE_BYTES)])
    except BaseException:
        m.umount()
        raise
    # After the backend's own finalizer (SIGTERM, exit status, sanitizer check): unmount.
    c.finalizers.append(lambda _c: m.umount())
    backend.data_dir = data
    free0 = m.free()
    print("# %s: %d MiB, filler %d MiB, free after discoveryd started (first WAL segment allocated): %.1f MiB"
          % (kind, size_mib, filler_mib, free0 / MIB))

    toks = [backend.new_token(1000)[0] for _ in range(WRITERS)]
    refused = threading.Event()
    deadline = time.monotonic() + h.T(MAX_SECONDS)
    ws = [Writer(i, backend, toks[i], refused, deadline, 3 * size_mib * MIB // WRITERS) for i in range(WRITERS)]
    t0 = time.monotonic()
    for w in ws:
        w.start()
    for w in ws:
        w.join(timeout=h.T(MAX_SECONDS + 60))
    c.check("%s: writers finished" % kind, not any(w.is_alive() for w in ws))
    recs = [r for w in ws for r in w.records]
    acked = [r for r in recs if r["status"] == 201]
    refusals = [r for r in recs if r["status"] not in (201, None)]
    errors = [r for r in recs if r["status"] is None]
    four = [(r["key"], r["status"], r["body"]) for r in refusals if r["status"] < 500]
    print("# %s: writes sent %d, acknowledged %d, refused %d (statuses %s), no answer %d, in %.1fs" %
          (kind, len(recs), len(acked), len(refusals), sorted(set(r["status"] for r in refusals)), len(errors),
           time.monotonic() - t0))
    if refusals:
        print("# %s: first refusal: %s %r" % (kind, refusals[0]["status"], refusals[0]["body"]))
    if not c.check("%s: a write was refused once the file system was full" % kind, refusals,
                   "%d writes, all acknowledged" % len(recs)):
        return True
    c.eq("%s: refusals that are 4xx (must be 5xx)" % kind, four[:3], [])
    c.eq("%s: writes with no answer (hang, reset)" % kind, [(r["key"], r["error"]) for r in errors][:3], [])
    c.check("%s: the WAL took the space (acknowledged >= 64 MiB / value)" % kind,
            len(acked) * VALUE_BYTES >= 60 * MIB, len(acked))

    # Full: writes refused with 5xx, reads go on, /health says why.
    r = h.http_request(backend.hostport, "GET", "/health", timeout=10)
    reason = r.json().get("reason", "") if r.status == 503 else ""
    print("# %s: /health %d %s" % (kind, r.status, r.body[:300]))
    c.check("%s: /health 503 with a reason naming the write-ahead log" % kind,
            r.status == 503 and "write-ahead log" in reason, r)
    r = h.http_request(backend.hostport, "GET", "/new?size=3", timeout=10)
    c.check("%s: /new is refused with 5xx" % kind, 500 <= r.status <= 599, r)
    r = h.http_request(backend.hostport, "PUT", "/%s/late?prevExist=false" % toks[0], "value=x", timeout=10)
    c.check("%s: a small write is refused with 5xx" % kind, 500 <= r.status <= 599, r)
    got = get_keys(backend, acked)
    bad = [(x["key"], got[x["key"]][0], got[x["key"]][2], x["created"]) for x in acked
           if got[x["key"]] != (200, x["value"], x["created"])]
    c.eq("%s: while full, every acknowledged key reads back (GET 200, value, createdIndex)" % kind, bad[:3], [])
    r = h.http_request(backend.hostport, "GET", "/%s" % toks[0], timeout=10)
    c.eq("%s: while full, a token dir GET is 200" % kind, r.status, 200)
    log = backend.log_text()
    lines = [ln for ln in log.splitlines() if "No space left" in ln or "ENOSPC" in ln]
    print("# %s: log: %s" % (kind, lines[0] if lines else "(no ENOSPC line)"))
    c.check("%s: the log says which file and that there is no space" % kind,
            lines and ".wal" in lines[0], h.tail(backend.log, 5))

    rc = d.sigterm(backend)
    print("# %s: SIGTERM while full: exit status %s" % (kind, rc))
    c.check("%s: SIGTERM while full: exits within 20 s" % kind, rc is not None, rc)

    # Free space, restart, nothing acknowledged lost.
    if filler_mib:
        os.unlink(filler)
        how = "filler removed"
    else:
        rc2, out = run(["mount", "-o", "remount,size=%dm" % (size_mib * 3), mnt])
        c.check("%s: remount bigger" % kind, rc2 == 0, out)
        how = "remounted with %d MiB" % (size_mib * 3)
    secs = d.restart(backend, timeout=120)
    got = get_keys(backend, recs)
    lost = [(x["key"], got[x["key"]][0], got[x["key"]][2], x["created"]) for x in acked
            if got[x["key"]] != (200, x["value"], x["created"])]
    refused_present = sum(1 for x in refusals if got[x["key"]][0] == 200)
    wrong = [x["key"] for x in refusals if got[x["key"]][0] == 200 and got[x["key"]][1] != x["value"]]
    print("# %s: %s, restart to /health 200 in %.2fs: acknowledged %d, lost %d, refused but present %d" %
          (kind, how, secs, len(acked), len(lost), refused_present))
    c.eq("%s: after the restart, lost acknowledged writes" % kind, lost[:3], [])
    c.eq("%s: refused writes present with a value that was not sent" % kind, wrong[:3], [])
    top = max(x["created"] for x in acked)
    r = h.http_request(backend.hostport, "PUT", "/%s/after?prevExist=false" % toks[0], "value=ok", timeout=10)
    c.check("%s: a write after the restart is accepted, with a higher createdIndex" % kind,
            r.status == 201 and r.json()["node"]["createdIndex"] > top, r)
    c.eq("%s: /health after the restart" % kind, d.healthy_status(backend), 200)
    return True


def main():
    c = h.Checks("durability: disk full")
    ran = 0
    # tmpfs: 80 MiB holds the first 64 MiB segment, not a second; freed by remounting bigger.
    c.run("tmpfs 80 MiB", lambda cc: scenario(cc, "tmpfs", 80, 0))
    # ext4 on a loop device: 200 MiB with a 100 MiB filler file; freed by removing the filler.
    c.run("loop-mounted ext4 200 MiB + filler", lambda cc: scenario(cc, "ext4", 200, 100))
    ran = c.passed + c.failed
    if ran == 0:
        print("SKIP: could not mount a file system for the test (see the SKIP lines); needs root")
        h._cleanup()
        sys.stdout.flush()
        os._exit(0)
    c.finish()


if __name__ == "__main__":
    main()
