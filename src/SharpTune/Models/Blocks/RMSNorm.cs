using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SharpTune.Models.Blocks;

/// <summary>Root-mean-square layer norm (Llama, Qwen2): normalises in float32, scales by <c>weight</c> in the input dtype.</summary>
public sealed class RMSNorm : nn.Module<Tensor, Tensor>
{
    private readonly double _eps;

    public RMSNorm(long size, double eps) : base(nameof(RMSNorm))
    {
        _eps = eps;
        register_parameter("weight", weight = new Parameter(ones(size)));
    }

    // Named like the parameter, with a setter: Module.to(dtype/device) re-assigns converted parameters by name.
    public Parameter weight { get; private set; }

    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        // As transformers: statistics in float32 whatever the model dtype, cast back before the scale (no casts for fp32).
        var isFloat32 = input.dtype == ScalarType.Float32;
        var x = isFloat32 ? input : input.to(ScalarType.Float32);
        var normalized = x * x.square().mean([-1], keepdim: true).add_(_eps).rsqrt_();
        return weight.mul(isFloat32 ? normalized : normalized.to(input.dtype)).MoveToOuterDisposeScope();
    }
}
