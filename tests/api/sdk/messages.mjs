// Anthropic Messages through the official `@anthropic-ai/sdk`.
import Anthropic from '@anthropic-ai/sdk';
import { assert, eq, noMarkup, forced, weatherParams } from './harness.mjs';

export async function messagesChecks(checks, server) {
  const client = new Anthropic({ baseURL: server.url, apiKey: server.apiKey, maxRetries: 0, fetch: server.fetch });
  const model = 'deepseek-v4-flash';
  const messages = [{ role: 'user', content: 'Say hello.' }];

  await checks.run('messages: non-streamed, thinking on: thinking + text blocks, usage', async () => {
    const m = await client.messages.create({ model, max_tokens: 256, messages, x_forced_completion: forced.thinking });
    eq(m.type, 'message', 'type');
    eq(m.content.map((b) => b.type), ['thinking', 'text'], 'blocks');
    eq(m.content[0].thinking, 'Reasoning about it.', 'thinking');
    assert(typeof m.content[0].signature === 'string', 'signature');
    eq(m.content[1].text, 'Alpha beta gamma delta.', 'text');
    eq(m.stop_reason, 'end_turn', 'stop_reason');
    assert(m.usage.input_tokens > 0 && m.usage.output_tokens > 0, 'usage');
    eq(typeof m.usage.cache_read_input_tokens, 'number', 'cache_read_input_tokens');
    noMarkup(m.content[1].text, 'text');
  });

  await checks.run('messages: thinking disabled -> text only', async () => {
    const m = await client.messages.create({ model, max_tokens: 256, messages, thinking: { type: 'disabled' }, x_forced_completion: forced.plain });
    eq(m.content.map((b) => b.type), ['text'], 'blocks');
    eq(m.content[0].text, 'Alpha beta gamma delta.', 'text');
  });

  await checks.run('messages: streamed: events in order, SDK finalMessage', async () => {
    const stream = client.messages.stream({ model, max_tokens: 256, messages, x_forced_completion: forced.thinking });
    const names = [];
    let text = '', thinking = '';
    stream.on('streamEvent', (e) => names.push(e.type));
    stream.on('text', (t) => (text += t));
    stream.on('thinking', (t) => (thinking += t));
    const final = await stream.finalMessage();
    eq(text, 'Alpha beta gamma delta.', 'streamed text');
    eq(thinking, 'Reasoning about it.', 'streamed thinking');
    eq(final.content.map((b) => b.type), ['thinking', 'text'], 'final blocks');
    eq(final.stop_reason, 'end_turn', 'stop_reason');
    eq(names[0], 'message_start', 'first event');
    eq(names.at(-1), 'message_stop', 'last event');
    assert(names.includes('message_delta') && names.includes('content_block_start') && names.includes('content_block_stop'), 'block events');
    assert(final.usage.output_tokens > 0, 'usage from message_delta');
    noMarkup(text, 'text');
  });

  await checks.run('messages: raw stream has ping and a signature before the thinking block stops', async () => {
    const stream = await client.messages.create({ model, max_tokens: 256, messages, stream: true, x_forced_completion: forced.thinking });
    const seen = [];
    for await (const e of stream) seen.push(e.type === 'content_block_delta' ? e.delta.type : e.type);
    const sig = seen.indexOf('signature_delta');
    assert(sig > 0, 'signature_delta present');
    eq(seen[sig + 1], 'content_block_stop', 'stop right after the signature');
  });

  await checks.run('messages: stop_sequences -> stop_reason stop_sequence', async () => {
    const m = await client.messages.create({ model, max_tokens: 256, messages, stop_sequences: ['STOP'], x_forced_completion: forced.stopThinking });
    eq(m.stop_reason, 'stop_sequence', 'stop_reason');
    eq(m.stop_sequence, 'STOP', 'stop_sequence');
    eq(m.content.at(-1).text, 'Alpha beta ', 'text before the stop');
  });

  await checks.run('messages: max_tokens -> stop_reason max_tokens', async () => {
    const m = await client.messages.create({ model, max_tokens: 5, messages, x_forced_completion: forced.long });
    eq(m.stop_reason, 'max_tokens', 'stop_reason');
    eq(m.usage.output_tokens, 5, 'output_tokens');
  });

  const tools = [{ name: 'get_weather', description: 'Weather for a city', input_schema: weatherParams }];
  await checks.run('messages: tool_use (forced), then tool_result turn', async () => {
    const m = await client.messages.create({ model, max_tokens: 256, tools, messages: [{ role: 'user', content: 'Weather in Paris?' }], x_forced_completion: forced.tool });
    eq(m.stop_reason, 'tool_use', 'stop_reason');
    const use = m.content.find((b) => b.type === 'tool_use');
    assert(use && use.id.startsWith('toolu_'), 'tool_use block');
    eq(use.input, { city: 'Paris', days: 3 }, 'input');
    const follow = await client.messages.create({
      model, max_tokens: 256, tools, x_forced_completion: forced.thinking,
      messages: [{ role: 'user', content: 'Weather in Paris?' }, { role: 'assistant', content: m.content },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: use.id, content: 'sunny' }] }],
    });
    eq(follow.content.at(-1).text, 'Alpha beta gamma delta.', 'follow-up text');
  });

  await checks.run('messages: streamed tool_use: input_json_delta assembled by the SDK', async () => {
    const stream = client.messages.stream({ model, max_tokens: 256, tools, messages: [{ role: 'user', content: 'Weather in Paris?' }], x_forced_completion: forced.tool });
    const final = await stream.finalMessage();
    const use = final.content.find((b) => b.type === 'tool_use');
    eq(use.input, { city: 'Paris', days: 3 }, 'input');
    eq(final.stop_reason, 'tool_use', 'stop_reason');
  });

  await checks.run('messages: count_tokens', async () => {
    const r = await client.messages.countTokens({ model, messages });
    assert(Number.isInteger(r.input_tokens) && r.input_tokens > 0, 'input_tokens');
    const m = await client.messages.create({ model, max_tokens: 8, messages });
    eq(r.input_tokens, m.usage.input_tokens + m.usage.cache_read_input_tokens, 'same count as the request');
  });

  await checks.run('messages: errors 401 / 400 / 404 as SDK exceptions', async () => {
    const bad = new Anthropic({ baseURL: server.url, apiKey: 'sk-wrong', maxRetries: 0 });
    try { await bad.messages.create({ model, max_tokens: 5, messages }); throw new Error('expected 401'); }
    catch (e) { assert(e instanceof Anthropic.AuthenticationError, `AuthenticationError, got ${e}`); eq(e.error?.error?.type, 'authentication_error', 'type'); }
    try { await client.messages.create({ model, max_tokens: 0, messages }); throw new Error('expected 400'); }
    catch (e) { assert(e instanceof Anthropic.BadRequestError, `BadRequestError, got ${e}`); eq(e.error?.error?.type, 'invalid_request_error', 'type'); }
    try { await client.messages.create({ model: 'gpt-4o', max_tokens: 5, messages }); throw new Error('expected 404'); }
    catch (e) { assert(e instanceof Anthropic.NotFoundError, `NotFoundError, got ${e}`); }
  });
}
