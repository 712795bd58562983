using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using SharpTune.Engine;
using SharpTune.IO;
using SharpTune.Data;
using SharpTune.Models;
using SharpTune.Peft;
using SharpTune.Tokenizers.ChatTemplates;
using SharpTune.Training.Data;
using SharpTune.Training.Optimization;
using TorchSharp;
using static TorchSharp.torch;

namespace SharpTune.Training;

/// <summary>trl's DPO loss types.</summary>
public enum DpoLossType
{
    /// <summary>-log σ(β·h) (with label smoothing ε: -(1-ε)·log σ(β·h) - ε·log σ(-β·h)), the DPO paper's loss.</summary>
    Sigmoid,
    /// <summary>(h - 1/(2β))², IPO, on length-averaged log-probabilities.</summary>
    Ipo,
    /// <summary>max(0, 1 - β·h), SLiC's hinge.</summary>
    Hinge,
}

/// <summary>One preference pair: a prompt and a chosen and a rejected completion (strings, or message lists rendered with
/// the chat template). <see cref="Line"/> is the 1-based JSONL line, for messages.</summary>
public sealed record PreferenceRecord(JsonNode Prompt, JsonNode Chosen, JsonNode Rejected, int Line = 0)
{
    /// <summary>Reads JSONL with <c>prompt</c>, <c>chosen</c> and <c>rejected</c> per line.</summary>
    public static IReadOnlyList<PreferenceRecord> Load(string path)
    {
        if (!File.Exists(path))
            throw new FileNotFoundException($"preference data file not found: {path}", path);
        var records = new List<PreferenceRecord>();
        foreach (var (lineNumber, o) in JsonLines.ReadObjects(path))
        {
            JsonNode Field(string name) => o[name]?.DeepClone() is { } value && value is JsonArray or JsonValue
                ? value
                : throw new InvalidDataException($"{path}:{lineNumber}: '{name}' must be a string or a list of messages");
            var (prompt, chosen, rejected) = (Field("prompt"), Field("chosen"), Field("rejected"));
            if ((chosen is JsonArray) != (rejected is JsonArray) || (prompt is JsonArray) != (chosen is JsonArray))
                throw new InvalidDataException($"{path}:{lineNumber}: prompt, chosen and rejected must all be strings or all be message lists");
            records.Add(new PreferenceRecord(prompt, chosen, rejected, lineNumber));
        }
        return records;
    }
}

/// <summary>Options of <see cref="DpoTrainer"/> beyond the <see cref="TrainingArguments"/> (trl's DPOConfig).</summary>
public sealed record DpoConfig
{
    /// <summary>β: how far the policy may move from the reference (higher: closer).</summary>
    public double Beta { get; init; } = 0.1;

    public DpoLossType LossType { get; init; } = DpoLossType.Sigmoid;

    /// <summary>ε of the sigmoid loss: the probability that a preference label is flipped (conservative DPO).</summary>
    public double LabelSmoothing { get; init; }

    /// <summary>Longest prompt + completion in tokens; the prompt is cut first (keeping its end), then the completion's end.</summary>
    public int MaxLength { get; init; } = 1024;

    /// <summary>Longest prompt in tokens (its end is kept).</summary>
    public int MaxPromptLength { get; init; } = 512;

    /// <summary>Log the metrics of the first batch before any update as step 0 (policy = reference: loss ln 2, rewards 0).</summary>
    public bool LogFirstStep { get; init; }

    /// <summary>Train a LoRA adapter; the reference is then the base model with the adapter disabled (no second copy).</summary>
    public LoraConfig? Lora { get; init; }

    public ChatTemplateOptions? ChatTemplateOptions { get; init; }
}

/// <summary>A tokenized preference pair: the prompt ids and the two completions' ids.</summary>
public sealed record PreferenceExample(long[] PromptIds, long[] ChosenIds, long[] RejectedIds);

/// <summary>
/// trl's DPOTrainer: direct preference optimisation of a causal LM against a frozen reference — a separate model, or with
/// LoRA the same base with its adapter disabled. Sums (IPO: averages) the completion tokens' log-probabilities, computes
/// the sigmoid, IPO or hinge loss, and logs trl's metrics (rewards/chosen, rewards/rejected, rewards/accuracies,
/// rewards/margins, logps/chosen, logps/rejected, logits/chosen, logits/rejected) to training_log.jsonl.
/// Uses the TrainingArguments' optimizer, schedule, accumulation, clipping, logging interval and seed.
/// </summary>
public sealed class DpoTrainer
{
    private readonly PreTrainedModel? _referenceModel;

