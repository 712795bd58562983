using SharpTune.Quantization;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SharpTune.Peft;

/// <summary>Named sub-modules that can be added and removed after construction (peft's per-adapter ModuleDicts).</summary>
public sealed class AdapterSet<T> : nn.Module where T : nn.Module
{
    private readonly Dictionary<string, T> _items = new(StringComparer.Ordinal);

    public AdapterSet() : base(nameof(AdapterSet<T>))
    {
    }

    public T this[string name] => _items[name];
    public bool Contains(string name) => _items.ContainsKey(name);
    public IEnumerable<string> Names => _items.Keys;

    public void Add(string name, T module)
    {
        _items.Add(name, module);
        register_module(name, module);
    }

    public void Remove(string name)
    {
        if (!_items.Remove(name, out var module))
            return;
        register_module(name, null!); // unregisters
        module.Dispose();
    }
}

/// <summary>
/// A linear layer with LoRA adapters (peft's <c>lora.Linear</c>, or <c>lora.Linear4bit</c> over a
/// <see cref="QuantizedLinear"/> base): y = base(x) + Σ_active B(A(dropout(x))) · scaling. Children are named like
/// peft's (<c>base_layer</c>, <c>lora_A.&lt;adapter&gt;</c>, <c>lora_B.&lt;adapter&gt;</c>, <c>lora_dropout.&lt;adapter&gt;</c>).
/// Adapter weights are float32 (peft's autocast_adapter_dtype) on the base layer's device.
/// </summary>
public sealed class LoraLinear : nn.Module<Tensor, Tensor>
{
    private readonly AdapterSet<Linear> _loraA = new();
    private readonly AdapterSet<Linear> _loraB = new();
    private readonly AdapterSet<nn.Module<Tensor, Tensor>> _dropout = new();
    private readonly Dictionary<string, double> _scaling = new(StringComparer.Ordinal);
    private readonly List<string> _merged = [];

    public LoraLinear(nn.Module<Tensor, Tensor> baseLayer) : base(nameof(LoraLinear))
    {
        if (baseLayer is not (Linear or QuantizedLinear))
            throw new NotSupportedException($"LoRA wraps Linear and QuantizedLinear layers, not {baseLayer.GetType().Name}");
        BaseLayer = baseLayer;
        (InFeatures, OutFeatures) = baseLayer is Linear linear
            ? (linear.in_features, linear.out_features)
            : (((QuantizedLinear)baseLayer).InFeatures, ((QuantizedLinear)baseLayer).OutFeatures);
        register_module("base_layer", baseLayer);
        register_module("lora_dropout", _dropout);
        register_module("lora_A", _loraA);
        register_module("lora_B", _loraB);
    }

    public nn.Module<Tensor, Tensor> BaseLayer { get; }
    public long InFeatures { get; }
    public long OutFeatures { get; }

    /// <summary>Adapters added to the output, in order (peft's active_adapters).</summary>
    public IReadOnlyList<string> ActiveAdapters { get; set; } = [];

    /// <summary>Adapters currently merged into the base weight.</summary>
    public IReadOnlyList<string> MergedAdapters => _merged;

    /// <summary>Skips every adapter (peft's disable_adapter context).</summary>
    public bool Disabled { get; set; }

    public IEnumerable<string> Adapters => _loraA.Names;

    public Linear LoraA(string adapter) => _loraA[adapter];
    public Linear LoraB(string adapter) => _loraB[adapter];
    public double Scaling(string adapter) => _scaling[adapter];

    /// <summary>peft's update_layer: A [r, in] Kaiming-uniform (a = √5), B [out, r] zero unless <paramref name="initBZero"/> is false.</summary>
    public void AddAdapter(string name, int rank, double scaling, double dropout, bool initBZero)
    {
        var device = BaseDevice();
        var a = nn.Linear(InFeatures, rank, hasBias: false, device: device, dtype: ScalarType.Float32);
        var b = nn.Linear(rank, OutFeatures, hasBias: false, device: device, dtype: ScalarType.Float32);
        if (initBZero)
            using (no_grad())
                b.weight.zero_();
        _loraA.Add(name, a);
        _loraB.Add(name, b);
        _dropout.Add(name, dropout > 0 ? nn.Dropout(dropout) : nn.Identity());
        _scaling[name] = scaling;
    }

    public void DeleteAdapter(string name)
    {
        if (_merged.Contains(name))
            throw new InvalidOperationException($"adapter '{name}' is merged; unmerge it before deleting it");
        _loraA.Remove(name);
        _loraB.Remove(name);
        _dropout.Remove(name);
        _scaling.Remove(name);
        ActiveAdapters = ActiveAdapters.Where(a => a != name).ToList();
    }

    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        var result = BaseLayer.forward(input);
        if (!Disabled)
        {
            foreach (var name in ActiveAdapters)
            {
                if (_merged.Contains(name))
                    continue;
                var a = _loraA[name];
                var x = _dropout[name].forward(input.to(a.weight.dtype));
                var update = _loraB[name].forward(a.forward(x)) * _scaling[name];
                result = result + update.to(result.dtype);
            }
        }
        return result.MoveToOuterDisposeScope();
    }

    /// <summary>B·A·scaling, [out, in], float32.</summary>
    public Tensor DeltaWeight(string adapter)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        return (matmul(_loraB[adapter].weight, _loraA[adapter].weight) * _scaling[adapter]).MoveToOuterDisposeScope();
    }

    /// <summary>Adds the adapter's update into the base weight (a quantized base is dequantized, updated and re-quantized,
    /// as peft does for bitsandbytes layers).</summary>
    public void Merge(string adapter)
    {
        if (_merged.Contains(adapter))
            return;
        using var delta = DeltaWeight(adapter);
        UpdateBaseWeight(delta, 1);
        _merged.Add(adapter);
    }

    /// <summary>Subtracts a merged adapter's update again (exact up to rounding for float bases, lossy for quantized ones).</summary>
    public void Unmerge(string adapter)
    {
        if (!_merged.Remove(adapter))
            return;
        using var delta = DeltaWeight(adapter);
        UpdateBaseWeight(delta, -1);
    }

    private void UpdateBaseWeight(Tensor delta, double sign)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        switch (BaseLayer)
        {
            case Linear linear:
                linear.weight.add_((delta * sign).to(linear.weight.dtype));
                break;
            case QuantizedLinear quantized:
                quantized.Requantize(quantized.DequantizeWeight(ScalarType.Float32) + delta * sign);
                break;
        }
    }

    /// <summary>Detaches the base layer (so it survives) and disposes the adapters (unloading).</summary>
    public void ReleaseBaseAndDispose()
    {
        register_module("base_layer", null!); // unregisters, so disposing this module leaves the base layer alive
        Dispose();
    }

    private Device BaseDevice() => BaseLayer.parameters().Select(p => p.device).Concat(BaseLayer.buffers().Select(b => b.device)).First();
}
