using System.Text.Json;
using SharpTune.Generation;
using SharpTune.Models;
using SharpTune.Tokenizers;
using SharpTune.Tokenizers.ChatTemplates;

namespace SharpTune.Training;

/// <summary>One instruction-tuning example: the rendered prompt and the response the model should learn to write.
/// <see cref="Line"/> is the 1-based line of the JSONL file it came from, for messages.</summary>
public sealed record InstructionRecord(string Prompt, string Response, int Line);

/// <summary>Reads instruction data from JSONL, one JSON object per line: Dolly-style <c>instruction</c>/<c>context</c>/
/// <c>response</c> records, whose prompt is rendered with the Alpaca template (<see cref="AlpacaTemplate"/>, the one the
/// Dolly subset's records were written with), or Alpaca-style <c>prompt</c>/<c>answer</c> records with rendered prompts.</summary>
public static class InstructionDataset
{
    /// <summary>The end-of-sequence placeholder the Alpaca-style Dolly subset puts at the end of answers; it is removed
    /// and the tokenizer's real EOS id is appended to every response instead.</summary>
    public const string EosPlaceholder = "###eos_token###";

    public static IReadOnlyList<InstructionRecord> Load(string path)
    {
        if (!File.Exists(path))
            throw new FileNotFoundException($"instruction data file not found: {path}", path);
        var records = new List<InstructionRecord>();
        var lineNumber = 0;
        foreach (var line in File.ReadLines(path))
        {
            lineNumber++;
            if (string.IsNullOrWhiteSpace(line))
                continue;
            JsonDocument document;
            try
            {
                document = JsonDocument.Parse(line);
            }
            catch (JsonException exception)
            {
                throw new InvalidDataException($"{path}:{lineNumber}: not valid JSON ({exception.Message})");
            }
            using (document)
                records.Add(Parse(document.RootElement, path, lineNumber));
        }
        if (records.Count == 0)
            throw new InvalidDataException($"{path}: no records (expected one JSON object per line)");
        return records;
    }

    internal static InstructionRecord Parse(JsonElement record, string path, int line)
    {
        if (record.ValueKind != JsonValueKind.Object)
            throw new InvalidDataException($"{path}:{line}: expected a JSON object, found {record.ValueKind}");
        string? Field(string name)
        {
            if (!record.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
                return null;
            if (value.ValueKind != JsonValueKind.String)
                throw new InvalidDataException($"{path}:{line}: field '{name}' must be a string, found {value.ValueKind}");
            return value.GetString();
        }
        string Required(string name, string style) =>
            Field(name) is { Length: > 0 } value
                ? value
                : throw new InvalidDataException($"{path}:{line}: {style} record lacks a non-empty '{name}' field");

        if (record.TryGetProperty("instruction", out _))
            return new InstructionRecord(AlpacaTemplate.Format(Required("instruction", "Dolly-style"), Field("context")),
                StripPlaceholder(Required("response", "Dolly-style")), line);
        if (record.TryGetProperty("prompt", out _))
            return new InstructionRecord(Required("prompt", "Alpaca-style"), StripPlaceholder(Required("answer", "Alpaca-style")), line);
        var fields = string.Join(", ", record.EnumerateObject().Select(p => p.Name));
        throw new InvalidDataException(
            $"{path}:{line}: unknown record shape (fields: {fields}); expected 'instruction'/'context'/'response' (Dolly) or 'prompt'/'answer' (Alpaca)");
    }

    private static string StripPlaceholder(string response) =>
        response.EndsWith(EosPlaceholder, StringComparison.Ordinal) ? response[..^EosPlaceholder.Length] : response;

    /// <summary>Shuffles the records with <paramref name="seed"/> (the same split on every run and machine), keeps the
    /// first <paramref name="heldOutCount"/> for evaluation and the next <paramref name="trainCount"/> for training.</summary>
    public static (IReadOnlyList<InstructionRecord> Train, IReadOnlyList<InstructionRecord> HeldOut) Split(
        IReadOnlyList<InstructionRecord> records, int trainCount, int heldOutCount, int seed)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(trainCount);
        ArgumentOutOfRangeException.ThrowIfNegative(heldOutCount);
        if (heldOutCount >= records.Count)
            throw new ArgumentException($"{heldOutCount} held-out samples leave none of the {records.Count} records for training");
        var order = records.ToArray();
        new Random(seed).Shuffle(order);
        var heldOut = order[..heldOutCount];
        var train = order[heldOutCount..].Take(trainCount).ToArray();
        return (train, heldOut);
    }
}