    public DpoTrainer(PreTrainedModel model, PreTrainedModel? referenceModel, TrainingArguments args, PretrainedInstructionTokenizer tokenizer,
        IReadOnlyList<PreferenceRecord> trainDataset, IReadOnlyList<PreferenceRecord>? evalDataset = null, DpoConfig? config = null)
    {
        args.Validate();
        Config = config ?? new DpoConfig();
        if (Config.Beta <= 0)
            throw new ArgumentOutOfRangeException(nameof(config), "beta must be positive");
        if (Config.LabelSmoothing is < 0 or >= 0.5)
            throw new ArgumentOutOfRangeException(nameof(config), "label smoothing must be in [0, 0.5)");
        Model = model;
        Args = args;
        Tokenizer = tokenizer;
        if (Config.Lora is { } lora)
        {
            if (referenceModel is not null)
                throw new ArgumentException("with LoRA the reference is the base model with the adapter disabled: pass no reference model");
            Peft = PeftModel.Create(model, lora);
        }
        else
        {
            _referenceModel = referenceModel ?? throw new ArgumentException("DPO needs a reference model (a frozen copy of the policy) or a LoRA config");
            _referenceModel.eval();
            foreach (var p in _referenceModel.parameters())
                p.requires_grad = false;
        }
        TrainDataset = trainDataset.Select(r => Tokenize(r)).ToList();
        EvalDataset = evalDataset?.Select(r => Tokenize(r)).ToList();
    }

    public PreTrainedModel Model { get; }
    public TrainingArguments Args { get; }
    public DpoConfig Config { get; }
    public PretrainedInstructionTokenizer Tokenizer { get; }
    public PeftModel? Peft { get; }
    public IReadOnlyList<PreferenceExample> TrainDataset { get; }
    public IReadOnlyList<PreferenceExample>? EvalDataset { get; }
    public IProgress<TrainingProgress>? Progress { get; set; }

    /// <summary>Every logged entry (also written to training_log.jsonl).</summary>
    public List<Dictionary<string, double>> LogHistory { get; } = [];

    private Device Device => Model.parameters().First().device;

    /// <summary>Prompt and completion ids as trl builds them: chat data renders the prompt with the generation prompt and
    /// takes each completion as the rest of the full conversation's rendering; plain strings get BOS (as the tokenizer
    /// config asks) on the prompt and EOS after each completion.</summary>
    public PreferenceExample Tokenize(PreferenceRecord record)
    {
        try
        {
            long[] Ids(IEnumerable<int> ids) => ids.Select(i => (long)i).ToArray();
            long[] promptIds, chosenIds, rejectedIds;
            if (record.Prompt is JsonArray prompt)
            {
                var template = Tokenizer.ChatTemplate ?? throw new InvalidDataException(
                    $"{Tokenizer.Config.Directory}: conversational preference data needs a chat template, and the tokenizer has none");
                var options = Config.ChatTemplateOptions ?? new ChatTemplateOptions();
                var promptText = template.ApplyChatTemplate(prompt, options with { AddGenerationPrompt = true });
                string Completion(JsonNode completion)
                {
                    var full = template.ApplyChatTemplate(new JsonArray([.. prompt.Select(m => m?.DeepClone()), .. completion.AsArray().Select(m => m?.DeepClone())]),
                        options with { AddGenerationPrompt = false });
                    return full.StartsWith(promptText, StringComparison.Ordinal) ? full[promptText.Length..]
                        : throw new InvalidDataException("the chat template renders the prompt differently inside the full conversation");
                }
                promptIds = Ids(Tokenizer.EncodeRendered(promptText).Ids);
                chosenIds = Ids(Tokenizer.EncodeRendered(Completion(record.Chosen)).Ids);
                rejectedIds = Ids(Tokenizer.EncodeRendered(Completion(record.Rejected)).Ids);
            }
            else
            {
                promptIds = Ids(Tokenizer.Encode(record.Prompt.GetValue<string>(), addSpecialTokens: true));
                chosenIds = [.. Ids(Tokenizer.Encode(record.Chosen.GetValue<string>(), addSpecialTokens: false)), Tokenizer.EosTokenId];
                rejectedIds = [.. Ids(Tokenizer.Encode(record.Rejected.GetValue<string>(), addSpecialTokens: false)), Tokenizer.EosTokenId];
            }
            if (promptIds.Length > Config.MaxPromptLength)
                promptIds = promptIds[^Config.MaxPromptLength..];
            var completionBudget = Math.Max(1, Config.MaxLength - promptIds.Length);
            if (chosenIds.Length == 0 || rejectedIds.Length == 0)
                throw new InvalidDataException("an empty chosen or rejected completion");
            return new PreferenceExample(promptIds, chosenIds.Length > completionBudget ? chosenIds[..completionBudget] : chosenIds,
                rejectedIds.Length > completionBudget ? rejectedIds[..completionBudget] : rejectedIds);
        }
        catch (Exception e) when (record.Line > 0 && e is InvalidDataException or TemplateRaisedException or JinjaException or InvalidOperationException)
        {
            throw new InvalidDataException($"line {record.Line}: {e.Message}", e);
        }
    }

