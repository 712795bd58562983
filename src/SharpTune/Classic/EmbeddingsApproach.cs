using System.Diagnostics;
using SharpTune.Models;
using SharpTune.Tokenizers;
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

/// <summary>Encodes texts with a frozen transformer encoder (batches sorted by length and padded to their longest
/// text, pooled over the attention mask) and fits logistic regression on the vectors.</summary>
public sealed class EmbeddingsApproach(EmbeddingsApproachOptions options) : IClassificationApproach
{
    public const string ApproachName = "embeddings";

    public EmbeddingsApproachOptions Options { get; } = options;
    public string Name => ApproachName;

    public ApproachResult Run(ClassificationProblem problem, string? outputDirectory, IProgress<ApproachProgress>? progress = null,
        CancellationToken cancellation = default)
    {
        var watch = Stopwatch.StartNew();
        using var encoder = new TextEncoder(Options);
        var total = problem.Train.Count + problem.Eval.Count + (problem.Test?.Count ?? 0);
        var done = 0;
        DenseMatrix Encode(Data.LabeledTexts texts) => encoder.Encode(texts.Texts, texts.Pairs, rows =>
        {
            done += rows;
            progress?.Report(new ApproachProgress(0.9 * done / total, $"encoding {done:N0}/{total:N0} texts"));
        }, cancellation);

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

/// <summary>A frozen encoder and its tokenizer, turning texts into pooled vectors.</summary>
public sealed class TextEncoder : IDisposable
{
    private readonly PreTrainedModel _model;
    private readonly Tokenizer _tokenizer;
    private readonly EmbeddingsApproachOptions _options;
    private readonly Device _device;
    private readonly int _padId;

    public TextEncoder(EmbeddingsApproachOptions options)
    {
        _options = options;
        _device = options.Device ?? CPU;
        _model = AutoModel.FromPretrained(options.ModelDirectory, ModelTask.Base, _device, options.DType);
        _model.eval();
        _tokenizer = AutoTokenizer.FromPretrained(options.TokenizerPath ?? options.ModelDirectory);
        var maxPositions = _model.Config.Get("max_position_embeddings", options.MaxLength);
        _tokenizer.Truncation = new TruncationOptions(Math.Min(options.MaxLength, maxPositions));
        _tokenizer.Padding = null;
        _padId = _tokenizer.PadTokenId ?? 0;
    }

    /// <summary>One row per text (float64); <paramref name="progress"/> gets the rows done per batch.</summary>
    public DenseMatrix Encode(IReadOnlyList<string> texts, IReadOnlyList<string?>? pairs = null, Action<int>? progress = null,
        CancellationToken cancellation = default)
    {
        var encodings = texts.Select((t, i) => _tokenizer.Encode(t, pairs?[i])).ToArray();
        // Batches of similar lengths waste little on padding.
        var order = Enumerable.Range(0, texts.Count).OrderBy(i => encodings[i].Length).ToArray();
        double[]? values = null;
        var width = 0;
        using var noGrad = no_grad();
        for (var start = 0; start < order.Length; start += _options.BatchSize)
        {
            cancellation.ThrowIfCancellationRequested();
            var batch = order.Skip(start).Take(_options.BatchSize).ToArray();
            var length = batch.Max(i => encodings[i].Length);
            var ids = new long[batch.Length * length];
            var mask = new long[batch.Length * length];
            var types = new long[batch.Length * length];
            Array.Fill(ids, _padId);
            for (var b = 0; b < batch.Length; b++)
            {
                var encoding = encodings[batch[b]];
                for (var t = 0; t < encoding.Length; t++)
                {
                    ids[b * length + t] = encoding.Ids[t];
                    types[b * length + t] = encoding.TypeIds[t];
                    mask[b * length + t] = 1;
                }
            }
            using var scope = NewDisposeScope();
            var inputIds = tensor(ids, [batch.Length, length], device: _device);
            var attention = tensor(mask, [batch.Length, length], device: _device);
            using var output = _model.Forward(new ModelInputs(inputIds)
            {
                AttentionMask = attention,
                TokenTypeIds = tensor(types, [batch.Length, length], device: _device),
            });
            var pooled = Pool(output.LastHiddenState.to(ScalarType.Float32), attention).to(ScalarType.Float64).cpu();
            var rows = pooled.data<double>().ToArray();
            width = (int)pooled.shape[1];
            values ??= new double[texts.Count * width];
            for (var b = 0; b < batch.Length; b++)
                Array.Copy(rows, b * width, values, batch[b] * width, width);
            progress?.Invoke(batch.Length);
        }
        return new DenseMatrix(texts.Count, width, values ?? []);
    }

    private Tensor Pool(Tensor hidden, Tensor attention)
    {
        using var pooling = new Training.Heads.Pooling(_options.Pooling, hidden.shape[^1]);
        return pooling.Forward(hidden, attention, null);
    }

    public void Dispose() => _model.Dispose();
}
