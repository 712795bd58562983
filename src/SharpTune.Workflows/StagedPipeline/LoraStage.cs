using SharpTune.Engine;
using SharpTune.Peft;
using SharpTune.Training;

namespace SharpTune.StagedPipeline;

/// <summary>
/// (3) Fine-tunes a LoRA adapter on the instruction data with the loss on response tokens only — on the full-precision
/// base, or on the quantized base with <see cref="PipelineSettings.QLora"/> (QLoRA: the 4-bit weights never change).
/// Saves the adapter in PEFT's format (<c>adapter/</c>) and the full-precision base with the adapter merged in
/// (<c>merged/</c>), plus the training log.
/// </summary>
internal sealed class LoraStage : PipelineStage
{
    public override string Name => "lora";
    public override string Folder => PipelineStages.LoraFolder;
    public override IReadOnlyList<string> Requires => ["base"];
    // QLoRA trains on the quantize stage's output.
    public override IReadOnlyList<string> RequiresFor(PipelineSettings settings) => settings.QLora ? ["base", "quantize"] : ["base"];

    public override object?[] SettingsFingerprint(PipelineSettings s) =>
    [
        PipelineStages.DataFingerprint(s), s.TrainSamples, s.HeldOutSamples, s.MaxLength, s.Seed, s.LoraR, s.LoraAlpha, s.LoraDropout, s.TargetModules,
        s.QLora, s.Epochs, s.BatchSize, s.GradientAccumulationSteps, s.LearningRate, s.WarmupSteps, s.MaxGradNorm, s.Optimizer,
    ];

    public override IReadOnlyDictionary<string, object?>? Run(PipelineContext context, string workDirectory)
    {
        var settings = context.Settings;
        var baseFolder = context.RequireOutputOf("base");
        var trainFrom = settings.QLora ? context.RequireOutputOf("quantize") : baseFolder;
        var tokenizer = PretrainedInstructionTokenizer.FromPretrained(baseFolder);
        var (train, _) = PipelineStages.Data(settings);
        var records = train.Select(r => SftRecord.FromPromptCompletion(r.Prompt, r.Response)).ToList();

        // Seeded here so that adapter initialisation, dropout and data order repeat exactly when the stage re-runs.
        TorchRuntime.Seed(settings.Seed);
        var sftConfig = new SftConfig
        {
            MaxLength = settings.MaxLength,
            Lora = new LoraConfig
            {
                R = settings.LoraR,
                LoraAlpha = settings.LoraAlpha,
                LoraDropout = settings.LoraDropout,
                TargetModules = settings.TargetModules,
                BaseModelNameOrPath = settings.Model,
            },
        };
        var adapterFolder = Path.Combine(workDirectory, PipelineStages.AdapterFolder);
        double trainingLoss;
        long steps;
        string trainable;
        int samples;
        using (var model = ModelFolder.LoadCausalLM(trainFrom, context.Device))
        {
            var args = new TrainingArguments
            {
                OutputDir = Path.Combine(workDirectory, "training"),
                NumTrainEpochs = settings.Epochs,
                PerDeviceTrainBatchSize = settings.BatchSize,
                GradientAccumulationSteps = settings.GradientAccumulationSteps,
                LearningRate = settings.LearningRate,
                WarmupSteps = settings.WarmupSteps,
                MaxGradNorm = settings.MaxGradNorm,
                Optimizer = Optimizer(settings.Optimizer),
                GradientCheckpointing = settings.GradientCheckpointing,
                Seed = settings.Seed,
                LoggingSteps = 1,
            };
            var sft = new SftTrainer(model, args, tokenizer, records, config: sftConfig)
            {
                Progress = new Progress<TrainingProgress>(p => context.ReportProgress(p.Step, p.TotalSteps, $"loss {p.Loss:F4}")),
            };
            trainable = sft.Peft!.TrainableParametersSummary();
            samples = sft.TrainDataset.Count;
            context.Log($"lora: {trainable}; {samples} training samples");
            var result = sft.Train();
            trainingLoss = result.TrainingLoss;
            steps = result.GlobalStep;
            sft.SaveModel(adapterFolder);
        }

        // The merged model: the adapter applied to the full-precision base (for QLoRA too, as peft users merge into
        // the unquantized base), saved as a plain Hugging Face model.
        using (var model = ModelFolder.LoadCausalLM(baseFolder, context.Device))
        {
            var merged = PeftModel.FromPretrained(model, adapterFolder).MergeAndUnload();
            var mergedFolder = Path.Combine(workDirectory, PipelineStages.MergedFolder);
            merged.SavePretrained(mergedFolder);
            ModelFolder.CopyCompanionFiles(baseFolder, mergedFolder, merged.Config);
        }
        context.Log($"lora: {steps} optimizer steps, training loss {trainingLoss:F4}");
        return new Dictionary<string, object?>
        {
            ["training_samples"] = samples,
            ["optimizer_steps"] = steps,
            ["training_loss"] = trainingLoss,
            ["trainable_parameters"] = trainable,
            ["qlora"] = settings.QLora,
        };
    }

    private static OptimizerType Optimizer(string name) => name switch
    {
        "adamw" => OptimizerType.AdamW,
        "adamw8bit" => OptimizerType.AdamW8Bit,
        _ => throw new ArgumentException($"optimizer '{name}' is not available; use adamw8bit or adamw"),
    };
}
