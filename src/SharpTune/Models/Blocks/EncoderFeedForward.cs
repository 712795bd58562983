using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SharpTune.Models.Blocks;

/// <summary>BERT-family <c>intermediate</c>: act(dense(x)) into the intermediate size (BERT, RoBERTa, DeBERTa).</summary>
internal sealed class EncoderIntermediate : nn.Module<Tensor, Tensor>
{
    private readonly nn.Module<Tensor, Tensor> dense;
    private readonly Func<Tensor, Tensor> _activation;

    public EncoderIntermediate(PretrainedConfig config) : base(nameof(EncoderIntermediate))
    {
        dense = nn.Linear(config.Require<long>("hidden_size"), config.Require<long>("intermediate_size"));
        _activation = Activations.Get(config.Get("hidden_act", "gelu"));
        RegisterComponents();
    }

    public override Tensor forward(Tensor hidden)
    {
        using var projected = dense.forward(hidden);
        return _activation(projected);
    }
}

/// <summary>BERT-family <c>output</c>: LayerNorm(dropout(dense(x)) + residual), after attention and after the
/// intermediate layer; the LayerNorm epsilon is the architecture's.</summary>
internal sealed class EncoderResidualOutput : nn.Module
{
    private readonly nn.Module<Tensor, Tensor> dense;
    private readonly LayerNorm LayerNorm;
    private readonly Dropout dropout;

    public EncoderResidualOutput(PretrainedConfig config, long inputSize, double layerNormEps) : base(nameof(EncoderResidualOutput))
    {
        var hidden = config.Require<long>("hidden_size");
        dense = nn.Linear(inputSize, hidden);
        LayerNorm = nn.LayerNorm(hidden, layerNormEps);
        dropout = nn.Dropout(config.Get("hidden_dropout_prob", 0.1));
        RegisterComponents();
    }

    public Tensor Forward(Tensor hidden, Tensor residual)
    {
        using var scope = NewDisposeScope();
        return LayerNorm.forward(dropout.forward(dense.forward(hidden)) + residual).MoveToOuterDisposeScope();
    }
}
