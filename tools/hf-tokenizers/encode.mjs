// Encodes texts with Hugging Face's JS tokenizers, the reference SharpTune's tests and benchmark compare with.
//   node encode.mjs <tokenizer.json> [tokenizer_config.json]      stdin: JSON array of texts → stdout: JSON array of id arrays
//   node encode.mjs --bench <tokenizer.json> <config|-> <texts.txt> <repeats>   → one JSON line of timings
import { readFileSync } from "node:fs";
import { Tokenizer } from "@huggingface/tokenizers";

const args = process.argv.slice(2);
const bench = args[0] === "--bench";
if (bench) args.shift();
const json = JSON.parse(readFileSync(args[0], "utf8"));
const config = args[1] && args[1] !== "-" ? JSON.parse(readFileSync(args[1], "utf8")) : {};
const tokenizer = new Tokenizer(json, config);

if (bench) {
  const texts = readFileSync(args[2], "utf8").split("\n").filter((t) => t.length > 0);
  const repeats = Number(args[3] ?? 3);
  let best = Infinity, tokens = 0;
  for (let r = 0; r < repeats; r++) {
    const start = process.hrtime.bigint();
    tokens = 0;
    for (const t of texts) tokens += tokenizer.encode(t, { add_special_tokens: false }).ids.length;
    best = Math.min(best, Number(process.hrtime.bigint() - start) / 1e9);
  }
  process.stdout.write(JSON.stringify({ seconds: best, tokens, texts: texts.length }) + "\n");
} else {
  const texts = JSON.parse(readFileSync(0, "utf8"));
  const ids = texts.map((t) => tokenizer.encode(t, { add_special_tokens: false }).ids);
  process.stdout.write(JSON.stringify(ids));
}
