using SharpTune.Models.Blocks;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace SharpTune.Models;

/// <summary>
/// DeBERTa-v2/v3 (transformers' modeling_deberta_v2): post-norm encoder whose attention adds disentangled relative
/// position terms — content→position (c2p) and position→content (p2c) — over log-bucketed relative distances,
/// with relative embeddings shared by all layers (optionally LayerNorm'd) and keys/queries shared with content
/// (<c>share_att_key</c>). Sequence classification pools the first token with <see cref="ContextPooler"/>.
/// </summary>
public static class DebertaV2
{
    public static IReadOnlyList<ModelRegistration> Registrations { get; } =
    [
        new("DebertaV2Model", "deberta-v2", ModelTask.Base, config => new DebertaV2Model(config)),
        new("DebertaV2ForSequenceClassification", "deberta-v2", ModelTask.SequenceClassification, config => new DebertaV2ForSequenceClassification(config)),
    ];

    internal static double LayerNormEps(PretrainedConfig config) => config.Get("layer_norm_eps", 1e-7);

    /// <summary>The relative-position kinds from <c>pos_att_type</c> (a list, or "p2c|c2p" in old configs).</summary>
    internal static IReadOnlySet<string> PositionAttentionTypes(PretrainedConfig config)
    {
        if (config.Raw["pos_att_type"] is System.Text.Json.Nodes.JsonArray list)
            return list.Select(n => n!.GetValue<string>().Trim().ToLowerInvariant()).ToHashSet();
        return config.Get("pos_att_type", "").ToLowerInvariant().Split('|', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).ToHashSet();
    }

    /// <summary>Number of relative positions on each side the embeddings cover: <c>position_buckets</c> when set,
    /// else <c>max_relative_positions</c> (which defaults to <c>max_position_embeddings</c>).</summary>
    internal static (long Span, long MaxRelativePositions, long Buckets) RelativeSpan(PretrainedConfig config)
    {
        var maxRelative = config.Get("max_relative_positions", -1L);
        if (maxRelative < 1)
            maxRelative = config.Get("max_position_embeddings", 512L);
        var buckets = config.Get("position_buckets", -1L);
        return (buckets > 0 ? buckets : maxRelative, maxRelative, buckets);
    }

    /// <summary>
    /// Relative positions query − key [1, 1, Tq, Tk] (int64). With buckets, distances beyond bucket/2 are mapped
    /// logarithmically so that <paramref name="maxPosition"/> lands on the last bucket (transformers'
    /// make_log_bucket_position, computed in float32 as there).
    /// </summary>
    public static Tensor RelativePositions(long queryLength, long keyLength, long buckets, long maxPosition, Device device)
    {
        using var scope = NewDisposeScope();
        var relative = arange(queryLength, dtype: ScalarType.Int64, device: device).unsqueeze(1)
                       - arange(keyLength, dtype: ScalarType.Int64, device: device).unsqueeze(0);
        if (buckets > 0 && maxPosition > 0)
        {
            var mid = buckets / 2;
            var sign = relative.sign();
            var inside = relative.lt(mid).logical_and(relative.gt(-mid));
            var absolute = where(inside, full_like(relative, mid - 1), relative.abs());
            var logScale = (float)Math.Log((maxPosition - 1) / (double)mid);
            var logPosition = (absolute.to(ScalarType.Float32) / mid).log().div(logScale).mul(mid - 1).ceil().add(mid);
            relative = where(absolute.le(mid), relative.to(ScalarType.Float32), logPosition * sign).to(ScalarType.Int64);
        }
        return relative.unsqueeze(0).unsqueeze(0).MoveToOuterDisposeScope();
    }
}

/// <summary>Base of the DeBERTa-v2 classes: "deberta" prefix and transformers' weight init.</summary>
public abstract class DebertaV2PreTrainedModel : PreTrainedModel
{
    private protected DebertaV2PreTrainedModel(string name, PretrainedConfig config) : base(name, config)
    {
        if (config.Get("conv_kernel_size", 0) > 0)
            throw new NotSupportedException($"{config.SourcePath ?? PretrainedConfig.FileName}: DeBERTa-v2 with a convolution layer (conv_kernel_size > 0, e.g. deberta-v2-xlarge) is not supported; DeBERTa-v3 models are");
    }

    public override string BaseModelPrefix => "deberta";

