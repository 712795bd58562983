namespace SharpTune.Metrics;

/// <summary>How per-class scores are combined (scikit-learn's <c>average</c>).</summary>
public enum Averaging
{
    /// <summary>Only the positive class (binary problems).</summary>
    Binary,
    /// <summary>Unweighted mean over classes.</summary>
    Macro,
    /// <summary>From the pooled counts of all classes (equals accuracy for single-label problems).</summary>
    Micro,
    /// <summary>Mean over classes weighted by their support.</summary>
    Weighted,
}

/// <summary>Precision, recall and F1 under one averaging.</summary>
public readonly record struct PrecisionRecallF1(double Precision, double Recall, double F1);

/// <summary>A curve of (x, y) points with the score thresholds that produce them.</summary>
public sealed record Curve(double[] X, double[] Y, double[] Thresholds);

/// <summary>Classification metrics with scikit-learn's definitions (labels are class indices 0..K-1; a score of 0 is
/// used where scikit-learn's <c>zero_division</c> would warn).</summary>
public static class ClassificationMetrics
{
    public static double Accuracy(IReadOnlyList<int> truth, IReadOnlyList<int> predicted)
    {
        CheckLengths(truth.Count, predicted.Count);
        return truth.Count == 0 ? 0 : truth.Where((t, i) => t == predicted[i]).Count() / (double)truth.Count;
    }

    /// <summary>counts[true, predicted].</summary>
    public static int[,] ConfusionMatrix(IReadOnlyList<int> truth, IReadOnlyList<int> predicted, int classCount)
    {
        CheckLengths(truth.Count, predicted.Count);
        var matrix = new int[classCount, classCount];
        for (var i = 0; i < truth.Count; i++)
            matrix[truth[i], predicted[i]]++;
        return matrix;
    }

    public static PrecisionRecallF1 PrecisionRecallF1(IReadOnlyList<int> truth, IReadOnlyList<int> predicted, int classCount,
        Averaging averaging = Averaging.Binary, int positiveClass = 1)
    {
        var matrix = ConfusionMatrix(truth, predicted, classCount);
        double TruePositives(int k) => matrix[k, k];
        double PredictedCount(int k) => Enumerable.Range(0, classCount).Sum(t => matrix[t, k]);
        double Support(int k) => Enumerable.Range(0, classCount).Sum(p => matrix[k, p]);
        PrecisionRecallF1 Score(double tp, double predictedCount, double support)
        {
            var precision = predictedCount == 0 ? 0 : tp / predictedCount;
            var recall = support == 0 ? 0 : tp / support;
            var f1 = precision + recall == 0 ? 0 : 2 * precision * recall / (precision + recall);
            return new PrecisionRecallF1(precision, recall, f1);
        }
        switch (averaging)
        {
            case Averaging.Binary:
                if (classCount != 2)
                    throw new ArgumentException($"binary averaging needs 2 classes, got {classCount}; use macro, micro or weighted");
                return Score(TruePositives(positiveClass), PredictedCount(positiveClass), Support(positiveClass));
            case Averaging.Micro:
                var tp = Enumerable.Range(0, classCount).Sum(TruePositives);
                return Score(tp, truth.Count, truth.Count);
            default:
                var perClass = Enumerable.Range(0, classCount).Select(k => (Score: Score(TruePositives(k), PredictedCount(k), Support(k)), Support: Support(k))).ToList();
                var weights = perClass.Select(c => averaging == Averaging.Weighted ? c.Support : 1.0).ToArray();
                var total = weights.Sum();
                double Mean(Func<PrecisionRecallF1, double> pick) => total == 0 ? 0 : perClass.Select((c, k) => pick(c.Score) * weights[k]).Sum() / total;
                return new PrecisionRecallF1(Mean(s => s.Precision), Mean(s => s.Recall), Mean(s => s.F1));
        }
    }

