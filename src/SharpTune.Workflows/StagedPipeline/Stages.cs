using SharpTune.Training;
using System.Diagnostics;
using SharpTune.Engine;
using SharpTune.Generation;
using SharpTune.Models;
using SharpTune.Quantization;
using static TorchSharp.torch;

namespace SharpTune.StagedPipeline;

/// <summary>The pipeline's stages, in order, and the names of their output folders.</summary>
public static class PipelineStages
{
    public const string BaseFolder = "base";
    public const string QuantizedFolder = "quantized";
    public const string LoraFolder = "lora";
    public const string LoraQuantizedFolder = "lora-quantized";

    /// <summary>Inside the lora stage's folder: the PEFT adapter and the model with the adapter merged in.</summary>
    public const string AdapterFolder = "adapter";
    public const string MergedFolder = "merged";

    public static IReadOnlyList<PipelineStage> All { get; } =
        [new BaseStage(), new QuantizeStage(), new LoraStage(), new QuantizeLoraStage(), new EvaluateStage(), new ExportStage()];

    /// <summary>The model variants: name, the stage that makes it, and the model folder inside that stage's output.</summary>
    public static IReadOnlyList<(string Variant, string Stage, string Path)> Variants { get; } =
    [
        ("base", "base", ""),
        ("quantized", "quantize", ""),
        ("lora", "lora", MergedFolder),
        ("quantized-lora", "quantize-lora", ""),
    ];

    internal static QuantizationOptions Quantization(PipelineSettings settings) => new()
    {
        Bits = settings.QuantBits,
        QuantType = QuantCodebooks.ParseFourBit(settings.QuantType),
        DoubleQuant = settings.DoubleQuant,
        ComputeDType = TorchRuntime.ResolveDType(settings.ComputeDType),
    };

    internal static object?[] QuantizationFingerprint(PipelineSettings s) => [s.QuantBits, s.QuantType, s.DoubleQuant, s.ComputeDType];

    /// <summary>The training and held-out records (the same split in every stage and run).</summary>
    internal static (IReadOnlyList<InstructionRecord> Train, IReadOnlyList<InstructionRecord> HeldOut) Data(PipelineSettings settings) =>
        InstructionDataset.Split(InstructionDataset.Load(settings.Data), settings.TrainSamples, settings.HeldOutSamples, (int)settings.Seed);

    /// <summary>Digest of the data file's content, so that editing the data re-runs what depends on it.</summary>
    internal static string DataFingerprint(PipelineSettings settings) =>
        File.Exists(settings.Data) ? ExportArchive.FileDigest(settings.Data) : throw new FileNotFoundException($"instruction data file not found: {settings.Data}", settings.Data);

    /// <summary>Loads a model folder, quantizes it and saves it with the companion files.</summary>
    internal static IReadOnlyDictionary<string, object?> QuantizeFolder(PipelineContext context, string source, string work)
    {
        var options = Quantization(context.Settings);
        // The weights that stay unquantized (embeddings, norms) are kept in the compute dtype, as bitsandbytes users
        // load them (torch_dtype = compute dtype); the quantized layers store 4-bit codes whatever the source dtype.
        using var model = ModelFolder.LoadCausalLM(source, CPU, options.ComputeDType);
        var layers = Quantizer.Quantize(model, options);
        var footprint = Quantizer.Footprint(model);
        model.SavePretrained(work);
        ModelFolder.CopyCompanionFiles(source, work, model.Config);
        context.Log($"quantized {layers.Count} linear layers to {options.Bits}-bit ({footprint.BytesPerParameter:F4} bytes per quantized parameter)");
        return new Dictionary<string, object?>
        {
            ["quantized_layers"] = layers.Count,
            ["bytes_per_quantized_parameter"] = footprint.BytesPerParameter,
            ["weight_bytes"] = ModelFolder.WeightBytes(work),
            ["source_weight_bytes"] = ModelFolder.WeightBytes(source),
        };
    }
}

/// <summary>(1) Saves the base model as a Hugging Face folder (config, safetensors, tokenizer, generation config).</summary>
internal sealed class BaseStage : PipelineStage
{
    public override string Name => "base";
    public override string Folder => PipelineStages.BaseFolder;

    public override object?[] SettingsFingerprint(PipelineSettings settings) => [Path.GetFullPath(settings.Model)];

