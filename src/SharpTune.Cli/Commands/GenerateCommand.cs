using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using SharpTune.Cli.Infrastructure;
using SharpTune.Generation;
using SharpTune.IO;
using SharpTune.Models;
using SharpTune.Peft;
using SharpTune.Tokenizers.ChatTemplates;

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
                          "or chat (--prompt is a user message rendered with the model's chat template, as --chat).",
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
        var chat = new Option<bool>("--chat")
        {
            Description = "Chat with the model through its chat template: the conversation in --messages, --prompt as one user message, " +
                          "or (with neither) an interactive prompt on the terminal that keeps the history (empty line or Ctrl-D ends).",
        };
        var messagesFile = new Option<string?>("--messages") { Description = "With --chat: JSON file with the conversation so far (a list of {\"role\", \"content\"})." };

        var command = new Command("generate",
            "Generate text with a causal language model (Llama, Qwen2, Phi, GPT-2, GPT-NeoX), printing it as it is produced. " +
            "Greedy by default (or as generation_config.json says); --temperature/--top-k/--top-p/--min-p sample, reproducibly with --seed.")
        {
            model, prompt, promptIds, template, input, maxNewTokens, greedy, temperature, topK, topP, minP, repetitionPenalty, stop, adapter, output,
            chat, messagesFile,
        };
        var chatOptions = ChatCliOptions.AddTo(command, includeGenerationPrompt: false, templateOptionName: "--chat-template-name");
        command.SetAction(parseResult =>
        {
            var engine = GlobalOptions.Apply(parseResult);
            var directory = HubModels.Resolve(parseResult.GetValue(model)!);
            var text = parseResult.GetValue(prompt);
            var ids = parseResult.GetValue(promptIds);
            var isChat = parseResult.GetValue(chat) || parseResult.GetValue(template) == "chat";
            var messagesPath = parseResult.GetValue(messagesFile);
            if (messagesPath is not null && !isChat)
                throw new UsageException("--messages is a conversation: use it with --chat");
            if (isChat && (ids is not null || (text is not null && messagesPath is not null)))
                throw new UsageException("--chat takes the conversation from --messages, or --prompt as one user message, or the terminal: give at most one");
            if (!isChat && (text is null) == (ids is null))
                throw new UsageException("give exactly one of --prompt TEXT or --prompt-ids 1,2,3");
            var sampling = parseResult.GetValue(temperature) is not null || parseResult.GetValue(topK) is not null
                           || parseResult.GetValue(topP) is not null || parseResult.GetValue(minP) is not null;
            if (sampling && parseResult.GetValue(greedy))
                throw new UsageException("--greedy cannot be combined with --temperature/--top-k/--top-p/--min-p");
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
            var tokenizer = text is not null || isChat || HasTokenizer(directory) ? PromptTokenizer.FromPretrained(directory) : null;
            var chatTemplate = isChat ? ChatTemplate.FromPretrained(directory) : null;
            var templateOptions = isChat ? chatOptions.Read(parseResult, addGenerationPrompt: true) : null;
            var conversation = messagesPath is not null ? ChatCliOptions.ReadMessages(messagesPath)
                : text is not null ? new JsonArray(new JsonObject { ["role"] = "user", ["content"] = text }) : new JsonArray();
            // Chat templates write the special tokens themselves: no BOS is added (as apply_chat_template(tokenize=True)).
            IReadOnlyList<long> ChatTokens() => tokenizer!.Tokenizer.EncodeToIds(chatTemplate!.ApplyChatTemplate(conversation, templateOptions), addSpecialTokens: false)
                .Select(id => (long)id).ToList();
            var promptTokens = isChat ? (conversation.Count > 0 ? ChatTokens() : [])
                : text is not null ? tokenizer!.Encode(useTemplate ? AlpacaTemplate.Format(text, parseResult.GetValue(input)) : text)
                : ParseIds(ids!);

            using var loaded = AutoModel.FromPretrained(directory, ModelTask.CausalLM, engine.Device, engine.DType);
            if (HubModels.ResolveOptional(parseResult.GetValue(adapter)) is { } adapterDirectory)
                PeftModel.FromPretrained(loaded, adapterDirectory);
            var causal = loaded as ICausalLM ?? throw new UsageException($"{directory}: {loaded.GetType().Name} is not a causal language model");
            var generator = new TextGenerator(causal, tokenizer is null ? null : tokenizer.Decode);
            GenerationResult Run(IReadOnlyList<long> tokens)
            {
                var run = generator.Generate([tokens], config, step =>
                {
                    Console.Out.Write(tokenizer is null ? $"{step.TokenId} " : step.Text);
                    Console.Out.Flush();
                });
                Console.Out.WriteLine();
                var count = run.Sequences[0].Count - run.PromptLengths[0];
                Console.Error.WriteLine(
                    $"{count} tokens ({run.FinishReasons[0]}) at {run.TokensPerSecond:F1} tokens/s " +
                    $"(prefill {run.PrefillTime.TotalMilliseconds:F0} ms for {tokens.Count} prompt tokens, decode {run.DecodeTime.TotalMilliseconds:F0} ms)");
                return run;
            }

            if (isChat && conversation.Count == 0)
            {
                // Interactive chat: each answer joins the history the next turn is rendered with.
                while (true)
                {
                    Console.Error.Write("> ");
                    var line = Console.In.ReadLine();
                    if (string.IsNullOrWhiteSpace(line))
                        return ExitCodes.Success;
                    conversation.Add(new JsonObject { ["role"] = "user", ["content"] = line });
                    var turn = Run(ChatTokens());
                    conversation.Add(new JsonObject { ["role"] = "assistant", ["content"] = tokenizer!.Decode(turn.Generated(0)).Trim() });
                }
            }
            var result = Run(promptTokens);
            var generated = result.Sequences[0].Count - result.PromptLengths[0];
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
