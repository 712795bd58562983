using System.CommandLine;
using System.Globalization;
using SharpTune.Cli.Infrastructure;
using SharpTune.Hub;
using SharpTune.StagedPipeline;
using SharpTune.Training;
using Spectre.Console;

namespace SharpTune.Cli.Commands;

/// <summary><c>sharptune pipeline</c>: the staged fine-tuning pipeline (base → quantized → LoRA → quantized LoRA,
/// evaluated and exported) on one output folder.</summary>
public static class PipelineCommand
{
    private static readonly Option<string?> Model = new("--model") { Description = "Hugging Face model folder (config.json, safetensors, tokenizer.json). Needed on the first run; later runs reuse pipeline.json." };
    private static readonly Option<string?> Data = new("--data") { Description = "Instruction data (JSONL): Dolly-style instruction/context/response or Alpaca-style prompt/answer records." };
    private static readonly Option<string> Output = new("--output") { Description = "Output folder: one subfolder per stage, pipeline.json with settings and timings.", Required = true };
    private static readonly Option<string> Stages = new("--stages")
    {
        Description = "Comma-separated stages to run, in pipeline order: base, quantize, lora, quantize-lora, evaluate, export (default: all). " +
                      "Completed stages are skipped; a stage alone needs the output of the stages it reads.",
        DefaultValueFactory = _ => "all",
    };

