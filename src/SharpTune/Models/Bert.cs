using SharpTune.Models.Blocks;
using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace SharpTune.Models;

/// <summary>
/// BERT (transformers' modeling_bert): post-LayerNorm encoder with learned absolute positions and token types.
/// Submodule and parameter names are those of transformers, so checkpoints load by name. RoBERTa reuses it.
/// </summary>
public static class Bert
{
    public static IReadOnlyList<ModelRegistration> Registrations { get; } =
    [
        new("BertModel", "bert", ModelTask.Base, config => new BertModel(config)),
        new("BertForSequenceClassification", "bert", ModelTask.SequenceClassification, config => new BertForSequenceClassification(config)),
        new("BertForMaskedLM", "bert", ModelTask.MaskedLM, config => new BertForMaskedLM(config)),
    ];

    /// <summary>Hidden-layer dropout of the classification head: <c>classifier_dropout</c>, else <c>hidden_dropout_prob</c>.</summary>
    internal static double ClassifierDropout(PretrainedConfig config) =>
        config.Get<double?>("classifier_dropout", null) ?? config.Get("hidden_dropout_prob", 0.1);
}

/// <summary>BERT and RoBERTa share every module; RoBERTa numbers positions after the padding index and names its base model "roberta".</summary>
internal enum BertVariant
{
    Bert,
    Roberta,
}

/// <summary>Base of the BERT-family classes (transformers' BertPreTrainedModel): base-model prefix and weight init.</summary>
public abstract class BertPreTrainedModel : PreTrainedModel
{
    private readonly BertVariant _variant;

    private protected BertPreTrainedModel(string name, PretrainedConfig config, BertVariant variant) : base(name, config) => _variant = variant;

    public override string BaseModelPrefix => _variant == BertVariant.Roberta ? "roberta" : "bert";

    protected override void InitializeMissing(string name, Tensor parameter)
    {
        base.InitializeMissing(name, parameter);
        // Embeddings created with a padding_idx start with a zero row there, as transformers initialises them.
        var padding = Config.Get<long?>("pad_token_id", 0);
        EncoderInit.ZeroPaddingRow(name, parameter, "word_embeddings.weight", padding);
        if (_variant == BertVariant.Roberta)
            EncoderInit.ZeroPaddingRow(name, parameter, "position_embeddings.weight", padding);
    }
}

/// <summary>Word + position + token-type embeddings, then LayerNorm and dropout.</summary>
internal sealed class BertEmbeddings : nn.Module
{
    private readonly Embedding word_embeddings;
    private readonly Embedding position_embeddings;
    private readonly Embedding? token_type_embeddings;
    private readonly LayerNorm LayerNorm;
    private readonly Dropout dropout;
    // RoBERTa numbers positions from padding_idx + 1 and skips padding tokens; BERT counts from 0.
    private readonly long? _positionsAfterPadding;

    public BertEmbeddings(PretrainedConfig config, BertVariant variant) : base(nameof(BertEmbeddings))
    {
        var hidden = config.Require<long>("hidden_size");
        var padding = config.Get<long?>("pad_token_id", 0);
        word_embeddings = nn.Embedding(config.Require<long>("vocab_size"), hidden, padding_idx: padding);
        _positionsAfterPadding = variant == BertVariant.Roberta ? padding ?? 1 : null;
        position_embeddings = nn.Embedding(config.Get("max_position_embeddings", 512L), hidden, padding_idx: _positionsAfterPadding);
        var typeVocab = config.Get("type_vocab_size", 2L);
        token_type_embeddings = typeVocab > 0 ? nn.Embedding(typeVocab, hidden) : null;
        LayerNorm = nn.LayerNorm(hidden, config.Get("layer_norm_eps", 1e-12));
        dropout = nn.Dropout(config.Get("hidden_dropout_prob", 0.1));
        RegisterComponents();
    }

    public Tensor WordEmbeddingWeight => word_embeddings.weight!;

