using System.Diagnostics;
using System.Globalization;
using System.Text;
using SharpTune.Classic;
using SharpTune.Data;
using SharpTune.Engine;
using SharpTune.IO;
using SharpTune.Metrics;
using SharpTune.Models;
using SharpTune.Tokenizers;
using SharpTune.Training.Data;
using SharpTune.Training.Heads;
using TorchSharp;
using static TorchSharp.torch;

namespace SharpTune.Training.Approaches;

/// <summary>Settings shared by the fine-tuning approaches (names follow the classify command's options).</summary>
public sealed record FineTuneOptions(string ModelDirectory)
{
    public double Epochs { get; init; } = 1;
    public double LearningRate { get; init; } = 5e-5;
    public int BatchSize { get; init; } = 32;
    public int MaxLength { get; init; } = 64;
    public double WarmupRatio { get; init; } = 0.06;
    public double WeightDecay { get; init; } = 0.01;
    public int GradientAccumulationSteps { get; init; } = 1;
    public bool BFloat16 { get; init; }
    /// <summary>fp16 with dynamic loss scaling (exclusive with <see cref="BFloat16"/>).</summary>
    public bool Float16 { get; init; }
    /// <summary>Recompute layer activations in backward (less memory, same results).</summary>
    public bool GradientCheckpointing { get; init; }
    /// <summary>Pooling head on the encoder; null uses the architecture's own sequence-classification head.</summary>
    public PoolingStrategy? Pooling { get; init; }
    public double? HeadLearningRate { get; init; }
    public double LayerwiseLearningRateDecay { get; init; } = 1.0;
    public Device? Device { get; init; }
    /// <summary>Checkpoint every this many optimizer steps into the approach's output folder (<c>checkpoint-N/</c>,
    /// the newest two kept); 0 saves none.</summary>
    public long SaveSteps { get; init; }
    /// <summary>Continue each training run from the newest complete checkpoint in its output folder (a run without one
    /// starts afresh); the result equals an uninterrupted run's.</summary>
    public bool Resume { get; init; }
}

/// <summary>Tokenizes labelled texts into training examples (truncated to the maximum length).</summary>
public static class TextExamples
{
    public static List<TrainingExample> Encode(Tokenizer tokenizer, LabeledTexts texts, int maxLength, IReadOnlyList<int>? labels)
    {
        var options = EncodeOptions.Truncated(maxLength);
        var examples = new List<TrainingExample>(texts.Count);
        for (var i = 0; i < texts.Count; i++)
        {
            var encoding = tokenizer.Encode(texts.Texts[i], texts.Pairs?[i], options);
            examples.Add(new TrainingExample(encoding.Ids.Select(id => (long)id).ToArray())
            {
                TokenTypeIds = encoding.TypeIds.Select(t => (long)t).ToArray(),
                Label = labels?[i],
            });
        }
        return examples;
    }

    /// <summary>The model folder's own tokenizer (tokenizer.json, vocab.txt, ...).</summary>
    public static Tokenizer LoadTokenizer(string modelDirectory) => AutoTokenizer.FromPretrained(modelDirectory);
}

/// <summary>
/// <c>--approach finetune</c>: fine-tunes the pretrained encoder with a sequence-classification head through the
/// <see cref="Trainer"/> (AdamW, linear warmup/decay) and predicts the eval and test texts with the fine-tuned model.
/// </summary>
public sealed class FineTuneApproach(FineTuneOptions options) : IClassificationApproach
{
    public string Name => "finetune";

    public FineTuneOptions Options { get; } = options;

