using System.Diagnostics;
using SharpTune.Classic;
using SharpTune.Data;
using SharpTune.Metrics;
using SharpTune.Tests.Support;
using Xunit.Abstractions;

namespace SharpTune.Tests.Classic;

/// <summary>The done-when figure on real data: SST-2 train → dev with TF-IDF (1, 3) + sublinear tf + logistic regression
/// reaches scikit-learn's accuracy 0.805 and ROC AUC 0.905.</summary>
public sealed class Sst2TfidfTests(ITestOutputHelper output)
{
    [Fact]
    public void TfidfLogisticRegressionReachesScikitLearnOnSst2Dev()
    {
        var columns = new TextClassificationColumns("sentence|content", "label");
        var (train, _) = TextClassificationData.Extract(DatasetLoader.Load(Path.Combine(RepoPaths.Data, "sst2", "train.tsv")), columns);
        var (eval, _) = TextClassificationData.Extract(DatasetLoader.Load(Path.Combine(RepoPaths.Data, "sst2", "dev.tsv")), columns);
        Assert.Equal(67349, train.Count);
        Assert.Equal(872, eval.Count);
        var problem = new ClassificationProblem(train, eval, null, new LabelEncoder(train.Labels!));

        var watch = Stopwatch.StartNew();
        var result = new TfidfApproach().Run(problem, outputDirectory: null);
        var truth = problem.EvalLabels;
        var scores = ClassificationMetrics.Column(result.EvalProbabilities, 2, 1);
        var predicted = scores.Select(p => p >= 0.5 ? 1 : 0).ToArray();
        var accuracy = ClassificationMetrics.Accuracy(truth, predicted);
        var auc = ClassificationMetrics.RocAuc(truth, scores);
        output.WriteLine($"accuracy {accuracy:F4}, ROC AUC {auc:F4}, fit {result.TrainSeconds:F2} s, total {watch.Elapsed.TotalSeconds:F2} s, " +
                         string.Join(", ", result.Details.Select(d => $"{d.Key} {d.Value:G6}")));
        Assert.True(accuracy >= 0.805, $"accuracy {accuracy:F4} < 0.805");
        Assert.True(auc >= 0.905, $"ROC AUC {auc:F4} < 0.905");
    }
}
