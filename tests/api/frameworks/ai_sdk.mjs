// The Vercel AI SDK (`ai` with @ai-sdk/openai `.chat()` / `.responses()`, @ai-sdk/openai-compatible
// and @ai-sdk/anthropic) against v4flash: a streamed tool loop on the scripted engine, structured
// output on the real one.
import { streamText, generateObject, streamObject, generateText, Output, tool, stepCountIs } from 'ai';
import { createOpenAI } from '@ai-sdk/openai';
import { createOpenAICompatible } from '@ai-sdk/openai-compatible';
import { createAnthropic } from '@ai-sdk/anthropic';
import { assert, eq } from '../sdk/harness.mjs';
import { recordingFetch, explained } from './wire.mjs';
import { MODEL, session, weatherDescription, weatherSchema, ANSWER_1, ANSWER_2, forecastSchema, FORECAST_PROMPT } from './session.mjs';

// name -> {model(server, fetch), options (providerOptions), thinking (the requests' mode), shows
// (whether the provider surfaces reasoning)}
export const providers = {
  // OpenAI's provider neither shows a Chat reasoning_content nor sends it back, and a tool-call
  // turn in thinking mode needs it back (400 naming messages[i].reasoning_content): thinking off.
  chat: {
    model: (srv, fetch) => createOpenAI({ baseURL: srv.url + '/v1', apiKey: srv.apiKey, fetch }).chat(MODEL),
    options: { openai: { reasoningEffort: 'none' } }, thinking: false, shows: false,
  },
  // The generic provider (opencode's) reads reasoning_content and sends it back: thinking on.
  'openai-compatible': {
    model: (srv, fetch) => createOpenAICompatible({ name: 'v4flash', baseURL: srv.url + '/v1', apiKey: srv.apiKey,
                                                    fetch, includeUsage: true, supportsStructuredOutputs: true })(MODEL),
    options: {}, thinking: true, shows: true,
  },
  // store on (its default): it sends earlier reasoning and answers back as item_reference, which the
  // server resolves from its stored responses (the loop checks they were sent so).
  // forceReasoning: the provider knows only OpenAI's reasoning models by name; without it, it sends
  // no reasoning options and drops reasoning parts. It shows reasoning only from summaries.
  responses: {
    model: (srv, fetch) => createOpenAI({ baseURL: srv.url + '/v1', apiKey: srv.apiKey, fetch }).responses(MODEL),
    options: { openai: { forceReasoning: true, reasoningSummary: 'auto' } }, thinking: true, shows: true,
    references: true,
  },
  anthropic: {
    model: (srv, fetch) => createAnthropic({ baseURL: srv.url + '/v1', apiKey: srv.apiKey, fetch })(MODEL),
    options: { anthropic: { thinking: { type: 'enabled', budgetTokens: 1024 } } }, thinking: true, shows: true,
  },
};

// One streamed turn, every part of the full stream read; returns what the framework surfaced.
async function streamTurn(model, options, messages, tools) {
  // (onError: errors come as 'error' parts, thrown below; by default it would also print them)
  const result = streamText({ model, messages, tools, stopWhen: stepCountIs(4), providerOptions: options,
                              maxOutputTokens: 2048, onError: () => {} });
  const seen = { text: '', reasoning: '', toolCalls: [], toolResults: [] };
  for await (const part of result.fullStream) {
    if (part.type === 'text-delta') seen.text += part.text;
    else if (part.type === 'reasoning-delta') seen.reasoning += part.text;
    else if (part.type === 'tool-call') seen.toolCalls.push(part);
    else if (part.type === 'tool-result') seen.toolResults.push(part);
    else if (part.type === 'error') throw part.error;
  }
  seen.steps = await result.steps;
  seen.totalUsage = await result.totalUsage;
  seen.messages = (await result.response).messages;
  return seen;
}

// The framework's usage of each step is the server's for that request, and the turn's total their sum.
function checkUsage(seen, calls, what) {
  eq(seen.steps.length, calls.length, `${what}: steps vs requests`);
  const sum = { input: 0, output: 0 };
  seen.steps.forEach((step, i) => {
    const server = calls[i].usage;
    assert(server, `${what}: request ${i} carried no usage`);
    const u = step.usage;
    eq([u.inputTokens, u.outputTokens], [server.input, server.output], `${what} step ${i}: input/output tokens`);
    eq(u.inputTokenDetails?.cacheReadTokens ?? 0, server.cached, `${what} step ${i}: cached input tokens`);
    if (calls[i].dialect !== 'anthropic')  // (Anthropic reports no reasoning count without a beta)
      eq(u.outputTokenDetails?.reasoningTokens ?? 0, server.reasoning, `${what} step ${i}: reasoning tokens`);
    sum.input += server.input;
    sum.output += server.output;
  });
  eq([seen.totalUsage.inputTokens, seen.totalUsage.outputTokens], [sum.input, sum.output], `${what}: total usage`);
}

