using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using SharpTune.Engine;
using SharpTune.Models;
using SharpTune.Training.Data;
using SharpTune.Training.Optimization;
using TorchSharp;
using static TorchSharp.torch;

namespace SharpTune.Training;

/// <summary>Model outputs over a data set: one row of logits per example and the labels, when the examples had them.</summary>
public sealed record EvalPrediction(float[][] Logits, long[]? Labels, float[][]? Targets);

/// <summary>Result of <see cref="Trainer.Predict"/>: predictions plus, for labelled data, loss and metrics.</summary>
public sealed record PredictionOutput(EvalPrediction Predictions, IReadOnlyDictionary<string, double> Metrics);

/// <summary>Result of <see cref="Trainer.Train"/>.</summary>
public sealed record TrainOutput(long GlobalStep, double TrainingLoss, TimeSpan Elapsed, TrainerState State);

/// <summary>
/// The training loop of transformers' Trainer for any <see cref="PreTrainedModel"/> whose <c>Forward</c> returns a loss
/// when labels are given: AdamW/SGD with decay groups, head and layer-wise learning rates, schedules with warmup,
/// gradient accumulation and clipping, bf16 or fp16 (with dynamic loss scaling) over fp32 master weights, gradient
/// checkpointing, evaluation, resumable checkpoints, best-model selection, early stopping, JSONL logs, a loss plot and
/// progress reporting.
/// </summary>
public sealed class Trainer
{
    private readonly List<TrainerCallback> _callbacks;

    public Trainer(PreTrainedModel model, TrainingArguments args, IReadOnlyList<TrainingExample> trainDataset,
        IReadOnlyList<TrainingExample>? evalDataset = null, IDataCollator? dataCollator = null,
        Func<EvalPrediction, IReadOnlyDictionary<string, double>>? computeMetrics = null, IEnumerable<TrainerCallback>? callbacks = null)
    {
        args.Validate();
        Model = model;
        Args = args;
        TrainDataset = trainDataset;
        EvalDataset = evalDataset;
        DataCollator = dataCollator ?? new DataCollatorWithPadding(model.Config.Get<long?>("pad_token_id", 0) ?? 0);
        ComputeMetrics = computeMetrics;
        _callbacks = [.. callbacks ?? []];
        if (args.WriteLogs)
            _callbacks.Add(new TrainingLogWriter(args.OutputDir));
        if (args.EvalStrategy != IntervalStrategy.No && evalDataset is null)
            throw new ArgumentException("an evaluation strategy is set but no evaluation data set was given");
    }

    public PreTrainedModel Model { get; }
    public TrainingArguments Args { get; }
    public IReadOnlyList<TrainingExample> TrainDataset { get; }
    public IReadOnlyList<TrainingExample>? EvalDataset { get; }
    public IDataCollator DataCollator { get; }
    public Func<EvalPrediction, IReadOnlyDictionary<string, double>>? ComputeMetrics { get; }
    public IReadOnlyList<TrainerCallback> Callbacks => _callbacks;

    /// <summary>Receives the step, loss, learning rate and ETA after every optimizer step (the CLI draws a bar).</summary>
    public IProgress<TrainingProgress>? Progress { get; set; }

    /// <summary>Where the trainer says what it does (start, end, resume); silent by default.</summary>
    public ILogger Logger { get; set; } = NullLogger.Instance;

    public TrainerState State { get; private set; } = new();

    private Device Device => Model.parameters().FirstOrDefault()?.device ?? CPU;

