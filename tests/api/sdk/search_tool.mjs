// The dialects' search tools through the official SDKs (openai@6, @anthropic-ai/sdk), streamed and
// not: `v4flash-testserver --scripted-engine --search linkup` pointed at a Linkup-compatible server
// run here (plain HTTP; it records the requests). The script makes the model call web_search; the
// first result's text carries the script of the next round, so the answer after it shows that the
// results reached the model. Checked: Responses web_search_call items and their events, url_citation
// annotations, the official OpenAPI schema of responses and events; Anthropic server_tool_use and
// web_search_tool_result blocks (the SDK's stream accumulation gives the same message as the
// non-streamed one), web_search_result_location citations, max_uses, a provider failure as a
// web_search_tool_result_error, usage.server_tool_use.web_search_requests.
//   node tests/api/sdk/search_tool.mjs --binary build/v4flash-testserver
import http from 'node:http';
import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';
import { parseArgs, startServer, Checks, assert, eq, noMarkup, schemaOk, openaiValidator, scriptMarker, EOS } from './harness.mjs';

const LINKUP_KEY = 'lk-sdk-search-tool-1b2c';
const invoke = (query) => '<｜DSML｜invoke name="web_search">\n<｜DSML｜parameter name="query" string="true">' + query +
  '</｜DSML｜parameter>\n</｜DSML｜invoke>\n';
const searchScript = (...queries) => 'Let me search.</think>\n\n<｜DSML｜tool_calls>\n' + queries.map(invoke).join('') + '</｜DSML｜tool_calls>' + EOS;
const ANSWER = 'Bern is the capital [1]; Zurich is larger [2].';

// A Linkup-compatible server: POST /v1/search; `fail` answers the next N requests with 401.
function fakeLinkup() {
  const state = { requests: [], fail: 0 };
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      state.requests.push({ path: req.url, auth: req.headers.authorization, body: JSON.parse(body) });
      const fail = state.fail > 0;
      if (fail) state.fail--;
      const answer = fail ? { statusCode: 401, error: { message: 'bad key' } } : { results: [
        { type: 'text', name: 'Bern - Wikipedia', url: 'https://en.wikipedia.org/wiki/Bern',
          content: 'Bern is the de facto capital. ' + scriptMarker('Found it.</think>' + ANSWER + EOS) },
        { type: 'text', name: 'Swiss cities', url: 'https://example.ch/cities', content: 'Zurich is the largest city.' }] };
      res.writeHead(fail ? 401 : 200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(answer));
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ state, server, port: server.address().port })));
}

