using System.Diagnostics;
using System.Text.Json.Nodes;
using SharpTune.Models;
using SharpTune.Peft;
using SharpTune.StagedPipeline;
using SharpTune.Tests.Support;
using static TorchSharp.torch;

namespace SharpTune.Tests.StagedPipeline;

/// <summary>The whole pipeline, once, through the CLI on stories260K and the Dolly subset with a tiny setting.</summary>
public sealed class TinyPipelineRun
{
    public static readonly string[] Arguments =
    [
        "pipeline", "--model", Path.Combine(RepoPaths.Models, "stories260K"), "--data", Path.Combine(RepoPaths.Data, "dolly_subset", "dolly_alpaca_format.jsonl"),
        "--train-samples", "24", "--held-out-samples", "6", "--max-length", "96", "--lr", "3e-3", "--warmup-steps", "1",
        "--max-new-tokens", "6", "--latency-runs", "2", "--warmup-runs", "1", "--sample-prompts", "2", "--device", "cpu", "--seed", "7",
    ];

    public TinyPipelineRun()
    {
        Output = RepoPaths.NewTempDirectory("sharptune-pipeline");
        Result = CliRunner.Run([.. Arguments, "--output", Output]);
    }

    public string Output { get; }
    public CliResult Result { get; }
}

public class PipelineEndToEndTests(TinyPipelineRun run) : IClassFixture<TinyPipelineRun>
{
    private static JsonNode Report(string output) => JsonNode.Parse(File.ReadAllText(Path.Combine(output, "evaluation", EvaluationReport.JsonFileName)))!;

    [Fact]
    public void OneCommandProducesFourEvaluatedAndExportedVariants()
    {
        Assert.True(run.Result.ExitCode == 0, run.Result.All);
        var report = EvaluationReport.Load(Path.Combine(run.Output, "evaluation"));
        Assert.Equal(["base", "quantized", "lora", "quantized-lora"], report.Variants.Select(v => v.Name));
        Assert.All(report.Variants, v =>
        {
            Assert.True(v.LoadSeconds > 0 && v.TimeToFirstTokenMs > 0 && v.TokensPerSecond > 0 && v.PeakMemoryBytes >= 0, v.Name);
            Assert.True(v.Latency.MeanMs > 0 && v.Latency.P50Ms <= v.Latency.P95Ms && v.Latency.Runs == 2, v.Name);
            Assert.True(double.IsFinite(v.Perplexity) && v.Perplexity > 1, v.Name);
            Assert.Equal(2, v.Samples.Count);
        });
        var byName = report.Variants.ToDictionary(v => v.Name);
        // Fine-tuning lowers held-out perplexity, with and without quantization.
        Assert.True(byName["lora"].Perplexity < byName["base"].Perplexity, $"lora {byName["lora"].Perplexity} vs base {byName["base"].Perplexity}");
        Assert.True(byName["quantized-lora"].Perplexity < byName["quantized"].Perplexity,
            $"quantized-lora {byName["quantized-lora"].Perplexity} vs quantized {byName["quantized"].Perplexity}");
        // 4-bit variants: at most 0.3x the fp32 base's weight bytes.
        foreach (var name in new[] { "quantized", "quantized-lora" })
            Assert.True(byName[name].WeightBytes <= 0.3 * byName["base"].WeightBytes, $"{name}: {byName[name].WeightBytes} vs {byName["base"].WeightBytes}");

        var markdown = File.ReadAllText(Path.Combine(run.Output, "evaluation", EvaluationReport.MarkdownFileName));
        Assert.Contains("| quantized-lora |", markdown);
        Assert.Equal(7, Directory.GetFiles(Path.Combine(run.Output, "evaluation"), "*.png").Length);

        var state = JsonNode.Parse(File.ReadAllText(Path.Combine(run.Output, PipelineRunner.StateFileName)))!;
        Assert.Equal(24, state["settings"]!["train_samples"]!.GetValue<int>());
        foreach (var stage in PipelineStages.All)
            Assert.True(state["stages"]![stage.Name]!["seconds"]!.GetValue<double>() > 0, stage.Name);
        Assert.Equal(6, state["stages"]!["lora"]!["details"]!["optimizer_steps"]!.GetValue<long>());

        var models = Path.Combine(run.Output, "export", "models");
        foreach (var variant in PipelineStages.Variants)
        {
            foreach (var file in new[] { "config.json", "model.safetensors", "tokenizer.json", "generation_config.json", "README.md" })
                Assert.True(File.Exists(Path.Combine(models, variant.Variant, file)), $"{variant.Variant}/{file}");
            var card = File.ReadAllText(Path.Combine(models, variant.Variant, "README.md"));
            Assert.Contains("| learning rate / warmup steps / max grad norm | 0.003 / 1 / 0.3 |", card);
            Assert.Contains("| quantized-lora |", card);
        }
        Assert.True(File.Exists(Path.Combine(models, "lora", "adapter", "adapter_config.json")));
    }