    /// <summary>Trains from scratch or, given <paramref name="resumeFromCheckpoint"/>, continues a checkpoint's run so
    /// that the result equals the uninterrupted run's. <paramref name="cancellationToken"/> is checked before every
    /// optimizer step (cancelling throws <see cref="OperationCanceledException"/>; checkpoints already written stay).</summary>
    public TrainOutput Train(string? resumeFromCheckpoint = null, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        if (TrainDataset.Count == 0)
            throw new ArgumentException("the training data set is empty");
        var args = Args;
        Directory.CreateDirectory(args.OutputDir);
        TorchRuntime.Seed(args.Seed);
        if (args.Precision != TrainingPrecision.Float32)
            Model.to(args.Precision == TrainingPrecision.BFloat16 ? ScalarType.BFloat16 : ScalarType.Float16);
        if (args.GradientCheckpointing)
            Model.GradientCheckpointingEnable();

        var (stepsPerEpoch, totalSteps) = args.OptimizerSteps(TrainDataset.Count);
        var epochs = (int)Math.Ceiling((double)totalSteps / stepsPerEpoch);
        var scheduler = args.CreateScheduler(totalSteps);

        var groups = ParameterGroups.Create(Model, args.LearningRate, args.WeightDecay, Model.BaseModelPrefix, args.HeadLearningRate, args.LayerwiseLearningRateDecay);
        using var optimizer = args.CreateOptimizer(groups);
        State = resumeFromCheckpoint is null ? new TrainerState() : TrainerCheckpoint.Restore(resumeFromCheckpoint, Model, optimizer);
        State.MaxSteps = totalSteps;
        State.NumTrainEpochs = epochs;
        var scaler = args.Precision == TrainingPrecision.Float16 ? new GradScaler() : null;
        if (scaler is not null && State.LossScale is { } scale)
            scaler.Restore(scale, State.LossScaleGrowthTracker);
        var control = new TrainerControl();
        var watch = Stopwatch.StartNew();
        double lossSinceLog = 0, lossTotal = 0;
        long stepsSinceLog = 0, stepsThisRun = 0;
        string? pendingBest = null;
        Logger.LogInformation("Training {Examples} examples for {Steps} optimizer steps ({Epochs} epochs) on {Device}{Resume}",
            TrainDataset.Count, totalSteps, epochs, Device, resumeFromCheckpoint is null ? "" : $", resuming from {resumeFromCheckpoint} at step {State.GlobalStep}");
        Notify(c => c.OnTrainBegin(args, State, control));

        Model.train();
        for (var epoch = State.EpochIndex; epoch < epochs && !control.ShouldStop && State.GlobalStep < totalSteps; epoch++)
        {
            var windows = EpochOrder(epoch).Chunk(args.PerDeviceTrainBatchSize).Chunk(args.GradientAccumulationSteps).ToList();
            var skip = epoch == State.EpochIndex ? State.StepsInEpoch : 0;
            State.EpochIndex = epoch;
            for (var w = (int)skip; w < windows.Count && !control.ShouldStop && State.GlobalStep < totalSteps; w++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var windowLoss = 0.0;
                foreach (var batchIndices in windows[w])
                {
                    using var scope = NewDisposeScope();
                    using var batch = DataCollator.Collate(batchIndices.Select(i => TrainDataset[i]).ToList(), Device);
                    using var output = Model.Forward(batch.Inputs);
                    var loss = (output.Loss ?? throw new InvalidOperationException($"{Model.GetType().Name} returned no loss: do the examples carry labels?"))
                               / windows[w].Length;
                    (scaler?.ScaleLoss(loss) ?? loss).backward();
                    windowLoss += loss.to(ScalarType.Float32).item<float>();
                }
                // Steps skipped for overflowing fp16 gradients do not advance the schedule.
                var scheduleStep = State.GlobalStep - State.SkippedSteps;
                scheduler.Apply(optimizer, scheduleStep);
                var learningRate = args.LearningRate * scheduler.Factor(scheduleStep, args.LearningRate);
                var gradNorm = optimizer.Step(args.MaxGradNorm > 0 ? args.MaxGradNorm : null, scaler);
                optimizer.ZeroGrad();
                if (scaler is not null)
                {
                    State.SkippedSteps += scaler.LastStepSkipped ? 1 : 0;
                    (State.LossScale, State.LossScaleGrowthTracker) = (scaler.Scale, scaler.GrowthTracker);
                }
                State.GlobalStep++;
                State.StepsInEpoch = w + 1;
                State.Epoch = epoch + (double)(w + 1) / windows.Count;
                lossSinceLog += windowLoss;
                lossTotal += windowLoss;
                stepsSinceLog++;
                stepsThisRun++;
                Notify(c => c.OnStepEnd(args, State, control));

                var lastStep = State.GlobalStep >= totalSteps;
                if (State.GlobalStep % args.LoggingSteps == 0 || lastStep)
                {
                    Log(new() { ["loss"] = lossSinceLog / stepsSinceLog, ["learning_rate"] = learningRate, ["grad_norm"] = gradNorm }, control);
                    (lossSinceLog, stepsSinceLog) = (0, 0);
                }
                var elapsed = watch.Elapsed;
                Progress?.Report(new TrainingProgress(State.GlobalStep, totalSteps, State.Epoch, windowLoss, learningRate, elapsed,
                    elapsed * ((double)(totalSteps - State.GlobalStep) / stepsThisRun)));

                if (args.EvalStrategy == IntervalStrategy.Steps && State.GlobalStep % args.EvalSteps == 0)
                    pendingBest = EvaluateDuringTraining(control);
                if (args.SaveStrategy == IntervalStrategy.Steps && State.GlobalStep % args.SaveSteps == 0)
                    SaveCheckpoint(optimizer, ref pendingBest, control);
            }
            if (State.StepsInEpoch == windows.Count)
            {
                // The epoch is complete: a checkpoint taken now resumes at the next one.
                (State.EpochIndex, State.StepsInEpoch) = (epoch + 1, 0);
                Notify(c => c.OnEpochEnd(args, State, control));
                if (args.EvalStrategy == IntervalStrategy.Epoch)
                    pendingBest = EvaluateDuringTraining(control);
                if (args.SaveStrategy == IntervalStrategy.Epoch)
                    SaveCheckpoint(optimizer, ref pendingBest, control);
            }
        }
        Model.eval();

        if (optimizer.UsesMasterWeights)
        {
            // Hand back an fp32 model holding the master weights.
            Model.to(ScalarType.Float32);
            CopyWeights(optimizer.Weights());
        }
        if (args.LoadBestModelAtEnd && State.BestModelCheckpoint is { } best)
            TrainerCheckpoint.LoadWeights(best, Model);
        Notify(c => c.OnTrainEnd(args, State, control));
        var trainingLoss = stepsThisRun > 0 ? lossTotal / stepsThisRun : double.NaN;
        Logger.LogInformation("Trained {Steps} steps in {Elapsed}: mean loss {Loss:F4}", State.GlobalStep, watch.Elapsed, trainingLoss);
        return new TrainOutput(State.GlobalStep, trainingLoss, watch.Elapsed, State);
    }

