using TorchSharp.Modules;

namespace SharpTune.Training.Optimization;

/// <summary>A set of parameters sharing a learning rate and weight decay, as a torch optimizer param group.</summary>
/// <param name="Name">Readable name (e.g. "encoder.layer.3/decay") used in logs and optimizer state files.</param>
/// <param name="Parameters">The parameters with their model names (names key the saved optimizer state).</param>
/// <param name="LearningRate">The group's peak learning rate; the scheduler multiplies it by its factor.</param>
/// <param name="WeightDecay">Decoupled weight decay (AdamW) or L2 penalty (SGD) of the group.</param>
public sealed record ParameterGroup(string Name, IReadOnlyList<(string Name, Parameter Parameter)> Parameters, double LearningRate, double WeightDecay);

/// <summary>Builds parameter groups the way Hugging Face's Trainer does: no weight decay on biases and normalisation
/// weights, optionally a separate learning rate for the task head and layer-wise learning-rate decay of the encoder.</summary>
public static class ParameterGroups
{
    /// <summary>True when transformers would exempt the parameter from weight decay: biases and parameters of
    /// LayerNorm/RMSNorm modules (recognised by module type or by name).</summary>
    public static bool IsNoDecay(string name, ISet<string> normModuleNames)
    {
        var lower = name.ToLowerInvariant();
        if (lower.EndsWith("bias", StringComparison.Ordinal) || lower.Contains("layernorm") || lower.Contains("rmsnorm") || lower.Contains("_norm."))
            return true;
        var owner = name.LastIndexOf('.') is var dot and > 0 ? name[..dot] : "";
        var last = owner.LastIndexOf('.') is var d2 and >= 0 ? owner[(d2 + 1)..] : owner;
        return normModuleNames.Contains(owner) || last.Equals("norm", StringComparison.OrdinalIgnoreCase) || last.EndsWith("_norm", StringComparison.OrdinalIgnoreCase);
    }

    /// <summary>Groups the trainable parameters of <paramref name="model"/>.</summary>
    /// <param name="baseModelPrefix">Prefix of the encoder's parameters (e.g. "bert"); the rest is the head. Empty: all encoder.</param>
    /// <param name="headLearningRate">Learning rate of the head; null uses <paramref name="learningRate"/>.</param>
    /// <param name="layerDecay">Layer-wise decay: the top encoder layer gets <paramref name="learningRate"/>, each layer below
    /// is multiplied by it once more, and the embeddings get <c>lr · decay^L</c>. 1 disables it.</param>
    public static IReadOnlyList<ParameterGroup> Create(TorchSharp.torch.nn.Module model, double learningRate, double weightDecay,
        string baseModelPrefix = "", double? headLearningRate = null, double layerDecay = 1.0)
    {
        var normModules = new HashSet<string>(model.named_modules()
            .Where(m => m.module is LayerNorm || m.module.GetType().Name.Contains("Norm", StringComparison.Ordinal))
            .Select(m => m.name), StringComparer.Ordinal);
        var trainable = model.named_parameters().Where(p => p.parameter.requires_grad).ToList();
        var prefix = baseModelPrefix.Length == 0 ? "" : baseModelPrefix + ".";
        bool IsHead(string name) => prefix.Length > 0 && !name.StartsWith(prefix, StringComparison.Ordinal);
        var layerCount = trainable.Select(p => LayerIndex(p.name)).Where(i => i >= 0).DefaultIfEmpty(-1).Max() + 1;

        // Key: (group base name, learning rate); value: decay and no-decay parameter lists, in model order.
        var groups = new List<ParameterGroup>();
        var buckets = new Dictionary<(string Name, double Lr, bool Decay), List<(string, Parameter)>>();
        var order = new List<(string Name, double Lr, bool Decay)>();
        foreach (var (name, parameter) in trainable)
        {
            string bucket;
            double lr;
            if (IsHead(name))
            {
                bucket = "head";
                lr = headLearningRate ?? learningRate;
            }
            else if (layerDecay != 1.0 && layerCount > 0)
            {
                var layer = LayerIndex(name);
                var depthFromTop = layer >= 0 ? layerCount - 1 - layer : IsEmbedding(name) ? layerCount : 0;
                bucket = layer >= 0 ? $"layer.{layer}" : IsEmbedding(name) ? "embeddings" : "encoder";
                lr = learningRate * Math.Pow(layerDecay, depthFromTop);
            }
            else
            {
                bucket = prefix.Length > 0 ? "encoder" : "model";
                lr = learningRate;
            }
            var key = (bucket, lr, !IsNoDecay(name, normModules));
            if (!buckets.TryGetValue(key, out var list))
            {
                buckets[key] = list = [];
                order.Add(key);
            }
            list.Add((name, parameter));
        }
        // Decay groups first, as transformers orders them.
        foreach (var key in order.OrderBy(k => k.Decay ? 0 : 1))
            groups.Add(new ParameterGroup($"{key.Name}/{(key.Decay ? "decay" : "no_decay")}", buckets[key], key.Lr, key.Decay ? weightDecay : 0.0));
        return groups;
    }

    private static readonly System.Text.RegularExpressions.Regex LayerPattern =
        new(@"\.(?:layer|layers|h|blocks|block)\.(\d+)\.", System.Text.RegularExpressions.RegexOptions.Compiled);

    /// <summary>Index of the transformer layer a parameter belongs to, or -1.</summary>
    public static int LayerIndex(string name) =>
        LayerPattern.Match("." + name) is { Success: true } m ? int.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture) : -1;

    private static bool IsEmbedding(string name) => name.Contains("embed", StringComparison.OrdinalIgnoreCase) || name.Contains(".wte.", StringComparison.Ordinal) || name.Contains(".wpe.", StringComparison.Ordinal);
}
