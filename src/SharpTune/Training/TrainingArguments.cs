using SharpTune.Training.Optimization;

namespace SharpTune.Training;

/// <summary>When to evaluate or save: never, every <c>N</c> optimizer steps, or at the end of each epoch.</summary>
public enum IntervalStrategy
{
    No,
    Steps,
    Epoch,
}

public enum OptimizerType
{
    AdamW,
    /// <summary>AdamW with 8-bit blockwise-quantized moments (bitsandbytes' AdamW8bit).</summary>
    AdamW8Bit,
    Sgd,
}

/// <summary>Numeric precision of training. <see cref="BFloat16"/> and <see cref="Float16"/>: weights, activations and
/// gradients in the half type while the optimizer updates fp32 master weights (TorchSharp 0.107 has no autocast, so
/// this is "half weights + fp32 master"); losses are computed in fp32.</summary>
public enum TrainingPrecision
{
    Float32,
    BFloat16,
    /// <summary>fp16 with dynamic loss scaling (<see cref="Optimization.GradScaler"/>): overflowing steps are skipped.</summary>
    Float16,
}

/// <summary>Settings of a <see cref="Trainer"/> run, named after transformers' TrainingArguments.</summary>
public sealed record TrainingArguments
{
    /// <summary>Folder for checkpoints, the JSONL log, the plot and the final model.</summary>
    public required string OutputDir { get; init; }

    public double NumTrainEpochs { get; init; } = 3;
    /// <summary>Optimizer steps to run; overrides <see cref="NumTrainEpochs"/> when positive.</summary>
    public long MaxSteps { get; init; } = -1;
    public int PerDeviceTrainBatchSize { get; init; } = 8;
    public int PerDeviceEvalBatchSize { get; init; } = 8;
    public int GradientAccumulationSteps { get; init; } = 1;

    public OptimizerType Optimizer { get; init; } = OptimizerType.AdamW;
    public double LearningRate { get; init; } = 5e-5;
    public double WeightDecay { get; init; }
    public double AdamBeta1 { get; init; } = 0.9;
    public double AdamBeta2 { get; init; } = 0.999;
    public double AdamEpsilon { get; init; } = 1e-8;
    public double SgdMomentum { get; init; }
    /// <summary>Learning rate of the task head (parameters outside the model's base-model prefix); null: <see cref="LearningRate"/>.</summary>
    public double? HeadLearningRate { get; init; }
    /// <summary>Layer-wise learning-rate decay of the encoder (1 = off). See <see cref="ParameterGroups.Create"/>.</summary>
    public double LayerwiseLearningRateDecay { get; init; } = 1.0;
    /// <summary>Clip the total gradient norm to this; 0 or less disables clipping (the norm is still logged).</summary>
    public double MaxGradNorm { get; init; } = 1.0;

    public SchedulerType LrSchedulerType { get; init; } = SchedulerType.Linear;
    public long WarmupSteps { get; init; }
    public double WarmupRatio { get; init; }
    /// <summary>Cosine schedule: number of waves (0.5 = decay from peak to 0 once).</summary>
    public double NumCycles { get; init; } = 0.5;
    /// <summary>Polynomial schedule: power and final learning rate.</summary>
    public double PolynomialPower { get; init; } = 1.0;
    public double PolynomialEndLearningRate { get; init; } = 1e-7;

    public long Seed { get; init; } = 42;
    /// <summary>Visit training examples in order (no shuffling) — for exact reproductions of a reference loop.</summary>
    public bool ShuffleTrainData { get; init; } = true;
    /// <summary>Group examples of similar lengths into the same batches (LengthGroupedSampler).</summary>
    public bool GroupByLength { get; init; }

    public TrainingPrecision Precision { get; init; } = TrainingPrecision.Float32;

    /// <summary>Recompute each layer's activations during backward instead of storing them (transformers'
    /// gradient_checkpointing): less memory, about one extra forward per step, the same results.</summary>
    public bool GradientCheckpointing { get; init; }

    public IntervalStrategy EvalStrategy { get; init; } = IntervalStrategy.No;
    public long EvalSteps { get; init; } = 500;
    public IntervalStrategy SaveStrategy { get; init; } = IntervalStrategy.No;
    public long SaveSteps { get; init; } = 500;
    /// <summary>Checkpoints kept (the best one is never deleted); null keeps all.</summary>
    public int? SaveTotalLimit { get; init; }
    /// <summary>Log the running training loss every N optimizer steps (1 = every step).</summary>
    public long LoggingSteps { get; init; } = 10;