    /// <summary>Runs the model over a labelled data set: loss and <c>compute_metrics</c>, keys prefixed "eval_".</summary>
    public IReadOnlyDictionary<string, double> Evaluate(IReadOnlyList<TrainingExample>? dataset = null, string metricPrefix = "eval") =>
        Predict(dataset ?? EvalDataset ?? throw new ArgumentException("no evaluation data set"), metricPrefix).Metrics;

    /// <summary>Logits for every example (in order), with loss and metrics when the examples are labelled.</summary>
    public PredictionOutput Predict(IReadOnlyList<TrainingExample> dataset, string metricPrefix = "test")
    {
        var wasTraining = Model.training;
        Model.eval();
        var logits = new List<float[]>(dataset.Count);
        double lossSum = 0;
        long lossCount = 0;
        using (no_grad())
        {
            foreach (var chunk in dataset.Chunk(Args.PerDeviceEvalBatchSize))
            {
                using var scope = NewDisposeScope();
                using var batch = DataCollator.Collate(chunk, Device);
                using var output = Model.Forward(batch.Inputs);
                if (output.Loss is { } loss)
                {
                    lossSum += loss.to(ScalarType.Float32).item<float>() * chunk.Length;
                    lossCount += chunk.Length;
                }
                if (output.Logits is { } rows && rows.dim() == 2)
                {
                    var values = rows.to(ScalarType.Float32).cpu().data<float>().ToArray();
                    var width = (int)rows.shape[1];
                    for (var r = 0; r < chunk.Length; r++)
                        logits.Add(values.AsSpan(r * width, width).ToArray());
                }
            }
        }
        if (wasTraining)
            Model.train();
        var labels = dataset.All(e => e.Label is not null) ? dataset.Select(e => e.Label!.Value).ToArray() : null;
        var targets = dataset.All(e => e.Targets is not null) ? dataset.Select(e => e.Targets!).ToArray() : null;
        var prediction = new EvalPrediction([.. logits], labels, targets);
        var metrics = new Dictionary<string, double>();
        if (lossCount > 0)
            metrics[$"{metricPrefix}_loss"] = lossSum / lossCount;
        if (ComputeMetrics is not null && (labels is not null || targets is not null))
        {
            if (logits.Count != dataset.Count)
                throw new InvalidOperationException("compute_metrics needs one row of logits per example ([batch, classes] outputs)");
            foreach (var (key, value) in ComputeMetrics(prediction))
                metrics[key.StartsWith(metricPrefix + "_", StringComparison.Ordinal) ? key : $"{metricPrefix}_{key}"] = value;
        }
        return new PredictionOutput(prediction, metrics);
    }

