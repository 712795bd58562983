using System.CommandLine;
using SharpTune.Cli.Infrastructure;
using SharpTune.Training;
using SharpTune.Training.Approaches;
using SharpTune.Training.Heads;

namespace SharpTune.Cli.Commands;

/// <summary>Transformer options of <c>classify</c> (embeddings, finetune, kfold) and how they become <see cref="FineTuneOptions"/>.</summary>
internal static class FineTuneCliOptions
{
    public static readonly TrainingCliOptions Training = new(new TrainingCliDefaults(
        Describe: text => $"finetune/kfold: {text}.",
        LearningRate: 5e-5,
        BatchSize: 32,
        BatchSizeHelp: "embeddings/finetune/kfold: texts per batch.",
        MaxLength: 64,
        MaxLengthHelp: "embeddings/finetune/kfold: tokens per text (longer texts are truncated).",
        LayersDescribed: "encoder layer"));
    public static readonly Option<string?> Pooling = new("--pooling")
    {
        Description = "Pooling: cls, mean, max, attention or concat-last4 (embeddings: mean/cls/max, default mean; kfold default mean; finetune default: the model's own classification head).",
    };
    public static readonly Option<int> Folds = new("--folds") { Description = "kfold: number of stratified folds.", DefaultValueFactory = _ => 5 };
    public static readonly Option<long> SaveSteps = new("--save-steps")
    {
        Description = "finetune/kfold: checkpoint every N optimizer steps into <output>/<approach>/[fold-k/]checkpoint-N (the newest two kept; 0: none).",
        DefaultValueFactory = _ => 0,
    };
    public static readonly Option<bool> Resume = new("--resume")
    {
        Description = "finetune/kfold: continue from the newest complete checkpoint of a run interrupted in the same --output " +
                      "(same data and options); the results equal an uninterrupted run's.",
    };

    public static Option[] All =>
    [
        Training.Epochs, Training.Lr, Training.BatchSize, Training.MaxLength, Training.WarmupRatio, Training.GradAccum,
        Training.BFloat16, Training.Float16, Training.GradCheckpointing, Pooling, Folds, SaveSteps, Resume,
    ];

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

    public static FineTuneOptions Build(ParseResult parseResult, EngineContext engine, string? modelDirectory, string approach)
    {
        if (modelDirectory is null)
            throw new UsageException($"approach '{approach}' needs --model: a pretrained encoder folder with its tokenizer (e.g. mini-bert)");
        modelDirectory = HubModels.Resolve(modelDirectory);
        if (!Directory.Exists(modelDirectory))
            throw new DirectoryNotFoundException($"--model folder not found: {modelDirectory}");
        var pooling = ParsePooling(parseResult);
        if (parseResult.GetValue(SaveSteps) < 0)
            throw new UsageException($"--save-steps must be 0 or more (got {parseResult.GetValue(SaveSteps)})");
        var precision = Training.Precision(parseResult);
        return new FineTuneOptions(modelDirectory)
        {
            Epochs = parseResult.GetValue(Training.Epochs),
            LearningRate = parseResult.GetValue(Training.Lr),
            BatchSize = parseResult.GetValue(Training.BatchSize),
            MaxLength = parseResult.GetValue(Training.MaxLength),
            WarmupRatio = parseResult.GetValue(Training.WarmupRatio),
            GradientAccumulationSteps = parseResult.GetValue(Training.GradAccum),
            BFloat16 = precision == TrainingPrecision.BFloat16,
            Float16 = precision == TrainingPrecision.Float16,
            GradientCheckpointing = parseResult.GetValue(Training.GradCheckpointing),
            Pooling = pooling,
            Device = engine.Device,
            SaveSteps = parseResult.GetValue(SaveSteps),
            Resume = parseResult.GetValue(Resume),
        };
    }
}