    private static readonly Option<int> TrainSamples = new("--train-samples") { Description = "Training samples (seed 001: 100)." };
    private static readonly Option<int> HeldOutSamples = new("--held-out-samples") { Description = "Samples kept out of training for evaluation (default 20)." };
    private static readonly Option<int> MaxLength = new("--max-length") { Description = "Longest tokenized sample; longer ones are truncated at the end (default 256)." };
    private static readonly Option<int> QuantBits = new("--quant-bits") { Description = "Quantization bits: 4 (NF4/FP4 blocks) or 8 (int8 rows). Default 4." };
    private static readonly Option<string> QuantType = new("--quant-type") { Description = "4-bit data type: nf4 (default) or fp4." };
    private static readonly Option<bool> DoubleQuant = new("--double-quant") { Description = "Quantize the block constants too (default true; --double-quant false to turn off)." };
    private static readonly Option<string> ComputeDType = new("--compute-dtype") { Description = "Compute dtype of quantized layers: bfloat16 (default), float16 or float32." };
    private static readonly Option<int> LoraR = new("--lora-r") { Description = "LoRA rank (default 8)." };
    private static readonly Option<double> LoraAlpha = new("--lora-alpha") { Description = "LoRA alpha (default 16)." };
    private static readonly Option<double> LoraDropout = new("--lora-dropout") { Description = "LoRA dropout (default 0.1)." };
    private static readonly Option<string> TargetModules = new("--target-modules") { Description = "Comma-separated module names LoRA adapts (default q_proj,v_proj)." };
    private static readonly Option<bool> QLora = new("--qlora") { Description = "Train the adapter on the 4-bit quantized base (QLoRA)." };
    private static readonly Option<int> Epochs = new("--epochs") { Description = "Training epochs (default 1)." };
    private static readonly Option<int> BatchSize = new("--batch-size") { Description = "Per-step batch size (default 1)." };
    private static readonly Option<int> GradAccum = new("--grad-accum") { Description = "Gradient accumulation steps (default 4)." };
    private static readonly Option<double> LearningRate = new("--lr") { Description = "Peak learning rate (default 5e-5)." };
    private static readonly Option<int> WarmupSteps = new("--warmup-steps") { Description = "Linear warmup steps (default 10)." };
    private static readonly Option<double> MaxGradNorm = new("--max-grad-norm") { Description = "Gradient clipping norm (default 0.3)." };
    private static readonly Option<string> Optim = new("--optim") { Description = "Optimizer: adamw8bit (default, as the seed: 8-bit blockwise-quantized moments) or adamw." };
    private static readonly Option<bool> GradCheckpointing = new("--grad-checkpointing")
    {
        Description = "LoRA stage: recompute each decoder layer's activations during backward instead of storing them (less memory, one extra forward pass per step, same adapter).",
    };
    private static readonly Option<int> MaxNewTokens = new("--max-new-tokens") { Description = "Tokens generated per evaluation run (default 32)." };
    private static readonly Option<int> LatencyRuns = new("--latency-runs") { Description = "Timed generation runs per variant, after warm-up (default 5)." };
    private static readonly Option<int> WarmupRuns = new("--warmup-runs") { Description = "Untimed warm-up runs per variant (default 1)." };
    private static readonly Option<int> SamplePrompts = new("--sample-prompts") { Description = "Held-out prompts whose generations the report shows side by side (default 3)." };
    private static readonly Option<string?> S3Bucket = new("--s3-bucket") { Description = "Upload the export zip to this S3 bucket." };
    private static readonly Option<string> S3Prefix = new("--s3-prefix") { Description = "Key prefix in the bucket (default sharptune)." , DefaultValueFactory = _ => "sharptune" };
    private static readonly Option<string?> S3Endpoint = new("--s3-endpoint") { Description = "S3-compatible endpoint URL (default: AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL, else AWS)." };
    private static readonly Option<string?> S3Region = new("--s3-region") { Description = "Region (default: AWS_REGION / AWS_DEFAULT_REGION, else us-east-1)." };
    private static readonly Option<bool> S3PathStyle = new("--s3-path-style") { Description = "Path-style addressing (local S3-compatible servers)." };
    private static readonly Option<string?> S3AccessKey = new("--s3-access-key") { Description = "Access key id (default: AWS_ACCESS_KEY_ID, then the AWS credential chain). Not saved." };
    private static readonly Option<string?> S3SecretKey = new("--s3-secret-key") { Description = "Secret access key (default: AWS_SECRET_ACCESS_KEY). Not saved." };
    private static readonly Option<string?> HubRepo = new("--hub-repo") { Description = "Upload the exported models to this Hugging Face Hub repository (owner/name; created private if absent)." };
    private static readonly Option<string> HubRevision = new("--hub-revision") { Description = "Hub branch (default main).", DefaultValueFactory = _ => "main" };
    private static readonly Option<string?> HubEndpoint = new("--hub-endpoint")
    {
        Description = "Hub URL (default: HF_ENDPOINT, else https://huggingface.co). The token is sent only to this run's endpoint, never over plain http " +
                      "unless the host is loopback; an upload that pipeline.json saved for another endpoint is refused.",
    };
    private static readonly Option<bool> SkipUpload = new("--skip-upload") { Description = "Export without uploading to S3 or the Hub (whatever pipeline.json saved)." };
    private static readonly Option<string?> HubToken = new("--hub-token") { Description = "Hub token with write access (default: HF_TOKEN). Not saved." };

