using System.Diagnostics;

namespace SharpTune.Classic;

/// <summary>Settings of the TF-IDF + logistic regression baseline; the defaults are the seed notebook's and the
/// reference's: word n-grams (1, 3), sublinear tf, scikit-learn's LogisticRegression(C=1).</summary>
public sealed record TfidfApproachOptions
{
    public VectorizerOptions Vectorizer { get; init; } = new() { NgramRange = (1, 3) };
    public TfidfOptions Tfidf { get; init; } = new() { SublinearTf = true };
    public LogisticRegressionOptions LogisticRegression { get; init; } = new();
}

/// <summary>Sparse TF-IDF vectors fed to logistic regression (binary or multinomial).</summary>
public sealed class TfidfApproach(TfidfApproachOptions? options = null) : IClassificationApproach
{
    public const string ApproachName = "tfidf";

    public TfidfApproachOptions Options { get; } = options ?? new TfidfApproachOptions();
    public string Name => ApproachName;

    /// <summary>The fitted vectorizer and model (after <see cref="Run"/>).</summary>
    public TfidfVectorizer? Vectorizer { get; private set; }
    public LogisticRegression? Model { get; private set; }

    public ApproachResult Run(ClassificationProblem problem, string? outputDirectory, IProgress<ApproachProgress>? progress = null,
        CancellationToken cancellation = default)
    {
        var watch = Stopwatch.StartNew();
        progress?.Report(new ApproachProgress(0, "vectorizing"));
        Vectorizer = new TfidfVectorizer(Options.Vectorizer, Options.Tfidf);
        var train = Vectorizer.FitTransform(problem.Train.JoinedTexts());
        var vectorizeSeconds = watch.Elapsed.TotalSeconds;
        var maxIterations = Options.LogisticRegression.MaxIterations;
        progress?.Report(new ApproachProgress(0.1, $"{train.Columns:N0} features; logistic regression"));
        Model = new LogisticRegression(Options.LogisticRegression).Fit(train, problem.TrainLabels, problem.Labels.Count,
            progress: progress is null ? null : new Progress(p =>
                progress.Report(new ApproachProgress(0.1 + 0.85 * p.Iteration / maxIterations, $"L-BFGS iteration {p.Iteration}, loss {p.Objective:F4}"))),
            cancellation: cancellation);
        var trainSeconds = watch.Elapsed.TotalSeconds;

        watch.Restart();
        var eval = Model.PredictProba(Vectorizer.Transform(problem.Eval.JoinedTexts()));
        var test = problem.Test is null ? null : Model.PredictProba(Vectorizer.Transform(problem.Test.JoinedTexts()));
        var predictSeconds = watch.Elapsed.TotalSeconds;
        progress?.Report(new ApproachProgress(1, "done"));

        if (outputDirectory is not null)
        {
            Directory.CreateDirectory(outputDirectory);
            Vectorizer.Save(Path.Combine(outputDirectory, "tfidf_vectorizer.json"));
            Model.Save(Path.Combine(outputDirectory, "tfidf_logistic_regression.json"));
        }
        var fit = Model.LastFit!;
        var (minN, maxN) = Options.Vectorizer.NgramRange;
        return new ApproachResult(Name,
            $"TF-IDF {Options.Vectorizer.Analyzer.ToString().ToLowerInvariant()} n-grams ({minN}, {maxN}){(Options.Tfidf.SublinearTf ? ", sublinear tf" : "")} + logistic regression (L-BFGS, C={Options.LogisticRegression.C})",
            eval, test, trainSeconds, predictSeconds,
            new Dictionary<string, double>
            {
                ["features"] = train.Columns,
                ["vectorize_seconds"] = vectorizeSeconds,
                ["lbfgs_iterations"] = fit.Iterations,
                ["lbfgs_converged"] = fit.Converged ? 1 : 0,
                ["train_objective"] = fit.Value,
            });
    }

    private sealed class Progress(Action<LogisticRegressionProgress> report) : IProgress<LogisticRegressionProgress>
    {
        public void Report(LogisticRegressionProgress value) => report(value);
    }
}
