using System.Text.Json;
using SharpTune.StagedPipeline;
using SharpTune.Tests.Support;

namespace SharpTune.Tests.StagedPipeline;

public class EvaluationReportTests
{
    [Fact]
    public void PercentilesMatchNumpyLinearInterpolation()
    {
        // numpy.percentile(range(1, 11), [50, 95]) = [5.5, 9.55]
        var stats = LatencyStats.From(Enumerable.Range(1, 10).Select(i => (double)i).Reverse().ToList());
        Assert.Equal(5.5, stats.MeanMs, 12);
        Assert.Equal(5.5, stats.P50Ms, 12);
        Assert.Equal(9.55, stats.P95Ms, 12);
        Assert.Equal(10, stats.Runs);
        Assert.Equal(3.0, LatencyStats.From([3.0]).P95Ms);
    }

    [Fact]
    public void PeakMemoryScopeSeesAnAllocation()
    {
        Assert.Equal(OperatingSystem.IsLinux(), PeakMemoryScope.IsPrecise);
        if (!PeakMemoryScope.IsPrecise)
            return; // Elsewhere the figure is the process-wide peak, which this test cannot isolate.
        var scope = new PeakMemoryScope();
        var block = new byte[64 << 20];
        Array.Fill(block, (byte)1);
        Assert.True(scope.PeakBytes() >= 60L << 20, $"peak {scope.PeakBytes()} bytes after touching 64 MiB");
        GC.KeepAlive(block);
    }

    private static VariantEvaluation Variant(string name, double perplexity, long weights) => new()
    {
        Name = name, LoadSeconds = 0.01, TimeToFirstTokenMs = 2, Latency = LatencyStats.From([10, 12, 11]), TokensPerSecond = 900,
        PeakMemoryBytes = 5 << 20, WeightBytes = weights, SizeOnDiskBytes = weights + 2000, Perplexity = perplexity,
        Samples = [$"{name} says | hi\nthere"],
    };

    [Fact]
    public void ReportWritesJsonMarkdownAndCharts()
    {
        var report = new EvaluationReport
        {
            Device = "cpu", HeldOutSamples = 4, HeldOutResponseTokens = 120, MaxNewTokens = 8, WarmupRuns = 1, TimedRuns = 3,
            PeakMemoryMethod = PeakMemoryScope.Method, SamplePrompts = ["### Response:"],
            Variants = [Variant("base", 20, 1_000_000), Variant("quantized", 21, 250_000), Variant("lora", 15, 1_000_000), Variant("quantized-lora", 16, 250_000)],
        };
        var dir = RepoPaths.NewTempDirectory();
        report.Save(dir);
        var loaded = EvaluationReport.Load(dir);
        Assert.Equal(JsonSerializer.Serialize(report), JsonSerializer.Serialize(loaded));
        var markdown = File.ReadAllText(Path.Combine(dir, EvaluationReport.MarkdownFileName));
        Assert.Contains("| quantized | 21.000 |", markdown);
        Assert.Contains("| quantized-lora | 0.250× | 0.800× |", markdown);
        Assert.Contains("| lora | lora says \\| hi<br>there |", markdown);
        var charts = Directory.GetFiles(dir, "*.png");
        Assert.Equal(7, charts.Length);
        Assert.All(charts, c => Assert.Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G' }, File.ReadAllBytes(c)[..4]));
        Assert.All(charts, c => Assert.Contains($"]({Path.GetFileName(c)})", markdown));
    }
}
