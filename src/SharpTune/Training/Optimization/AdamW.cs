using SharpTune.Quantization;
using static TorchSharp.torch;

namespace SharpTune.Training.Optimization;

/// <summary>AdamW with decoupled weight decay, step for step as <c>torch.optim.AdamW</c> (single-tensor path):
/// <c>p ← p·(1 − lr·wd)</c>, moments by lerp/addcmul, bias corrections with the parameter's own step count.
/// With <c>eightBitStates</c> it is bitsandbytes' AdamW8bit: between steps, the moments of parameters of at least
/// <see cref="MinEightBitSize"/> elements are kept blockwise-quantized (blocks of 256 on the dynamic 8-bit maps,
/// signed for the first moment, unsigned for the second), ~2 bytes per parameter instead of 8.</summary>
public sealed class AdamW : Optimizer
{
    public const int EightBitBlockSize = 256;
    public const long MinEightBitSize = 4096;

    private readonly long[] _steps;
    private readonly Tensor?[] _expAvg;
    private readonly Tensor?[] _expAvgSq;
    private readonly (Tensor Codes, Tensor Absmax)?[] _quantizedAvg;
    private readonly (Tensor Codes, Tensor Absmax)?[] _quantizedAvgSq;

    public AdamW(IReadOnlyList<ParameterGroup> groups, double beta1 = 0.9, double beta2 = 0.999, double epsilon = 1e-8, bool eightBitStates = false) : base(groups)
    {
        if (beta1 is < 0 or >= 1 || beta2 is < 0 or >= 1)
            throw new ArgumentException($"AdamW betas must be in [0, 1) (got {beta1}, {beta2})");
        Beta1 = beta1;
        Beta2 = beta2;
        Epsilon = epsilon;
        _steps = new long[Entries.Count];
        _expAvg = new Tensor?[Entries.Count];
        _expAvgSq = new Tensor?[Entries.Count];
        _quantizedAvg = new (Tensor, Tensor)?[Entries.Count];
        _quantizedAvgSq = new (Tensor, Tensor)?[Entries.Count];
        EightBitStates = eightBitStates;
    }

    public bool EightBitStates { get; }

    public double Beta1 { get; }
    public double Beta2 { get; }
    public double Epsilon { get; }

    protected override void Update(int index, Tensor weight, Tensor gradient, double learningRate, double weightDecay)
    {
        if (EightBitStates && weight.numel() >= MinEightBitSize)
        {
            UpdateWithQuantizedMoments(index, weight, gradient, learningRate, weightDecay);
            return;
        }
        // State outlives the step's dispose scope.
        var expAvg = _expAvg[index] ??= zeros_like(weight).DetachFromDisposeScope();
        var expAvgSq = _expAvgSq[index] ??= zeros_like(weight).DetachFromDisposeScope();
        Apply(index, weight, gradient, expAvg, expAvgSq, learningRate, weightDecay);
    }

    private void UpdateWithQuantizedMoments(int index, Tensor weight, Tensor gradient, double learningRate, double weightDecay)
    {
        using var scope = NewDisposeScope();
        var signed = SignedMap(weight.device);
        var unsigned = UnsignedMap(weight.device);
        var expAvg = _quantizedAvg[index] is { } m ? Blockwise.DequantizeBlockwise(m.Codes, m.Absmax, signed, EightBitBlockSize).reshape(weight.shape) : zeros_like(weight, dtype: ScalarType.Float32);
        var expAvgSq = _quantizedAvgSq[index] is { } v ? Blockwise.DequantizeBlockwise(v.Codes, v.Absmax, unsigned, EightBitBlockSize).reshape(weight.shape) : zeros_like(weight, dtype: ScalarType.Float32);
        Apply(index, weight, gradient, expAvg, expAvgSq, learningRate, weightDecay);
        Store(_quantizedAvg, index, Blockwise.QuantizeBlockwise(expAvg, signed, EightBitBlockSize));
        Store(_quantizedAvgSq, index, Blockwise.QuantizeBlockwise(expAvgSq, unsigned, EightBitBlockSize));
    }

    private static void Store((Tensor Codes, Tensor Absmax)?[] states, int index, (Tensor Codes, Tensor Absmax) value)
    {
        if (states[index] is { } old)
        {
            old.Codes.Dispose();
            old.Absmax.Dispose();
        }
        states[index] = (value.Codes.DetachFromDisposeScope(), value.Absmax.DetachFromDisposeScope());
    }

