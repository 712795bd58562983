using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using SharpTune.Models;
using SharpTune.Models.Blocks;
using SharpTune.Quantization;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SharpTune.Generation;

/// <summary>
/// One-token decoding steps of a Llama-family causal LM (Llama, Qwen2) on the CPU at batch 1, as one loop over the
/// model's own weight memory: a tensor library spends several microseconds dispatching each of the ~15 ops per layer
/// and token, which dominates small models, while this step is a handful of vectorised matrix-vector products plus
/// norms, rotary and attention written in place. Weights are read where they are (fp32, or bitsandbytes' int8 and
/// 4-bit codes, never expanded), keys and values go straight into the <see cref="KeyValueCache"/> the prompt's
/// forward pass filled, so prefill stays a batched libtorch pass. Built by <see cref="TryCreate"/> only when every
/// piece is one it computes exactly like the libtorch path (a parity test holds the two together).
/// </summary>
internal sealed unsafe class CpuDecoder : IDisposable
{
    private readonly LlamaOptions _options;
    private readonly KeyValueCache _cache;
    private readonly Layer[] _layers;
    private readonly float* _embeddings;
    private readonly float* _finalNorm;
    private readonly Products _head;
    private readonly DecodeThreadPool _pool;
    private readonly Attention _attention;
    private readonly long _capacity;
    private readonly List<Tensor> _owned = [];
    private readonly float[] _cos, _sin;
    // Pinned (never moved by the GC), so the product groups hold their addresses for the decoder's lifetime.
    private readonly float[] _x, _normed, _q, _k, _v, _attended, _gate, _up, _logits;

    /// <summary>A layer's weights as the four parallel regions of a step: q/k/v and gate/up each share their input, so
    /// each pair or triple is one region.</summary>
    private sealed class Layer(float* inputNorm, float* postNorm, Products queryKeyValue, Products output, Products gateUp, Products down)
    {
        public readonly float* InputNorm = inputNorm, PostNorm = postNorm;
        public readonly Products QueryKeyValue = queryKeyValue, Output = output, GateUp = gateUp, Down = down;
    }

    private CpuDecoder(LlamaOptions options, KeyValueCache cache, Projection[][] layers, float*[] norms, float* embeddings, float* finalNorm,
        Projection head, int vocab, Tensor cos, Tensor sin)
    {
        _options = options;
        _cache = cache;
        _embeddings = embeddings;
        _finalNorm = finalNorm;
        _capacity = cache.Capacity;
        _cos = cos.data<float>().ToArray();
        _sin = sin.data<float>().ToArray();
        var hidden = options.HiddenSize;
        var attention = options.NumHeads * options.HeadDim;
        var kv = options.NumKeyValueHeads * options.HeadDim;
        _x = Pinned(hidden);
        _normed = Pinned(Math.Max(hidden, attention));
        _q = Pinned(attention);
        _k = Pinned(kv);
        _v = Pinned(kv);
        _attended = Pinned(attention);
        _gate = Pinned(options.IntermediateSize);
        _up = Pinned(options.IntermediateSize);
        _logits = Pinned(vocab);
        _pool = new DecodeThreadPool(get_num_threads());
        _attention = new Attention(options, _capacity, Address(_q), Address(_k), Address(_v), Address(_attended));
        _layers = layers.Select((p, i) => new Layer(norms[2 * i], norms[2 * i + 1],
            new Products([p[0], p[1], p[2]], Address(_normed), [Address(_q), Address(_k), Address(_v)]),
            new Products([p[3]], Address(_attended), [Address(_normed)]),
            new Products([p[4], p[5]], Address(_normed), [Address(_gate), Address(_up)]),
            new Products([p[6]], Address(_gate), [Address(_normed)]))).ToArray();
        _head = new Products([head], Address(_normed), [Address(_logits)]);
    }