    /// <summary>The adapter from the exported zip (checksums verified) applied to the base reproduces the merged model.</summary>
    internal static void AssertAdapterReproducesMergedModel(string extracted)
    {
        using var scope = NewDisposeScope();
        using var merged = AutoModel.FromPretrained(Path.Combine(extracted, "lora"), ModelTask.CausalLM);
        using var baseModel = AutoModel.FromPretrained(Path.Combine(extracted, "base"), ModelTask.CausalLM);
        var peft = PeftModel.FromPretrained(baseModel, Path.Combine(extracted, "lora", "adapter"));
        baseModel.eval(); // the injected LoRA layers come in training mode (dropout on)
        Assert.Equal(8, peft.PeftConfig[PeftModel.DefaultAdapter].R);
        var ids = tensor(new long[] { 1, 403, 261, 370, 263, 272, 385, 280 }, [1, 8]);
        using var noGrad = no_grad();
        using var expected = merged.Forward(new ModelInputs(ids));
        using var actual = peft.Forward(new ModelInputs(ids));
        using var plain = AutoModel.FromPretrained(Path.Combine(extracted, "base"), ModelTask.CausalLM);
        using var baseline = plain.Forward(new ModelInputs(ids));
        var error = (expected.Logits! - actual.Logits!).abs().max().item<float>();
        Assert.True(error <= 1e-4, $"adapter vs merged logits: max abs err {error}");
        Assert.True((baseline.Logits! - expected.Logits!).abs().max().item<float>() > 1e-3, "the adapter changes nothing");
    }

    [Fact]
    public void ExportedAdapterLoadsFromTheZip()
    {
        Assert.True(run.Result.ExitCode == 0, run.Result.All);
        var target = Path.Combine(RepoPaths.NewTempDirectory(), "restored");
        ExportArchive.Extract(Path.Combine(run.Output, "export", "sharptune-export.zip"), target);
        AssertAdapterReproducesMergedModel(target);
    }

    [RequiresNodeFact]
    public async Task ExportUploadsToS3AndTheAdapterLoadsFromTheDownload()
    {
        Assert.True(run.Result.ExitCode == 0, run.Result.All);
        using var server = new S3rverServer();
        var output = RepoPaths.NewTempDirectory("sharptune-pipeline-s3");
        CopyDirectory(run.Output, output);
        var result = CliRunner.Run("pipeline", "--output", output, "--stages", "export", "--s3-bucket", "exports", "--s3-prefix", "runs/tiny",
            "--s3-endpoint", server.Endpoint, "--s3-path-style", "--s3-access-key", S3rverServer.AccessKey, "--s3-secret-key", S3rverServer.SecretKey);
        Assert.True(result.ExitCode == 0, result.All);
        Assert.Contains("s3://exports/runs/tiny/sharptune-export.zip", result.StdOut);
        // S3 settings are saved, credentials are not.
        var saved = File.ReadAllText(Path.Combine(output, PipelineRunner.StateFileName));
        Assert.Contains("\"bucket\": \"exports\"", saved);
        Assert.DoesNotContain(S3rverServer.SecretKey, saved);

        using var storage = new S3Storage(new S3Settings("exports", "runs", server.Endpoint, null, ForcePathStyle: true),
            new S3Credentials(S3rverServer.AccessKey, S3rverServer.SecretKey));
        var downloaded = Path.Combine(RepoPaths.NewTempDirectory(), "download");
        Assert.Equal(2, await storage.DownloadDirectoryAsync("tiny", downloaded));
        var target = Path.Combine(RepoPaths.NewTempDirectory(), "restored");
        ExportArchive.Extract(Path.Combine(downloaded, "sharptune-export.zip"), target);
        AssertAdapterReproducesMergedModel(target);
    }

