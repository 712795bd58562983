using System.Runtime.CompilerServices;
using System.Text.Json;

namespace SharpTune.Classic;

/// <summary>Options of <see cref="LogisticRegression"/>, with scikit-learn's names and defaults (solver lbfgs, L2).</summary>
public sealed record LogisticRegressionOptions
{
    /// <summary>Inverse regularisation strength: the objective is Σ wᵢ·lossᵢ + ||W||² / (2C).</summary>
    public double C { get; init; } = 1.0;
    public bool FitIntercept { get; init; } = true;
    /// <summary>"balanced" weights each class by n / (classes · count); null weighs all samples equally.</summary>
    public string? ClassWeight { get; init; }
    /// <summary>Explicit per-class weights (index = class); overrides <see cref="ClassWeight"/>.</summary>
    public IReadOnlyList<double>? ClassWeights { get; init; }
    public int MaxIterations { get; init; } = 100;
    /// <summary>Largest gradient component of the mean objective at which L-BFGS stops (scikit-learn's <c>tol</c>);
    /// with the same solver path this stops at scikit-learn's solution. Lower it for a tighter optimum.</summary>
    public double Tolerance { get; init; } = 1e-4;
}

/// <summary>Training progress: L-BFGS iteration, objective value and largest gradient component.</summary>
public readonly record struct LogisticRegressionProgress(int Iteration, int MaxIterations, double Objective, double GradientMaxNorm);

/// <summary>Logistic regression minimising scikit-learn's objective exactly: sigmoid for two classes, multinomial
/// softmax for more; L2 penalty on the coefficients, not on the intercept; L-BFGS on sparse or dense features.</summary>
public sealed class LogisticRegression
{
    private double[]? _coefficients;
    private double[]? _intercepts;

    public LogisticRegression(LogisticRegressionOptions? options = null)
    {
        Options = options ?? new LogisticRegressionOptions();
        if (Options.C <= 0)
            throw new ArgumentException($"C must be positive, got {Options.C}");
    }

    public LogisticRegressionOptions Options { get; }
    public int ClassCount { get; private set; }
    public int FeatureCount { get; private set; }
    public LbfgsResult? LastFit { get; private set; }

    /// <summary>Number of weight vectors: 1 for binary problems, one per class otherwise (as scikit-learn's coef_).</summary>
    public int Outputs => ClassCount == 2 ? 1 : ClassCount;

    /// <summary>coef_, row-major [feature, output].</summary>
    public IReadOnlyList<double> Coefficients => _coefficients ?? throw NotFitted();
    public IReadOnlyList<double> Intercepts => _intercepts ?? throw NotFitted();

    /// <summary>Fits on features <paramref name="x"/> and class indices <paramref name="y"/> in [0, classCount).</summary>
    public LogisticRegression Fit(IFeatureMatrix x, IReadOnlyList<int> y, int classCount, IReadOnlyList<double>? sampleWeight = null,
        IProgress<LogisticRegressionProgress>? progress = null, CancellationToken cancellation = default)
    {
        if (y.Count != x.Rows)
            throw new ArgumentException($"{x.Rows} feature rows but {y.Count} labels");
        if (classCount < 2)
            throw new ArgumentException("logistic regression needs at least two classes");
        if (y.Any(label => label < 0 || label >= classCount))
            throw new ArgumentException($"labels must be class indices in [0, {classCount})");
        ClassCount = classCount;
        FeatureCount = x.Columns;
        var weights = SampleWeights(y, classCount, sampleWeight);
        var loss = new Objective(x, y, weights, Outputs, Options);
        var start = new double[x.Columns * Outputs + (Options.FitIntercept ? Outputs : 0)];
        var result = Lbfgs.Minimize(loss.Evaluate, start,
            new LbfgsOptions { MaxIterations = Options.MaxIterations, GradientTolerance = Options.Tolerance },
            progress is null ? null : (i, f, g) => progress.Report(new LogisticRegressionProgress(i, Options.MaxIterations, f, g)),
            cancellation);
        LastFit = result;
        _coefficients = result.Solution[..(x.Columns * Outputs)];
        _intercepts = Options.FitIntercept ? result.Solution[(x.Columns * Outputs)..] : new double[Outputs];
        return this;
    }

