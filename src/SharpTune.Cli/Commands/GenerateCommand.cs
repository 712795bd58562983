using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using SharpTune.Cli.Infrastructure;
using SharpTune.Generation;
using SharpTune.IO;
using SharpTune.Models;
using SharpTune.Peft;

namespace SharpTune.Cli.Commands;

/// <summary><c>sharptune generate</c>: text generation with a causal LM, printed as it is produced.</summary>
public static class GenerateCommand
{
    public static Command Create()
    {
        var model = new Option<string>("--model") { Description = "Hugging Face model folder (config.json, safetensors, tokenizer).", Required = true };
        var prompt = new Option<string?>("--prompt") { Description = "Prompt text (encoded with the model's tokenizer)." };
        var promptIds = new Option<string?>("--prompt-ids") { Description = "Prompt as comma-separated token ids, e.g. 1,403,407." };
        var template = new Option<string>("--template")
        {
            Description = "Prompt template: none (the prompt as given), alpaca (the prompt is an instruction, as in the Dolly/Alpaca format) " +
                          "or chat (tokenizer_config.json's chat_template; Jinja templates are not rendered yet and are reported).",
            DefaultValueFactory = _ => "none",
        };
        template.AcceptOnlyFromAmong("none", "alpaca", "chat");
        var input = new Option<string?>("--input") { Description = "With --template alpaca: context for the instruction (the '### Input:' section)." };
        var maxNewTokens = new Option<int?>("--max-new-tokens") { Description = "Tokens to generate (default: generation_config.json's max_new_tokens or max_length, else 20)." };
        var greedy = new Option<bool>("--greedy") { Description = "Greedy decoding (the most likely token each step)." };
        var temperature = new Option<double?>("--temperature") { Description = "Sample with this temperature." };
        var topK = new Option<int?>("--top-k") { Description = "Sample among the k most likely tokens (0: all; default 50 when sampling)." };
        var topP = new Option<double?>("--top-p") { Description = "Sample within the smallest set of tokens whose probability reaches p." };
        var minP = new Option<double?>("--min-p") { Description = "Sample among tokens at least min_p × the top token's probability." };
        var repetitionPenalty = new Option<double?>("--repetition-penalty") { Description = "Penalise tokens already in the sequence (>1 discourages repeats)." };
        var stop = new Option<string[]>("--stop") { Description = "Stop once the generated text contains this string (repeatable).", AllowMultipleArgumentsPerToken = false };
        var adapter = new Option<string?>("--adapter") { Description = "LoRA adapter directory (adapter_config.json + adapter_model.safetensors) to apply." };
        var output = new Option<string?>("--output") { Description = "Write {\"ids\", \"text\", \"tokens_per_second\", ...} to this JSON file." };

        var command = new Command("generate",
            "Generate text with a causal language model (Llama, Qwen2, Phi, GPT-2, GPT-NeoX), printing it as it is produced. " +
            "Greedy by default (or as generation_config.json says); --temperature/--top-k/--top-p/--min-p sample, reproducibly with --seed.")
        {
            model, prompt, promptIds, template, input, maxNewTokens, greedy, temperature, topK, topP, minP, repetitionPenalty, stop, adapter, output,
        };
        command.SetAction(parseResult =>
        {
            var engine = GlobalOptions.Apply(parseResult);
            var directory = HubModels.Resolve(parseResult.GetValue(model)!);
            var text = parseResult.GetValue(prompt);
            var ids = parseResult.GetValue(promptIds);
            if ((text is null) == (ids is null))
                throw new UsageException("give exactly one of --prompt TEXT or --prompt-ids 1,2,3");
            var sampling = parseResult.GetValue(temperature) is not null || parseResult.GetValue(topK) is not null
                           || parseResult.GetValue(topP) is not null || parseResult.GetValue(minP) is not null;
            if (sampling && parseResult.GetValue(greedy))
                throw new UsageException("--greedy cannot be combined with --temperature/--top-k/--top-p/--min-p");
            if (parseResult.GetValue(template) == "chat")
                throw new UsageException(ChatTemplateMessage(directory));
            var useTemplate = parseResult.GetValue(template) == "alpaca";
            if (useTemplate && text is null)
                throw new UsageException("--template alpaca formats --prompt text; it cannot be used with --prompt-ids");
            if (parseResult.GetValue(input) is not null && !useTemplate)
                throw new UsageException("--input is the context of an instruction: use it with --template alpaca");

            var defaults = GenerationConfig.FromPretrained(directory);
            var config = defaults with
            {
                // transformers' max_length default (20 tokens in all) would leave nothing to generate after a long prompt.
                MaxNewTokens = parseResult.GetValue(maxNewTokens) ?? defaults.MaxNewTokens ?? (defaults.MaxLength is null ? 20 : null),
                DoSample = sampling || (!parseResult.GetValue(greedy) && defaults.DoSample),
                Temperature = parseResult.GetValue(temperature) ?? defaults.Temperature,
                TopK = parseResult.GetValue(topK) ?? defaults.TopK,
                TopP = parseResult.GetValue(topP) ?? defaults.TopP,
                MinP = parseResult.GetValue(minP) ?? defaults.MinP,
                RepetitionPenalty = parseResult.GetValue(repetitionPenalty) ?? defaults.RepetitionPenalty,
                StopStrings = parseResult.GetValue(stop) is { Length: > 0 } stops ? stops : defaults.StopStrings,
                Seed = engine.Seed,
            };

            // --prompt needs the tokenizer; with --prompt-ids it is optional (ids are printed when there is none).
            var tokenizer = text is not null || HasTokenizer(directory) ? PromptTokenizer.FromPretrained(directory) : null;
            var promptTokens = text is not null
                ? tokenizer!.Encode(useTemplate ? AlpacaTemplate.Format(text, parseResult.GetValue(input)) : text)
                : ParseIds(ids!);

            using var loaded = AutoModel.FromPretrained(directory, ModelTask.CausalLM, engine.Device, engine.DType);
            if (HubModels.ResolveOptional(parseResult.GetValue(adapter)) is { } adapterDirectory)
                PeftModel.FromPretrained(loaded, adapterDirectory);
            var causal = loaded as ICausalLM ?? throw new UsageException($"{directory}: {loaded.GetType().Name} is not a causal language model");
            var generator = new TextGenerator(causal, tokenizer is null ? null : tokenizer.Decode);
            var result = generator.Generate([promptTokens], config, step =>
            {
                Console.Out.Write(tokenizer is null ? $"{step.TokenId} " : step.Text);
                Console.Out.Flush();
            });
            Console.Out.WriteLine();
            var generated = result.Sequences[0].Count - result.PromptLengths[0];
            Console.Error.WriteLine(
                $"{generated} tokens ({result.FinishReasons[0]}) at {result.TokensPerSecond:F1} tokens/s " +
                $"(prefill {result.PrefillTime.TotalMilliseconds:F0} ms for {promptTokens.Count} prompt tokens, decode {result.DecodeTime.TotalMilliseconds:F0} ms)");

            if (parseResult.GetValue(output) is { } path)
                AtomicFile.WriteAllText(path, JsonSerializer.Serialize(new
                {
                    ids = result.Sequences[0],
                    text = tokenizer?.Decode(result.Sequences[0]),
                    generated_text = tokenizer?.Decode(result.Generated(0)),
                    tokens_per_second = result.TokensPerSecond,
                    prompt_tokens = promptTokens.Count,
                    new_tokens = generated,
                    finish_reason = result.FinishReasons[0].ToString(),
                    prefill_seconds = result.PrefillTime.TotalSeconds,
                    decode_seconds = result.DecodeTime.TotalSeconds,
                }, new JsonSerializerOptions { WriteIndented = true }) + "\n");
            return ExitCodes.Success;
        });
        return command;
    }

