using static TorchSharp.torch;

namespace SharpTune.Models.Blocks;

/// <summary>
/// Frequency scaling of a rotary embedding: <c>linear</c> (positions interpolated by <see cref="Factor"/>) or
/// <c>llama3</c> (Llama 3.1+: low frequencies divided by the factor, a smooth ramp between the two bands).
/// </summary>
public sealed record RopeScaling(string Type, double Factor, double LowFreqFactor = 1.0, double HighFreqFactor = 4.0, double OriginalMaxPositions = 8192);

/// <summary>
/// Rotary position embedding as transformers computes it, over the first <see cref="Dimensions"/> of each head
/// (partial rotary: Phi, GPT-NeoX) in the "rotate half" layout; default, linear or llama3 frequencies.
/// </summary>
public sealed class RotaryEmbedding
{
    /// <param name="dimensions">Rotated dims per head: head_dim × partial_rotary_factor (even).</param>
    /// <param name="theta">rope_theta, the base of the inverse frequencies.</param>
    /// <param name="scaling">Frequency scaling, or null for the default rope.</param>
    public RotaryEmbedding(int dimensions, double theta, RopeScaling? scaling = null)
    {
        if (dimensions <= 0 || dimensions % 2 != 0)
            throw new ArgumentOutOfRangeException(nameof(dimensions), dimensions, "rotary dimensions must be positive and even");
        if (scaling is not null && scaling.Type is not ("linear" or "llama3"))
            throw new NotSupportedException($"rope_type '{scaling.Type}' is not supported (supported: default, linear, llama3)");
        Dimensions = dimensions;
        Theta = theta;
        Scaling = scaling;
    }

    public int Dimensions { get; }
    public double Theta { get; }
    public RopeScaling? Scaling { get; }

    /// <summary>Reads head_dim × partial_rotary_factor, rope_theta and the rope type with its parameters from either
    /// config layout (5.x <c>rope_parameters</c>, 4.x <c>rope_theta</c> + <c>rope_scaling</c>). Rope types other than
    /// default, linear and llama3 are refused rather than silently computed wrong.</summary>
    public static RotaryEmbedding FromConfig(PretrainedConfig config, int headDim, double defaultPartialFactor = 1.0, double defaultTheta = 10000.0)
    {
        var parameters = config.Raw["rope_scaling"] as System.Text.Json.Nodes.JsonObject ?? config.Raw["rope_parameters"] as System.Text.Json.Nodes.JsonObject;
        double Parameter(string key, double fallback) => parameters?[key]?.GetValue<double>() ?? fallback;
        var ropeType = parameters?["rope_type"]?.GetValue<string>() ?? parameters?["type"]?.GetValue<string>() ?? "default";
        var scaling = ropeType == "default"
            ? null
            : new RopeScaling(ropeType, Parameter("factor", 1.0), Parameter("low_freq_factor", 1.0), Parameter("high_freq_factor", 4.0),
                Parameter("original_max_position_embeddings", 8192));
        var dimensions = (int)(headDim * config.PartialRotaryFactor(defaultPartialFactor));
        try
        {
            return new RotaryEmbedding(dimensions, config.RopeTheta(defaultTheta), scaling);
        }
        catch (NotSupportedException e)
        {
            throw new NotSupportedException($"{config.SourcePath ?? PretrainedConfig.FileName}: {e.Message}");
        }
    }

    private readonly Lock _tablesLock = new();
    private readonly Dictionary<(ScalarType, string), (Tensor Cos, Tensor Sin)> _tables = [];

    /// <summary>cos and sin [B, 1, T, Dimensions] for position ids [B, T], in <paramref name="dtype"/>.</summary>
    public (Tensor Cos, Tensor Sin) Angles(Tensor positionIds, ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        var (cos, sin) = Compute(positionIds, dtype);
        return (cos.MoveToOuterDisposeScope(), sin.MoveToOuterDisposeScope());
    }

    /// <summary>
    /// <see cref="Angles(Tensor, ScalarType)"/> for positions known to lie below <paramref name="positions"/> (e.g. a key/value cache's
    /// capacity), gathered from a table of the first <paramref name="positions"/> angles computed once per dtype and
    /// device: a decoding step then costs two gathers instead of the ~12 ops of the angles. Each table row comes from
    /// the same float32 operations as <see cref="Angles(Tensor, ScalarType)"/> (libtorch's vectorised cos/sin may round a row's last bit
    /// differently from a shorter tensor's, as prefill and decode steps already do).
    /// </summary>
    public (Tensor Cos, Tensor Sin) Angles(Tensor positionIds, ScalarType dtype, long positions)
    {
        (Tensor Cos, Tensor Sin) table;
        lock (_tablesLock)
        {
            var key = (dtype, positionIds.device.ToString());
            if (!_tables.TryGetValue(key, out table) || table.Cos.shape[0] < positions)
            {
                // Grown geometrically so a run of longer generations rebuilds it a few times at most.
                var length = Math.Max(positions, table.Cos is null ? 0 : 2 * table.Cos.shape[0]);
                table.Cos?.Dispose();
                table.Sin?.Dispose();
                using var scope = NewDisposeScope();
                using var all = arange(0, length, ScalarType.Int64, positionIds.device).unsqueeze(0);
                var (cos, sin) = Compute(all, dtype);
                table = _tables[key] = (cos.squeeze(0).squeeze(0).detach().DetachFromDisposeScope(), sin.squeeze(0).squeeze(0).detach().DetachFromDisposeScope());
            }
        }
        using var flat = positionIds.reshape(-1);
        var shape = new[] { positionIds.shape[0], 1, positionIds.shape[1], Dimensions };
        return (table.Cos.index_select(0, flat).view(shape), table.Sin.index_select(0, flat).view(shape));
    }

    private (Tensor Cos, Tensor Sin) Compute(Tensor positionIds, ScalarType dtype)
    {
        var device = positionIds.device;
        // Same float32 operations as transformers so angles at long positions agree bit for bit.
        var exponents = arange(0, Dimensions, 2, ScalarType.Int64, device).to(ScalarType.Float32) / Dimensions;
        var inverseFrequencies = Scale(full_like(exponents, Theta).pow(exponents).reciprocal());
        var frequencies = positionIds.to(ScalarType.Float32).unsqueeze(-1) * inverseFrequencies;
        var angles = cat([frequencies, frequencies], -1).unsqueeze(1);
        return (angles.cos().to(dtype), angles.sin().to(dtype));
    }

    // transformers' linear and llama3 frequency rules, in its float32 operation order.
    private Tensor Scale(Tensor inverseFrequencies)
    {
        if (Scaling is not { } scaling)
            return inverseFrequencies;
        if (scaling.Type == "linear")
            return inverseFrequencies / scaling.Factor;
        var lowFrequencyWavelength = scaling.OriginalMaxPositions / scaling.LowFreqFactor;
        var highFrequencyWavelength = scaling.OriginalMaxPositions / scaling.HighFreqFactor;
        var wavelength = 2 * Math.PI / inverseFrequencies;
        var isLow = wavelength.gt(lowFrequencyWavelength);
        var scaled = where(isLow, inverseFrequencies / scaling.Factor, inverseFrequencies);
        var smooth = (scaling.OriginalMaxPositions / wavelength - scaling.LowFreqFactor) / (scaling.HighFreqFactor - scaling.LowFreqFactor);
        var smoothed = (1 - smooth) * scaled / scaling.Factor + smooth * scaled;
        var isMedium = wavelength.lt(highFrequencyWavelength).logical_not().logical_and(isLow.logical_not());
        return where(isMedium, smoothed, scaled);
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