    public static Command Create()
    {
        var command = new Command("pipeline",
            "Staged fine-tuning: save the base model, quantize it (4-bit NF4), fine-tune a LoRA adapter on instruction data " +
            "(QLoRA with --qlora), quantize the merged model, evaluate the four variants (latency, tokens/s, memory, size, " +
            "perplexity, samples: report.json/report.md/charts) and export them (HF folders with model cards, a checksummed zip, " +
            "optional S3 and Hugging Face Hub upload). Re-running resumes: finished stages are skipped.");
        Option[] options =
        [
            Model, Data, Output, Stages, TrainSamples, HeldOutSamples, MaxLength, QuantBits, QuantType, DoubleQuant, ComputeDType, LoraR, LoraAlpha,
            LoraDropout, TargetModules, QLora, Epochs, BatchSize, GradAccum, LearningRate, WarmupSteps, MaxGradNorm, Optim, GradCheckpointing, MaxNewTokens, LatencyRuns,
            WarmupRuns, SamplePrompts, S3Bucket, S3Prefix, S3Endpoint, S3Region, S3PathStyle, S3AccessKey, S3SecretKey, HubRepo, HubRevision, HubEndpoint, HubToken, SkipUpload,
        ];
        foreach (var option in options)
            command.Options.Add(option);
        QuantBits.AcceptOnlyFromAmong("4", "8");
        QuantType.AcceptOnlyFromAmong("nf4", "fp4");
        ComputeDType.AcceptOnlyFromAmong("bfloat16", "float16", "float32");
        Optim.AcceptOnlyFromAmong("adamw8bit", "adamw");

        command.SetAction(parseResult =>
        {
            var engine = GlobalOptions.Apply(parseResult);
            var output = parseResult.GetValue(Output)!;
            var settings = Resolve(parseResult, output);
            RequireEnoughRecords(parseResult, settings);
            var runner = new PipelineRunner(PipelineStages.All);
            var selected = runner.Select(parseResult.GetValue(Stages));
            var context = new PipelineContext
            {
                Settings = settings,
                OutputDirectory = output,
                Device = engine.Device,
                DType = engine.DType,
                Log = line => Console.WriteLine(line),
                S3Credentials = parseResult.GetValue(S3AccessKey) is { } key
                    ? new S3Credentials(key, parseResult.GetValue(S3SecretKey) ?? throw new UsageException("--s3-access-key needs --s3-secret-key"))
                    : null,
                HubToken = parseResult.GetValue(HubToken),
                HubEndpoint = RunHubEndpoint(parseResult),
                SkipUpload = parseResult.GetValue(SkipUpload),
            };
            var runs = runner.Run(context, selected);
            var table = new Table().Border(TableBorder.Rounded).AddColumn("stage").AddColumn("outcome").AddColumn(new TableColumn("seconds").RightAligned()).AddColumn("output");
            foreach (var run in runs)
                table.AddRow(run.Stage, run.Outcome == StageOutcome.Ran ? "ran" : "already done", run.Seconds.ToString("F1", CultureInfo.InvariantCulture), Markup.Escape(run.Folder));
            AnsiConsole.Write(table);
            var report = Path.Combine(output, "evaluation", EvaluationReport.MarkdownFileName);
            if (runs.Any(r => r.Stage == "evaluate") && File.Exists(report))
                Console.WriteLine($"report: {report}");
            return ExitCodes.Success;
        });
        return command;
    }