// (a) The streamed two-turn session (session.mjs) through streamText's tool loop.
export async function toolLoop(srv, name) {
  const p = providers[name];
  const rec = recordingFetch();
  const model = p.model(srv, rec.fetch);
  const s = session(p.thinking);
  const weather = s.weather();
  const tools = { get_weather: tool({ description: weatherDescription, inputSchema: weatherSchema, execute: weather.run }) };
  return explained(rec, async () => {
    const messages = [{ role: 'user', content: s.user1 }];
    const one = await streamTurn(model, p.options, messages, tools);
    await rec.settled();
    eq(weather.calls, [{ city: 'Paris', days: 3 }], 'the tool ran once with the call\'s arguments');
    eq(one.toolCalls.map((c) => [c.toolName, c.input]), [['get_weather', { city: 'Paris', days: 3 }]], 'tool-call parts');
    eq(one.toolResults.length, 1, 'tool-result parts');
    eq(one.text, ANSWER_1, 'the answer after the tool result');
    eq(one.reasoning, p.shows ? s.reasoning[0] + s.reasoning[1] : '', 'the reasoning shown');
    checkUsage(one, rec.calls, 'turn 1');
    const turnOne = rec.calls.length;

    messages.push(...one.messages, { role: 'user', content: s.user2 });
    const two = await streamTurn(model, p.options, messages, tools);
    await rec.settled();
    eq(two.text, ANSWER_2, 'the second turn\'s answer');
    eq(two.reasoning, p.shows ? s.reasoning[2] : '', 'the second turn\'s reasoning');
    checkUsage(two, rec.calls.slice(turnOne), 'turn 2');
    for (const c of rec.calls) assert(c.streamed, `${c.url} was not streamed`);
    if (p.references) {  // the last request carried the earlier reasoning and answer by reference
      const refs = rec.calls.at(-1).body.input.filter((i) => i.type === 'item_reference').map((i) => i.id);
      assert(refs.some((id) => id.startsWith('rs_')) && refs.some((id) => id.startsWith('msg_')),
             `reasoning and answer sent back as item_reference: ${JSON.stringify(refs)}`);
    }
    return rec.calls;
  });
}

export const extraChecks = {
  // Why the chat provider runs with thinking off: in thinking mode the loop's second request
  // (the call sent back without its reasoning_content) gets a 400 naming the field.
  'chat: thinking on, the call sent back without reasoning_content is refused naming it': async (srv) => {
    const rec = recordingFetch();
    const s = session(true);
    const tools = { get_weather: tool({ description: weatherDescription, inputSchema: weatherSchema, execute: s.weather().run }) };
    let error = null;
    try {
      await streamTurn(providers.chat.model(srv, rec.fetch), {}, [{ role: 'user', content: s.user1 }], tools);
    } catch (e) {
      error = e;
    }
    await rec.settled();
    assert(error, 'the loop failed');
    eq([error.statusCode, error.data?.error?.param], [400, 'messages[1].reasoning_content'], 'status and param');
    eq(rec.calls.map((c) => c.status), [200, 400], 'the first step served, the second refused');
  },
};

// (b) Structured output on the real engine: each provider's own way to ask for the schema; the
// framework must parse and validate what comes back. Thinking off (each provider's own switch):
// random weights would reason for half the output cap first.
const noThinking = {
  chat: { openai: { reasoningEffort: 'none' } },
  'openai-compatible': { v4flash: { reasoningEffort: 'none' } },
  responses: { openai: { forceReasoning: true, reasoningEffort: 'none' } },
  anthropic: { anthropic: { thinking: { type: 'disabled' } } },
};

const objectOf = async (r) => {
  for await (const _ of r.partialObjectStream);
  return r.object;
};
export const structuredCases = {
  'chat generateObject': ['chat', (o) => generateObject({ ...o, schema: forecastSchema }).then((r) => r.object)],
  'chat streamObject': ['chat', (o) => objectOf(streamObject({ ...o, schema: forecastSchema }))],
  'openai-compatible generateObject': ['openai-compatible', (o) => generateObject({ ...o, schema: forecastSchema }).then((r) => r.object)],
  'responses generateText Output.object': [
    'responses', (o) => generateText({ ...o, output: Output.object({ schema: forecastSchema }) }).then((r) => r.output)],
  'responses streamObject': ['responses', (o) => objectOf(streamObject({ ...o, schema: forecastSchema }))],
  // (a forced call of a tool named json: its arguments are the object)
  'anthropic generateObject': ['anthropic', (o) => generateObject({ ...o, schema: forecastSchema }).then((r) => r.object)],
};

export async function structured(srv, name) {
  const [provider, run] = structuredCases[name];
  const rec = recordingFetch();
  const model = providers[provider].model(srv, rec.fetch);
  const object = await explained(rec, () => run({ model, prompt: FORECAST_PROMPT, maxOutputTokens: 1024, maxRetries: 0,
                                                  providerOptions: noThinking[provider] }));
  await rec.settled();
  assert(forecastSchema.safeParse(object).success, `the object fits the schema: ${JSON.stringify(object)}`);
  return { object, calls: rec.calls };
}
