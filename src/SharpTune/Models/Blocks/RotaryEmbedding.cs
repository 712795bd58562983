using static TorchSharp.torch;

namespace SharpTune.Models.Blocks;

/// <summary>
/// Rotary position embedding (default rope type) as transformers computes it, over the first
/// <see cref="Dimensions"/> of each head (partial rotary: Phi, GPT-NeoX) in the "rotate half" layout.
/// </summary>
public sealed class RotaryEmbedding
{
    /// <param name="dimensions">Rotated dims per head: head_dim × partial_rotary_factor (even).</param>
    /// <param name="theta">rope_theta, the base of the inverse frequencies.</param>
    public RotaryEmbedding(int dimensions, double theta)
    {
        if (dimensions <= 0 || dimensions % 2 != 0)
            throw new ArgumentOutOfRangeException(nameof(dimensions), dimensions, "rotary dimensions must be positive and even");
        Dimensions = dimensions;
        Theta = theta;
    }

    public int Dimensions { get; }
    public double Theta { get; }

    /// <summary>Reads head_dim × partial_rotary_factor and rope_theta from either config layout; only the
    /// default rope type is supported (scaled variants are refused rather than silently computed wrong).</summary>
    public static RotaryEmbedding FromConfig(PretrainedConfig config, int headDim, double defaultPartialFactor = 1.0, double defaultTheta = 10000.0)
    {
        var ropeType = config.Raw["rope_parameters"]?["rope_type"]?.GetValue<string>()
                       ?? config.Raw["rope_scaling"]?["rope_type"]?.GetValue<string>()
                       ?? config.Raw["rope_scaling"]?["type"]?.GetValue<string>()
                       ?? "default";
        if (ropeType != "default")
            throw new NotSupportedException($"{config.SourcePath ?? PretrainedConfig.FileName}: rope_type '{ropeType}' is not supported (only 'default')");
        var dimensions = (int)(headDim * config.PartialRotaryFactor(defaultPartialFactor));
        return new RotaryEmbedding(dimensions, config.RopeTheta(defaultTheta));
    }

    /// <summary>cos and sin [B, 1, T, Dimensions] for position ids [B, T], in <paramref name="dtype"/>.</summary>
    public (Tensor Cos, Tensor Sin) Angles(Tensor positionIds, ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        var device = positionIds.device;
        // Same float32 operations as transformers so angles at long positions agree bit for bit.
        var exponents = arange(0, Dimensions, 2, ScalarType.Int64, device).to(ScalarType.Float32) / Dimensions;
        var inverseFrequencies = full_like(exponents, Theta).pow(exponents).reciprocal();
        var frequencies = positionIds.to(ScalarType.Float32).unsqueeze(-1) * inverseFrequencies;
        var angles = cat([frequencies, frequencies], -1).unsqueeze(1);
        var cos = angles.cos().to(dtype).MoveToOuterDisposeScope();
        var sin = angles.sin().to(dtype).MoveToOuterDisposeScope();
        return (cos, sin);
    }

    /// <summary>Rotates the first cos.shape[-1] dims of <paramref name="x"/> [B, H, T, D]; the rest pass through.</summary>
    public static Tensor Apply(Tensor x, Tensor cos, Tensor sin)
    {
        using var scope = NewDisposeScope();
        var rotaryDims = cos.shape[^1];
        var headDims = x.shape[^1];
        var rotary = rotaryDims == headDims ? x : x.narrow(-1, 0, rotaryDims);
        var half = rotaryDims / 2;
        var rotatedHalf = cat([-rotary.narrow(-1, half, half), rotary.narrow(-1, 0, half)], -1);
        var embedded = rotary * cos + rotatedHalf * sin;
        if (rotaryDims != headDims)
            embedded = cat([embedded, x.narrow(-1, rotaryDims, headDims - rotaryDims)], -1);
        return embedded.MoveToOuterDisposeScope();
    }
}
