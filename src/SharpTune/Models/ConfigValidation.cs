using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace SharpTune.Models;

/// <summary>
/// Checks a config's sizes before any tensor is allocated: every size a positive integer within bounds no real
/// model comes near, the hidden size divisible by the heads (and the heads by the key/value heads), and the parameter
/// count the sizes imply within the memory a run can have. A hostile or mistyped config.json (a million layers, a
/// negative hidden size, zero heads) then fails with one line naming the file and the key instead of allocating until
/// the process is killed or ending in libtorch's native text.
/// </summary>
public static class ConfigValidation
{
    /// <summary>Size keys (with the aliases the families use) and their largest accepted value.</summary>
    private static readonly (string[] Keys, long Max)[] Sizes =
    [
        (["hidden_size", "n_embd", "dim", "d_model"], 1L << 17),
        (["num_hidden_layers", "n_layer", "n_layers", "num_layers"], 1024),
        (["num_attention_heads", "n_head", "n_heads"], 1024),
        (["num_key_value_heads", "n_kv_heads"], 1024),
        (["intermediate_size", "n_inner", "hidden_dim", "ffn_dim"], 1L << 20),
        (["vocab_size"], 1L << 24),
        (["max_position_embeddings", "n_positions"], 1L << 24),
        (["head_dim"], 1L << 14),
    ];

    /// <summary>Throws <see cref="InvalidDataException"/> naming the file and key when a size is absurd.</summary>
    /// <param name="maxParameters">Largest parameter count accepted; default: what fits this process's memory in fp32.</param>
    public static void Validate(PretrainedConfig config, long? maxParameters = null)
    {
        var where = config.SourcePath ?? PretrainedConfig.FileName;
        var values = new Dictionary<string, long>();
        foreach (var (keys, max) in Sizes)
            foreach (var key in keys)
            {
                // Absent or null (GPT-2's n_inner): the family's default applies.
                if (config.Raw[key] is not { } node || node.GetValueKind() == JsonValueKind.Null)
                    continue;
                var size = Integer(node) ?? throw new InvalidDataException($"{where}: '{key}' must be a whole number, found {node.ToJsonString()}");
                if (size < 1 || size > max)
                    throw new InvalidDataException($"{where}: '{key}' is {size.ToString(CultureInfo.InvariantCulture)}; it must be between 1 and {max.ToString(CultureInfo.InvariantCulture)}");
                values[keys[0]] = size;
                break;
            }
        if (values.TryGetValue("hidden_size", out var hidden) && values.TryGetValue("num_attention_heads", out var heads))
        {
            if (!values.ContainsKey("head_dim") && hidden % heads != 0)
                throw new InvalidDataException($"{where}: hidden_size {hidden} is not divisible by num_attention_heads {heads}");
            if (values.TryGetValue("num_key_value_heads", out var kvHeads) && heads % kvHeads != 0)
                throw new InvalidDataException($"{where}: num_attention_heads {heads} is not divisible by num_key_value_heads {kvHeads}");
        }
        var parameters = EstimateParameters(values);
        var limit = maxParameters ?? GC.GetGCMemoryInfo().TotalAvailableMemoryBytes / sizeof(float);
        if (parameters > limit)
            throw new InvalidDataException(
                $"{where}: these sizes make a model of about {Human(parameters)} parameters ({Human(parameters * (double)sizeof(float))}B in fp32), " +
                $"more than the {Human(limit)} this process can hold; check hidden_size, num_hidden_layers, intermediate_size and vocab_size");
    }

    /// <summary>A transformer's parameters from its sizes: embeddings plus per layer attention (4·h²) and MLP (3·h·i,
    /// the gated case, an upper bound for the others). Overestimates slightly; orders of magnitude are what matter.</summary>
    private static double EstimateParameters(Dictionary<string, long> sizes)
    {
        double hidden = sizes.GetValueOrDefault("hidden_size", 0);
        double layers = sizes.GetValueOrDefault("num_hidden_layers", 0);
        double intermediate = sizes.GetValueOrDefault("intermediate_size", (long)(4 * hidden));
        double embeddings = (sizes.GetValueOrDefault("vocab_size", 0) + sizes.GetValueOrDefault("max_position_embeddings", 0)) * hidden;
        return embeddings + layers * (4 * hidden * hidden + 3 * hidden * intermediate);
    }

    private static long? Integer(JsonNode node)
    {
        if (node is not JsonValue value || value.GetValueKind() != JsonValueKind.Number)
            return null;
        var text = value.ToJsonString();
        if (long.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var whole))
            return whole;
        // 1e9 or 64.0: JSON numbers that are whole.
        return double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var real) && real == Math.Floor(real) && Math.Abs(real) < 9e18
            ? (long)real
            : null;
    }

    private static string Human(double value) => value switch
    {
        >= 1e12 => $"{value / 1e12:0.#}T",
        >= 1e9 => $"{value / 1e9:0.#}G",
        >= 1e6 => $"{value / 1e6:0.#}M",
        _ => value.ToString("0", CultureInfo.InvariantCulture),
    };
}
