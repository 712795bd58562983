using System.CommandLine;
using SharpTune.Cli.Infrastructure;
using SharpTune.Training;
using SharpTune.Training.Approaches;
using SharpTune.Training.Heads;

namespace SharpTune.Cli.Commands;

/// <summary>Transformer options of <c>classify</c> (embeddings, finetune, kfold) and how they become <see cref="FineTuneOptions"/>.</summary>
internal static class FineTuneCliOptions
{
    public static readonly Option<double> Epochs = new("--epochs") { Description = "finetune/kfold: training epochs.", DefaultValueFactory = _ => 1 };
    public static readonly Option<double> Lr = new("--lr") { Description = "finetune/kfold: peak learning rate (AdamW, linear warmup and decay).", DefaultValueFactory = _ => 5e-5 };
    public static readonly Option<int> BatchSize = new("--batch-size") { Description = "embeddings/finetune/kfold: texts per batch.", DefaultValueFactory = _ => 32 };
    public static readonly Option<int> MaxLength = new("--max-length") { Description = "embeddings/finetune/kfold: tokens per text (longer texts are truncated).", DefaultValueFactory = _ => 64 };
    public static readonly Option<double> WarmupRatio = new("--warmup-ratio") { Description = "finetune/kfold: share of steps with linear warmup.", DefaultValueFactory = _ => 0.06 };
    public static readonly Option<int> GradAccum = new("--grad-accum") { Description = "finetune/kfold: batches per optimizer step.", DefaultValueFactory = _ => 1 };
    public static readonly Option<bool> BFloat16 = new("--bf16") { Description = "finetune/kfold: train in bfloat16 with fp32 master weights." };
    public static readonly Option<bool> Float16 = new("--fp16")
    {
        Description = "finetune/kfold: train in float16 with fp32 master weights and dynamic loss scaling (steps whose gradients overflow are skipped).",
    };
    public static readonly Option<bool> GradCheckpointing = new("--grad-checkpointing")
    {
        Description = "finetune/kfold: recompute each encoder layer's activations during backward instead of storing them (less memory, one extra forward pass per step, same results).",
    };
    public static readonly Option<string?> Pooling = new("--pooling")
    {
        Description = "Pooling: cls, mean, max, attention or concat-last4 (embeddings: mean/cls/max, default mean; kfold default mean; finetune default: the model's own classification head).",
    };
    public static readonly Option<int> Folds = new("--folds") { Description = "kfold: number of stratified folds.", DefaultValueFactory = _ => 5 };

    public static Option[] All => [Epochs, Lr, BatchSize, MaxLength, WarmupRatio, GradAccum, BFloat16, Float16, GradCheckpointing, Pooling, Folds];

    /// <summary>The --pooling given, or null when none was.</summary>
    public static PoolingStrategy? ParsePooling(ParseResult parseResult)
    {
        if (parseResult.GetValue(Pooling) is not { } name)
            return null;
        try
        {
            return SharpTune.Training.Heads.Pooling.Parse(name);
        }
        catch (ArgumentException e)
        {
            throw new UsageException(e.Message);
        }
    }

    /// <summary>The precision named by --bf16 / --fp16 (at most one of them).</summary>
    public static TrainingPrecision ParsePrecision(bool bf16, bool fp16) => (bf16, fp16) switch
    {
        (true, true) => throw new UsageException("--bf16 and --fp16 exclude each other: choose one"),
        (true, false) => TrainingPrecision.BFloat16,
        (false, true) => TrainingPrecision.Float16,
        _ => TrainingPrecision.Float32,
    };

    public static FineTuneOptions Build(ParseResult parseResult, EngineContext engine, string? modelDirectory, string approach)
    {
        if (modelDirectory is null)
            throw new UsageException($"approach '{approach}' needs --model: a pretrained encoder folder with its tokenizer (e.g. mini-bert)");
        if (!Directory.Exists(modelDirectory))
            throw new DirectoryNotFoundException($"--model folder not found: {modelDirectory}");
        var pooling = ParsePooling(parseResult);
        return new FineTuneOptions(modelDirectory)
        {
            Epochs = parseResult.GetValue(Epochs),
            LearningRate = parseResult.GetValue(Lr),
            BatchSize = parseResult.GetValue(BatchSize),
            MaxLength = parseResult.GetValue(MaxLength),
            WarmupRatio = parseResult.GetValue(WarmupRatio),
            GradientAccumulationSteps = parseResult.GetValue(GradAccum),
            BFloat16 = ParsePrecision(parseResult.GetValue(BFloat16), parseResult.GetValue(Float16)) == TrainingPrecision.BFloat16,
            Float16 = parseResult.GetValue(Float16),
            GradientCheckpointing = parseResult.GetValue(GradCheckpointing),
            Pooling = pooling,
            Device = engine.Device,
        };
    }
}
