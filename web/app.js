// web/app.js — the behaviour of discoveryd's two pages. Everything from the network is put on
// the page with textContent (never as HTML). The pages work without this script; it adds:
//   home:  the form creates the token in place (POST /new, the same answer curl gets) and fills
//          the URL into the commands; copy buttons.
//   token: live updates. One loop per tab: read the token (v2 GET, for X-Etcd-Index) and
//          /status, then park ONE watch on the token's own v2 keys
//          (?wait=true&recursive=true&waitIndex=N); each event re-reads /status. A network error
//          shows "connection lost" and retries with back-off until discoveryd answers again.
'use strict';

(function () {
  const body = document.body;

  function setCopyButtons() {
    for (const b of document.querySelectorAll('button.copy')) {
      b.hidden = false;
      b.addEventListener('click', async () => {
        const src = document.getElementById(b.dataset.copy);
        const text = src ? src.textContent : '';
        let ok = false;
        try {
          await navigator.clipboard.writeText(text);
          ok = true;
        } catch (e) {
          const sel = window.getSelection();
          const range = document.createRange();
          range.selectNodeContents(src);
          sel.removeAllRanges();
          sel.addRange(range);
          try { ok = document.execCommand('copy'); } catch (e2) { ok = false; }
        }
        b.textContent = ok ? 'Copied' : 'Select and copy';
        setTimeout(() => { b.textContent = 'Copy'; }, 2000);
      });
    }
  }

  // ---- home ----
  function home() {
    const form = document.getElementById('new-form');
    const err = document.getElementById('new-error');
    const result = document.getElementById('result');
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      err.hidden = true;
      const size = document.getElementById('size').value;
      const button = form.querySelector('button[type=submit]');
      button.disabled = true;
      try {
        const r = await fetch('/new', {
          method: 'POST',
          headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
          body: new URLSearchParams({ size: size }).toString(),
          cache: 'no-store',
        });
        const text = await r.text();
        if (!r.ok) throw new Error(text.trim() || ('HTTP ' + r.status));
        const url = text.trim();
        document.getElementById('result-url').textContent = url;
        const path = new URL(url, location.href).pathname;
        document.getElementById('result-link').href = path;
        for (const s of document.querySelectorAll('.js-url')) s.textContent = url;
        for (const s of document.querySelectorAll('.js-size')) s.textContent = String(Number(size));
        result.hidden = false;
      } catch (e) {
        err.textContent = 'Could not create a token: ' + (e && e.message ? e.message : String(e));
        err.hidden = false;
      } finally {
        button.disabled = false;
      }
    });
  }

  // ---- token page ----
  function pad(n) { return String(n).padStart(2, '0'); }
  // The same text as the server's api_web_time_text: "2026-11-30 23:59:01 UTC".
  function timeText(iso) {
    const d = new Date(iso);
    if (isNaN(d.getTime())) return String(iso);
    return d.getUTCFullYear() + '-' + pad(d.getUTCMonth() + 1) + '-' + pad(d.getUTCDate()) + ' ' +
      pad(d.getUTCHours()) + ':' + pad(d.getUTCMinutes()) + ':' + pad(d.getUTCSeconds()) + ' UTC';
  }
  function timeEl(iso) {
    const t = document.createElement('time');
    t.dateTime = String(iso);
    t.textContent = timeText(iso);
    return t;
  }

  // The same sentences as the server's state_text() in api/web_token.c.
  function stateText(st) {
    if (!st) {
      return 'No token by this name exists: it was never created, it expired, or it was deleted.';
    }
    const n = st.members.length;
    if (st.full) {
      let s = 'Full: ' + st.size + ' of ' + st.size + ' members registered.';
      if (n > st.size) s += ' ' + (n - st.size) + ' surplus (they run as proxies or exit).';
      return s;
    }
    return 'Waiting for members: ' + n + ' of ' + st.size + ' registered.';
  }

  function cell(label, content) {
    const td = document.createElement('td');
    td.dataset.label = label;
    if (content instanceof Node) td.appendChild(content);
    else td.textContent = content;
    return td;
  }

  function token() {
    const tok = body.dataset.token;
    const enc = encodeURIComponent(tok);
    const keysURL = '/v2/keys/discovery/' + enc;
    const statusURL = '/status/' + enc;
    const conn = document.getElementById('conn');
    const seen = new Set();
    for (const tr of document.querySelectorAll('#members-body tr')) {
      const id = tr.querySelector('td[data-label="Member ID"]');
      if (id) seen.add(id.textContent);
    }

    function setConn(kind, text) {
      conn.dataset.conn = kind;
      conn.textContent = text;
    }

    function render(st) {
      body.dataset.state = !st ? 'notfound' : st.full ? 'full' : 'waiting';
      document.getElementById('state').textContent = stateText(st);
      document.getElementById('size').textContent = st ? String(st.size) : '–';
      document.getElementById('count').textContent = st ? String(st.members.length) : '–';
      for (const [id, v] of [['created', st && st.created], ['expires', st && st.expires]]) {
        const dd = document.getElementById(id);
        dd.textContent = '';
        if (v) dd.appendChild(timeEl(v));
        else dd.textContent = st ? 'never' : '–';
      }
      const tbody = document.getElementById('members-body');
      const rows = [];
      const members = st ? st.members : [];
      members.forEach((m, i) => {
        const tr = document.createElement('tr');
        tr.className = m.role === 'surplus' ? 'surplus' : 'member';
        if (!seen.has(m.id)) {
          tr.classList.add('arrived');
          seen.add(m.id);
        }
        tr.appendChild(cell('#', String(i + 1)));
        if (m.name) {
          tr.appendChild(cell('Name', m.name));
        } else {
          const none = document.createElement('span');
          none.className = 'muted';
          none.textContent = '(none)';
          tr.appendChild(cell('Name', none));
        }
        const code = document.createElement('code');
        code.textContent = m.id;
        tr.appendChild(cell('Member ID', code));
        const peers = document.createDocumentFragment();
        for (const u of m.peerURLs || []) {
          const s = document.createElement('span');
          s.className = 'peer';
          s.textContent = u;
          peers.appendChild(s);
        }
        tr.appendChild(cell('Peer URLs', peers));
        tr.appendChild(cell('createdIndex', String(m.createdIndex)));
        const role = document.createElement('span');
        role.className = 'role role-' + (m.role === 'surplus' ? 'surplus' : 'member');
        role.textContent = m.role === 'surplus' ? 'surplus' : 'member';
        tr.appendChild(cell('Role', role));
        tr.appendChild(cell('Registered', m.registered ? timeEl(m.registered) : '–'));
        rows.push(tr);
      });
      tbody.replaceChildren(...rows);
      document.getElementById('empty').hidden = members.length > 0;
    }

    let ctl = null;
    const sleep = (ms, signal) => new Promise((resolve) => {
      const id = setTimeout(resolve, ms);
      signal.addEventListener('abort', () => { clearTimeout(id); resolve(); }, { once: true });
    });

    // /status → render; false when the token does not exist.
    async function refresh(signal) {
      const r = await fetch(statusURL, { cache: 'no-store', signal });
      if (r.status === 404) { render(null); return false; }
      if (!r.ok) throw new Error('/status answered ' + r.status);
      render(await r.json());
      return true;
    }

    async function loop(signal) {
      let backoff = 1000;
      while (!signal.aborted) {
        try {
          // The index first, then the state: the watch replays anything in between.
          const g = await fetch(keysURL + '?recursive=true', { cache: 'no-store', signal });
          if (g.status !== 200 && g.status !== 404) throw new Error('discoveryd answered ' + g.status);
          const index = Number(g.headers.get('X-Etcd-Index'));
          await g.arrayBuffer();
          if (!Number.isFinite(index)) throw new Error('no X-Etcd-Index');
          const found = g.status === 200 && await refresh(signal);
          if (!found) {
            render(null);
            setConn('live', 'Connected. Checking again every 5 seconds.');
            backoff = 1000;
            await sleep(5000, signal);
            continue;
          }
          setConn('live', 'Live: this page updates as members register.');
          backoff = 1000;
          let waitIndex = index + 1;
          for (;;) {
            const w = await fetch(keysURL + '?wait=true&recursive=true&waitIndex=' + waitIndex,
              { cache: 'no-store', signal });
            const text = await w.text();
            if (w.status === 200 && text === '') continue; // the watch timed out: park again
            if (w.status !== 200) {
              if (w.status === 400 || w.status === 401 || w.status === 404) break; // start over
              throw new Error('watch answered ' + w.status);
            }
            const ev = JSON.parse(text);
            waitIndex = Number(ev.node && ev.node.modifiedIndex) + 1 || waitIndex + 1;
            if (!await refresh(signal)) break;
          }
          await sleep(1000, signal); // start over (history cleared, token gone): not in a tight loop
        } catch (e) {
          if (signal.aborted) return;
          const secs = Math.round(backoff / 1000);
          setConn('lost', 'Connection to discoveryd lost. Retrying in ' + secs + ' s…');
          await sleep(backoff, signal);
          backoff = Math.min(backoff * 2, 16000);
        }
      }
    }

    function start() {
      if (ctl) ctl.abort();
      ctl = new AbortController();
      loop(ctl.signal);
    }
    window.addEventListener('pagehide', () => { if (ctl) { ctl.abort(); ctl = null; } });
    window.addEventListener('pageshow', (e) => { if (e.persisted) start(); });
    setConn('live', 'Connecting…');
    start();
  }

  setCopyButtons();
  if (body.dataset.page === 'home') home();
  else if (body.dataset.page === 'token') token();
})();
