using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SharpTune.Quantization;

/// <summary>
/// A drop-in replacement for <see cref="Linear"/> that stores its weight quantized and dequantizes it on the fly into
/// <see cref="ComputeDType"/> for each forward pass (inputs are cast to it, outputs back to the input's dtype, as in
/// bitsandbytes). The quantized tensors are buffers named with bitsandbytes' state-dict keys, so
/// <c>SavePretrained</c>/<c>LoadWeights</c> read and write bitsandbytes-compatible checkpoints. Gradients flow to the
/// input (and to adapters around the layer), never to the frozen quantized weight.
/// </summary>
public abstract class QuantizedLinear : nn.Module<Tensor, Tensor>
{
    protected QuantizedLinear(string name, long inFeatures, long outFeatures, Tensor? bias, ScalarType computeDType) : base(name)
    {
        InFeatures = inFeatures;
        OutFeatures = outFeatures;
        ComputeDType = computeDType;
        if (bias is not null)
            register_parameter("bias", new Parameter(bias.detach().clone(), requires_grad: false));
    }

    public long InFeatures { get; }
    public long OutFeatures { get; }

    /// <summary>The dtype the weight is dequantized into and the matmul runs in (bitsandbytes' compute dtype).</summary>
    public ScalarType ComputeDType { get; set; }

    public Parameter? Bias => _internal_params.TryGetValue("bias", out var bias) ? bias : null;

    /// <summary>The full-precision weight [out, in] reconstructed from the quantized storage.</summary>
    public abstract Tensor DequantizeWeight(ScalarType dtype);

    /// <summary>Re-quantizes this layer from a new full-precision weight (e.g. after merging an adapter into it).</summary>
    public abstract void Requantize(Tensor weight);

    /// <summary>Bytes of the quantized weight storage: codes and scales, without the data type's shared code book.</summary>
    public abstract long WeightStorageBytes { get; }

    /// <summary>Bytes of the code book(s) of the data type (a constant per layer, not per parameter).</summary>
    public abstract long CodeBookBytes { get; }

    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        var x = input.to(ComputeDType);
        var weight = DequantizeWeight(ComputeDType);
        var bias = Bias?.to(ComputeDType);
        return nn.functional.linear(x, weight, bias).to(input.dtype).MoveToOuterDisposeScope();
    }

    /// <summary>The current buffer of that name (buffers are replaced when the module moves between devices).</summary>
    protected Tensor Buffer(string name) => _internal_buffers[name].Item1;

    protected void SetBuffer(string name, Tensor value)
    {
        if (_internal_buffers.TryGetValue(name, out var old))
            old.Item1.Dispose();
        ConditionallyRegisterBuffer(name, value.DetachFromDisposeScope());
    }

    /// <summary>Quantization constants keep their dtypes (float32 scales, integer codes) whatever dtype the model is cast
    /// to, and only move between devices; the bias follows the model's dtype.</summary>
    protected override void _toEpilog(ScalarType? dtype, Device? device, bool non_blocking)
    {
        if (device is not null)
            base._toEpilog(null, device, non_blocking);
        if (dtype is { } target && Bias is { } bias && ReplaceParameter(target, null, bias, out var converted))
        {
            bias.Dispose();
            ConditionallyRegisterParameter("bias", converted);
        }
    }

    /// <summary>The quantized replacement of <paramref name="linear"/> (whose tensors are left untouched).</summary>
    public static QuantizedLinear FromLinear(Linear linear, QuantizationOptions options) =>
        FromWeight(linear.weight, linear.bias, options);

    public static QuantizedLinear FromWeight(Tensor weight, Tensor? bias, QuantizationOptions options) => options.Bits switch
    {
        4 => Linear4Bit.Quantize(weight, bias, options),
        8 => Linear8Bit.Quantize(weight, bias, options.ComputeDType),
        _ => throw new ArgumentException($"unsupported quantization bits {options.Bits} (expected 4 or 8)"),
    };
}
