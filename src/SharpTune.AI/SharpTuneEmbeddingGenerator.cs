using Microsoft.Extensions.AI;
using SharpTune.Pipelines;
using SharpTune.Tokenizers;
using SharpTune.Training.Heads;

namespace SharpTune.AI;

/// <summary>
/// Microsoft.Extensions.AI's <see cref="IEmbeddingGenerator{TInput,TEmbedding}"/> over an encoder (BERT, RoBERTa,
/// DistilBERT, DeBERTa-v2): the last hidden state pooled over each text's tokens (mean or [CLS]), optionally
/// L2-normalised. A text longer than the model's input limit is refused rather than silently truncated.
/// Thread-safe: calls are serialised over the one model.
/// </summary>
public sealed class SharpTuneEmbeddingGenerator : IEmbeddingGenerator<string, Embedding<float>>
{
    private readonly FeatureExtractionPipeline _pipeline;
    private readonly SemaphoreSlim _gate = new(1, 1);

    private SharpTuneEmbeddingGenerator(FeatureExtractionPipeline pipeline, string modelId, PoolingStrategy pooling, bool normalize)
    {
        _pipeline = pipeline;
        ModelId = modelId;
        Pooling = pooling;
        Normalize = normalize;
        Metadata = new EmbeddingGeneratorMetadata("sharptune", null, modelId, (int)pipeline.Model.Config.Get("hidden_size", 0));
    }

    public string ModelId { get; }
    public PoolingStrategy Pooling { get; }
    public bool Normalize { get; }
    public EmbeddingGeneratorMetadata Metadata { get; }
    /// <summary>The most tokens (special tokens included) one input may have.</summary>
    public int MaxInputTokens => _pipeline.MaxLength;

    /// <param name="pooling">Mean (default) or Cls.</param>
    public static SharpTuneEmbeddingGenerator FromPretrained(string modelDirectory, PoolingStrategy pooling = PoolingStrategy.Mean, bool normalize = false,
        PipelineOptions? options = null, string? modelId = null)
    {
        if (pooling is not (PoolingStrategy.Mean or PoolingStrategy.Cls))
            throw new ArgumentException($"embeddings pool with mean or cls (got {pooling})");
        modelId ??= Hub.PretrainedPath.IsHubId(modelDirectory) ? modelDirectory : null;
        var pipeline = FeatureExtractionPipeline.FromPretrained(modelDirectory, options);
        modelId ??= new DirectoryInfo(Path.TrimEndingDirectorySeparator(Path.GetFullPath(modelDirectory))).Name;
        return new SharpTuneEmbeddingGenerator(pipeline, modelId, pooling, normalize);
    }

    public async Task<GeneratedEmbeddings<Embedding<float>>> GenerateAsync(IEnumerable<string> values, EmbeddingGenerationOptions? options = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(values);
        var texts = values.ToList();
        if (options?.Dimensions is { } dimensions && dimensions != Metadata.DefaultModelDimensions)
            throw new ArgumentException($"the model's embeddings have {Metadata.DefaultModelDimensions} dimensions (requested {dimensions})");
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            return await Task.Run(() =>
            {
                var tokens = 0;
                for (var i = 0; i < texts.Count; i++)
                {
                    // Untruncated, with special tokens: the length the pipeline would otherwise cut.
                    var count = _pipeline.Tokenizer.CountTokens(texts[i] ?? throw new ArgumentException($"input {i + 1} is null"), null, EncodeOptions.Default);
                    if (count > MaxInputTokens)
                        throw new ArgumentException($"input {i + 1} has {count} tokens, more than the model's limit of {MaxInputTokens}");
                    tokens += count;
                }
                var vectors = texts.Count == 0 ? [] : _pipeline.SentenceEmbeddings(texts, Pooling, Normalize, cancellation: cancellationToken);
                var created = DateTimeOffset.UtcNow;
                return new GeneratedEmbeddings<Embedding<float>>(vectors.Select(v => new Embedding<float>(v) { ModelId = ModelId, CreatedAt = created }))
                {
                    Usage = new UsageDetails { InputTokenCount = tokens, TotalTokenCount = tokens },
                };
            }, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _gate.Release();
        }
    }

    public object? GetService(Type serviceType, object? serviceKey = null)
    {
        ArgumentNullException.ThrowIfNull(serviceType);
        if (serviceKey is not null)
            return null;
        if (serviceType == typeof(EmbeddingGeneratorMetadata))
            return Metadata;
        return serviceType.IsInstanceOfType(this) ? this : null;
    }

    public void Dispose()
    {
        _pipeline.Dispose();
        _gate.Dispose();
    }
}
