using SharpTune.Models.Blocks;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace SharpTune.Models;

/// <summary>
/// What text generation needs from a causal language model. Typical decoding loop: create a cache with
/// <see cref="CreateCache"/> sized prompt + new tokens (at most <see cref="MaxPositions"/>), run the prompt once,
/// then one token per <see cref="Forward"/>, passing the same <see cref="ModelInputs.Cache"/>, an
/// <see cref="ModelInputs.AttentionMask"/> over cached + new positions, and, for left-padded batches,
/// <see cref="ModelInputs.PositionIds"/> (cumulative sum of the mask − 1, as transformers' generate).
/// </summary>
public interface ICausalLM
{
    PretrainedConfig Config { get; }

    /// <summary>Decoder layers, i.e. the layers a <see cref="KeyValueCache"/> holds.</summary>
    int NumLayers { get; }

    /// <summary>Size of the logits' last dimension.</summary>
    int VocabSize { get; }

    /// <summary>max_position_embeddings (n_positions for GPT-2): the longest sequence the model supports.</summary>
    int MaxPositions { get; }

    /// <summary>eos_token_id from config.json (an int or a list), empty when none.</summary>
    IReadOnlyList<long> EosTokenIds { get; }

    /// <summary>A key/value cache for this model holding up to <paramref name="capacity"/> positions.</summary>
    KeyValueCache CreateCache(long capacity);

    /// <summary>Logits [B, T, vocab], the final hidden states, and with labels the shifted-token loss.</summary>
    ModelOutput Forward(ModelInputs inputs);
}

/// <summary>
/// Base of the *ForCausalLM classes: a <see cref="DecoderModel"/> under its transformers prefix and an LM head,
/// either its own Linear or tied to the input embeddings (no separate parameter, like transformers' tying).
/// With <see cref="ModelInputs.Labels"/> the loss is transformers' causal-LM loss: token t predicts label t+1,
/// -100 is ignored, mean over the rest, computed in float32.
/// </summary>
public abstract class CausalLMModel : PreTrainedModel, ICausalLM
{
    private readonly string _headName;
    private readonly nn.Module<Tensor, Tensor>? _head;

    /// <param name="name">transformers class name.</param>
    /// <param name="model">The decoder stack, registered under its <see cref="PreTrainedModel.BaseModelPrefix"/>.</param>
    /// <param name="headName">The LM head's module name ("lm_head", "embed_out").</param>
    /// <param name="headBias">Whether the head has a bias (Phi).</param>
    /// <param name="tiedByDefault">tie_word_embeddings when config.json omits it (transformers' default for the architecture).</param>
    protected CausalLMModel(string name, PretrainedConfig config, DecoderModel model,
        string headName = "lm_head", bool headBias = false, bool tiedByDefault = false) : base(name, config)
    {
        Model = model;
        _headName = headName;
        register_module(model.BaseModelPrefix, model);
        IsTied = config.Get("tie_word_embeddings", tiedByDefault);
        // Read once: each access to the embedding's weight hands out a new tensor handle.
        VocabSize = (int)model.InputEmbeddingWeight.shape[0];
        if (IsTied && headBias)
            throw new NotSupportedException($"{config.SourcePath ?? PretrainedConfig.FileName}: a tied LM head with a bias is not supported");
        if (!IsTied)
        {
            var embeddings = model.InputEmbeddingWeight;
            register_module(headName, _head = nn.Linear(embeddings.shape[1], embeddings.shape[0], headBias));
        }
    }

    /// <summary>The decoder stack (the base model).</summary>
    public DecoderModel Model { get; }

    /// <summary>True when the LM head reuses the input embedding matrix.</summary>
    public bool IsTied { get; }

    public override string BaseModelPrefix => Model.BaseModelPrefix;

    public override IReadOnlyCollection<string> TiedParameterNames => IsTied ? [_headName + ".weight"] : [];

    public int NumLayers => Model.NumLayers;
    public int VocabSize { get; }
    public int MaxPositions => Config.Get("max_position_embeddings", 2048, "n_positions");
    public IReadOnlyList<long> EosTokenIds => Config.EosTokenIds;

    public KeyValueCache CreateCache(long capacity) => new(NumLayers, capacity);

    public override ModelOutput Forward(ModelInputs inputs)
    {
        using var scope = NewDisposeScope();
        var output = Model.Forward(inputs);
        var logits = _head is null ? F.linear(output.LastHiddenState, Model.InputEmbeddingWeight) : _head.forward(output.LastHiddenState);
        var loss = inputs.Labels is { } labels ? ShiftedLoss(logits, labels) : null;
        return output.WithHead(logits, loss).MoveToOuterDisposeScope();
    }

    private static Tensor ShiftedLoss(Tensor logits, Tensor labels)
    {
        using var scope = NewDisposeScope();
        var vocab = logits.shape[^1];
        var length = logits.shape[1];
        var predictions = logits.narrow(1, 0, length - 1).reshape(-1, vocab).to(ScalarType.Float32);
        var targets = labels.to(logits.device).narrow(1, 1, length - 1).reshape(-1).to(ScalarType.Int64);
        return F.cross_entropy(predictions, targets, ignore_index: -100).MoveToOuterDisposeScope();
    }

    protected override bool IsIgnorableKey(string key) => base.IsIgnorableKey(key) || Model.IsIgnorable(key);
}
