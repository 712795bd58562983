using static TorchSharp.torch;

namespace SharpTune.Models.Blocks;

/// <summary>
/// Base of the decoder-only stacks (LlamaModel, GPT2Model, PhiModel, GPTNeoXModel): embeddings, layers, final norm.
/// The forward loop is written once here: positions, mask and rotary angles per pass, all hidden states on
/// request (embeddings, then each layer's output, the last one after the final norm, as transformers returns
/// them), <see cref="KeyValueCache.Advance"/> called once per pass when <see cref="ModelInputs.Cache"/> is set, and
/// gradient checkpointing of every layer when enabled.
/// </summary>
public abstract class DecoderModel : PreTrainedModel, IGradientCheckpointable
{
    /// <param name="name">transformers class name.</param>
    /// <param name="baseModelPrefix">Where causal-LM checkpoints keep this stack ("model", "transformer", "gpt_neox").</param>
    protected DecoderModel(string name, PretrainedConfig config, string baseModelPrefix) : base(name, config) =>
        BaseModelPrefix = baseModelPrefix;

    public override string BaseModelPrefix { get; }

    public abstract int NumLayers { get; }

    public bool GradientCheckpointing { get; set; }

    /// <summary>The input embedding matrix [vocab, hidden]; tied LM heads project onto it.</summary>
    public abstract Tensor InputEmbeddingWeight { get; }

    /// <summary>The rotary embedding, for models that use one.</summary>
    protected virtual RotaryEmbedding? Rotary => null;

    /// <summary>Token (and learned position) embeddings, dropout included.</summary>
    protected abstract Tensor Embed(Tensor inputIds, Tensor positionIds);

    protected abstract Tensor RunLayer(int index, Tensor hidden, DecoderContext context);

    protected abstract Tensor FinalNorm(Tensor hidden);

    /// <summary>Lets the causal-LM wrapper ignore the same legacy checkpoint keys as its base model.</summary>
    internal bool IsIgnorable(string key) => IsIgnorableKey(key);

    public sealed override ModelOutput Forward(ModelInputs inputs)
    {
        using var scope = NewDisposeScope();
        var context = DecoderContext.Start(inputs);
        var hidden = Embed(inputs.InputIds, context.PositionIds);
        context.Prepare(inputs, hidden, Rotary);
        var states = inputs.OutputHiddenStates ? new List<Tensor>() : null;
        // Decoding with a key/value cache appends to the cache in each layer: never recomputed.
        var checkpoint = context.Cache is null && Blocks.GradientCheckpointing.IsActive(this);
        for (var i = 0; i < NumLayers; i++)
        {
            states?.Add(hidden);
            var index = i;
            var next = checkpoint
                ? Blocks.GradientCheckpointing.Checkpoint(x => RunLayer(index, x[0]!, context.WithLayerTensors(x.Skip(1).ToList())), [hidden, .. context.LayerTensors])
                : RunLayer(i, hidden, context);
            if (states is null)
                hidden.Dispose();
            hidden = next;
        }
        var last = FinalNorm(hidden);
        states?.Add(last);
        inputs.Cache?.Advance(inputs.InputIds.shape[1]);
        last.MoveToOuterDisposeScope();
        states?.ForEach(s => s.MoveToOuterDisposeScope());
        return new ModelOutput { LastHiddenState = last, HiddenStates = states };
    }
}