    public Tensor Forward(Tensor inputIds, Tensor? tokenTypeIds, Tensor? positionIds)
    {
        using var scope = NewDisposeScope();
        positionIds ??= DefaultPositions(inputIds);
        var embedded = word_embeddings.forward(inputIds) + position_embeddings.forward(positionIds);
        if (token_type_embeddings is not null)
            embedded += token_type_embeddings.forward(tokenTypeIds ?? zeros_like(inputIds));
        return dropout.forward(LayerNorm.forward(embedded)).MoveToOuterDisposeScope();
    }

    private Tensor DefaultPositions(Tensor inputIds)
    {
        if (_positionsAfterPadding is not { } padding)
            return arange(inputIds.shape[1], dtype: ScalarType.Int64, device: inputIds.device).unsqueeze(0);
        // transformers' create_position_ids_from_input_ids: padding tokens keep padding_idx, others count on from it.
        var real = inputIds.ne(padding).to(ScalarType.Int64);
        return real.cumsum(1) * real + padding;
    }
}

/// <summary>Query/key/value projections around the shared scaled-dot-product attention.</summary>
internal sealed class BertSelfAttention : nn.Module
{
    private readonly nn.Module<Tensor, Tensor> query;
    private readonly nn.Module<Tensor, Tensor> key;
    private readonly nn.Module<Tensor, Tensor> value;
    private readonly int _heads;
    private readonly double _dropout;

    public BertSelfAttention(PretrainedConfig config) : base(nameof(BertSelfAttention))
    {
        var hidden = config.Require<long>("hidden_size");
        _heads = config.Require<int>("num_attention_heads");
        if (hidden % _heads != 0)
            throw new InvalidDataException($"{config.SourcePath ?? PretrainedConfig.FileName}: hidden_size {hidden} is not a multiple of num_attention_heads {_heads}");
        _dropout = config.Get("attention_probs_dropout_prob", 0.1);
        query = nn.Linear(hidden, hidden);
        key = nn.Linear(hidden, hidden);
        value = nn.Linear(hidden, hidden);
        RegisterComponents();
    }

    public Tensor Forward(Tensor hidden, Tensor? keyMask)
    {
        using var scope = NewDisposeScope();
        return BidirectionalAttention.Attend(query.forward(hidden), key.forward(hidden), value.forward(hidden), _heads, keyMask,
            training ? _dropout : 0.0).MoveToOuterDisposeScope();
    }
}

internal sealed class BertAttention : nn.Module
{
    [ComponentName(Name = "self")]
    private readonly BertSelfAttention selfAttention;
    private readonly EncoderResidualOutput output;

    public BertAttention(PretrainedConfig config) : base(nameof(BertAttention))
    {
        selfAttention = new BertSelfAttention(config);
        output = new EncoderResidualOutput(config, config.Require<long>("hidden_size"), config.Get("layer_norm_eps", 1e-12));
        RegisterComponents();
    }

    public Tensor Forward(Tensor hidden, Tensor? keyMask)
    {
        using var attended = selfAttention.Forward(hidden, keyMask);
        return output.Forward(attended, hidden);
    }
}

internal sealed class BertLayer : nn.Module
{
    private readonly BertAttention attention;
    private readonly EncoderIntermediate intermediate;
    private readonly EncoderResidualOutput output;

    public BertLayer(PretrainedConfig config) : base(nameof(BertLayer))
    {
        attention = new BertAttention(config);
        intermediate = new EncoderIntermediate(config);
        output = new EncoderResidualOutput(config, config.Require<long>("intermediate_size"), config.Get("layer_norm_eps", 1e-12));
        RegisterComponents();
    }

    public Tensor Forward(Tensor hidden, Tensor? keyMask)
    {
        using var attended = attention.Forward(hidden, keyMask);
        using var expanded = intermediate.forward(attended);
        return output.Forward(expanded, attended);
    }
}

internal sealed class BertEncoder : nn.Module, IGradientCheckpointable
{
    private readonly ModuleList<BertLayer> layer;

    public BertEncoder(PretrainedConfig config) : base(nameof(BertEncoder))
    {
        layer = new ModuleList<BertLayer>(Enumerable.Range(0, config.Require<int>("num_hidden_layers")).Select(_ => new BertLayer(config)).ToArray());
        RegisterComponents();
    }

    public bool GradientCheckpointing { get; set; }

