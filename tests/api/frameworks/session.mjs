// The scripted session every framework and provider runs on the scripted engine (script.h: the
// engine emits the text of the LAST script marker in the prompt):
//   turn 1: the user's message holds marker A, a get_weather call; the framework runs the tool,
//           whose result holds marker B (the answer), and sends call and result back: only that
//           request can be answered with B, so the answer proves the round trip;
//   turn 2: the user asks again with marker C (a plain answer) on top of the whole history, as
//           the framework renders it back (reasoning, tool call, tool result, answer).
import { z } from 'zod';
import { scriptMarker, EOS } from '../sdk/harness.mjs';

export const MODEL = 'deepseek-v4-flash';

export const REASONING = ['The user wants the weather, so I call the tool.', 'The tool says sunny.',
                          'Same forecast as before.'];
export const ANSWER_1 = 'Paris will be sunny for the next 3 days.';
export const ANSWER_2 = 'Rome is sunny too.';
export const weatherDescription = 'The weather forecast for a city';
export const weatherSchema = z.object({ city: z.string(), days: z.number().int() });

const CALL = '\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name="get_weather">\n' +
  '<｜DSML｜parameter name="city" string="true">Paris</｜DSML｜parameter>\n' +
  '<｜DSML｜parameter name="days" string="false">3</｜DSML｜parameter>\n</｜DSML｜invoke>\n</｜DSML｜tool_calls>';

// The session's scripts; `thinking`: whether the request runs in thinking mode (each completion
// then starts with its reasoning and `</think>`, which a prompt without thinking has already closed).
export function session(thinking) {
  const say = (i, text) => scriptMarker((thinking ? `${REASONING[i]}</think>` : '') + text + EOS);
  return {
    user1: 'What is the weather in Paris? ' + say(0, CALL),
    user2: 'And in Rome? ' + say(2, ANSWER_2),
    reasoning: thinking ? REASONING : ['', '', ''],
    // The tool itself: records its calls, answers with marker B.
    weather() {
      const calls = [];
      const run = async ({ city, days }) => {
        calls.push({ city, days });
        return { city, days, sky: 'sunny', note: say(1, ANSWER_1) };
      };
      return { calls, run };
    },
  };
}

// Structured output (on the real engine, random weights: constrained decoding alone makes the
// answer fit). Bounded, so that even random tokens end the value well within the output cap; no
// free strings: their maxLength counts characters (JSON Schema) but zod's max() UTF-16 units, so
// one random astral character could fail zod's check of a schema-valid answer.
export const forecastSchema = z.object({
  city: z.enum(['Paris', 'Rome', 'Oslo']),
  sky: z.enum(['sunny', 'cloudy', 'rain']),
  days: z.number().int(),
  warm: z.boolean(),
  hours: z.array(z.number().int()).max(3),
  note: z.enum(['none', 'windy']).nullable(),
});
export const FORECAST_PROMPT = 'Give the forecast for Paris as JSON.';

// For LangChain's ChatAnthropic jsonSchema method, which (like Anthropic's SDK) moves enum, maxItems
// and minimum/maximum into descriptions: what is left must still end on random weights.
export const flagsSchema = z.object({ days: z.number().int(), warm: z.boolean(), windy: z.boolean() });
