using System.Text.Json;
using System.Text.Json.Nodes;
using SharpTune.Models;

namespace SharpTune.Generation;

/// <summary>
/// How to generate, named and defaulted as transformers' <c>GenerationConfig</c>: greedy unless
/// <see cref="DoSample"/>; when sampling, temperature → top-k → top-p → min-p are applied in that order after the
/// repetition penalty. <see cref="FromPretrained"/> reads <c>generation_config.json</c> (falling back to config.json's
/// special token ids); use <c>with</c> to override fields.
/// </summary>
public sealed record GenerationConfig
{
    public const string FileName = "generation_config.json";

    /// <summary>Tokens to generate after the prompt; when null, <see cref="MaxLength"/> bounds prompt + new tokens.</summary>
    public int? MaxNewTokens { get; init; }
    /// <summary>Bound on prompt + new tokens when <see cref="MaxNewTokens"/> is null; null means transformers' default, 20.</summary>
    public int? MaxLength { get; init; }
    public bool DoSample { get; init; }
    public double Temperature { get; init; } = 1.0;
    /// <summary>Keep the k most likely tokens; 0 disables.</summary>
    public int TopK { get; init; } = 50;
    /// <summary>Keep the smallest set of most likely tokens whose probability reaches p; 1 disables.</summary>
    public double TopP { get; init; } = 1.0;
    /// <summary>Drop tokens less likely than min_p × the top token's probability; null disables.</summary>
    public double? MinP { get; init; }
    /// <summary>Divides positive (multiplies negative) logits of tokens already in the sequence; 1 disables.</summary>
    public double RepetitionPenalty { get; init; } = 1.0;
    public IReadOnlyList<long> EosTokenIds { get; init; } = [];
    public long? PadTokenId { get; init; }
    public long? BosTokenId { get; init; }
    /// <summary>A sequence ends once its generated text contains one of these (kept in the output, as transformers does).</summary>
    public IReadOnlyList<string> StopStrings { get; init; } = [];
    /// <summary>Seed of the sampling generator: the same seed gives the same tokens. Null draws from libtorch's global generator.</summary>
    public long? Seed { get; init; }

    /// <summary>Tokens to add to prompts of <paramref name="promptLength"/> tokens.</summary>
    public int NewTokenBudget(int promptLength) => MaxNewTokens ?? Math.Max(0, (MaxLength ?? 20) - promptLength);

    public void Validate()
    {
        if (MaxNewTokens is < 0)
            throw new ArgumentException($"max_new_tokens must be >= 0 (got {MaxNewTokens})");
        if (DoSample && !(Temperature > 0))
            throw new ArgumentException($"temperature must be > 0 when sampling (got {Temperature}); use greedy decoding instead of temperature 0");
        if (TopK < 0)
            throw new ArgumentException($"top_k must be >= 0 (got {TopK})");
        if (!(TopP > 0 && TopP <= 1))
            throw new ArgumentException($"top_p must be in (0, 1] (got {TopP})");
        if (MinP is { } minP && !(minP >= 0 && minP <= 1))
            throw new ArgumentException($"min_p must be in [0, 1] (got {minP})");
        if (!(RepetitionPenalty > 0))
            throw new ArgumentException($"repetition_penalty must be > 0 (got {RepetitionPenalty})");
    }

    /// <summary>Defaults of a model directory: <c>generation_config.json</c> when present, else the special token ids of config.json.</summary>
    public static GenerationConfig FromPretrained(string directory)
    {
        directory = Hub.PretrainedPath.Resolve(directory);
        var model = PretrainedConfig.FromDirectory(directory);
        var fromModel = new GenerationConfig
        {
            EosTokenIds = model.EosTokenIds,
            PadTokenId = model.Get<long?>("pad_token_id", null),
            BosTokenId = model.Get<long?>("bos_token_id", null),
        };
        var path = Path.Combine(directory, FileName);
        return File.Exists(path) ? FromFile(path, fromModel) : fromModel;
    }

    /// <summary>Reads a generation_config.json; fields it lacks keep <paramref name="defaults"/>' values.</summary>
    public static GenerationConfig FromFile(string path, GenerationConfig? defaults = null)
    {
        JsonObject json;
        try
        {
            json = JsonNode.Parse(File.ReadAllText(path)) as JsonObject ?? throw new InvalidDataException($"{path}: not a JSON object");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path}: not valid JSON ({e.Message})");
        }
        var values = new PretrainedConfig(json, path);
        var config = defaults ?? new GenerationConfig();
        try
        {
            return config with
            {
                MaxNewTokens = values.Get("max_new_tokens", config.MaxNewTokens),
                MaxLength = values.Get("max_length", config.MaxLength),
                DoSample = values.Get("do_sample", config.DoSample),
                Temperature = values.Get("temperature", config.Temperature),
                TopK = values.Get("top_k", config.TopK),
                TopP = values.Get("top_p", config.TopP),
                MinP = values.Get("min_p", config.MinP),
                RepetitionPenalty = values.Get("repetition_penalty", config.RepetitionPenalty),
                EosTokenIds = values.Has("eos_token_id") ? values.EosTokenIds : config.EosTokenIds,
                PadTokenId = values.Get("pad_token_id", config.PadTokenId),
                BosTokenId = values.Get("bos_token_id", config.BosTokenId),
                StopStrings = json["stop_strings"] switch
                {
                    JsonArray list => list.Select(s => s!.GetValue<string>()).ToList(),
                    JsonValue one when one.GetValueKind() == JsonValueKind.String => [one.GetValue<string>()],
                    _ => config.StopStrings,
                },
            };
        }
        catch (InvalidOperationException e)
        {
            throw new InvalidDataException($"{path}: a field has the wrong type ({e.Message})");
        }
    }
}
