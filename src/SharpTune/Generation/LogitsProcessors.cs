using static TorchSharp.torch;

namespace SharpTune.Generation;

/// <summary>
/// Rewrites next-token scores [B, V] (float32) given the tokens so far, like transformers' LogitsProcessor.
/// <c>tokens</c> is [B, L] and <c>tokenMask</c> marks real tokens (1) versus left padding (0).
/// Returns a new tensor; the input is not modified.
/// </summary>
public interface ILogitsProcessor
{
    Tensor Process(Tensor tokens, Tensor tokenMask, Tensor scores);
}

/// <summary>transformers' RepetitionPenaltyLogitsProcessor: scores of tokens already present are divided by the
/// penalty when positive and multiplied by it when negative. Padding does not count as present (transformers
/// penalises the pad id too, which would make a padded batch differ from the same prompts run one by one).</summary>
public sealed class RepetitionPenaltyProcessor(double penalty) : ILogitsProcessor
{
    public Tensor Process(Tensor tokens, Tensor tokenMask, Tensor scores)
    {
        using var scope = NewDisposeScope();
        var present = zeros_like(scores).scatter_add_(1, tokens, tokenMask.to(scores.dtype)).gt(0);
        var penalized = where(scores.lt(0), scores * penalty, scores / penalty);
        return where(present, penalized, scores).MoveToOuterDisposeScope();
    }
}

/// <summary>transformers' TemperatureLogitsWarper: scores / temperature.</summary>
public sealed class TemperatureProcessor(double temperature) : ILogitsProcessor
{
    public Tensor Process(Tensor tokens, Tensor tokenMask, Tensor scores) => scores / temperature;
}

/// <summary>transformers' TopKLogitsWarper: everything below the k-th highest score becomes -inf.</summary>
public sealed class TopKProcessor(int topK, int minTokensToKeep = 1) : ILogitsProcessor
{
    public Tensor Process(Tensor tokens, Tensor tokenMask, Tensor scores)
    {
        using var scope = NewDisposeScope();
        var k = (int)Math.Min(Math.Max(topK, minTokensToKeep), scores.shape[^1]);
        var kth = scores.topk(k, dim: -1).values.narrow(-1, k - 1, 1);
        return scores.masked_fill(scores.lt(kth), double.NegativeInfinity).MoveToOuterDisposeScope();
    }
}

/// <summary>transformers' TopPLogitsWarper (nucleus): drops the least likely tokens whose cumulative probability
/// stays within 1 - top_p, always keeping at least <paramref name="minTokensToKeep"/>.</summary>
public sealed class TopPProcessor(double topP, int minTokensToKeep = 1) : ILogitsProcessor
{
    public Tensor Process(Tensor tokens, Tensor tokenMask, Tensor scores)
    {
        using var scope = NewDisposeScope();
        var (sorted, indices) = scores.sort(-1, descending: false);
        var cumulative = sorted.softmax(-1).cumsum(-1);
        var removeSorted = cumulative.le(1 - topP);
        removeSorted.narrow(-1, removeSorted.shape[^1] - minTokensToKeep, minTokensToKeep).fill_(false);
        var remove = removeSorted.scatter(1, indices, removeSorted);
        return scores.masked_fill(remove, double.NegativeInfinity).MoveToOuterDisposeScope();
    }
}

/// <summary>transformers' MinPLogitsWarper: drops tokens whose probability is below min_p × the top probability.</summary>
public sealed class MinPProcessor(double minP, int minTokensToKeep = 1) : ILogitsProcessor
{
    public Tensor Process(Tensor tokens, Tensor tokenMask, Tensor scores)
    {
        using var scope = NewDisposeScope();
        var probabilities = scores.softmax(-1);
        var remove = probabilities.lt(probabilities.amax([-1], keepdim: true) * minP);
        // The most likely tokens are always kept.
        var order = scores.argsort(-1, descending: true);
        var removeSorted = remove.gather(1, order);
        removeSorted.narrow(-1, 0, minTokensToKeep).fill_(false);
        remove = removeSorted.scatter(1, order, removeSorted);
        return scores.masked_fill(remove, double.NegativeInfinity).MoveToOuterDisposeScope();
    }
}

/// <summary>The processors a <see cref="GenerationConfig"/> asks for, in transformers' order.</summary>
public static class LogitsProcessors
{
    public static IReadOnlyList<ILogitsProcessor> For(GenerationConfig config)
    {
        var processors = new List<ILogitsProcessor>();
        if (config.RepetitionPenalty != 1.0)
            processors.Add(new RepetitionPenaltyProcessor(config.RepetitionPenalty));
        if (!config.DoSample)
            return processors;
        if (config.Temperature != 1.0)
            processors.Add(new TemperatureProcessor(config.Temperature));
        if (config.TopK != 0)
            processors.Add(new TopKProcessor(config.TopK));
        if (config.TopP < 1.0)
            processors.Add(new TopPProcessor(config.TopP));
        if (config.MinP is { } minP)
            processors.Add(new MinPProcessor(minP));
        return processors;
    }

    /// <summary>Runs the processors in order, disposing the intermediate tensors.</summary>
    public static Tensor Apply(IReadOnlyList<ILogitsProcessor> processors, Tensor tokens, Tensor tokenMask, Tensor scores)
    {
        var current = scores.alias();
        foreach (var processor in processors)
        {
            var next = processor.Process(tokens, tokenMask, current);
            current.Dispose();
            current = next;
        }
        return current;
    }
}
