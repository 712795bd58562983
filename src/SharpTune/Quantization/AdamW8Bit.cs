using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SharpTune.Quantization;

/// <summary>
/// AdamW with 8-bit optimizer states (bitsandbytes' <c>AdamW8bit</c>): both moments are stored blockwise-quantized
/// (blocks of 256; the first moment on the signed, the second on the unsigned dynamic 8-bit map), i.e. ~2 bytes per
/// parameter instead of 8. Each step dequantizes a parameter's moments, applies exactly torch's AdamW update in
/// float32 and re-quantizes them. Parameters smaller than <c>minEightBitSize</c> keep float32 states (bitsandbytes'
/// min_8bit_size). A TorchSharp <see cref="AdamW"/>: same options, parameter groups and learning-rate schedulers.
/// </summary>
public sealed class AdamW8Bit : AdamW
{
    public const int BlockSize = 256;

    private readonly long _minEightBitSize;
    private readonly bool _constructed;

    public AdamW8Bit(IEnumerable<Parameter> parameters, double lr = 1e-3, double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8,
        double weight_decay = 1e-2, long minEightBitSize = 4096)
        : this([new ParamGroup { Parameters = parameters }], lr, beta1, beta2, eps, weight_decay, minEightBitSize)
    {
    }

    public AdamW8Bit(IEnumerable<ParamGroup> groups, double lr = 1e-3, double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8,
        double weight_decay = 1e-2, long minEightBitSize = 4096)
        : base(groups, lr, beta1, beta2, eps, weight_decay)
    {
        _minEightBitSize = minEightBitSize;
        // The base class created float32 moments; replace them by quantized ones.
        foreach (var group in _parameter_groups)
            foreach (var parameter in group.Parameters)
                ReplaceState(parameter);
        _constructed = true;
    }

    public override void add_param_group(TorchSharp.Modules.ParamGroup param_group)
    {
        base.add_param_group(param_group);
        if (_constructed) // the constructor replaces the states of its own groups once the settings are known
            foreach (var parameter in param_group.Parameters)
                ReplaceState(parameter);
    }

    /// <summary>Bytes held by the optimizer states.</summary>
    public long StateBytes => _state.values().OfType<QuantizedState>().Sum(s => s.Bytes);

    public override Tensor step(Func<Tensor>? closure = null) => _step<ParamGroup>(group =>
    {
        var options = (Options)group.Options;
        var (beta1, beta2, eps, decay, lr) = (options.beta1!.Value, options.beta2!.Value, options.eps!.Value, options.weight_decay!.Value, options.LearningRate!.Value);
        foreach (var parameter in group.Parameters)
        {
            if (parameter.grad is not { } grad)
                continue;
            using var scope = NewDisposeScope();
            var state = (QuantizedState)_state[parameter.Handle];
            state.Step += 1;
            var (m, v) = state.Moments();
            parameter.mul_(1 - lr * decay);
            var correction1 = 1 - Math.Pow(beta1, state.Step);
            var correction2 = 1 - Math.Pow(beta2, state.Step);
            m.mul_(beta1).add_(grad, alpha: 1 - beta1);
            v.mul_(beta2).addcmul_(grad, grad, value: 1 - beta2);
            var denom = (v.sqrt() / Math.Sqrt(correction2)).add_(eps);
            parameter.addcdiv_(m, denom, value: -lr / correction1);
            state.Store(m, v);
        }
    }, closure);

    protected override void Dispose(bool disposing)
    {
        // The base class would cast every state to its float32 State: dispose ours and hand it an empty table.
        foreach (var state in _state.values().OfType<QuantizedState>())
            state.Dispose();
        _state.Clear();
        base.Dispose(disposing);
    }

    private void ReplaceState(Parameter parameter)
    {
        if (_state[parameter.Handle] is State old)
            old.Dispose();
        _state[parameter.Handle] = new QuantizedState(parameter, parameter.numel() >= _minEightBitSize);
    }

    /// <summary>The moments of one parameter: uint8 codes + per-block absmax, or float32 for small parameters.</summary>
    private sealed class QuantizedState : OptimizerState, IDisposable
    {
        private readonly bool _quantized;
        private Tensor _m, _v;
        private Tensor? _mAbsmax, _vAbsmax;