    public ApproachResult Run(ClassificationProblem problem, string? outputDirectory, IProgress<ApproachProgress>? progress = null, CancellationToken cancellation = default)
    {
        var tokenizer = TextExamples.LoadTokenizer(Options.ModelDirectory);
        var train = TextExamples.Encode(tokenizer, problem.Train, Options.MaxLength, problem.TrainLabels);
        var eval = TextExamples.Encode(tokenizer, problem.Eval, Options.MaxLength, problem.EvalLabels);
        var test = problem.Test is null ? null : TextExamples.Encode(tokenizer, problem.Test, Options.MaxLength, null);
        var run = FineTuning.TrainAndPredict(Options, problem.Labels, problem.Seed, train, [eval, .. test is null ? Array.Empty<List<TrainingExample>>() : [test]],
            outputDirectory, fraction => progress?.Report(new ApproachProgress(fraction, "fine-tuning")), cancellation);
        var description = Options.Pooling is { } pooling
            ? $"{Path.GetFileName(Path.GetFullPath(Options.ModelDirectory))} + {Pooling.Name(pooling)} pooling head, fine-tuned {Options.Epochs} epoch(s)"
            : $"{Path.GetFileName(Path.GetFullPath(Options.ModelDirectory))} fine-tuned {Options.Epochs} epoch(s), lr {Options.LearningRate}";
        return new ApproachResult(Name, description, run.Probabilities[0], test is null ? null : run.Probabilities[1], run.TrainSeconds, run.PredictSeconds,
            new Dictionary<string, double> { ["train_loss"] = run.TrainingLoss, ["steps"] = run.Steps, ["parameters"] = run.Parameters });
    }
}

/// <summary>
/// <c>--approach kfold</c>: a pooling head on the encoder trained on each of k stratified folds; every training text
/// gets an out-of-fold prediction (from the model that did not see it), giving a cross-validated score, and the eval
/// and test predictions are the average of the k models. OOF predictions are written to <c>oof_predictions.csv</c>.
/// </summary>
public sealed class KFoldApproach(FineTuneOptions options, int folds = 5) : IClassificationApproach
{
    public const string OofFileName = "oof_predictions.csv";

    public string Name => "kfold";

    public FineTuneOptions Options { get; } = options with { Pooling = options.Pooling ?? PoolingStrategy.Mean };
    public int Folds { get; } = folds >= 2 ? folds : throw new ArgumentException($"k-fold needs at least 2 folds (got {folds})");

    /// <summary>Out-of-fold class probabilities of the training texts (row-major), filled by <see cref="Run"/>.</summary>
    public double[]? OutOfFoldProbabilities { get; private set; }

    public ApproachResult Run(ClassificationProblem problem, string? outputDirectory, IProgress<ApproachProgress>? progress = null, CancellationToken cancellation = default)
    {
        var tokenizer = TextExamples.LoadTokenizer(Options.ModelDirectory);
        var trainLabels = problem.TrainLabels;
        var train = TextExamples.Encode(tokenizer, problem.Train, Options.MaxLength, trainLabels);
        var eval = TextExamples.Encode(tokenizer, problem.Eval, Options.MaxLength, problem.EvalLabels);
        var test = problem.Test is null ? null : TextExamples.Encode(tokenizer, problem.Test, Options.MaxLength, null);
        var classes = problem.Labels.Count;
        var labelColumn = Dataset.FromColumns([new("label", trainLabels.Select(l => (string?)l.ToString(CultureInfo.InvariantCulture)).ToList())]);
        var splits = labelColumn.StratifiedKFold(Folds, "label", problem.Seed);

        var oof = new double[train.Count * classes];
        var evalSum = new double[eval.Count * classes];
        var testSum = test is null ? null : new double[test.Count * classes];
        var details = new Dictionary<string, double>();
        double trainSeconds = 0, predictSeconds = 0;
        for (var fold = 0; fold < splits.Count; fold++)
        {
            var (trainRows, validationRows) = splits[fold];
            var validation = validationRows.Select(i => train[i]).ToList();
            var targets = new List<List<TrainingExample>> { validation, eval };
            if (test is not null)
                targets.Add(test);
            var foldIndex = fold;
            var run = FineTuning.TrainAndPredict(Options, problem.Labels, problem.Seed + fold, trainRows.Select(i => train[i]).ToList(), targets,
                outputDirectory is null ? null : Path.Combine(outputDirectory, $"fold-{fold}"),
                fraction => progress?.Report(new ApproachProgress((foldIndex + fraction) / splits.Count, $"fold {foldIndex + 1}/{splits.Count}")), cancellation);
            for (var r = 0; r < validationRows.Length; r++)
                Array.Copy(run.Probabilities[0], r * classes, oof, validationRows[r] * classes, classes);
            Accumulate(evalSum, run.Probabilities[1]);
            if (testSum is not null)
                Accumulate(testSum, run.Probabilities[2]);
            var foldTruth = validationRows.Select(i => trainLabels[i]).ToArray();
            details[$"fold{fold}_accuracy"] = ClassificationMetrics.Accuracy(foldTruth, ArgMax(run.Probabilities[0], classes));
            if (classes == 2)
                details[$"fold{fold}_roc_auc"] = ClassificationMetrics.RocAuc(foldTruth, ClassificationMetrics.Column(run.Probabilities[0], classes, 1));
            trainSeconds += run.TrainSeconds;
            predictSeconds += run.PredictSeconds;
        }
        details["cv_accuracy"] = ClassificationMetrics.Accuracy(trainLabels, ArgMax(oof, classes));
        if (classes == 2)
            details["cv_roc_auc"] = ClassificationMetrics.RocAuc(trainLabels, ClassificationMetrics.Column(oof, classes, 1));
        details["folds"] = splits.Count;
        OutOfFoldProbabilities = oof;
        if (outputDirectory is not null)
            WriteOof(Path.Combine(outputDirectory, OofFileName), problem, oof, classes);
        Scale(evalSum, 1.0 / splits.Count);
        if (testSum is not null)
            Scale(testSum, 1.0 / splits.Count);
        return new ApproachResult(Name, $"{Path.GetFileName(Path.GetFullPath(Options.ModelDirectory))} + {Pooling.Name(Options.Pooling!.Value)} pooling head, {splits.Count}-fold stratified CV (eval/test averaged over folds)",
            evalSum, testSum, trainSeconds, predictSeconds, details);
    }