    /// <summary>Matthews correlation coefficient (multiclass form of Gorodkin, as scikit-learn).</summary>
    public static double MatthewsCorrelation(IReadOnlyList<int> truth, IReadOnlyList<int> predicted, int classCount)
    {
        var matrix = ConfusionMatrix(truth, predicted, classCount);
        double samples = truth.Count;
        var correct = Enumerable.Range(0, classCount).Sum(k => (double)matrix[k, k]);
        var trueCounts = Enumerable.Range(0, classCount).Select(k => Enumerable.Range(0, classCount).Sum(p => (double)matrix[k, p])).ToArray();
        var predictedCounts = Enumerable.Range(0, classCount).Select(k => Enumerable.Range(0, classCount).Sum(t => (double)matrix[t, k])).ToArray();
        var covariance = correct * samples - trueCounts.Zip(predictedCounts, (t, p) => t * p).Sum();
        var predictedVariance = samples * samples - predictedCounts.Sum(p => p * p);
        var trueVariance = samples * samples - trueCounts.Sum(t => t * t);
        return predictedVariance * trueVariance == 0 ? 0 : covariance / Math.Sqrt(predictedVariance * trueVariance);
    }

    /// <summary>Area under the ROC curve of a binary problem: the probability that a random positive outranks a
    /// random negative, ties counting one half (equal to scikit-learn's trapezoidal area).</summary>
    public static double RocAuc(IReadOnlyList<int> truth, IReadOnlyList<double> scores, int positiveClass = 1)
    {
        CheckLengths(truth.Count, scores.Count);
        var order = Enumerable.Range(0, scores.Count).OrderBy(i => scores[i]).ToArray();
        var ranks = new double[order.Length];
        for (var start = 0; start < order.Length;)
        {
            var end = start;
            while (end + 1 < order.Length && scores[order[end + 1]] == scores[order[start]])
                end++;
            var rank = (start + end) / 2.0 + 1;
            for (var k = start; k <= end; k++)
                ranks[order[k]] = rank;
            start = end + 1;
        }
        double positives = truth.Count(t => t == positiveClass);
        var negatives = truth.Count - positives;
        if (positives == 0 || negatives == 0)
            throw new ArgumentException("ROC AUC is undefined when only one class is present");
        var rankSum = Enumerable.Range(0, truth.Count).Where(i => truth[i] == positiveClass).Sum(i => ranks[i]);
        return (rankSum - positives * (positives + 1) / 2) / (positives * negatives);
    }

    /// <summary>Macro average of the one-vs-rest ROC AUCs over classes (scikit-learn's <c>multi_class="ovr"</c>);
    /// <paramref name="probabilities"/> is row-major [row, class].</summary>
    public static double RocAucOneVsRest(IReadOnlyList<int> truth, IReadOnlyList<double> probabilities, int classCount)
    {
        CheckLengths(truth.Count * classCount, probabilities.Count);
        if (classCount == 2)
            return RocAuc(truth, Column(probabilities, classCount, 1));
        return Enumerable.Range(0, classCount)
            .Select(k => RocAuc(truth.Select(t => t == k ? 1 : 0).ToArray(), Column(probabilities, classCount, k)))
            .Average();
    }

    /// <summary>Cross-entropy of the predicted probabilities (rows clipped to [ε, 1-ε] and renormalised, as scikit-learn).</summary>
    public static double LogLoss(IReadOnlyList<int> truth, IReadOnlyList<double> probabilities, int classCount)
    {
        CheckLengths(truth.Count * classCount, probabilities.Count);
        const double epsilon = 2.220446049250313e-16;
        var total = 0.0;
        for (var i = 0; i < truth.Count; i++)
        {
            var sum = 0.0;
            for (var k = 0; k < classCount; k++)
                sum += Math.Clamp(probabilities[i * classCount + k], epsilon, 1 - epsilon);
            total -= Math.Log(Math.Clamp(probabilities[i * classCount + truth[i]], epsilon, 1 - epsilon) / sum);
        }
        return total / truth.Count;
    }

    /// <summary>exp of the mean loss: the perplexity of a language model from its per-token (or per-batch) losses.</summary>
    public static double Perplexity(IEnumerable<double> losses) => Math.Exp(losses.Average());

    /// <summary>exp of the token-weighted mean of per-batch mean losses.</summary>
    public static double Perplexity(IEnumerable<(double MeanLoss, long Tokens)> batches)
    {
        var list = batches.ToList();
        var tokens = list.Sum(b => (double)b.Tokens);
        return Math.Exp(list.Sum(b => b.MeanLoss * b.Tokens) / tokens);
    }

