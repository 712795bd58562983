using SharpTune.Models.Blocks;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace SharpTune.Models;

/// <summary>
/// DistilBERT (transformers' modeling_distilbert): a 6-layer post-norm BERT without token types or pooler, with
/// its own config names (<c>dim</c>, <c>n_heads</c>, <c>hidden_dim</c>, <c>activation</c>) and module names.
/// </summary>
public static class DistilBert
{
    public static IReadOnlyList<ModelRegistration> Registrations { get; } =
    [
        new("DistilBertModel", "distilbert", ModelTask.Base, config => new DistilBertModel(config)),
        new("DistilBertForSequenceClassification", "distilbert", ModelTask.SequenceClassification, config => new DistilBertForSequenceClassification(config)),
    ];

    /// <summary>DistilBERT fixes every LayerNorm's epsilon at 1e-12.</summary>
    internal const double LayerNormEps = 1e-12;
}

/// <summary>Base of the DistilBERT classes: "distilbert" prefix and transformers' weight init.</summary>
public abstract class DistilBertPreTrainedModel : PreTrainedModel
{
    private protected DistilBertPreTrainedModel(string name, PretrainedConfig config) : base(name, config)
    {
    }

    public override string BaseModelPrefix => "distilbert";

    protected override void InitializeMissing(string name, Tensor parameter)
    {
        if (name.EndsWith("position_embeddings.weight", StringComparison.Ordinal) && Config.Get("sinusoidal_pos_embds", false))
        {
            using var noGrad = no_grad();
            using var table = DistilBertEmbeddings.Sinusoidal(parameter.shape[0], parameter.shape[1]);
            parameter.copy_(table);
            return;
        }
        base.InitializeMissing(name, parameter);
        EncoderInit.ZeroPaddingRow(name, parameter, "word_embeddings.weight", Config.Get<long?>("pad_token_id", 0));
    }
}

internal sealed class DistilBertEmbeddings : nn.Module
{
    private readonly Embedding word_embeddings;
    private readonly Embedding position_embeddings;
    private readonly LayerNorm LayerNorm;
    private readonly Dropout dropout;

    public DistilBertEmbeddings(PretrainedConfig config) : base(nameof(DistilBertEmbeddings))
    {
        var dim = config.Require<long>("dim", "hidden_size");
        word_embeddings = nn.Embedding(config.Require<long>("vocab_size"), dim, padding_idx: config.Get<long?>("pad_token_id", 0));
        position_embeddings = nn.Embedding(config.Get("max_position_embeddings", 512L), dim);
        LayerNorm = nn.LayerNorm(dim, DistilBert.LayerNormEps);
        dropout = nn.Dropout(config.Get("dropout", 0.1));
        RegisterComponents();
    }

    public Tensor Forward(Tensor inputIds, Tensor? positionIds)
    {
        using var scope = NewDisposeScope();
        positionIds ??= arange(inputIds.shape[1], dtype: ScalarType.Int64, device: inputIds.device).unsqueeze(0);
        var embedded = word_embeddings.forward(inputIds) + position_embeddings.forward(positionIds);
        return dropout.forward(LayerNorm.forward(embedded)).MoveToOuterDisposeScope();
    }

    /// <summary>The fixed sin/cos table of <c>sinusoidal_pos_embds</c>: sin at even, cos at odd dimensions.</summary>
    public static Tensor Sinusoidal(long positions, long dim)
    {
        using var scope = NewDisposeScope();
        var position = arange(positions, dtype: ScalarType.Float64).unsqueeze(1);
        var pairIndex = arange(dim, dtype: ScalarType.Float64).div(2, rounding_mode: RoundingMode.floor);
        var angles = position / pow(10000.0, pairIndex * 2 / dim).unsqueeze(0);
        var table = zeros(positions, dim, dtype: ScalarType.Float64);
        table[TensorIndex.Colon, TensorIndex.Slice(0, null, 2)] = angles[TensorIndex.Colon, TensorIndex.Slice(0, null, 2)].sin();
        table[TensorIndex.Colon, TensorIndex.Slice(1, null, 2)] = angles[TensorIndex.Colon, TensorIndex.Slice(1, null, 2)].cos();
        return table.to(ScalarType.Float32).MoveToOuterDisposeScope();
    }
}

internal sealed class MultiHeadSelfAttention : nn.Module
{
    private readonly Linear q_lin;
    private readonly Linear k_lin;
    private readonly Linear v_lin;
    private readonly Linear out_lin;
    private readonly int _heads;
    private readonly double _dropout;

    public MultiHeadSelfAttention(PretrainedConfig config) : base(nameof(MultiHeadSelfAttention))
    {
        var dim = config.Require<long>("dim", "hidden_size");
        _heads = config.Require<int>("n_heads", "num_attention_heads");
        if (dim % _heads != 0)
            throw new InvalidDataException($"{config.SourcePath ?? PretrainedConfig.FileName}: dim {dim} is not a multiple of n_heads {_heads}");
        _dropout = config.Get("attention_dropout", 0.1);
        q_lin = nn.Linear(dim, dim);
        k_lin = nn.Linear(dim, dim);
        v_lin = nn.Linear(dim, dim);
        out_lin = nn.Linear(dim, dim);
        RegisterComponents();
    }

