using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using SharpTune.Engine;
using SharpTune.IO;
using static TorchSharp.torch;

namespace SharpTune.Quantization;

/// <summary>
/// A linear layer with a blockwise 4-bit (NF4/FP4) weight, bitsandbytes' <c>Linear4bit</c>. Buffers (= checkpoint keys):
/// <c>weight</c> (packed uint8 [ceil(n/2), 1]), <c>weight.absmax</c> (float32 per block, or uint8 codes with double
/// quantization), <c>weight.quant_map</c> (the 16-value code book), with double quantization
/// <c>weight.nested_absmax</c> (float32 per 256 absmax) and <c>weight.nested_quant_map</c> (dynamic 8-bit map), and
/// <c>weight.quant_state.bitsandbytes__nf4|fp4</c> (the JSON of the non-tensor state as uint8 bytes).
/// </summary>
public sealed class Linear4Bit : QuantizedLinear
{
    public const int NestedBlockSize = 256;
    private const string Packed = "weight", Absmax = "weight.absmax", QuantMap = "weight.quant_map",
        NestedAbsmax = "weight.nested_absmax", NestedQuantMap = "weight.nested_quant_map";

    private readonly string _originalDType;

    private Linear4Bit(long inFeatures, long outFeatures, Tensor? bias, FourBitType type, int blockSize, bool doubleQuant,
        string originalDType, ScalarType computeDType)
        : base(nameof(Linear4Bit), inFeatures, outFeatures, bias, computeDType)
    {
        QuantType = type;
        BlockSize = blockSize;
        DoubleQuant = doubleQuant;
        _originalDType = originalDType;
    }

    public FourBitType QuantType { get; }
    public int BlockSize { get; }
    public bool DoubleQuant { get; }

    /// <summary>Mean of the absmax constants, subtracted before their 8-bit quantization (double quantization only).</summary>
    public double NestedOffset { get; private set; }

    public static string QuantStateKey(FourBitType type) => "weight.quant_state.bitsandbytes__" + QuantCodebooks.Name(type);

    public static Linear4Bit Quantize(Tensor weight, Tensor? bias, QuantizationOptions options)
    {
        if (weight.dim() != 2)
            throw new ArgumentException($"a linear weight must be 2-D, got [{string.Join(", ", weight.shape)}]");
        var layer = new Linear4Bit(weight.shape[1], weight.shape[0], bias, options.QuantType, options.BlockSize, options.DoubleQuant,
            TorchRuntime.DTypeName(weight.dtype), options.ComputeDType);
        layer.Store(weight);
        return layer;
    }

    /// <summary>Rebuilds the layer saved under <paramref name="prefix"/> (e.g. "model.layers.0.mlp.up_proj") in a
    /// bitsandbytes checkpoint.</summary>
    public static Linear4Bit Load(Checkpoint checkpoint, string prefix, ScalarType computeDType)
    {
        var stateKey = new[] { FourBitType.Nf4, FourBitType.Fp4 }.Select(t => $"{prefix}.{QuantStateKey(t)}").FirstOrDefault(checkpoint.Contains)
                       ?? throw new InvalidDataException($"{checkpoint.Directory}: no 4-bit quant_state for '{prefix}'");
        JsonObject state;
        using (var bytes = checkpoint.Load(stateKey))
            state = JsonNode.Parse(Encoding.UTF8.GetString(bytes.data<byte>().ToArray())) as JsonObject
                    ?? throw new InvalidDataException($"{checkpoint.Directory}: '{stateKey}' is not a JSON object");
        var shape = state["shape"]?.AsArray().Select(n => n!.GetValue<long>()).ToArray() ?? [];
        if (shape.Length != 2)
            throw new InvalidDataException($"{checkpoint.Directory}: '{stateKey}' has no 2-D shape");
        var nested = checkpoint.Contains($"{prefix}.{NestedAbsmax}");
        var biasKey = $"{prefix}.bias";
        using var bias = checkpoint.Contains(biasKey) ? checkpoint.Load(biasKey) : null;
        var layer = new Linear4Bit(shape[1], shape[0], bias, QuantCodebooks.ParseFourBit(state["quant_type"]!.GetValue<string>()),
            state["blocksize"]!.GetValue<int>(), nested, state["dtype"]?.GetValue<string>() ?? "float32", computeDType);
        foreach (var name in layer.BufferNames())
            if (name != QuantStateKey(layer.QuantType))
                layer.register_buffer(name, checkpoint.Load($"{prefix}.{name}"));
        if (nested)
        {
            if (state["nested_blocksize"]?.GetValue<int>() is { } nestedBlock and not NestedBlockSize)
                throw new InvalidDataException($"{checkpoint.Directory}: '{stateKey}' has nested_blocksize {nestedBlock}, SharpTune reads {NestedBlockSize}");
            layer.NestedOffset = state["nested_offset"]!.GetValue<double>();
        }
        layer.register_buffer(QuantStateKey(layer.QuantType), layer.StateTensor());
        // bitsandbytes decodes with its built-in table whatever quant_map says; a different one means a damaged file.
        using (var map = layer.Buffer(QuantMap).to(ScalarType.Float32, CPU))
            if (!map.data<float>().SequenceEqual(QuantCodebooks.FourBit(layer.QuantType)))
                throw new InvalidDataException($"{checkpoint.Directory}: '{prefix}.{QuantMap}' is not the {QuantCodebooks.Name(layer.QuantType)} code book");
        return layer;
    }

