using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using SharpTune.Cli.Infrastructure;
using SharpTune.Engine;
using SharpTune.IO;
using SharpTune.Models;
using SharpTune.Peft;
using SharpTune.StagedPipeline;
using SharpTune.Training;

namespace SharpTune.Cli.Commands;

/// <summary>Options <c>sft</c> and <c>dpo</c> share: model, data, output, chat template, LoRA and the training loop.</summary>
internal sealed class ChatTuningOptions
{
    public Option<string> Model { get; } = new("--model") { Description = "Causal LM folder (config.json, safetensors, tokenizer.json).", Required = true };
    public Option<string> Data { get; } = new("--data") { Required = true };
    public Option<string?> EvalData { get; } = new("--eval-data") { Description = "Held-out JSONL in the same format; its loss (and DPO's reward accuracy) is reported before and after training." };
    public Option<string> Output { get; } = new("--output") { Description = "Output folder: the model (or with --lora the adapter), tokenizer files, training_log.jsonl, metrics.", Required = true };
    public Option<string?> ChatTemplate { get; } = new("--chat-template") { Description = "A .jinja chat template replacing the model's (saved with the output as chat_template.jinja)." };
    public Option<bool> Lora { get; } = new("--lora") { Description = "Train a LoRA adapter instead of all weights (QLoRA when --model is a quantized checkpoint)." };
    public Option<int> LoraR { get; } = new("--lora-r") { Description = "LoRA rank.", DefaultValueFactory = _ => 8 };
    public Option<double> LoraAlpha { get; } = new("--lora-alpha") { Description = "LoRA alpha (scale alpha/r).", DefaultValueFactory = _ => 16 };
    public Option<double> LoraDropout { get; } = new("--lora-dropout") { Description = "Dropout on the LoRA input.", DefaultValueFactory = _ => 0.0 };
    public Option<string> TargetModules { get; } = new("--target-modules")
    {
        Description = "Comma-separated module names LoRA adapts.",
        DefaultValueFactory = _ => "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj",
    };
    public Option<double> Epochs { get; } = new("--epochs") { Description = "Training epochs.", DefaultValueFactory = _ => 1 };
    public Option<long> MaxSteps { get; } = new("--max-steps") { Description = "Stop after this many optimizer steps (overrides --epochs).", DefaultValueFactory = _ => -1 };
    public Option<double> Lr { get; } = new("--lr") { Description = "Peak learning rate (linear warmup and decay)." };
    public Option<int> BatchSize { get; } = new("--batch-size") { Description = "Examples (DPO: pairs) per batch.", DefaultValueFactory = _ => 8 };
    public Option<int> GradAccum { get; } = new("--grad-accum") { Description = "Batches per optimizer step.", DefaultValueFactory = _ => 1 };
    public Option<double> WarmupRatio { get; } = new("--warmup-ratio") { Description = "Share of steps with linear warmup.", DefaultValueFactory = _ => 0.1 };
    public Option<int> MaxLength { get; } = new("--max-length") { Description = "Longest tokenized example (prompt + completion).", DefaultValueFactory = _ => 512 };
    public Option<string> Optimizer { get; } = new("--optimizer") { Description = "adamw or adamw8bit (8-bit optimizer states).", DefaultValueFactory = _ => "adamw" };
    public Option<long> LoggingSteps { get; } = new("--logging-steps") { Description = "Log to training_log.jsonl every this many steps.", DefaultValueFactory = _ => 10 };

    public ChatTuningOptions(string dataHelp, double defaultLearningRate)
    {
        Data.Description = dataHelp;
        Lr.DefaultValueFactory = _ => defaultLearningRate;
        Optimizer.AcceptOnlyFromAmong("adamw", "adamw8bit");
    }

    public void AddTo(Command command)
    {
        foreach (var option in new Option[]
                 {
                     Model, Data, EvalData, Output, ChatTemplate, Lora, LoraR, LoraAlpha, LoraDropout, TargetModules, Epochs, MaxSteps, Lr,
                     BatchSize, GradAccum, WarmupRatio, MaxLength, Optimizer, LoggingSteps,
                 })
            command.Options.Add(option);
    }

    public TrainingArguments Arguments(ParseResult parseResult, EngineContext engine, string outputDir) => new()
    {
        OutputDir = outputDir,
        NumTrainEpochs = parseResult.GetValue(Epochs),
        MaxSteps = parseResult.GetValue(MaxSteps),
        LearningRate = parseResult.GetValue(Lr),
        PerDeviceTrainBatchSize = Positive(parseResult.GetValue(BatchSize), "--batch-size"),
        PerDeviceEvalBatchSize = parseResult.GetValue(BatchSize),
        GradientAccumulationSteps = Positive(parseResult.GetValue(GradAccum), "--grad-accum"),
        WarmupRatio = parseResult.GetValue(WarmupRatio),
        Optimizer = parseResult.GetValue(Optimizer) == "adamw8bit" ? OptimizerType.AdamW8Bit : OptimizerType.AdamW,
        LoggingSteps = Math.Max(1, parseResult.GetValue(LoggingSteps)),
        Seed = engine.Seed ?? 42,
    };

