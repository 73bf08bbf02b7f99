// tests/e2e/procs.mjs — the processes a browser test needs, on loopback only: discoveryd
// ($DISCOVERYD_BIN, flags as tests/integration/harness.py passes them) and real etcd 3.4
// members; bounded waits; every child is SIGKILLed when this process exits.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

const children = new Set();
function killAll() {
  for (const c of children) {
    try { c.kill('SIGKILL'); } catch { /* gone */ }
  }
}
process.on('exit', killAll);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => { killAll(); process.exit(128 + os.constants.signals[sig]); });
}

export const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'dd-e2e-'));
export function cleanupTmp() {
  if (process.env.DISCOVERYD_ITEST_KEEP) console.log('# kept temp dir: ' + tmpRoot);
  else fs.rmSync(tmpRoot, { recursive: true, force: true });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const SCALE = Number(process.env.DISCOVERYD_ITEST_TIMEOUT_SCALE || '1') || 1;
export const T = (ms) => ms * SCALE;

/** Calls fn until it returns a truthy value (exceptions count as "not yet"); throws at the deadline. */
export async function waitUntil(fn, ms, what, interval = 100) {
  const deadline = Date.now() + T(ms);
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) { last = e; }
    if (Date.now() >= deadline) {
      throw new Error(`timed out after ${T(ms)} ms waiting for ${what}` + (last ? ` (last error: ${last.message})` : ''));
    }
    await sleep(interval);
  }
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const p = s.address().port;
      s.close(() => resolve(p));
    });
  });
}

function start(argv, logPath, env) {
  fs.appendFileSync(logPath, '=== ' + argv.join(' ') + '\n');
  const fd = fs.openSync(logPath, 'a');
  const c = spawn(argv[0], argv.slice(1), { stdio: ['ignore', fd, fd], env });
  fs.closeSync(fd);
  children.add(c);
  c.on('exit', () => children.delete(c));
  return c;
}

export function tail(p, n = 30) {
  try { return fs.readFileSync(p, 'utf8').split('\n').slice(-n).join('\n'); } catch { return ''; }
}

async function get(url, opts = {}) {
  const ctl = new AbortController();
  const t = setTimeout(() => ctl.abort(), T(5000));
  try {
    return await fetch(url, { ...opts, signal: ctl.signal });
  } finally { clearTimeout(t); }
}
export { get as httpGet };

const RELAXED = ['--new-rate', '1000', '--new-burst', '10000', '--new-range-rate', '1000',
  '--new-range-burst', '10000', '--token-write-rate', '1000', '--token-write-burst', '10000'];

export class Discoveryd {
  constructor(port) {
    this.bin = process.env.DISCOVERYD_BIN;
    if (!this.bin) throw new Error('DISCOVERYD_BIN is not set');
    this.port = port;
    this.base = `http://127.0.0.1:${port}`;
    this.dataDir = fs.mkdtempSync(path.join(tmpRoot, 'discoveryd.data-'));
    this.log = path.join(tmpRoot, 'discoveryd.log');
    // Short, so that a watch whose client went away (a reloaded page) ends soon and the
    // parked-watch gauge reads what the open tabs hold; it also exercises the page's re-poll.
    this.watchTimeout = '5s';
  }

