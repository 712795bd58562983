using System.Text.Json;
using System.Text.Json.Serialization;
using SharpTune.IO;

namespace SharpTune.Training;

/// <summary>Writes every log entry as one JSON line to <c>training_log.jsonl</c> and, at the end of training, a plot
/// of training loss, evaluation loss/metric and learning rate against the step to <c>training_curves.png</c>.</summary>
public sealed class TrainingLogWriter(string outputDir) : TrainerCallback
{
    public const string LogFileName = "training_log.jsonl";
    public const string PlotFileName = "training_curves.png";

    /// <summary>fp16 steps skipped for overflow log an infinite or NaN gradient norm, which plain JSON cannot hold:
    /// written as the strings "Infinity"/"NaN" (and read back as numbers).</summary>
    internal static readonly JsonSerializerOptions JsonOptions = new() { NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals };

    public string LogPath { get; } = Path.Combine(outputDir, LogFileName);
    public string PlotPath { get; } = Path.Combine(outputDir, PlotFileName);

    public override void OnTrainBegin(TrainingArguments args, TrainerState state, TrainerControl control) =>
        // A resumed run rewrites the log with the checkpoint's history, dropping lines logged after it.
        AtomicFile.WriteAllText(LogPath, string.Concat(state.LogHistory.Select(entry => JsonSerializer.Serialize(entry, JsonOptions) + "\n")));

    public override void OnLog(TrainingArguments args, TrainerState state, TrainerControl control, IReadOnlyDictionary<string, double> logs) =>
        File.AppendAllText(LogPath, JsonSerializer.Serialize(logs, JsonOptions) + "\n");

    public override void OnTrainEnd(TrainingArguments args, TrainerState state, TrainerControl control) =>
        WritePlot(state.LogHistory, PlotPath, args.BestMetricKey);

    /// <summary>Loss (left axis) and learning rate (right axis) by step; the best-model metric too when it is not a loss.</summary>
    public static void WritePlot(IEnumerable<IReadOnlyDictionary<string, double>> entries, string path, string metricKey = "eval_loss")
    {
        var history = entries.ToList();
        var plot = new ScottPlot.Plot();
        void AddSeries(string key, string legend, bool rightAxis)
        {
            var points = history.Where(h => h.ContainsKey(key) && h.ContainsKey("step")).ToList();
            if (points.Count == 0)
                return;
            var scatter = plot.Add.Scatter(points.Select(p => p["step"]).ToArray(), points.Select(p => p[key]).ToArray());
            scatter.LegendText = legend;
            scatter.MarkerSize = points.Count > 50 ? 0 : 4;
            if (rightAxis)
                scatter.Axes.YAxis = plot.Axes.Right;
        }
        AddSeries("loss", "train loss", false);
        AddSeries("eval_loss", "eval loss", false);
        if (metricKey != "eval_loss" && !metricKey.Contains("loss", StringComparison.Ordinal))
            AddSeries(metricKey, metricKey, false);
        AddSeries("learning_rate", "learning rate (right axis)", true);
        plot.XLabel("optimizer step");
        plot.YLabel("loss / metric");
        plot.Axes.Right.Label.Text = "learning rate";
        plot.ShowLegend();
        AtomicFile.WriteAllBytes(path, plot.GetImageBytes(900, 500, ScottPlot.ImageFormat.Png));
    }
}
