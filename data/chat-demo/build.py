"""Builds the chat demo sets from ../tinystories/tiny_stories_sample.txt (deterministic; rerun to regenerate).

Each example is a paragraph's first sentence and the sentences after it (up to 200 characters).
SFT: {"messages": [user "Continue the story: FIRST", assistant: NEXT]}.
DPO: {"prompt": [that user message], "chosen": [assistant NEXT], "rejected": [assistant NEXT with the words of each
sentence shuffled]}. SFT and DPO use different paragraphs; each has a held-out file.
"""
import json, random, re

text = open("../tinystories/tiny_stories_sample.txt", encoding="utf-8").read()
examples = []
for paragraph in (p.strip() for p in text.split("\n")):
    sentences = [s.strip() for s in re.findall(r"[^.!?]+[.!?]", paragraph)]
    if len(sentences) < 3 or not (20 <= len(sentences[0]) <= 120):
        continue
    body = ""
    for s in sentences[1:]:
        if len(body) + len(s) > 200:
            break
        body = (body + " " + s).strip()
    if len(body) >= 60:
        examples.append((sentences[0], body))
rng = random.Random(15)
rng.shuffle(examples)

def scramble(body):
    out = []
    for s in re.findall(r"[^.!?]+[.!?]", body):
        words = s.strip()[:-1].split()
        rng.shuffle(words)
        out.append(" ".join(words) + s.strip()[-1])
    return " ".join(out)

def write(path, rows):
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")

sft = [{"messages": [{"role": "user", "content": f"Continue the story: {n}"}, {"role": "assistant", "content": b}]} for n, b in examples[:450]]
write("sft_train.jsonl", sft[:400])
write("sft_eval.jsonl", sft[400:450])
dpo = []
for n, b in examples[450:950]:
    rejected = scramble(b)
    if rejected != b:
        dpo.append({"prompt": [{"role": "user", "content": f"Continue the story: {n}"}], "chosen": [{"role": "assistant", "content": b}],
                    "rejected": [{"role": "assistant", "content": rejected}]})
write("dpo_train.jsonl", dpo[:400])
write("dpo_eval.jsonl", dpo[400:450])
print(len(examples), len(sft), len(dpo))
