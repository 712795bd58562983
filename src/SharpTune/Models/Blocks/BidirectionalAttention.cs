using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace SharpTune.Models.Blocks;

/// <summary>
/// The attention core every encoder shares: split projected queries/keys/values into heads, attend with
/// <c>scaled_dot_product_attention</c> (padding keys masked out, 1/√head_dim scaling), merge the heads back.
/// Models keep their own projections so parameter names stay those of transformers.
/// </summary>
public static class BidirectionalAttention
{
    /// <summary>[B, T] 1/0 padding mask → [B, 1, 1, T] boolean mask (true = attend), broadcast over heads and queries.
    /// Padded query positions still attend to the real keys, as in transformers' bidirectional masks.</summary>
    public static Tensor KeyMask(Tensor attentionMask) => attentionMask.to(ScalarType.Bool).unsqueeze(1).unsqueeze(1);

    /// <summary>[B, T, H·D] projections → attention output [B, T, H·D].</summary>
    /// <param name="keyMask">[B, 1, 1, T] boolean mask from <see cref="KeyMask"/>, or null when nothing is padded.</param>
    /// <param name="dropout">Attention-probability dropout, applied only while training.</param>
    public static Tensor Attend(Tensor query, Tensor key, Tensor value, int heads, Tensor? keyMask, double dropout)
    {
        using var scope = NewDisposeScope();
        var attended = F.scaled_dot_product_attention(SplitHeads(query, heads), SplitHeads(key, heads), SplitHeads(value, heads), keyMask, dropout);
        return MergeHeads(attended).MoveToOuterDisposeScope();
    }

    /// <summary>[B, T, H·D] → [B, H, T, D].</summary>
    public static Tensor SplitHeads(Tensor x, int heads) => x.view(x.shape[0], x.shape[1], heads, -1).transpose(1, 2);

    /// <summary>[B, H, T, D] → [B, T, H·D].</summary>
    public static Tensor MergeHeads(Tensor x) => x.transpose(1, 2).reshape(x.shape[0], x.shape[2], -1);
}