    /// <summary>Runs every layer; collects each layer's output into <paramref name="states"/> when given.
    /// Tensors are left in the caller's dispose scope.</summary>
    public Tensor Forward(Tensor hidden, Tensor? keyMask, List<Tensor>? states) =>
        Blocks.GradientCheckpointing.RunLayers(this, layer, (block, x) => block.Forward(x[0]!, x[1]), hidden, states, keyMask);
}

/// <summary>tanh(dense(first token)): BERT's pooled sentence representation.</summary>
internal sealed class BertPooler : nn.Module<Tensor, Tensor>
{
    private readonly nn.Module<Tensor, Tensor> dense;

    public BertPooler(PretrainedConfig config) : base(nameof(BertPooler))
    {
        var hidden = config.Require<long>("hidden_size");
        dense = nn.Linear(hidden, hidden);
        RegisterComponents();
    }

    public override Tensor forward(Tensor hidden)
    {
        using var first = hidden.select(1, 0);
        using var projected = dense.forward(first);
        return projected.tanh();
    }
}

/// <summary>The bare BERT encoder (<c>BertModel</c>): embeddings, layers and, optionally, the pooler.</summary>
public class BertModel : BertPreTrainedModel
{
    private readonly BertEmbeddings embeddings;
    private readonly BertEncoder encoder;
    private readonly BertPooler? pooler;

    public BertModel(PretrainedConfig config, bool addPoolingLayer = true) : this(nameof(BertModel), config, addPoolingLayer, BertVariant.Bert)
    {
    }

    private protected BertModel(string name, PretrainedConfig config, bool addPoolingLayer, BertVariant variant) : base(name, config, variant)
    {
        embeddings = new BertEmbeddings(config, variant);
        encoder = new BertEncoder(config);
        pooler = addPoolingLayer ? new BertPooler(config) : null;
        RegisterComponents();
    }

    /// <summary>The input embedding matrix [vocab, hidden] (the masked-LM decoder is tied to it).</summary>
    public Tensor WordEmbeddingWeight => embeddings.WordEmbeddingWeight;

    public override ModelOutput Forward(ModelInputs inputs)
    {
        using var scope = NewDisposeScope();
        return Run(inputs).MoveToOuterDisposeScope();
    }

    /// <summary>Encodes the inputs; the tensors stay in the caller's dispose scope (task heads build on them).</summary>
    internal ModelOutput Run(ModelInputs inputs)
    {
        var states = inputs.OutputHiddenStates ? new List<Tensor>() : null;
        var hidden = embeddings.Forward(inputs.InputIds, inputs.TokenTypeIds, inputs.PositionIds);
        states?.Add(hidden);
        var keyMask = inputs.AttentionMask is null ? null : BidirectionalAttention.KeyMask(inputs.AttentionMask);
        hidden = encoder.Forward(hidden, keyMask, states);
        return new ModelOutput { LastHiddenState = hidden, PoolerOutput = pooler?.forward(hidden), HiddenStates = states };
    }
}

/// <summary><c>BertForSequenceClassification</c>: dropout and a linear classifier on the pooled output.</summary>
public sealed class BertForSequenceClassification : BertPreTrainedModel
{
    private readonly BertModel bert;
    private readonly Dropout dropout;
    private readonly nn.Module<Tensor, Tensor> classifier;

    public BertForSequenceClassification(PretrainedConfig config) : base(nameof(BertForSequenceClassification), config, BertVariant.Bert)
    {
        bert = new BertModel(config);
        dropout = nn.Dropout(Bert.ClassifierDropout(config));
        classifier = nn.Linear(config.Require<long>("hidden_size"), config.NumLabels);
        RegisterComponents();
    }

    public override ModelOutput Forward(ModelInputs inputs)
    {
        using var scope = NewDisposeScope();
        var run = bert.Run(inputs);
        var logits = classifier.forward(dropout.forward(run.PoolerOutput!));
        return run.WithHead(logits, SequenceClassificationLoss.Compute(logits, inputs, Config)).MoveToOuterDisposeScope();
    }
}