    private static Tensor SignedMap(Device device) => Blockwise.Table("dynamic-signed", () => QuantCodebooks.Dynamic8Bit(signed: true), device);
    private static Tensor UnsignedMap(Device device) => Blockwise.Table("dynamic-unsigned", () => QuantCodebooks.Dynamic8Bit(signed: false), device);

    /// <summary>Bytes held by the moment states (codes, block scales and full-precision moments).</summary>
    public long StateBytes =>
        _expAvg.Concat(_expAvgSq).Where(t => t is not null).Sum(t => t!.NumberOfElements * t.ElementSize)
        + _quantizedAvg.Concat(_quantizedAvgSq).Where(q => q is not null).Sum(q => q!.Value.Codes.NumberOfElements + q.Value.Absmax.NumberOfElements * 4);

    private void Apply(int index, Tensor weight, Tensor gradient, Tensor expAvg, Tensor expAvgSq, double learningRate, double weightDecay)
    {
        var step = ++_steps[index];
        weight.mul_(1 - learningRate * weightDecay);
        expAvg.lerp_(gradient, 1 - Beta1);
        expAvgSq.mul_(Beta2).addcmul_(gradient, gradient, 1 - Beta2);
        var biasCorrection1 = 1 - Math.Pow(Beta1, step);
        var biasCorrection2Sqrt = Math.Sqrt(1 - Math.Pow(Beta2, step));
        using var denominator = (expAvgSq.sqrt() / biasCorrection2Sqrt).add_(Epsilon);
        weight.addcdiv_(expAvg, denominator, -(learningRate / biasCorrection1));
    }

    protected override IEnumerable<(string Suffix, Tensor Tensor)> StateOf(int index)
    {
        if (_quantizedAvg[index] is { } m && _quantizedAvgSq[index] is { } v)
        {
            // Codes and block scales, exactly as held, so a resumed run continues bit for bit.
            yield return ("exp_avg_codes", m.Codes);
            yield return ("exp_avg_absmax", m.Absmax);
            yield return ("exp_avg_sq_codes", v.Codes);
            yield return ("exp_avg_sq_absmax", v.Absmax);
            yield return ("step", tensor(_steps[index]));
            yield break;
        }
        if (_expAvg[index] is null)
            yield break;
        yield return ("exp_avg", _expAvg[index]!);
        yield return ("exp_avg_sq", _expAvgSq[index]!);
        yield return ("step", tensor(_steps[index]));
    }

    protected override void RestoreState(int index, string suffix, Tensor value)
    {
        switch (suffix)
        {
            case "exp_avg":
                _expAvg[index]?.Dispose();
                _expAvg[index] = value.to(WeightOf(index).dtype).clone().DetachFromDisposeScope();
                break;
            case "exp_avg_sq":
                _expAvgSq[index]?.Dispose();
                _expAvgSq[index] = value.to(WeightOf(index).dtype).clone().DetachFromDisposeScope();
                break;
            case "step":
                _steps[index] = value.item<long>();
                break;
            case "exp_avg_codes" or "exp_avg_absmax":
                RestoreQuantized(_quantizedAvg, index, suffix.EndsWith("codes", StringComparison.Ordinal), value);
                break;
            case "exp_avg_sq_codes" or "exp_avg_sq_absmax":
                RestoreQuantized(_quantizedAvgSq, index, suffix.EndsWith("codes", StringComparison.Ordinal), value);
                break;
            default:
                throw new InvalidDataException($"unknown AdamW state '{suffix}' for parameter '{Entries[index].Name}'");
        }
    }

    private static void RestoreQuantized((Tensor Codes, Tensor Absmax)?[] states, int index, bool codes, Tensor value)
    {
        var copy = value.clone().DetachFromDisposeScope();
        var current = states[index] ?? (empty(0).DetachFromDisposeScope(), empty(0).DetachFromDisposeScope());
        (codes ? current.Codes : current.Absmax).Dispose();
        states[index] = codes ? (copy, current.Absmax) : (current.Codes, copy);
    }

    public override void Dispose()
    {
        foreach (var t in _expAvg.Concat(_expAvgSq))
            t?.Dispose();
        foreach (var q in _quantizedAvg.Concat(_quantizedAvgSq))
        {
            q?.Codes.Dispose();
            q?.Absmax.Dispose();
        }
        base.Dispose();
    }
}