    public LoraConfig? LoraConfig(ParseResult parseResult, string model) => parseResult.GetValue(Lora)
        ? new LoraConfig
        {
            R = Positive(parseResult.GetValue(LoraR), "--lora-r"),
            LoraAlpha = parseResult.GetValue(LoraAlpha),
            LoraDropout = parseResult.GetValue(LoraDropout),
            TargetModules = parseResult.GetValue(TargetModules)!.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries),
            BaseModelNameOrPath = model,
        }
        : null;

    public static int Positive(int value, string option) => value > 0 ? value : throw new UsageException($"{option} must be positive (got {value})");

    /// <summary>The model folder, checked.</summary>
    public string ModelDirectory(ParseResult parseResult) =>
        HubModels.Resolve(parseResult.GetValue(Model)!) is var model && Directory.Exists(model) ? model : throw new DirectoryNotFoundException($"--model folder not found: {parseResult.GetValue(Model)}");

    /// <summary>Writes the tokenizer files, the chat template and (for full fine-tuning) the generation config next to the result.</summary>
    public void SaveCompanions(ParseResult parseResult, string modelDirectory, string outputDir, PreTrainedModel model)
    {
        ModelFolder.CopyCompanionFiles(modelDirectory, outputDir, model.Config);
        if (parseResult.GetValue(ChatTemplate) is { } template)
            File.Copy(template, Path.Combine(outputDir, "chat_template.jinja"), overwrite: true);
    }

    public static void WriteMetrics(string outputDir, Dictionary<string, object?> metrics) =>
        AtomicFile.WriteAllText(Path.Combine(outputDir, "metrics.json"), JsonSerializer.Serialize(metrics, new JsonSerializerOptions { WriteIndented = true }) + "\n");

    public static string F(double value) => value.ToString("F4", CultureInfo.InvariantCulture);
}

