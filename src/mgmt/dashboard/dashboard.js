// warren dashboard: one page over the management API (/api/...), polled.
//
// Every view mounts its skeleton once (forms keep what the user typed) and refreshes its
// data on a timer. All text goes in through textContent, never as HTML: queue and exchange
// names are whatever clients chose. Styles are set through the CSSOM only (the page's CSP
// forbids inline style attributes).
'use strict';

(function () {
  const { drawChart } = window.warrenCharts;
  const $ = (id) => document.getElementById(id);
  const authKey = 'warren.auth';
  const colors = { publish: '#e8772e', deliver: '#3b7dd8', ack: '#2f9e5b', redeliver: '#8a5cd1', ready: '#e8772e', unacked: '#3b7dd8', total: '#8a8078' };
  const stagePalette = ['#e8772e', '#3b7dd8', '#2f9e5b', '#8a5cd1', '#d2453b', '#1a9fb0', '#b8860b', '#6b635b'];

  const state = {
    auth: sessionStorage.getItem(authKey),
    user: null,
    overview: null,
    view: null,
    intervalMs: Number(localStorage.getItem('warren.refreshMs') || 5000),
    timer: null,
    refreshing: false,
    sort: {},
    selectedQueue: null,
    queueFilter: '',
    lastRows: {},
  };

  // ---- DOM helpers ------------------------------------------------------------------

  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') el.className = v;
      else if (k === 'text') el.textContent = v;
      else if (k === 'style') Object.assign(el.style, v);
      else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else if (k === 'value') el.value = v;
      else if (k === 'checked') el.checked = true;
      else el.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children.flat(Infinity)) {
      if (c === undefined || c === null || c === false) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }

  function clear(el) {
    while (el.firstChild) el.removeChild(el.firstChild);
    return el;
  }

  // ---- formatting -------------------------------------------------------------------

  const nf = new Intl.NumberFormat('en-US');
  const fmtInt = (n) => (typeof n === 'number' && isFinite(n) ? nf.format(Math.round(n)) : '—');
  function fmtRate(r) {
    if (typeof r !== 'number' || !isFinite(r)) return '—';
    if (r === 0) return '0/s';
    if (r < 10) return `${r.toFixed(1)}/s`;
    return `${nf.format(Math.round(r))}/s`;
  }
  function fmtBytes(b) {
    if (typeof b !== 'number' || !isFinite(b)) return '—';
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    let v = b;
    while (v >= 1024 && i < units.length - 1) {
      v /= 1024;
      i++;
    }
    return `${i === 0 ? v : v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
  }
  const fmtByteRate = (r) => (typeof r === 'number' ? `${fmtBytes(r)}/s` : '—');
  function fmtDuration(ms) {
    const s = Math.floor(ms / 1000);
    const d = Math.floor(s / 86400);
    const hh = Math.floor((s % 86400) / 3600);
    const mm = Math.floor((s % 3600) / 60);
    if (d > 0) return `${d}d ${hh}h`;
    if (hh > 0) return `${hh}h ${mm}m`;
    if (mm > 0) return `${mm}m ${s % 60}s`;
    return `${s}s`;
  }
  function fmtLatency(us) {
    if (typeof us !== 'number' || !isFinite(us)) return '—';
    if (us < 1000) return `${Math.round(us)} µs`;
    if (us < 1e6) return `${(us / 1000).toFixed(us < 1e4 ? 2 : 1)} ms`;
    return `${(us / 1e6).toFixed(2)} s`;
  }
  const vhostPart = (v) => encodeURIComponent(v);
  const get = (o, path) => path.split('.').reduce((x, k) => (x === undefined || x === null ? undefined : x[k]), o);

  // ---- API --------------------------------------------------------------------------

  function base64Utf8(text) {
    const bytes = new TextEncoder().encode(text);
    let s = '';
    for (const b of bytes) s += String.fromCharCode(b);
    return btoa(s);
  }

  class ApiError extends Error {
    constructor(status, body) {
      super(body && body.reason ? body.reason : `HTTP ${status}`);
      this.status = status;
    }
  }

  async function api(path, opts = {}) {
    const headers = { Authorization: `Basic ${state.auth}`, 'X-Requested-With': 'XMLHttpRequest' };
    if (opts.body !== undefined) headers['Content-Type'] = 'application/json';
    const res = await fetch(path, {
      method: opts.method || 'GET',
      headers,
      body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
      cache: 'no-store',
    });
    if (res.status === 401 && !opts.quiet401) {
      const body = await res.json().catch(() => null);
      if (body && body.error === 'not_authorized') {
        logout('Your session has ended: please log in again.');
        throw new ApiError(401, body);
      }
      throw new ApiError(401, body);
    }
    if (res.status === 204 || res.status === 201) return null;
    const body = await res.json().catch(() => null);
    if (!res.ok) throw new ApiError(res.status, body);
    return body;
  }

  const isMonitor = () => state.user && state.user.tags.some((t) => t === 'administrator' || t === 'monitoring');
  const isAdmin = () => state.user && state.user.tags.includes('administrator');

  // ---- sortable tables --------------------------------------------------------------

  /**
   * columns: [{key, label, num, render(row) → node|string, value(row) → sortable}]
   * Returns the table element; re-renders its body when a header is clicked.
   */
  function dataTable(id, columns, rows, opts = {}) {
    state.lastRows[id] = rows;
    const sort = state.sort[id] || opts.defaultSort || null;
    const valueOf = (c, r) => (c.value ? c.value(r) : get(r, c.key));
    let sorted = rows;
    if (sort) {
      const col = columns.find((c) => c.key === sort.key);
      if (col) {
        sorted = [...rows].sort((a, b) => {
          const x = valueOf(col, a);
          const y = valueOf(col, b);
          const cmp = typeof x === 'number' && typeof y === 'number' ? x - y : String(x ?? '').localeCompare(String(y ?? ''));
          return sort.dir === 'desc' ? -cmp : cmp;
        });
      }
    }
    const limit = opts.limit || 500;
    const shown = sorted.slice(0, limit);
    const head = h(
      'tr',
      {},
      columns.map((c) => {
        const cls = ['sortable', c.num ? 'num' : '', sort && sort.key === c.key ? `sorted-${sort.dir}` : ''].join(' ').trim();
        return h('th', {
          class: cls,
          'data-col': c.key,
          title: c.title || `Sort by ${c.label}`,
          onclick: () => {
            const cur = state.sort[id] || opts.defaultSort;
            const dir = cur && cur.key === c.key && cur.dir === (c.num ? 'desc' : 'asc') ? (c.num ? 'asc' : 'desc') : c.num ? 'desc' : 'asc';
            state.sort[id] = { key: c.key, dir };
            const table = document.getElementById(id);
            if (table) table.replaceWith(dataTable(id, columns, state.lastRows[id], opts));
          },
          text: c.label,
        });
      }),
    );
    const body = h('tbody', {});
    if (shown.length === 0) {
      body.append(h('tr', {}, h('td', { class: 'empty', colspan: columns.length, text: opts.empty || 'Nothing here yet.' })));
    }
    for (const r of shown) {
      const key = opts.rowKey ? opts.rowKey(r) : undefined;
      const tr = h('tr', {
        'data-key': key,
        class: opts.selectedKey && key === opts.selectedKey ? 'selected' : undefined,
      });
      for (const c of columns) {
        const v = c.render ? c.render(r) : get(r, c.key);
        tr.append(h('td', { class: [c.num ? 'num' : '', c.cls || ''].join(' ').trim() || undefined, 'data-col': c.key }, v instanceof Node ? v : c.num && typeof v === 'number' ? fmtInt(v) : v ?? ''));
      }
      body.append(tr);
    }
    const table = h('table', { class: 'data', id }, h('thead', {}, head), body);
    const wrap = h('div', { class: 'table-wrap', id: `${id}-wrap` }, table);
    if (sorted.length > limit) wrap.append(h('p', { class: 'muted', text: `Showing ${limit} of ${sorted.length}: narrow it down with the filter.` }));
    return wrap;
  }

  function replaceTable(slot, table) {
    if (slot) clear(slot).append(table);
  }

  function tags(list) {
    return h('span', {}, list.map((t) => (typeof t === 'string' ? h('span', { class: 'tag', text: t }) : h('span', { class: `tag ${t.cls || ''}`, text: t.text, title: t.title }))));
  }

  function legend(items) {
    return h('div', { class: 'legend' }, items.map((i) => h('span', {}, h('i', { style: { background: i.color } }), i.label)));
  }

  function notice(slot, kind, text) {
    clear(slot).append(h('div', { class: `notice ${kind}`, role: kind === 'bad' ? 'alert' : 'status', text }));
  }

  // ---- views --------------------------------------------------------------------------

  const views = {};

  // Overview ---------------------------------------------------------------------------
  views.overview = {
    mount(root) {
      const stat = (id, label, color) =>
        h('div', { class: 'card stat', id }, h('div', { class: 'label' }, color ? h('span', { class: 'swatch', style: { background: color } }) : null, label), h('div', { class: 'value', text: '—' }));
      root.append(
        h(
          'div',
          { class: 'grid grid-stats' },
          stat('stat-ready', 'Ready', colors.ready),
          stat('stat-unacked', 'Unacked', colors.unacked),
          stat('stat-total', 'Total messages', colors.total),
          stat('stat-publish', 'Publish', colors.publish),
          stat('stat-deliver', 'Deliver / get', colors.deliver),
          stat('stat-ack', 'Acknowledge', colors.ack),
        ),
        h(
          'div',
          { class: 'grid grid-2 row-gap' },
          h('div', { class: 'card' }, h('h2', {}, 'Queued messages', h('span', { class: 'muted', text: 'last 10 minutes' })), h('canvas', { class: 'chart', id: 'chart-queued' }), legend([{ label: 'Ready', color: colors.ready }, { label: 'Unacked', color: colors.unacked }, { label: 'Total', color: colors.total }])),
          h('div', { class: 'card' }, h('h2', {}, 'Message rates', h('span', { class: 'muted', text: 'messages per second' })), h('canvas', { class: 'chart', id: 'chart-rates' }), legend([{ label: 'Publish', color: colors.publish }, { label: 'Deliver / get', color: colors.deliver }, { label: 'Acknowledge', color: colors.ack }, { label: 'Redeliver', color: colors.redeliver }])),
        ),
        h('div', { class: 'totals row-gap', id: 'totals' }),
        h('div', { class: 'card row-gap' }, h('h2', {}, 'Nodes'), h('div', { id: 'nodes-slot' })),
        h('div', { class: 'card' }, h('h2', {}, 'Ports and contexts'), h('div', { id: 'listeners-slot' })),
      );
    },
    async refresh() {
      const q = 'lengths_age=600&lengths_incr=5&msg_rates_age=600&msg_rates_incr=5';
      const [ov, nodes] = await Promise.all([api(`/api/overview?${q}`), isMonitor() ? api('/api/nodes') : Promise.resolve(null)]);
      state.overview = ov;
      const qt = ov.queue_totals || {};
      const ms = ov.message_stats || {};
      const setStat = (id, text, unit) => {
        const el = $(id);
        if (!el) return;
        const v = el.querySelector('.value');
        clear(v).append(text);
        if (unit) v.append(h('span', { class: 'unit', text: unit }));
      };
      setStat('stat-ready', fmtInt(qt.messages_ready));
      setStat('stat-unacked', fmtInt(qt.messages_unacknowledged));
      setStat('stat-total', fmtInt(qt.messages));
      const rateOf = (k) => get(ms, `${k}_details.rate`) || 0;
      setStat('stat-publish', fmtRate(rateOf('publish')).replace('/s', ''), '/s');
      setStat('stat-deliver', fmtRate(rateOf('deliver_get')).replace('/s', ''), '/s');
      setStat('stat-ack', fmtRate(rateOf('ack')).replace('/s', ''), '/s');

      const gauge = (k) => (get(qt, `${k}_details.samples`) || []).map((s) => [s.timestamp, s.sample]).reverse();
      drawChart($('chart-queued'), {
        x: 'time',
        yMin: 0,
        yFormat: fmtInt,
        empty: 'Collecting samples (every 5 s)…',
        series: [
          { label: 'Total', color: colors.total, points: gauge('messages') },
          { label: 'Ready', color: colors.ready, points: gauge('messages_ready'), fill: true },
          { label: 'Unacked', color: colors.unacked, points: gauge('messages_unacknowledged') },
        ].filter((s) => s.points.length > 1),
      });
      const rates = (k) => {
        const s = (get(ms, `${k}_details.samples`) || []).slice().reverse();
        const out = [];
        for (let i = 1; i < s.length; i++) {
          const dt = (s[i].timestamp - s[i - 1].timestamp) / 1000;
          if (dt > 0) out.push([s[i].timestamp, Math.max(0, (s[i].sample - s[i - 1].sample) / dt)]);
        }
        return out;
      };
      drawChart($('chart-rates'), {
        x: 'time',
        yMin: 0,
        yFormat: (v) => (v >= 1000 ? `${nf.format(v)}` : String(Math.round(v * 10) / 10)),
        empty: 'Collecting samples (every 5 s)…',
        series: [
          { label: 'Publish', color: colors.publish, points: rates('publish'), fill: true },
          { label: 'Deliver / get', color: colors.deliver, points: rates('deliver_get') },
          { label: 'Acknowledge', color: colors.ack, points: rates('ack') },
          { label: 'Redeliver', color: colors.redeliver, points: rates('redeliver') },
        ].filter((s) => s.points.length > 1),
      });

      const t = ov.object_totals || {};
      clear($('totals')).append(
        ...[
          ['Connections', t.connections, '#/connections'],
          ['Channels', t.channels, '#/channels'],
          ['Exchanges', t.exchanges, '#/exchanges'],
          ['Queues', t.queues, '#/queues'],
          ['Consumers', t.consumers, '#/queues'],
        ].map(([label, n, href]) => h('a', { class: 'total-chip', href }, h('b', { text: fmtInt(n) }), h('span', { text: label }))),
      );

      if (nodes) {
        replaceTable(
          $('nodes-slot'),
          dataTable(
            'nodes-table',
            [
              { key: 'name', label: 'Name', cls: 'name' },
              { key: 'running', label: 'State', render: (n) => h('span', { class: `tag ${n.running ? 'ok' : 'bad'}`, text: n.running ? 'running' : 'stopped' }) },
              { key: 'mem_used', label: 'Memory', num: false, render: (n) => local(n, () => usageBar(n.mem_used, n.mem_limit, fmtBytes, `high watermark ${fmtBytes(n.mem_limit)}`)) },
              { key: 'disk_free', label: 'Disk free', render: (n) => local(n, () => h('span', {}, fmtBytes(n.disk_free), h('div', { class: 'bar-label', text: `limit ${fmtBytes(n.disk_free_limit)}` }))) },
              { key: 'fd_used', label: 'File descriptors', render: (n) => local(n, () => usageBar(n.fd_used, n.fd_total, fmtInt, `of ${fmtInt(n.fd_total)}`)) },
              { key: 'sockets_used', label: 'Connections', num: true, render: (n) => local(n, () => fmtInt(n.sockets_used)) },
              { key: 'shards', label: 'Shards', value: (n) => (n.shards || []).length, render: (n) => local(n, () => shardSummary(n)) },
              { key: 'uptime', label: 'Uptime', num: true, render: (n) => (typeof n.uptime === 'number' ? fmtDuration(n.uptime) : '—') },
              { key: 'alarms', label: 'Alarms', value: (n) => (n.alarms || []).length, render: (n) => local(n, () => alarmTags(n)) },
            ],
            nodes,
            { rowKey: (n) => n.name },
          ),
        );
      } else {
        clear($('nodes-slot')).append(h('p', { class: 'muted', text: 'Node details need the monitoring or administrator tag.' }));
      }
      replaceTable(
        $('listeners-slot'),
        dataTable(
          'listeners-table',
          [
            { key: 'protocol', label: 'Protocol', render: (l) => h('span', { class: 'tag accent', text: l.protocol }) },
            { key: 'ip_address', label: 'Bound to' },
            { key: 'port', label: 'Port', num: true, render: (l) => String(l.port) },
            { key: 'what', label: 'Serves', value: (l) => protocolText(l.protocol), render: (l) => h('span', { class: 'muted', text: protocolText(l.protocol) }) },
          ],
          ov.listeners || [],
          { defaultSort: { key: 'port', dir: 'asc' } },
        ),
      );
    },
  };

  function protocolText(p) {
    return (
      {
        amqp: 'AMQP 0-9-1 (and 0-9) over TCP',
        http: 'management API and this dashboard',
        'http/prometheus': 'Prometheus metrics at /metrics',
        'http/web-amqp': 'AMQP 0-9-1 over WebSocket at /ws',
      }[p] || ''
    );
  }

  function usageBar(used, limit, fmt, caption) {
    const frac = limit > 0 ? Math.min(1, used / limit) : 0;
    const fill = h('span', { style: { width: `${Math.max(2, Math.round(frac * 100))}%` } });
    return h('div', {}, h('div', { class: `bar ${frac > 0.9 ? 'bad' : frac > 0.7 ? 'warn' : ''}` }, fill), h('div', { class: 'bar-label', text: `${fmt(used)} · ${caption}` }));
  }

  /** Details only the node serving the dashboard reports; other cluster members show a dash. */
  function local(n, render) {
    return n.mem_used === undefined ? h('span', { class: 'muted', text: '—', title: 'Details of other cluster nodes are on their own dashboards' }) : render();
  }

  function shardSummary(n) {
    const shards = n.shards || [];
    const queues = shards.reduce((s, x) => s + (x.queues || 0), 0);
    const worst = shards.reduce((m, x) => Math.max(m, x.ring && x.ring.capacity_bytes ? x.ring.occupancy_bytes / x.ring.capacity_bytes : 0), 0);
    return h('span', { title: shards.map((s) => `shard ${s.index}: ${s.queues} queue(s), ring ${fmtBytes(s.ring.occupancy_bytes)} of ${fmtBytes(s.ring.capacity_bytes)}`).join('\n') }, `${shards.length} · ${fmtInt(queues)} queues`, h('div', { class: 'bar-label', text: `rings ${Math.round(worst * 100)}% full` }));
  }

  function alarmTags(n) {
    const alarms = n.alarms || [];
    if (alarms.length === 0) return h('span', { class: 'tag ok', text: 'none' });
    return tags(alarms.map((a) => ({ text: `${a.resource} alarm`, cls: 'bad', title: a.reason })));
  }

  // Connections ------------------------------------------------------------------------
  views.connections = {
    mount(root) {
      root.append(h('div', { class: 'card' }, h('h2', {}, 'Connections', h('span', { class: 'muted', id: 'conn-count' })), h('div', { id: 'conn-msg' }), h('div', { id: 'conn-slot' })));
    },
    async refresh() {
      const rows = await api('/api/connections');
      $('conn-count').textContent = `${rows.length} open`;
      const columns = [
        { key: 'name', label: 'Name', cls: 'name', render: (c) => h('span', { title: c.name }, c.user_provided_name ? h('span', {}, c.user_provided_name, h('div', { class: 'bar-label', text: c.name })) : c.name) },
        { key: 'user', label: 'User' },
        { key: 'vhost', label: 'Virtual host' },
        { key: 'transport', label: 'Protocol', render: (c) => tags([c.protocol, c.transport === 'websocket' ? { text: 'WebSocket', cls: 'accent' } : { text: 'TCP' }]) },
        { key: 'state', label: 'State', render: (c) => h('span', { class: `tag ${c.state === 'running' ? 'ok' : 'warn'}`, text: c.blocked ? 'blocked' : c.state }) },
        { key: 'channels', label: 'Channels', num: true },
        { key: 'recv_oct_details.rate', label: 'From client', num: true, render: (c) => fmtByteRate(get(c, 'recv_oct_details.rate')) },
        { key: 'send_oct_details.rate', label: 'To client', num: true, render: (c) => fmtByteRate(get(c, 'send_oct_details.rate')) },
        { key: 'client', label: 'Client', value: (c) => clientName(c), render: (c) => h('span', { class: 'muted', text: clientName(c) }) },
        { key: 'connected_at', label: 'Connected', num: true, render: (c) => `${fmtDuration(Date.now() - c.connected_at)} ago` },
        {
          key: 'close',
          label: '',
          value: () => 0,
          render: (c) =>
            isAdmin() || c.user === state.user.name
              ? h('button', {
                  class: 'btn btn-small btn-danger',
                  text: 'Close',
                  onclick: async () => {
                    if (!confirm(`Close connection ${c.name}?`)) return;
                    try {
                      await api(`/api/connections/${encodeURIComponent(c.name)}`, { method: 'DELETE' });
                      notice($('conn-msg'), 'ok', `Closed ${c.name}.`);
                      refreshSoon();
                    } catch (e) {
                      notice($('conn-msg'), 'bad', e.message);
                    }
                  },
                })
              : '',
        },
      ];
      replaceTable($('conn-slot'), dataTable('conn-table', columns, rows, { rowKey: (c) => c.name, empty: 'No client is connected.', defaultSort: { key: 'name', dir: 'asc' } }));
    },
  };

  function clientName(c) {
    const p = c.client_properties || {};
    return [p.product, p.version].filter(Boolean).join(' ') || p.platform || '';
  }

  // Channels ---------------------------------------------------------------------------
  views.channels = {
    mount(root) {
      root.append(h('div', { class: 'card' }, h('h2', {}, 'Channels', h('span', { class: 'muted', id: 'ch-count' })), h('div', { id: 'ch-slot' })));
    },
    async refresh() {
      const rows = await api('/api/channels');
      $('ch-count').textContent = `${rows.length} open`;
      const columns = [
        { key: 'name', label: 'Channel', cls: 'name' },
        { key: 'user', label: 'User' },
        { key: 'vhost', label: 'Virtual host' },
        { key: 'mode', label: 'Mode', value: (c) => (c.confirm ? 'C' : '') + (c.transactional ? 'T' : ''), render: (c) => tags([c.confirm ? { text: 'confirm', title: 'publisher confirms' } : null, c.transactional ? { text: 'tx', title: 'transactional' } : null].filter(Boolean)) },
        { key: 'state', label: 'State', render: (c) => h('span', { class: `tag ${c.state === 'running' ? 'ok' : 'warn'}`, text: c.state }) },
        { key: 'consumer_count', label: 'Consumers', num: true },
        { key: 'prefetch_count', label: 'Prefetch', num: true, render: (c) => (c.prefetch_count === 0 ? 'unlimited' : fmtInt(c.prefetch_count)) },
        { key: 'messages_unacknowledged', label: 'Unacked', num: true },
      ];
      replaceTable($('ch-slot'), dataTable('ch-table', columns, rows, { empty: 'No channel is open.', defaultSort: { key: 'name', dir: 'asc' } }));
    },
  };

  // Exchanges --------------------------------------------------------------------------
  views.exchanges = {
    mount(root) {
      root.append(
        h('div', { class: 'card' }, h('h2', {}, 'Exchanges', h('span', { class: 'muted', id: 'ex-count' })), h('div', { id: 'ex-slot' })),
        h(
          'details',
          { class: 'card' },
          h('summary', { text: 'Add a new exchange' }),
          h(
            'form',
            { id: 'ex-form', onsubmit: (e) => addExchange(e) },
            h(
              'div',
              { class: 'form-grid' },
              h('label', { for: 'ex-vhost', text: 'Virtual host' }),
              vhostSelect('ex-vhost'),
              h('label', { for: 'ex-name', text: 'Name' }),
              h('input', { id: 'ex-name', required: true, placeholder: 'e.g. orders' }),
              h('label', { for: 'ex-type', text: 'Type' }),
              h('select', { id: 'ex-type' }, ['direct', 'fanout', 'topic', 'headers'].map((t) => h('option', { value: t, text: t }))),
              h('label', { for: 'ex-durable', text: 'Durability' }),
              h('select', { id: 'ex-durable' }, h('option', { value: 'true', text: 'Durable' }), h('option', { value: 'false', text: 'Transient' })),
              h('label', { for: 'ex-autodelete', text: 'Auto delete' }),
              h('select', { id: 'ex-autodelete' }, h('option', { value: 'false', text: 'No' }), h('option', { value: 'true', text: 'Yes' })),
              h('label', { for: 'ex-internal', text: 'Internal' }),
              h('select', { id: 'ex-internal' }, h('option', { value: 'false', text: 'No' }), h('option', { value: 'true', text: 'Yes' })),
              h('label', { text: 'Arguments' }),
              argsEditor('ex-args', ['alternate-exchange']),
            ),
            h('div', { class: 'form-actions' }, h('button', { class: 'btn btn-primary', type: 'submit', text: 'Add exchange' })),
            h('div', { id: 'ex-form-msg' }),
          ),
        ),
      );
    },
    async refresh() {
      const rows = await api('/api/exchanges');
      $('ex-count').textContent = `${rows.length}`;
      const columns = [
        { key: 'vhost', label: 'Virtual host' },
        { key: 'name', label: 'Name', cls: 'name', value: (e) => e.name, render: (e) => (e.name === '' ? h('span', { class: 'muted', text: '(AMQP default)' }) : e.name) },
        { key: 'type', label: 'Type', render: (e) => h('span', { class: 'tag accent', text: e.type }) },
        { key: 'features', label: 'Features', value: (e) => featureText(e), render: (e) => tags(exchangeFeatures(e)) },
        {
          key: 'actions',
          label: '',
          value: () => 0,
          render: (e) =>
            e.name === '' || e.name.startsWith('amq.')
              ? ''
              : h('button', {
                  class: 'btn btn-small btn-danger',
                  text: 'Delete',
                  onclick: async () => {
                    if (!confirm(`Delete exchange '${e.name}' in vhost '${e.vhost}'?`)) return;
                    try {
                      await api(`/api/exchanges/${vhostPart(e.vhost)}/${encodeURIComponent(e.name)}`, { method: 'DELETE' });
                      refreshSoon();
                    } catch (err) {
                      notice($('ex-form-msg'), 'bad', err.message);
                    }
                  },
                }),
        },
      ];
      replaceTable($('ex-slot'), dataTable('ex-table', columns, rows, { defaultSort: { key: 'name', dir: 'asc' } }));
    },
  };

  function exchangeFeatures(e) {
    const t = [];
    if (e.durable) t.push({ text: 'D', title: 'durable' });
    if (e.auto_delete) t.push({ text: 'AD', title: 'auto-delete' });
    if (e.internal) t.push({ text: 'I', title: 'internal' });
    for (const k of Object.keys(e.arguments || {})) t.push({ text: k === 'alternate-exchange' ? 'AE' : k, title: `${k}: ${JSON.stringify(e.arguments[k])}` });
    return t;
  }
  const featureText = (e) => exchangeFeatures(e).map((t) => t.text).join(' ');

  async function addExchange(ev) {
    ev.preventDefault();
    const vhost = $('ex-vhost').value;
    const name = $('ex-name').value.trim();
    try {
      await api(`/api/exchanges/${vhostPart(vhost)}/${encodeURIComponent(name)}`, {
        method: 'PUT',
        body: { type: $('ex-type').value, durable: $('ex-durable').value === 'true', auto_delete: $('ex-autodelete').value === 'true', internal: $('ex-internal').value === 'true', arguments: readArgs('ex-args') },
      });
      notice($('ex-form-msg'), 'ok', `Exchange '${name}' declared in vhost '${vhost}'.`);
      $('ex-name').value = '';
      refreshSoon();
    } catch (e) {
      notice($('ex-form-msg'), 'bad', e.message);
    }
  }

  // shared form pieces -------------------------------------------------------------------

  function vhostSelect(id) {
    const sel = h('select', { id });
    api('/api/vhosts')
      .then((vs) => {
        for (const v of vs) sel.append(h('option', { value: v.name, text: v.name }));
      })
      .catch(() => {});
    return sel;
  }

  /** Rows of key / value / type; the keys RabbitMQ users reach for are suggested. */
  function argsEditor(id, suggestions) {
    const list = h('datalist', { id: `${id}-keys` }, suggestions.map((s) => h('option', { value: s })));
    const rows = h('div', { id });
    const addRow = () =>
      rows.append(
        h(
          'div',
          { class: 'args-row' },
          h('input', { class: 'arg-key', list: `${id}-keys`, placeholder: 'argument' }),
          h('input', { class: 'arg-value', placeholder: 'value' }),
          h('select', { class: 'arg-type' }, h('option', { value: 'auto', text: 'auto' }), h('option', { value: 'string', text: 'String' }), h('option', { value: 'number', text: 'Number' }), h('option', { value: 'boolean', text: 'Boolean' })),
        ),
      );
    addRow();
    return h('div', {}, list, rows, h('button', { type: 'button', class: 'btn btn-small', text: '+ argument', onclick: addRow }));
  }

  function readArgs(id) {
    const out = {};
    for (const row of $(id).querySelectorAll('.args-row')) {
      const k = row.querySelector('.arg-key').value.trim();
      const raw = row.querySelector('.arg-value').value.trim();
      const type = row.querySelector('.arg-type').value;
      if (k === '') continue;
      if (type === 'string') out[k] = raw;
      else if (type === 'number') out[k] = Number(raw);
      else if (type === 'boolean') out[k] = raw === 'true';
      else if (/^-?[0-9]+(\.[0-9]+)?$/.test(raw)) out[k] = Number(raw);
      else if (raw === 'true' || raw === 'false') out[k] = raw === 'true';
      else out[k] = raw;
    }
    return out;
  }

  // Queues ----------------------------------------------------------------------------
  const queueKey = (q) => `${q.vhost}\u0000${q.name}`;

  views.queues = {
    mount(root) {
      state.selectedQueue = null;
      root.append(
        h(
          'div',
          { class: 'card' },
          h(
            'div',
            { class: 'toolbar' },
            h('h2', { class: 'section-title' }, 'Queues', h('span', { class: 'muted', id: 'q-count' })),
            h('span', { class: 'spacer' }),
            h('input', {
              class: 'filter',
              id: 'q-filter',
              type: 'search',
              placeholder: 'Filter by name or vhost…',
              value: state.queueFilter,
              oninput: (e) => {
                state.queueFilter = e.target.value;
                renderQueues();
              },
            }),
          ),
          h('div', { id: 'q-slot' }),
        ),
        h('div', { id: 'q-detail' }),
        h(
          'details',
          { class: 'card' },
          h('summary', { text: 'Add a new queue' }),
          h(
            'form',
            { id: 'q-form', onsubmit: (e) => addQueue(e) },
            h(
              'div',
              { class: 'form-grid' },
              h('label', { for: 'q-vhost', text: 'Virtual host' }),
              vhostSelect('q-vhost'),
              h('label', { for: 'q-name', text: 'Name' }),
              h('input', { id: 'q-name', required: true, placeholder: 'e.g. orders.created' }),
              h('label', { for: 'q-type', text: 'Type' }),
              h('select', { id: 'q-type' }, h('option', { value: 'classic', text: 'Classic' }), h('option', { value: 'quorum', text: 'Quorum' })),
              h('label', { for: 'q-durable', text: 'Durability' }),
              h('select', { id: 'q-durable' }, h('option', { value: 'true', text: 'Durable' }), h('option', { value: 'false', text: 'Transient' })),
              h('label', { for: 'q-autodelete', text: 'Auto delete' }),
              h('select', { id: 'q-autodelete' }, h('option', { value: 'false', text: 'No' }), h('option', { value: 'true', text: 'Yes' })),
              h('label', { text: 'Arguments' }),
              argsEditor('q-args', ['x-message-ttl', 'x-expires', 'x-max-length', 'x-max-length-bytes', 'x-overflow', 'x-dead-letter-exchange', 'x-dead-letter-routing-key', 'x-max-priority', 'x-single-active-consumer', 'x-delivery-limit']),
            ),
            h('div', { class: 'form-actions' }, h('button', { class: 'btn btn-primary', type: 'submit', id: 'q-add', text: 'Add queue' })),
            h('div', { id: 'q-form-msg' }),
          ),
        ),
      );
    },
    async refresh() {
      state.lastRows.queuesAll = await api('/api/queues');
      renderQueues();
      const sel = state.selectedQueue && state.lastRows.queuesAll.find((q) => queueKey(q) === state.selectedQueue);
      if (state.selectedQueue && !sel) {
        state.selectedQueue = null;
        clear($('q-detail'));
      } else if (sel) updateQueueDetail(sel);
    },
  };

  function renderQueues() {
    const all = state.lastRows.queuesAll || [];
    const f = state.queueFilter.trim().toLowerCase();
    const rows = f === '' ? all : all.filter((q) => q.name.toLowerCase().includes(f) || q.vhost.toLowerCase().includes(f));
    const count = $('q-count');
    if (!count) return;
    count.textContent = f === '' ? `${all.length}` : `${rows.length} of ${all.length}`;
    const columns = [
      { key: 'vhost', label: 'Virtual host' },
      {
        key: 'name',
        label: 'Name',
        cls: 'name',
        render: (q) =>
          h('a', {
            href: '#/queues',
            text: q.name,
            title: 'Show details, publish or get messages',
            onclick: (e) => {
              e.preventDefault();
              selectQueue(q);
            },
          }),
      },
      { key: 'type', label: 'Type' },
      { key: 'features', label: 'Features', value: (q) => queueFeatures(q).map((t) => t.text).join(' '), render: (q) => tags(queueFeatures(q)) },
      { key: 'state', label: 'State', render: (q) => h('span', { class: `tag ${q.state === 'running' ? 'ok' : 'warn'}`, text: q.state }) },
      { key: 'messages_ready', label: 'Ready', num: true },
      { key: 'messages_unacknowledged', label: 'Unacked', num: true },
      { key: 'messages', label: 'Total', num: true },
      { key: 'message_stats.publish_details.rate', label: 'Incoming', num: true, render: (q) => fmtRate(get(q, 'message_stats.publish_details.rate')) },
      { key: 'message_stats.deliver_get_details.rate', label: 'Deliver / get', num: true, render: (q) => fmtRate(get(q, 'message_stats.deliver_get_details.rate')) },
      { key: 'message_stats.ack_details.rate', label: 'Ack', num: true, render: (q) => fmtRate(get(q, 'message_stats.ack_details.rate')) },
      { key: 'consumers', label: 'Consumers', num: true },
      { key: 'leader', label: 'Leader', title: 'The node that leads this queue (in-sync members after a +)', render: (q) => `${q.leader || q.node}${(q.members || []).length > 1 ? ` +${(q.in_sync || []).length - 1}/${q.members.length - 1}` : ''}` },
      { key: 'shard', label: 'Shard', num: true, title: 'The shard worker thread that owns this queue on this node (— when another node leads it)', render: (q) => shardText(q) },
    ];
    const slot = $('q-slot');
    if (slot) replaceTable(slot, dataTable('queues-table', columns, rows, { rowKey: queueKey, selectedKey: state.selectedQueue, empty: f === '' ? 'No queues yet: add one below, or declare one from a client.' : 'No queue matches the filter.', defaultSort: { key: 'name', dir: 'asc' } }));
  }

  function shardText(q) {
    return q.shard === null || q.shard === undefined ? `— (led by ${q.leader || q.node})` : String(q.shard);
  }

  function queueFeatures(q) {
    const t = [];
    if (q.durable) t.push({ text: 'D', title: 'durable' });
    if (q.auto_delete) t.push({ text: 'AD', title: 'auto-delete' });
    if (q.exclusive) t.push({ text: 'Excl', title: 'exclusive' });
    const names = { 'x-message-ttl': 'TTL', 'x-expires': 'Exp', 'x-max-length': 'Lim', 'x-max-length-bytes': 'Lim B', 'x-dead-letter-exchange': 'DLX', 'x-dead-letter-routing-key': 'DLK', 'x-max-priority': 'Pri', 'x-single-active-consumer': 'SAC', 'x-overflow': 'Ovfl', 'x-delivery-limit': 'DL' };
    for (const [k, v] of Object.entries(q.arguments || {})) {
      if (k === 'x-queue-type') continue;
      t.push({ text: names[k] || k, title: `${k}: ${JSON.stringify(v)}`, cls: 'accent' });
    }
    if (q.policy) t.push({ text: q.policy, title: 'policy', cls: 'warn' });
    return t;
  }

  async function addQueue(ev) {
    ev.preventDefault();
    const vhost = $('q-vhost').value;
    const name = $('q-name').value.trim();
    const args = readArgs('q-args');
    if ($('q-type').value !== 'classic') args['x-queue-type'] = $('q-type').value;
    try {
      await api(`/api/queues/${vhostPart(vhost)}/${encodeURIComponent(name)}`, {
        method: 'PUT',
        body: { durable: $('q-durable').value === 'true', auto_delete: $('q-autodelete').value === 'true', arguments: args },
      });
      notice($('q-form-msg'), 'ok', `Queue '${name}' declared in vhost '${vhost}'.`);
      $('q-name').value = '';
      refreshSoon();
    } catch (e) {
      notice($('q-form-msg'), 'bad', e.message);
    }
  }

  function selectQueue(q) {
    state.selectedQueue = queueKey(q);
    renderQueues();
    mountQueueDetail(q);
    updateQueueDetail(q);
    $('q-detail').scrollIntoView({ behavior: 'smooth', block: 'start' });
  }

  function mountQueueDetail(q) {
    const path = `/api/queues/${vhostPart(q.vhost)}/${encodeURIComponent(q.name)}`;
    const msg = h('div', { id: 'qd-msg' });
    const publishForm = h(
      'form',
      {
        onsubmit: async (e) => {
          e.preventDefault();
          try {
            const headersText = $('qd-pub-headers').value.trim();
            const properties = { delivery_mode: $('qd-pub-persistent').checked ? 2 : 1 };
            if (headersText !== '') properties.headers = JSON.parse(headersText);
            const r = await api(`/api/exchanges/${vhostPart(q.vhost)}/amq.default/publish`, { method: 'POST', body: { routing_key: q.name, payload: $('qd-pub-payload').value, payload_encoding: 'string', properties } });
            notice(msg, r && r.routed ? 'ok' : 'bad', r && r.routed ? 'Message published.' : 'Message published but not routed.');
            refreshSoon();
          } catch (err) {
            notice(msg, 'bad', err instanceof SyntaxError ? `Headers must be a JSON object: ${err.message}` : err.message);
          }
        },
      },
      h('div', { class: 'form-grid' }, h('label', { for: 'qd-pub-payload', text: 'Payload' }), h('textarea', { id: 'qd-pub-payload', placeholder: 'Message body' }), h('label', { for: 'qd-pub-headers', text: 'Headers (JSON)' }), h('input', { id: 'qd-pub-headers', placeholder: '{"x-trace": "abc"}' }), h('label', { for: 'qd-pub-persistent', text: 'Persistent' }), h('span', {}, h('input', { id: 'qd-pub-persistent', type: 'checkbox', checked: true }))),
      h('div', { class: 'form-actions' }, h('button', { class: 'btn btn-primary', type: 'submit', text: 'Publish message' })),
    );
    const getOut = h('div', { id: 'qd-get-out' });
    const getForm = h(
      'form',
      {
        onsubmit: async (e) => {
          e.preventDefault();
          try {
            const msgs = await api(`${path}/get`, { method: 'POST', body: { count: Number($('qd-get-count').value) || 1, ackmode: $('qd-get-ackmode').value, encoding: 'auto', truncate: 50000 } });
            clear(getOut);
            if (msgs.length === 0) getOut.append(h('p', { class: 'muted', text: 'The queue is empty.' }));
            msgs.forEach((m, i) =>
              getOut.append(
                h(
                  'div',
                  { class: 'message' },
                  h('b', { text: `Message ${i + 1}` }),
                  h('span', { class: 'muted', text: `  ·  exchange ${m.exchange === '' ? '(AMQP default)' : `'${m.exchange}'`}, routing key '${m.routing_key}', ${fmtInt(m.payload_bytes)} bytes${m.redelivered ? ', redelivered' : ''}, ${m.message_count} left` }),
                  Object.keys(m.properties).length > 0 ? h('pre', { class: 'muted', text: JSON.stringify(m.properties) }) : null,
                  h('pre', { text: m.payload_encoding === 'base64' ? `(base64) ${m.payload}` : m.payload }),
                ),
              ),
            );
            refreshSoon();
          } catch (err) {
            notice(getOut, 'bad', err.message);
          }
        },
      },
      h(
        'div',
        { class: 'form-grid' },
        h('label', { for: 'qd-get-ackmode', text: 'Ack mode' }),
        h('select', { id: 'qd-get-ackmode' }, h('option', { value: 'ack_requeue_true', text: 'Nack, requeue (peek)' }), h('option', { value: 'ack_requeue_false', text: 'Ack (remove from queue)' }), h('option', { value: 'reject_requeue_false', text: 'Reject (dead-letter or drop)' })),
        h('label', { for: 'qd-get-count', text: 'Messages' }),
        h('input', { id: 'qd-get-count', type: 'number', min: '1', max: '100', value: '1' }),
      ),
      h('div', { class: 'form-actions' }, h('button', { class: 'btn', type: 'submit', text: 'Get messages' })),
    );
    const actions = h(
      'div',
      { class: 'form-actions' },
      h('button', {
        class: 'btn btn-danger',
        text: 'Purge messages',
        onclick: async () => {
          if (!confirm(`Purge all ready messages of '${q.name}'?`)) return;
          try {
            await api(`${path}/contents`, { method: 'DELETE' });
            notice(msg, 'ok', 'Queue purged.');
            refreshSoon();
          } catch (err) {
            notice(msg, 'bad', err.message);
          }
        },
      }),
      h('button', {
        class: 'btn btn-danger',
        text: 'Delete queue',
        onclick: async () => {
          if (!confirm(`Delete queue '${q.name}' and its messages?`)) return;
          try {
            await api(path, { method: 'DELETE' });
            state.selectedQueue = null;
            clear($('q-detail'));
            refreshSoon();
          } catch (err) {
            notice(msg, 'bad', err.message);
          }
        },
      }),
      h('button', {
        class: 'btn',
        text: 'Close',
        onclick: () => {
          state.selectedQueue = null;
          clear($('q-detail'));
          renderQueues();
        },
      }),
    );
    clear($('q-detail')).append(
      h(
        'div',
        { class: 'card' },
        h('h2', {}, `Queue ${q.name}`, h('span', { class: 'muted', text: `in vhost ${q.vhost}` })),
        h('div', { class: 'grid grid-2' }, h('dl', { class: 'kv', id: 'qd-kv' }), h('div', {}, h('h2', { text: 'Bindings' }), h('div', { id: 'qd-bindings' }))),
        msg,
        actions,
      ),
      h('div', { class: 'grid grid-2 row-gap' }, h('div', { class: 'card' }, h('h2', { text: 'Publish message' }), publishForm), h('div', { class: 'card' }, h('h2', { text: 'Get messages' }), getForm, getOut)),
    );
  }

  function updateQueueDetail(q) {
    const kv = $('qd-kv');
    if (!kv) return;
    const pairs = [
      ['Type', q.type],
      ['State', q.state],
      ['Ready', fmtInt(q.messages_ready)],
      ['Unacked', fmtInt(q.messages_unacknowledged)],
      ['Ready bytes', fmtBytes(q.message_bytes_ready)],
      ['Consumers', fmtInt(q.consumers)],
      ['Published', `${fmtInt(get(q, 'message_stats.publish'))} (${fmtRate(get(q, 'message_stats.publish_details.rate'))})`],
      ['Delivered / got', `${fmtInt(get(q, 'message_stats.deliver_get'))} (${fmtRate(get(q, 'message_stats.deliver_get_details.rate'))})`],
      ['Acknowledged', `${fmtInt(get(q, 'message_stats.ack'))} (${fmtRate(get(q, 'message_stats.ack_details.rate'))})`],
      ['Redelivered', fmtInt(get(q, 'message_stats.redeliver'))],
      ['Arguments', Object.keys(q.arguments || {}).length === 0 ? 'none' : JSON.stringify(q.arguments)],
      ['Policy', q.policy || 'none'],
      ['Leader', `${q.leader || q.node}${q.epoch == null ? '' : ` (epoch ${q.epoch})`}`],
      ['Members', (q.members || []).join(', ') || '—'],
      ['In sync', (q.in_sync || []).join(', ') || '—'],
      ['Shard', shardText(q)],
    ];
    clear(kv).append(...pairs.flatMap(([k, v]) => [h('dt', { text: k }), h('dd', { text: v })]));
    api(`/api/queues/${vhostPart(q.vhost)}/${encodeURIComponent(q.name)}/bindings`)
      .then((bs) => {
        const slot = $('qd-bindings');
        if (!slot) return;
        replaceTable(
          slot,
          dataTable(
            'qd-bindings-table',
            [
              { key: 'source', label: 'From exchange', render: (b) => (b.source === '' ? h('span', { class: 'muted', text: '(AMQP default)' }) : b.source) },
              { key: 'routing_key', label: 'Routing key' },
              { key: 'arguments', label: 'Arguments', value: (b) => JSON.stringify(b.arguments), render: (b) => (Object.keys(b.arguments).length ? JSON.stringify(b.arguments) : '') },
            ],
            bs,
          ),
        );
      })
      .catch(() => {});
  }

  // Latency ----------------------------------------------------------------------------
  views.latency = {
    mount(root) {
      root.append(
        h(
          'div',
          { class: 'card' },
          h('h2', {}, 'Latency by stage', h('span', { class: 'muted', text: 'percentile curves of the broker’s HDR histograms (log scale)' })),
          h('canvas', { class: 'chart tall', id: 'chart-stages' }),
          h('div', { id: 'stage-legend' }),
          h('div', { id: 'stage-slot', class: 'row-gap' }),
        ),
        h(
          'div',
          { class: 'card' },
          h('h2', {}, 'Enqueue → deliver, per queue', h('span', { class: 'muted', text: 'the six busiest queues are drawn' })),
          h('canvas', { class: 'chart tall', id: 'chart-queues' }),
          h('div', { id: 'queue-legend' }),
          h('div', { id: 'lat-queue-slot', class: 'row-gap' }),
        ),
      );
    },
    async refresh() {
      const lat = await api('/api/latency');
      const stageNames = { publish_to_confirm: 'publish → confirm', enqueue_to_deliver: 'enqueue → deliver', ring_transit: 'ring transit (front → shard)', fsync: 'fsync', replication_rtt: 'replication round trip' };
      const stages = lat.stages.filter((s) => s.count > 0);
      // The curve's last point (100%, the max) would stretch the axis to 99.9999%: the tick before it already is the max.
      const curve = (s) => s.percentiles.filter((p, i, all) => p.percentile < 100 || all.length === 1).map((p) => [p.percentile, Math.max(1, p.value_us)]);
      const seriesOf = (list, labelOf) => list.map((s, i) => ({ label: labelOf(s), color: stagePalette[i % stagePalette.length], points: curve(s) }));
      const stageSeries = seriesOf(stages, (s) => stageNames[s.stage] || s.stage);
      drawChart($('chart-stages'), { x: 'percentile', yLog: true, yFormat: fmtLatency, series: stageSeries, empty: 'No latency recorded yet: publish with confirms or consume some messages.' });
      clear($('stage-legend')).append(legend(stageSeries));
      const summaryCols = (first) => [
        first,
        { key: 'count', label: 'Samples', num: true },
        { key: 'p50_us', label: 'p50', num: true, render: (s) => fmtLatency(s.p50_us) },
        { key: 'p90_us', label: 'p90', num: true, render: (s) => fmtLatency(s.p90_us) },
        { key: 'p99_us', label: 'p99', num: true, render: (s) => fmtLatency(s.p99_us) },
        { key: 'p999_us', label: 'p99.9', num: true, render: (s) => fmtLatency(s.p999_us) },
        { key: 'max_us', label: 'max', num: true, render: (s) => fmtLatency(s.max_us) },
      ];
      replaceTable($('stage-slot'), dataTable('lat-stage-table', summaryCols({ key: 'stage', label: 'Stage', render: (s) => stageNames[s.stage] || s.stage }), lat.stages, { empty: 'No histogram yet.' }));
      const queues = lat.queues.filter((q) => q.count > 0).sort((a, b) => b.count - a.count);
      const queueSeries = seriesOf(queues.slice(0, 6), (q) => q.queue);
      drawChart($('chart-queues'), { x: 'percentile', yLog: true, yFormat: fmtLatency, series: queueSeries, empty: 'No deliveries measured yet.' });
      clear($('queue-legend')).append(legend(queueSeries));
      replaceTable($('lat-queue-slot'), dataTable('lat-queue-table', summaryCols({ key: 'queue', label: 'Queue', cls: 'name' }), queues, { empty: 'No deliveries measured yet.', defaultSort: { key: 'count', dir: 'desc' } }));
    },
  };

  // Admin ------------------------------------------------------------------------------
  views.admin = {
    mount(root) {
      const fileInput = h('input', { type: 'file', id: 'defs-file', accept: 'application/json,.json' });
      root.append(
        h('div', { class: 'grid grid-2' }, h('div', { class: 'card' }, h('h2', { text: 'Users' }), h('div', { id: 'users-slot' })), h('div', { class: 'card' }, h('h2', { text: 'Virtual hosts' }), h('div', { id: 'vhosts-slot' }))),
        h('div', { class: 'card row-gap' }, h('h2', { text: 'Policies' }), h('div', { id: 'policies-slot' })),
        h(
          'div',
          { class: 'card' },
          h('h2', {}, 'Definitions', h('span', { class: 'muted', text: 'users, vhosts, permissions, policies, queues, exchanges and bindings, in RabbitMQ’s format' })),
          h(
            'div',
            { class: 'toolbar' },
            h('button', { class: 'btn', id: 'defs-download', text: 'Download definitions', onclick: downloadDefinitions }),
            h('span', { class: 'spacer' }),
            fileInput,
            h('button', { class: 'btn btn-primary', text: 'Import file', onclick: () => importDefinitions(fileInput) }),
          ),
          h('div', { id: 'defs-msg' }),
        ),
      );
    },
    async refresh() {
      if (!isAdmin()) {
        clear($('users-slot')).append(h('p', { class: 'muted', text: 'Managing users needs the administrator tag.' }));
        return;
      }
      const [users, vhosts, perms, policies] = await Promise.all([api('/api/users'), api('/api/vhosts'), api('/api/permissions'), api('/api/policies')]);
      replaceTable(
        $('users-slot'),
        dataTable(
          'users-table',
          [
            { key: 'name', label: 'Name', cls: 'name' },
            { key: 'tags', label: 'Tags', value: (u) => u.tags.join(','), render: (u) => tags(u.tags.map((t) => ({ text: t, cls: t === 'administrator' ? 'accent' : '' }))) },
            { key: 'vhosts', label: 'Can access virtual hosts', value: (u) => permsOf(perms, u.name), render: (u) => permsOf(perms, u.name) || h('span', { class: 'muted', text: 'none' }) },
          ],
          users,
          { defaultSort: { key: 'name', dir: 'asc' } },
        ),
      );
      replaceTable(
        $('vhosts-slot'),
        dataTable(
          'vhosts-table',
          [
            { key: 'name', label: 'Name', cls: 'name' },
            { key: 'messages_ready', label: 'Ready', num: true },
            { key: 'messages_unacknowledged', label: 'Unacked', num: true },
            { key: 'messages', label: 'Total', num: true },
          ],
          vhosts,
          { defaultSort: { key: 'name', dir: 'asc' } },
        ),
      );
      replaceTable(
        $('policies-slot'),
        dataTable(
          'policies-table',
          [
            { key: 'vhost', label: 'Virtual host' },
            { key: 'name', label: 'Name', cls: 'name' },
            { key: 'pattern', label: 'Pattern', render: (p) => h('code', { text: p.pattern }) },
            { key: 'apply-to', label: 'Apply to' },
            { key: 'definition', label: 'Definition', value: (p) => JSON.stringify(p.definition), render: (p) => h('code', { text: JSON.stringify(p.definition) }) },
            { key: 'priority', label: 'Priority', num: true },
          ],
          policies,
          { empty: 'No policies. Set one with warrenctl set_policy or PUT /api/policies/{vhost}/{name}.' },
        ),
      );
    },
  };

  const permsOf = (perms, user) =>
    perms
      .filter((p) => p.user === user)
      .map((p) => p.vhost)
      .join(', ');

  async function downloadDefinitions() {
    try {
      const defs = await api('/api/definitions');
      const url = URL.createObjectURL(new Blob([JSON.stringify(defs, null, 2)], { type: 'application/json' }));
      const a = h('a', { href: url, download: `warren-definitions-${new Date().toISOString().slice(0, 10)}.json` });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
    } catch (e) {
      notice($('defs-msg'), 'bad', e.message);
    }
  }

  async function importDefinitions(input) {
    const file = input.files && input.files[0];
    if (!file) {
      notice($('defs-msg'), 'bad', 'Choose a definitions file first.');
      return;
    }
    try {
      const doc = JSON.parse(await file.text());
      await api('/api/definitions', { method: 'POST', body: doc });
      notice($('defs-msg'), 'ok', `Imported ${file.name}.`);
      refreshSoon();
    } catch (e) {
      notice($('defs-msg'), 'bad', e instanceof SyntaxError ? `Not a JSON file: ${e.message}` : e.message);
    }
  }

  // ---- navigation, polling, login -------------------------------------------------------

  function currentView() {
    const name = (location.hash.replace(/^#\/?/, '').split('/')[0] || 'overview').toLowerCase();
    return Object.prototype.hasOwnProperty.call(views, name) ? name : 'overview';
  }

  function enterView() {
    const name = currentView();
    if (name === 'admin' && !isAdmin()) {
      location.hash = '#/';
      return;
    }
    state.view = name;
    for (const a of document.querySelectorAll('#tabs a')) a.classList.toggle('active', a.dataset.view === name);
    const root = clear($('view'));
    views[name].mount(root);
    refresh();
  }

  /** One refresh at a time; one asked for meanwhile (say, the view changed) runs right after. */
  async function refresh() {
    if (!state.auth) return;
    if (state.refreshing) {
      state.refreshAgain = true;
      return;
    }
    state.refreshing = true;
    const view = state.view;
    try {
      await views[view].refresh();
      if (view === state.view) {
        $('last-refresh').textContent = `Updated ${new Date().toLocaleTimeString()}`;
        updateAlarmBanner();
      }
    } catch (e) {
      const stale = view !== state.view;
      if (!stale && !(e instanceof ApiError && e.status === 401)) $('last-refresh').textContent = `Update failed: ${e.message}`;
    } finally {
      state.refreshing = false;
      if (state.refreshAgain || view !== state.view) {
        state.refreshAgain = false;
        refresh();
      }
    }
  }

  function updateAlarmBanner() {
    const alarms = (state.overview && state.overview.alarms) || [];
    const banner = $('alarm-banner');
    banner.hidden = alarms.length === 0;
    banner.textContent = alarms.length === 0 ? '' : `Publishers are blocked: ${alarms.map((a) => `${a.resource} alarm on ${a.node} (${a.reason})`).join('; ')}`;
  }

  let soonTimer = null;
  function refreshSoon() {
    clearTimeout(soonTimer);
    soonTimer = setTimeout(refresh, 300);
  }

  function schedule() {
    clearInterval(state.timer);
    state.timer = null;
    if (state.intervalMs > 0) state.timer = setInterval(refresh, state.intervalMs);
  }

  async function start() {
    try {
      state.user = await api('/api/whoami', { quiet401: true });
    } catch (e) {
      showLogin(e instanceof ApiError && e.status === 401 ? 'Your session has ended: please log in again.' : `Cannot reach the broker: ${e.message}`);
      return;
    }
    try {
      const ov = await api('/api/overview');
      state.overview = ov;
      $('node-name').textContent = ov.node;
      document.title = `warren · ${ov.node}`;
    } catch {
      // the overview view will report it
    }
    $('user-name').textContent = state.user.name;
    $('login-view').hidden = true;
    $('view').hidden = false;
    $('tabs').hidden = false;
    $('topbar-info').hidden = false;
    for (const a of document.querySelectorAll('#tabs a[data-view="admin"]')) a.hidden = !isAdmin();
    $('refresh-interval').value = String(state.intervalMs);
    enterView();
    schedule();
  }

  function showLogin(message) {
    $('login-view').hidden = false;
    $('view').hidden = true;
    $('tabs').hidden = true;
    $('topbar-info').hidden = true;
    $('alarm-banner').hidden = true;
    $('login-error').textContent = message || '';
    $('login-username').focus();
  }

  function logout(message) {
    sessionStorage.removeItem(authKey);
    state.auth = null;
    state.user = null;
    clearInterval(state.timer);
    showLogin(message);
  }

  $('login-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    state.auth = base64Utf8(`${$('login-username').value}:${$('login-password').value}`);
    $('login-error').textContent = '';
    try {
      state.user = await api('/api/whoami', { quiet401: true });
    } catch (err) {
      state.auth = null;
      $('login-error').textContent = err instanceof ApiError && err.status === 401 ? `Login failed: ${err.message === 'Not_Authorized' ? 'wrong user name or password' : err.message}.` : `Cannot reach the broker: ${err.message}`;
      return;
    }
    sessionStorage.setItem(authKey, state.auth);
    $('login-password').value = '';
    start();
  });
  $('logout').addEventListener('click', () => logout(''));
  $('refresh-now').addEventListener('click', () => refresh());
  $('refresh-interval').addEventListener('change', (e) => {
    state.intervalMs = Number(e.target.value);
    localStorage.setItem('warren.refreshMs', String(state.intervalMs));
    schedule();
  });
  window.addEventListener('hashchange', () => state.user && enterView());
  window.addEventListener('resize', () => state.user && refreshSoon());

  if (state.auth) start();
  else showLogin('');
})();
