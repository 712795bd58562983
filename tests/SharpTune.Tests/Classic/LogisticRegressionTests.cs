using SharpTune.Classic;
using SharpTune.Tests.Support;

namespace SharpTune.Tests.Classic;

/// <summary>The solution satisfies scikit-learn's optimality conditions: for every coefficient,
/// Σᵢ sᵢ (pᵢₖ - yᵢₖ) xᵢⱼ + Wⱼₖ / C = 0, and Σᵢ sᵢ (pᵢₖ - yᵢₖ) = 0 for the (unpenalised) intercepts.</summary>
public sealed class LogisticRegressionTests
{
    private static (CsrMatrix X, int[] Y) Problem(int rows, int columns, int classes, int seed)
    {
        var random = new Random(seed);
        var pointers = new List<int> { 0 };
        var indices = new List<int>();
        var values = new List<double>();
        var y = new int[rows];
        for (var i = 0; i < rows; i++)
        {
            y[i] = random.Next(classes);
            var used = new SortedSet<int>();
            // Class-dependent features so the problem is learnable, plus noise features.
            used.Add(y[i] * 3 + random.Next(3));
            while (used.Count < 4)
                used.Add(random.Next(columns));
            foreach (var j in used)
            {
                indices.Add(j);
                values.Add(random.NextDouble() + 0.1);
            }
            pointers.Add(indices.Count);
        }
        return (new CsrMatrix(rows, columns, pointers.ToArray(), indices.ToArray(), values.ToArray()), y);
    }

    private static void AssertOptimal(LogisticRegression model, IFeatureMatrix x, int[] y, double[] weights, double c)
    {
        var classes = model.ClassCount;
        var outputs = model.Outputs;
        var probabilities = model.PredictProba(x);
        var residual = new double[x.Rows * outputs];
        for (var i = 0; i < x.Rows; i++)
            for (var k = 0; k < outputs; k++)
            {
                var cls = outputs == 1 ? 1 : k;
                residual[i * outputs + k] = weights[i] * (probabilities[i * classes + cls] - (y[i] == cls ? 1 : 0));
            }
        var gradient = new double[x.Columns * outputs];
        x.TransposeMultiply(residual, outputs, gradient);
        var worst = gradient.Select((g, j) => Math.Abs(g + model.Coefficients[j] / c)).Max();
        Assert.True(worst < 1e-5, $"coefficient optimality violated by {worst}");
        for (var k = 0; k < outputs; k++)
            Assert.True(Math.Abs(Enumerable.Range(0, x.Rows).Sum(i => residual[i * outputs + k])) < 1e-5, "intercept optimality violated");
    }

    [Fact]
    public void MultinomialSolutionIsOptimalAndPredictsWell()
    {
        var (x, y) = Problem(300, 40, 3, seed: 1);
        var model = new LogisticRegression(new LogisticRegressionOptions { C = 2.0, Tolerance = 1e-10, MaxIterations = 1000 }).Fit(x, y, 3);
        Assert.True(model.LastFit!.Converged);
        AssertOptimal(model, x, y, Enumerable.Repeat(1.0, y.Length).ToArray(), 2.0);
        var accuracy = model.Predict(x).Where((p, i) => p == y[i]).Count() / (double)y.Length;
        Assert.True(accuracy > 0.75, $"training accuracy {accuracy}");
        var probabilities = model.PredictProba(x);
        for (var i = 0; i < x.Rows; i++)
            Assert.Equal(1.0, probabilities[(i * 3)..(i * 3 + 3)].Sum(), 12);
    }

    [Fact]
    public void BalancedClassWeightsAreOptimalForTheWeightedObjective()
    {
        var (x, y) = Problem(200, 30, 2, seed: 2);
        // Make the classes imbalanced: relabel most positives as negatives.
        for (var i = 0; i < y.Length; i++)
            if (y[i] == 1 && i % 3 != 0)
                y[i] = 0;
        var model = new LogisticRegression(new LogisticRegressionOptions { ClassWeight = "balanced", Tolerance = 1e-10, MaxIterations = 1000 }).Fit(x, y, 2);
        var counts = new[] { y.Count(v => v == 0), y.Count(v => v == 1) };
        var weights = y.Select(v => y.Length / (2.0 * counts[v])).ToArray();
        AssertOptimal(model, x, y, weights, 1.0);
    }

    [Fact]
    public void DenseAndSparseFeaturesGiveTheSameModelAndSavedModelsReload()
    {
        var (x, y) = Problem(120, 20, 3, seed: 3);
        var dense = new DenseMatrix(x.Rows, x.Columns, x.ToDense().Cast<double>().ToArray());
        var options = new LogisticRegressionOptions { Tolerance = 1e-10, MaxIterations = 1000 };
        var sparseModel = new LogisticRegression(options).Fit(x, y, 3);
        var denseModel = new LogisticRegression(options).Fit(dense, y, 3);
        var a = sparseModel.PredictProba(x);
        var b = denseModel.PredictProba(dense);
        Assert.True(a.Zip(b, (p, q) => Math.Abs(p - q)).Max() < 1e-8);

        var directory = RepoPaths.NewTempDirectory();
        try
        {
            var path = Path.Combine(directory, "lr.json");
            sparseModel.Save(path);
            Assert.Equal(a, LogisticRegression.Load(path).PredictProba(x));
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }
}