    public override IReadOnlyDictionary<string, object?>? Run(PipelineContext context, string workDirectory)
    {
        var source = context.Settings.Model;
        if (!Directory.Exists(source))
            throw new DirectoryNotFoundException($"model folder not found: {source}");
        using var model = ModelFolder.LoadCausalLM(source, CPU);
        model.SavePretrained(workDirectory);
        ModelFolder.CopyCompanionFiles(source, workDirectory, model.Config);
        // The tokenizer must load: every later stage needs it.
        PretrainedInstructionTokenizer.FromPretrained(workDirectory);
        return new Dictionary<string, object?> { ["parameters"] = model.ParameterCount(), ["weight_bytes"] = ModelFolder.WeightBytes(workDirectory) };
    }
}

/// <summary>(2) Quantizes the base model (4-bit NF4 with double quantization and bf16 compute by default).</summary>
internal sealed class QuantizeStage : PipelineStage
{
    public override string Name => "quantize";
    public override string Folder => PipelineStages.QuantizedFolder;
    public override IReadOnlyList<string> Requires => ["base"];
    public override object?[] SettingsFingerprint(PipelineSettings settings) => PipelineStages.QuantizationFingerprint(settings);

    public override IReadOnlyDictionary<string, object?>? Run(PipelineContext context, string workDirectory) =>
        PipelineStages.QuantizeFolder(context, context.RequireOutputOf("base"), workDirectory);
}

/// <summary>(4) Quantizes the model with the LoRA adapter merged in.</summary>
internal sealed class QuantizeLoraStage : PipelineStage
{
    public override string Name => "quantize-lora";
    public override string Folder => PipelineStages.LoraQuantizedFolder;
    public override IReadOnlyList<string> Requires => ["lora"];
    public override object?[] SettingsFingerprint(PipelineSettings settings) => PipelineStages.QuantizationFingerprint(settings);

    public override IReadOnlyDictionary<string, object?>? Run(PipelineContext context, string workDirectory) =>
        PipelineStages.QuantizeFolder(context, Path.Combine(context.RequireOutputOf("lora"), PipelineStages.MergedFolder), workDirectory);
}

/// <summary>
/// (5) Evaluates every variant that exists on the same held-out samples: load time, time to first token, latency of a
/// whole generation (mean/p50/p95 over timed runs after warm-up), tokens/s, peak memory, size on disk, perplexity of
/// the held-out responses, and greedy samples side by side.
/// </summary>
internal sealed class EvaluateStage : PipelineStage
{
    public override string Name => "evaluate";
    public override string Folder => "evaluation";
    public override IReadOnlyList<string> Requires => ["base"];
    public override IReadOnlyList<string> Uses => ["quantize", "lora", "quantize-lora"];

    public override object?[] SettingsFingerprint(PipelineSettings s) =>
        [PipelineStages.DataFingerprint(s), s.HeldOutSamples, s.TrainSamples, s.Seed, s.MaxLength, s.MaxNewTokens, s.WarmupRuns, s.LatencyRepeats, s.SamplePrompts];

    public override IReadOnlyDictionary<string, object?>? Run(PipelineContext context, string workDirectory)
    {
        var settings = context.Settings;
        var tokenizer = PretrainedInstructionTokenizer.FromPretrained(context.RequireOutputOf("base"));
        var (_, heldOut) = PipelineStages.Data(settings);
        var examples = heldOut.Select(r => InstructionExample.From(tokenizer, r, settings.MaxLength)).ToList();
        // The shortest held-out prompts: readable side by side, and the first one is the latency prompt.
        var samples = heldOut.OrderBy(r => r.Prompt.Length).ThenBy(r => r.Line).Take(Math.Max(1, settings.SamplePrompts)).ToList();
        var variants = PipelineStages.Variants
            .Where(v => context.OutputOf(v.Stage) is not null)
            .Select(v => (v.Variant, Folder: Path.Combine(context.OutputOf(v.Stage)!, v.Path)))
            .ToList();
        var results = new List<VariantEvaluation>();
        for (var i = 0; i < variants.Count; i++)
        {
            context.ReportProgress(i, variants.Count, variants[i].Variant);
            var result = Evaluate(context, variants[i].Variant, variants[i].Folder, tokenizer, examples, samples);
            context.Log($"{result.Name}: perplexity {result.Perplexity:F3}, latency {result.Latency.MeanMs:F1} ms, {result.TokensPerSecond:F0} tokens/s");
            results.Add(result);
        }
        var report = new EvaluationReport
        {
            Device = context.Device.ToString(),
            HeldOutSamples = examples.Count,
            HeldOutResponseTokens = examples.Sum(e => e.ResponseTokenCount),
            MaxNewTokens = settings.MaxNewTokens,
            WarmupRuns = settings.WarmupRuns,
            TimedRuns = settings.LatencyRepeats,
            PeakMemoryMethod = PeakMemoryScope.Method,
            SamplePrompts = samples.Select(s => s.Prompt).ToList(),
            Variants = results,
        };
        report.Save(workDirectory);
        return results.ToDictionary(r => $"perplexity_{r.Name}", r => (object?)r.Perplexity);
    }

