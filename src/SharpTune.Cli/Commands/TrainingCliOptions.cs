using System.CommandLine;
using SharpTune.Cli.Infrastructure;
using SharpTune.Training;

namespace SharpTune.Cli.Commands;

/// <summary>What the training commands word or default differently: <c>classify</c> trains on texts, <c>pretrain</c> on
/// lines of raw text, with other learning rates and sizes.</summary>
/// <param name="Describe">Turns an option's common help text into the command's (scope prefix, punctuation).</param>
/// <param name="LayersDescribed">The layers --grad-checkpointing recomputes, as its help names them.</param>
internal sealed record TrainingCliDefaults(
    Func<string, string> Describe,
    double LearningRate,
    int BatchSize,
    string BatchSizeHelp,
    int MaxLength,
    string MaxLengthHelp,
    string LayersDescribed);

/// <summary>The training options <c>classify</c> (finetune/kfold) and <c>pretrain</c> share, defined once: epochs,
/// learning rate, batch size, max length, warmup, gradient accumulation, precision and gradient checkpointing.</summary>
internal sealed class TrainingCliOptions(TrainingCliDefaults defaults)
{
    public Option<double> Epochs { get; } = new("--epochs") { Description = defaults.Describe("training epochs"), DefaultValueFactory = _ => 1 };

    public Option<double> Lr { get; } = new("--lr")
    {
        Description = defaults.Describe("peak learning rate (AdamW, linear warmup and decay)"),
        DefaultValueFactory = _ => defaults.LearningRate,
    };

    public Option<int> BatchSize { get; } = new("--batch-size") { Description = defaults.BatchSizeHelp, DefaultValueFactory = _ => defaults.BatchSize };

    public Option<int> MaxLength { get; } = new("--max-length") { Description = defaults.MaxLengthHelp, DefaultValueFactory = _ => defaults.MaxLength };

    public Option<double> WarmupRatio { get; } = new("--warmup-ratio") { Description = defaults.Describe("share of steps with linear warmup"), DefaultValueFactory = _ => 0.06 };

    public Option<int> GradAccum { get; } = new("--grad-accum") { Description = defaults.Describe("batches per optimizer step"), DefaultValueFactory = _ => 1 };

    public Option<bool> BFloat16 { get; } = new("--bf16") { Description = defaults.Describe("train in bfloat16 with fp32 master weights") };

    public Option<bool> Float16 { get; } = new("--fp16")
    {
        Description = defaults.Describe("train in float16 with fp32 master weights and dynamic loss scaling (steps whose gradients overflow are skipped)"),
    };

    public Option<bool> GradCheckpointing { get; } = new("--grad-checkpointing")
    {
        Description = defaults.Describe($"recompute each {defaults.LayersDescribed}'s activations during backward instead of storing them (less memory, one extra forward pass per step, same results)"),
    };

    /// <summary>The precision named by --bf16 / --fp16 (at most one of them).</summary>
    public TrainingPrecision Precision(ParseResult parseResult) => (parseResult.GetValue(BFloat16), parseResult.GetValue(Float16)) switch
    {
        (true, true) => throw new UsageException("--bf16 and --fp16 exclude each other: choose one"),
        (true, false) => TrainingPrecision.BFloat16,
        (false, true) => TrainingPrecision.Float16,
        _ => TrainingPrecision.Float32,
    };
}