    /// <summary>Class probabilities, row-major [row, class] (scikit-learn's predict_proba).</summary>
    public double[] PredictProba(IFeatureMatrix x)
    {
        var coefficients = _coefficients ?? throw NotFitted();
        if (x.Columns != FeatureCount)
            throw new ArgumentException($"the model was fitted on {FeatureCount} features, got {x.Columns}");
        var margins = new double[x.Rows * Outputs];
        x.Multiply(coefficients, Outputs, margins);
        var probabilities = new double[x.Rows * ClassCount];
        for (var i = 0; i < x.Rows; i++)
        {
            if (Outputs == 1)
            {
                var p = Sigmoid(margins[i] + _intercepts![0]);
                probabilities[2 * i] = 1 - p;
                probabilities[2 * i + 1] = p;
                continue;
            }
            var row = margins.AsSpan(i * Outputs, Outputs);
            for (var k = 0; k < Outputs; k++)
                row[k] += _intercepts![k];
            Softmax(row, probabilities.AsSpan(i * ClassCount, ClassCount));
        }
        return probabilities;
    }

    public int[] Predict(IFeatureMatrix x)
    {
        var probabilities = PredictProba(x);
        return Enumerable.Range(0, x.Rows).Select(i =>
        {
            var row = probabilities.AsSpan(i * ClassCount, ClassCount);
            var best = 0;
            for (var k = 1; k < row.Length; k++)
                if (row[k] > row[best])
                    best = k;
            return best;
        }).ToArray();
    }

    public void Save(string path)
    {
        var state = new SavedState(Options, ClassCount, FeatureCount, _coefficients ?? throw NotFitted(), _intercepts!);
        IO.AtomicFile.WriteAllText(path, JsonSerializer.Serialize(state));
    }

    public static LogisticRegression Load(string path)
    {
        if (!File.Exists(path))
            throw new FileNotFoundException("logistic regression file not found", path);
        var state = JsonSerializer.Deserialize<SavedState>(File.ReadAllText(path))
            ?? throw new InvalidDataException($"{path} holds no logistic regression");
        var model = new LogisticRegression(state.Options) { ClassCount = state.ClassCount, FeatureCount = state.FeatureCount };
        if (state.Coefficients.Length != state.FeatureCount * model.Outputs || state.Intercepts.Length != model.Outputs)
            throw new InvalidDataException($"{path}: coefficient shapes do not match {state.FeatureCount} features and {state.ClassCount} classes");
        model._coefficients = state.Coefficients;
        model._intercepts = state.Intercepts;
        return model;
    }

    private sealed record SavedState(LogisticRegressionOptions Options, int ClassCount, int FeatureCount, double[] Coefficients, double[] Intercepts);

    private double[] SampleWeights(IReadOnlyList<int> y, int classCount, IReadOnlyList<double>? sampleWeight)
    {
        var weights = sampleWeight?.ToArray() ?? Enumerable.Repeat(1.0, y.Count).ToArray();
        if (weights.Length != y.Count)
            throw new ArgumentException($"{y.Count} labels but {weights.Length} sample weights");
        IReadOnlyList<double>? perClass = Options.ClassWeights;
        if (perClass is null && Options.ClassWeight is { } mode)
        {
            if (mode != "balanced")
                throw new ArgumentException($"unknown class weight '{mode}' (expected 'balanced')");
            var counts = new double[classCount];
            foreach (var label in y)
                counts[label]++;
            perClass = counts.Select(c => c == 0 ? 0 : y.Count / (classCount * c)).ToArray();
        }
        if (perClass is not null)
        {
            if (perClass.Count != classCount)
                throw new ArgumentException($"{perClass.Count} class weights for {classCount} classes");
            for (var i = 0; i < weights.Length; i++)
                weights[i] *= perClass[y[i]];
        }
        return weights;
    }

