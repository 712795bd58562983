using System.Text.Json;
using System.Text.Json.Nodes;
using SharpTune.IO;

namespace SharpTune.Models;

/// <summary>
/// A model's <c>config.json</c>. Keeps every field it was given (so saving round-trips unknown keys) and
/// reads both transformers 4.x and 5.x layouts: <c>rope_theta</c> vs <c>rope_parameters</c>,
/// <c>torch_dtype</c> vs <c>dtype</c>. Architectures read their own keys through <see cref="Get{T}"/>.
/// </summary>
public sealed class PretrainedConfig
{
    public const string FileName = "config.json";

    public JsonObject Raw { get; }
    public string? SourcePath { get; }

    public PretrainedConfig(JsonObject raw, string? sourcePath = null)
    {
        Raw = raw;
        SourcePath = sourcePath;
    }

    public static PretrainedConfig FromDirectory(string directory)
    {
        if (!Directory.Exists(directory))
            throw new DirectoryNotFoundException($"model directory not found: {directory}");
        return FromFile(Path.Combine(directory, FileName));
    }

    public static PretrainedConfig FromFile(string path)
    {
        if (!File.Exists(path))
            throw new FileNotFoundException($"config not found: {path}", path);
        try
        {
            return new PretrainedConfig(JsonNode.Parse(File.ReadAllText(path)) as JsonObject
                                        ?? throw new InvalidDataException($"{path}: config is not a JSON object"), path);
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path}: not valid JSON ({e.Message})");
        }
    }

    public PretrainedConfig Clone() => new((JsonObject)Raw.DeepClone(), SourcePath);

    public void Save(string directory) =>
        AtomicFile.WriteAllText(Path.Combine(directory, FileName), Raw.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");

    /// <summary>Value of the first key present (aliases cover GPT-2/DistilBERT-style names), else the default.</summary>
    public T Get<T>(string key, T defaultValue, params string[] aliases)
    {
        foreach (var name in aliases.Prepend(key))
            if (Raw[name] is JsonValue value && TryConvert(value, out T result))
                return result;
        return defaultValue;
    }

    /// <summary>Like <see cref="Get{T}"/> but the key is required; the error names the file and key.</summary>
    public T Require<T>(string key, params string[] aliases)
    {
        foreach (var name in aliases.Prepend(key))
            if (Raw[name] is JsonValue value && TryConvert(value, out T result))
                return result;
        throw new InvalidDataException($"{SourcePath ?? FileName}: required field '{key}' is missing or has the wrong type");
    }

    public bool Has(string key) => Raw[key] is not null;

    public void Set(string key, JsonNode? value) => Raw[key] = value;

    public string ModelType => Get("model_type", "");
    public IReadOnlyList<string> Architectures => Raw["architectures"] is JsonArray a ? a.Select(n => n!.GetValue<string>()).ToList() : [];

    /// <summary>Stored dtype: 5.x <c>dtype</c> or 4.x <c>torch_dtype</c>.</summary>
    public string? DType
    {
        get => Get<string?>("dtype", null, "torch_dtype");
        set
        {
            Raw.Remove("torch_dtype");
            Raw["dtype"] = value;
        }
    }

    /// <summary>Rotary base: 5.x <c>rope_parameters.rope_theta</c>, 4.x <c>rope_theta</c>, or the default.</summary>
    public double RopeTheta(double defaultValue = 10000.0) =>
        Raw["rope_parameters"] is JsonObject rope && rope["rope_theta"] is JsonValue theta && TryConvert(theta, out double t)
            ? t
            : Get("rope_theta", defaultValue);

    /// <summary>Fraction of head dims that get rotary: 5.x <c>rope_parameters.partial_rotary_factor</c> or 4.x top-level.</summary>
    public double PartialRotaryFactor(double defaultValue = 1.0) =>
        Raw["rope_parameters"] is JsonObject rope && rope["partial_rotary_factor"] is JsonValue factor && TryConvert(factor, out double f)
            ? f
            : Get("partial_rotary_factor", defaultValue);

    public int NumLabels => Raw["id2label"] is JsonObject map ? map.Count : Get("num_labels", 2);

    public IReadOnlyDictionary<int, string> Id2Label =>
        Raw["id2label"] is JsonObject map
            ? map.ToDictionary(kv => int.Parse(kv.Key), kv => kv.Value!.GetValue<string>())
            : Enumerable.Range(0, NumLabels).ToDictionary(i => i, i => $"LABEL_{i}");

    /// <summary>Sets id2label/label2id (and num_labels) as transformers writes them.</summary>
    public void SetLabels(IReadOnlyList<string> labels)
    {
        var id2Label = new JsonObject();
        var label2Id = new JsonObject();
        for (var i = 0; i < labels.Count; i++)
        {
            id2Label[i.ToString()] = labels[i];
            label2Id[labels[i]] = i;
        }
        Raw["id2label"] = id2Label;
        Raw["label2id"] = label2Id;
        Raw.Remove("num_labels");
    }

    /// <summary><c>single_label_classification</c>, <c>multi_label_classification</c>, <c>regression</c> or null (inferred).</summary>
    public string? ProblemType => Get<string?>("problem_type", null);

    /// <summary>EOS ids: an int or a list in config/generation_config.</summary>
    public IReadOnlyList<long> EosTokenIds => Raw["eos_token_id"] switch
    {
        JsonArray list => list.Select(n => n!.GetValue<long>()).ToList(),
        JsonValue value when TryConvert(value, out long id) => [id],
        _ => [],
    };

    private static bool TryConvert<T>(JsonValue value, out T result)
    {
        try
        {
            var target = Nullable.GetUnderlyingType(typeof(T)) ?? typeof(T);
            object? converted = target == typeof(string) ? value.GetValueKind() == JsonValueKind.String ? value.GetValue<string>() : null
                : target == typeof(bool) ? value.GetValueKind() is JsonValueKind.True or JsonValueKind.False ? value.GetValue<bool>() : null
                // Parse the JSON text: values set from code hold an int/long that GetValue<double> refuses.
                : value.GetValueKind() == JsonValueKind.Number ? Convert.ChangeType(double.Parse(value.ToJsonString(), System.Globalization.CultureInfo.InvariantCulture), target, System.Globalization.CultureInfo.InvariantCulture)
                : null;
            if (converted is null)
            {
                result = default!;
                return false;
            }
            result = (T)converted;
            return true;
        }
        catch (Exception e) when (e is InvalidOperationException or FormatException or InvalidCastException or OverflowException)
        {
            result = default!;
            return false;
        }
    }
}
