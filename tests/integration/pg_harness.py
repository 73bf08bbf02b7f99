#!/usr/bin/env python3
# tests/integration/pg_harness.py — a real PostgreSQL 15 for the tests, in a temp dir under the
# harness's temp root (so the harness removes it), on a free loopback port and a Unix socket in that
# dir. initdb/pg_ctl refuse root, so under root (CI) the server runs as the "postgres" user (the
# Debian package creates it). The postmaster is started by us (not daemonised by pg_ctl), so the
# harness SIGKILLs it at exit, even on failure, and PR_SET_PDEATHSIG kills it if we die.
# Run as a program: `pg_harness.py --run CMD...` starts a cluster, runs CMD with DISCOVERYD_TEST_PG
# set to its connection string, stops the cluster and exits with CMD's status (the SQL unit test).

import os
import pwd
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

PASSWORD = "s3cret-pw"


def _bindir():
    for d in ("/usr/lib/postgresql/15/bin",):
        if os.path.exists(os.path.join(d, "postgres")):
            return d
    p = shutil.which("postgres")
    if p:
        return os.path.dirname(p)
    raise RuntimeError("PostgreSQL 15 not found (deploy/deps.sh installs the postgresql package)")


class Postgres:
    def __init__(self, label="pg"):
        self.bin = _bindir()
        self.root = os.geteuid() == 0
        self.user = "postgres" if self.root else pwd.getpwuid(os.geteuid()).pw_name
        self.dir = h.tmpdir(label)
        # the harness's temp root is 0700 root: let the postgres user through to its own dir
        os.chmod(os.path.dirname(self.dir), 0o711)
        self.data = os.path.join(self.dir, "data")
        self.log = os.path.join(self.dir, "postgres.log")
        pw = os.path.join(self.dir, "pw")
        with open(pw, "w") as f:
            f.write(PASSWORD + "\n")
        if self.root:
            pwent = pwd.getpwnam("postgres")
            for path in (self.dir, pw):
                os.chown(path, pwent.pw_uid, pwent.pw_gid)
        self._as_user([os.path.join(self.bin, "initdb"), "-D", self.data, "-U", "postgres", "--pwfile", pw,
                       "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--no-sync"],
                      timeout=120)
        self.port = h.free_port()
        self.proc = None
        self.start()

    def _as_user(self, argv, timeout=60, check=True):
        if self.root:
            argv = ["runuser", "-u", "postgres", "--"] + argv
        r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=h.T(timeout),
                           cwd="/")
        if check and r.returncode != 0:
            raise RuntimeError("%s failed (%d): %s" % (argv, r.returncode, r.stdout.decode(errors="replace")))
        return r

    def url(self, password=PASSWORD, host="127.0.0.1", port=None):
        return "postgresql://postgres:%s@%s:%d/postgres" % (password, host, port or self.port)

    def start(self):
        argv = [os.path.join(self.bin, "postgres"), "-D", self.data, "-p", str(self.port), "-k", self.dir,
                "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off",
                "-c", "full_page_writes=off", "-c", "max_connections=60", "-c", "shared_buffers=32MB"]
        logf = open(self.log, "ab")
        kw = {}
        if self.root:
            pwent = pwd.getpwnam("postgres")
            kw = {"user": pwent.pw_uid, "group": pwent.pw_gid, "extra_groups": []}
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                                     preexec_fn=h._pdeathsig, close_fds=True, cwd="/", **kw)
        logf.close()
        h._procs.append(self.proc)

        def ready():
            if self.proc.poll() is not None:
                raise h.Fatal("postgres exited:\n" + h.tail(self.log))
            r = subprocess.run([os.path.join(self.bin, "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port),
                                "-t", "1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            return r.returncode == 0
        h.wait_until(ready, 60, 0.1, "postgres ready")

    def stop_immediate(self):
        """pg_ctl stop -m immediate: the postmaster and every backend go at once."""
        self._as_user([os.path.join(self.bin, "pg_ctl"), "stop", "-D", self.data, "-m", "immediate", "-w"])
        self.proc.wait(timeout=h.T(30))

    def pids(self):
        """The postmaster and its children (backends and helpers)."""
        out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(self.proc.pid)], stdout=subprocess.PIPE,
                             text=True).stdout
        return [self.proc.pid] + [int(x) for x in out.split()]

    def signal_all(self, sig):
        for pid in self.pids():
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    def sql(self, statement):
        """Run SQL through psql on the Unix socket; returns stdout (tuples only, unaligned)."""
        env = dict(os.environ, PGPASSWORD=PASSWORD)
        r = subprocess.run([os.path.join(self.bin, "psql"), "-h", self.dir, "-p", str(self.port), "-U", "postgres",
                            "-d", "postgres", "-At", "-v", "ON_ERROR_STOP=1", "-c", statement],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, timeout=h.T(30), text=True,
                           cwd="/")
        if r.returncode != 0:
            raise RuntimeError("psql: %s" % r.stderr.strip())
        return r.stdout.strip()

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.signal_all(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(timeout=h.T(20))
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def main():
    if len(sys.argv) < 3 or sys.argv[1] != "--run":
        print("usage: pg_harness.py --run CMD...", file=sys.stderr)
        return 2
    pg = Postgres()
    env = dict(os.environ, DISCOVERYD_TEST_PG=pg.url())
    t = time.monotonic()
    try:
        rc = subprocess.run(sys.argv[2:], env=env, timeout=h.T(600)).returncode
    finally:
        pg.stop()
    print("# %s exited %d after %.1fs" % (sys.argv[2], rc, time.monotonic() - t))
    h._cleanup()
    return rc


if __name__ == "__main__":
    sys.exit(main())