/// <summary><c>sharptune sft</c>: supervised fine-tuning (trl's SFTTrainer) on conversations, prompt/completion pairs or text.</summary>
public static class SftCommand
{
    public static Command Create()
    {
        var options = new ChatTuningOptions(
            "JSONL training data: {\"messages\": [...]}, {\"prompt\": ..., \"completion\": ...} (strings or message lists), {\"text\": ...}, " +
            "or Dolly/Alpaca instruction records.", 2e-4);
        var packing = new Option<bool>("--packing") { Description = "Concatenate examples into --max-length sequences (fewer padding tokens)." };
        var allTokens = new Option<bool>("--all-tokens") { Description = "Compute the loss on every token, not only the completions / assistant turns." };
        var resume = new Option<bool>("--resume") { Description = "Continue from the latest checkpoint-* in --output." };
        var command = new Command("sft",
            "Supervised fine-tuning of a causal LM (trl's SFTTrainer): the loss covers the assistant turns or completions only " +
            "(unless --all-tokens); full weights or a LoRA adapter (--lora). Conversations are rendered with the model's chat template " +
            "(or --chat-template); the assistant tokens come from its {% generation %} blocks when it has them.");
        options.AddTo(command);
        command.Options.Add(packing);
        command.Options.Add(allTokens);
        command.Options.Add(resume);
        command.SetAction(parseResult =>
        {
            var engine = GlobalOptions.Apply(parseResult);
            var modelDirectory = options.ModelDirectory(parseResult);
            var outputDir = parseResult.GetValue(options.Output)!;
            var tokenizer = PretrainedInstructionTokenizer.FromPretrained(modelDirectory, parseResult.GetValue(options.ChatTemplate));
            var train = SftDataset.Load(parseResult.GetValue(options.Data)!);
            var eval = parseResult.GetValue(options.EvalData) is { } evalPath ? SftDataset.Load(evalPath) : null;
            var lora = options.LoraConfig(parseResult, modelDirectory);
            var args = options.Arguments(parseResult, engine, outputDir) with
            {
                SaveStrategy = IntervalStrategy.Epoch,
                SaveTotalLimit = 1,
            };
            var config = new SftConfig
            {
                MaxLength = ChatTuningOptions.Positive(parseResult.GetValue(options.MaxLength), "--max-length"),
                Packing = parseResult.GetValue(packing),
                CompletionOnlyLoss = !parseResult.GetValue(allTokens),
                Lora = lora,
            };
            string? checkpoint = null;
            if (parseResult.GetValue(resume))
                checkpoint = TrainerCheckpoint.Latest(outputDir) ?? throw new DirectoryNotFoundException($"--resume: no checkpoint-* folder in {outputDir}");

            TorchRuntime.Seed(args.Seed);
            using var model = AutoModel.FromPretrained(modelDirectory, ModelTask.CausalLM, engine.Device, engine.DType);
            var sft = new SftTrainer(model, args, tokenizer, train, eval, config);
            var before = eval is null || checkpoint is not null ? double.NaN : sft.EvaluateLoss();
            var steps = args.MaxSteps > 0 ? args.MaxSteps
                : (long)Math.Ceiling(args.NumTrainEpochs * Math.Ceiling(Math.Ceiling((double)sft.TrainDataset.Count / args.PerDeviceTrainBatchSize) / args.GradientAccumulationSteps));
            var result = CliProgress.Run("sft", steps, report =>
            {
                sft.Progress = new SyncProgress<TrainingProgress>(p => report(p.Step, p.ToString()));
                return sft.Train(checkpoint);
            });
            var after = eval is null ? double.NaN : sft.EvaluateLoss();
            var saveTo = lora is null ? outputDir : Path.Combine(outputDir, "adapter");
            sft.SaveModel(saveTo);
            options.SaveCompanions(parseResult, modelDirectory, outputDir, model);
            var summary = sft.Peft?.TrainableParametersSummary() ?? $"{model.ParameterCount():N0} parameters";
            ChatTuningOptions.WriteMetrics(outputDir, new Dictionary<string, object?>
            {
                ["train_examples"] = sft.TrainDataset.Count,
                ["eval_examples"] = sft.EvalDataset?.Count,
                ["steps"] = result.GlobalStep,
                ["training_loss"] = result.TrainingLoss,
                ["eval_loss_before"] = double.IsNaN(before) ? null : before,
                ["eval_loss_after"] = double.IsNaN(after) ? null : after,
                ["train_seconds"] = result.Elapsed.TotalSeconds,
                ["trainable"] = summary,
            });
            Console.WriteLine($"sft: {result.GlobalStep} steps on {sft.TrainDataset.Count} examples ({summary}), training loss {ChatTuningOptions.F(result.TrainingLoss)}, {result.Elapsed.TotalSeconds:F1} s");
            if (eval is not null)
                Console.WriteLine($"held-out loss: {(double.IsNaN(before) ? "(resumed)" : ChatTuningOptions.F(before))} -> {ChatTuningOptions.F(after)} ({sft.EvalDataset!.Count} examples)");
            Console.WriteLine($"{(lora is null ? "model" : "adapter")} written to {saveTo}; training_log.jsonl and metrics.json in {outputDir}");
            return ExitCodes.Success;
        });
        return command;
    }
}

