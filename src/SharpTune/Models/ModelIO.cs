using static TorchSharp.torch;

namespace SharpTune.Models;

/// <summary>Inputs of a forward pass, named as in transformers. Only <see cref="InputIds"/> is required.</summary>
public sealed record ModelInputs(Tensor InputIds)
{
    /// <summary>1 for real tokens, 0 for padding ([B, T], int64 or bool).</summary>
    public Tensor? AttentionMask { get; init; }
    public Tensor? TokenTypeIds { get; init; }
    public Tensor? PositionIds { get; init; }
    /// <summary>Class ids (single-label), float targets (multi-label/regression) or token ids (LM, -100 ignored).</summary>
    public Tensor? Labels { get; init; }
    /// <summary>Return the embeddings output and every layer's output in <see cref="ModelOutput.HiddenStates"/>.</summary>
    public bool OutputHiddenStates { get; init; }
    /// <summary>Decoders: past keys/values to attend to and extend (generation). Null runs without a cache.</summary>
    public Blocks.KeyValueCache? Cache { get; init; }
}

/// <summary>Outputs of a forward pass. Owns its tensors: dispose it (or move them out of a dispose scope).</summary>
public sealed class ModelOutput : IDisposable
{
    /// <summary>The head's output: classification logits, MLM or LM vocabulary logits. Null for base models.</summary>
    public Tensor? Logits { get; init; }
    /// <summary>The base model's final hidden states, as transformers returns them.</summary>
    public required Tensor LastHiddenState { get; init; }
    /// <summary>Pooled output of models with a pooler (BERT), else null.</summary>
    public Tensor? PoolerOutput { get; init; }
    /// <summary>Embeddings output followed by each layer's output, when asked for.</summary>
    public IReadOnlyList<Tensor>? HiddenStates { get; init; }
    /// <summary>The loss, when labels were given.</summary>
    public Tensor? Loss { get; init; }

    /// <summary>A task head's output over this base-model output: its hidden states with the head's logits and loss
    /// (and pooled output, for heads that pool on their own).</summary>
    public ModelOutput WithHead(Tensor logits, Tensor? loss, Tensor? poolerOutput = null) => new()
    {
        Logits = logits,
        Loss = loss,
        LastHiddenState = LastHiddenState,
        PoolerOutput = poolerOutput ?? PoolerOutput,
        HiddenStates = HiddenStates,
    };

    /// <summary>Moves every tensor to the dispose scope outside the current one, for a forward that built this output
    /// in its own scope. Each tensor moves once, though the last hidden state usually also ends <see cref="HiddenStates"/>.</summary>
    public ModelOutput MoveToOuterDisposeScope()
    {
        Tensor?[] tensors = [Logits, Loss, LastHiddenState, PoolerOutput, .. HiddenStates ?? []];
        foreach (var tensor in tensors.OfType<Tensor>().Distinct<Tensor>(ReferenceEqualityComparer.Instance))
            tensor.MoveToOuterDisposeScope();
        return this;
    }

    public void Dispose()
    {
        Logits?.Dispose();
        LastHiddenState.Dispose();
        PoolerOutput?.Dispose();
        Loss?.Dispose();
        if (HiddenStates is not null)
            foreach (var state in HiddenStates)
                state.Dispose();
    }
}

/// <summary>What loading a checkpoint into a model found, as transformers reports it.</summary>
public sealed record LoadReport(IReadOnlyList<string> Missing, IReadOnlyList<string> Unexpected, IReadOnlyList<string> Initialized)
{
    public override string ToString() =>
        (Missing.Count == 0 && Unexpected.Count == 0)
            ? "all weights loaded"
            : $"newly initialised: {(Initialized.Count == 0 ? "none" : string.Join(", ", Initialized))}; unexpected (ignored): {(Unexpected.Count == 0 ? "none" : string.Join(", ", Unexpected))}";
}