    /// <summary>
    /// The fused decoder for <paramref name="model"/> writing into <paramref name="cache"/>, or null (with the reason)
    /// when it does not apply: not a Llama-family model, not on the CPU, not fp32, adapters (LoRA) still unmerged,
    /// a quantized layer computing in another dtype, or a CPU without AVX2/FMA. The model must not be modified or
    /// moved while the decoder lives (it reads the weights' memory).
    /// </summary>
    public static CpuDecoder? TryCreate(ICausalLM model, KeyValueCache cache, out string? reason)
    {
        reason = Check(model);
        if (reason is not null)
            return null;
        var causal = (LlamaForCausalLM)model;
        var options = ((LlamaModel)causal.Model).Options;
        var modules = causal.named_modules().ToDictionary(m => m.name, m => m.module);
        var owned = new List<Tensor>();
        try
        {
            Projection? Linear(string name) => modules.TryGetValue(name, out var module) ? Projection.From(module, owned) : null;

            var layers = new Projection[options.NumLayers][];
            var norms = new float*[2 * options.NumLayers];
            for (var i = 0; i < layers.Length; i++)
            {
                var prefix = $"model.layers.{i}.";
                var projections = new[] { "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj" }
                    .Select(n => Linear(prefix + n)).ToArray();
                if (projections.Any(p => p is null)
                    || modules.GetValueOrDefault(prefix + "input_layernorm") is not RMSNorm inputNorm
                    || modules.GetValueOrDefault(prefix + "post_attention_layernorm") is not RMSNorm postNorm
                    || NormWeight(inputNorm) == null || NormWeight(postNorm) == null)
                {
                    reason = $"layer {i} has a module the CPU decoder does not compute (e.g. an unmerged adapter)";
                    return null;
                }
                layers[i] = projections!;
                norms[2 * i] = NormWeight(inputNorm);
                norms[2 * i + 1] = NormWeight(postNorm);
            }
            var embeddings = causal.Model.InputEmbeddingWeight;
            var head = causal.IsTied ? Projection.From(embeddings, null) : Linear("lm_head");
            if (head is null || modules.GetValueOrDefault("model.norm") is not RMSNorm finalNorm || NormWeight(finalNorm) == null
                || !IsDenseFloat32(embeddings))
            {
                reason = "the embeddings, final norm or LM head are not plain fp32 modules";
                return null;
            }
            using var scope = NewDisposeScope();
            using var positions = arange(0, cache.Capacity, ScalarType.Int64).unsqueeze(0);
            var (cos, sin) = options.Rotary.Angles(positions, ScalarType.Float32);
            var decoder = new CpuDecoder(options, cache, layers, norms, Pointer(embeddings), NormWeight(finalNorm), head, causal.VocabSize,
                cos.contiguous(), sin.contiguous());
            decoder._owned.AddRange(owned);
            owned.Clear();
            return decoder;
        }
        finally
        {
            foreach (var tensor in owned)
                tensor.Dispose();
        }
    }

    private static string? Check(ICausalLM model)
    {
        if (!DecodeKernels.IsSupported)
            return "this CPU lacks AVX2/FMA";
        if (model is not LlamaForCausalLM { Model: LlamaModel llama } causal)
            return "only Llama-family models (Llama, Qwen2) have a fused CPU decoder";
        if (causal.parameters().Concat(causal.buffers()).Any(t => t.device_type != DeviceType.CPU))
            return "the model is not on the CPU";
        if (llama.Options.HiddenAct != "silu")
            return $"hidden_act '{llama.Options.HiddenAct}' (the fused decoder computes silu)";
        if (llama.Options.Rotary.Dimensions > llama.Options.HeadDim)
            return "rotary dimensions exceed head_dim";
        return null;
    }

    /// <summary>Runs token <paramref name="token"/> at the next cache position (after the prefill that allocated the
    /// cache), advances the cache and returns the logits (valid until the next step).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public ReadOnlySpan<float> Step(long token)
    {
        var position = _cache.Length;
        if (position >= _capacity)
            throw new InvalidOperationException($"key/value cache full: {position} cached, capacity {_capacity}");
        if (token < 0 || token >= _logits.Length)
            throw new ArgumentOutOfRangeException(nameof(token), token, $"token id outside the vocabulary of {_logits.Length}");
        var hidden = _options.HiddenSize;
        float* x = Address(_x), normed = Address(_normed);
        new ReadOnlySpan<float>(_embeddings + token * hidden, hidden).CopyTo(_x);
        for (var l = 0; l < _layers.Length; l++)
        {
            var layer = _layers[l];
            RmsNorm(x, layer.InputNorm, normed, hidden);
            layer.QueryKeyValue.Run(_pool);
            Rotate(Address(_q), _options.NumHeads, position);
            Rotate(Address(_k), _options.NumKeyValueHeads, position);
            _attention.Run(_pool, _cache, l, position);
            layer.Output.Run(_pool);
            Add(x, normed, hidden);
            RmsNorm(x, layer.PostNorm, normed, hidden);
            layer.GateUp.Run(_pool);
            SiluMultiply(Address(_gate), Address(_up), _options.IntermediateSize);
            layer.Down.Run(_pool);
            Add(x, normed, hidden);
        }
        RmsNorm(x, _finalNorm, normed, hidden);
        _head.Run(_pool);
        _cache.Advance(1);
        return _logits;
    }

