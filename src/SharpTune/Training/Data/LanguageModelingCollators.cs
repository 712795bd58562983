using static TorchSharp.torch;

namespace SharpTune.Training.Data;

/// <summary>
/// Masked-LM batches as transformers' DataCollatorForLanguageModeling: each non-special, non-padding token is chosen
/// with probability <paramref name="mlmProbability"/> (15%); of the chosen, 80% become [MASK], 10% a random token and
/// 10% stay unchanged; labels hold the original id at chosen positions and -100 elsewhere. Draws come from libtorch's
/// generator, so seeding and checkpoint RNG state make masking reproducible and resumable.
/// </summary>
public sealed class DataCollatorForMaskedLM(long maskTokenId, long vocabSize, IReadOnlySet<long> specialTokenIds, long padTokenId = 0,
    double mlmProbability = 0.15, int padToMultipleOf = 1) : DataCollatorWithPadding(padTokenId, padToMultipleOf)
{
    public override Batch Collate(IReadOnlyList<TrainingExample> examples, Device device)
    {
        var padded = base.Collate(examples.Select(e => e with { Label = null, Targets = null, TokenLabels = null }).ToList(), CPU);
        using var scope = NewDisposeScope();
        var ids = padded.Inputs.InputIds;
        var special = tensor(ids.data<long>().ToArray().Select(specialTokenIds.Contains).ToArray(), ids.shape);
        var eligible = padded.Inputs.AttentionMask!.to(ScalarType.Bool).logical_and(special.logical_not());
        var chosen = bernoulli(full(ids.shape, mlmProbability, ScalarType.Float32)).to(ScalarType.Bool).logical_and(eligible);
        var labels = ids.masked_fill(chosen.logical_not(), IgnoreIndex);
        var replaced = bernoulli(full(ids.shape, 0.8, ScalarType.Float32)).to(ScalarType.Bool).logical_and(chosen);
        var randomized = bernoulli(full(ids.shape, 0.5, ScalarType.Float32)).to(ScalarType.Bool).logical_and(chosen).logical_and(replaced.logical_not());
        var randomWords = randint(vocabSize, ids.shape, dtype: ScalarType.Int64);
        var masked = ids.masked_fill(replaced, maskTokenId).where(randomized.logical_not(), randomWords);
        var batch = new Batch
        {
            Size = padded.Size,
            Inputs = padded.Inputs with
            {
                InputIds = masked.to(device).DetachFromDisposeScope(),
                AttentionMask = padded.Inputs.AttentionMask.to(device).DetachFromDisposeScope(),
                TokenTypeIds = padded.Inputs.TokenTypeIds?.to(device).DetachFromDisposeScope(),
                Labels = labels.to(device).DetachFromDisposeScope(),
            },
        };
        padded.Dispose();
        return batch;
    }
}

/// <summary>Causal-LM batches (transformers' collator with mlm=False): labels are the input ids with padding set to
/// -100; the model shifts them so token t predicts token t+1.</summary>
public sealed class DataCollatorForCausalLM(long padTokenId = 0, int padToMultipleOf = 1) : DataCollatorWithPadding(padTokenId, padToMultipleOf)
{
    public override Batch Collate(IReadOnlyList<TrainingExample> examples, Device device) =>
        base.Collate(examples.Select(e => e with { Label = null, Targets = null, TokenLabels = e.InputIds }).ToList(), device);
}
