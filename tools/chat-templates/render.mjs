// Renders chat templates with @huggingface/jinja for SharpTune's exactness test.
// stdin: {"templates": {name: {chat_template, bos_token, eos_token}}, "cases": [{messages, tools?, add_generation_prompt, variables?}]}
// stdout: {name: [{"text": ...} | {"error": ...}, ...]} (one entry per case, in order).
import { Template } from "@huggingface/jinja";

let input = "";
for await (const chunk of process.stdin) input += chunk;
const { templates, cases } = JSON.parse(input);
const result = {};
for (const [name, spec] of Object.entries(templates)) {
  const template = new Template(spec.chat_template);
  result[name] = cases.map((c) => {
    try {
      const text = template.render({
        ...(spec.bos_token == null ? {} : { bos_token: spec.bos_token }),
        ...(spec.eos_token == null ? {} : { eos_token: spec.eos_token }),
        ...c.variables,
        messages: c.messages,
        tools: c.tools ?? null,
        documents: c.documents ?? null,
        add_generation_prompt: c.add_generation_prompt ?? false,
      });
      return { text };
    } catch (e) {
      return { error: String(e?.message ?? e) };
    }
  });
}
process.stdout.write(JSON.stringify(result));