    /// <summary>transformers' RMSNorm in float32: x · rsqrt(mean(x²) + eps) · weight.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void RmsNorm(float* x, float* weight, float* output, int n)
    {
        var meanSquare = DecodeKernels.Dot(x, x, n) / n;
        var scale = 1f / MathF.Sqrt(meanSquare + (float)_options.RmsNormEps);
        for (var i = 0; i < n; i++)
            output[i] = weight[i] * (x[i] * scale);
    }

    /// <summary>Rotary embedding of each head in place, "rotate half" layout over the first rotary dims.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void Rotate(float* vectors, int heads, long position)
    {
        var headDim = _options.HeadDim;
        var rotary = _options.Rotary.Dimensions;
        var half = rotary / 2;
        fixed (float* cosTable = _cos, sinTable = _sin)
        {
            float* cos = cosTable + position * rotary, sin = sinTable + position * rotary;
            for (var h = 0; h < heads; h++)
            {
                var head = vectors + h * headDim;
                for (var i = 0; i < half; i++)
                {
                    float a = head[i], b = head[i + half];
                    head[i] = a * cos[i] - b * sin[i];
                    head[i + half] = b * cos[i + half] + a * sin[i + half];
                }
            }
        }
    }

    /// <summary>Writes a position's keys/values into the cache, then softmax(q·K/√d)·V per query head (grouped query
    /// heads read their shared key/value head), query heads split over the pool's threads.</summary>
    private sealed class Attention : IRangeBody
    {
        private readonly int _heads, _kvHeads, _headDim;
        private readonly long _capacity;
        private readonly float _scale;
        private readonly float* _q, _k, _v, _output;
        private readonly float[] _scores;
        private float* _keys, _values;
        private int _length;

        public Attention(LlamaOptions options, long capacity, float* q, float* k, float* v, float* output)
        {
            (_heads, _kvHeads, _headDim, _capacity) = (options.NumHeads, options.NumKeyValueHeads, options.HeadDim, capacity);
            _scale = 1f / MathF.Sqrt(_headDim);
            _q = q;
            _k = k;
            _v = v;
            _output = output;
            _scores = Pinned((int)(_heads * capacity));
        }

