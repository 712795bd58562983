using System.Diagnostics;
using SharpTune.Pipelines;
using SharpTune.Training.Heads;
using static TorchSharp.torch;

namespace SharpTune.Classic;

/// <summary>Settings of the frozen-embeddings approach.</summary>
public sealed record EmbeddingsApproachOptions(string ModelDirectory)
{
    /// <summary>Tokenizer file or folder; the model folder when null.</summary>
    public string? TokenizerPath { get; init; }
    /// <summary>Parameter-free pooling only (mean, CLS, max): the encoder and pooling stay frozen.</summary>
    public PoolingStrategy Pooling { get; init; } = PoolingStrategy.Mean;
    public int BatchSize { get; init; } = 64;
    /// <summary>Longest encoding in tokens (special tokens included); capped by the model's position embeddings.</summary>
    public int MaxLength { get; init; } = 256;
    public Device? Device { get; init; }
    public ScalarType? DType { get; init; }
    public LogisticRegressionOptions LogisticRegression { get; init; } = new();
}

/// <summary>Encodes texts with a frozen transformer encoder (the feature-extraction pipeline: batches sorted by length
/// and padded to their longest text, pooled over the attention mask) and fits logistic regression on the vectors.</summary>
public sealed class EmbeddingsApproach(EmbeddingsApproachOptions options) : IClassificationApproach
{
    public const string ApproachName = "embeddings";

    public EmbeddingsApproachOptions Options { get; } = options;
    public string Name => ApproachName;

    public ApproachResult Run(ClassificationProblem problem, string? outputDirectory, IProgress<ApproachProgress>? progress = null,
        CancellationToken cancellation = default)
    {
        var watch = Stopwatch.StartNew();
        using var encoder = FeatureExtractionPipeline.FromPretrained(Options.ModelDirectory, new PipelineOptions
        {
            Device = Options.Device,
            DType = Options.DType,
            BatchSize = Options.BatchSize,
            MaxLength = Options.MaxLength,
            TokenizerPath = Options.TokenizerPath,
        });
        var total = problem.Train.Count + problem.Eval.Count + (problem.Test?.Count ?? 0);
        var done = 0;
        DenseMatrix Encode(Data.LabeledTexts texts)
        {
            var vectors = encoder.SentenceEmbeddings(texts.Texts, Options.Pooling, textPairs: texts.Pairs, progress: rows =>
            {
                done += rows;
                progress?.Report(new ApproachProgress(0.9 * done / total, $"encoding {done:N0}/{total:N0} texts"));
            }, cancellation: cancellation);
            var width = vectors.Count == 0 ? 0 : vectors[0].Length;
            var values = new double[vectors.Count * width];
            for (var i = 0; i < vectors.Count; i++)
                for (var j = 0; j < width; j++)
                    values[i * width + j] = vectors[i][j];
            return new DenseMatrix(vectors.Count, width, values);
        }

        var train = Encode(problem.Train);
        var encodeTrainSeconds = watch.Elapsed.TotalSeconds;
        var model = new LogisticRegression(Options.LogisticRegression).Fit(train, problem.TrainLabels, problem.Labels.Count, cancellation: cancellation);
        var trainSeconds = watch.Elapsed.TotalSeconds;
        watch.Restart();
        var eval = model.PredictProba(Encode(problem.Eval));
        var test = problem.Test is null ? null : model.PredictProba(Encode(problem.Test));
        var predictSeconds = watch.Elapsed.TotalSeconds;
        progress?.Report(new ApproachProgress(1, "done"));
        if (outputDirectory is not null)
        {
            Directory.CreateDirectory(outputDirectory);
            model.Save(Path.Combine(outputDirectory, "embeddings_logistic_regression.json"));
        }
        return new ApproachResult(Name,
            $"{Path.GetFileName(Path.TrimEndingDirectorySeparator(Options.ModelDirectory))} {Training.Heads.Pooling.Name(Options.Pooling)}-pooled embeddings ({train.Columns} dimensions, frozen) + logistic regression (L-BFGS, C={Options.LogisticRegression.C})",
            eval, test, trainSeconds, predictSeconds,
            new Dictionary<string, double>
            {
                ["embedding_dimensions"] = train.Columns,
                ["encode_train_seconds"] = encodeTrainSeconds,
                ["lbfgs_iterations"] = model.LastFit!.Iterations,
                ["lbfgs_converged"] = model.LastFit.Converged ? 1 : 0,
            });
    }
}
