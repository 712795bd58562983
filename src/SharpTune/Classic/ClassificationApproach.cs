using SharpTune.Data;

namespace SharpTune.Classic;

/// <summary>A text classification problem: labelled train and eval texts, optional unlabelled test texts, and the
/// classes (from the training labels).</summary>
public sealed record ClassificationProblem(LabeledTexts Train, LabeledTexts Eval, LabeledTexts? Test, LabelEncoder Labels, int Seed = 42)
{
    public int[] TrainLabels => Labels.Encode(Train.Labels);
    public int[] EvalLabels => Labels.Encode(Eval.Labels);
}

/// <summary>Progress of an approach: the fraction done (0..1) and what it is doing.</summary>
public readonly record struct ApproachProgress(double Fraction, string Status);

/// <summary>What an approach produced: class probabilities (row-major [row, class]) for the eval and test texts, the
/// training time, and figures of its own (vocabulary size, iterations, ...) that go into metrics.json.</summary>
public sealed record ApproachResult(
    string Approach,
    string Description,
    double[] EvalProbabilities,
    double[]? TestProbabilities,
    double TrainSeconds,
    double PredictSeconds,
    IReadOnlyDictionary<string, double> Details);

/// <summary>One way to classify documents (TF-IDF + logistic regression, frozen embeddings + logistic regression,
/// fine-tuning, k-fold ensembles...). <c>sharptune classify --approach</c> runs any number of them on the same
/// problem and writes one comparison report.</summary>
public interface IClassificationApproach
{
    /// <summary>The name used on the command line and as the key in metrics.json.</summary>
    string Name { get; }

    /// <summary>Fits on <c>problem.Train</c> and predicts <c>problem.Eval</c> (and <c>problem.Test</c> when given).
    /// <paramref name="outputDirectory"/>, when set, receives the fitted model's files.</summary>
    ApproachResult Run(ClassificationProblem problem, string? outputDirectory, IProgress<ApproachProgress>? progress = null,
        CancellationToken cancellation = default);
}
