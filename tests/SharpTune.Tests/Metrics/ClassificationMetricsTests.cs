using SharpTune.Metrics;

namespace SharpTune.Tests.Metrics;

/// <summary>Known values from scikit-learn's documentation examples (and hand computations where noted).</summary>
public sealed class ClassificationMetricsTests
{
    private static readonly int[] MultiTruth = [0, 1, 2, 0, 1, 2];
    private static readonly int[] MultiPredicted = [0, 2, 1, 0, 0, 1];

    [Fact]
    public void PrecisionRecallF1MatchScikitLearnExamples()
    {
        var macro = ClassificationMetrics.PrecisionRecallF1(MultiTruth, MultiPredicted, 3, Averaging.Macro);
        Assert.Equal(0.2222222222, macro.Precision, 8);
        Assert.Equal(0.3333333333, macro.Recall, 8);
        Assert.Equal(0.2666666667, macro.F1, 8);
        var micro = ClassificationMetrics.PrecisionRecallF1(MultiTruth, MultiPredicted, 3, Averaging.Micro);
        Assert.Equal(1 / 3.0, micro.F1, 10);
        Assert.Equal(1 / 3.0, micro.Precision, 10);
        var weighted = ClassificationMetrics.PrecisionRecallF1(MultiTruth, MultiPredicted, 3, Averaging.Weighted);
        Assert.Equal(0.2666666667, weighted.F1, 8);

        // Binary: tp 2, fp 1, fn 1.
        var binary = ClassificationMetrics.PrecisionRecallF1([1, 1, 1, 0, 0], [1, 1, 0, 1, 0], 2);
        Assert.Equal(2 / 3.0, binary.Precision, 10);
        Assert.Equal(2 / 3.0, binary.Recall, 10);
        Assert.Equal(2 / 3.0, binary.F1, 10);
        Assert.Throws<ArgumentException>(() => ClassificationMetrics.PrecisionRecallF1(MultiTruth, MultiPredicted, 3));
    }

    [Fact]
    public void AccuracyConfusionMatrixAndMcc()
    {
        Assert.Equal(2 / 6.0, ClassificationMetrics.Accuracy(MultiTruth, MultiPredicted), 12);
        var matrix = ClassificationMetrics.ConfusionMatrix([2, 0, 2, 2, 0, 1], [0, 0, 2, 2, 0, 2], 3);
        Assert.Equal(new[,] { { 2, 0, 0 }, { 0, 0, 1 }, { 1, 0, 2 } }, matrix);
        // scikit-learn: matthews_corrcoef([+1, +1, +1, -1], [+1, -1, +1, +1]) = -0.333...
        Assert.Equal(-1 / 3.0, ClassificationMetrics.MatthewsCorrelation([1, 1, 1, 0], [1, 0, 1, 1], 2), 10);
        Assert.Equal(1.0, ClassificationMetrics.MatthewsCorrelation(MultiTruth, MultiTruth, 3), 12);
        Assert.Equal(0.0, ClassificationMetrics.MatthewsCorrelation([0, 1, 0, 1], [0, 0, 0, 0], 2), 12);
    }

    [Fact]
    public void RocAucAndCurves()
    {
        int[] truth = [0, 0, 1, 1];
        double[] scores = [0.1, 0.4, 0.35, 0.8];
        Assert.Equal(0.75, ClassificationMetrics.RocAuc(truth, scores), 12);
        Assert.Equal(0.8333333333, ClassificationMetrics.AveragePrecision(truth, scores), 8);
        var roc = ClassificationMetrics.RocCurve(truth, scores);
        Assert.Equal(new[] { 0, 0, 0.5, 0.5, 1 }, roc.X);
        Assert.Equal(new[] { 0, 0.5, 0.5, 1, 1 }, roc.Y);
        // Ties count one half: one positive and one negative share a score.
        Assert.Equal(0.875, ClassificationMetrics.RocAuc([0, 1, 0, 1], [0.2, 0.5, 0.5, 0.9]), 12);
        Assert.Throws<ArgumentException>(() => ClassificationMetrics.RocAuc([1, 1], [0.2, 0.3]));
    }

    [Fact]
    public void OneVsRestAucAveragesPerClassAucs()
    {
        int[] truth = [0, 1, 2, 2];
        double[] probabilities =
        [
            0.7, 0.2, 0.1,
            0.3, 0.5, 0.2,
            0.1, 0.6, 0.3,
            0.2, 0.3, 0.5,
        ];
        // Hand computed: class 0 and class 2 separate perfectly (AUC 1); class 1's positive (0.5) beats 2 of its 3 negatives.
        var expected = (1.0 + 2 / 3.0 + 1.0) / 3;
        Assert.Equal(expected, ClassificationMetrics.RocAucOneVsRest(truth, probabilities, 3), 12);
    }

    [Fact]
    public void LogLossAndPerplexity()
    {
        // scikit-learn: log_loss(["spam", "ham", "ham", "spam"], [[.1, .9], [.9, .1], [.8, .2], [.35, .65]]) = 0.21616...
        var loss = ClassificationMetrics.LogLoss([1, 0, 0, 1], [0.1, 0.9, 0.9, 0.1, 0.8, 0.2, 0.35, 0.65], 2);
        Assert.Equal(0.2161618747, loss, 8);
        Assert.Equal(Math.Exp(2.0), ClassificationMetrics.Perplexity([1.0, 2.0, 3.0]), 10);
        Assert.Equal(Math.Exp((1.0 * 10 + 4.0 * 30) / 40), ClassificationMetrics.Perplexity([(1.0, 10L), (4.0, 30L)]), 10);
    }
}
