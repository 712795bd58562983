using System.Text.Json;
using System.Text.Json.Nodes;
using SharpTune.Data;
using SharpTune.Models;
using SharpTune.Peft;
using SharpTune.Tokenizers.ChatTemplates;
using SharpTune.Training.Data;

namespace SharpTune.Training;

/// <summary>One supervised fine-tuning example, in one of trl's data set shapes: a conversation (<see cref="Messages"/>),
/// a prompt and its completion (strings, or message lists rendered with the chat template), or plain <see cref="Text"/>.</summary>
public sealed record SftRecord
{
    public JsonArray? Messages { get; init; }
    public JsonNode? Prompt { get; init; }
    public JsonNode? Completion { get; init; }
    public string? Text { get; init; }

    /// <summary>1-based line of the JSONL file the record came from (0 when built in code), for messages.</summary>
    public int Line { get; init; }

    public static SftRecord FromMessages(IEnumerable<ChatMessage> messages) =>
        new() { Messages = new JsonArray(messages.Select(m => (JsonNode?)m.ToJson()).ToArray()) };

    public static SftRecord FromPromptCompletion(string prompt, string completion) => new() { Prompt = prompt, Completion = completion };
}

/// <summary>Reads SFT data from JSONL: <c>{"messages": [...]}</c>, <c>{"prompt": ..., "completion": ...}</c> (strings or
/// message lists), <c>{"text": ...}</c>, or the Dolly (<c>instruction</c>/<c>context</c>/<c>response</c>) and Alpaca
/// (<c>prompt</c>/<c>answer</c>) instruction shapes (<see cref="InstructionDataset"/>).</summary>
public static class SftDataset
{
    public static IReadOnlyList<SftRecord> Load(string path)
    {
        if (!File.Exists(path))
            throw new FileNotFoundException($"SFT data file not found: {path}", path);
        return JsonLines.ReadObjects(path).Select(r => Parse(r.Record, path, r.Line)).ToList();
    }

    private static SftRecord Parse(JsonObject o, string path, int line)
    {
        if (o["messages"] is { } messages)
            return new SftRecord { Messages = messages as JsonArray ?? throw new InvalidDataException($"{path}:{line}: 'messages' must be a list of messages"), Line = line };
        if (o["completion"] is { } completion)
        {
            var prompt = o["prompt"] ?? throw new InvalidDataException($"{path}:{line}: a 'completion' record needs a 'prompt'");
            if ((prompt is JsonArray) != (completion is JsonArray))
                throw new InvalidDataException($"{path}:{line}: 'prompt' and 'completion' must both be strings or both be message lists");
            return new SftRecord { Prompt = prompt.DeepClone(), Completion = completion.DeepClone(), Line = line };
        }
        if (o["text"] is JsonValue text && text.TryGetValue<string>(out var t))
            return new SftRecord { Text = t, Line = line };
        if (o.ContainsKey("instruction") || o.ContainsKey("answer"))
        {
            var record = InstructionDataset.Parse(JsonDocument.Parse(o.ToJsonString()).RootElement, path, line);
            return new SftRecord { Prompt = record.Prompt, Completion = record.Response, Line = line };
        }
        throw new InvalidDataException($"{path}:{line}: unknown record shape (fields: {string.Join(", ", o.Select(p => p.Key))}); expected " +
                                       "'messages', 'prompt'/'completion', 'text', 'instruction'/'response' or 'prompt'/'answer'");
    }
}

/// <summary>Options of <see cref="SftTrainer"/> (trl's SFTConfig beyond the TrainingArguments).</summary>
public sealed record SftConfig
{
    /// <summary>Longest tokenized example; longer ones are cut (prompt/completion examples keep the prompt's end and the completion's start).</summary>
    public int MaxLength { get; init; } = 1024;

    /// <summary>Loss on completions / assistant turns only (the default); false trains on every token.</summary>
    public bool CompletionOnlyLoss { get; init; } = true;

    /// <summary>Concatenate examples into sequences of <see cref="MaxLength"/> tokens (trl's packing), fewer padding tokens.</summary>
    public bool Packing { get; init; }

    /// <summary>Template variables and the template name for conversations (e.g. enable_thinking).</summary>
    public ChatTemplateOptions? ChatTemplateOptions { get; init; }

    /// <summary>Train a LoRA adapter instead of all weights (QLoRA when the model is quantized).</summary>
    public LoraConfig? Lora { get; init; }
}

