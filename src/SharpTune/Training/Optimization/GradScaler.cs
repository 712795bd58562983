using static TorchSharp.torch;

namespace SharpTune.Training.Optimization;

/// <summary>
/// Dynamic loss scaling for fp16 training, with the semantics of <c>torch.amp.GradScaler</c>: the loss is multiplied
/// by <see cref="Scale"/> before backward so that small gradients survive fp16; before clipping, the gradients are
/// unscaled (in fp32) and checked; a step whose gradients hold inf or NaN is skipped and the scale multiplied by
/// <see cref="BackoffFactor"/>; after <see cref="GrowthInterval"/> good steps in a row it grows by
/// <see cref="GrowthFactor"/>. <see cref="Optimizer.Step"/> drives it.
/// </summary>
public sealed class GradScaler
{
    public GradScaler(double initScale = 65536.0, double growthFactor = 2.0, double backoffFactor = 0.5, int growthInterval = 2000)
    {
        if (!(initScale > 0) || !double.IsFinite(initScale))
            throw new ArgumentException($"the initial loss scale must be positive and finite (got {initScale})");
        if (!(growthFactor > 1))
            throw new ArgumentException($"the growth factor must be above 1 (got {growthFactor})");
        if (backoffFactor is not (> 0 and < 1))
            throw new ArgumentException($"the backoff factor must be in (0, 1) (got {backoffFactor})");
        if (growthInterval < 1)
            throw new ArgumentException($"the growth interval must be at least 1 (got {growthInterval})");
        Scale = initScale;
        GrowthFactor = growthFactor;
        BackoffFactor = backoffFactor;
        GrowthInterval = growthInterval;
    }

    public double Scale { get; private set; }

    /// <summary>Good steps in a row since the scale last changed.</summary>
    public int GrowthTracker { get; private set; }

    public double GrowthFactor { get; }
    public double BackoffFactor { get; }
    public int GrowthInterval { get; }

    /// <summary>Whether the last step's gradients overflowed, so that its optimizer (and scheduler) step was skipped.</summary>
    public bool LastStepSkipped { get; private set; }

    /// <summary>The loss to call backward on: <paramref name="loss"/> × <see cref="Scale"/>.</summary>
    public Tensor ScaleLoss(Tensor loss) => loss * Scale;

    /// <summary>Continues from a saved <see cref="Scale"/> and <see cref="GrowthTracker"/> (a resumed run).</summary>
    public void Restore(double scale, int growthTracker)
    {
        if (!(scale > 0) || growthTracker < 0)
            throw new ArgumentException($"invalid loss scaler state: scale {scale}, growth tracker {growthTracker}");
        (Scale, GrowthTracker) = (scale, growthTracker);
    }

    /// <summary>torch's unscale_: multiplies the gradients in place by 1/scale (the reciprocal rounded to fp32, as torch
    /// does) and returns true when any of them holds inf or NaN.</summary>
    public bool Unscale(IReadOnlyList<Tensor> gradients)
    {
        if (gradients.Count == 0)
            return false;
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var inverse = (double)(float)(1.0 / Scale);
        foreach (var gradient in gradients)
            gradient.mul_(inverse);
        // One device synchronisation for all gradients.
        return !stack(gradients.Select(g => g.isfinite().all()).ToArray()).all().item<bool>();
    }

    /// <summary>torch's update(): back off after an overflow, grow after <see cref="GrowthInterval"/> good steps.</summary>
    public void Update(bool foundInf)
    {
        LastStepSkipped = foundInf;
        if (foundInf)
        {
            Scale *= BackoffFactor;
            GrowthTracker = 0;
        }
        else if (GrowthTracker + 1 == GrowthInterval)
        {
            // The scale is an fp32 tensor in torch: it grows only while it stays finite there.
            var grown = Scale * GrowthFactor;
            if (float.IsFinite((float)grown))
                Scale = grown;
            GrowthTracker = 0;
        }
        else
            GrowthTracker++;
    }
}
