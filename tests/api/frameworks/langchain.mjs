// LangChain.js (@langchain/openai ChatOpenAI on Chat Completions and, with useResponsesApi, on
// Responses; @langchain/anthropic ChatAnthropic) against v4flash: a streamed tool loop on the
// scripted engine, withStructuredOutput on the real one.
import { ChatOpenAI } from '@langchain/openai';
import { ChatAnthropic } from '@langchain/anthropic';
import { HumanMessage } from '@langchain/core/messages';
import { tool } from '@langchain/core/tools';
import { assert, eq } from '../sdk/harness.mjs';
import { recordingFetch, explained } from './wire.mjs';
import { MODEL, session, weatherDescription, weatherSchema, ANSWER_1, ANSWER_2, forecastSchema, flagsSchema,
         FORECAST_PROMPT } from './session.mjs';

const openai = (srv, fetch, more) => new ChatOpenAI({ model: MODEL, apiKey: srv.apiKey, maxRetries: 0,
                                                       configuration: { baseURL: srv.url + '/v1', fetch }, ...more });
const anthropic = (srv, fetch, more) => new ChatAnthropic({ model: MODEL, apiKey: srv.apiKey, maxRetries: 0,
                                                             anthropicApiUrl: srv.url, clientOptions: { fetch }, ...more });

// ChatOpenAI sends reasoning options only for OpenAI's reasoning models (by name): modelKwargs
// carries ours. name -> {model(server, fetch), thinking (the requests' mode), shows (whether the
// class surfaces reasoning)}
export const providers = {
  // ChatOpenAI shows a Chat reasoning_content (additional_kwargs) but never sends it back, which a
  // tool-call turn in thinking mode needs (400 naming messages[i].reasoning_content): thinking off.
  chat: {
    model: (srv, fetch) => openai(srv, fetch, { streaming: true, modelKwargs: { reasoning_effort: 'none' } }),
    thinking: false, shows: false,
  },
  // Without zdrEnabled it sends each turn's output items back whole (reasoning with its sealed
  // encrypted_content, ids included; no store, no previous_response_id). With it (store: false) it
  // would send no reasoning: streamed, it reads reasoning items only from output_item.added, which
  // carries no encrypted_content yet.
  responses: {
    model: (srv, fetch) => openai(srv, fetch, { streaming: true, useResponsesApi: true,
      modelKwargs: { reasoning: { summary: 'auto' }, include: ['reasoning.encrypted_content'] } }),
    thinking: true, shows: true,
  },
  // (ChatAnthropic takes its input usage from message_start alone, the output from both ends.)
  anthropic: {
    model: (srv, fetch) => anthropic(srv, fetch, { streaming: true, maxTokens: 2048,
                                                   thinking: { type: 'enabled', budget_tokens: 1024 } }),
    thinking: true, shows: true,
  },
};

function reasoningOf(message) {
  return (message.contentBlocks ?? []).filter((b) => b.type === 'reasoning').map((b) => b.reasoning).join('');
}

// One turn of the agent loop: stream the model's answer, run its tool calls, send the results
// back, until it answers without a call. Returns the turn's messages (AIMessageChunks, ToolMessages).
async function runTurn(model, weather, messages) {
  const bound = model.bindTools([weather]);
  const out = [];
  for (let step = 0; step < 4; step++) {
    let full;
    for await (const chunk of await bound.stream([...messages, ...out])) full = full ? full.concat(chunk) : chunk;
    out.push(full);
    if (!full.tool_calls?.length) return out;
    for (const call of full.tool_calls) out.push(await weather.invoke(call));
  }
  throw new Error('no answer after 4 steps');
}

// Each model call's usage_metadata is the server's usage for that request.
function checkUsage(aiMessages, calls, what) {
  eq(aiMessages.length, calls.length, `${what}: model calls vs requests`);
  aiMessages.forEach((m, i) => {
    const server = calls[i].usage;
    assert(server, `${what}: request ${i} carried no usage`);
    const u = m.usage_metadata;
    assert(u, `${what}: step ${i} has no usage_metadata`);
    eq([u.input_tokens, u.output_tokens], [server.input, server.output], `${what} step ${i}: input/output tokens`);
    eq(u.input_token_details?.cache_read ?? 0, server.cached, `${what} step ${i}: cached input tokens`);
    if (server.reasoning !== null)
      eq(u.output_token_details?.reasoning ?? 0, server.reasoning, `${what} step ${i}: reasoning tokens`);
  });
}

