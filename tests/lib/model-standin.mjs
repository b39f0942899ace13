// A stand-in for the model APIs that real agent CLIs talk to, on 127.0.0.1, so the real programs
// (claude, codex, opencode, gemini, kilo) can run end to end without a model provider.
//
//   const m = await startModelStandin({ script: (prompt) => 'echo hi', key: 'sk-test-…' });
//   // point the CLI at m.url (ANTHROPIC_BASE_URL=m.url, OpenAI base_url=`${m.url}/v1`, …)
//   m.requests            // every request, in order: { method, path, query, headers (lowercased),
//                         //   body (parsed JSON, else text), api ('anthropic.messages', 'openai.responses',
//                         //   'openai.chat', 'gemini.stream', …, 'unknown'), status, key (the one presented),
//                         //   and for model calls: model, prompt (last user text), tools (names offered),
//                         //   step ({ command, tool } or { text }), fault }
//   m.unknown             // "METHOD /path" of requests to paths it does not know (answered 200 {})
//   m.setFault('429')     // '429' | '500' | '529' | 'none': model endpoints answer with that error
//   await m.stop()
//
// It speaks the wire formats the CLIs parse:
//   * Anthropic Messages: POST /v1/messages[?beta=true] (SSE stream or JSON), POST
//     /v1/messages/count_tokens, GET /v1/models, plus the probes claude makes (GET /api/hello, …).
//   * OpenAI Responses: POST /v1/responses (SSE stream or JSON); Chat Completions: POST
//     /v1/chat/completions (SSE chunks with tool_calls deltas, or JSON); GET /v1/models.
//   * Gemini: POST /v1beta/models/{model}:generateContent, :streamGenerateContent (?alt=sse or a
//     JSON array), :countTokens, GET /v1beta/models.
// Paths may carry a prefix (e.g. /api/v1/chat/completions): the API is chosen by the path's tail.
//
// It plays a scripted coding agent. From the conversation it finds the last real user message
// (the prompt) and counts the tool results that came back after it. `script(prompt, ctx)` returns
// a shell command (or an array of commands, one per turn, or null for none): while commands are
// left it calls the shell tool the CLI offered (claude `Bash`, codex `exec_command`/`shell`,
// opencode/kilo `bash`, gemini `run_shell_command`) with ONE command; afterwards it answers with a
// final text and end_turn. Requests that offer no shell tool (titles, summaries, checks) get a
// short text, or a JSON value fitting the requested schema. It never throws on odd input.
import { createServer } from 'node:http';
import { randomBytes } from 'node:crypto';
import { gunzipSync, inflateSync, brotliDecompressSync } from 'node:zlib';

export const DEFAULT_SCRIPT = () =>
  'mkdir -p work && echo "done by $GASTOWN_AGENT_NAME" > work/$GASTOWN_BEAD_ID.txt && git add -A && ' +
  'git commit -qm "$GASTOWN_BEAD_ID: real agent" && gt done --summary "real agent"';

export const FINAL_TEXT = 'Done: I ran the command and reported the work as finished.';

const SHELL_TOOLS = ['Bash', 'bash', 'run_shell_command', 'exec_command', 'shell', 'shell_command', 'container.exec', 'local_shell'];
const DEFAULT_MODELS = ['claude-sonnet-4-5', 'claude-haiku-4-5', 'gpt-5-codex', 'gpt-5', 'gemini-2.5-pro', 'gemini-2.5-flash', 'standin-model'];

const rid = (n = 24) => randomBytes(n).toString('base64').replace(/[^A-Za-z0-9]/g, '').slice(0, n).padEnd(n, 'x');
const hex = (n = 24) => randomBytes(n).toString('hex').slice(0, n * 2);
const tokens = (v) => Math.max(1, Math.ceil((typeof v === 'string' ? v.length : JSON.stringify(v ?? '').length) / 4));

/**
 * @param {object} [o]
 * @param {(prompt: string, ctx: object) => (string|string[]|null)} [o.script] commands for a prompt
 * @param {string|null} [o.key] the API key every model request must carry (null: any key)
 * @param {number} [o.port] 0 (default): a free port
 * @param {string[]} [o.models] model ids listed by the /models endpoints
 * @param {boolean|Function} [o.log] log unknown paths and errors (true: console.error)
 * @param {string} [o.finalText] the text of the final answer
 */