/// <summary>What instruction tuning needs from a tokenizer (implemented over SharpTune.Tokenizers).</summary>
public interface IInstructionTokenizer
{
    /// <summary>Token ids of <paramref name="text"/>; with special tokens, as the model expects a sequence start (BOS).</summary>
    IReadOnlyList<int> Encode(string text, bool addSpecialTokens);

    string Decode(IEnumerable<int> ids);

    int EosTokenId { get; }
}

/// <summary>A tokenized example: prompt then response tokens (ending with EOS); <see cref="Labels"/> are -100 on the
/// prompt so the loss counts only the response, as the seed's weighted-loss summarizer does.</summary>
public sealed record InstructionExample(long[] InputIds, long[] Labels, int PromptLength)
{
    public const long IgnoreIndex = -100;

    public int ResponseTokenCount => Labels.Count(l => l != IgnoreIndex);

    /// <summary>
    /// Tokenizes prompt and response separately (the prompt with special tokens, the response without, plus EOS) so that
    /// training sees exactly the ids that generation from the prompt continues. Longer than <paramref name="maxLength"/>:
    /// the response keeps at most half the budget (cut at its end) and the prompt keeps its END — the instruction's last
    /// part and "### Response:", right before the answer — after its first special token (BOS). So every example keeps
    /// response tokens to learn from, where cutting the end alone would leave long-context prompts without any.
    /// </summary>
    public static InstructionExample From(IInstructionTokenizer tokenizer, InstructionRecord record, int maxLength)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxLength, 4);
        var prompt = tokenizer.Encode(record.Prompt, addSpecialTokens: true).ToList();
        var response = tokenizer.Encode(record.Response, addSpecialTokens: false).Append(tokenizer.EosTokenId).ToList();
        if (prompt.Count + response.Count > maxLength)
        {
            var responseBudget = Math.Max(maxLength - prompt.Count, maxLength / 2);
            if (response.Count > responseBudget)
                response = response[..responseBudget];
            var promptBudget = maxLength - response.Count;
            if (prompt.Count > promptBudget)
            {
                var head = Math.Min(tokenizer.Encode("", addSpecialTokens: true).Count, promptBudget / 2);
                prompt = [.. prompt[..head], .. prompt[^(promptBudget - head)..]];
            }
        }
        var ids = prompt.Concat(response).Select(i => (long)i).ToArray();
        var promptLength = prompt.Count;
        var labels = ids.Select((id, i) => i < promptLength ? IgnoreIndex : id).ToArray();
        return new InstructionExample(ids, labels, promptLength);
    }
}

/// <summary>A model folder's tokenizer for instruction and chat tuning: the tokenizer, its tokenizer_config.json settings and
/// chat template. Adds the BOS token when tokenizer_config.json asks for it (<c>add_bos_token</c>, as transformers' Llama
/// tokenizers do) and the tokenizer.json has no post-processor doing so — the one place SharpTune applies
/// <c>add_bos_token</c>/<c>add_eos_token</c> to training text.</summary>
public sealed class PretrainedInstructionTokenizer : IInstructionTokenizer
{
    private readonly int? _bosToAdd;
    private readonly int? _eosToAdd;