const opts = parseArgs(process.argv.slice(2));
const linkup = await fakeLinkup();
process.env.LINKUP_API_KEY = LINKUP_KEY;
const server = await startServer(opts, ['--search', 'linkup', '--linkup-url', `http://127.0.0.1:${linkup.port}/v1`]);
const checks = new Checks('search tool through the SDKs');
const model = 'deepseek-v4-flash';
const question = 'What is the capital of Switzerland?';
let ok = false;
try {
  const openai = new OpenAI({ baseURL: server.url + '/v1', apiKey: server.apiKey, maxRetries: 0, fetch: server.fetch });
  const anthropic = new Anthropic({ baseURL: server.url, apiKey: server.apiKey, maxRetries: 0, fetch: server.fetch });
  const validateResponse = openaiValidator('Response');
  const validateEvent = openaiValidator('ResponseStreamEvent');
  const responsesBody = { model, input: question, tools: [{ type: 'web_search' }], include: ['web_search_call.action.sources'],
    x_forced_completion: searchScript('capital of Switzerland') };

  const checkResponse = (r) => {
    schemaOk(validateResponse, r, 'response');
    eq(r.status, 'completed', 'status');
    eq(r.output.map((o) => o.type), ['reasoning', 'web_search_call', 'reasoning', 'message'], 'output items');
    const call = r.output[1];
    eq(call.status, 'completed', 'web_search_call status');
    eq(call.action.type, 'search', 'action type');
    eq(call.action.query, 'capital of Switzerland', 'action query');
    eq(call.action.sources.map((s) => s.url), ['https://en.wikipedia.org/wiki/Bern', 'https://example.ch/cities'], 'sources');
    eq(r.output_text ?? r.output[3].content[0].text, ANSWER, 'output_text');  // (the stream helper sets none)
    const ann = r.output[3].content[0].annotations;
    eq(ann.map((a) => [a.type, a.url, ANSWER.slice(a.start_index, a.end_index)]),
      [['url_citation', 'https://en.wikipedia.org/wiki/Bern', '[1]'], ['url_citation', 'https://example.ch/cities', '[2]']], 'annotations');
    eq(r.usage.server_tool_use.web_search_requests, 1, 'usage.server_tool_use');
    noMarkup(r.output[3].content[0].text, 'output_text');
  };

  await checks.run('responses: web_search tool, non-streamed: web_search_call item, cited answer, Linkup asked', async () => {
    const before = linkup.state.requests.length;
    const r = await openai.responses.create(responsesBody);
    checkResponse(r);
    const asked = linkup.state.requests.slice(before);
    eq(asked.length, 1, 'one search');
    eq(asked[0].path, '/v1/search', 'path');
    eq(asked[0].auth, `Bearer ${LINKUP_KEY}`, 'auth');
    eq(asked[0].body.q, 'capital of Switzerland', 'the model\'s query');
  });

  await checks.run('responses: streamed: web_search_call events, annotation event, schema-valid, SDK finalResponse', async () => {
    const stream = openai.responses.stream(responsesBody);
    const events = [];
    stream.on('event', (ev) => { schemaOk(validateEvent, ev, `event ${ev.type}`); events.push(ev); });
    const final = await stream.finalResponse();
    checkResponse(final);
    const callId = final.output[1].id;
    const forCall = events.filter((e) => e.item_id === callId || e.item?.id === callId).map((e) => e.type);
    eq(forCall, ['response.output_item.added', 'response.web_search_call.in_progress', 'response.web_search_call.searching',
      'response.web_search_call.completed', 'response.output_item.done'], 'web_search_call events');
    eq(events.filter((e) => e.type === 'response.output_text.annotation.added').length, 2, 'annotation events');
    events.forEach((e, i) => eq(e.sequence_number, i, 'sequence_number'));
  });

  const tool = { type: 'web_search_20250305', name: 'web_search', max_uses: 3 };
  const messagesBody = { model, max_tokens: 1024, messages: [{ role: 'user', content: question }], tools: [tool],
    x_forced_completion: searchScript('capital of Switzerland') };
  const checkMessage = (m) => {
    eq(m.content.map((b) => b.type), ['thinking', 'server_tool_use', 'web_search_tool_result', 'thinking', 'text'], 'blocks');
    const [, use, result, , text] = m.content;
    eq([use.name, use.input], ['web_search', { query: 'capital of Switzerland' }], 'server_tool_use');
    assert(use.id.startsWith('srvtoolu_'), 'server tool id');
    eq(result.tool_use_id, use.id, 'tool_use_id');
    eq(result.content.map((r) => [r.type, r.url, r.title]), [
      ['web_search_result', 'https://en.wikipedia.org/wiki/Bern', 'Bern - Wikipedia'],
      ['web_search_result', 'https://example.ch/cities', 'Swiss cities']], 'results');
    assert(result.content.every((r) => typeof r.encrypted_content === 'string' && r.encrypted_content.length > 0), 'encrypted_content');
    eq(text.text, ANSWER, 'text');
    eq(text.citations.map((c) => [c.type, c.url, c.title]), [
      ['web_search_result_location', 'https://en.wikipedia.org/wiki/Bern', 'Bern - Wikipedia'],
      ['web_search_result_location', 'https://example.ch/cities', 'Swiss cities']], 'citations');
    eq(text.citations[1].cited_text, 'Zurich is the largest city.', 'cited_text');
    eq(m.stop_reason, 'end_turn', 'stop_reason');
    eq(m.usage.server_tool_use.web_search_requests, 1, 'usage.server_tool_use.web_search_requests');
  };

  await checks.run('messages: web_search_20250305, non-streamed: server_tool_use + web_search_tool_result + cited text', async () => {
    checkMessage(await anthropic.messages.create(messagesBody));
  });

  await checks.run('messages: streamed: content_block_start/stop per block, SDK finalMessage equals the shape', async () => {
    const stream = anthropic.messages.stream(messagesBody);
    const starts = [], deltas = [];
    stream.on('streamEvent', (e) => {
      if (e.type === 'content_block_start') starts.push(e.content_block.type);
      if (e.type === 'content_block_delta') deltas.push(e.delta.type);
    });
    checkMessage(await stream.finalMessage());
    eq(starts, ['thinking', 'server_tool_use', 'web_search_tool_result', 'thinking', 'text'], 'content_block_start types');
    eq(deltas.filter((t) => t === 'citations_delta').length, 2, 'citations_delta events');
    assert(deltas.includes('input_json_delta'), 'the query as input_json_delta');
  });

  await checks.run('messages: max_uses 1 and two calls: the second is a max_uses_exceeded error result', async () => {
    const before = linkup.state.requests.length;
    const m = await anthropic.messages.create({ ...messagesBody, tools: [{ ...tool, max_uses: 1 }],
      x_forced_completion: searchScript('Bern', 'Zurich') });
    eq(m.content.map((b) => b.type), ['thinking', 'server_tool_use', 'server_tool_use', 'web_search_tool_result',
      'web_search_tool_result', 'thinking', 'text'], 'blocks');
    eq(m.content[4].content, { type: 'web_search_tool_result_error', error_code: 'max_uses_exceeded' }, 'error result');
    eq(linkup.state.requests.length - before, 1, 'one search run');
    eq(m.usage.server_tool_use.web_search_requests, 1, 'one search billed');
  });

  await checks.run('messages: provider failure -> web_search_tool_result_error to the model, which searches again', async () => {
    linkup.state.fail = 1;
    const stream = anthropic.messages.stream(messagesBody);
    const m = await stream.finalMessage();
    eq(m.content.map((b) => b.type), ['thinking', 'server_tool_use', 'web_search_tool_result', 'thinking', 'server_tool_use',
      'web_search_tool_result', 'thinking', 'text'], 'blocks');
    eq(m.content[2].content, { type: 'web_search_tool_result_error', error_code: 'unavailable' }, 'error result');
    eq(m.content.at(-1).text, ANSWER, 'answer after the retry');
    eq(m.usage.server_tool_use.web_search_requests, 1, 'the failed search is not billed');
  });

  await checks.run('log: neither the Linkup key nor the query text', async () => {
    const log = server.log();
    assert(!log.includes(LINKUP_KEY), 'key in the log');
    assert(!log.includes('capital of Switzerland'), 'query in the log');
  });
  ok = checks.summary();
} finally {
  const code = await server.stop();
  linkup.server.close();
  if (code !== 0) { console.log(`server exited with ${code}`); ok = false; }
}
process.exit(ok ? 0 : 1);