/// <summary>
/// trl's SFTTrainer: tokenizes conversations, prompt/completion pairs or plain text, masks the loss to the assistant or
/// completion tokens, optionally packs examples, optionally adds a LoRA adapter, and trains with <see cref="Trainer"/>
/// (accumulation, schedules, 8-bit AdamW, checkpoints, evaluation, resume — all from <see cref="TrainingArguments"/>).
/// </summary>
public sealed class SftTrainer
{
    public SftTrainer(PreTrainedModel model, TrainingArguments args, PretrainedInstructionTokenizer tokenizer, IReadOnlyList<SftRecord> trainDataset,
        IReadOnlyList<SftRecord>? evalDataset = null, SftConfig? config = null, IEnumerable<TrainerCallback>? callbacks = null)
    {
        Config = config ?? new SftConfig();
        Tokenizer = tokenizer;
        if (Config.Lora is { } lora)
            Peft = PeftModel.Create(model, lora);
        TrainDataset = Tokenize(trainDataset, Config.Packing);
        // Evaluation examples are never packed: the held-out loss stays comparable across runs.
        EvalDataset = evalDataset is null ? null : Tokenize(evalDataset, false);
        Trainer = new Trainer(model, args, TrainDataset, EvalDataset, new DataCollatorWithPadding(tokenizer.EosTokenId), callbacks: callbacks);
    }

    public SftConfig Config { get; }
    public PretrainedInstructionTokenizer Tokenizer { get; }
    public Trainer Trainer { get; }

    /// <summary>The LoRA wrapper when <see cref="SftConfig.Lora"/> is set.</summary>
    public PeftModel? Peft { get; }

    public IReadOnlyList<TrainingExample> TrainDataset { get; }
    public IReadOnlyList<TrainingExample>? EvalDataset { get; }

    public IProgress<TrainingProgress>? Progress
    {
        get => Trainer.Progress;
        set => Trainer.Progress = value;
    }

    public TrainOutput Train(string? resumeFromCheckpoint = null) => Trainer.Train(resumeFromCheckpoint);

    /// <summary>Mean loss over the evaluation set (the completion/assistant tokens, as in training).</summary>
    public double EvaluateLoss() => Trainer.Evaluate()["eval_loss"];

    /// <summary>Saves the model, or with LoRA the adapter (PEFT format), with the tokenizer files.</summary>
    public void SaveModel(string directory)
    {
        if (Peft is not null)
            Peft.SavePretrained(directory);
        else
            Trainer.SaveModel(directory);
    }

    private List<TrainingExample> Tokenize(IReadOnlyList<SftRecord> records, bool pack)
    {
        var examples = records.Select(r => ToExample(Tokenizer, r, Config)).Where(e => e.TokenLabels!.Any(l => l != InstructionExample.IgnoreIndex)).ToList();
        if (examples.Count == 0)
            throw new ArgumentException("no example has tokens to learn from (are the completions or assistant turns empty?)");
        return pack ? Pack(examples, Config.MaxLength) : examples;
    }

    /// <summary>One record as input ids and labels (-100 where the loss does not count).</summary>
    public static TrainingExample ToExample(PretrainedInstructionTokenizer tokenizer, SftRecord record, SftConfig config)
    {
        try
        {
            return ToExampleCore(tokenizer, record, config);
        }
        catch (Exception e) when (record.Line > 0 && e is ArgumentException or InvalidDataException or TemplateRaisedException or JinjaException)
        {
            throw new InvalidDataException($"line {record.Line}: {e.Message}", e);
        }
    }

    private static TrainingExample ToExampleCore(PretrainedInstructionTokenizer tokenizer, SftRecord record, SftConfig config)
    {
        if (record.Messages is { } messages)
        {
            var (ids, mask) = AssistantMask(tokenizer, messages, config.ChatTemplateOptions);
            return Labelled(ids, config.CompletionOnlyLoss ? mask : null, config.MaxLength);
        }
        if (record.Prompt is JsonArray promptMessages && record.Completion is JsonArray completionMessages)
        {
            var template = RequireTemplate(tokenizer);
            var options = config.ChatTemplateOptions ?? new ChatTemplateOptions();
            var prompt = template.ApplyChatTemplate(promptMessages, options with { AddGenerationPrompt = true, ContinueFinalMessage = false });
            var full = template.ApplyChatTemplate(new JsonArray([.. promptMessages.Select(m => m?.DeepClone()), .. completionMessages.Select(m => m?.DeepClone())]),
                options with { AddGenerationPrompt = false });
            if (!full.StartsWith(prompt, StringComparison.Ordinal))
                throw new InvalidDataException("the chat template renders the prompt differently inside the full conversation; cannot tell the completion apart");
            var encoding = tokenizer.EncodeRendered(full);
            var mask = encoding.Utf16Offsets.Select(o => o.Start >= prompt.Length).ToArray();
            return Labelled(encoding.Ids.Select(i => (long)i).ToArray(), config.CompletionOnlyLoss ? mask : null, config.MaxLength);
        }
        if (record.Prompt is { } p && record.Completion is { } c)
        {
            var example = InstructionExample.From(tokenizer, new InstructionRecord(p.GetValue<string>(), c.GetValue<string>(), record.Line), config.MaxLength);
            return new TrainingExample(example.InputIds) { TokenLabels = config.CompletionOnlyLoss ? example.Labels : example.InputIds };
        }
        if (record.Text is { } text)
        {
            var ids = tokenizer.Encode(text, addSpecialTokens: true).Select(i => (long)i).ToList();
            if (ids.Count == 0 || ids[^1] != tokenizer.EosTokenId)
                ids.Add(tokenizer.EosTokenId);
            return Labelled([.. ids], null, config.MaxLength);
        }
        throw new ArgumentException("the record has no messages, prompt/completion or text");
    }

