using static TorchSharp.torch;

namespace SharpTune.Models.Blocks;

/// <summary>Pieces of transformers' <c>_init_weights</c> that the generic initialisation does not cover.</summary>
public static class EncoderInit
{
    /// <summary>nn.Embedding with a padding_idx is initialised with a zero row there: zero it when
    /// <paramref name="name"/> is such an embedding's weight.</summary>
    public static void ZeroPaddingRow(string name, Tensor parameter, string embeddingSuffix, long? paddingIndex)
    {
        if (paddingIndex is not { } row || !name.EndsWith(embeddingSuffix, StringComparison.Ordinal) || row < 0 || row >= parameter.shape[0])
            return;
        using var noGrad = no_grad();
        using var slot = parameter[row];
        slot.zero_();
    }
}