    internal static double Sigmoid(double z) => z >= 0 ? 1 / (1 + Math.Exp(-z)) : Math.Exp(z) / (1 + Math.Exp(z));

    private static double Softmax(ReadOnlySpan<double> z, Span<double> probabilities)
    {
        var max = double.NegativeInfinity;
        foreach (var v in z)
            max = Math.Max(max, v);
        var sum = 0.0;
        for (var k = 0; k < z.Length; k++)
            sum += probabilities[k] = Math.Exp(z[k] - max);
        for (var k = 0; k < z.Length; k++)
            probabilities[k] /= sum;
        return max + Math.Log(sum);
    }

    private static InvalidOperationException NotFitted() => new("the logistic regression is not fitted; call Fit first");

    /// <summary>The mean of the weighted losses plus the penalty, both divided by the total sample weight (so the
    /// tolerance does not depend on the data size; the minimiser is scikit-learn's).</summary>
    private sealed class Objective(IFeatureMatrix x, IReadOnlyList<int> y, double[] weights, int outputs, LogisticRegressionOptions options)
    {
        private readonly double[] _margins = new double[x.Rows * outputs];
        private readonly double[] _residuals = new double[x.Rows * outputs];
        private readonly double _totalWeight = weights.Sum();
        private readonly int[] _labels = y.ToArray();

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public double Evaluate(double[] parameters, double[] gradient)
        {
            var coefficientCount = x.Columns * outputs;
            var coefficients = parameters.AsSpan(0, coefficientCount);
            x.Multiply(coefficients, outputs, _margins);
            var chunks = CsrMatrix.Chunks(x.Rows);
            var partial = new double[chunks];
            Parallel.For(0, chunks, chunk =>
            {
                var (start, end) = CsrMatrix.ChunkRange(chunk, x.Rows);
                Span<double> probabilities = stackalloc double[outputs];
                var sum = 0.0;
                for (var i = start; i < end; i++)
                {
                    var w = weights[i];
                    if (outputs == 1)
                    {
                        var z = _margins[i] + (options.FitIntercept ? parameters[coefficientCount] : 0);
                        var target = _labels[i] == 1 ? 1.0 : 0.0;
                        // log(1 + e^z) - y·z, stable for large |z|.
                        sum += w * ((z > 0 ? z + double.LogP1(Math.Exp(-z)) : double.LogP1(Math.Exp(z))) - target * z);
                        _residuals[i] = w * (Sigmoid(z) - target);
                        continue;
                    }
                    var row = _margins.AsSpan(i * outputs, outputs);
                    if (options.FitIntercept)
                        for (var k = 0; k < outputs; k++)
                            row[k] += parameters[coefficientCount + k];
                    var logSumExp = Softmax(row, probabilities);
                    sum += w * (logSumExp - row[_labels[i]]);
                    for (var k = 0; k < outputs; k++)
                        _residuals[i * outputs + k] = w * (probabilities[k] - (k == _labels[i] ? 1.0 : 0.0));
                }
                partial[chunk] = sum;
            });
            var value = partial.Sum();
            x.TransposeMultiply(_residuals, outputs, gradient.AsSpan(0, coefficientCount));
            var penalty = 0.0;
            for (var j = 0; j < coefficientCount; j++)
            {
                penalty += parameters[j] * parameters[j];
                gradient[j] = (gradient[j] + parameters[j] / options.C) / _totalWeight;
            }
            if (options.FitIntercept)
                for (var k = 0; k < outputs; k++)
                {
                    var sum = 0.0;
                    for (var i = 0; i < x.Rows; i++)
                        sum += _residuals[i * outputs + k];
                    gradient[coefficientCount + k] = sum / _totalWeight;
                }
            return (value + 0.5 * penalty / options.C) / _totalWeight;
        }
    }
}
