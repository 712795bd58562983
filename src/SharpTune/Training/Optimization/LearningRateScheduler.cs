namespace SharpTune.Training.Optimization;

/// <summary>Learning-rate schedules of transformers' <c>get_scheduler</c>.</summary>
public enum SchedulerType
{
    Constant,
    ConstantWithWarmup,
    Linear,
    Cosine,
    Polynomial,
}

/// <summary>
/// The multiplier transformers' schedulers (LambdaLR) apply to each group's peak learning rate at optimizer step
/// <c>step</c> (0-based: the first update uses step 0), with transformers' formulas so the learning rate of every step
/// is identical. Stateless: resuming only needs the step.
/// </summary>
public sealed record LearningRateScheduler(SchedulerType Type, long WarmupSteps, long TotalSteps, double NumCycles = 0.5, double Power = 1.0, double PolynomialEndLearningRate = 1e-7)
{
    /// <summary>Warmup steps from either a count or a ratio of the total, as TrainingArguments.get_warmup_steps does (ceil).</summary>
    public static long ResolveWarmup(long warmupSteps, double warmupRatio, long totalSteps) =>
        warmupSteps > 0 ? warmupSteps : (long)Math.Ceiling(totalSteps * warmupRatio);

    /// <summary>Factor of the peak learning rate <paramref name="initialLearningRate"/> at <paramref name="step"/>.</summary>
    public double Factor(long step, double initialLearningRate)
    {
        double warmup = WarmupSteps, total = TotalSteps;
        switch (Type)
        {
            case SchedulerType.Constant:
                return 1.0;
            case SchedulerType.ConstantWithWarmup:
                return step < WarmupSteps ? step / Math.Max(1.0, warmup) : 1.0;
            case SchedulerType.Linear:
                if (step < WarmupSteps)
                    return step / Math.Max(1.0, warmup);
                return Math.Max(0.0, (total - step) / Math.Max(1.0, total - warmup));
            case SchedulerType.Cosine:
            {
                if (step < WarmupSteps)
                    return step / Math.Max(1.0, warmup);
                var progress = (step - warmup) / Math.Max(1.0, total - warmup);
                return Math.Max(0.0, 0.5 * (1.0 + Math.Cos(Math.PI * NumCycles * 2.0 * progress)));
            }
            case SchedulerType.Polynomial:
            {
                if (PolynomialEndLearningRate > initialLearningRate)
                    throw new ArgumentException($"polynomial schedule: end learning rate ({PolynomialEndLearningRate}) must be below the initial one ({initialLearningRate})");
                if (step < WarmupSteps)
                    return step / Math.Max(1.0, warmup);
                if (step > TotalSteps)
                    return PolynomialEndLearningRate / initialLearningRate;
                var range = initialLearningRate - PolynomialEndLearningRate;
                var remaining = 1 - (step - warmup) / (total - warmup);
                return (range * Math.Pow(remaining, Power) + PolynomialEndLearningRate) / initialLearningRate;
            }
            default:
                throw new ArgumentOutOfRangeException(nameof(Type), Type, null);
        }
    }

    /// <summary>Writes each group's learning rate for optimizer step <paramref name="step"/>.</summary>
    public void Apply(Optimizer optimizer, long step)
    {
        for (var i = 0; i < optimizer.Groups.Count; i++)
        {
            var peak = optimizer.Groups[i].LearningRate;
            optimizer.LearningRates[i] = peak * Factor(step, peak);
        }
    }

    public static SchedulerType Parse(string name) => name.Trim().ToLowerInvariant().Replace("-", "_") switch
    {
        "constant" => SchedulerType.Constant,
        "constant_with_warmup" => SchedulerType.ConstantWithWarmup,
        "linear" => SchedulerType.Linear,
        "cosine" => SchedulerType.Cosine,
        "polynomial" => SchedulerType.Polynomial,
        _ => throw new ArgumentException($"unknown learning-rate scheduler '{name}': expected constant, constant_with_warmup, linear, cosine or polynomial"),
    };
}
