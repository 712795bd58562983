using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace SharpTune.Peft;

/// <summary>Which biases train with LoRA (peft's <c>bias</c>).</summary>
public enum LoraBias
{
    None,
    All,
    LoraOnly,
}

/// <summary>
/// LoRA hyper-parameters, with PEFT's names and defaults (<c>peft.LoraConfig</c>). Read from and written to
/// <c>adapter_config.json</c> with every field peft 0.21 writes, so adapters move between SharpTune and Python.
/// </summary>
public sealed record LoraConfig
{
    public const string FileName = "adapter_config.json";

    /// <summary>The peft release whose adapter format SharpTune writes.</summary>
    public const string PeftFormatVersion = "0.21.0";

    /// <summary>Rank of the update B·A.</summary>
    public int R { get; init; } = 8;

    /// <summary>Scale numerator: the update is multiplied by alpha / r (alpha / sqrt(r) with <see cref="UseRslora"/>).</summary>
    public double LoraAlpha { get; init; } = 8;

    public double LoraDropout { get; init; }

    /// <summary>Module names matched against the end of each module path ("q_proj" matches "model.layers.0.self_attn.q_proj").</summary>
    public IReadOnlyList<string>? TargetModules { get; init; }

    /// <summary>Alternatively a regular expression that must match the whole module path.</summary>
    public string? TargetModulesRegex { get; init; }

    public LoraBias Bias { get; init; } = LoraBias.None;

    /// <summary>Modules (e.g. a classification head) trained fully and saved with the adapter.</summary>
    public IReadOnlyList<string>? ModulesToSave { get; init; }

    /// <summary>Rank-stabilised LoRA: scale by alpha / sqrt(r).</summary>
    public bool UseRslora { get; init; }

    /// <summary>True: A Kaiming-uniform, B zero (the adapter starts as a no-op). False: B random too (tests).</summary>
    public bool InitLoraWeights { get; init; } = true;

    /// <summary>Per-module rank and alpha overrides: pattern (matched against the end of the module path) to value.</summary>
    public IReadOnlyDictionary<string, int> RankPattern { get; init; } = new Dictionary<string, int>();
    public IReadOnlyDictionary<string, double> AlphaPattern { get; init; } = new Dictionary<string, double>();

    public string? TaskType { get; init; } = "CAUSAL_LM";
    public string? BaseModelNameOrPath { get; init; }
    public bool InferenceMode { get; init; }

    /// <summary>Ranks above this are refused: real adapters use 4-256, and a huge r would allocate until killed.</summary>
    public const int MaxRank = 65536;

    public void Validate()
    {
        if (R is <= 0 or > MaxRank)
            throw new ArgumentException($"LoRA rank r must be between 1 and {MaxRank}, got {R}");
        if (RankPattern.FirstOrDefault(p => p.Value is <= 0 or > MaxRank) is { Key: not null } bad)
            throw new ArgumentException($"rank_pattern '{bad.Key}' must be between 1 and {MaxRank}, got {bad.Value}");
        if (LoraDropout is < 0 or >= 1)
            throw new ArgumentException($"lora_dropout must be in [0, 1), got {LoraDropout}");
        if ((TargetModules is null || TargetModules.Count == 0) && TargetModulesRegex is null)
            throw new ArgumentException("LoRA needs target_modules (module names or a regular expression)");
    }

    /// <summary>Whether LoRA applies to the module at <paramref name="path"/> (peft's check_target_module_exists).</summary>
    public bool IsTarget(string path) => TargetModulesRegex is { } regex
        ? Regex.IsMatch(path, $"^(?:{regex})$")
        : TargetModules!.Any(t => path == t || path.EndsWith("." + t, StringComparison.Ordinal));

    public int RankFor(string path) => Pattern(RankPattern, path) is { } key ? RankPattern[key] : R;

    public double AlphaFor(string path) => Pattern(AlphaPattern, path) is { } key ? AlphaPattern[key] : LoraAlpha;

    public double ScalingFor(string path) => UseRslora ? AlphaFor(path) / Math.Sqrt(RankFor(path)) : AlphaFor(path) / RankFor(path);

    private static string? Pattern<T>(IReadOnlyDictionary<string, T> patterns, string path) =>
        patterns.Keys.FirstOrDefault(p => Regex.IsMatch(path, $"^(?:.*\\.)?(?:{p})$"));

