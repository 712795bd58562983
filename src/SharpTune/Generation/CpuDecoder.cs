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
    private readonly Projection _head;
    private readonly int _threads;
    private readonly long _capacity;
    private readonly List<Tensor> _owned = [];
    private readonly float[] _cos, _sin;
    private readonly float[] _x, _normed, _q, _k, _v, _attended, _gate, _up, _scores, _logits;

    private sealed class Layer(float* inputNorm, float* postNorm, Projection query, Projection key, Projection value,
        Projection output, Projection gate, Projection up, Projection down)
    {
        public readonly float* InputNorm = inputNorm, PostNorm = postNorm;
        public readonly Projection Query = query, Key = key, Value = value, Output = output, Gate = gate, Up = up, Down = down;
    }

    private CpuDecoder(LlamaOptions options, KeyValueCache cache, Layer[] layers, float* embeddings, float* finalNorm, Projection head,
        int vocab, Tensor cos, Tensor sin)
    {
        _options = options;
        _cache = cache;
        _layers = layers;
        _embeddings = embeddings;
        _finalNorm = finalNorm;
        _head = head;
        _threads = Math.Max(1, get_num_threads());
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
        _scores = Pinned((int)(options.NumHeads * _capacity));
        _logits = Pinned(vocab);
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
            Projection? Linear(string name)
            {
                var projection = modules.TryGetValue(name, out var module) ? Projection.From(module, owned) : null;
                return projection;
            }

            var layers = new Layer[options.NumLayers];
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
                layers[i] = new Layer(NormWeight(inputNorm), NormWeight(postNorm), projections[0]!, projections[1]!, projections[2]!, projections[3]!,
                    projections[4]!, projections[5]!, projections[6]!);
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
            var decoder = new CpuDecoder(options, cache, layers, Pointer(embeddings), NormWeight(finalNorm), head, causal.VocabSize,
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
        fixed (float* x = _x, normed = _normed, q = _q, k = _k, v = _v, attended = _attended, gate = _gate, up = _up, logits = _logits)
        {
            new ReadOnlySpan<float>(_embeddings + token * hidden, hidden).CopyTo(_x);
            for (var l = 0; l < _layers.Length; l++)
            {
                var layer = _layers[l];
                RmsNorm(x, layer.InputNorm, normed, hidden);
                layer.Query.Run(normed, q, _threads);
                layer.Key.Run(normed, k, _threads);
                layer.Value.Run(normed, v, _threads);
                Rotate(q, _options.NumHeads, position);
                Rotate(k, _options.NumKeyValueHeads, position);
                Attend(l, q, k, v, attended, position);
                layer.Output.Run(attended, normed, _threads);
                Add(x, normed, hidden);
                RmsNorm(x, layer.PostNorm, normed, hidden);
                layer.Gate.Run(normed, gate, _threads);
                layer.Up.Run(normed, up, _threads);
                SiluMultiply(gate, up, _options.IntermediateSize);
                layer.Down.Run(gate, normed, _threads);
                Add(x, normed, hidden);
            }
            RmsNorm(x, _finalNorm, normed, hidden);
            _head.Run(normed, logits, _threads);
        }
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

    /// <summary>Writes this position's keys/values into the cache, then softmax(q·K/√d)·V per query head (grouped
    /// query heads read their shared key/value head).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void Attend(int layer, float* q, float* k, float* v, float* output, long position)
    {
        var (keyBuffer, valueBuffer) = _cache.Buffers(layer);
        if (keyBuffer is null || valueBuffer is null)
            throw new InvalidOperationException("the key/value cache holds no prefill: run the prompt through the model first");
        var headDim = _options.HeadDim;
        var kvHeads = _options.NumKeyValueHeads;
        var keys = Pointer(keyBuffer);
        var values = Pointer(valueBuffer);
        for (var h = 0; h < kvHeads; h++)
        {
            var slot = (h * _capacity + position) * headDim;
            new ReadOnlySpan<float>(k + h * headDim, headDim).CopyTo(new Span<float>(keys + slot, headDim));
            new ReadOnlySpan<float>(v + h * headDim, headDim).CopyTo(new Span<float>(values + slot, headDim));
        }
        var heads = _options.NumHeads;
        var groups = heads / kvHeads;
        var length = (int)position + 1;
        var scale = 1f / MathF.Sqrt(headDim);
        var capacity = _capacity;
        fixed (float* scoreBuffer = _scores)
        {
            var scoresBase = scoreBuffer;
            [MethodImpl(MethodImplOptions.AggressiveOptimization)]
            void Head(int h)
            {
                var query = q + h * headDim;
                var kvOffset = h / groups * capacity * headDim;
                var scores = scoresBase + h * capacity;
                var max = float.NegativeInfinity;
                for (var t = 0; t < length; t++)
                {
                    var s = DecodeKernels.Dot(query, keys + kvOffset + t * headDim, headDim) * scale;
                    scores[t] = s;
                    max = MathF.Max(max, s);
                }
                var sum = 0f;
                for (var t = 0; t < length; t++)
                    sum += scores[t] = MathF.Exp(scores[t] - max);
                var result = output + h * headDim;
                new Span<float>(result, headDim).Clear();
                var inverse = 1f / sum;
                for (var t = 0; t < length; t++)
                    DecodeKernels.AddScaled(result, scores[t] * inverse, values + kvOffset + t * headDim, headDim);
            }

            if (_threads > 1 && (long)length * heads * headDim >= 1 << 16)
                Parallel.For(0, heads, new ParallelOptions { MaxDegreeOfParallelism = _threads }, Head);
            else
                for (var h = 0; h < heads; h++)
                    Head(h);
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
        foreach (var tensor in _owned)
            tensor.Dispose();
        _owned.Clear();
    }

    private static float[] Pinned(int length) => GC.AllocateArray<float>(Math.Max(1, length), pinned: true);

    private static float* Pointer(Tensor tensor) => (float*)Address(tensor);

    /// <summary>The first byte of a CPU tensor's storage (its <c>bytes</c> span is a view of the native memory).</summary>
    private static void* Address(Tensor tensor) => Unsafe.AsPointer(ref MemoryMarshal.GetReference(tensor.bytes));

    private static bool IsDenseFloat32(Tensor tensor) => tensor.dtype == ScalarType.Float32 && tensor.is_contiguous() && tensor.device_type == DeviceType.CPU;

    private static float* NormWeight(RMSNorm norm) => IsDenseFloat32(norm.weight) ? Pointer(norm.weight) : null;

    /// <summary>One linear layer's product y = W x (+ b) over its stored weight.</summary>
    private abstract class Projection(int rows, int cols, float* bias)
    {
        protected readonly int Rows = rows, Cols = cols;
        protected readonly float* BiasPointer = bias;

        public void Run(float* x, float* y, int threads) =>
            DecodeKernels.ForRows(Rows, (long)Rows * Cols, threads, (start, end) => Compute(x, y, start, end));

        protected abstract void Compute(float* x, float* y, int start, int end);

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

        protected override void Compute(float* x, float* y, int start, int end) =>
            DecodeKernels.Float32Rows(_weight, x, BiasPointer, y, Cols, start, end);
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

        protected override void Compute(float* x, float* y, int start, int end) =>
            DecodeKernels.Int8Rows(codes, scale, x, BiasPointer, y, Cols, start, end);
    }

    private sealed class FourBit(int rows, int cols, byte* packed, float* absmax, double* pairs, int blockSize, float* bias)
        : Projection(rows, cols, bias)
    {
        public static FourBit? Create(Linear4Bit layer, float* bias, List<Tensor> owned)
        {
            var packed = layer.PackedCodes;
            if (packed.dtype != ScalarType.Byte || !packed.is_contiguous())
                return null;
            Tensor absmax;
            using (var scope = NewDisposeScope())
                absmax = layer.AbsmaxFloat().to(ScalarType.Float32).contiguous().clone().DetachFromDisposeScope();
            owned.Add(absmax);
            var codes = QuantCodebooks.FourBit(layer.QuantType);
            var pairValues = Enumerable.Range(0, 256).SelectMany(b => new[] { codes[b >> 4], codes[b & 15] }).ToArray();
            var pairs = tensor(pairValues, ScalarType.Float32).DetachFromDisposeScope();
            owned.Add(pairs);
            return new FourBit((int)layer.OutFeatures, (int)layer.InFeatures, (byte*)Address(packed), Pointer(absmax),
                (double*)Address(pairs), layer.BlockSize, bias);
        }

        protected override void Compute(float* x, float* y, int start, int end) =>
            DecodeKernels.FourBitRows(packed, absmax, pairs, blockSize, x, BiasPointer, y, Cols, start, end);
    }
}