    private static ChatTemplate RequireTemplate(PretrainedInstructionTokenizer tokenizer) =>
        tokenizer.ChatTemplate ?? throw new InvalidDataException(
            $"{tokenizer.Config.Directory}: conversational data needs a chat template, and the tokenizer has none (give one with a .jinja file)");

    private static TrainingExample Labelled(long[] ids, bool[]? mask, int maxLength)
    {
        if (ids.Length > maxLength)
        {
            ids = ids[..maxLength];
            mask = mask?[..maxLength];
        }
        var labels = mask is null ? ids : ids.Select((id, i) => mask[i] ? id : InstructionExample.IgnoreIndex).ToArray();
        return new TrainingExample(ids) { TokenLabels = labels };
    }

    /// <summary>
    /// The token ids of a rendered conversation and which of them the assistant wrote: from the template's
    /// <c>{% generation %}</c> blocks when it has them (transformers' return_assistant_tokens_mask), else by rendering
    /// each conversation prefix — the text an assistant turn adds after its generation prompt is that turn's.
    /// </summary>
    public static (long[] Ids, bool[] Mask) AssistantMask(PretrainedInstructionTokenizer tokenizer, JsonArray messages, ChatTemplateOptions? options = null)
    {
        var template = RequireTemplate(tokenizer);
        options = (options ?? new ChatTemplateOptions()) with { AddGenerationPrompt = false, ContinueFinalMessage = false };
        var rendering = template.Render(messages, options);
        var spans = template.HasGenerationBlocks(options) ? rendering.AssistantSpans : PrefixSpans(template, messages, options, rendering.Text);
        var encoding = tokenizer.EncodeRendered(rendering.Text);
        var mask = encoding.Utf16Offsets.Select(o => o.End > o.Start && spans.Any(s => o.Start >= s.Start.Value && o.Start < s.End.Value)).ToArray();
        return (encoding.Ids.Select(i => (long)i).ToArray(), mask);
    }

    private static List<Range> PrefixSpans(ChatTemplate template, JsonArray messages, ChatTemplateOptions options, string full)
    {
        var spans = new List<Range>();
        for (var i = 0; i < messages.Count; i++)
        {
            if (messages[i]?["role"]?.GetValue<string>() != "assistant")
                continue;
            JsonArray Prefix(int count) => new(messages.Take(count).Select(m => m?.DeepClone()).ToArray());
            var before = template.ApplyChatTemplate(Prefix(i), options with { AddGenerationPrompt = true });
            var through = template.ApplyChatTemplate(Prefix(i + 1), options);
            if (!through.StartsWith(before, StringComparison.Ordinal) || !full.StartsWith(through, StringComparison.Ordinal))
                throw new InvalidDataException(
                    $"the chat template does not render message {i} as an extension of the conversation before it, so the assistant tokens " +
                    "cannot be found; use a template with {% generation %} blocks or train on all tokens");
            spans.Add(before.Length..through.Length);
        }
        return spans;
    }

    /// <summary>trl's packing: examples concatenated (labels kept) and cut into sequences of <paramref name="maxLength"/>.</summary>
    public static List<TrainingExample> Pack(IReadOnlyList<TrainingExample> examples, int maxLength)
    {
        var ids = examples.SelectMany(e => e.InputIds).ToArray();
        var labels = examples.SelectMany(e => e.TokenLabels ?? e.InputIds).ToArray();
        var packed = new List<TrainingExample>();
        for (var start = 0; start < ids.Length; start += maxLength)
        {
            var end = Math.Min(ids.Length, start + maxLength);
            packed.Add(new TrainingExample(ids[start..end]) { TokenLabels = labels[start..end] });
        }
        return packed;
    }
}
