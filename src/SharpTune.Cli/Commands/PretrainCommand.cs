using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using SharpTune.Cli.Infrastructure;
using SharpTune.Hub;
using SharpTune.Engine;
using SharpTune.IO;
using SharpTune.Models;
using SharpTune.Tokenizers;
using SharpTune.Training;
using TorchSharp;

namespace SharpTune.Cli.Commands;

/// <summary><c>sharptune pretrain</c>: masked-LM or causal-LM training of a model from a config (from scratch) or
/// from existing weights, on raw text, with held-out loss before and after.</summary>
public static class PretrainCommand
{
    public static Command Create()
    {
        var objective = new Option<string>("--objective") { Description = "mlm (masked LM: 15% of tokens, 80/10/10) or clm (causal LM)", Required = true };
        var config = new Option<string?>("--config") { Description = "config.json (or a folder holding one) of the model to build from scratch" };
        var model = new Option<string?>("--model") { Description = "continue from this model folder's weights instead of a fresh initialisation" };
        var tokenizer = new Option<string?>("--tokenizer") { Description = "tokenizer folder or file (default: the --model or --config folder)" };
        var train = new Option<string>("--train") { Description = "text file: one training example per non-empty line", Required = true };
        var eval = new Option<string?>("--eval") { Description = "held-out text file (default: the last --eval-fraction of --train's lines)" };
        var evalFraction = new Option<double>("--eval-fraction") { Description = "share of --train lines held out when --eval is not given", DefaultValueFactory = _ => 0.05 };
        var output = new Option<string>("--output", "-o") { Description = "output folder: model, tokenizer, checkpoints, training_log.jsonl, training_curves.png", Required = true };
        var layers = new Option<int?>("--layers") { Description = "override the number of layers of the config (e.g. \"BERT with 10 layers\")" };
        var training = new TrainingCliOptions(new TrainingCliDefaults(
            Describe: text => text,
            LearningRate: 5e-4,
            BatchSize: 16,
            BatchSizeHelp: "examples per batch",
            MaxLength: 128,
            MaxLengthHelp: "tokens per example (longer lines are truncated)",
            LayersDescribed: "layer"));
        var maxSteps = new Option<long>("--max-steps") { Description = "stop after this many optimizer steps (overrides --epochs)", DefaultValueFactory = _ => -1 };
        var weightDecay = new Option<double>("--weight-decay") { Description = "AdamW weight decay (not on biases and LayerNorm)", DefaultValueFactory = _ => 0.01 };
        var saveSteps = new Option<long>("--save-steps") { Description = "checkpoint every N steps (0: at the end of each epoch)", DefaultValueFactory = _ => 0 };
        var resume = new Option<bool>("--resume") { Description = "continue from the newest checkpoint in --output" };

        var command = new Command("pretrain",
            "Train a language model on raw text: masked LM (BERT-style, from a config such as \"BERT with 10 layers\") or " +
            "causal LM. Prints held-out loss before and after; the saved model loads for classification or generation.")
        {
            objective, config, model, tokenizer, train, eval, evalFraction, output, layers, training.Epochs, maxSteps, training.Lr,
            training.BatchSize, training.GradAccum, training.MaxLength, training.WarmupRatio, weightDecay, training.BFloat16, training.Float16,
            training.GradCheckpointing, saveSteps, resume,
        };
        command.SetAction(parseResult =>
        {
            var engine = GlobalOptions.Apply(parseResult);
            var kind = parseResult.GetValue(objective)!.Trim().ToLowerInvariant() switch
            {
                "mlm" => PretrainingObjective.Mlm,
                "clm" => PretrainingObjective.Clm,
                var other => throw new UsageException($"--objective must be mlm or clm (got '{other}')"),
            };
            var modelDir = HubModels.ResolveOptional(parseResult.GetValue(model));
            var configPath = HubModels.ResolveOptional(parseResult.GetValue(config)) ?? modelDir
                             ?? throw new UsageException("give --config (a new model) or --model (continue from weights)");
            var modelConfig = Directory.Exists(configPath) ? PretrainedConfig.FromDirectory(configPath)
                : File.Exists(configPath) ? PretrainedConfig.FromFile(configPath)
                : throw new FileNotFoundException($"config not found: {configPath}", configPath);
            if (parseResult.GetValue(layers) is { } layerCount)
            {
                if (modelDir is not null)
                    throw new UsageException("--layers changes the architecture: it cannot be combined with --model");
                var key = new[] { "num_hidden_layers", "n_layer", "num_layers" }.FirstOrDefault(modelConfig.Has) ?? "num_hidden_layers";
                modelConfig.Set(key, layerCount);
            }
            var tokenizerPath = HubModels.ResolveOptional(parseResult.GetValue(tokenizer), HubFileSelection.Tokenizer) ?? modelDir ?? (Directory.Exists(configPath) ? configPath : Path.GetDirectoryName(Path.GetFullPath(configPath))!);
            var textTokenizer = AutoTokenizer.FromPretrained(tokenizerPath);
            var trainFile = parseResult.GetValue(train)!;
            if (!File.Exists(trainFile))
                throw new FileNotFoundException($"training text not found: {trainFile}", trainFile);
            var maxLen = parseResult.GetValue(training.MaxLength);
            SharpTune.Data.TextFiles.EnsureUtf8(trainFile);
            var trainLines = File.ReadAllLines(trainFile);
            List<SharpTune.Training.Data.TrainingExample> trainExamples, evalExamples;
            if (parseResult.GetValue(eval) is { } evalFile)
            {
                if (!File.Exists(evalFile))
                    throw new FileNotFoundException($"held-out text not found: {evalFile}", evalFile);
                SharpTune.Data.TextFiles.EnsureUtf8(evalFile);
                trainExamples = Pretraining.Encode(textTokenizer, trainLines, maxLen);
                evalExamples = Pretraining.Encode(textTokenizer, File.ReadAllLines(evalFile), maxLen);
            }
            else
            {
                var all = Pretraining.Encode(textTokenizer, trainLines, maxLen);
                var held = (int)Math.Ceiling(all.Count * parseResult.GetValue(evalFraction));
                if (held < 1 || held >= all.Count)
                    throw new UsageException($"--eval-fraction leaves {all.Count - held} training and {held} held-out examples of {all.Count} in {trainFile}");
                (trainExamples, evalExamples) = (all[..^held], all[^held..]);
            }
            if (trainExamples.Count == 0)
                throw new InvalidDataException($"{trainFile}: no non-empty lines to train on");

            var outputDir = parseResult.GetValue(output)!;
            var seed = engine.Seed ?? 42;
            var saveEvery = parseResult.GetValue(saveSteps);
            var args = new TrainingArguments
            {
                OutputDir = outputDir,
                NumTrainEpochs = parseResult.GetValue(training.Epochs),
                MaxSteps = parseResult.GetValue(maxSteps),
                LearningRate = parseResult.GetValue(training.Lr),
                PerDeviceTrainBatchSize = parseResult.GetValue(training.BatchSize),
                PerDeviceEvalBatchSize = parseResult.GetValue(training.BatchSize),
                GradientAccumulationSteps = parseResult.GetValue(training.GradAccum),
                WarmupRatio = parseResult.GetValue(training.WarmupRatio),
                WeightDecay = parseResult.GetValue(weightDecay),
                Precision = training.Precision(parseResult),
                GradientCheckpointing = parseResult.GetValue(training.GradCheckpointing),
                SaveStrategy = saveEvery > 0 ? IntervalStrategy.Steps : IntervalStrategy.Epoch,
                SaveSteps = Math.Max(saveEvery, 1),
                SaveTotalLimit = 2,
                Seed = seed,
            };
            string? checkpoint = null;
            if (parseResult.GetValue(resume))
                checkpoint = TrainerCheckpoint.Latest(outputDir) ?? throw new DirectoryNotFoundException($"--resume: no checkpoint-* folder in {outputDir}");

            TorchRuntime.Seed(seed);
            using var lm = Pretraining.CreateModel(kind, modelConfig, textTokenizer, modelDir);
            lm.to(engine.Device);
            var collator = Pretraining.Collator(kind, textTokenizer, modelConfig);
            var batches = (trainExamples.Count + args.PerDeviceTrainBatchSize - 1) / args.PerDeviceTrainBatchSize;
            var steps = args.MaxSteps > 0 ? args.MaxSteps : (long)Math.Ceiling(args.NumTrainEpochs * Math.Ceiling((double)batches / args.GradientAccumulationSteps));
            var result = CliProgress.Run($"pretraining ({kind.ToString().ToLowerInvariant()})", steps, report =>
                Pretraining.Run(lm, textTokenizer, collator, trainExamples, evalExamples, args, checkpoint,
                    new SyncProgress<TrainingProgress>(p => report(p.Step, p.ToString()))));

            var name = kind == PretrainingObjective.Mlm ? "MLM" : "causal-LM";
            var metrics = new Dictionary<string, object>
            {
                ["objective"] = kind.ToString().ToLowerInvariant(),
                ["eval_loss_before"] = result.EvalLossBefore,
                ["eval_loss_after"] = result.EvalLossAfter,
                ["eval_perplexity_after"] = Math.Exp(result.EvalLossAfter),
                ["steps"] = result.Steps,
                ["train_examples"] = result.TrainExamples,
                ["eval_examples"] = result.EvalExamples,
                ["parameters"] = result.Parameters,
                ["train_seconds"] = result.Elapsed.TotalSeconds,
                ["resumed_from"] = checkpoint is null ? null! : Path.GetFileName(checkpoint),
            };
            // A diverged run's NaN loss is written as the string "NaN" rather than failing the run at its last step.
            AtomicFile.WriteAllText(Path.Combine(outputDir, "pretrain_metrics.json"), JsonSerializer.Serialize(metrics, new JsonSerializerOptions
            {
                WriteIndented = true,
                NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals,
            }));
            var before = result.EvalLossBefore.ToString("F4", CultureInfo.InvariantCulture);
            Console.WriteLine($"held-out {name} loss: {before} -> {result.EvalLossAfter.ToString("F4", CultureInfo.InvariantCulture)} " +
                              $"({result.EvalExamples} examples; {result.Steps} steps on {result.TrainExamples} examples, {result.Parameters:N0} parameters, {result.Elapsed.TotalSeconds:F1} s)");
            Console.WriteLine($"model, tokenizer, training_log.jsonl and training_curves.png written to {outputDir}");
            return ExitCodes.Success;
        });
        return command;
    }
}