    public override Tensor DequantizeWeight(ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        return Blockwise.Dequantize4Bit(Buffer(Packed), AbsmaxFloat(), QuantType, BlockSize, [OutFeatures, InFeatures], dtype)
            .MoveToOuterDisposeScope();
    }

    public override void Requantize(Tensor weight)
    {
        if (weight.shape[0] != OutFeatures || weight.shape[1] != InFeatures)
            throw new ArgumentException($"weight of shape [{string.Join(", ", weight.shape)}] does not fit a {OutFeatures}x{InFeatures} layer");
        Store(weight);
    }

    public override long WeightStorageBytes =>
        Buffer(Packed).NumberOfElements + Buffer(Absmax).NumberOfElements * Buffer(Absmax).ElementSize
        + (DoubleQuant ? Buffer(NestedAbsmax).NumberOfElements * 4 + 4 : 0); // + the float32 offset

    public override long CodeBookBytes => 16 * 4 + (DoubleQuant ? 256 * 4 : 0);

    /// <summary>The packed codes [ceil(n/2), 1] (high nibble first), for kernels that compute on them directly.</summary>
    internal Tensor PackedCodes => Buffer(Packed);

    /// <summary>The float32 absmax of every block (dequantizing the 8-bit constants with double quantization).</summary>
    internal Tensor AbsmaxFloat()
    {
        if (!DoubleQuant)
            return Buffer(Absmax);
        using var scope = NewDisposeScope();
        var absmax = Blockwise.DequantizeBlockwise(Buffer(Absmax), Buffer(NestedAbsmax), Buffer(NestedQuantMap), NestedBlockSize).add_(NestedOffset);
        return absmax.MoveToOuterDisposeScope();
    }

    private IEnumerable<string> BufferNames() => DoubleQuant
        ? [Packed, Absmax, QuantMap, NestedAbsmax, NestedQuantMap, QuantStateKey(QuantType)]
        : [Packed, Absmax, QuantMap, QuantStateKey(QuantType)];

    private void Store(Tensor weight)
    {
        using var scope = NewDisposeScope();
        var device = weight.device;
        var (packed, absmax) = Blockwise.Quantize4Bit(weight, QuantType, BlockSize);
        SetBuffer(Packed, packed);
        SetBuffer(QuantMap, Blockwise.Table(QuantCodebooks.Name(QuantType), () => QuantCodebooks.FourBit(QuantType), device).clone());
        if (DoubleQuant)
        {
            // bitsandbytes' compress_statistics: the absmax constants minus their mean, quantized blockwise (256) to the
            // signed dynamic 8-bit map.
            var offset = absmax.mean();
            NestedOffset = offset.item<float>();
            var nestedMap = Blockwise.Table("dynamic-signed", () => QuantCodebooks.Dynamic8Bit(signed: true), device);
            var (codes, nestedAbsmax) = Blockwise.QuantizeBlockwise(absmax - offset, nestedMap, NestedBlockSize);
            SetBuffer(Absmax, codes);
            SetBuffer(NestedAbsmax, nestedAbsmax);
            SetBuffer(NestedQuantMap, nestedMap.clone());
        }
        else
            SetBuffer(Absmax, absmax);
        SetBuffer(QuantStateKey(QuantType), StateTensor());
    }

    /// <summary>The non-tensor state as bitsandbytes packs it: <c>json.dumps</c> of a dict, as uint8 bytes.</summary>
    private Tensor StateTensor()
    {
        var json = new StringBuilder()
            .Append($"{{\"quant_type\": \"{QuantCodebooks.Name(QuantType)}\", \"blocksize\": {BlockSize}, \"dtype\": \"{_originalDType}\", ")
            .Append($"\"shape\": [{OutFeatures}, {InFeatures}]");
        if (DoubleQuant)
            json.Append($", \"nested_blocksize\": {NestedBlockSize}, \"nested_dtype\": \"float32\", \"nested_offset\": {PythonFloat(NestedOffset)}");
        json.Append('}');
        return tensor(Encoding.UTF8.GetBytes(json.ToString()), ScalarType.Byte);
    }

    /// <summary>A double written as Python's <c>repr</c> does (shortest round trip, "1.0", "1e-05").</summary>
    private static string PythonFloat(double value)
    {
        var text = value.ToString("R", CultureInfo.InvariantCulture).Replace("E", "e", StringComparison.Ordinal);
        return text.Contains('.') || text.Contains('e') || text.Contains('N') || text.Contains('I') ? text : text + ".0";
    }
}