    /// <summary>Why --template chat cannot be applied: chat templates are Jinja programs, which SharpTune does not run.</summary>
    private static string ChatTemplateMessage(string directory)
    {
        var path = Path.Combine(directory, "tokenizer_config.json");
        var hasTemplate = File.Exists(path) && JsonNode.Parse(File.ReadAllText(path)) is JsonObject config
                          && config["chat_template"] is not null;
        return hasTemplate
            ? $"{path}: its chat_template is a Jinja template, which SharpTune cannot render; pass the formatted conversation with --prompt, or use --template alpaca"
            : $"{path}: no chat_template (the model has no chat format); use --template alpaca for instruction prompts or --template none";
    }

    private static bool HasTokenizer(string directory) =>
        new[] { "tokenizer.json", "tokenizer.model", "vocab.json", "vocab.txt", "tokenizer.bin" }.Any(f => File.Exists(Path.Combine(directory, f)));

    private static List<long> ParseIds(string text)
    {
        var ids = new List<long>();
        foreach (var part in text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
            ids.Add(long.TryParse(part, NumberStyles.Integer, CultureInfo.InvariantCulture, out var id) && id >= 0
                ? id
                : throw new UsageException($"--prompt-ids: '{part}' is not a token id (expected comma-separated non-negative integers)"));
        return ids.Count > 0 ? ids : throw new UsageException("--prompt-ids is empty");
    }
}