        public void Run(DecodeThreadPool pool, KeyValueCache cache, int layer, long position)
        {
            var (keyBuffer, valueBuffer) = cache.Buffers(layer);
            if (keyBuffer is null || valueBuffer is null)
                throw new InvalidOperationException("the key/value cache holds no prefill: run the prompt through the model first");
            _keys = Pointer(keyBuffer);
            _values = Pointer(valueBuffer);
            for (var h = 0; h < _kvHeads; h++)
            {
                var slot = (h * _capacity + position) * _headDim;
                new ReadOnlySpan<float>(_k + h * _headDim, _headDim).CopyTo(new Span<float>(_keys + slot, _headDim));
                new ReadOnlySpan<float>(_v + h * _headDim, _headDim).CopyTo(new Span<float>(_values + slot, _headDim));
            }
            _length = (int)position + 1;
            pool.For(_heads, 2L * _length * _heads * _headDim, this);
        }

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void Run(int start, int end)
        {
            var headDim = _headDim;
            var groups = _heads / _kvHeads;
            for (var h = start; h < end; h++)
            {
                var query = _q + h * headDim;
                var kvOffset = h / groups * _capacity * headDim;
                float* keys = _keys + kvOffset, values = _values + kvOffset;
                var scores = Address(_scores) + h * _capacity;
                var max = float.NegativeInfinity;
                for (var t = 0; t < _length; t++)
                {
                    var s = DecodeKernels.Dot(query, keys + t * headDim, headDim) * _scale;
                    scores[t] = s;
                    max = MathF.Max(max, s);
                }
                var sum = 0f;
                for (var t = 0; t < _length; t++)
                    sum += scores[t] = MathF.Exp(scores[t] - max);
                var result = _output + h * headDim;
                new Span<float>(result, headDim).Clear();
                var inverse = 1f / sum;
                for (var t = 0; t < _length; t++)
                    DecodeKernels.AddScaled(result, scores[t] * inverse, values + t * headDim, headDim);
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Add(float* x, float* y, int n)
    {
        for (var i = 0; i < n; i++)
            x[i] += y[i];
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void SiluMultiply(float* gate, float* up, int n)
    {
        for (var i = 0; i < n; i++)
        {
            var g = gate[i];
            gate[i] = g / (1f + MathF.Exp(-g)) * up[i];
        }
    }

    public void Dispose()
    {
        _pool.Dispose();
        foreach (var tensor in _owned)
            tensor.Dispose();
        _owned.Clear();
    }

    private static float[] Pinned(int length) => GC.AllocateArray<float>(Math.Max(1, length), pinned: true);

    /// <summary>The first element of an array from <see cref="Pinned"/>.</summary>
    private static float* Address(float[] pinned) => (float*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(pinned));

    private static float* Pointer(Tensor tensor) => (float*)Address(tensor);

    /// <summary>The first byte of a CPU tensor's storage (its <c>bytes</c> span is a view of the native memory).</summary>
    private static void* Address(Tensor tensor) => Unsafe.AsPointer(ref MemoryMarshal.GetReference(tensor.bytes));

    private static bool IsDenseFloat32(Tensor tensor) => tensor.dtype == ScalarType.Float32 && tensor.is_contiguous() && tensor.device_type == DeviceType.CPU;

    private static float* NormWeight(RMSNorm norm) => IsDenseFloat32(norm.weight) ? Pointer(norm.weight) : null;

    /// <summary>A product's input x, and x split into its even and odd elements where a 4-bit weight reads it (see
    /// <see cref="DecodeKernels.SplitEvenOdd"/>).</summary>
    private readonly struct Input(float* x, float* even, float* odd)
    {
        public readonly float* X = x, Even = even, Odd = odd;
    }

    /// <summary>Products sharing one input, run as one parallel region whose rows are theirs end to end; inputs and
    /// outputs are fixed pinned buffers. The input is split for 4-bit weights once, before the rows are shared out.</summary>
    private sealed class Products : IRangeBody
    {
        private readonly Projection[] _parts;
        private readonly float*[] _outputs;
        private readonly float[]? _even, _odd;
        private readonly Input _input;
        private readonly int _rows;
        private readonly long _work;

        public Products(Projection[] parts, float* input, float*[] outputs)
        {
            (_parts, _outputs) = (parts, outputs);
            if (parts.Any(p => p is FourBit))
            {
                _even = Pinned(parts[0].Cols / 2);
                _odd = Pinned(parts[0].Cols / 2);
            }
            _input = _even is null ? new Input(input, null, null) : new Input(input, Address(_even), Address(_odd!));
            _rows = parts.Sum(p => p.Rows);
            _work = parts.Sum(p => (long)p.Rows * p.Cols);
        }

        public void Run(DecodeThreadPool pool)
        {
            if (_even is not null)
                DecodeKernels.SplitEvenOdd(_input.X, _input.Even, _input.Odd, _parts[0].Cols);
            pool.For(_rows, _work, this);
        }

        public void Run(int start, int end)
        {
            var offset = 0;
            for (var i = 0; i < _parts.Length && offset < end; i++)
            {
                var rows = _parts[i].Rows;
                int from = Math.Max(start, offset), to = Math.Min(end, offset + rows);
                if (from < to)
                    _parts[i].Compute(_input, _outputs[i], from - offset, to - offset);
                offset += rows;
            }
        }
    }

    /// <summary>One linear layer's product y = W x (+ b) over its stored weight.</summary>
    private abstract class Projection(int rows, int cols, float* bias)
    {
        public readonly int Rows = rows, Cols = cols;
        protected readonly float* BiasPointer = bias;

        public abstract void Compute(Input input, float* y, int start, int end);

        /// <summary>The product for a Linear, Linear8Bit or Linear4Bit computing in fp32, else null. Tensors created for
        /// it (scales) are added to <paramref name="owned"/>.</summary>
        public static Projection? From(nn.Module module, List<Tensor> owned)
        {
            switch (module)
            {
                case Linear linear when IsDenseFloat32(linear.weight!) && (linear.bias is null || IsDenseFloat32(linear.bias)):
                    return new Float32(linear.weight!, linear.bias is null ? null : Pointer(linear.bias));
                case QuantizedLinear quantized when quantized.ComputeDType == ScalarType.Float32
                                                    && (quantized.Bias is null || IsDenseFloat32(quantized.Bias)):
                    var bias = quantized.Bias is null ? null : Pointer(quantized.Bias);
                    return quantized switch
                    {
                        Linear8Bit int8 => Int8.Create(int8, bias, owned),
                        Linear4Bit fourBit when fourBit.InFeatures % 2 == 0 => FourBit.Create(fourBit, bias, owned),
                        _ => null,
                    };
                default:
                    return null;
            }
        }

        public static Projection? From(Tensor weight, float* bias) => IsDenseFloat32(weight) ? new Float32(weight, bias) : null;
    }

    private sealed class Float32(Tensor weight, float* bias) : Projection((int)weight.shape[0], (int)weight.shape[1], bias)
    {
        private readonly float* _weight = Pointer(weight);

        public override void Compute(Input input, float* y, int start, int end) =>
            DecodeKernels.Float32Rows(_weight, input.X, BiasPointer, y, Cols, start, end);
    }

    private sealed class Int8(int rows, int cols, sbyte* codes, float* scale, float* bias) : Projection(rows, cols, bias)
    {
        public static Int8? Create(Linear8Bit layer, float* bias, List<Tensor> owned)
        {
            var (codes, rowAbsmax) = layer.Storage;
            if (codes.dtype != ScalarType.Int8 || !codes.is_contiguous())
                return null;
            // bitsandbytes' dequantization is codes × SCB / 127: one scale per row.
            var scale = (rowAbsmax.to(ScalarType.Float32) * 7.874015718698502e-3f).contiguous().DetachFromDisposeScope();
            owned.Add(scale);
            return new Int8((int)layer.OutFeatures, (int)layer.InFeatures, (sbyte*)Address(codes), Pointer(scale), bias);
        }

        public override void Compute(Input input, float* y, int start, int end) =>
            DecodeKernels.Int8Rows(codes, scale, input.X, BiasPointer, y, Cols, start, end);
    }

    private sealed class FourBit(int rows, int cols, byte* packed, float* absmax, float[] codebook, int blockSize, float* bias)
        : Projection(rows, cols, bias)
    {
        private readonly float[] _codebook = codebook; // pinned; the kernel reads its address

        public static FourBit? Create(Linear4Bit layer, float* bias, List<Tensor> owned)
        {
            var packed = layer.PackedCodes;
            if (packed.dtype != ScalarType.Byte || !packed.is_contiguous() || layer.BlockSize % 2 != 0)
                return null;
            Tensor absmax;
            using (var scope = NewDisposeScope())
                absmax = layer.AbsmaxFloat().to(ScalarType.Float32).contiguous().clone().DetachFromDisposeScope();
            owned.Add(absmax);
            var codebook = Pinned(16);
            QuantCodebooks.FourBit(layer.QuantType).ToArray().CopyTo(codebook, 0);
            return new FourBit((int)layer.OutFeatures, (int)layer.InFeatures, (byte*)Address(packed), Pointer(absmax),
                codebook, layer.BlockSize, bias);
        }

        public override void Compute(Input input, float* y, int start, int end) =>
            DecodeKernels.FourBitRows(packed, absmax, Address(_codebook), blockSize, input.Even, input.Odd, BiasPointer, y, Cols, start, end);
    }
}