    private static void WriteOof(string path, ClassificationProblem problem, double[] oof, int classes)
    {
        var text = new StringBuilder("id,label," + string.Join(",", problem.Labels.Classes.Select(c => "p_" + c)) + "\n");
        for (var i = 0; i < problem.Train.Count; i++)
            text.Append(Csv(problem.Train.Ids[i])).Append(',').Append(Csv(problem.Train.Labels[i] ?? "")).Append(',')
                .AppendJoin(',', Enumerable.Range(0, classes).Select(k => oof[i * classes + k].ToString("R", CultureInfo.InvariantCulture))).Append('\n');
        AtomicFile.WriteAllText(path, text.ToString());
    }

    private static string Csv(string value) => value.IndexOfAny([',', '"', '\n', '\r']) >= 0 ? "\"" + value.Replace("\"", "\"\"") + "\"" : value;

    private static void Accumulate(double[] sum, double[] values)
    {
        for (var i = 0; i < sum.Length; i++)
            sum[i] += values[i];
    }

    private static void Scale(double[] values, double factor)
    {
        for (var i = 0; i < values.Length; i++)
            values[i] *= factor;
    }

    internal static int[] ArgMax(double[] probabilities, int classes) =>
        Enumerable.Range(0, probabilities.Length / classes)
            .Select(r => Enumerable.Range(0, classes).MaxBy(k => probabilities[r * classes + k])).ToArray();
}

/// <summary>The fine-tuning run both approaches share: build the model, train it, predict data sets as probabilities.</summary>
internal static class FineTuning
{
    public sealed record Run(double[][] Probabilities, double TrainingLoss, long Steps, long Parameters, double TrainSeconds, double PredictSeconds);

