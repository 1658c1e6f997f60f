// What the frameworks send and what the server answers: a fetch to hand each framework's provider
// that records every request body and headers and, from a tee of the response, the usage the server
// reported (streamed or not, in each dialect's own shape).

// The server's usage for one response, in one shape for the three dialects:
// {input (the whole prompt, cached part included), cached, output (reasoning included), reasoning}.
export function normaliseUsage(dialect, u) {
  if (dialect === 'chat')
    return { input: u.prompt_tokens, cached: u.prompt_tokens_details?.cached_tokens ?? 0,
             output: u.completion_tokens, reasoning: u.completion_tokens_details?.reasoning_tokens ?? 0 };
  if (dialect === 'responses')
    return { input: u.input_tokens, cached: u.input_tokens_details?.cached_tokens ?? 0,
             output: u.output_tokens, reasoning: u.output_tokens_details?.reasoning_tokens ?? 0 };
  return { input: u.input_tokens + (u.cache_read_input_tokens ?? 0) + (u.cache_creation_input_tokens ?? 0),
           cached: u.cache_read_input_tokens ?? 0, output: u.output_tokens,
           reasoning: u.output_tokens_details?.thinking_tokens ?? null };
}

function dialectOf(url) {
  if (url.includes('/chat/completions')) return 'chat';
  if (url.includes('/responses')) return 'responses';
  return 'anthropic';
}

// The usage in a response body: the last one a stream carries (Anthropic's message_start and
// message_delta merged, as its SDK does), or the JSON body's.
function usageIn(dialect, text, streamed) {
  if (!streamed) {
    const body = JSON.parse(text);
    return body.usage ? normaliseUsage(dialect, body.usage) : null;
  }
  let usage = null;
  const anthropic = {};
  for (const line of text.split('\n')) {
    if (!line.startsWith('data: ') || line === 'data: [DONE]') continue;
    const ev = JSON.parse(line.slice(6));
    if (dialect === 'chat' && ev.usage) usage = normaliseUsage(dialect, ev.usage);
    if (dialect === 'responses' && ev.response?.usage) usage = normaliseUsage(dialect, ev.response.usage);
    if (ev.type === 'message_start') Object.assign(anthropic, ev.message.usage);
    if (ev.type === 'message_delta' && ev.usage) Object.assign(anthropic, ev.usage);
  }
  if (dialect === 'anthropic' && 'output_tokens' in anthropic) usage = normaliseUsage(dialect, anthropic);
  return usage;
}

// A fetch that records each exchange as {url, dialect, headers, body, status, streamed, text, usage};
// `settled()` waits for every response body to be read through.
export function recordingFetch() {
  const calls = [];
  const pending = [];
  async function recording(url, init = {}) {
    const headers = Object.fromEntries(new Headers(init.headers ?? {}).entries());
    const entry = { url: String(url), dialect: dialectOf(String(url)), headers,
                    body: typeof init.body === 'string' ? JSON.parse(init.body) : null,
                    status: 0, streamed: false, text: '', usage: null };
    calls.push(entry);
    const res = await fetch(url, init);
    entry.status = res.status;
    entry.streamed = (res.headers.get('content-type') ?? '').includes('text/event-stream');
    if (!res.body) return res;
    const [mine, theirs] = res.body.tee();
    pending.push(new Response(mine).text().then((text) => {
      entry.text = text;
      if (res.ok) entry.usage = usageIn(entry.dialect, text, entry.streamed);
    }));
    return new Response(theirs, { status: res.status, statusText: res.statusText, headers: res.headers });
  }
  return { fetch: recording, calls, settled: () => Promise.all(pending) };
}

// The key paths of a request body (arrays as [], object keys under them), to document which
// fields each framework sends.
export function fieldPaths(value, prefix = '', out = new Set()) {
  if (Array.isArray(value)) {
    for (const v of value) fieldPaths(v, prefix + '[]', out);
  } else if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      const p = prefix ? `${prefix}.${k}` : k;
      out.add(p);
      // Schemas and tool inputs are the caller's, not the framework's: their keys are not fields.
      if (!/((^|\.)(parameters|input_schema|schema)|\]\.input)$/.test(p)) fieldPaths(v, p, out);
    }
  }
  return out;
}

// Runs fn; a failure's message gains the exchanges so far (what the server said, in short).
export async function explained(rec, fn) {
  try {
    return await fn();
  } catch (e) {
    await rec.settled().catch(() => {});
    const lines = rec.calls.map((c, i) => `  request ${i}: ${c.url} -> ${c.status}: ${c.text.slice(0, 800)}`);
    if (e instanceof Error) e.message += `\n${lines.join('\n')}`;
    throw e;
  }
}