// (a) The streamed two-turn session (session.mjs) through bindTools and the tool's invoke.
export async function toolLoop(srv, name) {
  const p = providers[name];
  const rec = recordingFetch();
  const model = p.model(srv, rec.fetch);
  const s = session(p.thinking);
  const weather = s.weather();
  const weatherTool = tool(async (args) => JSON.stringify(await weather.run(args)),
                           { name: 'get_weather', description: weatherDescription, schema: weatherSchema });
  return explained(rec, async () => {
    const messages = [new HumanMessage(s.user1)];
    const one = await runTurn(model, weatherTool, messages);
    await rec.settled();
    const ai1 = one.filter((m) => m.getType() === 'ai');
    eq(weather.calls, [{ city: 'Paris', days: 3 }], 'the tool ran once with the call\'s arguments');
    eq(ai1[0].tool_calls.map((c) => [c.name, c.args]), [['get_weather', { city: 'Paris', days: 3 }]], 'the tool calls');
    eq(ai1.at(-1).text, ANSWER_1, 'the answer after the tool result');
    eq(ai1.map(reasoningOf).join(''), p.shows ? s.reasoning[0] + s.reasoning[1] : '', 'the reasoning shown');
    checkUsage(ai1, rec.calls, 'turn 1');
    const turnOne = rec.calls.length;

    messages.push(...one, new HumanMessage(s.user2));
    const two = await runTurn(model, weatherTool, messages);
    await rec.settled();
    eq(two.length, 1, 'the second turn calls no tool');
    eq(two[0].text, ANSWER_2, 'the second turn\'s answer');
    eq(reasoningOf(two[0]), p.shows ? s.reasoning[2] : '', 'the second turn\'s reasoning');
    checkUsage(two, rec.calls.slice(turnOne), 'turn 2');
    for (const c of rec.calls) assert(c.streamed, `${c.url} was not streamed`);
    return rec.calls;
  });
}

export const extraChecks = {
  // What thinking off above leaves unshown: ChatOpenAI does read a streamed reasoning_content.
  'chat: reasoning_content shown in additional_kwargs (thinking on, no tools)': async (srv) => {
    const rec = recordingFetch();
    const s = session(true);
    await explained(rec, async () => {
      let full;
      for await (const chunk of await openai(srv, rec.fetch, { streaming: true }).stream([new HumanMessage(s.user2)]))
        full = full ? full.concat(chunk) : chunk;
      eq([full.additional_kwargs.reasoning_content, full.text], [s.reasoning[2], ANSWER_2], 'reasoning and answer');
    });
  },
};

// (b) withStructuredOutput on the real engine, by each method the classes offer; the framework
// must parse and validate what comes back. Thinking off (random weights would reason for half the
// output cap first).
const plain = {
  chat: (srv, fetch) => openai(srv, fetch, { maxTokens: 1024, modelKwargs: { reasoning_effort: 'none' } }),
  responses: (srv, fetch) => openai(srv, fetch, { maxTokens: 1024, useResponsesApi: true,
                                                  modelKwargs: { reasoning: { effort: 'none' } } }),
  anthropic: (srv, fetch) => anthropic(srv, fetch, { maxTokens: 1024, thinking: { type: 'disabled' } }),
};
export const structuredCases = {
  'chat jsonSchema': ['chat', { method: 'jsonSchema' }, forecastSchema],
  'chat functionCalling strict': ['chat', { method: 'functionCalling', strict: true }, forecastSchema],
  'responses jsonSchema': ['responses', { method: 'jsonSchema' }, forecastSchema],
  'anthropic functionCalling': ['anthropic', { method: 'functionCalling' }, forecastSchema],
  'anthropic jsonSchema': ['anthropic', { method: 'jsonSchema' }, flagsSchema],
};

export async function structured(srv, name) {
  const [provider, config, schema] = structuredCases[name];
  const rec = recordingFetch();
  const model = plain[provider](srv, rec.fetch).withStructuredOutput(schema, { name: 'forecast', ...config });
  const object = await explained(rec, () => model.invoke(FORECAST_PROMPT));
  await rec.settled();
  assert(schema.safeParse(object).success, `the object fits the schema: ${JSON.stringify(object)}`);
  return { object, calls: rec.calls };
}
