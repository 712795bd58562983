using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace SharpTune.Models.Blocks;

/// <summary>The activation functions named by <c>hidden_act</c>/<c>activation_function</c> in configs.</summary>
public static class Activations
{
    public static Func<Tensor, Tensor> Get(string name) => name switch
    {
        "gelu" => x => F.gelu(x),
        "gelu_new" or "gelu_pytorch_tanh" or "gelu_fast" => GeluTanh,
        "quick_gelu" => x => x * F.sigmoid(1.702 * x),
        "relu" => x => F.relu(x),
        "silu" or "swish" => x => F.silu(x),
        "tanh" => x => x.tanh(),
        _ => throw new NotSupportedException($"unsupported activation '{name}' (supported: gelu, gelu_new, gelu_pytorch_tanh, gelu_fast, quick_gelu, relu, silu, tanh)"),
    };

    // 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))), the tanh approximation GPT-2 and Phi were trained with.
    private static Tensor GeluTanh(Tensor x)
    {
        using var scope = NewDisposeScope();
        var inner = (x + x.pow(3) * 0.044715) * Math.Sqrt(2.0 / Math.PI);
        return (x * 0.5 * (inner.tanh() + 1.0)).MoveToOuterDisposeScope();
    }
}