    /// <summary>Settings: seed 001's defaults, then those saved in the output folder's pipeline.json, then the options
    /// given on this command line.</summary>
    private static PipelineSettings Resolve(ParseResult parseResult, string output)
    {
        var saved = PipelineRunner.LoadSettings(output);
        // A Hub id is kept as such in pipeline.json (the stages resolve it); it is fetched here, with a progress bar.
        var model = parseResult.GetValue(Model) ?? saved?.Model
                    ?? throw new UsageException($"--model is required ({output} has no {PipelineRunner.StateFileName} from an earlier run)");
        var data = parseResult.GetValue(Data) ?? saved?.Data
                   ?? throw new UsageException($"--data is required ({output} has no {PipelineRunner.StateFileName} from an earlier run)");
        var s = (saved ?? new PipelineSettings { Model = model, Data = data }) with
        {
            Model = PretrainedPath.IsHubId(model) ? Fetched(model) : Path.GetFullPath(model),
            Data = Path.GetFullPath(data),
        };

        PipelineSettings Set<T>(PipelineSettings current, Option<T> option, Func<PipelineSettings, T, PipelineSettings> apply) =>
            parseResult.GetResult(option) is { Implicit: false } ? apply(current, parseResult.GetValue(option)!) : current;

        s = Set(s, TrainSamples, (x, v) => x with { TrainSamples = Positive(v, "--train-samples") });
        s = Set(s, HeldOutSamples, (x, v) => x with { HeldOutSamples = Positive(v, "--held-out-samples") });
        s = Set(s, MaxLength, (x, v) => x with { MaxLength = Positive(v, "--max-length") });
        s = Set(s, QuantBits, (x, v) => x with { QuantBits = v });
        s = Set(s, QuantType, (x, v) => x with { QuantType = v });
        s = Set(s, DoubleQuant, (x, v) => x with { DoubleQuant = v });
        s = Set(s, ComputeDType, (x, v) => x with { ComputeDType = v });
        s = Set(s, LoraR, (x, v) => x with { LoraR = Positive(v, "--lora-r") });
        s = Set(s, LoraAlpha, (x, v) => x with { LoraAlpha = v });
        s = Set(s, LoraDropout, (x, v) => x with { LoraDropout = v is >= 0 and < 1 ? v : throw new UsageException("--lora-dropout must be in [0, 1)") });
        s = Set(s, TargetModules, (x, v) => x with { TargetModules = v.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries) });
        s = Set(s, QLora, (x, v) => x with { QLora = v });
        s = Set(s, GradCheckpointing, (x, v) => x with { GradientCheckpointing = v });
        s = Set(s, Epochs, (x, v) => x with { Epochs = Positive(v, "--epochs") });
        s = Set(s, BatchSize, (x, v) => x with { BatchSize = Positive(v, "--batch-size") });
        s = Set(s, GradAccum, (x, v) => x with { GradientAccumulationSteps = Positive(v, "--grad-accum") });
        s = Set(s, LearningRate, (x, v) => x with { LearningRate = v > 0 ? v : throw new UsageException("--lr must be > 0") });
        s = Set(s, WarmupSteps, (x, v) => x with { WarmupSteps = v >= 0 ? v : throw new UsageException("--warmup-steps must be >= 0") });
        s = Set(s, MaxGradNorm, (x, v) => x with { MaxGradNorm = v });
        s = Set(s, Optim, (x, v) => x with { Optimizer = v });
        s = Set(s, MaxNewTokens, (x, v) => x with { MaxNewTokens = Positive(v, "--max-new-tokens") });
        s = Set(s, LatencyRuns, (x, v) => x with { LatencyRepeats = Positive(v, "--latency-runs") });
        s = Set(s, WarmupRuns, (x, v) => x with { WarmupRuns = v >= 0 ? v : throw new UsageException("--warmup-runs must be >= 0") });
        s = Set(s, SamplePrompts, (x, v) => x with { SamplePrompts = Positive(v, "--sample-prompts") });
        if (parseResult.GetValue(GlobalOptions.Seed) is { } seed)
            s = s with { Seed = seed };
        if (parseResult.GetValue(S3Bucket) is { } bucket)
            s = s with { S3 = new S3Settings(bucket, parseResult.GetValue(S3Prefix)!, parseResult.GetValue(S3Endpoint), parseResult.GetValue(S3Region), parseResult.GetValue(S3PathStyle)) };
        if (parseResult.GetValue(SkipUpload) && (parseResult.GetValue(S3Bucket) is not null || parseResult.GetValue(HubRepo) is not null))
            throw new UsageException("--skip-upload cannot be combined with --s3-bucket or --hub-repo");
        if (parseResult.GetValue(HubRepo) is { } repo)
            s = s with { Hub = new HubSettings(repo, parseResult.GetValue(HubRevision)!, RunHubEndpoint(parseResult)) };
        return s;
    }

    /// <summary>Asking for more training samples than the data holds once the held-out ones are set aside is refused,
    /// not silently trained on fewer.</summary>
    private static void RequireEnoughRecords(ParseResult parseResult, PipelineSettings settings)
    {
        if (parseResult.GetResult(TrainSamples) is not { Implicit: false } && parseResult.GetResult(HeldOutSamples) is not { Implicit: false })
            return;
        var records = InstructionDataset.Load(settings.Data).Count;
        if (settings.TrainSamples + settings.HeldOutSamples > records)
            throw new UsageException($"--train-samples {settings.TrainSamples} and --held-out-samples {settings.HeldOutSamples} need " +
                                     $"{settings.TrainSamples + settings.HeldOutSamples} records; {settings.Data} has {records}");
    }

    private static string Fetched(string hubId)
    {
        HubModels.Resolve(hubId);
        return hubId;
    }

    private static string RunHubEndpoint(ParseResult parseResult) =>
        (parseResult.GetValue(HubEndpoint) ?? HubOptions.FromEnvironment().Endpoint).TrimEnd('/');

    private static int Positive(int value, string option) => value > 0 ? value : throw new UsageException($"{option} must be > 0 (got {value})");
}