/// <summary><c>sharptune dpo</c>: direct preference optimisation (trl's DPOTrainer).</summary>
public static class DpoCommand
{
    public static Command Create()
    {
        var options = new ChatTuningOptions(
            "JSONL preference data: {\"prompt\": ..., \"chosen\": ..., \"rejected\": ...} per line (strings, or message lists rendered with the chat template).", 5e-4);
        var beta = new Option<double>("--beta") { Description = "DPO beta: how far the policy may drift from the reference (higher: closer).", DefaultValueFactory = _ => 0.1 };
        var lossType = new Option<string>("--loss-type") { Description = "sigmoid (DPO), ipo or hinge.", DefaultValueFactory = _ => "sigmoid" };
        lossType.AcceptOnlyFromAmong("sigmoid", "ipo", "hinge");
        var labelSmoothing = new Option<double>("--label-smoothing") { Description = "Sigmoid loss: assumed probability that a preference is flipped (0 to 0.5).", DefaultValueFactory = _ => 0 };
        var logFirstStep = new Option<bool>("--log-first-step") { Description = "Log step 0 (before the first update) as training_log.jsonl's first line." };
        var maxPromptLength = new Option<int>("--max-prompt-length") { Description = "Longest prompt in tokens (its end is kept).", DefaultValueFactory = _ => 256 };
        var command = new Command("dpo",
            "Preference tuning with DPO (trl's DPOTrainer) against a frozen reference: a second copy of --model, or with --lora the same " +
            "base with the adapter disabled. Logs trl's metrics (rewards/chosen, rewards/rejected, rewards/accuracies, rewards/margins, " +
            "logps/*, logits/*) to training_log.jsonl.");
        options.AddTo(command);
        foreach (var option in new Option[] { beta, lossType, labelSmoothing, logFirstStep, maxPromptLength })
            command.Options.Add(option);
        command.SetAction(parseResult =>
        {
            var engine = GlobalOptions.Apply(parseResult);
            var modelDirectory = options.ModelDirectory(parseResult);
            var outputDir = parseResult.GetValue(options.Output)!;
            var tokenizer = PretrainedInstructionTokenizer.FromPretrained(modelDirectory, parseResult.GetValue(options.ChatTemplate));
            var train = PreferenceRecord.Load(parseResult.GetValue(options.Data)!);
            var eval = parseResult.GetValue(options.EvalData) is { } evalPath ? PreferenceRecord.Load(evalPath) : null;
            var lora = options.LoraConfig(parseResult, modelDirectory);
            if (parseResult.GetValue(beta) <= 0)
                throw new UsageException($"--beta must be positive (got {parseResult.GetValue(beta)})");
            var args = options.Arguments(parseResult, engine, outputDir);
            var config = new DpoConfig
            {
                Beta = parseResult.GetValue(beta),
                LossType = Enum.Parse<DpoLossType>(parseResult.GetValue(lossType)!, ignoreCase: true),
                LabelSmoothing = parseResult.GetValue(labelSmoothing),
                MaxLength = ChatTuningOptions.Positive(parseResult.GetValue(options.MaxLength), "--max-length"),
                MaxPromptLength = ChatTuningOptions.Positive(parseResult.GetValue(maxPromptLength), "--max-prompt-length"),
                LogFirstStep = parseResult.GetValue(logFirstStep),
                Lora = lora,
            };

            TorchRuntime.Seed(args.Seed);
            using var model = AutoModel.FromPretrained(modelDirectory, ModelTask.CausalLM, engine.Device, engine.DType);
            using var reference = lora is null ? AutoModel.FromPretrained(modelDirectory, ModelTask.CausalLM, engine.Device, engine.DType) : null;
            var dpo = new DpoTrainer(model, reference, args, tokenizer, train, eval, config);
            var before = eval is null ? null : dpo.Evaluate();
            var steps = args.MaxSteps > 0 ? args.MaxSteps
                : (long)Math.Ceiling(args.NumTrainEpochs * Math.Ceiling(Math.Ceiling((double)dpo.TrainDataset.Count / args.PerDeviceTrainBatchSize) / args.GradientAccumulationSteps));
            var result = CliProgress.Run("dpo", steps, report =>
            {
                dpo.Progress = new SyncProgress<TrainingProgress>(p => report(p.Step, p.ToString()));
                return dpo.Train();
            });
            var after = eval is null ? null : dpo.Evaluate();
            var saveTo = lora is null ? outputDir : Path.Combine(outputDir, "adapter");
            dpo.SaveModel(saveTo);
            options.SaveCompanions(parseResult, modelDirectory, outputDir, model);
            var metrics = new Dictionary<string, object?>
            {
                ["train_pairs"] = dpo.TrainDataset.Count,
                ["eval_pairs"] = dpo.EvalDataset?.Count,
                ["steps"] = result.GlobalStep,
                ["training_loss"] = result.TrainingLoss,
                ["train_seconds"] = result.Elapsed.TotalSeconds,
                ["beta"] = config.Beta,
                ["loss_type"] = config.LossType.ToString().ToLowerInvariant(),
            };
            foreach (var (key, value) in before ?? [])
                metrics[key + "_before"] = value;
            foreach (var (key, value) in after ?? [])
                metrics[key + "_after"] = value;
            ChatTuningOptions.WriteMetrics(outputDir, metrics);
            Console.WriteLine($"dpo: {result.GlobalStep} steps on {dpo.TrainDataset.Count} pairs, training loss {ChatTuningOptions.F(result.TrainingLoss)}, {result.Elapsed.TotalSeconds:F1} s");
            if (before is not null && after is not null)
                Console.WriteLine($"held-out ({dpo.EvalDataset!.Count} pairs): loss {ChatTuningOptions.F(before["eval_loss"])} -> {ChatTuningOptions.F(after["eval_loss"])}, " +
                                  $"reward accuracy {ChatTuningOptions.F(before["eval_rewards/accuracies"])} -> {ChatTuningOptions.F(after["eval_rewards/accuracies"])}, " +
                                  $"margin {ChatTuningOptions.F(after["eval_rewards/margins"])}");
            Console.WriteLine($"{(lora is null ? "model" : "adapter")} written to {saveTo}; training_log.jsonl and metrics.json in {outputDir}");
            return ExitCodes.Success;
        });
        return command;
    }
}