    protected override void InitializeMissing(string name, Tensor parameter)
    {
        base.InitializeMissing(name, parameter);
        EncoderInit.ZeroPaddingRow(name, parameter, "word_embeddings.weight", Config.Get<long?>("pad_token_id", 0));
    }
}

/// <summary>Word (+ optional absolute position and token-type) embeddings, optional projection, LayerNorm,
/// then padding positions zeroed and dropout.</summary>
internal sealed class DebertaV2Embeddings : nn.Module
{
    private readonly Embedding word_embeddings;
    private readonly Embedding? position_embeddings;
    private readonly Embedding? token_type_embeddings;
    private readonly Linear? embed_proj;
    private readonly LayerNorm LayerNorm;
    private readonly Dropout dropout;

    public DebertaV2Embeddings(PretrainedConfig config) : base(nameof(DebertaV2Embeddings))
    {
        var hidden = config.Require<long>("hidden_size");
        var size = config.Get("embedding_size", hidden);
        word_embeddings = nn.Embedding(config.Require<long>("vocab_size"), size, padding_idx: config.Get<long?>("pad_token_id", 0));
        position_embeddings = config.Get("position_biased_input", true) ? nn.Embedding(config.Get("max_position_embeddings", 512L), size) : null;
        var typeVocab = config.Get("type_vocab_size", 0L);
        token_type_embeddings = typeVocab > 0 ? nn.Embedding(typeVocab, size) : null;
        embed_proj = size != hidden ? nn.Linear(size, hidden, hasBias: false) : null;
        LayerNorm = nn.LayerNorm(hidden, DebertaV2.LayerNormEps(config));
        dropout = nn.Dropout(config.Get("hidden_dropout_prob", 0.1));
        RegisterComponents();
    }