        public QuantizedState(Parameter parameter, bool quantized) : base(parameter)
        {
            _quantized = quantized;
            (_m, _v) = (empty(0), empty(0));
            Reset();
        }

        public long Step;

        public long Bytes => _m.NumberOfElements * _m.ElementSize + _v.NumberOfElements * _v.ElementSize
                             + (_mAbsmax?.NumberOfElements ?? 0) * 4 + (_vAbsmax?.NumberOfElements ?? 0) * 4;

        private static Tensor SignedMap(Device device) => Blockwise.Table("dynamic-signed", () => QuantCodebooks.Dynamic8Bit(signed: true), device);
        private static Tensor UnsignedMap(Device device) => Blockwise.Table("dynamic-unsigned", () => QuantCodebooks.Dynamic8Bit(signed: false), device);

        /// <summary>Float32 working copies of both moments (in the caller's dispose scope).</summary>
        public (Tensor M, Tensor V) Moments() => _quantized
            ? (Blockwise.DequantizeBlockwise(_m, _mAbsmax!, SignedMap(_m.device), BlockSize),
               Blockwise.DequantizeBlockwise(_v, _vAbsmax!, UnsignedMap(_v.device), BlockSize))
            : (_m, _v);

        public void Store(Tensor m, Tensor v)
        {
            if (!_quantized)
                return; // updated in place
            var (mCodes, mAbsmax) = Blockwise.QuantizeBlockwise(m, SignedMap(m.device), BlockSize);
            var (vCodes, vAbsmax) = Blockwise.QuantizeBlockwise(v, UnsignedMap(v.device), BlockSize);
            Replace(mCodes, mAbsmax, vCodes, vAbsmax);
        }

        private void Replace(Tensor m, Tensor? mAbsmax, Tensor v, Tensor? vAbsmax)
        {
            DisposeTensors();
            (_m, _mAbsmax, _v, _vAbsmax) = (m.DetachFromDisposeScope(), mAbsmax?.DetachFromDisposeScope(), v.DetachFromDisposeScope(), vAbsmax?.DetachFromDisposeScope());
        }

        private void Reset()
        {
            Step = 0;
            using var scope = NewDisposeScope();
            var zeros = zeros_like(_parameter, dtype: ScalarType.Float32);
            if (_quantized)
            {
                var (mCodes, mAbsmax) = Blockwise.QuantizeBlockwise(zeros, SignedMap(zeros.device), BlockSize);
                var (vCodes, vAbsmax) = Blockwise.QuantizeBlockwise(zeros, UnsignedMap(zeros.device), BlockSize);
                Replace(mCodes, mAbsmax, vCodes, vAbsmax);
            }
            else
                Replace(zeros.clone(), null, zeros.clone(), null);
        }

        public override void Initialize(OptimizerOptions options) => Reset();

        public override void to(Device device)
        {
            using var scope = NewDisposeScope();
            Replace(_m.to(device), _mAbsmax?.to(device), _v.to(device), _vAbsmax?.to(device));
        }

        public override void SaveStateDict(BinaryWriter writer)
        {
            writer.Write(Step);
            foreach (var tensor in new[] { _m, _v, _mAbsmax, _vAbsmax }.OfType<Tensor>())
                tensor.Save(writer);
        }

        public override void LoadStateDict(BinaryReader reader)
        {
            Step = reader.ReadInt64();
            foreach (var tensor in new[] { _m, _v, _mAbsmax, _vAbsmax }.OfType<Tensor>())
                tensor.Load(reader);
        }

        public override void LoadStateDict(OptimizerState source)
        {
            var other = (QuantizedState)source;
            Step = other.Step;
            using var scope = NewDisposeScope();
            Replace(other._m.clone(), other._mAbsmax?.clone(), other._v.clone(), other._vAbsmax?.clone());
        }

        public override bool ApproximatelyEquals(OptimizerState other) =>
            other is QuantizedState rhs && rhs.Step == Step && rhs._m.allclose(_m) && rhs._v.allclose(_v);

        public void Dispose() => DisposeTensors();

        private void DisposeTensors()
        {
            _m.Dispose();
            _v.Dispose();
            _mAbsmax?.Dispose();
            _vAbsmax?.Dispose();
        }
    }
}
