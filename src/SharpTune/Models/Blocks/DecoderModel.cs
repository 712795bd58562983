using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SharpTune.Models.Blocks;

/// <summary>A decoder layer: one step of the <see cref="DecoderModel"/> stack.</summary>
public interface IDecoderLayer
{
    Tensor Forward(Tensor hidden, DecoderContext context);
}

/// <summary>
/// Base of the decoder-only stacks (LlamaModel, GPT2Model, PhiModel, GPTNeoXModel): token embeddings, layers, final
/// norm, registered by the derived constructor under transformers' names (<see cref="AddEmbeddings"/>,
/// <see cref="AddLayers"/>, <see cref="AddFinalNorm"/>, in that order, which is the parameter order).
/// The forward loop is written once here: positions, mask and rotary angles per pass, all hidden states on
/// request (embeddings, then each layer's output, the last one after the final norm, as transformers returns
/// them), <see cref="KeyValueCache.Advance"/> called once per pass when <see cref="ModelInputs.Cache"/> is set, and
/// gradient checkpointing of every layer when enabled.
/// </summary>
public abstract class DecoderModel : PreTrainedModel, IGradientCheckpointable
{
    private Embedding? _tokenEmbeddings;
    private IDecoderLayer[] _layers = [];
    private nn.Module<Tensor, Tensor>? _finalNorm;

    /// <param name="name">transformers class name.</param>
    /// <param name="baseModelPrefix">Where causal-LM checkpoints keep this stack ("model", "transformer", "gpt_neox").</param>
    protected DecoderModel(string name, PretrainedConfig config, string baseModelPrefix) : base(name, config) =>
        BaseModelPrefix = baseModelPrefix;

    public override string BaseModelPrefix { get; }

    public int NumLayers => _layers.Length;

    public bool GradientCheckpointing { get; set; }

    /// <summary>The input embedding matrix [vocab, hidden]; tied LM heads project onto it.</summary>
    public Tensor InputEmbeddingWeight => TokenEmbeddings.weight!;

    private Embedding TokenEmbeddings => _tokenEmbeddings ?? throw new InvalidOperationException($"{GetName()} registered no token embeddings");

    /// <summary>The rotary embedding, for models that use one.</summary>
    protected virtual RotaryEmbedding? Rotary => null;

    protected void AddEmbeddings(string name, Embedding embeddings) => register_module(name, _tokenEmbeddings = embeddings);

    protected void AddLayers<TLayer>(string name, int count, Func<int, TLayer> create) where TLayer : nn.Module, IDecoderLayer
    {
        var layers = Enumerable.Range(0, count).Select(create).ToArray();
        register_module(name, new ModuleList<TLayer>(layers));
        _layers = layers;
    }

    protected void AddFinalNorm(string name, nn.Module<Tensor, Tensor> norm) => register_module(name, _finalNorm = norm);

    /// <summary>The input embeddings; architectures add learned positions and dropout here.</summary>
    protected virtual Tensor Embed(Tensor inputIds, Tensor positionIds) => TokenEmbeddings.forward(inputIds);

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
        foreach (var layer in _layers)
        {
            states?.Add(hidden);
            var next = checkpoint
                ? Blocks.GradientCheckpointing.Checkpoint(x => layer.Forward(x[0]!, context.WithLayerTensors(x.Skip(1).ToList())), [hidden, .. context.LayerTensors])
                : layer.Forward(hidden, context);
            if (states is null)
                hidden.Dispose();
            hidden = next;
        }
        var last = (_finalNorm ?? throw new InvalidOperationException($"{GetName()} registered no final norm")).forward(hidden);
        states?.Add(last);
        inputs.Cache?.Advance(inputs.InputIds.shape[1]);
        return new ModelOutput { LastHiddenState = last, HiddenStates = states }.MoveToOuterDisposeScope();
    }
}
