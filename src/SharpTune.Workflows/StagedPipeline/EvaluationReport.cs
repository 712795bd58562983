using System.Globalization;
using System.Text;
using System.Text.Json;
using SharpTune.IO;

namespace SharpTune.StagedPipeline;

/// <summary>Latency over repeated runs: mean and the 50th/95th percentiles (linear interpolation, as numpy).</summary>
public sealed record LatencyStats(double MeanMs, double P50Ms, double P95Ms, int Runs)
{
    public static LatencyStats From(IReadOnlyList<double> milliseconds)
    {
        if (milliseconds.Count == 0)
            throw new ArgumentException("no latency measurements");
        var sorted = milliseconds.Order().ToArray();
        return new LatencyStats(sorted.Average(), Percentile(sorted, 50), Percentile(sorted, 95), sorted.Length);
    }

    public static double Percentile(double[] sorted, double percent)
    {
        var rank = percent / 100 * (sorted.Length - 1);
        var low = (int)Math.Floor(rank);
        var high = Math.Min(low + 1, sorted.Length - 1);
        return sorted[low] + (rank - low) * (sorted[high] - sorted[low]);
    }
}

/// <summary>The measured figures of one model variant.</summary>
public sealed record VariantEvaluation
{
    /// <summary>"base", "quantized", "lora", "quantized-lora".</summary>
    public required string Name { get; init; }
    public required double LoadSeconds { get; init; }
    /// <summary>Prompt prefill up to the first generated token, mean over the timed runs.</summary>
    public required double TimeToFirstTokenMs { get; init; }
    /// <summary>One whole generation (prompt + up to max_new_tokens), over the timed runs after warm-up.</summary>
    public required LatencyStats Latency { get; init; }
    /// <summary>Generated tokens per second of generation time, over the timed runs.</summary>
    public required double TokensPerSecond { get; init; }
    /// <summary>Peak resident memory added by loading and running the variant (bytes).</summary>
    public required long PeakMemoryBytes { get; init; }
    /// <summary>Bytes of the weight files (*.safetensors).</summary>
    public required long WeightBytes { get; init; }
    /// <summary>Bytes of the whole model folder.</summary>
    public required long SizeOnDiskBytes { get; init; }
    /// <summary>exp(mean cross-entropy) over the response tokens of the held-out samples.</summary>
    public required double Perplexity { get; init; }
    /// <summary>Greedy continuations of the sample prompts.</summary>
    public required IReadOnlyList<string> Samples { get; init; }
}

/// <summary>
/// The comparison of the model variants on the same held-out prompts (seed 001's print_summary): written as
/// <c>report.json</c>, <c>report.md</c> (tables, the generated samples side by side, charts) and one bar chart PNG
/// per figure.
/// </summary>
public sealed record EvaluationReport
{
    public const string JsonFileName = "report.json";
    public const string MarkdownFileName = "report.md";

    public required string Device { get; init; }
    public required int HeldOutSamples { get; init; }
    public required int HeldOutResponseTokens { get; init; }
    public required int MaxNewTokens { get; init; }
    public required int WarmupRuns { get; init; }
    public required int TimedRuns { get; init; }
    /// <summary>How peak memory was measured on this machine.</summary>
    public required string PeakMemoryMethod { get; init; }
    public required IReadOnlyList<string> SamplePrompts { get; init; }
    public required IReadOnlyList<VariantEvaluation> Variants { get; init; }

    private static readonly (string File, string Title, string Unit, Func<VariantEvaluation, double> Value)[] Charts =
    [
        ("perplexity.png", "Held-out perplexity (lower is better)", "perplexity", v => v.Perplexity),
        ("latency.png", "Generation latency, mean (lower is better)", "ms", v => v.Latency.MeanMs),
        ("time_to_first_token.png", "Time to first token (lower is better)", "ms", v => v.TimeToFirstTokenMs),
        ("tokens_per_second.png", "Decoding speed (higher is better)", "tokens/s", v => v.TokensPerSecond),
        ("weight_bytes.png", "Weight files on disk (lower is better)", "KiB", v => v.WeightBytes / 1024.0),
        ("peak_memory.png", "Peak memory (lower is better)", "MiB", v => v.PeakMemoryBytes / (1024.0 * 1024)),
        ("load_time.png", "Load time (lower is better)", "ms", v => v.LoadSeconds * 1000),
    ];

    public void Save(string directory)
    {
        Directory.CreateDirectory(directory);
        File.WriteAllText(Path.Combine(directory, JsonFileName), JsonSerializer.Serialize(this, PipelineSettings.Json));
        foreach (var chart in Charts)
            SaveBarChart(Path.Combine(directory, chart.File), chart.Title, chart.Unit, Variants.Select(v => v.Name).ToArray(), Variants.Select(chart.Value).ToArray());
        File.WriteAllText(Path.Combine(directory, MarkdownFileName), ToMarkdown());
    }