    private static VariantEvaluation Evaluate(PipelineContext context, string name, string folder, IInstructionTokenizer tokenizer,
        IReadOnlyList<InstructionExample> heldOut, IReadOnlyList<InstructionRecord> samples)
    {
        var settings = context.Settings;
        var memory = new PeakMemoryScope();
        var loadWatch = Stopwatch.StartNew();
        // Full-precision variants run in the engine dtype; quantized ones dequantize into their compute dtype.
        using var model = ModelFolder.LoadCausalLM(folder, context.Device, Quantizer.IsQuantized(PretrainedConfig.FromDirectory(folder)) ? null : context.DType);
        var loadSeconds = loadWatch.Elapsed.TotalSeconds;
        var perplexity = Perplexity(model, heldOut, context.Device);

        var causal = model as ICausalLM ?? throw new NotSupportedException($"{folder}: {model.GetName()} is not a causal language model");
        var maxPrompt = Math.Max(1, causal.MaxPositions - settings.MaxNewTokens);
        List<long> PromptIds(InstructionRecord record) => tokenizer.Encode(record.Prompt, addSpecialTokens: true).TakeLast(maxPrompt).Select(id => (long)id).ToList();
        var generation = GenerationConfig.FromPretrained(folder) with { MaxNewTokens = settings.MaxNewTokens, DoSample = false, StopStrings = [] };
        var generator = new TextGenerator(causal, ids => tokenizer.Decode(ids.Select(id => (int)id)));
        var texts = samples.Select(s => tokenizer.Decode(generator.Generate([PromptIds(s)], generation).Generated(0).Select(id => (int)id)).Trim()).ToList();

        // Timing runs generate exactly max_new_tokens (no EOS stop), so every variant does the same work.
        var timed = generation with { EosTokenIds = [] };
        var prompt = PromptIds(samples[0]);
        for (var i = 0; i < settings.WarmupRuns; i++)
            generator.Generate([prompt], timed);
        var latencies = new List<double>();
        var firstToken = new List<double>();
        long tokens = 0;
        double seconds = 0;
        for (var i = 0; i < Math.Max(1, settings.LatencyRepeats); i++)
        {
            var watch = Stopwatch.StartNew();
            var result = generator.Generate([prompt], timed);
            var elapsed = watch.Elapsed;
            latencies.Add(elapsed.TotalMilliseconds);
            firstToken.Add(result.PrefillTime.TotalMilliseconds);
            tokens += result.GeneratedTokenCount;
            seconds += elapsed.TotalSeconds;
        }
        return new VariantEvaluation
        {
            Name = name,
            LoadSeconds = loadSeconds,
            TimeToFirstTokenMs = firstToken.Average(),
            Latency = LatencyStats.From(latencies),
            TokensPerSecond = tokens / seconds,
            PeakMemoryBytes = memory.PeakBytes(),
            WeightBytes = ModelFolder.WeightBytes(folder),
            SizeOnDiskBytes = ModelFolder.FolderBytes(folder),
            Perplexity = perplexity,
            Samples = texts,
        };
    }

    /// <summary>exp of the mean cross-entropy over all held-out response tokens (token-weighted across samples).</summary>
    internal static double Perplexity(PreTrainedModel model, IReadOnlyList<InstructionExample> examples, Device device)
    {
        using var noGrad = no_grad();
        double totalLoss = 0;
        long totalTokens = 0;
        foreach (var example in examples)
        {
            using var scope = NewDisposeScope();
            var ids = tensor(example.InputIds, [1, example.InputIds.Length]).to(device);
            var labels = tensor(example.Labels, [1, example.Labels.Length]).to(device);
            using var output = model.Forward(new ModelInputs(ids) { Labels = labels });
            // The model's loss is the mean over the shifted targets, i.e. over the response tokens.
            var count = example.Labels.Skip(1).Count(l => l != InstructionExample.IgnoreIndex);
            totalLoss += output.Loss!.item<float>() * count;
            totalTokens += count;
        }
        return Math.Exp(totalLoss / totalTokens);
    }
}
