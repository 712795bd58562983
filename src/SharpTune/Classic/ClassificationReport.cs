using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using SharpTune.Metrics;
using SharpTune.Reporting;

namespace SharpTune.Classic;

/// <summary>The metrics of one approach on the eval texts, and its ROC and precision-recall curves (micro-averaged
/// one-vs-rest for more than two classes).</summary>
public sealed record ApproachEvaluation(ApproachResult Result, int[] Predicted, JsonObject Metrics, Curve Roc, Curve PrecisionRecall)
{
    public string Approach => Result.Approach;
    public double Accuracy => Metrics["accuracy"]!.GetValue<double>();
    public double F1 => Metrics["f1"]!.GetValue<double>();
    /// <summary>NaN when the eval texts hold a single class (the area is undefined; null in metrics.json).</summary>
    public double RocAuc => Metrics["roc_auc"]?.GetValue<double>() ?? double.NaN;
}

/// <summary>Evaluates approaches and writes the comparison: <c>metrics.json</c> (one object per approach),
/// <c>predictions_&lt;approach&gt;.csv</c>, <c>roc.png</c> and <c>pr.png</c> (when <see cref="Charts.Renderer"/> is set), <c>report.md</c>, and with test texts a
/// <c>submission.csv</c> from the approach with the best eval ROC AUC. Files appear whole or not at all.</summary>
public static class ClassificationReport
{
    public static ApproachEvaluation Evaluate(ClassificationProblem problem, ApproachResult result)
    {
        var classes = problem.Labels.Count;
        var truth = problem.EvalLabels;
        var probabilities = result.EvalProbabilities;
        if (probabilities.Length != truth.Length * classes)
            throw new InvalidOperationException($"approach {result.Approach} returned {probabilities.Length} probabilities for {truth.Length} rows and {classes} classes");
        var predicted = Enumerable.Range(0, truth.Length).Select(i => ArgMax(probabilities.AsSpan(i * classes, classes))).ToArray();
        var binary = classes == 2;
        var main = ClassificationMetrics.PrecisionRecallF1(truth, predicted, classes, binary ? Averaging.Binary : Averaging.Macro);
        var macro = ClassificationMetrics.PrecisionRecallF1(truth, predicted, classes, Averaging.Macro);
        var micro = ClassificationMetrics.PrecisionRecallF1(truth, predicted, classes, Averaging.Micro);
        var (curveTruth, curveScores) = binary
            ? (truth, ClassificationMetrics.Column(probabilities, 2, 1))
            : (truth.SelectMany(t => Enumerable.Range(0, classes).Select(k => t == k ? 1 : 0)).ToArray(), probabilities);
        var confusion = ClassificationMetrics.ConfusionMatrix(truth, predicted, classes);
        // Ranking metrics need both a positive and a negative per class; with one class in eval they are undefined.
        var ranked = truth.Distinct().Count() == classes;
        var metrics = new JsonObject
        {
            ["description"] = result.Description,
            ["accuracy"] = ClassificationMetrics.Accuracy(truth, predicted),
            ["f1"] = main.F1,
            ["precision"] = main.Precision,
            ["recall"] = main.Recall,
            ["f1_macro"] = macro.F1,
            ["f1_micro"] = micro.F1,
            ["roc_auc"] = ranked ? ClassificationMetrics.RocAucOneVsRest(truth, probabilities, classes) : null,
            ["average_precision"] = ranked ? ClassificationMetrics.AveragePrecision(curveTruth, curveScores) : null,
            ["log_loss"] = ClassificationMetrics.LogLoss(truth, probabilities, classes),
            ["mcc"] = ClassificationMetrics.MatthewsCorrelation(truth, predicted, classes),
            ["train_seconds"] = result.TrainSeconds,
            ["predict_seconds"] = result.PredictSeconds,
            ["train_rows"] = problem.Train.Count,
            ["eval_rows"] = problem.Eval.Count,
            ["classes"] = new JsonArray(problem.Labels.Classes.Select(c => (JsonNode)JsonValue.Create(c)!).ToArray()),
            ["positive_class"] = binary ? problem.Labels.Classes[1] : null,
            ["confusion_matrix"] = new JsonArray(Enumerable.Range(0, classes)
                .Select(t => (JsonNode)new JsonArray(Enumerable.Range(0, classes).Select(p => (JsonNode)JsonValue.Create(confusion[t, p])).ToArray())).ToArray()),
        };
        foreach (var (key, value) in result.Details)
            metrics[key] = value;
        return new ApproachEvaluation(result, predicted,
            metrics,
            ClassificationMetrics.RocCurve(curveTruth, curveScores),
            ClassificationMetrics.PrecisionRecallCurve(curveTruth, curveScores));
    }

