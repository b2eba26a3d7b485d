import { API_VERSION, StreamKindSchema, routes } from '@tracelab/contracts';

const ENTITIES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ENTITIES[c] ?? c);
}

/**
 * The live page: pick an agent and one of its output streams, and watch the batches arrive as
 * ftrace-like lines. Plain HTML and an inline script over EventSource; nothing to build.
 */
export function livePage(version: string): string {
  const streams = StreamKindSchema.options
    .map((s) => `<option value="${s}"${s === 'trace' ? ' selected' : ''}>${s}</option>`)
    .join('');
  const streamBase = `/${API_VERSION}/agents/`;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>tracelab ${escapeHtml(version)} · live</title>
<style>
  body { font: 14px system-ui, sans-serif; margin: 0; display: flex; flex-direction: column; height: 100vh; }
  header { display: flex; gap: 1em; align-items: center; padding: .5em 1em; background: #1d2733; color: #eee; }
  header h1 { font-size: 1.1em; margin: 0; }
  #status { margin-left: auto; font-size: .9em; }
  #lines { flex: 1; overflow: auto; margin: 0; padding: .5em 1em; background: #0f141a; color: #cfe3c4;
    font: 12px ui-monospace, monospace; white-space: pre; }
  .gap { color: #f0a35e; }
</style>
</head>
<body>
<header>
  <h1>tracelab live</h1>
  <label>agent <select id="agent"><option value="">(no agents)</option></select></label>
  <label>stream <select id="stream">${streams}</select></label>
  <button id="refresh" type="button">refresh agents</button>
  <button id="clear" type="button">clear</button>
  <span id="status">idle</span>
</header>
<pre id="lines"></pre>
<script>
'use strict';
const AGENTS_URL = ${JSON.stringify(routes.agents)};
const STREAM_BASE = ${JSON.stringify(streamBase)};
const MAX_LINES = 5000;
const agentSelect = document.getElementById('agent');
const streamSelect = document.getElementById('stream');
const statusEl = document.getElementById('status');
const linesEl = document.getElementById('lines');
let source = null;
let nextSeq = null;

function show(text, cls) {
  const line = document.createElement('div');
  line.textContent = text;
  if (cls) line.className = cls;
  const atBottom = linesEl.scrollTop + linesEl.clientHeight >= linesEl.scrollHeight - 4;
  linesEl.appendChild(line);
  while (linesEl.childElementCount > MAX_LINES) linesEl.firstElementChild.remove();
  if (atBottom) linesEl.scrollTop = linesEl.scrollHeight;
}

function format(e) {
  const head = (e.comm + '-' + e.pid).padStart(16) + ' [' + String(e.cpu).padStart(3, '0') + '] ' +
    (e.ts / 1e9).toFixed(6) + ': ';
  switch (e.type) {
    case 'function': return head + e.func + ' <-' + e.parent;
    case 'funcgraph_entry': return head + '  '.repeat(e.depth) + e.func + '() {';
    case 'funcgraph_exit': return head + '  '.repeat(e.depth) + '} /* ' + e.func + ' */';
    case 'probe': return head + e.event + ': ' +
      Object.entries(e.fields).map(([k, v]) => k + '=' + v).join(' ');
    case 'record': return head + 'record ' + e.base64;
    case 'text': return head + e.text;
    default: return head + JSON.stringify(e);
  }
}

function onBatch(ev) {
  const batch = JSON.parse(ev.data);
  if (nextSeq !== null && batch.firstSeq > nextSeq)
    show('*** missed ' + (batch.firstSeq - nextSeq) + ' events ***', 'gap');
  if (batch.lost > 0) show('*** ' + batch.lost + ' events lost by the agent ***', 'gap');
  for (const e of batch.events) show(format(e));
  nextSeq = batch.firstSeq + batch.events.length;
}

function watch() {
  if (source) source.close();
  source = null;
  nextSeq = null;
  const agent = agentSelect.value;
  if (!agent) { statusEl.textContent = 'idle'; return; }
  const url = STREAM_BASE + encodeURIComponent(agent) + '/stream/' + encodeURIComponent(streamSelect.value);
  statusEl.textContent = 'connecting to ' + url;
  source = new EventSource(url);
  source.addEventListener('batch', onBatch);
  source.onopen = () => { statusEl.textContent = 'live: ' + agent + ' ' + streamSelect.value; };
  source.onerror = () => {
    statusEl.textContent = source.readyState === EventSource.CLOSED ? 'closed' : 'reconnecting';
  };
}

async function loadAgents() {
  const chosen = agentSelect.value;
  const res = await fetch(AGENTS_URL);
  const agents = res.ok ? await res.json() : [];
  agentSelect.replaceChildren();
  if (agents.length === 0) agentSelect.append(new Option('(no agents)', ''));
  for (const a of agents) agentSelect.append(new Option(a.id + ' (' + a.hostname + ')', a.id));
  if (agents.some((a) => a.id === chosen)) agentSelect.value = chosen;
  if (agentSelect.value !== chosen || !source) watch();
}

agentSelect.addEventListener('change', watch);
streamSelect.addEventListener('change', watch);
document.getElementById('refresh').addEventListener('click', loadAgents);
document.getElementById('clear').addEventListener('click', () => linesEl.replaceChildren());
loadAgents().catch((err) => { statusEl.textContent = 'cannot list agents: ' + err; });
</script>
</body>
</html>
`;
}
