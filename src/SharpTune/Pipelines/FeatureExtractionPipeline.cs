using SharpTune.Models;
using SharpTune.Tokenizers;
using SharpTune.Training.Heads;
using static TorchSharp.torch;

namespace SharpTune.Pipelines;

/// <summary>The final hidden state of every token of one text (special tokens included, as transformers returns them).</summary>
public sealed record TokenEmbeddings(IReadOnlyList<string> Tokens, float[][] Vectors);

/// <summary>
/// <c>feature-extraction</c>: the base model's last hidden state per token, or one sentence embedding per text pooled
/// over its real tokens (mean, [CLS] or max), optionally L2-normalised (as sentence-transformers' normalize).
/// </summary>
public sealed class FeatureExtractionPipeline : Pipeline
{
    private FeatureExtractionPipeline(string modelDirectory, PreTrainedModel model, Tokenizer tokenizer, PipelineOptions options)
        : base(FeatureExtraction, modelDirectory, model, tokenizer, options)
    {
    }

    public static FeatureExtractionPipeline FromPretrained(string modelDirectory, PipelineOptions? options = null)
    {
        (modelDirectory, options) = ResolvePaths(modelDirectory, options);
        var tokenizer = AutoTokenizer.FromPretrained(options.TokenizerPath ?? modelDirectory);
        // The base model: a task checkpoint's head is not needed, and its missing pooler is not used.
        var model = LoadModel(FeatureExtraction, modelDirectory, ModelTask.Base, options, requireTrainedHead: false);
        return new FeatureExtractionPipeline(modelDirectory, model, tokenizer, options);
    }

    /// <summary>Every token's final hidden state, per text.</summary>
    public IReadOnlyList<TokenEmbeddings> TokenEmbeddings(IReadOnlyList<string> texts, bool normalize = false, CancellationToken cancellation = default)
    {
        var encodings = Encode(texts);
        var results = new TokenEmbeddings[texts.Count];
        RunBatches(encodings, (rows, _, output) =>
        {
            var hidden = output.LastHiddenState.to(ScalarType.Float32);
            if (normalize)
                hidden = nn.functional.normalize(hidden, p: 2, dim: -1);
            var width = (int)hidden.shape[^1];
            var length = (int)hidden.shape[1];
            var values = hidden.cpu().data<float>().ToArray();
            for (var r = 0; r < rows.Length; r++)
            {
                var encoding = encodings[rows[r]];
                var vectors = new float[encoding.Length][];
                for (var t = 0; t < encoding.Length; t++)
                    vectors[t] = values.AsSpan((r * length + t) * width, width).ToArray();
                results[rows[r]] = new TokenEmbeddings(encoding.Tokens.ToList(), vectors);
            }
        }, cancellation);
        return results;
    }

    /// <summary>One vector per text: the last hidden state pooled over the text's tokens (padding excluded).</summary>
    /// <param name="pooling">Mean, Cls or Max (the parameter-free strategies).</param>
    /// <param name="textPairs">Second segments (sentence pairs), one per text (null entries: none).</param>
    /// <param name="progress">Gets the number of texts done after each batch.</param>
    public IReadOnlyList<float[]> SentenceEmbeddings(IReadOnlyList<string> texts, PoolingStrategy pooling = PoolingStrategy.Mean, bool normalize = false,
        IReadOnlyList<string?>? textPairs = null, Action<int>? progress = null, CancellationToken cancellation = default)
    {
        if (pooling is not (PoolingStrategy.Mean or PoolingStrategy.Cls or PoolingStrategy.Max))
            throw new ArgumentException($"feature extraction pools without trained weights: pooling must be mean, cls or max, got '{Pooling.Name(pooling)}'");
        var results = new float[texts.Count][];
        RunBatches(Encode(texts, textPairs), (rows, inputs, output) =>
        {
            var hidden = output.LastHiddenState.to(ScalarType.Float32);
            using var pool = new Pooling(pooling, hidden.shape[^1]);
            var pooled = pool.Forward(hidden, inputs.AttentionMask, null);
            if (normalize)
                pooled = nn.functional.normalize(pooled, p: 2, dim: -1);
            var width = (int)pooled.shape[^1];
            var values = pooled.cpu().data<float>().ToArray();
            for (var r = 0; r < rows.Length; r++)
                results[rows[r]] = values.AsSpan(r * width, width).ToArray();
        }, cancellation, progress);
        return results;
    }
}
