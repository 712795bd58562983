using System.Globalization;
using System.Text;
using SharpTune.Hub;
using SharpTune.IO;

namespace SharpTune.StagedPipeline;

/// <summary>
/// (6) Exports every variant as a Hugging Face folder with a model card (training settings and the evaluation table),
/// the LoRA variant with its PEFT adapter; zips them with SHA-256 checksums; uploads the zip to S3 and the folders to
/// the Hugging Face Hub when those are configured.
/// </summary>
internal sealed class ExportStage : PipelineStage
{
    public const string ModelsFolder = "models";
    public const string ArchiveName = "sharptune-export.zip";

    public override string Name => "export";
    public override string Folder => "export";
    public override IReadOnlyList<string> Requires => ["base"];
    public override IReadOnlyList<string> Uses => ["quantize", "lora", "quantize-lora", "evaluate"];

    public override object?[] SettingsFingerprint(PipelineSettings s) => [s.S3, s.Hub];

    public override IReadOnlyDictionary<string, object?>? Run(PipelineContext context, string workDirectory)
    {
        var report = context.OutputOf("evaluate") is { } evaluation ? EvaluationReport.Load(evaluation) : null;
        var models = Path.Combine(workDirectory, ModelsFolder);
        foreach (var (variant, stage, path) in PipelineStages.Variants)
        {
            if (context.OutputOf(stage) is not { } stageFolder)
                continue;
            var target = Path.Combine(models, variant);
            CopyFolder(Path.Combine(stageFolder, path), target);
            if (variant == "lora")
                CopyFolder(Path.Combine(stageFolder, PipelineStages.AdapterFolder), Path.Combine(target, PipelineStages.AdapterFolder));
            AtomicFile.WriteAllText(Path.Combine(target, "README.md"), ModelCard(variant, context.Settings, report));
        }
        var zip = Path.Combine(workDirectory, ArchiveName);
        var digest = ExportArchive.Create(models, zip);
        context.Log($"export: {zip} (sha256 {digest})");
        var details = new Dictionary<string, object?> { ["archive_sha256"] = digest, ["archive_bytes"] = new FileInfo(zip).Length };

        if (context.SkipUpload)
        {
            if (context.Settings.S3 is not null || context.Settings.Hub is not null)
                context.Log("export: upload skipped (--skip-upload)");
            return details;
        }
        if (context.Settings.S3 is { } s3)
        {
            using var storage = new S3Storage(s3, context.S3Credentials);
            storage.EnsureBucketAsync(context.Cancellation).GetAwaiter().GetResult();
            foreach (var file in new[] { zip, zip + ".sha256" })
                storage.UploadFileAsync(file, storage.KeyOf(Path.GetFileName(file)), context.Cancellation).GetAwaiter().GetResult();
            details["s3_uri"] = $"s3://{s3.Bucket}/{storage.KeyOf(ArchiveName)}";
            context.Log($"export: uploaded to {details["s3_uri"]}");
        }
        if (context.Settings.Hub is { } hub)
        {
            // The token goes only to the endpoint this run names: a pipeline.json from elsewhere must not redirect it.
            var endpoint = (context.HubEndpoint ?? HubOptions.FromEnvironment().Endpoint).TrimEnd('/');
            if (!string.Equals(hub.Endpoint.TrimEnd('/'), endpoint, StringComparison.OrdinalIgnoreCase))
                throw new ArgumentException($"the saved settings upload to the Hub at {hub.Endpoint}, but this run's Hub endpoint is {endpoint}: " +
                                            $"the token is sent only to an endpoint named in this run (pass --hub-endpoint {hub.Endpoint} to upload there, or --skip-upload)");
            var token = context.HubToken ?? HubOptions.FromEnvironment().Token
                ?? throw new ArgumentException("the Hugging Face Hub upload needs a token: --hub-token or the HF_TOKEN environment variable");
            using var client = new HubClient(token, endpoint);
            var commit = client.UploadFolderAsync(hub.Repository, models, hub.Revision, "SharpTune pipeline export", context.Cancellation).GetAwaiter().GetResult();
            details["hub_commit"] = commit;
            context.Log($"export: uploaded to {hub.Endpoint}/{hub.Repository} ({commit})");
        }
        return details;
    }

