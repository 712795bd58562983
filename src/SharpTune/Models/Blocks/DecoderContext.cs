using static TorchSharp.torch;

namespace SharpTune.Models.Blocks;

/// <summary>
/// What every layer of one decoder forward pass shares: position ids, rotary angles, the attention mask and
/// the key/value cache. Built once per forward by <see cref="DecoderModel"/>; its tensors live in that forward's dispose scope.
/// </summary>
public sealed class DecoderContext
{
    private DecoderContext(Tensor positionIds, KeyValueCache? cache, bool positionsBelowCapacity = false)
    {
        PositionIds = positionIds;
        Cache = cache;
        _positionsBelowCapacity = positionsBelowCapacity;
    }

    // Positions counted from the cache length: all below its capacity (an append past it throws), so rotary angles can
    // be gathered from a table of that many positions.
    private readonly bool _positionsBelowCapacity;

    /// <summary>Position of each input token [B or 1, T]: the caller's, else cache length + 0..T-1 (as transformers).</summary>
    public Tensor PositionIds { get; }

    /// <summary>The cache layers append to, or null.</summary>
    public KeyValueCache? Cache { get; }

    /// <summary>Additive mask [B, 1, T, past + T] (causal + padding), or null when <see cref="IsCausal"/> says enough.</summary>
    public Tensor? Mask { get; private set; }

    /// <summary>True when no mask is needed beyond plain causal attention of T queries over T keys.</summary>
    public bool IsCausal { get; private set; }

    /// <summary>Rotary cos/sin [B, 1, T, rotary dims], or null for models without rotary embeddings.</summary>
    public (Tensor Cos, Tensor Sin)? RotaryAngles { get; private set; }

    /// <summary>Positions of this forward's tokens: <see cref="ModelInputs.PositionIds"/>, or, as transformers
    /// does without them, the cached length onwards (left-padded batches must pass their own).</summary>
    public static DecoderContext Start(ModelInputs inputs)
    {
        var ids = inputs.InputIds;
        if (ids.dim() != 2)
            throw new ArgumentException($"input_ids must be [batch, sequence], got [{string.Join(", ", ids.shape)}]");
        var past = inputs.Cache?.Length ?? 0;
        var positions = inputs.PositionIds?.to(ids.device);
        if (positions is null)
            positions = arange(past, past + ids.shape[1], ScalarType.Int64, ids.device).unsqueeze(0);
        else if (positions.dim() != 2 || positions.shape[1] != ids.shape[1] || (positions.shape[0] != 1 && positions.shape[0] != ids.shape[0]))
            throw new ArgumentException($"position_ids [{string.Join(", ", positions.shape)}] do not match input_ids [{string.Join(", ", ids.shape)}]");
        return new DecoderContext(positions, inputs.Cache, inputs.PositionIds is null && inputs.Cache is not null);
    }

    /// <summary>Builds the attention mask (in the hidden states' dtype) and the rotary angles once the embeddings exist.
    /// With a cache, <see cref="ModelInputs.AttentionMask"/> covers the cached and the new positions ([B, past + T]).</summary>
    public void Prepare(ModelInputs inputs, Tensor hidden, RotaryEmbedding? rotary)
    {
        var (batch, length) = (inputs.InputIds.shape[0], inputs.InputIds.shape[1]);
        var past = Cache?.Length ?? 0;
        var padding = inputs.AttentionMask;
        if (padding is not null && (padding.dim() != 2 || padding.shape[0] != batch || padding.shape[1] != past + length))
            throw new ArgumentException($"attention_mask is [{string.Join(", ", padding.shape)}], expected [{batch}, {past + length}] (cached + new positions)");
        var hasPadding = padding is not null && !padding.to(ScalarType.Bool).all().item<bool>();
        if (!hasPadding && (past == 0 || length == 1))
            IsCausal = past == 0 && length > 1;
        else
            Mask = AttentionMasks.Causal(hasPadding ? padding : null, batch, length, past + length, hidden.dtype, hidden.device);
        if (rotary is not null)
            RotaryAngles = _positionsBelowCapacity ? rotary.Angles(PositionIds, hidden.dtype, Cache!.Capacity) : rotary.Angles(PositionIds, hidden.dtype);
    }

    /// <summary>The tensors a layer reads from the context, for a checkpointed layer to save and get back in backward
    /// (see <see cref="WithLayerTensors"/>).</summary>
    internal Tensor?[] LayerTensors => [PositionIds, Mask, RotaryAngles?.Cos, RotaryAngles?.Sin];

    /// <summary>This context over <paramref name="tensors"/> in place of its own (as listed by <see cref="LayerTensors"/>).</summary>
    internal DecoderContext WithLayerTensors(IReadOnlyList<Tensor?> tensors) => new(tensors[0]!, Cache)
    {
        Mask = tensors[1],
        IsCausal = IsCausal,
        RotaryAngles = tensors[2] is { } cos ? (cos, tensors[3]!) : null,
    };

    /// <summary>Applies the rotary embedding (if any) to queries and keys [B, H, T, D].</summary>
    public (Tensor Queries, Tensor Keys) Rotate(Tensor queries, Tensor keys) =>
        RotaryAngles is var (cos, sin)
            ? (RotaryEmbedding.Apply(queries, cos, sin), RotaryEmbedding.Apply(keys, cos, sin))
            : (queries, keys);
}