    /// <summary>Saves the model (config + safetensors) for AutoModel.FromPretrained.</summary>
    public void SaveModel(string? directory = null) => Model.SavePretrained(directory ?? Args.OutputDir);

    private int[] EpochOrder(int epoch)
    {
        if (Args.GroupByLength)
            return Samplers.LengthGrouped(TrainDataset.Select(e => e.Length).ToList(), Args.PerDeviceTrainBatchSize, Args.Seed, epoch);
        return Args.ShuffleTrainData ? Samplers.Random(TrainDataset.Count, Args.Seed, epoch) : Samplers.Sequential(TrainDataset.Count);
    }

    /// <summary>Evaluates, logs, updates the best metric; returns "best" when this evaluation is the best so far so the
    /// checkpoint saved at the same step becomes the best checkpoint.</summary>
    private string? EvaluateDuringTraining(TrainerControl control)
    {
        var metrics = Evaluate();
        Log(new Dictionary<string, double>(metrics), control);
        string? best = null;
        if (metrics.TryGetValue(Args.BestMetricKey, out var value))
        {
            if (State.BestMetric is not { } current || (Args.HigherIsBetter ? value > current : value < current))
            {
                State.BestMetric = value;
                best = "best";
            }
        }
        else if (Args.LoadBestModelAtEnd)
            throw new InvalidOperationException($"metric_for_best_model '{Args.BestMetricKey}' is not among the evaluation metrics: {string.Join(", ", metrics.Keys)}");
        Notify(c => c.OnEvaluate(Args, State, control, metrics));
        return best;
    }

    private void SaveCheckpoint(Optimizer optimizer, ref string? pendingBest, TrainerControl control)
    {
        var directory = Path.Combine(Args.OutputDir, $"{TrainerCheckpoint.Prefix}{State.GlobalStep}");
        if (pendingBest is not null)
            State.BestModelCheckpoint = directory;
        pendingBest = null;
        TrainerCheckpoint.Save(Args.OutputDir, Model, optimizer, State);
        if (Args.SaveTotalLimit is { } limit)
            TrainerCheckpoint.Rotate(Args.OutputDir, limit, State.BestModelCheckpoint);
        Notify(c => c.OnSave(Args, State, control, directory));
    }

    private void CopyWeights(IEnumerable<(string Name, Tensor Weight)> weights)
    {
        using var noGrad = no_grad();
        var parameters = Model.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        foreach (var (name, weight) in weights)
            parameters[name].copy_(weight);
    }

    private void Log(Dictionary<string, double> entry, TrainerControl control)
    {
        entry["step"] = State.GlobalStep;
        entry["epoch"] = Math.Round(State.Epoch, 4);
        State.LogHistory.Add(entry);
        Notify(c => c.OnLog(Args, State, control, entry));
    }

    private void Notify(Action<TrainerCallback> action)
    {
        foreach (var callback in _callbacks)
            action(callback);
    }
}
