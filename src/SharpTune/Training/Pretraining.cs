using SharpTune.Engine;
using SharpTune.IO;
using SharpTune.Models;
using SharpTune.Tokenizers;
using SharpTune.Training.Data;
using TorchSharp;
using static TorchSharp.torch;

namespace SharpTune.Training;

/// <summary>Language-modelling objective of <see cref="Pretraining"/>.</summary>
public enum PretrainingObjective
{
    /// <summary>Masked LM (BERT): 15% of tokens, 80% [MASK] / 10% random / 10% unchanged.</summary>
    Mlm,
    /// <summary>Causal LM (GPT/Llama): next-token prediction.</summary>
    Clm,
}

/// <summary>What a pretraining run did: held-out loss before and after, steps and where the model went.</summary>
public sealed record PretrainingResult(double EvalLossBefore, double EvalLossAfter, long Steps, int TrainExamples, int EvalExamples, long Parameters, TimeSpan Elapsed);

/// <summary>
/// Pretraining (from scratch or continued) of a masked or causal language model on raw text through the
/// <see cref="Trainer"/>. Examples are the text's non-empty lines, tokenized and truncated; held-out loss is measured
/// with the same masks before and after training. The output folder receives the model, the tokenizer, checkpoints,
/// logs and the loss plot; it loads with AutoModel for any head (e.g. sequence classification).
/// </summary>
public static class Pretraining
{
    /// <summary>Tokenizes lines of text (one example per non-empty line).</summary>
    public static List<TrainingExample> Encode(Tokenizer tokenizer, IEnumerable<string> lines, int maxLength)
    {
        var options = EncodeOptions.Truncated(maxLength);
        return lines.Where(l => !string.IsNullOrWhiteSpace(l))
            .Select(l => tokenizer.Encode(l.Trim(), options))
            .Where(e => e.Length > 1)
            .Select(e => new TrainingExample(e.Ids.Select(i => (long)i).ToArray()) { TokenTypeIds = e.TypeIds.Select(t => (long)t).ToArray() })
            .ToList();
    }

    /// <summary>The collator of an objective: MLM masking needs the tokenizer's [MASK] and special tokens.</summary>
    public static IDataCollator Collator(PretrainingObjective objective, Tokenizer tokenizer, PretrainedConfig config)
    {
        var pad = tokenizer.PadTokenId ?? config.Get<long?>("pad_token_id", 0) ?? 0;
        if (objective == PretrainingObjective.Clm)
            return new DataCollatorForCausalLM(pad);
        var mask = tokenizer.SpecialTokens.Mask is { } m && tokenizer.TokenToId(m) is { } id ? id
            : throw new ArgumentException("masked-LM pretraining needs a tokenizer with a mask token ([MASK] or <mask>)");
        var special = tokenizer.SpecialTokens.All.Select(tokenizer.TokenToId).OfType<int>().Select(i => (long)i).ToHashSet();
        return new DataCollatorForMaskedLM(mask, config.Require<long>("vocab_size"), special, pad);
    }

    /// <summary>Builds the model: from <paramref name="modelDirectory"/>'s weights when given, else freshly initialised
    /// from <paramref name="config"/>.</summary>
    public static PreTrainedModel CreateModel(PretrainingObjective objective, PretrainedConfig config, Tokenizer tokenizer, string? modelDirectory)
    {
        var vocab = config.Require<long>("vocab_size");
        if (vocab < tokenizer.VocabSize)
            throw new ArgumentException($"{config.SourcePath ?? "config"}: vocab_size {vocab} is smaller than the tokenizer's vocabulary ({tokenizer.VocabSize})");
        var model = AutoModel.FromConfig(config, objective == PretrainingObjective.Mlm ? ModelTask.MaskedLM : ModelTask.CausalLM);
        if (modelDirectory is null)
            model.InitializeWeights();
        else
        {
            using var checkpoint = Checkpoint.Open(modelDirectory);
            model.LoadWeights(checkpoint);
        }
        return model;
    }

    /// <summary>Trains <paramref name="model"/> on <paramref name="train"/> and reports held-out loss on <paramref name="eval"/>.</summary>
    public static PretrainingResult Run(PreTrainedModel model, Tokenizer tokenizer, IDataCollator collator, IReadOnlyList<TrainingExample> train,
        IReadOnlyList<TrainingExample> eval, TrainingArguments args, string? resumeFromCheckpoint = null, IProgress<TrainingProgress>? progress = null)
    {
        var trainer = new Trainer(model, args, train, eval, collator) { Progress = progress };
        double HeldOutLoss()
        {
            // The same masks before and after training: the difference is the model's, not the draw's.
            TorchRuntime.Seed(args.Seed + 1);
            return trainer.Evaluate()["eval_loss"];
        }
        // Also when resuming: the model still holds its starting weights (the same seeded initialisation or --model's),
        // so "before" is the uninterrupted run's, and the checkpoint's weights replace them in Train.
        var before = HeldOutLoss();
        var result = trainer.Train(resumeFromCheckpoint);
        var after = HeldOutLoss();
        trainer.SaveModel();
        tokenizer.Save(Path.Combine(args.OutputDir, "tokenizer.json"));
        return new PretrainingResult(before, after, result.GlobalStep, train.Count, eval.Count, model.ParameterCount(), result.Elapsed);
    }
}
