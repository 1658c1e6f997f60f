"""Generates random_cases.jsonl: random conversations and completions with the expected results of
DeepSeek's reference Python encoder (encoding_dsv4.py: encode_messages and
parse_message_from_completion_text). The reference is not part of this repository; to regenerate,
put encoding_dsv4.py next to this script (or on PYTHONPATH) and run: /usr/bin/python3 generate_random_cases.py
"""
import json
import random
import sys

from encoding_dsv4 import encode_messages, parse_message_from_completion_text

rng = random.Random(20261130)
WORDS = ["hello", "weather", "Paris", "你好", "😀", "a\nb", "x \"quoted\"", "tab\there", "", "    ", "<b>", "1.5", "naïve"]


def text(max_words=6):
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(0, max_words)))


def value():
    return rng.choice([text(3), rng.randint(-5, 1000), rng.random() * 100, True, False, None,
                       [1, "two", 3.0], {"k": "v", "n": [1, 2]}, 1e20, 1e-7])


def tool_call(i):
    args = {f"p{j}": value() for j in range(rng.randint(0, 3))}
    raw = json.dumps(args, ensure_ascii=rng.random() < 0.5)
    if rng.random() < 0.1:
        raw = "not json " + text(2)
    return {"id": f"call_{i}", "type": "function", "function": {"name": rng.choice(["get_weather", "search", "f"]), "arguments": raw}}


def tools():
    return [{"type": "function", "function": {"name": "get_weather", "description": "Get weather " + text(2),
             "parameters": {"type": "object", "properties": {"city": {"type": "string", "enum": ["a", "ü"]},
                                                             "days": {"type": "integer", "default": 3.5}},
                            "required": ["city"]}}}]


def conversation():
    msgs = []
    if rng.random() < 0.6:
        m = {"role": "system", "content": text()}
        if rng.random() < 0.3:
            m["tools"] = tools()
        if rng.random() < 0.2:
            m["response_format"] = {"type": "json_object", "schema": {"a": [1, 2.0, "x"]}}
        msgs.append(m)
    pending = []
    for _ in range(rng.randint(1, 7)):
        r = rng.random()
        if pending and r < 0.5:
            rng.shuffle(pending)
            for call_id in pending:
                msgs.append({"role": "tool", "tool_call_id": call_id,
                             "content": rng.choice([text(), [{"type": "text", "text": text()}, {"type": "image"}]])})
            pending = []
        elif r < 0.75:
            m = {"role": "user", "content": text()}
            if rng.random() < 0.05:
                m["task"] = rng.choice(["query", "authority", "domain", "title", "read_url", "action"])
            msgs.append(m)
        elif r < 0.8:
            msgs.append({"role": "developer", "content": "dev " + text()})
        elif r < 0.85:
            msgs.append({"role": "latest_reminder", "content": text()})
        else:
            m = {"role": "assistant", "content": text()}
            if rng.random() < 0.7:
                m["reasoning_content"] = text()
            if rng.random() < 0.4:
                calls = [tool_call(len(msgs) * 10 + k) for k in range(rng.randint(1, 3))]
                m["tool_calls"] = calls
                pending = [c["id"] for c in calls]
            if rng.random() < 0.1:
                m["wo_eos"] = True
            msgs.append(m)
    return msgs


out = []
while len([c for c in out if c["kind"] == "encode"]) < 300:
    msgs = conversation()
    mode = rng.choice(["chat", "thinking"])
    drop = rng.random() < 0.8
    effort = rng.choice([None, None, "high", "max"])
    try:
        expected = encode_messages(json.loads(json.dumps(msgs)), thinking_mode=mode, drop_thinking=drop, reasoning_effort=effort)
    except Exception:
        continue  # the reference rejects it (e.g. a task on a later message); not a rendering case
    out.append({"kind": "encode", "messages": msgs, "mode": mode, "drop_thinking": drop, "reasoning_effort": effort, "expected": expected})

while len([c for c in out if c["kind"] == "parse"]) < 200:
    thinking = rng.random() < 0.5
    m = {"role": "assistant", "content": text(), "reasoning_content": text() if thinking else None}
    if rng.random() < 0.5:
        m["tool_calls"] = [tool_call(k) for k in range(rng.randint(1, 3))]
        for c in m["tool_calls"]:
            if c["function"]["arguments"].startswith("not json"):
                c["function"]["arguments"] = "{}"
    prompt_msgs = [{"role": "user", "content": "q"}, m]
    full = encode_messages(prompt_msgs, thinking_mode="thinking" if thinking else "chat", drop_thinking=False)
    marker = "<｜Assistant｜><think>" if thinking else "<｜Assistant｜></think>"
    completion = full[full.index(marker) + len(marker):]
    try:
        parsed = parse_message_from_completion_text(completion, thinking_mode="thinking" if thinking else "chat")
    except Exception:
        continue
    out.append({"kind": "parse", "completion": completion, "thinking": thinking,
                "expected": {"reasoning_content": parsed["reasoning_content"], "content": parsed["content"],
                             "tool_calls": [[t["function"]["name"], t["function"]["arguments"]] for t in parsed["tool_calls"]]}})

with open("random_cases.jsonl", "w") as f:
    for c in out:
        f.write(json.dumps(c, ensure_ascii=False) + "\n")
print(len(out), "cases", file=sys.stderr)
