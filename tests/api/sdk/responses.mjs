// OpenAI Responses through the official `openai` SDK.
import OpenAI from 'openai';
import { assert, eq, noMarkup, schemaOk, openaiValidator, forced, weatherParams } from './harness.mjs';

export async function responsesChecks(checks, server) {
  const client = new OpenAI({ baseURL: server.url + '/v1', apiKey: server.apiKey, maxRetries: 0, fetch: server.fetch });
  const validateResponse = openaiValidator('Response');
  const validateEvent = openaiValidator('ResponseStreamEvent');
  const model = 'deepseek-v4-flash';

  await checks.run('responses: non-streamed: reasoning item + message, output_text, schema-valid', async () => {
    const r = await client.responses.create({ model, input: 'Say hello.', instructions: 'Be brief.', x_forced_completion: forced.thinking });
    schemaOk(validateResponse, r, 'response');
    eq(r.status, 'completed', 'status');
    eq(r.output.map((o) => o.type), ['reasoning', 'message'], 'output items');
    eq(r.output[0].content[0].text, 'Reasoning about it.', 'reasoning text');
    eq(r.output_text, 'Alpha beta gamma delta.', 'output_text');
    eq(r.instructions, 'Be brief.', 'instructions echoed');
    assert(r.usage.input_tokens > 0 && r.usage.output_tokens > 0, 'usage');
    assert(r.usage.output_tokens_details.reasoning_tokens > 0, 'reasoning_tokens');
    eq(typeof r.usage.input_tokens_details.cached_tokens, 'number', 'cached_tokens');
    noMarkup(r.output_text, 'output_text');
  });

  await checks.run('responses: reasoning.effort none -> no reasoning item', async () => {
    const r = await client.responses.create({ model, input: 'Say hello.', reasoning: { effort: 'none' }, x_forced_completion: forced.plain });
    schemaOk(validateResponse, r, 'response');
    eq(r.output.map((o) => o.type), ['message'], 'output items');
    eq(r.output_text, 'Alpha beta gamma delta.', 'output_text');
  });

  await checks.run('responses: streamed: typed events, sequence numbers, schema-valid, final response', async () => {
    const stream = await client.responses.create({ model, input: 'Say hello.', stream: true, x_forced_completion: forced.thinking });
    let seq = -1, text = '', reasoning = '', last = null;
    const types = new Set();
    for await (const ev of stream) {
      schemaOk(validateEvent, ev, `event ${ev.type}`);
      eq(ev.sequence_number, seq + 1, 'sequence_number increments');
      seq = ev.sequence_number;
      types.add(ev.type);
      if (ev.type === 'response.output_text.delta') text += ev.delta;
      if (ev.type === 'response.reasoning_text.delta') reasoning += ev.delta;
      last = ev;
    }
    eq(text, 'Alpha beta gamma delta.', 'streamed text');
    eq(reasoning, 'Reasoning about it.', 'streamed reasoning');
    eq(last.type, 'response.completed', 'last event');
    eq(last.response.output_text ?? last.response.output.at(-1).content[0].text, 'Alpha beta gamma delta.', 'final text');
    for (const t of ['response.created', 'response.in_progress', 'response.output_item.added', 'response.content_part.added',
      'response.output_text.done', 'response.output_item.done']) assert(types.has(t), `event ${t}`);
  });

  await checks.run('responses: SDK stream helper accumulates the final response', async () => {
    const stream = client.responses.stream({ model, input: 'Say hello.', x_forced_completion: forced.thinking });
    const final = await stream.finalResponse();
    const message = final.output.find((o) => o.type === 'message');
    eq(final.output_text ?? message.content[0].text, 'Alpha beta gamma delta.', 'finalResponse() text');
  });

  await checks.run('responses: max_output_tokens -> status incomplete (max_output_tokens)', async () => {
    const r = await client.responses.create({ model, input: 'Count.', max_output_tokens: 5, x_forced_completion: forced.long });
    schemaOk(validateResponse, r, 'response');
    eq(r.status, 'incomplete', 'status');
    eq(r.incomplete_details.reason, 'max_output_tokens', 'reason');
    eq(r.usage.output_tokens, 5, 'output_tokens');
  });

  const tools = [{ type: 'function', name: 'get_weather', description: 'Weather for a city', parameters: weatherParams, strict: false }];
  await checks.run('responses: function call (forced) then function_call_output turn', async () => {
    const r = await client.responses.create({ model, input: 'Weather in Paris?', tools, x_forced_completion: forced.tool });
    schemaOk(validateResponse, r, 'response');
    const call = r.output.find((o) => o.type === 'function_call');
    assert(call, 'function_call item');
    eq(call.name, 'get_weather', 'name');
    eq(JSON.parse(call.arguments), { city: 'Paris', days: 3 }, 'arguments');
    const follow = await client.responses.create({
      model, tools, x_forced_completion: forced.thinking,
      input: [{ role: 'user', content: 'Weather in Paris?' }, ...r.output, { type: 'function_call_output', call_id: call.call_id, output: 'sunny' }],
    });
    eq(follow.output_text, 'Alpha beta gamma delta.', 'follow-up answer');
  });

  await checks.run('responses: streamed function call events', async () => {
    const stream = await client.responses.create({ model, input: 'Weather in Paris?', tools, stream: true, x_forced_completion: forced.tool });
    let args = '', done = null;
    for await (const ev of stream) {
      schemaOk(validateEvent, ev, `event ${ev.type}`);
      if (ev.type === 'response.function_call_arguments.delta') args += ev.delta;
      if (ev.type === 'response.completed') done = ev.response;
    }
    eq(JSON.parse(args), { city: 'Paris', days: 3 }, 'streamed arguments');
    assert(done.output.some((o) => o.type === 'function_call'), 'final response has the call');
  });

  await checks.run('responses: errors 401 / 422 / 404', async () => {
    const bad = new OpenAI({ baseURL: server.url + '/v1', apiKey: 'sk-wrong', maxRetries: 0 });
    try { await bad.responses.create({ model, input: 'x' }); throw new Error('expected 401'); }
    catch (e) { assert(e instanceof OpenAI.AuthenticationError, `AuthenticationError, got ${e}`); }
    try { await client.responses.create({ model, input: 'x', top_p: 3 }); throw new Error('expected 422'); }
    catch (e) { assert(e instanceof OpenAI.UnprocessableEntityError, `UnprocessableEntityError, got ${e}`); eq(e.param, 'top_p', 'param'); }
    try { await client.responses.create({ model, input: 'x', previous_response_id: 'resp_x' }); throw new Error('expected 404'); }
    catch (e) { assert(e instanceof OpenAI.NotFoundError, `NotFoundError, got ${e}`); eq(e.param, 'previous_response_id', 'param'); }
    try { await client.responses.create({ model: 'o3', input: 'x' }); throw new Error('expected 404'); }
    catch (e) { assert(e instanceof OpenAI.NotFoundError, `NotFoundError, got ${e}`); }
  });
}