    public Tensor Forward(Tensor hidden, Tensor? keyMask)
    {
        using var scope = NewDisposeScope();
        var context = BidirectionalAttention.Attend(q_lin.forward(hidden), k_lin.forward(hidden), v_lin.forward(hidden), _heads, keyMask,
            training ? _dropout : 0.0);
        return out_lin.forward(context).MoveToOuterDisposeScope();
    }
}

/// <summary>lin1 → activation → lin2 → dropout.</summary>
internal sealed class DistilBertFeedForward : nn.Module<Tensor, Tensor>
{
    private readonly Linear lin1;
    private readonly Linear lin2;
    private readonly Dropout dropout;
    private readonly Func<Tensor, Tensor> _activation;

    public DistilBertFeedForward(PretrainedConfig config) : base(nameof(DistilBertFeedForward))
    {
        var dim = config.Require<long>("dim", "hidden_size");
        var hidden = config.Require<long>("hidden_dim", "intermediate_size");
        lin1 = nn.Linear(dim, hidden);
        lin2 = nn.Linear(hidden, dim);
        dropout = nn.Dropout(config.Get("dropout", 0.1));
        _activation = Activations.Get(config.Get("activation", "gelu"));
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        return dropout.forward(lin2.forward(_activation(lin1.forward(x)))).MoveToOuterDisposeScope();
    }
}

internal sealed class TransformerBlock : nn.Module
{
    private readonly MultiHeadSelfAttention attention;
    private readonly LayerNorm sa_layer_norm;
    private readonly DistilBertFeedForward ffn;
    private readonly LayerNorm output_layer_norm;

    public TransformerBlock(PretrainedConfig config) : base(nameof(TransformerBlock))
    {
        var dim = config.Require<long>("dim", "hidden_size");
        attention = new MultiHeadSelfAttention(config);
        sa_layer_norm = nn.LayerNorm(dim, DistilBert.LayerNormEps);
        ffn = new DistilBertFeedForward(config);
        output_layer_norm = nn.LayerNorm(dim, DistilBert.LayerNormEps);
        RegisterComponents();
    }

    public Tensor Forward(Tensor hidden, Tensor? keyMask)
    {
        using var scope = NewDisposeScope();
        var attended = sa_layer_norm.forward(attention.Forward(hidden, keyMask) + hidden);
        return output_layer_norm.forward(ffn.forward(attended) + attended).MoveToOuterDisposeScope();
    }
}

internal sealed class DistilBertTransformer : nn.Module, IGradientCheckpointable
{
    private readonly ModuleList<TransformerBlock> layer;

    public DistilBertTransformer(PretrainedConfig config) : base(nameof(DistilBertTransformer))
    {
        layer = new ModuleList<TransformerBlock>(Enumerable.Range(0, config.Require<int>("n_layers", "num_hidden_layers")).Select(_ => new TransformerBlock(config)).ToArray());
        RegisterComponents();
    }

    public bool GradientCheckpointing { get; set; }

    /// <summary>Runs every layer, adding each output to <paramref name="states"/> when given (caller's dispose scope).</summary>
    public Tensor Forward(Tensor hidden, Tensor? keyMask, List<Tensor>? states) =>
        Blocks.GradientCheckpointing.RunLayers(this, layer, (block, x) => block.Forward(x[0]!, x[1]), hidden, states, keyMask);
}

/// <summary><c>DistilBertModel</c>: embeddings and transformer layers.</summary>
public sealed class DistilBertModel : DistilBertPreTrainedModel
{
    private readonly DistilBertEmbeddings embeddings;
    private readonly DistilBertTransformer transformer;

    public DistilBertModel(PretrainedConfig config) : base(nameof(DistilBertModel), config)
    {
        embeddings = new DistilBertEmbeddings(config);
        transformer = new DistilBertTransformer(config);
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
        var hidden = embeddings.Forward(inputs.InputIds, inputs.PositionIds);
        states?.Add(hidden);
        var keyMask = inputs.AttentionMask is null ? null : BidirectionalAttention.KeyMask(inputs.AttentionMask);
        return new ModelOutput { LastHiddenState = transformer.Forward(hidden, keyMask, states), HiddenStates = states };
    }
}

/// <summary><c>DistilBertForSequenceClassification</c>: first token → pre_classifier → ReLU → dropout → classifier.</summary>
public sealed class DistilBertForSequenceClassification : DistilBertPreTrainedModel
{
    private readonly DistilBertModel distilbert;
    private readonly Linear pre_classifier;
    private readonly Linear classifier;
    private readonly Dropout dropout;

    public DistilBertForSequenceClassification(PretrainedConfig config) : base(nameof(DistilBertForSequenceClassification), config)
    {
        var dim = config.Require<long>("dim", "hidden_size");
        distilbert = new DistilBertModel(config);
        pre_classifier = nn.Linear(dim, dim);
        classifier = nn.Linear(dim, config.NumLabels);
        dropout = nn.Dropout(config.Get("seq_classif_dropout", 0.2));
        RegisterComponents();
    }

    public override ModelOutput Forward(ModelInputs inputs)
    {
        using var scope = NewDisposeScope();
        var run = distilbert.Run(inputs);
        var pooled = dropout.forward(F.relu(pre_classifier.forward(run.LastHiddenState.select(1, 0))));
        var logits = classifier.forward(pooled);
        return run.WithHead(logits, SequenceClassificationLoss.Compute(logits, inputs, Config)).MoveToOuterDisposeScope();
    }
}