    /// <summary>Writes every output file into <paramref name="outputDirectory"/> (created when missing).</summary>
    public static void Write(string outputDirectory, ClassificationProblem problem, IReadOnlyList<ApproachEvaluation> evaluations)
    {
        if (evaluations.Count == 0)
            throw new ArgumentException("no approach to report");
        Directory.CreateDirectory(outputDirectory);
        var metrics = new JsonObject();
        foreach (var evaluation in evaluations)
            metrics[evaluation.Approach] = evaluation.Metrics.DeepClone();
        IO.AtomicFile.WriteAllText(Path.Combine(outputDirectory, "metrics.json"),
            metrics.ToJsonString(new JsonSerializerOptions { WriteIndented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }) + "\n");

        foreach (var evaluation in evaluations)
            IO.AtomicFile.WriteAllText(Path.Combine(outputDirectory, $"predictions_{evaluation.Approach}.csv"), PredictionsCsv(problem, evaluation));

        var best = evaluations.MaxBy(e => double.IsNaN(e.RocAuc) ? e.Accuracy - 1 : e.RocAuc)!;
        if (problem.Test is not null && best.Result.TestProbabilities is { } test)
            IO.AtomicFile.WriteAllText(Path.Combine(outputDirectory, "submission.csv"), SubmissionCsv(problem, test));

        var binary = problem.Labels.Count == 2;
        var curveKind = binary ? "" : " (micro-averaged one-vs-rest)";
        var charts = Charts.Renderer;
        charts?.SaveCurves(Path.Combine(outputDirectory, "roc.png"), $"ROC curve{curveKind}", "False positive rate", "True positive rate",
            evaluations.Select(e => ($"{e.Approach} (AUC {e.RocAuc:F3})", e.Roc.X, e.Roc.Y)).ToList(), diagonal: true);
        charts?.SaveCurves(Path.Combine(outputDirectory, "pr.png"), $"Precision-recall curve{curveKind}", "Recall", "Precision",
            evaluations.Select(e => ($"{e.Approach} (AP {e.Metrics["average_precision"]?.GetValue<double>() ?? double.NaN:F3})", e.PrecisionRecall.X, e.PrecisionRecall.Y)).ToList(), diagonal: false);
        IO.AtomicFile.WriteAllText(Path.Combine(outputDirectory, "report.md"), Markdown(problem, evaluations, best, charts is not null));
    }

    private static string PredictionsCsv(ClassificationProblem problem, ApproachEvaluation evaluation)
    {
        var classes = problem.Labels.Classes;
        var builder = new StringBuilder();
        builder.AppendJoin(',', new[] { "id", "label", "predicted" }.Concat(classes.Select(c => $"prob_{c}")).Select(Csv)).Append('\n');
        var probabilities = evaluation.Result.EvalProbabilities;
        for (var i = 0; i < problem.Eval.Count; i++)
        {
            builder.Append(Csv(problem.Eval.Ids[i])).Append(',').Append(Csv(problem.Eval.Labels[i] ?? "")).Append(',')
                .Append(Csv(classes[evaluation.Predicted[i]]));
            for (var k = 0; k < classes.Count; k++)
                builder.Append(',').Append(Number(probabilities[i * classes.Count + k]));
            builder.Append('\n');
        }
        return builder.ToString();
    }

    /// <summary>As the seed notebook: id and the probability of the positive class; with more than two classes, the
    /// predicted label and one probability column per class.</summary>
    private static string SubmissionCsv(ClassificationProblem problem, double[] probabilities)
    {
        var test = problem.Test!;
        var classes = problem.Labels.Classes;
        var builder = new StringBuilder();
        if (classes.Count == 2)
        {
            builder.Append("id,probability\n");
            for (var i = 0; i < test.Count; i++)
                builder.Append(Csv(test.Ids[i])).Append(',').Append(Number(probabilities[2 * i + 1])).Append('\n');
            return builder.ToString();
        }
        builder.AppendJoin(',', new[] { "id", "label" }.Concat(classes.Select(c => $"prob_{c}")).Select(Csv)).Append('\n');
        for (var i = 0; i < test.Count; i++)
        {
            var row = probabilities.AsSpan(i * classes.Count, classes.Count);
            builder.Append(Csv(test.Ids[i])).Append(',').Append(Csv(classes[ArgMax(row)]));
            foreach (var p in row)
                builder.Append(',').Append(Number(p));
            builder.Append('\n');
        }
        return builder.ToString();
    }