export async function startModelStandin({ script = DEFAULT_SCRIPT, key = null, port = 0, models = DEFAULT_MODELS, log = false, finalText = FINAL_TEXT } = {}) {
  const requests = [];
  const unknown = [];
  const logf = typeof log === 'function' ? log : log ? (...a) => console.error('[model-standin]', ...a) : () => {};
  let fault = 'none';
  let faultLeft = Infinity;
  const t0 = Date.now();
  const sockets = new Set();

  const server = createServer((req, res) => {
    handle(req, res).catch((e) => {
      logf('handler error', e?.stack ?? e);
      try {
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: { message: `stand-in error: ${e?.message ?? e}`, type: 'server_error' } }));
      } catch { /* the socket is gone */ }
    });
  });
  server.on('connection', (s) => { sockets.add(s); s.on('close', () => sockets.delete(s)); });
  server.on('clientError', (_e, s) => { try { s.end('HTTP/1.1 400 Bad Request\r\n\r\n'); } catch { /* gone */ } });

  async function handle(req, res) {
    const u = new URL(req.url ?? '/', 'http://127.0.0.1');
    const raw = await readBody(req);
    const headers = Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k.toLowerCase(), Array.isArray(v) ? v.join(', ') : v]));
    const body = parseBody(raw, headers);
    const path = u.pathname;
    const rec = { method: req.method, path, query: Object.fromEntries(u.searchParams), headers, body, api: classify(req.method, path, headers), at: Date.now() - t0, time: Date.now(), status: 0 };
    requests.push(rec);
    const send = (status, obj, extra = {}) => {
      rec.status = status;
      res.writeHead(status, { 'content-type': 'application/json', ...extra });
      res.end(typeof obj === 'string' ? obj : JSON.stringify(obj));
    };

    if (rec.api === 'unknown') {
      unknown.push(`${req.method} ${path}`);
      logf('unknown path', req.method, u.pathname + u.search);
      // Probes (claude's /api/hello, feature flags, telemetry) are content with a small 200.
      if (req.method === 'HEAD') return send(200, '');
      return send(200, path.endsWith('/hello') ? { message: 'hello' } : {});
    }

    const provider = rec.api.split('.')[0]; // anthropic | openai | gemini
    if (key != null && rec.api !== 'anthropic.hello') {
      const given = presentedKeys(headers, u.searchParams);
      rec.key = given[0] ?? null;
      if (!given.includes(key)) return sendError(send, provider, given.length ? 'bad_key' : 'no_key');
    } else {
      rec.key = presentedKeys(headers, u.searchParams)[0] ?? null;
    }
    if (fault !== 'none' && isModelCall(rec.api)) {
      rec.fault = fault;
      const f = fault;
      if (--faultLeft <= 0) fault = 'none';
      return sendError(send, provider, f);
    }

    switch (rec.api) {
      case 'anthropic.hello': return send(200, { message: 'hello' });
      case 'anthropic.models': return send(200, anthropicModels(models));
      case 'openai.models': return send(200, { object: 'list', data: models.map((id) => ({ id, object: 'model', created: 1700000000, owned_by: 'standin' })) });
      case 'gemini.models': return send(200, { models: models.map((id) => geminiModel(id)) });
      case 'anthropic.model': return send(200, anthropicModels([lastSeg(path)]).data[0]);
      case 'openai.model': return send(200, { id: lastSeg(path), object: 'model', created: 1700000000, owned_by: 'standin' });
      case 'gemini.model': return send(200, geminiModel(lastSeg(path)));
      case 'anthropic.count_tokens': return send(200, { input_tokens: tokens(body) });
      case 'gemini.countTokens': return send(200, { totalTokens: tokens(body) });
      default: break;
    }

    const conv = conversation(rec.api, body);
    const model = rec.api.startsWith('gemini') ? geminiModelFromPath(path) : (body?.model ?? 'standin-model');
    const step = decide(conv, body, rec.api, model, rec);
    rec.step = step;
    rec.model = model;
    const usage = { input: tokens(body), output: step.command ? tokens(step.command) + 10 : tokens(step.text) };
    switch (rec.api) {
      case 'anthropic.messages': return anthropicReply(res, rec, body, model, step, usage);
      case 'openai.responses': return responsesReply(res, rec, body, model, step, usage);
      case 'openai.chat': return chatReply(res, rec, body, model, step, usage);
      case 'gemini.generate': return geminiReply(res, rec, model, step, usage, false);
      case 'gemini.stream': return geminiReply(res, rec, model, step, usage, u.searchParams.get('alt') === 'sse');
      default: return send(404, { error: { message: `no route for ${req.method} ${path}` } });
    }
  }

  /** The next move: a shell call or a final text. */
  function decide(conv, body, api, model, rec) {
    const tool = findShellTool(api, body);
    const lastUser = conv.findLastIndex((e) => e.kind === 'user');
    const prompt = lastUser >= 0 ? conv[lastUser].text : '';
    const results = conv.slice(lastUser + 1).filter((e) => e.kind === 'result');
    rec.prompt = prompt;
    rec.tools = toolNames(api, body);
    const schema = wantsJson(api, body);
    if (!tool) return schema ? { text: JSON.stringify(fromSchema(schema)) } : { text: sideText(prompt) };
    let commands;
    try {
      const out = script(prompt, { api, model, step: results.length, request: rec, tools: rec.tools, results: results.map((r) => r.text) });
      commands = out == null ? [] : Array.isArray(out) ? out.filter((c) => typeof c === 'string') : [String(out)];
    } catch (e) {
      logf('script threw', e?.stack ?? e);
      commands = [];
    }
    if (results.length < commands.length) return { command: commands[results.length], tool };
    return { text: finalText };
  }

  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => { server.off('error', reject); resolve(); });
  });
  const url = `http://127.0.0.1:${server.address().port}`;
  return {
    url,
    port: server.address().port,
    requests,
    unknown,
    /** Model requests only (no probes / metadata). */
    modelRequests: () => requests.filter((r) => isModelCall(r.api)),
    /** '429' | '500' | '529' | 'none'; `times`: how many model requests fail before it clears. */
    setFault(kind, times = Infinity) {
      const k = String(kind);
      if (!['429', '500', '529', 'none'].includes(k)) throw new Error(`unknown fault ${kind}`);
      fault = k;
      faultLeft = k === 'none' ? Infinity : times;
    },
    async stop() {
      await new Promise((r) => { server.close(() => r()); for (const s of sockets) s.destroy(); });
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Routing and request parsing

function classify(method, path, headers) {
  const p = path.replace(/\/+$/, '');
  if (/\/api\/hello$/.test(p)) return 'anthropic.hello';
  if (method === 'POST' && /\/messages\/count_tokens$/.test(p)) return 'anthropic.count_tokens';
  if (method === 'POST' && /\/v1\/messages$|^\/messages$/.test(p)) return 'anthropic.messages';
  if (method === 'POST' && /\/responses$/.test(p)) return 'openai.responses';
  if (method === 'POST' && /\/chat\/completions$/.test(p)) return 'openai.chat';
  if (method === 'POST' && /\/models\/[^/]+:streamGenerateContent$/.test(p)) return 'gemini.stream';
  if (method === 'POST' && /\/models\/[^/]+:generateContent$/.test(p)) return 'gemini.generate';
  if (method === 'POST' && /\/models\/[^/]+:countTokens$/.test(p)) return 'gemini.countTokens';
  if (method === 'GET' && /\/v1beta\/models$/.test(p)) return 'gemini.models';
  if (method === 'GET' && /\/v1beta\/models\/[^/:]+$/.test(p)) return 'gemini.model';
  if (method === 'GET' && /\/models$/.test(p)) return headers['anthropic-version'] ? 'anthropic.models' : 'openai.models';
  if (method === 'GET' && /\/v1\/models\/[^/:]+$/.test(p)) return headers['anthropic-version'] ? 'anthropic.model' : 'openai.model';
  return 'unknown';
}

const isModelCall = (api) => ['anthropic.messages', 'anthropic.count_tokens', 'openai.responses', 'openai.chat', 'gemini.generate', 'gemini.stream', 'gemini.countTokens'].includes(api);
const lastSeg = (p) => decodeURIComponent(p.replace(/\/+$/, '').split('/').pop() ?? '');
const geminiModelFromPath = (p) => decodeURIComponent((p.match(/\/models\/([^/:]+):/) ?? [])[1] ?? 'gemini');

function presentedKeys(h, q) {
  const out = [];
  if (h['x-api-key']) out.push(h['x-api-key']);
  const auth = h.authorization ?? '';
  if (/^bearer\s+/i.test(auth)) out.push(auth.replace(/^bearer\s+/i, '').trim());
  if (h['x-goog-api-key']) out.push(h['x-goog-api-key']);
  if (h['api-key']) out.push(h['api-key']);
  if (q.get('key')) out.push(q.get('key'));
  return out;
}

function readBody(req) {
  return new Promise((resolve) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', () => resolve(Buffer.concat(chunks)));
  });
}

function parseBody(buf, headers) {
  if (!buf.length) return null;
  let b = buf;
  try {
    const enc = (headers['content-encoding'] ?? '').toLowerCase();
    if (enc === 'gzip') b = gunzipSync(buf);
    else if (enc === 'deflate') b = inflateSync(buf);
    else if (enc === 'br') b = brotliDecompressSync(buf);
  } catch { b = buf; }
  const text = b.toString('utf8');
  try { return JSON.parse(text); } catch { return text; }
}

// ---------------------------------------------------------------------------------------------
// Conversations: [{ kind: 'user' | 'call' | 'result', text }] in order, per API

const textOf = (c) => {
  if (c == null) return '';
  if (typeof c === 'string') return c;
  if (Array.isArray(c)) return c.map(textOf).filter(Boolean).join('\n');
  if (typeof c === 'object') return typeof c.text === 'string' ? c.text : typeof c.content === 'string' || Array.isArray(c.content) ? textOf(c.content) : '';
  return String(c);
};
// Context the CLIs add as "user" messages; not the person's prompt.
// (claude's <system-reminder>, gemini's <session_context>, kilo's <environment_details>)
const stripContext = (t) => t.replace(/<(system-reminder|session_context|environment_details)>[\s\S]*?<\/\1>/g, '').trim();
const isContextOnly = (t) => !t || /^<(environment_context|user_instructions|permissions instructions|user_shell_command)|^# AGENTS\.md instructions/.test(t.trim());

function conversation(api, body) {
  const out = [];
  const user = (t) => { const s = stripContext(t); if (!isContextOnly(s)) out.push({ kind: 'user', text: s }); };
  try {
    if (api === 'anthropic.messages') {
      for (const m of body?.messages ?? []) {
        const blocks = typeof m.content === 'string' ? [{ type: 'text', text: m.content }] : Array.isArray(m.content) ? m.content : [];
        if (m.role === 'assistant') { for (const b of blocks) if (b?.type === 'tool_use') out.push({ kind: 'call', text: JSON.stringify(b.input) }); continue; }
        if (m.role !== 'user') continue; // e.g. claude's mid-conversation `system` messages
        const res = blocks.filter((b) => b?.type === 'tool_result');
        if (res.length) { for (const r of res) out.push({ kind: 'result', text: textOf(r.content) }); continue; }
        user(blocks.filter((b) => b?.type === 'text').map((b) => b.text).join('\n'));
      }
    } else if (api === 'openai.responses') {
      const input = typeof body?.input === 'string' ? [{ role: 'user', content: body.input }] : body?.input ?? [];
      for (const it of input) {
        const t = it?.type ?? (it?.role ? 'message' : '');
        if (t === 'message' && it.role === 'user') user(textOf(it.content));
        else if (/_call$/.test(t)) out.push({ kind: 'call', text: it.arguments ?? JSON.stringify(it.action ?? it.input ?? '') });
        else if (/_call_output$/.test(t)) out.push({ kind: 'result', text: textOf(it.output) });
      }
    } else if (api === 'openai.chat') {
      for (const m of body?.messages ?? []) {
        if (m.role === 'user') user(textOf(m.content));
        else if (m.role === 'assistant') for (const c of m.tool_calls ?? []) out.push({ kind: 'call', text: c?.function?.arguments ?? '' });
        else if (m.role === 'tool') out.push({ kind: 'result', text: textOf(m.content) });
      }
    } else if (api.startsWith('gemini')) {
      for (const c of body?.contents ?? []) {
        const parts = c?.parts ?? [];
        if (c.role && c.role !== 'user') { for (const p of parts) if (p?.functionCall) out.push({ kind: 'call', text: JSON.stringify(p.functionCall.args ?? {}) }); continue; }
        const res = parts.filter((p) => p?.functionResponse);
        if (res.length) { for (const p of res) out.push({ kind: 'result', text: JSON.stringify(p.functionResponse.response ?? {}) }); continue; }
        user(parts.map((p) => p?.text ?? '').join('\n'));
      }
    }
  } catch { /* odd input: whatever was understood */ }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Tools: which shell tool was offered, and its arguments for one command

function toolList(api, body) {
  const tools = Array.isArray(body?.tools) ? body.tools : [];
  const out = [];
  for (const t of tools) {
    if (!t || typeof t !== 'object') continue;
    if (api.startsWith('gemini')) {
      for (const f of t.functionDeclarations ?? []) out.push({ name: f.name, schema: f.parametersJsonSchema ?? f.parameters ?? {}, kind: 'function' });
    } else if (api === 'openai.chat') {
      if (t.function?.name) out.push({ name: t.function.name, schema: t.function.parameters ?? {}, kind: 'function' });
    } else if (api === 'openai.responses') {
      if (t.type === 'local_shell') out.push({ name: 'local_shell', schema: {}, kind: 'local_shell' });
      else if (t.name) out.push({ name: t.name, schema: t.parameters ?? {}, kind: t.type === 'custom' ? 'custom' : 'function' });
    } else if (t.name) {
      out.push({ name: t.name, schema: t.input_schema ?? {}, kind: 'function' });
    }
  }
  return out;
}

const toolNames = (api, body) => toolList(api, body).map((t) => t.name);

function findShellTool(api, body) {
  const list = toolList(api, body).filter((t) => t.kind !== 'custom');
  for (const n of SHELL_TOOLS) {
    const t = list.find((x) => x.name === n);
    if (t) return t;
  }
  return null;
}

function shellArgs(tool, command) {
  const props = tool.schema?.properties ?? {};
  const typeOf = (p) => String(p?.type ?? '').toLowerCase();
  const args = {};
  if (props.command && typeOf(props.command) === 'array') args.command = ['bash', '-lc', command];
  else if (props.command) args.command = command;
  else if (props.cmd) args.cmd = typeOf(props.cmd) === 'array' ? ['bash', '-lc', command] : command;
  else args.command = command;
  // Some shells require a description (opencode's `bash`, gemini's optional one helps the UI).
  const required = tool.schema?.required ?? [];
  if (props.description && (required.includes('description') || tool.name === 'Bash' || tool.name === 'run_shell_command')) args.description = 'Run the scripted command';
  return args;
}

// ---------------------------------------------------------------------------------------------
// Side requests: structured output and plain text

function wantsJson(api, body) {
  try {
    if (api.startsWith('gemini')) {
      const g = body?.generationConfig ?? {};
      if (g.responseJsonSchema || g.responseSchema) return g.responseJsonSchema ?? g.responseSchema;
      if (g.responseMimeType === 'application/json') return {};
    } else if (api === 'openai.chat') {
      const f = body?.response_format;
      if (f?.type === 'json_schema') return f.json_schema?.schema ?? {};
      if (f?.type === 'json_object') return {};
    } else if (api === 'openai.responses') {
      const f = body?.text?.format;
      if (f?.type === 'json_schema') return f.schema ?? {};
    } else if (api === 'anthropic.messages') {
      const f = body?.output_format ?? body?.output_config?.format;
      if (f?.type === 'json_schema') return f.schema ?? {};
    }
  } catch { /* not structured */ }
  return null;
}

function fromSchema(s, depth = 0) {
  if (!s || typeof s !== 'object' || depth > 6) return {};
  if (Array.isArray(s.enum) && s.enum.length) return s.enum.includes('user') ? 'user' : s.enum[0];
  if (s.const !== undefined) return s.const;
  const any = s.anyOf ?? s.oneOf;
  if (Array.isArray(any) && any.length) return fromSchema(any[0], depth + 1);
  const type = String(Array.isArray(s.type) ? s.type[0] : s.type ?? (s.properties ? 'object' : 'string')).toLowerCase();
  switch (type) {
    case 'object': {
      const o = {};
      for (const [k, v] of Object.entries(s.properties ?? {})) o[k] = fromSchema(v, depth + 1);
      return o;
    }
    case 'array': return [];
    case 'integer': case 'number': return 0;
    case 'boolean': return false;
    case 'null': return null;
    default: return 'stand-in';
  }
}

function sideText(prompt) {
  // Title requests (opencode, kilo, codex) get a short title; anything else the prompt's first words.
  if (/\btitle\b/i.test(prompt.split('\n')[0] ?? '')) return 'Scripted task';
  const words = (prompt || '').replace(/\s+/g, ' ').trim().split(' ').slice(0, 6).join(' ');
  return words || 'OK';
}

// ---------------------------------------------------------------------------------------------
// Errors in each provider's real format

function sendError(send, provider, kind) {
  const E = {
    anthropic: {
      no_key: [401, { type: 'error', error: { type: 'authentication_error', message: 'x-api-key header is required' } }],
      bad_key: [401, { type: 'error', error: { type: 'authentication_error', message: 'invalid x-api-key' } }],
      429: [429, { type: 'error', error: { type: 'rate_limit_error', message: 'Number of request tokens has exceeded your per-minute rate limit (https://docs.claude.com/en/api/rate-limits); see the response headers for current usage. Please reduce the prompt length or the maximum tokens requested, or try again later. You may also contact sales at https://www.anthropic.com/contact-sales to discuss your options for a rate limit increase.' } }, { 'retry-after': '1' }],
      500: [500, { type: 'error', error: { type: 'api_error', message: 'Internal server error' } }],
      529: [529, { type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } }],
    },
    openai: {
      no_key: [401, { error: { message: "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).", type: 'invalid_request_error', param: null, code: null } }],
      bad_key: [401, { error: { message: 'Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys.', type: 'invalid_request_error', param: null, code: 'invalid_api_key' } }],
      429: [429, { error: { message: 'Rate limit reached for requests. Please try again in 1s.', type: 'requests', param: null, code: 'rate_limit_exceeded' } }, { 'retry-after': '1' }],
      500: [500, { error: { message: 'The server had an error while processing your request. Sorry about that!', type: 'server_error', param: null, code: null } }],
      529: [503, { error: { message: 'The engine is currently overloaded, please try again later.', type: 'server_error', param: null, code: null } }],
    },
    gemini: {
      // The real API answers a wrong key with 400 INVALID_ARGUMENT / API_KEY_INVALID and a
      // missing one with 403 PERMISSION_DENIED.
      no_key: [403, { error: { code: 403, message: 'Method doesn\'t allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.', status: 'PERMISSION_DENIED' } }],
      bad_key: [400, { error: { code: 400, message: 'API key not valid. Please pass a valid API key.', status: 'INVALID_ARGUMENT', details: [{ '@type': 'type.googleapis.com/google.rpc.ErrorInfo', reason: 'API_KEY_INVALID', domain: 'googleapis.com', metadata: { service: 'generativelanguage.googleapis.com' } }] } }],
      429: [429, { error: { code: 429, message: 'Resource has been exhausted (e.g. check quota).', status: 'RESOURCE_EXHAUSTED' } }],
      500: [500, { error: { code: 500, message: 'An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting', status: 'INTERNAL' } }],
      529: [503, { error: { code: 503, message: 'The model is overloaded. Please try again later.', status: 'UNAVAILABLE' } }],
    },
  };
  const [status, obj, extra] = (E[provider] ?? E.openai)[kind] ?? E.openai[500];
  const h = { ...(extra ?? {}) };
  if (provider === 'anthropic') h['request-id'] = `req_${rid(24)}`;
  if (provider === 'openai') h['x-request-id'] = `req_${hex(16)}`;
  return send(status, obj, h);
}

// ---------------------------------------------------------------------------------------------
// Anthropic Messages

function anthropicModels(ids) {
  const data = ids.map((id) => ({ type: 'model', id, display_name: id, created_at: '2025-01-01T00:00:00Z' }));
  return { data, has_more: false, first_id: data[0]?.id ?? null, last_id: data.at(-1)?.id ?? null };
}

function sseStart(res, rec, extra = {}) {
  rec.status = 200;
  res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive', ...extra });
}

function anthropicReply(res, rec, body, model, step, usage) {
  const id = `msg_01${rid(22)}`;
  const blocks = [];
  if (step.command) {
    blocks.push({ type: 'text', text: 'I will run the command.' });
    blocks.push({ type: 'tool_use', id: `toolu_01${rid(22)}`, name: step.tool.name, input: shellArgs(step.tool, step.command) });
  } else {
    blocks.push({ type: 'text', text: step.text });
  }
  const stop = step.command ? 'tool_use' : 'end_turn';
  const u = { input_tokens: usage.input, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, output_tokens: usage.output };
  const headers = { 'request-id': `req_01${rid(22)}`, 'anthropic-organization-id': '00000000-0000-4000-8000-000000000000' };
  if (!body?.stream) {
    rec.status = 200;
    res.writeHead(200, { 'content-type': 'application/json', ...headers });
    res.end(JSON.stringify({ id, type: 'message', role: 'assistant', model, content: blocks, stop_reason: stop, stop_sequence: null, usage: u }));
    return;
  }
  sseStart(res, rec, headers);
  const ev = (type, data) => res.write(`event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`);
  ev('message_start', { message: { id, type: 'message', role: 'assistant', model, content: [], stop_reason: null, stop_sequence: null, usage: { ...u, output_tokens: 1 } } });
  ev('ping', {});
  blocks.forEach((b, index) => {
    if (b.type === 'text') {
      ev('content_block_start', { index, content_block: { type: 'text', text: '' } });
      ev('content_block_delta', { index, delta: { type: 'text_delta', text: b.text } });
    } else {
      ev('content_block_start', { index, content_block: { type: 'tool_use', id: b.id, name: b.name, input: {} } });
      const json = JSON.stringify(b.input);
      const cut = Math.ceil(json.length / 2);
      ev('content_block_delta', { index, delta: { type: 'input_json_delta', partial_json: '' } });
      ev('content_block_delta', { index, delta: { type: 'input_json_delta', partial_json: json.slice(0, cut) } });
      ev('content_block_delta', { index, delta: { type: 'input_json_delta', partial_json: json.slice(cut) } });
    }
    ev('content_block_stop', { index });
  });
  ev('message_delta', { delta: { stop_reason: stop, stop_sequence: null }, usage: { output_tokens: usage.output } });
  ev('message_stop', {});
  res.end();
}

// ---------------------------------------------------------------------------------------------
// OpenAI Responses

function responsesReply(res, rec, body, model, step, usage) {
  const respId = `resp_${hex(24)}`;
  const created = Math.floor(Date.now() / 1000);
  let item;
  if (step.command && step.tool.kind === 'local_shell') {
    item = { type: 'local_shell_call', id: `lsh_${hex(24)}`, call_id: `call_${rid(24)}`, status: 'completed', action: { type: 'exec', command: ['bash', '-lc', step.command], env: {} } };
  } else if (step.command) {
    item = { type: 'function_call', id: `fc_${hex(24)}`, call_id: `call_${rid(24)}`, name: step.tool.name, arguments: JSON.stringify(shellArgs(step.tool, step.command)), status: 'completed' };
  } else {
    item = { type: 'message', id: `msg_${hex(24)}`, role: 'assistant', status: 'completed', content: [{ type: 'output_text', text: step.text, annotations: [], logprobs: [] }] };
  }
  const u = { input_tokens: usage.input, input_tokens_details: { cached_tokens: 0 }, output_tokens: usage.output, output_tokens_details: { reasoning_tokens: 0 }, total_tokens: usage.input + usage.output };
  const base = { id: respId, object: 'response', created_at: created, model, parallel_tool_calls: body?.parallel_tool_calls ?? true, tool_choice: body?.tool_choice ?? 'auto', tools: body?.tools ?? [], previous_response_id: body?.previous_response_id ?? null, error: null, incomplete_details: null, instructions: null, metadata: {}, text: { format: { type: 'text' } }, reasoning: { effort: null, summary: null }, store: body?.store ?? false, temperature: 1, top_p: 1, truncation: 'disabled', user: null };
  const done = { ...base, status: 'completed', output: [item], usage: u };
  if (!body?.stream) {
    rec.status = 200;
    res.writeHead(200, { 'content-type': 'application/json', 'x-request-id': `req_${hex(16)}` });
    res.end(JSON.stringify(done));
    return;
  }
  sseStart(res, rec, { 'x-request-id': `req_${hex(16)}` });
  let seq = 0;
  const ev = (type, data) => res.write(`event: ${type}\ndata: ${JSON.stringify({ type, sequence_number: seq++, ...data })}\n\n`);
  ev('response.created', { response: { ...base, status: 'in_progress', output: [], usage: null } });
  ev('response.in_progress', { response: { ...base, status: 'in_progress', output: [], usage: null } });
  const output_index = 0;
  if (item.type === 'function_call') {
    ev('response.output_item.added', { output_index, item: { ...item, arguments: '', status: 'in_progress' } });
    ev('response.function_call_arguments.delta', { item_id: item.id, output_index, delta: item.arguments });
    ev('response.function_call_arguments.done', { item_id: item.id, output_index, arguments: item.arguments });
    ev('response.output_item.done', { output_index, item });
  } else if (item.type === 'message') {
    const text = item.content[0].text;
    ev('response.output_item.added', { output_index, item: { ...item, status: 'in_progress', content: [] } });
    ev('response.content_part.added', { item_id: item.id, output_index, content_index: 0, part: { type: 'output_text', text: '', annotations: [], logprobs: [] } });
    ev('response.output_text.delta', { item_id: item.id, output_index, content_index: 0, delta: text, logprobs: [] });
    ev('response.output_text.done', { item_id: item.id, output_index, content_index: 0, text, logprobs: [] });
    ev('response.content_part.done', { item_id: item.id, output_index, content_index: 0, part: item.content[0] });
    ev('response.output_item.done', { output_index, item });
  } else {
    ev('response.output_item.added', { output_index, item: { ...item, status: 'in_progress' } });
    ev('response.output_item.done', { output_index, item });
  }
  ev('response.completed', { response: done });
  res.end();
}

// ---------------------------------------------------------------------------------------------
// OpenAI Chat Completions

function chatReply(res, rec, body, model, step, usage) {
  const id = `chatcmpl-${rid(29)}`;
  const created = Math.floor(Date.now() / 1000);
  const call = step.command ? { id: `call_${rid(24)}`, type: 'function', function: { name: step.tool.name, arguments: JSON.stringify(shellArgs(step.tool, step.command)) } } : null;
  const u = { prompt_tokens: usage.input, completion_tokens: usage.output, total_tokens: usage.input + usage.output, prompt_tokens_details: { cached_tokens: 0 }, completion_tokens_details: { reasoning_tokens: 0 } };
  const finish = call ? 'tool_calls' : 'stop';
  const fp = 'fp_standin';
  if (!body?.stream) {
    rec.status = 200;
    res.writeHead(200, { 'content-type': 'application/json' });
    const message = call ? { role: 'assistant', content: null, tool_calls: [call], refusal: null } : { role: 'assistant', content: step.text, refusal: null };
    res.end(JSON.stringify({ id, object: 'chat.completion', created, model, system_fingerprint: fp, choices: [{ index: 0, message, logprobs: null, finish_reason: finish }], usage: u }));
    return;
  }
  sseStart(res, rec);
  const chunk = (delta, finish_reason = null, extra = {}) =>
    res.write(`data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created, model, system_fingerprint: fp, choices: [{ index: 0, delta, logprobs: null, finish_reason }], ...extra })}\n\n`);
  if (call) {
    chunk({ role: 'assistant', content: null, tool_calls: [{ index: 0, id: call.id, type: 'function', function: { name: call.function.name, arguments: '' } }], refusal: null });
    const a = call.function.arguments;
    const cut = Math.ceil(a.length / 2);
    chunk({ tool_calls: [{ index: 0, function: { arguments: a.slice(0, cut) } }] });
    chunk({ tool_calls: [{ index: 0, function: { arguments: a.slice(cut) } }] });
  } else {
    chunk({ role: 'assistant', content: '', refusal: null });
    chunk({ content: step.text });
  }
  chunk({}, finish);
  if (body?.stream_options?.include_usage) res.write(`data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created, model, system_fingerprint: fp, choices: [], usage: u })}\n\n`);
  res.write('data: [DONE]\n\n');
  res.end();
}

// ---------------------------------------------------------------------------------------------
// Gemini

function geminiModel(id) {
  const name = id.startsWith('models/') ? id : `models/${id}`;
  return { name, version: '001', displayName: id, description: 'stand-in', inputTokenLimit: 1048576, outputTokenLimit: 65536, supportedGenerationMethods: ['generateContent', 'countTokens', 'streamGenerateContent'], temperature: 1, topP: 0.95, topK: 64, maxTemperature: 2, thinking: true };
}

function geminiReply(res, rec, model, step, usage, sse) {
  const parts = step.command
    ? [{ functionCall: { name: step.tool.name, args: shellArgs(step.tool, step.command) } }]
    : [{ text: step.text }];
  const obj = {
    candidates: [{ content: { parts, role: 'model' }, finishReason: 'STOP', index: 0 }],
    usageMetadata: { promptTokenCount: usage.input, candidatesTokenCount: usage.output, totalTokenCount: usage.input + usage.output },
    modelVersion: model,
    responseId: rid(22),
  };
  rec.status = 200;
  if (sse) {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    res.write(`data: ${JSON.stringify(obj)}\r\n\r\n`);
    res.end();
  } else if (rec.api === 'gemini.stream') {
    res.writeHead(200, { 'content-type': 'application/json; charset=UTF-8' });
    res.end(JSON.stringify([obj]));
  } else {
    res.writeHead(200, { 'content-type': 'application/json; charset=UTF-8' });
    res.end(JSON.stringify(obj));
  }
}
