using static TorchSharp.torch;

namespace SharpTune.Training.Optimization;

/// <summary>AdamW with decoupled weight decay, step for step as <c>torch.optim.AdamW</c> (single-tensor path):
/// <c>p ← p·(1 − lr·wd)</c>, moments by lerp/addcmul, bias corrections with the parameter's own step count.</summary>
public sealed class AdamW : Optimizer
{
    private readonly long[] _steps;
    private readonly Tensor?[] _expAvg;
    private readonly Tensor?[] _expAvgSq;

    public AdamW(IReadOnlyList<ParameterGroup> groups, double beta1 = 0.9, double beta2 = 0.999, double epsilon = 1e-8) : base(groups)
    {
        if (beta1 is < 0 or >= 1 || beta2 is < 0 or >= 1)
            throw new ArgumentException($"AdamW betas must be in [0, 1) (got {beta1}, {beta2})");
        Beta1 = beta1;
        Beta2 = beta2;
        Epsilon = epsilon;
        _steps = new long[Entries.Count];
        _expAvg = new Tensor?[Entries.Count];
        _expAvgSq = new Tensor?[Entries.Count];
    }

    public double Beta1 { get; }
    public double Beta2 { get; }
    public double Epsilon { get; }

    protected override void Update(int index, Tensor weight, Tensor gradient, double learningRate, double weightDecay)
    {
        // State outlives the step's dispose scope.
        var expAvg = _expAvg[index] ??= zeros_like(weight).DetachFromDisposeScope();
        var expAvgSq = _expAvgSq[index] ??= zeros_like(weight).DetachFromDisposeScope();
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
            default:
                throw new InvalidDataException($"unknown AdamW state '{suffix}' for parameter '{Entries[index].Name}'");
        }
    }

    public override void Dispose()
    {
        foreach (var t in _expAvg.Concat(_expAvgSq))
            t?.Dispose();
        base.Dispose();
    }
}