    private static string Markdown(ClassificationProblem problem, IReadOnlyList<ApproachEvaluation> evaluations, ApproachEvaluation best, bool withCharts)
    {
        var binary = problem.Labels.Count == 2;
        var builder = new StringBuilder();
        builder.Append("# Document classification report\n\n");
        builder.Append(CultureInfo.InvariantCulture, $"- train: {problem.Train.Count:N0} rows ({Source(problem.Train)}); eval: {problem.Eval.Count:N0} rows ({Source(problem.Eval)})");
        if (problem.Test is { } test)
            builder.Append(CultureInfo.InvariantCulture, $"; test: {test.Count:N0} rows ({Source(test)}), scored by **{best.Approach}** into `submission.csv`");
        builder.Append('\n');
        builder.Append(CultureInfo.InvariantCulture, $"- classes: {string.Join(", ", problem.Labels.Classes)}");
        builder.Append(binary ? $" (positive: {problem.Labels.Classes[1]}; F1, precision and recall of the positive class)\n" : " (F1, precision and recall macro-averaged; ROC AUC one-vs-rest macro)\n");
        builder.Append("\n| approach | accuracy | F1 | precision | recall | ROC AUC | log loss | MCC | train s | predict s |\n");
        builder.Append("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
        foreach (var e in evaluations)
        {
            string M(string key) => e.Metrics[key]?.GetValue<double>() is { } value ? value.ToString(key.EndsWith("seconds") ? "F2" : "F4", CultureInfo.InvariantCulture) : "n/a";
            var name = e == best && evaluations.Count > 1 ? $"**{e.Approach}**" : e.Approach;
            builder.Append(CultureInfo.InvariantCulture,
                $"| {name} | {M("accuracy")} | {M("f1")} | {M("precision")} | {M("recall")} | {M("roc_auc")} | {M("log_loss")} | {M("mcc")} | {M("train_seconds")} | {M("predict_seconds")} |\n");
        }
        AppendCrossValidation(builder, evaluations);
        builder.Append("\n## Approaches\n\n");
        foreach (var e in evaluations)
            builder.Append(CultureInfo.InvariantCulture, $"- **{e.Approach}**: {e.Result.Description}\n");
        if (withCharts)
            builder.Append("\n## Curves\n\n![ROC curves](roc.png)\n\n![Precision-recall curves](pr.png)\n");
        builder.Append("\n## Confusion matrices (rows: true, columns: predicted)\n");
        foreach (var e in evaluations)
        {
            builder.Append(CultureInfo.InvariantCulture, $"\n**{e.Approach}**\n\n| true \\ predicted | {string.Join(" | ", problem.Labels.Classes)} |\n");
            builder.Append("| --- |").Append(string.Concat(Enumerable.Repeat(" ---: |", problem.Labels.Count))).Append('\n');
            var matrix = e.Metrics["confusion_matrix"]!.AsArray();
            for (var t = 0; t < problem.Labels.Count; t++)
                builder.Append(CultureInfo.InvariantCulture, $"| {problem.Labels.Classes[t]} | {string.Join(" | ", matrix[t]!.AsArray().Select(v => v!.GetValue<int>()))} |\n");
        }
        builder.Append("\nPer-row probabilities: `predictions_<approach>.csv`; all figures: `metrics.json`.\n");
        return builder.ToString();
    }

    /// <summary>Per-fold and out-of-fold scores of the approaches that ran a k-fold cross-validation on the train rows
    /// (the main table scores them on the eval rows, averaged over the fold models).</summary>
    private static void AppendCrossValidation(StringBuilder builder, IReadOnlyList<ApproachEvaluation> evaluations)
    {
        foreach (var e in evaluations.Where(e => e.Metrics["folds"] is not null))
        {
            var folds = (int)e.Metrics["folds"]!.GetValue<double>();
            string M(string key) => e.Metrics[key]?.GetValue<double>() is { } value ? value.ToString("F4", CultureInfo.InvariantCulture) : "n/a";
            builder.Append(CultureInfo.InvariantCulture, $"\n## Cross-validation: {e.Approach} ({folds} stratified folds on the train rows)\n\n");
            builder.Append("| fold | accuracy | ROC AUC |\n| --- | ---: | ---: |\n");
            for (var fold = 0; fold < folds; fold++)
                builder.Append(CultureInfo.InvariantCulture, $"| {fold} | {M($"fold{fold}_accuracy")} | {M($"fold{fold}_roc_auc")} |\n");
            builder.Append(CultureInfo.InvariantCulture, $"| **out-of-fold** | **{M("cv_accuracy")}** | **{M("cv_roc_auc")}** |\n");
            builder.Append(CultureInfo.InvariantCulture, $"\nOut-of-fold probabilities: `{e.Approach}/{Training.Approaches.KFoldApproach.OofFileName}`.\n");
        }
    }

    private static string Source(Data.LabeledTexts texts) =>
        string.Join(", ", texts.Origins.Select(o => Path.GetFileName(o.File)).Distinct().Take(3));

    private static string Number(double value) => value.ToString("R", CultureInfo.InvariantCulture);

    /// <summary>RFC 4180 quoting where needed.</summary>
    private static string Csv(string value) =>
        value.IndexOfAny([',', '"', '\n', '\r']) >= 0 ? $"\"{value.Replace("\"", "\"\"")}\"" : value;

    private static int ArgMax(ReadOnlySpan<double> row)
    {
        var best = 0;
        for (var k = 1; k < row.Length; k++)
            if (row[k] > row[best])
                best = k;
        return best;
    }
}