    public static LoraConfig FromDirectory(string directory)
    {
        var path = Path.Combine(directory, FileName);
        if (!File.Exists(path))
            throw new FileNotFoundException($"not a PEFT adapter directory: {path} is missing", path);
        JsonObject json;
        try
        {
            json = JsonNode.Parse(File.ReadAllText(path)) as JsonObject ?? throw new InvalidDataException($"{path}: not a JSON object");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path}: invalid JSON ({e.Message})");
        }
        LoraConfig config;
        try
        {
            config = FromJson(json, path);
        }
        catch (Exception e) when (e is InvalidOperationException or FormatException or NullReferenceException)
        {
            // JsonNode.GetValue's own text names the types, not the field; the file at least is named.
            throw new InvalidDataException($"{path}: a field has the wrong type ({e.Message})");
        }
        try
        {
            config.Validate();
        }
        catch (ArgumentException e)
        {
            throw new InvalidDataException($"{path}: {e.Message}");
        }
        return config;
    }

    public static LoraConfig FromJson(JsonObject json, string source)
    {
        var peftType = json["peft_type"]?.GetValue<string>() ?? "LORA";
        if (peftType != "LORA")
            throw new NotSupportedException($"{source}: peft_type '{peftType}' is not supported (SharpTune loads LoRA adapters)");
        foreach (var flag in new[] { "use_dora", "fan_in_fan_out", "lora_bias", "use_qalora" })
            if (json[flag] is JsonValue value && value.TryGetValue<bool>(out var on) && on)
                throw new NotSupportedException($"{source}: '{flag}: true' is not supported by SharpTune");
        if (json["layers_to_transform"] is JsonNode layers && layers.GetValueKind() != JsonValueKind.Null)
            throw new NotSupportedException($"{source}: 'layers_to_transform' is not supported by SharpTune");
        var targets = json["target_modules"];
        return new LoraConfig
        {
            R = json["r"]?.GetValue<int>() ?? 8,
            LoraAlpha = json["lora_alpha"]?.GetValue<double>() ?? 8,
            LoraDropout = json["lora_dropout"]?.GetValue<double>() ?? 0,
            TargetModules = targets is JsonArray list ? list.Select(n => n!.GetValue<string>()).ToList() : null,
            TargetModulesRegex = targets is JsonValue single ? single.GetValue<string>() : null,
            Bias = (json["bias"]?.GetValue<string>() ?? "none") switch
            {
                "none" => LoraBias.None,
                "all" => LoraBias.All,
                "lora_only" => LoraBias.LoraOnly,
                var other => throw new InvalidDataException($"{source}: unknown bias '{other}' (expected none, all or lora_only)"),
            },
            ModulesToSave = json["modules_to_save"] is JsonArray save ? save.Select(n => n!.GetValue<string>()).ToList() : null,
            UseRslora = json["use_rslora"]?.GetValue<bool>() ?? false,
            InitLoraWeights = json["init_lora_weights"] is not JsonValue init || !init.TryGetValue<bool>(out var b) || b,
            RankPattern = json["rank_pattern"] is JsonObject ranks ? ranks.ToDictionary(p => p.Key, p => p.Value!.GetValue<int>()) : new Dictionary<string, int>(),
            AlphaPattern = json["alpha_pattern"] is JsonObject alphas ? alphas.ToDictionary(p => p.Key, p => p.Value!.GetValue<double>()) : new Dictionary<string, double>(),
            TaskType = json["task_type"]?.GetValue<string>(),
            BaseModelNameOrPath = json["base_model_name_or_path"]?.GetValue<string>(),
            InferenceMode = json["inference_mode"]?.GetValue<bool>() ?? false,
        };
    }

    /// <summary>adapter_config.json as peft 0.21 writes it: every field, keys sorted.</summary>
    public JsonObject ToJson()
    {
        JsonNode? Number(double value) => value == Math.Floor(value) && Math.Abs(value) < 1e15 ? JsonValue.Create((long)value) : JsonValue.Create(value);
        var fields = new SortedDictionary<string, JsonNode?>(StringComparer.Ordinal)
        {
            ["alora_invocation_tokens"] = null,
            ["alpha_pattern"] = new JsonObject(AlphaPattern.Select(p => KeyValuePair.Create(p.Key, Number(p.Value)))),
            ["arrow_config"] = null,
            ["auto_mapping"] = null,
            ["base_model_name_or_path"] = BaseModelNameOrPath,
            ["bias"] = Bias switch { LoraBias.All => "all", LoraBias.LoraOnly => "lora_only", _ => "none" },
            ["corda_config"] = null,
            ["ensure_weight_tying"] = false,
            ["eva_config"] = null,
            ["exclude_modules"] = null,
            ["fan_in_fan_out"] = false,
            ["inference_mode"] = InferenceMode,
            ["init_lora_weights"] = InitLoraWeights,
            ["kasa_config"] = null,
            ["layer_replication"] = null,
            ["layers_pattern"] = null,
            ["layers_to_transform"] = null,
            ["loftq_config"] = new JsonObject(),
            ["lora_alpha"] = Number(LoraAlpha),
            ["lora_bias"] = false,
            ["lora_dropout"] = LoraDropout,
            ["lora_ga_config"] = null,
            ["megatron_config"] = null,
            ["megatron_core"] = "megatron.core",
            ["modules_to_save"] = ModulesToSave is null ? null : new JsonArray(ModulesToSave.Select(m => (JsonNode?)m).ToArray()),
            ["monteclora_config"] = null,
            ["peft_type"] = "LORA",
            ["peft_version"] = PeftFormatVersion,
            ["qalora_group_size"] = 16,
            ["r"] = R,
            ["rank_pattern"] = new JsonObject(RankPattern.Select(p => KeyValuePair.Create(p.Key, (JsonNode?)p.Value))),
            ["revision"] = null,
            ["target_modules"] = TargetModulesRegex is { } regex
                ? regex
                : new JsonArray(TargetModules!.Order(StringComparer.Ordinal).Select(t => (JsonNode?)t).ToArray()),
            ["target_parameters"] = null,
            ["task_type"] = TaskType,
            ["trainable_token_indices"] = null,
            ["use_bdlora"] = null,
            ["use_dora"] = false,
            ["use_qalora"] = false,
            ["use_rslora"] = UseRslora,
            ["velora_config"] = null,
        };
        return new JsonObject(fields);
    }
}