    public static EvaluationReport Load(string directory)
    {
        var path = Path.Combine(directory, JsonFileName);
        if (!File.Exists(path))
            throw new FileNotFoundException($"no evaluation report in {directory}", path);
        try
        {
            return JsonSerializer.Deserialize<EvaluationReport>(File.ReadAllText(path), PipelineSettings.Json)
                   ?? throw new InvalidDataException($"{path}: empty report");
        }
        catch (JsonException exception)
        {
            throw new InvalidDataException($"{path}: not a valid evaluation report ({exception.Message})");
        }
    }

    /// <summary>The table of every figure, one row per variant (also used in the exported model cards).</summary>
    public string MetricsTable()
    {
        var text = new StringBuilder();
        text.AppendLine("| variant | perplexity | load (ms) | first token (ms) | latency mean / p50 / p95 (ms) | tokens/s | peak memory (MiB) | weights (KiB) | folder (KiB) |");
        text.AppendLine("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        foreach (var v in Variants)
            text.AppendLine(Invariant(
                $"| {v.Name} | {v.Perplexity:F3} | {v.LoadSeconds * 1000:F1} | {v.TimeToFirstTokenMs:F2} | {v.Latency.MeanMs:F2} / {v.Latency.P50Ms:F2} / {v.Latency.P95Ms:F2} | {v.TokensPerSecond:F1} | {v.PeakMemoryBytes / 1048576.0:F1} | {v.WeightBytes / 1024.0:F1} | {v.SizeOnDiskBytes / 1024.0:F1} |"));
        return text.ToString();
    }

    public string ToMarkdown()
    {
        var text = new StringBuilder();
        text.AppendLine("# Pipeline evaluation");
        text.AppendLine();
        text.AppendLine($"Device: {Device}. Held-out samples: {HeldOutSamples} ({HeldOutResponseTokens} response tokens scored for perplexity). " +
                        $"Latency: greedy generation of up to {MaxNewTokens} new tokens, {TimedRuns} timed runs after {WarmupRuns} warm-up run(s). " +
                        $"Peak memory: {PeakMemoryMethod}.");
        text.AppendLine();
        text.Append(MetricsTable());
        text.AppendLine();
        if (Variants.FirstOrDefault(v => v.Name == "base") is { } baseline)
        {
            text.AppendLine("| variant | weights vs base | perplexity vs base | latency vs base |");
            text.AppendLine("| --- | ---: | ---: | ---: |");
            foreach (var v in Variants)
                text.AppendLine(Invariant($"| {v.Name} | {(double)v.WeightBytes / baseline.WeightBytes:F3}× | {v.Perplexity / baseline.Perplexity:F3}× | {v.Latency.MeanMs / baseline.Latency.MeanMs:F3}× |"));
            text.AppendLine();
        }
        text.AppendLine("## Generated samples");
        text.AppendLine();
        for (var i = 0; i < SamplePrompts.Count; i++)
        {
            text.AppendLine($"### Prompt {i + 1}");
            text.AppendLine();
            text.AppendLine("```text");
            text.AppendLine(SamplePrompts[i]);
            text.AppendLine("```");
            text.AppendLine();
            text.AppendLine("| variant | generated |");
            text.AppendLine("| --- | --- |");
            foreach (var v in Variants)
                text.AppendLine($"| {v.Name} | {EscapeCell(v.Samples[i])} |");
            text.AppendLine();
        }
        text.AppendLine("## Charts");
        text.AppendLine();
        foreach (var chart in Charts)
            text.AppendLine($"![{chart.Title}]({chart.File})");
        return text.ToString();
    }

    private static string EscapeCell(string text) => text.Replace("|", "\\|").ReplaceLineEndings("<br>");

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);

    private static void SaveBarChart(string path, string title, string unit, string[] names, double[] values)
    {
        var plot = new ScottPlot.Plot();
        var bars = plot.Add.Bars(values);
        for (var i = 0; i < bars.Bars.Count; i++)
        {
            bars.Bars[i].Label = values[i].ToString(values[i] >= 100 ? "F0" : "F2", CultureInfo.InvariantCulture);
            bars.Bars[i].FillColor = ScottPlot.Palette.Default.GetColor(i);
        }
        bars.ValueLabelStyle.FontSize = 14;
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual(Enumerable.Range(0, names.Length).Select(i => (double)i).ToArray(), names);
        plot.Axes.Margins(bottom: 0, top: 0.15);
        plot.Title(title);
        plot.YLabel(unit);
        AtomicFile.WriteAllBytes(path, plot.GetImageBytes(720, 420, ScottPlot.ImageFormat.Png));
    }
}