  /** Starts (or restarts, same port and data dir) and waits for /health. */
  async start() {
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('DISCOVERYD_')));
    this.proc = start([this.bin, '--listen', `127.0.0.1:${this.port}`, '--data-dir', this.dataDir,
      '--public-url', this.base, '--max-size', '15', '--watch-timeout', this.watchTimeout, '--token-ttl', '168h',
      ...RELAXED], this.log, env);
    await waitUntil(async () => {
      if (this.proc.exitCode !== null) throw new Error('discoveryd exited:\n' + tail(this.log));
      return (await get(this.base + '/health')).status === 200;
    }, 30000, 'discoveryd /health');
  }

  kill() {
    return new Promise((resolve) => {
      if (this.proc.exitCode !== null || this.proc.signalCode !== null) return resolve();
      this.proc.once('exit', () => resolve());
      this.proc.kill('SIGKILL');
    });
  }

  /** SIGTERM; resolves to the exit code (null if it had to be SIGKILLed after 20 s). */
  stop() {
    return new Promise((resolve) => {
      if (this.proc.exitCode !== null) return resolve(this.proc.exitCode);
      const t = setTimeout(() => { this.proc.kill('SIGKILL'); resolve(null); }, T(20000));
      this.proc.once('exit', (code) => { clearTimeout(t); resolve(code); });
      this.proc.kill('SIGTERM');
    });
  }

  async parkedWatches() {
    const text = await (await get(this.base + '/metrics')).text();
    const m = /^discoveryd_parked_watches (\d+)$/m.exec(text);
    if (!m) throw new Error('no discoveryd_parked_watches in /metrics');
    return Number(m[1]);
  }

  logText() { try { return fs.readFileSync(this.log, 'utf8'); } catch { return ''; } }
}

/** An HTTP relay in front of discoveryd that, while .holding, holds every member registration
 * (a PUT) until the test releases it: two etcd members can both see a not-yet-full token and then
 * both register, as racing members do, so the loser's registration is a real surplus one. All
 * members of a cluster must use it: etcd derives member IDs from the discovery URL itself. */
export class HoldingRelay {
  static async create(target) {
    const r = new HoldingRelay();
    r.target = new URL(target);
    r.held = [];
    r.holding = false;
    r.server = http.createServer((req, res) => {
      const chunks = [];
      req.on('data', (c) => chunks.push(c));
      req.on('end', () => {
        const forward = () => {
          const up = http.request({ host: r.target.hostname, port: r.target.port, method: req.method, path: req.url,
            headers: { ...req.headers, host: r.target.host }, agent: false }, (ur) => {
            res.writeHead(ur.statusCode, ur.headers);
            ur.pipe(res);
          });
          up.on('error', () => res.destroy());
          res.on('close', () => up.destroy());
          up.end(Buffer.concat(chunks));
        };
        if (req.method === 'PUT' && r.holding) r.held.push({ path: req.url, release: forward });
        else forward();
      });
    });
    await new Promise((resolve) => r.server.listen(0, '127.0.0.1', resolve));
    r.base = `http://127.0.0.1:${r.server.address().port}`;
    return r;
  }

  close() { this.server.closeAllConnections(); this.server.close(); }
}

export class Member {
  static async create(name, discovery, extra = []) {
    const m = new Member();
    m.name = name;
    m.clientPort = await freePort();
    do { m.peerPort = await freePort(); } while (m.peerPort === m.clientPort);
    m.clientURL = `http://127.0.0.1:${m.clientPort}`;
    m.peerURL = `http://127.0.0.1:${m.peerPort}`;
    m.dataDir = fs.mkdtempSync(path.join(tmpRoot, name + '.etcd-'));
    m.log = path.join(tmpRoot, name + '.log');
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) =>
      !k.startsWith('ETCD_') && !k.startsWith('ETCDCTL_') && !/^(http|https|all)_proxy$/i.test(k)));
    m.proc = start(['etcd', '--name', name, '--data-dir', m.dataDir,
      '--listen-client-urls', m.clientURL, '--advertise-client-urls', m.clientURL,
      '--listen-peer-urls', m.peerURL, '--initial-advertise-peer-urls', m.peerURL,
      '--discovery', discovery, ...extra], m.log, env);
    return m;
  }

  alive() { return this.proc.exitCode === null && this.proc.signalCode === null; }

  async healthy() {
    const r = await get(this.clientURL + '/health');
    return r.status === 200 && (await r.json()).health === 'true';
  }

  kill() { if (this.alive()) this.proc.kill('SIGKILL'); }
}
