// OpenAI Chat Completions through the official `openai` SDK.
import OpenAI from 'openai';
import { assert, eq, noMarkup, schemaOk, openaiValidator, forced, weatherParams } from './harness.mjs';

export async function chatChecks(checks, server) {
  const client = new OpenAI({ baseURL: server.url + '/v1', apiKey: server.apiKey, maxRetries: 0, fetch: server.fetch });
  const validateResponse = openaiValidator('CreateChatCompletionResponse');
  const validateChunk = openaiValidator('CreateChatCompletionStreamResponse');
  const model = 'deepseek-v4-flash';
  const user = [{ role: 'user', content: 'Say hello.' }];

  await checks.run('chat: models.list has the three ids', async () => {
    const ids = [];
    for await (const m of client.models.list()) ids.push(m.id);
    eq(ids, ['deepseek-v4-flash', 'deepseek-v4-flash:variant1', 'deepseek-v4-flash:variant2'], 'model ids');
  });

  await checks.run('chat: non-streamed, thinking on (default): reasoning_content + content, schema-valid', async () => {
    const r = await client.chat.completions.create({ model, messages: user, x_forced_completion: forced.thinking });
    schemaOk(validateResponse, r, 'chat.completion');
    const m = r.choices[0].message;
    eq(m.reasoning_content, 'Reasoning about it.', 'reasoning_content');
    eq(m.content, 'Alpha beta gamma delta.', 'content');
    eq(r.choices[0].finish_reason, 'stop', 'finish_reason');
    assert(r.usage.prompt_tokens > 0, 'prompt_tokens');
    assert(r.usage.completion_tokens_details.reasoning_tokens > 0, 'reasoning_tokens counted');
    assert(r.usage.completion_tokens_details.reasoning_tokens < r.usage.completion_tokens, 'reasoning within completion');
    eq(r.usage.prompt_cache_hit_tokens + r.usage.prompt_cache_miss_tokens, r.usage.prompt_tokens, 'hit + miss = prompt');
    eq(r.usage.prompt_tokens_details.cached_tokens, r.usage.prompt_cache_hit_tokens, 'cached_tokens = hit');
    noMarkup(m.content, 'content'); noMarkup(m.reasoning_content, 'reasoning_content');
  });

  await checks.run('chat: non-streamed, thinking off: no reasoning', async () => {
    const r = await client.chat.completions.create({ model, messages: user, thinking: { type: 'disabled' }, x_forced_completion: forced.plain });
    schemaOk(validateResponse, r, 'chat.completion');
    eq(r.choices[0].message.reasoning_content, null, 'reasoning_content');
    eq(r.choices[0].message.content, 'Alpha beta gamma delta.', 'content');
    eq(r.usage.completion_tokens_details.reasoning_tokens, 0, 'reasoning_tokens');
  });

  await checks.run('chat: reasoning_effort none disables thinking', async () => {
    const r = await client.chat.completions.create({ model, messages: user, reasoning_effort: 'none', x_forced_completion: forced.plain });
    eq(r.choices[0].message.content, 'Alpha beta gamma delta.', 'content');
    eq(r.choices[0].message.reasoning_content, null, 'reasoning_content');
  });

  await checks.run('chat: streamed with include_usage: chunks schema-valid, usage chunk, [DONE]', async () => {
    const stream = await client.chat.completions.create({
      model, messages: user, stream: true, stream_options: { include_usage: true }, x_forced_completion: forced.thinking,
    });
    let reasoning = '', content = '', finish = null, usage = null, created = null, chunks = 0;
    for await (const chunk of stream) {
      chunks++;
      schemaOk(validateChunk, chunk, 'chat.completion.chunk');
      created ??= chunk.created;
      eq(chunk.created, created, 'same created on every chunk');
      if (chunk.choices.length === 0) { usage = chunk.usage; continue; }
      assert(chunk.usage === null, 'usage null on choice chunks');
      const d = chunk.choices[0].delta;
      reasoning += d.reasoning_content ?? '';
      content += d.content ?? '';
      finish = chunk.choices[0].finish_reason ?? finish;
    }
    eq(reasoning, 'Reasoning about it.', 'streamed reasoning');
    eq(content, 'Alpha beta gamma delta.', 'streamed content');
    eq(finish, 'stop', 'finish_reason');
    assert(usage && usage.completion_tokens > 0 && usage.prompt_tokens > 0, 'usage chunk');
    assert(chunks >= 4, 'several chunks');
    noMarkup(content, 'streamed content'); noMarkup(reasoning, 'streamed reasoning');
  });

  await checks.run('chat: stop string cuts the answer (finish stop)', async () => {
    const r = await client.chat.completions.create({ model, messages: user, stop: ['STOP'], x_forced_completion: forced.stopThinking });
    eq(r.choices[0].message.content, 'Alpha beta ', 'content before the stop');
    eq(r.choices[0].finish_reason, 'stop', 'finish_reason');
  });

  await checks.run('chat: max_tokens -> finish_reason length (non-streamed and streamed)', async () => {
    const r = await client.chat.completions.create({ model, messages: user, max_tokens: 5, x_forced_completion: forced.long });
    eq(r.choices[0].finish_reason, 'length', 'finish_reason');
    eq(r.usage.completion_tokens, 5, 'completion_tokens');
    const s = await client.chat.completions.create({ model, messages: user, max_completion_tokens: 4, stream: true, x_forced_completion: forced.long });
    let finish = null;
    for await (const c of s) if (c.choices[0]?.finish_reason) finish = c.choices[0].finish_reason;
    eq(finish, 'length', 'streamed finish_reason');
  });

  await checks.run('chat: unforced generation works (any text, shapes only)', async () => {
    const r = await client.chat.completions.create({ model, messages: user, max_tokens: 8, seed: 7, temperature: 0 });
    schemaOk(validateResponse, r, 'chat.completion');
    assert(['stop', 'length'].includes(r.choices[0].finish_reason), 'finish_reason');
    noMarkup(r.choices[0].message.content, 'content');
  });

  await checks.run('chat: logprobs with top_logprobs', async () => {
    const r = await client.chat.completions.create({
      model, messages: user, thinking: { type: 'disabled' }, logprobs: true, top_logprobs: 2, x_forced_completion: forced.plain,
    });
    schemaOk(validateResponse, r, 'chat.completion');
    const lp = r.choices[0].logprobs.content;
    assert(lp.length > 0, 'logprobs.content');
    eq(lp.map((t) => t.token).join(''), 'Alpha beta gamma delta.', 'tokens spell the content');
    assert(lp.every((t) => t.top_logprobs.length === 2 && t.logprob <= 0), 'top_logprobs');
  });

  if (server.upstream) {
    await checks.run('chat: n=2 on a model served upstream: 422 naming n', async () => {
      const err = await client.chat.completions.create({ model, messages: user, n: 2 }).then(() => null, (e) => e);
      assert(err && err.status === 422, `status ${err && err.status}`);
      assert(/'n'/.test(err.message), `message names n: ${err.message}`);
    });
  } else await checks.run('chat: n=2 gives two indexed choices, streamed and not', async () => {
    const base = { model, messages: user, thinking: { type: 'disabled' }, x_forced_completion: forced.plain };
    const one = await client.chat.completions.create(base);
    const r = await client.chat.completions.create({ ...base, n: 2, seed: 3 });
    schemaOk(validateResponse, r, 'chat.completion');
    eq(r.choices.map((c) => c.index), [0, 1], 'indices');
    for (const c of r.choices) {
      eq(c.message.content, 'Alpha beta gamma delta.', `choice ${c.index} content`);
      eq(c.finish_reason, 'stop', `choice ${c.index} finish_reason`);
    }
    eq(r.usage.prompt_tokens, one.usage.prompt_tokens, 'the prompt counts once');
    eq(r.usage.completion_tokens, 2 * one.usage.completion_tokens, 'completion tokens summed');
    const stream = await client.chat.completions.create({ ...base, n: 2, stream: true, stream_options: { include_usage: true } });
    const content = ['', ''], finish = [null, null];
    let usages = 0;
    for await (const chunk of stream) {
      schemaOk(validateChunk, chunk, 'chat.completion.chunk');
      if (chunk.choices.length === 0) { usages++; eq(chunk.usage.completion_tokens, r.usage.completion_tokens, 'streamed usage'); continue; }
      eq(chunk.choices.length, 1, 'one choice per chunk');
      const c = chunk.choices[0];
      content[c.index] += c.delta.content ?? '';
      finish[c.index] = c.finish_reason ?? finish[c.index];
    }
    eq(content, ['Alpha beta gamma delta.', 'Alpha beta gamma delta.'], 'streamed contents by index');
    eq(finish, ['stop', 'stop'], 'streamed finish reasons');
    eq(usages, 1, 'one usage chunk');
  });

  const tools = [{ type: 'function', function: { name: 'get_weather', description: 'Weather for a city', parameters: weatherParams } }];
  let toolTurn = null;
  await checks.run('chat: tool call (forced tokens) -> tool_calls, finish tool_calls', async () => {
    const r = await client.chat.completions.create({ model, messages: [{ role: 'user', content: 'Weather in Paris?' }], tools, x_forced_completion: forced.tool });
    schemaOk(validateResponse, r, 'chat.completion');
    const m = r.choices[0].message;
    eq(r.choices[0].finish_reason, 'tool_calls', 'finish_reason');
    eq(m.tool_calls.length, 1, 'one call');
    eq(m.tool_calls[0].function.name, 'get_weather', 'name');
    eq(JSON.parse(m.tool_calls[0].function.arguments), { city: 'Paris', days: 3 }, 'arguments');
    eq(m.reasoning_content, 'I will call the tool.', 'reasoning_content');
    noMarkup(m.content, 'content');
    toolTurn = m;
  });

  await checks.run('chat: streamed tool call -> delta.tool_calls with index', async () => {
    const s = await client.chat.completions.create({ model, messages: [{ role: 'user', content: 'Weather in Paris?' }], tools, stream: true, x_forced_completion: forced.tool });
    const calls = [];
    let finish = null, content = '';
    for await (const c of s) {
      schemaOk(validateChunk, c, 'chat.completion.chunk');
      const d = c.choices[0]?.delta;
      for (const tc of d?.tool_calls ?? []) calls.push(tc);
      content += d?.content ?? '';
      finish = c.choices[0]?.finish_reason ?? finish;
    }
    eq(finish, 'tool_calls', 'finish_reason');
    eq(calls.length, 1, 'one tool-call delta');
    eq(calls[0].index, 0, 'index');
    eq(calls[0].function.name, 'get_weather', 'name');
    noMarkup(content, 'streamed content');
  });

  await checks.run('chat: tool result turn (reasoning_content sent back) -> 200; without it -> 400', async () => {
    const history = [
      { role: 'user', content: 'Weather in Paris?' },
      { role: 'assistant', content: toolTurn.content ?? '', reasoning_content: toolTurn.reasoning_content, tool_calls: toolTurn.tool_calls },
      { role: 'tool', tool_call_id: toolTurn.tool_calls[0].id, content: 'sunny, 24 C' },
    ];
    const r = await client.chat.completions.create({ model, messages: history, tools, x_forced_completion: forced.thinking });
    eq(r.choices[0].message.content, 'Alpha beta gamma delta.', 'content');
    const { reasoning_content, ...stripped } = history[1];
    try {
      await client.chat.completions.create({ model, messages: [history[0], stripped, history[2]], tools });
      throw new Error('expected 400');
    } catch (e) {
      assert(e instanceof OpenAI.BadRequestError, `BadRequestError, got ${e}`);
      eq(e.param, 'messages[1].reasoning_content', 'param');
    }
  });

  await checks.run('chat: json_object response_format accepted', async () => {
    const r = await client.chat.completions.create({ model, messages: user, response_format: { type: 'json_object' }, x_forced_completion: 'x</think>{"a": 1}' + '<｜end▁of▁sentence｜>' });
    eq(JSON.parse(r.choices[0].message.content), { a: 1 }, 'content');
  });

  await checks.run('chat: errors 401 / 400 / 422 / 404 as SDK exceptions', async () => {
    const bad = new OpenAI({ baseURL: server.url + '/v1', apiKey: 'sk-wrong', maxRetries: 0 });
    try { await bad.chat.completions.create({ model, messages: user }); throw new Error('expected 401'); }
    catch (e) { assert(e instanceof OpenAI.AuthenticationError, `AuthenticationError, got ${e}`); eq(e.status, 401, 'status'); }
    try { await client.chat.completions.create({ model, messages: user, temperature: 5 }); throw new Error('expected 422'); }
    catch (e) { assert(e instanceof OpenAI.UnprocessableEntityError, `UnprocessableEntityError, got ${e}`); eq(e.param, 'temperature', 'param'); eq(e.type, 'invalid_request_error', 'type'); }
    try { await client.chat.completions.create({ model, messages: 'hello' }); throw new Error('expected 400'); }
    catch (e) { assert(e instanceof OpenAI.BadRequestError, `BadRequestError, got ${e}`); eq(e.param, 'messages', 'param'); }
    try { await client.chat.completions.create({ model: 'gpt-5', messages: user }); throw new Error('expected 404'); }
    catch (e) { assert(e instanceof OpenAI.NotFoundError, `NotFoundError, got ${e}`); eq(e.param, 'model', 'param'); }
  });
}
