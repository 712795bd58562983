using System.Collections.Concurrent;
using static TorchSharp.torch;

namespace SharpTune.Quantization;

/// <summary>
/// Blockwise quantization as bitsandbytes does it: the flattened tensor is cut into blocks, each block is scaled by
/// its absolute maximum into [-1, 1] and every value is replaced by the index of the nearest code-book entry
/// (bucketing against the midpoints of the sorted code book). Works on any device; everything is computed in float32.
/// </summary>
public static class Blockwise
{
    private static readonly ConcurrentDictionary<(string, string), Tensor> Tables = new();

    /// <summary>A constant table on <paramref name="device"/>, created once (code books are shared by all layers).</summary>
    internal static Tensor Table(string name, Func<IReadOnlyList<float>> values, Device device) =>
        Tables.GetOrAdd((name, device.ToString()), _ => tensor(values().ToArray(), ScalarType.Float32).to(device).DetachFromDisposeScope());

    /// <summary>4-bit quantization of <paramref name="weight"/>: packed codes (two per byte, first value in the high
    /// nibble; shape [ceil(n/2), 1] like bitsandbytes' Params4bit) and the float32 absmax of each block.</summary>
    public static (Tensor Packed, Tensor Absmax) Quantize4Bit(Tensor weight, FourBitType type, int blockSize = 64)
    {
        using var scope = NewDisposeScope();
        var (scaled, absmax) = ScaleBlocks(weight, blockSize);
        if (scaled.numel() % 2 == 1)
            scaled = nn.functional.pad(scaled, [0, 1]);
        var codes = QuantCodebooks.FourBit(type);
        // Sort the code book (FP4 is not sorted by code; -0 before +0 keeps the sign) and bucket against the midpoints.
        var order = Enumerable.Range(0, 16).OrderBy(i => codes[i]).ThenBy(i => float.IsNegative(codes[i]) ? 0 : 1).ToArray();
        var bounds = Enumerable.Range(0, 15).Select(i => (codes[order[i]] + codes[order[i + 1]]) / 2f).ToArray();
        var bucket = scaled.bucketize(tensor(bounds).to(weight.device)).to(ScalarType.Int64);
        var code = tensor(order.Select(i => (long)i).ToArray()).to(weight.device).index_select(0, bucket).view(-1, 2);
        var packed = (code[.., 0] * 16 + code[.., 1]).to(ScalarType.Byte).unsqueeze(1);
        return (packed.MoveToOuterDisposeScope(), absmax.MoveToOuterDisposeScope());
    }

    /// <summary>Inverse of <see cref="Quantize4Bit"/>: the tensor of <paramref name="shape"/> in <paramref name="dtype"/>.</summary>
    public static Tensor Dequantize4Bit(Tensor packed, Tensor absmax, Tensor codeBook, int blockSize, long[] shape, ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        var bytes = packed.reshape(-1).to(ScalarType.Int64);
        var codes = stack([bytes.div(16, rounding_mode: RoundingMode.floor), bytes.remainder(16)], 1).reshape(-1);
        var values = codeBook.index_select(0, codes);
        return ScaleBack(values, absmax, blockSize, shape, dtype).MoveToOuterDisposeScope();
    }

    /// <summary>8-bit blockwise quantization against a 256-entry sorted <paramref name="codeBook"/>: uint8 codes of the
    /// input's shape and the float32 absmax of each block.</summary>
    public static (Tensor Codes, Tensor Absmax) QuantizeBlockwise(Tensor input, Tensor codeBook, int blockSize)
    {
        using var scope = NewDisposeScope();
        var (scaled, absmax) = ScaleBlocks(input, blockSize);
        var bounds = (codeBook[..^1] + codeBook[1..]) / 2;
        var codes = scaled.bucketize(bounds).to(ScalarType.Byte).reshape(input.shape);
        return (codes.MoveToOuterDisposeScope(), absmax.MoveToOuterDisposeScope());
    }

    public static Tensor DequantizeBlockwise(Tensor codes, Tensor absmax, Tensor codeBook, int blockSize, ScalarType dtype = ScalarType.Float32)
    {
        using var scope = NewDisposeScope();
        var values = codeBook.index_select(0, codes.reshape(-1).to(ScalarType.Int64));
        return ScaleBack(values, absmax, blockSize, codes.shape, dtype).MoveToOuterDisposeScope();
    }

    /// <summary>Per-row absmax int8 quantization (LLM.int8's vector-wise weight format): round(w * 127 / rowAbsmax).</summary>
    public static (Tensor Codes, Tensor RowAbsmax) QuantizeInt8Rows(Tensor weight)
    {
        using var scope = NewDisposeScope();
        var w = weight.detach().to(ScalarType.Float32);
        var rowAbsmax = w.abs().amax([1]);
        var codes = (w * (127.0 / rowAbsmax.clamp_min(1e-38)).unsqueeze(1)).round().to(ScalarType.Int8);
        return (codes.MoveToOuterDisposeScope(), rowAbsmax.MoveToOuterDisposeScope());
    }

    public static Tensor DequantizeInt8Rows(Tensor codes, Tensor rowAbsmax, ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        // bitsandbytes multiplies by 1/127 as this float32 constant.
        var w = codes.to(ScalarType.Float32) * rowAbsmax.view(-1, 1) * 7.874015718698502e-3;
        return w.to(dtype).MoveToOuterDisposeScope();
    }

    /// <summary>Flattens to float32, zero-pads to whole blocks and returns the values scaled into [-1, 1] (the first n)
    /// and each block's absmax.</summary>
    private static (Tensor Scaled, Tensor Absmax) ScaleBlocks(Tensor input, int blockSize)
    {
        if (blockSize <= 0)
            throw new ArgumentException($"block size must be positive, got {blockSize}");
        if (!input.is_floating_point())
            throw new ArgumentException($"only floating tensors can be quantized, got {input.dtype}");
        var flat = input.detach().reshape(-1).to(ScalarType.Float32);
        var n = flat.numel();
        var blocks = (n + blockSize - 1) / blockSize;
        var padded = nn.functional.pad(flat, [0, blocks * blockSize - n]).view(blocks, blockSize);
        var absmax = padded.abs().amax([1]);
        var scaled = (padded * absmax.clamp_min(1e-38).reciprocal().unsqueeze(1)).clamp(-1, 1).reshape(-1).narrow(0, 0, n);
        return (scaled, absmax);
    }

    private static Tensor ScaleBack(Tensor values, Tensor absmax, int blockSize, long[] shape, ScalarType dtype)
    {
        var n = shape.Aggregate(1L, (a, b) => a * b);
        var blocks = absmax.shape[0];
        var full = nn.functional.pad(values, [0, blocks * blockSize - values.numel()]).view(blocks, blockSize);
        return (full * absmax.to(ScalarType.Float32).unsqueeze(1)).reshape(-1).narrow(0, 0, n).reshape(shape).to(dtype);
    }
}