    public static Run TrainAndPredict(FineTuneOptions options, LabelEncoder labels, int seed, IReadOnlyList<TrainingExample> train,
        IReadOnlyList<IReadOnlyList<TrainingExample>> predict, string? outputDirectory, Action<double> progress, CancellationToken cancellation)
    {
        TorchRuntime.Seed(seed);
        using var model = CreateModel(options, labels);
        if (options.Device is { } device)
            model.to(device);
        var workDirectory = outputDirectory ?? Path.Combine(Path.GetTempPath(), $"sharptune-finetune-{Guid.NewGuid():N}");
        try
        {
            var args = new TrainingArguments
            {
                OutputDir = workDirectory,
                NumTrainEpochs = options.Epochs,
                PerDeviceTrainBatchSize = options.BatchSize,
                PerDeviceEvalBatchSize = Math.Max(options.BatchSize, 64),
                GradientAccumulationSteps = options.GradientAccumulationSteps,
                LearningRate = options.LearningRate,
                HeadLearningRate = options.HeadLearningRate,
                LayerwiseLearningRateDecay = options.LayerwiseLearningRateDecay,
                WeightDecay = options.WeightDecay,
                WarmupRatio = options.WarmupRatio,
                Precision = (options.BFloat16, options.Float16) switch
                {
                    (true, true) => throw new ArgumentException("choose bf16 or fp16 training, not both"),
                    (true, false) => TrainingPrecision.BFloat16,
                    (false, true) => TrainingPrecision.Float16,
                    _ => TrainingPrecision.Float32,
                },
                GradientCheckpointing = options.GradientCheckpointing,
                Seed = seed,
                LoggingSteps = 10,
                WriteLogs = outputDirectory is not null,
                SaveStrategy = outputDirectory is not null && options.SaveSteps > 0 ? IntervalStrategy.Steps : IntervalStrategy.No,
                SaveSteps = Math.Max(options.SaveSteps, 1),
                SaveTotalLimit = 2,
            };
            // The model is built and seeded exactly as in the first run; the checkpoint then replaces weights, optimizer and RNG.
            var checkpoint = options.Resume && outputDirectory is not null ? TrainerCheckpoint.Latest(workDirectory) : null;
            var trainer = new Trainer(model, args, train, callbacks: [new CancellationCallback(cancellation)])
            {
                Progress = new ProgressAdapter(p => progress((double)p.Step / p.TotalSteps)),
            };
            var watch = Stopwatch.StartNew();
            var result = trainer.Train(checkpoint);
            var trainSeconds = watch.Elapsed.TotalSeconds;
            watch.Restart();
            var probabilities = predict.Select(set => Softmax(trainer.Predict(set).Predictions.Logits)).ToArray();
            if (outputDirectory is not null)
                SaveModelWithTokenizer(trainer, options.ModelDirectory, Path.Combine(outputDirectory, "model"));
            return new Run(probabilities, result.TrainingLoss, result.GlobalStep, model.ParameterCount(), trainSeconds, watch.Elapsed.TotalSeconds);
        }
        finally
        {
            if (outputDirectory is null && Directory.Exists(workDirectory))
                Directory.Delete(workDirectory, recursive: true);
        }
    }

    /// <summary>Saves the fine-tuned model with the tokenizer it was trained with (as transformers' Trainer does when
    /// given one), so the folder is complete: <c>sharptune predict --task text-classification</c> and
    /// <c>Pipeline.Create</c> load it as is (a pooling head included). Written atomically: never half a model.</summary>
    private static void SaveModelWithTokenizer(Trainer trainer, string sourceDirectory, string directory) =>
        AtomicDirectory.Write(directory, temporary =>
        {
            trainer.SaveModel(temporary);
            foreach (var name in StagedPipeline.ModelFolder.TokenizerFiles)
                if (File.Exists(Path.Combine(sourceDirectory, name)))
                    File.Copy(Path.Combine(sourceDirectory, name), Path.Combine(temporary, name));
        }, overwrite: true);

    private static PreTrainedModel CreateModel(FineTuneOptions options, LabelEncoder labels)
    {
        if (options.Pooling is { } pooling)
            return SequenceClassifierWithPooling.FromPretrained(options.ModelDirectory, pooling, labels.Classes);
        var config = PretrainedConfig.FromDirectory(options.ModelDirectory);
        config.SetLabels(labels.Classes);
        var model = AutoModel.FromConfig(config, ModelTask.SequenceClassification);
        using var checkpoint = Checkpoint.Open(options.ModelDirectory);
        model.LoadWeights(checkpoint);
        return model;
    }

    private static double[] Softmax(float[][] logits) => logits.SelectMany(row =>
    {
        var max = row.Max();
        var exp = row.Select(v => Math.Exp(v - max)).ToArray();
        var sum = exp.Sum();
        return exp.Select(e => e / sum);
    }).ToArray();

    private sealed class ProgressAdapter(Action<TrainingProgress> report) : IProgress<TrainingProgress>
    {
        public void Report(TrainingProgress value) => report(value);
    }

    private sealed class CancellationCallback(CancellationToken token) : TrainerCallback
    {
        public override void OnStepEnd(TrainingArguments args, TrainerState state, TrainerControl control) => token.ThrowIfCancellationRequested();
    }
}