    [Fact]
    public void QLoraTrainsOnTheQuantizedBaseWhenAsked()
    {
        Assert.True(run.Result.ExitCode == 0, run.Result.All);
        var output = RepoPaths.NewTempDirectory("sharptune-pipeline-qlora");
        CopyDirectory(run.Output, output);
        var quantized = File.ReadAllBytes(Path.Combine(output, PipelineStages.QuantizedFolder, "model.safetensors"));
        var result = CliRunner.Run("pipeline", "--output", output, "--stages", "lora,quantize-lora,evaluate", "--qlora");
        Assert.True(result.ExitCode == 0, result.All);
        // Only the stages downstream of the changed setting ran.
        Assert.Contains("lora: settings or inputs changed since it ran", result.StdOut);
        var state = JsonNode.Parse(File.ReadAllText(Path.Combine(output, PipelineRunner.StateFileName)))!;
        Assert.True(state["stages"]!["lora"]!["details"]!["qlora"]!.GetValue<bool>());
        Assert.Equal(quantized, File.ReadAllBytes(Path.Combine(output, PipelineStages.QuantizedFolder, "model.safetensors")));
        var report = EvaluationReport.Load(Path.Combine(output, "evaluation")).Variants.ToDictionary(v => v.Name);
        Assert.True(report["lora"].Perplexity < report["base"].Perplexity, $"qlora {report["lora"].Perplexity} vs base {report["base"].Perplexity}");
    }

    [Fact]
    public void ReRunningSkipsEverythingAndKillingMidStageResumesToTheSameFigures()
    {
        Assert.True(run.Result.ExitCode == 0, run.Result.All);
        var again = CliRunner.Run("pipeline", "--output", run.Output);
        Assert.True(again.ExitCode == 0, again.All);
        Assert.Equal(PipelineStages.All.Count, again.StdOut.Split('\n').Count(l => l.Contains("already done") && l.Contains("skipped")));

        // Kill the pipeline while the LoRA stage trains, then run the same command again.
        var output = RepoPaths.NewTempDirectory("sharptune-pipeline-kill");
        var partial = Path.Combine(output, PipelineStages.LoraFolder + ".partial");
        var process = StartCli([.. TinyPipelineRun.Arguments, "--output", output]);
        var watch = Stopwatch.StartNew();
        while (!Directory.Exists(partial) && !process.HasExited && watch.Elapsed < TimeSpan.FromMinutes(5))
            Thread.Sleep(20);
        Assert.False(process.HasExited, "the pipeline finished before it could be killed");
        process.Kill(entireProcessTree: true);
        process.WaitForExit();
        Assert.False(File.Exists(Path.Combine(output, PipelineStages.LoraFolder, PipelineRunner.MarkerFileName)));
        Assert.True(File.Exists(Path.Combine(output, PipelineStages.BaseFolder, PipelineRunner.MarkerFileName)));

        var resumed = CliRunner.Run([.. TinyPipelineRun.Arguments, "--output", output]);
        Assert.True(resumed.ExitCode == 0, resumed.All);
        Assert.Contains("base: already done", resumed.StdOut);
        Assert.False(Directory.Exists(partial));
        // Same figures as the uninterrupted run (timings aside).
        var expected = Report(run.Output)["variants"]!.AsArray();
        var actual = Report(output)["variants"]!.AsArray();
        for (var i = 0; i < expected.Count; i++)
        {
            foreach (var key in new[] { "name", "weight_bytes", "perplexity" })
                Assert.Equal(expected[i]![key]!.ToJsonString(), actual[i]![key]!.ToJsonString());
            Assert.Equal(expected[i]!["samples"]!.ToJsonString(), actual[i]!["samples"]!.ToJsonString());
        }
    }

    private static Process StartCli(string[] args)
    {
        var configuration = new DirectoryInfo(AppContext.BaseDirectory).Parent!.Name;
        var start = new ProcessStartInfo("dotnet") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = RepoPaths.Root };
        start.ArgumentList.Add(Path.Combine(RepoPaths.Root, "src", "SharpTune.Cli", "bin", configuration, "net10.0", "SharpTune.Cli.dll"));
        foreach (var arg in args)
            start.ArgumentList.Add(arg);
        var process = Process.Start(start)!;
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return process;
    }

    private static void CopyDirectory(string source, string target)
    {
        foreach (var file in Directory.EnumerateFiles(source, "*", SearchOption.AllDirectories))
        {
            var destination = Path.Combine(target, Path.GetRelativePath(source, file));
            Directory.CreateDirectory(Path.GetDirectoryName(destination)!);
            File.Copy(file, destination);
        }
    }
}
