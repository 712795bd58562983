using static TorchSharp.torch;

namespace SharpTune.Models.Blocks;

/// <summary>
/// Keys and values of past positions for every decoder layer, pre-allocated once for the whole generation
/// ([B, kv_heads, capacity, head_dim] per layer) so decoding a token never re-allocates the cache.
/// Each layer calls <see cref="Append"/> during a forward pass; the model calls <see cref="Advance"/> once after it.
/// </summary>
public sealed class KeyValueCache : IDisposable
{
    private readonly Tensor?[] _keys;
    private readonly Tensor?[] _values;

    public KeyValueCache(int layers, long capacity)
    {
        if (capacity < 1)
            throw new ArgumentOutOfRangeException(nameof(capacity), capacity, "cache capacity must be positive");
        _keys = new Tensor?[layers];
        _values = new Tensor?[layers];
        Capacity = capacity;
    }

    /// <summary>Positions the cache can hold (prompt + new tokens).</summary>
    public long Capacity { get; }

    /// <summary>Positions already cached (before the forward pass in progress).</summary>
    public long Length { get; private set; }

    /// <summary>Writes this step's keys/values [B, H, t, D] after the cached ones; returns views of all
    /// [B, H, Length + t, D] positions for attention.</summary>
    public (Tensor Keys, Tensor Values) Append(int layer, Tensor keys, Tensor values)
    {
        var steps = keys.shape[2];
        if (Length + steps > Capacity)
            throw new InvalidOperationException($"key/value cache full: {Length} cached + {steps} new > capacity {Capacity}");
        var keyBuffer = _keys[layer] ??= Allocate(keys);
        var valueBuffer = _values[layer] ??= Allocate(values);
        using (no_grad())
        {
            using var keySlot = keyBuffer.narrow(2, Length, steps);
            using var valueSlot = valueBuffer.narrow(2, Length, steps);
            keySlot.copy_(keys);
            valueSlot.copy_(values);
        }
        return (keyBuffer.narrow(2, 0, Length + steps), valueBuffer.narrow(2, 0, Length + steps));
    }

    /// <summary>Layer <paramref name="layer"/>'s key and value buffers [B, H, capacity, D] (null before its first
    /// <see cref="Append"/>), for decoders that write the next position in place themselves.</summary>
    internal (Tensor? Keys, Tensor? Values) Buffers(int layer) => (_keys[layer], _values[layer]);

    /// <summary>Views [B, H, Length, D] of the keys and values cached for <paramref name="layer"/>; null before its
    /// first append. Lets a batching scheduler move sequences between caches.</summary>
    public (Tensor Keys, Tensor Values)? Cached(int layer) =>
        _keys[layer] is { } keys && _values[layer] is { } values ? (keys.narrow(2, 0, Length), values.narrow(2, 0, Length)) : null;

    /// <summary>Commits the positions appended by the forward pass that just ran.</summary>
    public void Advance(long steps) => Length += steps;

    /// <summary>Forgets every cached position (the buffers are reused).</summary>
    public void Reset() => Length = 0;

    public void Dispose()
    {
        foreach (var tensor in _keys.Concat(_values))
            tensor?.Dispose();
    }

    // Allocated during a forward pass, inside its dispose scope: detach so the buffer outlives that pass. Left
    // uninitialised: attention only ever reads the positions written so far.
    private Tensor Allocate(Tensor like) =>
        empty([like.shape[0], like.shape[1], Capacity, like.shape[3]], like.dtype, like.device).DetachFromDisposeScope();
}