    private static void CopyFolder(string source, string target)
    {
        Directory.CreateDirectory(target);
        foreach (var file in Directory.EnumerateFiles(source))
            if (!Path.GetFileName(file).StartsWith('.'))
                File.Copy(file, Path.Combine(target, Path.GetFileName(file)));
    }

    internal static string ModelCard(string variant, PipelineSettings settings, EvaluationReport? report)
    {
        var inv = CultureInfo.InvariantCulture;
        var baseName = Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(settings.Model)));
        var lora = variant.Contains("lora", StringComparison.Ordinal);
        var quantized = variant.StartsWith("quantized", StringComparison.Ordinal);
        var text = new StringBuilder();
        text.AppendLine("---");
        text.AppendLine("library_name: sharptune");
        text.AppendLine($"base_model: {baseName}");
        text.AppendLine("pipeline_tag: text-generation");
        text.AppendLine("tags:");
        text.AppendLine("- sharptune");
        if (lora)
            text.AppendLine("- lora");
        if (quantized)
            text.AppendLine($"- {(settings.QuantBits == 4 ? settings.QuantType : "int8")}");
        text.AppendLine("---");
        text.AppendLine();
        text.AppendLine($"# {baseName} — {variant}");
        text.AppendLine();
        text.AppendLine(variant switch
        {
            "base" => $"The base model `{baseName}`, saved by SharpTune's pipeline.",
            "quantized" => $"`{baseName}` quantized to {Quantization(settings)}.",
            "lora" => $"`{baseName}` fine-tuned with LoRA{(settings.QLora ? " on its quantized base (QLoRA)" : "")}; the adapter is merged into these weights, and `adapter/` holds it in PEFT's format.",
            _ => $"`{baseName}` fine-tuned with LoRA, merged, then quantized to {Quantization(settings)}.",
        });
        text.AppendLine();
        text.AppendLine("## Training settings");
        text.AppendLine();
        text.AppendLine("| setting | value |");
        text.AppendLine("| --- | --- |");
        var rows = new (string, string)[]
        {
            ("data", Path.GetFileName(settings.Data)),
            ("training samples / held-out samples", $"{settings.TrainSamples} / {settings.HeldOutSamples}"),
            ("max length", settings.MaxLength.ToString(inv)),
            ("quantization", Quantization(settings)),
            ("LoRA", string.Create(inv, $"r={settings.LoraR}, alpha={settings.LoraAlpha}, dropout={settings.LoraDropout} on {string.Join(", ", settings.TargetModules)}{(settings.QLora ? " (QLoRA)" : "")}")),
            ("epochs / batch / gradient accumulation", $"{settings.Epochs} / {settings.BatchSize} / {settings.GradientAccumulationSteps}"),
            ("learning rate / warmup steps / max grad norm", string.Create(inv, $"{settings.LearningRate} / {settings.WarmupSteps} / {settings.MaxGradNorm}")),
            ("optimizer", settings.Optimizer),
            ("seed", settings.Seed.ToString(inv)),
        };
        foreach (var (name, value) in rows)
            text.AppendLine($"| {name} | {value} |");
        text.AppendLine();
        text.AppendLine("## Evaluation");
        text.AppendLine();
        if (report is null)
            text.AppendLine("The pipeline's evaluate stage did not run before this export.");
        else
        {
            text.AppendLine($"All variants on the same {report.HeldOutSamples} held-out samples ({report.Device}); this card's variant is **{variant}**.");
            text.AppendLine();
            text.Append(report.MetricsTable());
        }
        text.AppendLine();
        text.AppendLine("## Use");
        text.AppendLine();
        text.AppendLine("```bash");
        text.AppendLine("sharptune generate --model . --prompt \"...\"");
        text.AppendLine("```");
        return text.ToString();
    }

    private static string Quantization(PipelineSettings s) =>
        s.QuantBits == 4 ? $"4-bit {s.QuantType.ToUpperInvariant()}{(s.DoubleQuant ? " with double quantization" : "")}, {s.ComputeDType} compute" : $"8-bit, {s.ComputeDType} compute";
}