    /// <summary>The DPO losses of trl, per pair, from the policy's and reference's chosen/rejected log-probabilities.</summary>
    public static Tensor Loss(DpoLossType type, double beta, double labelSmoothing, Tensor policyChosen, Tensor policyRejected, Tensor referenceChosen, Tensor referenceRejected)
    {
        using var scope = NewDisposeScope();
        var logits = policyChosen - policyRejected - (referenceChosen - referenceRejected);
        var loss = type switch
        {
            DpoLossType.Sigmoid => -nn.functional.logsigmoid(beta * logits) * (1 - labelSmoothing) - nn.functional.logsigmoid(-beta * logits) * labelSmoothing,
            DpoLossType.Ipo => (logits - 1 / (2 * beta)).pow(2),
            DpoLossType.Hinge => nn.functional.relu(1 - beta * logits),
            _ => throw new ArgumentOutOfRangeException(nameof(type)),
        };
        return loss.MoveToOuterDisposeScope();
    }

    /// <summary>Per sequence: the sum of the completion tokens' log-probabilities (mean for IPO) and the mean logit over them.</summary>
    private (Tensor LogProbs, Tensor MeanLogits) CompletionLogProbs(PreTrainedModel model, IReadOnlyList<(long[] Prompt, long[] Completion)> sequences)
    {
        var width = sequences.Max(s => s.Prompt.Length + s.Completion.Length);
        var count = sequences.Count;
        var ids = new long[count * width];
        var attention = new long[count * width];
        var completionMask = new float[count * width];
        Array.Fill(ids, Tokenizer.EosTokenId);
        for (var row = 0; row < count; row++)
        {
            var (prompt, completion) = sequences[row];
            prompt.CopyTo(ids, row * width);
            completion.CopyTo(ids, row * width + prompt.Length);
            Array.Fill(attention, 1L, row * width, prompt.Length + completion.Length);
            Array.Fill(completionMask, 1f, row * width + prompt.Length, completion.Length);
        }
        var device = Device;
        using var idsTensor = tensor(ids, [count, width], device: device);
        using var attentionTensor = tensor(attention, [count, width], device: device);
        using var output = model.Forward(new ModelInputs(idsTensor) { AttentionMask = attentionTensor });
        var logits = output.Logits!.to(ScalarType.Float32);
        // Token t is predicted by position t-1.
        var shifted = logits[.., ..^1, ..];
        var targets = idsTensor[.., 1..];
        var mask = tensor(completionMask, [count, width], device: device)[.., 1..];
        var tokenLogProbs = shifted.log_softmax(-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1);
        var lengths = mask.sum(1);
        var sums = (tokenLogProbs * mask).sum(1);
        var logProbs = Config.LossType == DpoLossType.Ipo ? sums / lengths : sums;
        var meanLogits = (shifted.mean([-1L]) * mask).sum(1) / lengths;
        return (logProbs, meanLogits.detach());
    }

