namespace SharpTune.Training;

/// <summary>Where a run stands; saved in every checkpoint (<c>trainer_state.json</c>) so a resumed run continues it.</summary>
public sealed class TrainerState
{
    /// <summary>Optimizer steps taken.</summary>
    public long GlobalStep { get; set; }
    /// <summary>Fractional epoch (2.5 = halfway through the third epoch).</summary>
    public double Epoch { get; set; }
    public long MaxSteps { get; set; }
    public int NumTrainEpochs { get; set; }
    /// <summary>Best value of <see cref="TrainingArguments.MetricForBestModel"/> seen so far.</summary>
    public double? BestMetric { get; set; }
    public string? BestModelCheckpoint { get; set; }
    /// <summary>Every log entry (training loss, learning rate, grad norm, evaluation metrics) with its step and epoch.</summary>
    public List<Dictionary<string, double>> LogHistory { get; set; } = [];
    /// <summary>Counters of stateful callbacks (e.g. early stopping), saved with the checkpoint.</summary>
    public Dictionary<string, double> CallbackState { get; set; } = [];
    /// <summary>Epoch in progress (0-based) and optimizer steps already done in it — where a resumed run restarts.</summary>
    public int EpochIndex { get; set; }
    public long StepsInEpoch { get; set; }
    /// <summary>fp16 runs: optimizer steps skipped because the gradients overflowed (the scheduler did not advance on
    /// them, as in transformers), and the loss scaler's state.</summary>
    public long SkippedSteps { get; set; }
    public double? LossScale { get; set; }
    public int LossScaleGrowthTracker { get; set; }
}

/// <summary>Lets callbacks stop training early.</summary>
public sealed class TrainerControl
{
    public bool ShouldStop { get; set; }
}

/// <summary>Hooks into the training loop, as transformers' TrainerCallback. Override what you need.</summary>
public abstract class TrainerCallback
{
    public virtual void OnTrainBegin(TrainingArguments args, TrainerState state, TrainerControl control) { }
    public virtual void OnStepEnd(TrainingArguments args, TrainerState state, TrainerControl control) { }
    public virtual void OnEpochEnd(TrainingArguments args, TrainerState state, TrainerControl control) { }
    /// <summary>A log entry: "loss", "learning_rate", "grad_norm", or "eval_*" metrics, plus "step" and "epoch".</summary>
    public virtual void OnLog(TrainingArguments args, TrainerState state, TrainerControl control, IReadOnlyDictionary<string, double> logs) { }
    public virtual void OnEvaluate(TrainingArguments args, TrainerState state, TrainerControl control, IReadOnlyDictionary<string, double> metrics) { }
    public virtual void OnSave(TrainingArguments args, TrainerState state, TrainerControl control, string checkpointDirectory) { }
    public virtual void OnTrainEnd(TrainingArguments args, TrainerState state, TrainerControl control) { }
}

/// <summary>Stops training when <see cref="TrainingArguments.MetricForBestModel"/> has not improved by more than
/// <paramref name="threshold"/> for <paramref name="patience"/> evaluations in a row (transformers' EarlyStoppingCallback).</summary>
public sealed class EarlyStoppingCallback(int patience = 1, double threshold = 0.0) : TrainerCallback
{
    private const string CounterKey = "early_stopping_patience_counter";
    private const string BestKey = "early_stopping_best";

    public override void OnEvaluate(TrainingArguments args, TrainerState state, TrainerControl control, IReadOnlyDictionary<string, double> metrics)
    {
        if (!metrics.TryGetValue(args.BestMetricKey, out var value))
            throw new InvalidOperationException($"early stopping needs the metric '{args.BestMetricKey}', but evaluation returned: {string.Join(", ", metrics.Keys)}");
        var improved = !state.CallbackState.TryGetValue(BestKey, out var best)
                       || (args.HigherIsBetter ? value > best : value < best) && Math.Abs(value - best) > threshold;
        if (improved)
        {
            state.CallbackState[BestKey] = value;
            state.CallbackState[CounterKey] = 0;
        }
        else
            state.CallbackState[CounterKey] = state.CallbackState.GetValueOrDefault(CounterKey) + 1;
        if (state.CallbackState[CounterKey] >= patience)
            control.ShouldStop = true;
    }
}

/// <summary>What the progress callback receives after every optimizer step.</summary>
public sealed record TrainingProgress(long Step, long TotalSteps, double Epoch, double Loss, double LearningRate, TimeSpan Elapsed, TimeSpan? Remaining)
{
    public override string ToString() =>
        $"step {Step}/{TotalSteps} loss {Loss:F4} lr {LearningRate:E2}" + (Remaining is { } r ? $" eta {r:hh\\:mm\\:ss}" : "");
}
