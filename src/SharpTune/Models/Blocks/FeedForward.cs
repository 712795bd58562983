using static TorchSharp.torch;

namespace SharpTune.Models.Blocks;

/// <summary>The plain transformer MLP, down(act(up(x))), with the layer names each architecture's checkpoints use
/// (Phi: fc1/fc2; GPT-NeoX: dense_h_to_4h/dense_4h_to_h). Both projections may be swapped by LoRA or quantization.</summary>
public sealed class FeedForward : nn.Module<Tensor, Tensor>
{
    private readonly nn.Module<Tensor, Tensor> _up;
    private readonly nn.Module<Tensor, Tensor> _down;
    private readonly Func<Tensor, Tensor> _activation;

    public FeedForward(long hiddenSize, long intermediateSize, string activation, string upName, string downName) : base(nameof(FeedForward))
    {
        _activation = Activations.Get(activation);
        register_module(upName, _up = nn.Linear(hiddenSize, intermediateSize));
        register_module(downName, _down = nn.Linear(intermediateSize, hiddenSize));
    }

    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        return _down.forward(_activation(_up.forward(input))).MoveToOuterDisposeScope();
    }
}
