using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace SharpTune.Models.Blocks;

/// <summary>The attention step every decoder shares, after its own projections and rotary embedding.</summary>
public static class CausalSelfAttention
{
    /// <summary>
    /// Appends this layer's keys/values to the cache (if any), repeats key/value heads for grouped-query
    /// attention, and runs <c>scaled_dot_product_attention</c> (scale 1/√head_dim) with the context's mask.
    /// </summary>
    /// <param name="queries">[B, heads, T, D]</param>
    /// <param name="keys">[B, kv_heads, T, D]</param>
    /// <param name="values">[B, kv_heads, T, D]</param>
    /// <returns>[B, T, heads × D], ready for the output projection.</returns>
    public static Tensor Forward(Tensor queries, Tensor keys, Tensor values, int layer, DecoderContext context, double dropout = 0.0)
    {
        using var scope = NewDisposeScope();
        if (context.Cache is { } cache)
            (keys, values) = cache.Append(layer, keys, values);
        var groups = queries.shape[1] / keys.shape[1];
        if (groups > 1)
        {
            // Query head h reads key/value head h / groups, like transformers' repeat_kv.
            keys = keys.repeat_interleave(groups, dim: 1);
            values = values.repeat_interleave(groups, dim: 1);
        }
        var attended = F.scaled_dot_product_attention(queries, keys, values, context.Mask, dropout, context.IsCausal);
        var (batch, heads, length, dims) = (attended.shape[0], attended.shape[1], attended.shape[2], attended.shape[3]);
        return attended.transpose(1, 2).reshape(batch, length, heads * dims).MoveToOuterDisposeScope();
    }
}