/// <summary>dense → activation → LayerNorm before the vocabulary projection (<c>cls.predictions.transform</c>).</summary>
internal sealed class BertPredictionHeadTransform : nn.Module<Tensor, Tensor>
{
    private readonly nn.Module<Tensor, Tensor> dense;
    private readonly LayerNorm LayerNorm;
    private readonly Func<Tensor, Tensor> _activation;

    public BertPredictionHeadTransform(PretrainedConfig config) : base(nameof(BertPredictionHeadTransform))
    {
        var hidden = config.Require<long>("hidden_size");
        dense = nn.Linear(hidden, hidden);
        LayerNorm = nn.LayerNorm(hidden, config.Get("layer_norm_eps", 1e-12));
        _activation = Activations.Get(config.Get("hidden_act", "gelu"));
        RegisterComponents();
    }

    public override Tensor forward(Tensor hidden)
    {
        using var scope = NewDisposeScope();
        return LayerNorm.forward(_activation(dense.forward(hidden))).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// <c>cls.predictions</c>: transform, then the vocabulary projection with its own bias. With tied embeddings
/// (the default) the projection reuses the input embedding matrix, so no decoder weight exists or is saved,
/// as in transformers' checkpoints; untied models own <c>cls.predictions.decoder.weight</c>.
/// </summary>
internal sealed class BertLMPredictionHead : nn.Module
{
    private readonly BertPredictionHeadTransform transform;
    private readonly Linear? decoder;
    private readonly Parameter bias;

    public BertLMPredictionHead(PretrainedConfig config, bool tied) : base(nameof(BertLMPredictionHead))
    {
        var vocab = config.Require<long>("vocab_size");
        transform = new BertPredictionHeadTransform(config);
        decoder = tied ? null : nn.Linear(config.Require<long>("hidden_size"), vocab, hasBias: false);
        bias = nn.Parameter(zeros(vocab));
        RegisterComponents();
    }

    public Tensor Forward(Tensor hidden, Tensor wordEmbeddings)
    {
        using var transformed = transform.forward(hidden);
        return F.linear(transformed, decoder?.weight ?? wordEmbeddings, bias);
    }
}

internal sealed class BertOnlyMLMHead : nn.Module
{
    private readonly BertLMPredictionHead predictions;

    public BertOnlyMLMHead(PretrainedConfig config, bool tied) : base(nameof(BertOnlyMLMHead))
    {
        predictions = new BertLMPredictionHead(config, tied);
        RegisterComponents();
    }

    public Tensor Forward(Tensor hidden, Tensor wordEmbeddings) => predictions.Forward(hidden, wordEmbeddings);
}

/// <summary><c>BertForMaskedLM</c>: BERT without pooler and the MLM head, decoder tied to the word embeddings.
/// Labels are token ids with -100 at positions that do not count.</summary>
public sealed class BertForMaskedLM : BertPreTrainedModel
{
    private readonly BertModel bert;
    private readonly BertOnlyMLMHead cls;
    private readonly bool _tied;

    public BertForMaskedLM(PretrainedConfig config) : base(nameof(BertForMaskedLM), config, BertVariant.Bert)
    {
        _tied = config.Get("tie_word_embeddings", true);
        bert = new BertModel(config, addPoolingLayer: false);
        cls = new BertOnlyMLMHead(config, _tied);
        RegisterComponents();
    }

    public override ModelOutput Forward(ModelInputs inputs)
    {
        using var scope = NewDisposeScope();
        var run = bert.Run(inputs);
        var logits = cls.Forward(run.LastHiddenState, bert.WordEmbeddingWeight);
        var loss = inputs.Labels is null ? null : F.cross_entropy(SequenceClassificationLoss.LossInput(logits).view(-1, logits.shape[^1]), inputs.Labels.view(-1).to(ScalarType.Int64));
        return run.WithHead(logits, loss).MoveToOuterDisposeScope();
    }

    // Older checkpoints also store the tied decoder (weight = embeddings, bias = cls.predictions.bias).
    protected override bool IsIgnorableKey(string key) =>
        base.IsIgnorableKey(key) || key == "cls.predictions.decoder.bias" || (_tied && key == "cls.predictions.decoder.weight");
}
