using System.Text.Json.Nodes;
using SharpTune.IO;
using SharpTune.Models;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SharpTune.Quantization;

/// <summary>What quantization stores: parameters of the quantized layers and their bytes.</summary>
public sealed record QuantizationFootprint(int Layers, long Parameters, long WeightBytes, long CodeBookBytes)
{
    /// <summary>Bytes per quantized parameter for codes and scales (4-bit: 0.5 + 4/64 = 0.5625; with double quantization
    /// 0.5 + 1/64 + 4/(64*256) + offsets ≈ 0.5159).</summary>
    public double BytesPerParameter => Parameters == 0 ? 0 : (double)WeightBytes / Parameters;

    /// <summary>The same including each layer's copy of the code book(s).</summary>
    public double BytesPerParameterWithCodeBooks => Parameters == 0 ? 0 : (double)(WeightBytes + CodeBookBytes) / Parameters;
}

/// <summary>
/// Quantizes a model in place by swapping its <see cref="Linear"/> layers for <see cref="QuantizedLinear"/> ones by
/// module path (what transformers does with <c>BitsAndBytesConfig</c>); embeddings stay in full precision and so does
/// every layer named in <see cref="QuantizationOptions.SkipModules"/> (the LM head by default).
/// </summary>
public static class Quantizer
{
    /// <summary>Quantizes every eligible linear layer; returns their paths. A <see cref="PreTrainedModel"/>'s config gets
    /// the <c>quantization_config</c> so that <c>SavePretrained</c> writes a checkpoint <c>AutoModel</c> loads back.
    /// <paramref name="cancellationToken"/> is checked before each layer; a cancelled model is left partly quantized
    /// (throw it away).</summary>
    public static IReadOnlyList<string> Quantize(nn.Module model, QuantizationOptions options, IProgress<int>? progress = null,
        CancellationToken cancellationToken = default)
    {
        options.Validate();
        var targets = ModuleTree.UniqueModules(model)
            .Where(m => m.Module is Linear && !IsSkipped(m.Path, options.SkipModules))
            .Select(m => (name: m.Path, linear: (Linear)m.Module))
            .ToList();
        var kept = SharedHandles(model, targets.Select(t => t.name).ToHashSet());
        var done = 0;
        foreach (var (path, linear) in targets)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var quantized = QuantizedLinear.FromLinear(linear, options);
            ModuleTree.Replace(model, path, quantized);
            if (!kept.Contains(linear.weight.Handle)) // a weight tied to a kept module stays alive
                linear.Dispose();
            progress?.Report(++done);
        }
        if (model is PreTrainedModel pretrained)
            pretrained.Config.Set(QuantizationOptions.ConfigKey, options.ToConfig());
        return targets.Select(t => t.name).ToList();
    }

    public static bool IsQuantized(PretrainedConfig config) => config.Raw[QuantizationOptions.ConfigKey] is JsonObject;

    public static QuantizationOptions Options(PretrainedConfig config) =>
        config.Raw[QuantizationOptions.ConfigKey] is JsonObject quantization
            ? QuantizationOptions.FromConfig(quantization, config.SourcePath ?? PretrainedConfig.FileName)
            : throw new InvalidOperationException($"{config.SourcePath ?? PretrainedConfig.FileName} has no {QuantizationOptions.ConfigKey}");

    /// <summary>Before loading a bitsandbytes checkpoint: replaces each linear layer the checkpoint stores quantized by
    /// a <see cref="QuantizedLinear"/> rebuilt from its tensors (the generic loader then finds every key in place).</summary>
    public static void LoadQuantizedLayers(PreTrainedModel model, Checkpoint checkpoint)
    {
        var compute = Options(model.Config).ComputeDType;
        var targets = ModuleTree.UniqueModules(model).Where(m => m.Module is Linear).Select(m => m.Path).ToList();
        foreach (var path in targets)
        {
            QuantizedLinear? quantized = null;
            foreach (var key in CheckpointPrefixes(model, path))
            {
                if (checkpoint.Contains($"{key}.{Linear4Bit.QuantStateKey(FourBitType.Nf4)}") || checkpoint.Contains($"{key}.{Linear4Bit.QuantStateKey(FourBitType.Fp4)}"))
                    quantized = Linear4Bit.Load(checkpoint, key, compute);
                else if (checkpoint.Contains($"{key}.SCB"))
                    quantized = Linear8Bit.Load(checkpoint, key, compute);
                if (quantized is not null)
                    break;
            }
            if (quantized is not null)
                ModuleTree.Replace(model, path, quantized).Dispose();
        }
    }

    /// <summary>Bytes and parameters of the model's quantized layers.</summary>
    public static QuantizationFootprint Footprint(nn.Module model)
    {
        var layers = ModuleTree.UniqueModules(model).Select(m => m.Module).OfType<QuantizedLinear>().ToList();
        return new QuantizationFootprint(layers.Count, layers.Sum(l => l.InFeatures * l.OutFeatures),
            layers.Sum(l => l.WeightStorageBytes), layers.Sum(l => l.CodeBookBytes));
    }

    private static bool IsSkipped(string path, IReadOnlyList<string> skip) =>
        skip.Any(s => path == s || path.EndsWith("." + s, StringComparison.Ordinal));

    /// <summary>Handles of parameters outside the layers about to be replaced (tied weights must survive).</summary>
    private static HashSet<IntPtr> SharedHandles(nn.Module model, HashSet<string> replaced) =>
        model.named_parameters()
            .Where(p => !replaced.Contains(p.name[..Math.Max(0, p.name.LastIndexOf('.'))]))
            .Select(p => p.parameter.Handle)
            .ToHashSet();

    /// <summary>Where the layer's tensors may be in the checkpoint: its own path, or with the base-model prefix
    /// stripped or added (a base checkpoint loaded into a task model and vice versa).</summary>
    private static IEnumerable<string> CheckpointPrefixes(PreTrainedModel model, string path)
    {
        yield return path;
        if (model.BaseModelPrefix.Length == 0)
            yield break;
        var prefix = model.BaseModelPrefix + ".";
        yield return path.StartsWith(prefix, StringComparison.Ordinal) ? path[prefix.Length..] : prefix + path;
    }
}