    public Tensor Forward(Tensor inputIds, Tensor? tokenTypeIds, Tensor? positionIds, Tensor mask)
    {
        using var scope = NewDisposeScope();
        var embedded = word_embeddings.forward(inputIds);
        if (position_embeddings is not null)
            embedded += position_embeddings.forward(positionIds ?? arange(inputIds.shape[1], dtype: ScalarType.Int64, device: inputIds.device).unsqueeze(0));
        if (token_type_embeddings is not null)
            embedded += token_type_embeddings.forward(tokenTypeIds ?? zeros_like(inputIds));
        if (embed_proj is not null)
            embedded = embed_proj.forward(embedded);
        var normed = LayerNorm.forward(embedded) * mask.unsqueeze(2).to(embedded.dtype);
        return dropout.forward(normed).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// Disentangled self-attention: scores = (Q·Kᵀ + c2p + p2c) / √(head_dim · (1 + number of relative terms)),
/// where c2p gathers Q·(relative keys)ᵀ at each query−key distance and p2c gathers K·(relative queries)ᵀ at each
/// key−query distance.
/// </summary>
internal sealed class DisentangledSelfAttention : nn.Module
{
    private readonly nn.Module<Tensor, Tensor> query_proj;
    private readonly nn.Module<Tensor, Tensor> key_proj;
    private readonly nn.Module<Tensor, Tensor> value_proj;
    private readonly Linear? pos_key_proj;
    private readonly Linear? pos_query_proj;
    private readonly Dropout pos_dropout;
    private readonly Dropout dropout;
    private readonly int _heads;
    private readonly bool _relative;
    private readonly bool _contentToPosition;
    private readonly bool _positionToContent;
    private readonly long _span;

    public DisentangledSelfAttention(PretrainedConfig config) : base(nameof(DisentangledSelfAttention))
    {
        var hidden = config.Require<long>("hidden_size");
        _heads = config.Require<int>("num_attention_heads");
        if (hidden % _heads != 0)
            throw new InvalidDataException($"{config.SourcePath ?? PretrainedConfig.FileName}: hidden_size {hidden} is not a multiple of num_attention_heads {_heads}");
        var allHeads = config.Get("attention_head_size", hidden / _heads) * _heads;
        query_proj = nn.Linear(hidden, allHeads);
        key_proj = nn.Linear(hidden, allHeads);
        value_proj = nn.Linear(hidden, allHeads);
        var types = DebertaV2.PositionAttentionTypes(config);
        _relative = config.Get("relative_attention", false);
        _contentToPosition = _relative && types.Contains("c2p");
        _positionToContent = _relative && types.Contains("p2c");
        _span = DebertaV2.RelativeSpan(config).Span;
        if (!config.Get("share_att_key", false))
        {
            pos_key_proj = _contentToPosition ? nn.Linear(hidden, allHeads) : null;
            pos_query_proj = _positionToContent ? nn.Linear(hidden, allHeads) : null;
        }
        pos_dropout = nn.Dropout(config.Get("hidden_dropout_prob", 0.1));
        dropout = nn.Dropout(config.Get("attention_probs_dropout_prob", 0.1));
        // The scale counts the relative terms pos_att_type names, even when relative attention is off (as transformers).
        ScaleFactor = 1 + (types.Contains("c2p") ? 1 : 0) + (types.Contains("p2c") ? 1 : 0);
        RegisterComponents();
    }

    private int ScaleFactor { get; }

    /// <param name="pairMask">[B, 1, T, T] boolean: both query and key are real tokens.</param>
    /// <param name="relativePositions">[1, 1, T, T] query−key (bucketed) distances.</param>
    /// <param name="relativeEmbeddings">[2·span, hidden] shared relative embeddings (after their LayerNorm).</param>
    public Tensor Forward(Tensor hidden, Tensor pairMask, Tensor? relativePositions, Tensor? relativeEmbeddings)
    {
        using var scope = NewDisposeScope();
        var query = BidirectionalAttention.SplitHeads(query_proj.forward(hidden), _heads);
        var key = BidirectionalAttention.SplitHeads(key_proj.forward(hidden), _heads);
        var value = BidirectionalAttention.SplitHeads(value_proj.forward(hidden), _heads);
        var scale = (float)Math.Sqrt(query.shape[^1] * ScaleFactor);
        var scores = query.matmul(key.transpose(-1, -2) / scale);
        if (_relative && relativePositions is not null && relativeEmbeddings is not null)
            scores += RelativeBias(query, key, relativePositions, pos_dropout.forward(relativeEmbeddings), scale);
        // transformers 5 fills masked scores with the dtype's minimum and softmaxes without re-zeroing, so padded
        // query rows (all masked) attend uniformly to every position.
        var probabilities = dropout.forward(scores.masked_fill(pairMask.logical_not(), AttentionMasks.MinValue(scores.dtype)).softmax(-1));
        return BidirectionalAttention.MergeHeads(probabilities.matmul(value)).MoveToOuterDisposeScope();
    }

    private Tensor RelativeBias(Tensor query, Tensor key, Tensor relativePositions, Tensor relativeEmbeddings, float scale)
    {
        var embeddings = relativeEmbeddings.narrow(0, 0, Math.Min(_span * 2, relativeEmbeddings.shape[0])).unsqueeze(0);
        var bias = zeros(1, dtype: query.dtype, device: query.device);
        var lastIndex = _span * 2 - 1;
        if (_contentToPosition)
        {
            var positionKeys = BidirectionalAttention.SplitHeads((pos_key_proj ?? key_proj).forward(embeddings), _heads);
            var contentToPosition = query.matmul(positionKeys.transpose(-1, -2));
            var index = (relativePositions + _span).clamp(0, lastIndex)
                .expand(query.shape[0], query.shape[1], query.shape[2], key.shape[2]);
            bias = bias + contentToPosition.gather(-1, index) / scale;
        }
        if (_positionToContent)
        {
            var positionQueries = BidirectionalAttention.SplitHeads((pos_query_proj ?? query_proj).forward(embeddings), _heads);
            var positionToContent = key.matmul(positionQueries.transpose(-1, -2));
            var index = (_span - relativePositions).clamp(0, lastIndex)
                .expand(key.shape[0], key.shape[1], key.shape[2], key.shape[2]);
            bias = bias + positionToContent.gather(-1, index).transpose(-1, -2) / scale;
        }
        return bias;
    }
}

internal sealed class DebertaV2Attention : nn.Module
{
    [TorchSharp.Utils.ComponentName(Name = "self")]
    private readonly DisentangledSelfAttention selfAttention;
    private readonly EncoderResidualOutput output;

    public DebertaV2Attention(PretrainedConfig config) : base(nameof(DebertaV2Attention))
    {
        selfAttention = new DisentangledSelfAttention(config);
        output = new EncoderResidualOutput(config, config.Require<long>("hidden_size"), DebertaV2.LayerNormEps(config));
        RegisterComponents();
    }

    public Tensor Forward(Tensor hidden, Tensor pairMask, Tensor? relativePositions, Tensor? relativeEmbeddings)
    {
        using var attended = selfAttention.Forward(hidden, pairMask, relativePositions, relativeEmbeddings);
        return output.Forward(attended, hidden);
    }
}

internal sealed class DebertaV2Layer : nn.Module
{
    private readonly DebertaV2Attention attention;
    private readonly EncoderIntermediate intermediate;
    private readonly EncoderResidualOutput output;

    public DebertaV2Layer(PretrainedConfig config) : base(nameof(DebertaV2Layer))
    {
        attention = new DebertaV2Attention(config);
        intermediate = new EncoderIntermediate(config);
        output = new EncoderResidualOutput(config, config.Require<long>("intermediate_size"), DebertaV2.LayerNormEps(config));
        RegisterComponents();
    }

    public Tensor Forward(Tensor hidden, Tensor pairMask, Tensor? relativePositions, Tensor? relativeEmbeddings)
    {
        using var attended = attention.Forward(hidden, pairMask, relativePositions, relativeEmbeddings);
        using var expanded = intermediate.forward(attended);
        return output.Forward(expanded, attended);
    }
}

/// <summary>The layers plus the relative embeddings they share (<c>encoder.rel_embeddings</c>, <c>encoder.LayerNorm</c>).</summary>
internal sealed class DebertaV2Encoder : nn.Module, IGradientCheckpointable
{
    private readonly ModuleList<DebertaV2Layer> layer;
    private readonly Embedding? rel_embeddings;
    private readonly LayerNorm? LayerNorm;
    private readonly long _maxRelativePositions;
    private readonly long _buckets;

    public DebertaV2Encoder(PretrainedConfig config) : base(nameof(DebertaV2Encoder))
    {
        layer = new ModuleList<DebertaV2Layer>(Enumerable.Range(0, config.Require<int>("num_hidden_layers")).Select(_ => new DebertaV2Layer(config)).ToArray());
        (var span, _maxRelativePositions, _buckets) = DebertaV2.RelativeSpan(config);
        var hidden = config.Require<long>("hidden_size");
        if (config.Get("relative_attention", false))
            rel_embeddings = nn.Embedding(span * 2, hidden);
        var norms = config.Get("norm_rel_ebd", "none").ToLowerInvariant().Split('|', StringSplitOptions.TrimEntries);
        LayerNorm = norms.Contains("layer_norm") ? nn.LayerNorm(hidden, DebertaV2.LayerNormEps(config)) : null;
        RegisterComponents();
    }

    public bool GradientCheckpointing { get; set; }

    /// <summary>Runs every layer, adding each output to <paramref name="states"/> when given (caller's dispose scope).</summary>
    public Tensor Forward(Tensor hidden, Tensor mask, List<Tensor>? states)
    {
        var real = mask.to(ScalarType.Bool);
        var pairMask = real.unsqueeze(1).unsqueeze(2).logical_and(real.unsqueeze(1).unsqueeze(3));
        Tensor? relativePositions = null, relativeEmbeddings = null;
        if (rel_embeddings is not null)
        {
            relativePositions = DebertaV2.RelativePositions(hidden.shape[1], hidden.shape[1], _buckets, _maxRelativePositions, hidden.device);
            relativeEmbeddings = LayerNorm is null ? rel_embeddings.weight! : LayerNorm.forward(rel_embeddings.weight!);
        }
        return Blocks.GradientCheckpointing.RunLayers(this, layer, (block, x) => block.Forward(x[0]!, x[1]!, x[2], x[3]), hidden, states,
            pairMask, relativePositions, relativeEmbeddings);
    }
}

/// <summary><c>DebertaV2Model</c>: embeddings and the relative-attention encoder.</summary>
public sealed class DebertaV2Model : DebertaV2PreTrainedModel
{
    private readonly DebertaV2Embeddings embeddings;
    private readonly DebertaV2Encoder encoder;

    public DebertaV2Model(PretrainedConfig config) : base(nameof(DebertaV2Model), config)
    {
        embeddings = new DebertaV2Embeddings(config);
        encoder = new DebertaV2Encoder(config);
        RegisterComponents();
    }

    public override ModelOutput Forward(ModelInputs inputs)
    {
        using var scope = NewDisposeScope();
        return Run(inputs).MoveToOuterDisposeScope();
    }

    /// <summary>Encodes the inputs; tensors stay in the caller's dispose scope.</summary>
    internal ModelOutput Run(ModelInputs inputs)
    {
        var states = inputs.OutputHiddenStates ? new List<Tensor>() : null;
        var mask = inputs.AttentionMask ?? ones_like(inputs.InputIds);
        var hidden = embeddings.Forward(inputs.InputIds, inputs.TokenTypeIds, inputs.PositionIds, mask);
        states?.Add(hidden);
        return new ModelOutput { LastHiddenState = encoder.Forward(hidden, mask, states), HiddenStates = states };
    }
}

/// <summary>First token → dropout → dense → <c>pooler_hidden_act</c> (<c>pooler.*</c>).</summary>
internal sealed class ContextPooler : nn.Module<Tensor, Tensor>
{
    private readonly nn.Module<Tensor, Tensor> dense;
    private readonly Dropout dropout;
    private readonly Func<Tensor, Tensor> _activation;

    public ContextPooler(PretrainedConfig config) : base(nameof(ContextPooler))
    {
        var size = config.Get("pooler_hidden_size", config.Require<long>("hidden_size"));
        dense = nn.Linear(config.Require<long>("hidden_size"), size);
        dropout = nn.Dropout(config.Get("pooler_dropout", 0.0));
        _activation = Activations.Get(config.Get("pooler_hidden_act", "gelu"));
        RegisterComponents();
    }

    public override Tensor forward(Tensor hidden)
    {
        using var scope = NewDisposeScope();
        return _activation(dense.forward(dropout.forward(hidden.select(1, 0)))).MoveToOuterDisposeScope();
    }
}

/// <summary><c>DebertaV2ForSequenceClassification</c>: <see cref="ContextPooler"/>, dropout, linear classifier.</summary>
public sealed class DebertaV2ForSequenceClassification : DebertaV2PreTrainedModel
{
    private readonly DebertaV2Model deberta;
    private readonly ContextPooler pooler;
    private readonly Linear classifier;
    private readonly Dropout dropout;

    public DebertaV2ForSequenceClassification(PretrainedConfig config) : base(nameof(DebertaV2ForSequenceClassification), config)
    {
        deberta = new DebertaV2Model(config);
        pooler = new ContextPooler(config);
        classifier = nn.Linear(config.Get("pooler_hidden_size", config.Require<long>("hidden_size")), config.NumLabels);
        dropout = nn.Dropout(config.Get<double?>("cls_dropout", null) ?? config.Get("hidden_dropout_prob", 0.1));
        RegisterComponents();
    }

    public override ModelOutput Forward(ModelInputs inputs)
    {
        using var scope = NewDisposeScope();
        var run = deberta.Run(inputs);
        var pooled = pooler.forward(run.LastHiddenState);
        var logits = classifier.forward(dropout.forward(pooled));
        return run.WithHead(logits, inputs.Labels is null ? null : Loss(logits, inputs.Labels), pooled).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// With an explicit <c>problem_type</c>, the common loss. Without one, DeBERTa's own rules as in transformers:
    /// one label → MSE; class ids → cross-entropy over the examples whose label is ≥ 0 (others skipped);
    /// a label distribution per example → soft-label cross-entropy.
    /// </summary>
    private Tensor Loss(Tensor logits, Tensor labels)
    {
        logits = SequenceClassificationLoss.LossInput(logits);
        var numLabels = Config.NumLabels;
        if (Config.ProblemType is not null)
            return SequenceClassificationLoss.Compute(logits, labels, numLabels, Config.ProblemType);
        if (numLabels == 1)
            return F.mse_loss(logits.view(-1), labels.view(-1).to(logits.dtype));
        if (labels.dim() == 1 || labels.shape[^1] == 1)
        {
            var flat = labels.view(-1);
            var labeled = flat.ge(0);
            if (!labeled.any().item<bool>())
                return zeros(1, dtype: logits.dtype, device: logits.device).squeeze();
            return F.cross_entropy(logits[labeled].to(ScalarType.Float32), flat[labeled].to(ScalarType.Int64));
        }
        return -(logits.log_softmax(-1) * labels.to(logits.dtype)).sum(-1).mean();
    }
}