    /// <summary>Reload the best checkpoint's weights at the end (needs saving at the evaluation points).</summary>
    public bool LoadBestModelAtEnd { get; init; }
    /// <summary>Metric that decides the best checkpoint and early stopping, e.g. "eval_loss" or "eval_accuracy"
    /// (the "eval_" prefix may be left out).</summary>
    public string MetricForBestModel { get; init; } = "eval_loss";
    /// <summary>null: lower is better for metrics whose name contains "loss", higher otherwise.</summary>
    public bool? GreaterIsBetter { get; init; }

    /// <summary>Write <c>training_log.jsonl</c> and <c>training_curves.png</c> in <see cref="OutputDir"/>.</summary>
    public bool WriteLogs { get; init; } = true;

    internal string BestMetricKey => MetricForBestModel.StartsWith("eval_", StringComparison.Ordinal) ? MetricForBestModel : "eval_" + MetricForBestModel;

    internal bool HigherIsBetter => GreaterIsBetter ?? !BestMetricKey.Contains("loss", StringComparison.Ordinal);

    internal void Validate()
    {
        if (PerDeviceTrainBatchSize < 1 || PerDeviceEvalBatchSize < 1)
            throw new ArgumentException("batch sizes must be at least 1");
        if (GradientAccumulationSteps < 1)
            throw new ArgumentException($"gradient accumulation steps must be at least 1 (got {GradientAccumulationSteps})");
        if (MaxSteps <= 0 && NumTrainEpochs <= 0)
            throw new ArgumentException("set a positive number of epochs or max steps");
        if (LearningRate < 0)
            throw new ArgumentException($"learning rate must not be negative (got {LearningRate})");
        if (WarmupRatio is < 0 or > 1)
            throw new ArgumentException($"warmup ratio must be in [0, 1] (got {WarmupRatio})");
        if (EvalStrategy == IntervalStrategy.Steps && EvalSteps < 1 || SaveStrategy == IntervalStrategy.Steps && SaveSteps < 1)
            throw new ArgumentException("eval/save steps must be at least 1");
        if (LoadBestModelAtEnd && (EvalStrategy == IntervalStrategy.No || SaveStrategy != EvalStrategy
                                   || (SaveStrategy == IntervalStrategy.Steps && SaveSteps % EvalSteps != 0)))
            throw new ArgumentException("LoadBestModelAtEnd needs evaluation and saving at the same points (same strategy, save steps a multiple of eval steps)");
    }

    /// <summary>Optimizer steps in one epoch over <paramref name="examples"/> (partial batches and accumulation groups
    /// count) and in the whole run (MaxSteps when set, else NumTrainEpochs epochs).</summary>
    internal (int PerEpoch, long Total) OptimizerSteps(int examples)
    {
        var batchesPerEpoch = (examples + PerDeviceTrainBatchSize - 1) / PerDeviceTrainBatchSize;
        var perEpoch = (batchesPerEpoch + GradientAccumulationSteps - 1) / GradientAccumulationSteps;
        return (perEpoch, MaxSteps > 0 ? MaxSteps : (long)Math.Ceiling(NumTrainEpochs * perEpoch));
    }

    internal LearningRateScheduler CreateScheduler(long totalSteps) =>
        new(LrSchedulerType, LearningRateScheduler.ResolveWarmup(WarmupSteps, WarmupRatio, totalSteps), totalSteps, NumCycles,
            PolynomialPower, PolynomialEndLearningRate);

    internal Optimizer CreateOptimizer(IReadOnlyList<ParameterGroup> groups) => Optimizer switch
    {
        OptimizerType.AdamW => new AdamW(groups, AdamBeta1, AdamBeta2, AdamEpsilon),
        OptimizerType.AdamW8Bit => new AdamW(groups, AdamBeta1, AdamBeta2, AdamEpsilon, eightBitStates: true),
        OptimizerType.Sgd => new Sgd(groups, SgdMomentum),
        _ => throw new ArgumentOutOfRangeException(nameof(Optimizer), Optimizer, null),
    };
}
