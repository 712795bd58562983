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
        var (batch, heads, length, dims) = (queries.shape[0], queries.shape[1], queries.shape[2], queries.shape[3]);
        var groups = heads / keys.shape[1];
        Tensor attended;
        if (groups > 1 && length == 1)
        {
            // One-token decoding step: the `groups` query heads sharing a key/value head become `groups` query
            // positions of that head, so the cached keys/values are read in place instead of copied per query head.
            // (The mask, [B, 1, 1, past + 1] or none, is the same for all of them.)
            var grouped = queries.reshape(batch, heads / groups, groups, dims);
            attended = F.scaled_dot_product_attention(grouped, keys, values, context.Mask, dropout, false).view(batch, heads, 1, dims);
        }
        else
        {
            if (groups > 1)
            {
                // Query head h reads key/value head h / groups, like transformers' repeat_kv.
                keys = keys.repeat_interleave(groups, dim: 1);
                values = values.repeat_interleave(groups, dim: 1);
            }
            attended = F.scaled_dot_product_attention(queries, keys, values, context.Mask, dropout, context.IsCausal);
        }
        return attended.transpose(1, 2).reshape(batch, length, heads * dims).MoveToOuterDisposeScope();
    }
}
