using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SharpTune.Training.Heads;

/// <summary>How a sequence of hidden states becomes one vector per example.</summary>
public enum PoolingStrategy
{
    /// <summary>The first token's ([CLS]) final hidden state.</summary>
    Cls,
    /// <summary>Mean over real (unpadded) tokens.</summary>
    Mean,
    /// <summary>Element-wise maximum over real tokens.</summary>
    Max,
    /// <summary>Learned attention: softmax over tokens of <c>w·tanh(W h)</c>, then the weighted sum of states.</summary>
    Attention,
    /// <summary>The [CLS] states of the last four layers, concatenated (4 × hidden size).</summary>
    ConcatLast4Cls,
}

/// <summary>Pools encoder outputs according to a <see cref="PoolingStrategy"/>; holds the attention-pooling weights.</summary>
public sealed class Pooling : nn.Module
{
    private readonly Linear? dense;
    private readonly Linear? score;

    public Pooling(PoolingStrategy strategy, long hiddenSize) : base(nameof(Pooling))
    {
        Strategy = strategy;
        if (strategy == PoolingStrategy.Attention)
        {
            dense = nn.Linear(hiddenSize, hiddenSize);
            score = nn.Linear(hiddenSize, 1);
        }
        OutputSize = strategy == PoolingStrategy.ConcatLast4Cls ? 4 * hiddenSize : hiddenSize;
        RegisterComponents();
    }

    public PoolingStrategy Strategy { get; }
    public long OutputSize { get; }

    /// <summary>True when the encoder must return every layer's hidden states.</summary>
    public bool NeedsAllHiddenStates => Strategy == PoolingStrategy.ConcatLast4Cls;

    /// <param name="lastHiddenState">[B, T, H]</param>
    /// <param name="attentionMask">[B, T], 1 for real tokens; null: all real.</param>
    /// <param name="hiddenStates">Embeddings output then each layer's output (for <see cref="PoolingStrategy.ConcatLast4Cls"/>).</param>
    public Tensor Forward(Tensor lastHiddenState, Tensor? attentionMask, IReadOnlyList<Tensor>? hiddenStates)
    {
        using var scope = NewDisposeScope();
        var mask = (attentionMask ?? ones(lastHiddenState.shape[0], lastHiddenState.shape[1], device: lastHiddenState.device)).to(ScalarType.Bool);
        var pooled = Strategy switch
        {
            PoolingStrategy.Cls => lastHiddenState[.., 0],
            PoolingStrategy.Mean => MeanPool(lastHiddenState, mask),
            PoolingStrategy.Max => lastHiddenState.masked_fill(mask.logical_not().unsqueeze(-1), double.NegativeInfinity).amax([1]),
            PoolingStrategy.Attention => AttentionPool(lastHiddenState, mask),
            PoolingStrategy.ConcatLast4Cls => ConcatLast4(hiddenStates),
            _ => throw new ArgumentOutOfRangeException(nameof(Strategy), Strategy, null),
        };
        return pooled.MoveToOuterDisposeScope();
    }

    private static Tensor MeanPool(Tensor hidden, Tensor mask)
    {
        var weights = mask.unsqueeze(-1).to(hidden.dtype);
        return (hidden * weights).sum(1) / weights.sum(1).clamp_min(1e-9);
    }

    private Tensor AttentionPool(Tensor hidden, Tensor mask)
    {
        var logits = score!.forward(dense!.forward(hidden).tanh()).squeeze(-1);               // [B, T]
        var weights = logits.masked_fill(mask.logical_not(), double.NegativeInfinity).softmax(-1);
        return (weights.unsqueeze(-1) * hidden).sum(1);
    }

    private static Tensor ConcatLast4(IReadOnlyList<Tensor>? states)
    {
        if (states is null || states.Count < 4)
            throw new InvalidOperationException($"concatenating the last 4 layers' [CLS] states needs at least 4 hidden states (got {states?.Count ?? 0})");
        return cat([states[^1][.., 0], states[^2][.., 0], states[^3][.., 0], states[^4][.., 0]], -1);
    }

    public static PoolingStrategy Parse(string name) => name.Trim().ToLowerInvariant().Replace("-", "").Replace("_", "") switch
    {
        "cls" => PoolingStrategy.Cls,
        "mean" => PoolingStrategy.Mean,
        "max" => PoolingStrategy.Max,
        "attention" => PoolingStrategy.Attention,
        "concatlast4" or "concatlast4cls" or "last4" => PoolingStrategy.ConcatLast4Cls,
        _ => throw new ArgumentException($"unknown pooling '{name}': expected cls, mean, max, attention or concat-last4"),
    };

    public static string Name(PoolingStrategy strategy) => strategy switch
    {
        PoolingStrategy.ConcatLast4Cls => "concat-last4",
        _ => strategy.ToString().ToLowerInvariant(),
    };
}
