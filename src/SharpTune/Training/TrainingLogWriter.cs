using System.Text.Json;
using System.Text.Json.Serialization;
using SharpTune.IO;
using SharpTune.Reporting;

namespace SharpTune.Training;

/// <summary>Writes every log entry as one JSON line to <c>training_log.jsonl</c> and, at the end of training, a plot
/// of training loss, evaluation loss/metric and learning rate against the step to <c>training_curves.png</c>
/// (drawn by <see cref="Charts.Renderer"/>, when one is set).</summary>
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

    /// <summary>Draws the training curves with <see cref="Charts.Renderer"/>; without a renderer there is no plot.</summary>
    public static void WritePlot(IEnumerable<IReadOnlyDictionary<string, double>> entries, string path, string metricKey = "eval_loss") =>
        Charts.Renderer?.SaveTrainingCurves(path, entries.ToList(), metricKey);
}
