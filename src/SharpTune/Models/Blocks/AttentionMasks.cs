using static TorchSharp.torch;

namespace SharpTune.Models.Blocks;

/// <summary>Turns padding masks into the additive masks attention adds to its scores.</summary>
public static class AttentionMasks
{
    /// <summary>[B, T] 1/0 padding mask → [B, 1, 1, T] additive mask (0 keep, dtype's minimum drop), for bidirectional encoders.</summary>
    public static Tensor ExpandPadding(Tensor mask, ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        var keep = mask.to(ScalarType.Bool).unsqueeze(1).unsqueeze(1);
        var additive = zeros(keep.shape, dtype, mask.device).masked_fill(keep.logical_not(), MinValue(dtype));
        return additive.MoveToOuterDisposeScope();
    }

    /// <summary>Causal + padding additive mask [B, 1, Tq, Tk] for decoders whose queries are the last Tq of Tk positions.</summary>
    public static Tensor Causal(Tensor? paddingMask, long batch, long queryLength, long keyLength, ScalarType dtype, Device device)
    {
        using var scope = NewDisposeScope();
        var offset = keyLength - queryLength;
        var queryPositions = arange(queryLength, device: device).unsqueeze(1) + offset;
        var keyPositions = arange(keyLength, device: device).unsqueeze(0);
        var allowed = keyPositions.le(queryPositions).unsqueeze(0).unsqueeze(0).expand(batch, 1, queryLength, keyLength);
        if (paddingMask is not null)
            allowed = allowed.logical_and(paddingMask.to(ScalarType.Bool).to(device).unsqueeze(1).unsqueeze(1));
        var additive = zeros(batch, 1, queryLength, keyLength, dtype, device).masked_fill(allowed.logical_not(), MinValue(dtype));
        return additive.MoveToOuterDisposeScope();
    }

    public static double MinValue(ScalarType dtype) => dtype switch
    {
        ScalarType.Float16 => -65504.0,
        ScalarType.BFloat16 => -3.3895313892515355e38,
        ScalarType.Float64 => double.MinValue,
        _ => float.MinValue,
    };
}