    /// <summary>The completion log-probabilities (summed; IPO: averaged) of chosen and rejected under the policy or the reference.</summary>
    public (float[] Chosen, float[] Rejected) LogProbs(IReadOnlyList<PreferenceExample> pairs, bool reference)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var sequences = pairs.Select(e => (e.PromptIds, e.ChosenIds)).Concat(pairs.Select(e => (e.PromptIds, e.RejectedIds))).ToList();
        Tensor values;
        if (!reference)
            values = CompletionLogProbs(Model, sequences).LogProbs;
        else if (Peft is not null)
        {
            using var disabled = Peft.DisableAdapter();
            values = CompletionLogProbs(Model, sequences).LogProbs;
        }
        else
            values = CompletionLogProbs(_referenceModel!, sequences).LogProbs;
        var all = values.cpu().data<float>().ToArray();
        return (all[..pairs.Count], all[pairs.Count..]);
    }

    /// <summary>Loss and trl's metrics on a batch of pairs (chosen and rejected in one concatenated forward pass).</summary>
    private (Tensor Loss, Dictionary<string, double> Metrics) BatchLoss(IReadOnlyList<PreferenceExample> batch)
    {
        var sequences = batch.Select(e => (e.PromptIds, e.ChosenIds)).Concat(batch.Select(e => (e.PromptIds, e.RejectedIds))).ToList();
        var n = batch.Count;
        var (policy, policyLogits) = CompletionLogProbs(Model, sequences);
        Tensor reference;
        using (no_grad())
        {
            if (Peft is not null)
            {
                using var disabled = Peft.DisableAdapter();
                reference = CompletionLogProbs(Model, sequences).LogProbs;
            }
            else
                reference = CompletionLogProbs(_referenceModel!, sequences).LogProbs;
        }
        var (policyChosen, policyRejected) = (policy[..n], policy[n..]);
        var (referenceChosen, referenceRejected) = (reference[..n], reference[n..]);
        var losses = Loss(Config.LossType, Config.Beta, Config.LabelSmoothing, policyChosen, policyRejected, referenceChosen, referenceRejected);
        var chosenRewards = (Config.Beta * (policyChosen - referenceChosen)).detach();
        var rejectedRewards = (Config.Beta * (policyRejected - referenceRejected)).detach();
        double Mean(Tensor t) => t.to(ScalarType.Float32).mean().item<float>();
        var metrics = new Dictionary<string, double>
        {
            ["rewards/chosen"] = Mean(chosenRewards),
            ["rewards/rejected"] = Mean(rejectedRewards),
            ["rewards/accuracies"] = Mean((chosenRewards > rejectedRewards).to(ScalarType.Float32)),
            ["rewards/margins"] = Mean(chosenRewards - rejectedRewards),
            ["logps/chosen"] = Mean(policyChosen.detach()),
            ["logps/rejected"] = Mean(policyRejected.detach()),
            ["logits/chosen"] = Mean(policyLogits[..n]),
            ["logits/rejected"] = Mean(policyLogits[n..]),
        };
        return (losses.mean(), metrics);
    }

    /// <summary>Loss and metrics over a data set (no updates), keys prefixed with <paramref name="prefix"/>_.</summary>
    public Dictionary<string, double> Evaluate(IReadOnlyList<PreferenceExample>? dataset = null, string prefix = "eval")
    {
        dataset ??= EvalDataset ?? throw new ArgumentException("no evaluation data set");
        var wasTraining = Model.training;
        Model.eval();
        var sums = new Dictionary<string, double>();
        using (no_grad())
        {
            foreach (var chunk in dataset.Chunk(Args.PerDeviceEvalBatchSize))
            {
                using var scope = NewDisposeScope();
                var (loss, metrics) = BatchLoss(chunk);
                metrics["loss"] = loss.item<float>();
                foreach (var (key, value) in metrics)
                    sums[key] = sums.GetValueOrDefault(key) + value * chunk.Length;
            }
        }
        if (wasTraining)
            Model.train();
        return sums.ToDictionary(p => $"{prefix}_{p.Key}", p => p.Value / dataset.Count);
    }

    public TrainOutput Train(CancellationToken cancellationToken = default)
    {
        var args = Args;
        if (TrainDataset.Count == 0)
            throw new ArgumentException("the training data set is empty");
        Directory.CreateDirectory(args.OutputDir);
        var logPath = Path.Combine(args.OutputDir, TrainingLogWriter.LogFileName);
        AtomicFile.WriteAllText(logPath, "");
        TorchRuntime.Seed(args.Seed);
        var (_, totalSteps) = args.OptimizerSteps(TrainDataset.Count);
        var scheduler = args.CreateScheduler(totalSteps);
        var groups = ParameterGroups.Create(Model, args.LearningRate, args.WeightDecay, Model.BaseModelPrefix, null, 1.0);
        using var optimizer = args.CreateOptimizer(groups);
        var state = new TrainerState { MaxSteps = totalSteps };
        var watch = Stopwatch.StartNew();
        void Log(Dictionary<string, double> entry, long step)
        {
            entry["step"] = step;
            LogHistory.Add(entry);
            state.LogHistory.Add(entry);
            File.AppendAllText(logPath, JsonSerializer.Serialize(entry, TrainingLogWriter.JsonOptions) + "\n");
        }

        Model.train();
        if (Config.LogFirstStep)
        {
            var first = EpochOrder(0).Take(args.PerDeviceTrainBatchSize).Select(i => TrainDataset[i]).ToList();
            using var scope = NewDisposeScope();
            using (no_grad())
            {
                var (loss, metrics) = BatchLoss(first);
                Log(new Dictionary<string, double> { ["loss"] = loss.item<float>(), ["learning_rate"] = 0 }.Concat(metrics).ToDictionary(), 0);
            }
        }
        var sinceLog = new Dictionary<string, double>();
        long stepsSinceLog = 0;
        double lossTotal = 0;
        for (var epoch = 0; state.GlobalStep < totalSteps; epoch++)
        {
            foreach (var window in EpochOrder(epoch).Chunk(args.PerDeviceTrainBatchSize).Chunk(args.GradientAccumulationSteps))
            {
                if (state.GlobalStep >= totalSteps)
                    break;
                cancellationToken.ThrowIfCancellationRequested();
                var windowMetrics = new Dictionary<string, double>();
                foreach (var indices in window)
                {
                    using var scope = NewDisposeScope();
                    var (loss, metrics) = BatchLoss(indices.Select(i => TrainDataset[i]).ToList());
                    (loss / window.Length).backward();
                    metrics["loss"] = loss.item<float>();
                    foreach (var (key, value) in metrics)
                        windowMetrics[key] = windowMetrics.GetValueOrDefault(key) + value / window.Length;
                }
                scheduler.Apply(optimizer, state.GlobalStep);
                var learningRate = args.LearningRate * scheduler.Factor(state.GlobalStep, args.LearningRate);
                var gradNorm = optimizer.Step(args.MaxGradNorm > 0 ? args.MaxGradNorm : null);
                optimizer.ZeroGrad();
                state.GlobalStep++;
                state.Epoch = epoch + 1;
                lossTotal += windowMetrics["loss"];
                foreach (var (key, value) in windowMetrics)
                    sinceLog[key] = sinceLog.GetValueOrDefault(key) + value;
                stepsSinceLog++;
                if (state.GlobalStep % args.LoggingSteps == 0 || state.GlobalStep >= totalSteps)
                {
                    var entry = sinceLog.ToDictionary(p => p.Key, p => p.Value / stepsSinceLog);
                    entry["learning_rate"] = learningRate;
                    entry["grad_norm"] = gradNorm;
                    Log(entry, state.GlobalStep);
                    (sinceLog, stepsSinceLog) = ([], 0);
                }
                if (EvalDataset is not null && args.EvalStrategy == IntervalStrategy.Steps && state.GlobalStep % args.EvalSteps == 0)
                    Log(Evaluate(), state.GlobalStep);
                var elapsed = watch.Elapsed;
                Progress?.Report(new TrainingProgress(state.GlobalStep, totalSteps, state.Epoch, windowMetrics["loss"], learningRate, elapsed,
                    elapsed * ((double)(totalSteps - state.GlobalStep) / state.GlobalStep)));
            }
        }
        Model.eval();
        if (args.WriteLogs)
            TrainingLogWriter.WritePlot(LogHistory, Path.Combine(args.OutputDir, TrainingLogWriter.PlotFileName));
        return new TrainOutput(state.GlobalStep, lossTotal / Math.Max(1, state.GlobalStep), watch.Elapsed, state);
    }

    private int[] EpochOrder(int epoch) =>
        Args.ShuffleTrainData ? Samplers.Random(TrainDataset.Count, Args.Seed, epoch) : Samplers.Sequential(TrainDataset.Count);

    /// <summary>Saves the policy: the adapter (PEFT format) with LoRA, else the full model.</summary>
    public void SaveModel(string directory)
    {
        if (Peft is not null)
            Peft.SavePretrained(directory);
        else
            Model.SavePretrained(directory);
    }
}
