using System.Collections.Concurrent;
using static TorchSharp.torch;

namespace SharpTune.Quantization;

/// <summary>
/// Blockwise quantization as bitsandbytes does it: the flattened tensor is cut into blocks, each block is scaled by
/// its absolute maximum into [-1, 1] and every value is replaced by the index of the nearest code-book entry
/// (bucketing against the midpoints of the sorted code book; for 4 bits exactly the thresholds of bitsandbytes' CUDA
/// kernels). Works on any device; everything is computed in float32.
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
        // bitsandbytes' CUDA decision trees (x > threshold picks the upper branch) as bucketing against their thresholds.
        Tensor code;
        if (type == FourBitType.Nf4)
            code = scaled.bucketize(Table("nf4-thresholds", () => QuantCodebooks.Nf4Thresholds, weight.device));
        else
        {
            var magnitude = scaled.abs().bucketize(Table("fp4-thresholds", () => QuantCodebooks.Fp4MagnitudeThresholds, weight.device));
            var magnitudeCodes = tensor(QuantCodebooks.Fp4MagnitudeCodes.Select(c => (long)c).ToArray(), device: weight.device);
            code = magnitudeCodes.index_select(0, magnitude) + scaled.lt(0).to(ScalarType.Int64) * 8;
        }
        code = code.view(-1, 2);
        var packed = (code[.., 0] * 16 + code[.., 1]).to(ScalarType.Byte).unsqueeze(1);
        return (packed.MoveToOuterDisposeScope(), absmax.MoveToOuterDisposeScope());
    }

    /// <summary>Inverse of <see cref="Quantize4Bit"/>: the tensor of <paramref name="shape"/> in <paramref name="dtype"/>.
    /// Like bitsandbytes, decodes with the built-in table of <paramref name="type"/> (never a stored quant_map) and scales
    /// in float32 before the cast.</summary>
    public static Tensor Dequantize4Bit(Tensor packed, Tensor absmax, FourBitType type, int blockSize, long[] shape, ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        // One gather through the 256 x 2 table of the values each byte holds (high nibble first) unpacks and decodes.
        var pairs = Table(QuantCodebooks.Name(type) + "-pairs", () => BytePairs(QuantCodebooks.FourBit(type)), packed.device).view(256, 2);
        using var index = packed.view(-1).to(ScalarType.Int32);
        var values = pairs.index_select(0, index).view(-1);
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
        using var index = codes.reshape(-1).to(ScalarType.Int32);
        var values = codeBook.index_select(0, index);
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
        // bitsandbytes' (codes * SCB) * 1/127 (this float32 constant), in place on the one float32 copy.
        var w = codes.to(ScalarType.Float32).mul_(rowAbsmax.view(-1, 1)).mul_(7.874015718698502e-3);
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

    /// <summary>Multiplies the decoded <paramref name="values"/> (float32, consumed: scaled in place) by their blocks'
    /// absmax and shapes the first n of them; copies only to pad a partial last block.</summary>
    private static Tensor ScaleBack(Tensor values, Tensor absmax, int blockSize, long[] shape, ScalarType dtype)
    {
        var n = shape.Aggregate(1L, (a, b) => a * b);
        var blocks = absmax.shape[0];
        if (values.numel() != blocks * blockSize)
            values = nn.functional.pad(values.narrow(0, 0, n), [0, blocks * blockSize - n]);
        values.view(blocks, blockSize).mul_(absmax.to(ScalarType.Float32).unsqueeze(1));
        return values.narrow(0, 0, n).view(shape).to(dtype);
    }

    /// <summary>The 256 x 2 values of every byte of packed 4-bit codes: (code[b &gt;&gt; 4], code[b &amp; 15]).</summary>
    private static float[] BytePairs(IReadOnlyList<float> codes) =>
        Enumerable.Range(0, 256).SelectMany(b => new[] { codes[b >> 4], codes[b & 15] }).ToArray();
}
