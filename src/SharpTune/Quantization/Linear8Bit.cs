using SharpTune.IO;
using static TorchSharp.torch;

namespace SharpTune.Quantization;

/// <summary>
/// A linear layer with an int8 weight quantized per output row by its absolute maximum (the weight format of
/// bitsandbytes' <c>Linear8bitLt</c>). Buffers (= checkpoint keys): <c>weight</c> (int8 [out, in]), <c>SCB</c> (float32
/// row absmax) and <c>weight_format</c> (uint8 0 = row-major, as bitsandbytes writes it). The weight is dequantized for
/// the matmul (weight-only quantization; no int8 matmul with outlier decomposition).
/// </summary>
public sealed class Linear8Bit : QuantizedLinear
{
    private const string Codes = "weight", RowAbsmax = "SCB", WeightFormat = "weight_format";

    private Linear8Bit(long inFeatures, long outFeatures, Tensor? bias, ScalarType computeDType)
        : base(nameof(Linear8Bit), inFeatures, outFeatures, bias, computeDType)
    {
    }

    public static Linear8Bit Quantize(Tensor weight, Tensor? bias, ScalarType computeDType)
    {
        if (weight.dim() != 2)
            throw new ArgumentException($"a linear weight must be 2-D, got [{string.Join(", ", weight.shape)}]");
        var layer = new Linear8Bit(weight.shape[1], weight.shape[0], bias, computeDType);
        layer.Store(weight);
        return layer;
    }

    public static Linear8Bit Load(Checkpoint checkpoint, string prefix, ScalarType computeDType)
    {
        var info = checkpoint.Info($"{prefix}.{Codes}");
        if (info.DType != "I8" || info.Shape.Length != 2)
            throw new InvalidDataException($"{checkpoint.Directory}: '{prefix}.{Codes}' is not a 2-D int8 tensor");
        if (checkpoint.Contains($"{prefix}.{WeightFormat}"))
        {
            using var format = checkpoint.Load($"{prefix}.{WeightFormat}");
            if (format.to(ScalarType.Int64).item<long>() != 0)
                throw new InvalidDataException($"{checkpoint.Directory}: '{prefix}.{WeightFormat}' is not 0 (row-major), the only format SharpTune reads");
        }
        var biasKey = $"{prefix}.bias";
        using var bias = checkpoint.Contains(biasKey) ? checkpoint.Load(biasKey) : null;
        var layer = new Linear8Bit(info.Shape[1], info.Shape[0], bias, computeDType);
        layer.register_buffer(Codes, checkpoint.Load($"{prefix}.{Codes}"));
        layer.register_buffer(RowAbsmax, checkpoint.Load($"{prefix}.{RowAbsmax}").to(ScalarType.Float32));
        layer.register_buffer(WeightFormat, tensor((byte)0));
        return layer;
    }

    public override Tensor DequantizeWeight(ScalarType dtype) => Blockwise.DequantizeInt8Rows(Buffer(Codes), Buffer(RowAbsmax), dtype);

    public override void Requantize(Tensor weight)
    {
        if (weight.shape[0] != OutFeatures || weight.shape[1] != InFeatures)
            throw new ArgumentException($"weight of shape [{string.Join(", ", weight.shape)}] does not fit a {OutFeatures}x{InFeatures} layer");
        Store(weight);
    }

    public override long WeightStorageBytes => Buffer(Codes).NumberOfElements + Buffer(RowAbsmax).NumberOfElements * 4;

    /// <summary>The int8 codes [out, in] and float32 row absmax, for kernels that compute on them directly.</summary>
    internal (Tensor Codes, Tensor RowAbsmax) Storage => (Buffer(Codes), Buffer(RowAbsmax));

    public override long CodeBookBytes => 0;

    private void Store(Tensor weight)
    {
        var (codes, rowAbsmax) = Blockwise.QuantizeInt8Rows(weight);
        SetBuffer(Codes, codes);
        SetBuffer(RowAbsmax, rowAbsmax);
        SetBuffer(WeightFormat, tensor((byte)0, device: weight.device));
    }
}
