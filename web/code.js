// The same request as cURL, Python (openai) and Node (openai) snippets, with the server's base URL.
export function snippets(baseUrl, body) {
  const json = JSON.stringify(body, null, 2);
  const { model, messages, stream, stream_options: _so, ...rest } = body;
  const extra = Object.keys(rest).length ? rest : null;
  const py = (v) => JSON.stringify(v, null, 4).replace(/\btrue\b/g, 'True').replace(/\bfalse\b/g, 'False').replace(/\bnull\b/g, 'None');
  const curl = `curl ${baseUrl}/v1/chat/completions \\
  -H "Authorization: Bearer $V4FLASH_API_KEY" \\
  -H "Content-Type: application/json" \\
  -d '${json.replace(/'/g, "'\\''")}'`;
  const python = `from openai import OpenAI

client = OpenAI(base_url="${baseUrl}/v1", api_key=os.environ["V4FLASH_API_KEY"])
response = client.chat.completions.create(
    model=${JSON.stringify(model)},
    messages=${py(messages)},${stream ? '\n    stream=True,' : ''}${extra ? `\n    extra_body=${py(extra)},` : ''}
)`.replace('from openai', 'import os\nfrom openai');
  const node = `import OpenAI from "openai";

const client = new OpenAI({ baseURL: "${baseUrl}/v1", apiKey: process.env.V4FLASH_API_KEY });
const response = await client.chat.completions.create(${JSON.stringify(body, null, 2).replace(/\n/g, '\n')});`;
  return { cURL: curl, Python: python, Node: node };
}