    public PretrainedInstructionTokenizer(Tokenizer tokenizer, TokenizerConfig config, int eosTokenId, int? bosTokenId = null, ChatTemplate? chatTemplate = null)
    {
        Tokenizer = tokenizer;
        Config = config;
        EosTokenId = eosTokenId;
        _bosToAdd = config.AddBosToken ? bosTokenId ?? tokenizer.BosTokenId
            ?? throw new InvalidDataException($"{config.Directory}: add_bos_token is true but there is no BOS token") : null;
        _eosToAdd = config.AddEosToken ? eosTokenId : null;
        ChatTemplate = chatTemplate;
    }

    public Tokenizer Tokenizer { get; }
    public TokenizerConfig Config { get; }
    public int EosTokenId { get; }

    /// <summary>The chat template (tokenizer_config.json's, chat_template.jinja, or one given); null when the model has none.</summary>
    public ChatTemplate? ChatTemplate { get; }

    /// <summary>Loads the folder's tokenizer.json, tokenizer settings and chat template; <paramref name="chatTemplatePath"/>
    /// (a .jinja file) replaces the folder's template, as trl's chat_template_path does.</summary>
    public static PretrainedInstructionTokenizer FromPretrained(string directory, string? chatTemplatePath = null)
    {
        directory = Hub.PretrainedPath.Resolve(directory, Hub.HubFileSelection.Tokenizer);
        var path = Path.Combine(directory, "tokenizer.json");
        if (!File.Exists(path))
            throw new FileNotFoundException($"{directory} has no tokenizer.json (instruction tuning needs the model's tokenizer)", path);
        var tokenizer = Tokenizer.FromFile(path);
        var tokenizerConfig = TokenizerConfig.Load(directory);
        var config = PretrainedConfig.FromDirectory(directory);
        var eos = tokenizer.EosTokenId ?? (config.EosTokenIds.Count > 0 ? (int)config.EosTokenIds[0]
            : throw new InvalidDataException($"{directory}: neither the tokenizer nor config.json names an end-of-sequence token"));
        var bos = tokenizer.BosTokenId ?? config.Get<int?>("bos_token_id", null);
        ChatTemplate? template = null;
        if (chatTemplatePath is not null)
        {
            if (!File.Exists(chatTemplatePath))
                throw new FileNotFoundException($"chat template file not found: {chatTemplatePath}", chatTemplatePath);
            template = new ChatTemplate(new Dictionary<string, string> { [TokenizerConfig.DefaultTemplateName] = File.ReadAllText(chatTemplatePath) },
                tokenizerConfig.SpecialTokens, tokenizerConfig.AdditionalSpecialTokens, chatTemplatePath);
        }
        else if (tokenizerConfig.ChatTemplates.Count > 0)
            template = ChatTemplate.FromConfig(tokenizerConfig);
        return new PretrainedInstructionTokenizer(tokenizer, tokenizerConfig, eos, bos, template);
    }

    /// <summary>Token ids of plain text; with special tokens: the tokenizer's post-processor, then BOS/EOS as tokenizer_config.json asks.</summary>
    public IReadOnlyList<int> Encode(string text, bool addSpecialTokens)
    {
        var ids = Tokenizer.EncodeToIds(text, addSpecialTokens);
        if (!addSpecialTokens)
            return ids;
        IEnumerable<int> result = ids;
        if (_bosToAdd is { } bos && (ids.Length == 0 || ids[0] != bos))
            result = result.Prepend(bos);
        if (_eosToAdd is { } eos && (ids.Length == 0 || ids[^1] != eos))
            result = result.Append(eos);
        return result as int[] ?? result.ToArray();
    }

    /// <summary>Ids and UTF-16 offsets of a chat-template rendering: the template writes the special tokens itself, so
    /// none are added (as transformers' apply_chat_template(tokenize=True) does).</summary>
    public TokenEncoding EncodeRendered(string rendered) => Tokenizer.Encode(rendered, addSpecialTokens: false);

    public string Decode(IEnumerable<int> ids) => Tokenizer.Decode(ids);
}