    /// <summary>ROC curve points (false positive rate, true positive rate) at every distinct threshold, highest first,
    /// starting from (0, 0) as scikit-learn's <c>roc_curve(drop_intermediate=False)</c>.</summary>
    public static Curve RocCurve(IReadOnlyList<int> truth, IReadOnlyList<double> scores, int positiveClass = 1)
    {
        var (thresholds, truePositives, falsePositives) = CumulativeCounts(truth, scores, positiveClass);
        var positives = truePositives.Length == 0 ? 0 : truePositives[^1];
        var negatives = falsePositives.Length == 0 ? 0 : falsePositives[^1];
        var fpr = new[] { 0.0 }.Concat(falsePositives.Select(f => negatives == 0 ? 0 : f / negatives)).ToArray();
        var tpr = new[] { 0.0 }.Concat(truePositives.Select(t => positives == 0 ? 0 : t / positives)).ToArray();
        return new Curve(fpr, tpr, new[] { double.PositiveInfinity }.Concat(thresholds).ToArray());
    }

    /// <summary>Precision-recall curve: X = recall, Y = precision, by decreasing threshold, ending at (0, 1)
    /// as scikit-learn's <c>precision_recall_curve</c> (reversed to run from low to high threshold there).</summary>
    public static Curve PrecisionRecallCurve(IReadOnlyList<int> truth, IReadOnlyList<double> scores, int positiveClass = 1)
    {
        var (thresholds, truePositives, falsePositives) = CumulativeCounts(truth, scores, positiveClass);
        var positives = truePositives.Length == 0 ? 0 : truePositives[^1];
        var recall = new[] { 0.0 }.Concat(truePositives.Select(t => positives == 0 ? 0 : t / positives)).ToArray();
        var precision = new[] { 1.0 }.Concat(truePositives.Select((t, i) => t / (t + falsePositives[i]))).ToArray();
        return new Curve(recall, precision, new[] { double.PositiveInfinity }.Concat(thresholds).ToArray());
    }

    /// <summary>Average precision: Σ (Rₙ - Rₙ₋₁) Pₙ over thresholds (scikit-learn's <c>average_precision_score</c>).</summary>
    public static double AveragePrecision(IReadOnlyList<int> truth, IReadOnlyList<double> scores, int positiveClass = 1)
    {
        var curve = PrecisionRecallCurve(truth, scores, positiveClass);
        var sum = 0.0;
        for (var i = 1; i < curve.X.Length; i++)
            sum += (curve.X[i] - curve.X[i - 1]) * curve.Y[i];
        return sum;
    }

    /// <summary>Column <paramref name="k"/> of a row-major [row, class] matrix.</summary>
    public static double[] Column(IReadOnlyList<double> probabilities, int classCount, int k) =>
        Enumerable.Range(0, probabilities.Count / classCount).Select(i => probabilities[i * classCount + k]).ToArray();

    private static (double[] Thresholds, double[] TruePositives, double[] FalsePositives) CumulativeCounts(
        IReadOnlyList<int> truth, IReadOnlyList<double> scores, int positiveClass)
    {
        CheckLengths(truth.Count, scores.Count);
        var order = Enumerable.Range(0, scores.Count).OrderByDescending(i => scores[i]).ToArray();
        var thresholds = new List<double>();
        var tps = new List<double>();
        var fps = new List<double>();
        double tp = 0, fp = 0;
        for (var k = 0; k < order.Length; k++)
        {
            if (truth[order[k]] == positiveClass)
                tp++;
            else
                fp++;
            // One point per distinct score, after all samples with that score.
            if (k + 1 == order.Length || scores[order[k + 1]] != scores[order[k]])
            {
                thresholds.Add(scores[order[k]]);
                tps.Add(tp);
                fps.Add(fp);
            }
        }
        return (thresholds.ToArray(), tps.ToArray(), fps.ToArray());
    }

    private static void CheckLengths(int expected, int actual)
    {
        if (expected != actual)
            throw new ArgumentException($"length mismatch: {expected} vs {actual}");
    }
}
