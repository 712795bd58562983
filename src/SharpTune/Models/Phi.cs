using SharpTune.Models.Blocks;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace SharpTune.Models;

/// <summary>Phi (phi-1/1.5/2) hyper-parameters from config.json.</summary>
public sealed record PhiOptions
{
    public required int HiddenSize { get; init; }
    public required int IntermediateSize { get; init; }
    public required int NumLayers { get; init; }
    public required int NumHeads { get; init; }
    public required int NumKeyValueHeads { get; init; }
    public required int HeadDim { get; init; }
    public required int VocabSize { get; init; }
    public required double LayerNormEps { get; init; }
    public required string HiddenAct { get; init; }
    public required double AttentionDropout { get; init; }
    public required double ResidualDropout { get; init; }
    public required double EmbeddingDropout { get; init; }
    /// <summary>LayerNorm on each query/key head (q_layernorm, k_layernorm).</summary>
    public required bool QkLayerNorm { get; init; }
    /// <summary>Rotary over head_dim × partial_rotary_factor (0.4 for phi-2).</summary>
    public required RotaryEmbedding Rotary { get; init; }

    public static PhiOptions FromConfig(PretrainedConfig config)
    {
        var hidden = config.Require<int>("hidden_size");
        var heads = config.Require<int>("num_attention_heads");
        return new PhiOptions
        {
            HiddenSize = hidden,
            IntermediateSize = config.Require<int>("intermediate_size"),
            NumLayers = config.Require<int>("num_hidden_layers"),
            NumHeads = heads,
            NumKeyValueHeads = config.Get("num_key_value_heads", heads),
            HeadDim = hidden / heads,
            VocabSize = config.Require<int>("vocab_size"),
            LayerNormEps = config.Get("layer_norm_eps", 1e-5),
            HiddenAct = config.Get("hidden_act", "gelu_new"),
            AttentionDropout = config.Get("attention_dropout", 0.0),
            ResidualDropout = config.Get("resid_pdrop", 0.0),
            EmbeddingDropout = config.Get("embd_pdrop", 0.0),
            QkLayerNorm = config.Get("qk_layernorm", false),
            Rotary = RotaryEmbedding.FromConfig(config, hidden / heads, defaultPartialFactor: 0.5),
        };
    }
}

/// <summary>Phi attention: q_proj, k_proj, v_proj, dense (all with bias), partial rotary.</summary>
public sealed class PhiAttention : nn.Module
{
    private readonly nn.Module<Tensor, Tensor> _query;
    private readonly nn.Module<Tensor, Tensor> _key;
    private readonly nn.Module<Tensor, Tensor> _value;
    private readonly nn.Module<Tensor, Tensor> _dense;
    private readonly LayerNorm? _queryNorm;
    private readonly LayerNorm? _keyNorm;
    private readonly PhiOptions _options;
    private readonly int _layer;

    public PhiAttention(PhiOptions options, int layer) : base(nameof(PhiAttention))
    {
        _options = options;
        _layer = layer;
        register_module("q_proj", _query = nn.Linear(options.HiddenSize, options.NumHeads * options.HeadDim));
        register_module("k_proj", _key = nn.Linear(options.HiddenSize, options.NumKeyValueHeads * options.HeadDim));
        register_module("v_proj", _value = nn.Linear(options.HiddenSize, options.NumKeyValueHeads * options.HeadDim));
        register_module("dense", _dense = nn.Linear(options.NumHeads * options.HeadDim, options.HiddenSize));
        if (options.QkLayerNorm)
        {
            register_module("q_layernorm", _queryNorm = nn.LayerNorm(options.HeadDim, options.LayerNormEps));
            register_module("k_layernorm", _keyNorm = nn.LayerNorm(options.HeadDim, options.LayerNormEps));
        }
    }

    public Tensor Forward(Tensor hidden, DecoderContext context)
    {
        using var scope = NewDisposeScope();
        var (batch, length) = (hidden.shape[0], hidden.shape[1]);
        var queries = _query.forward(hidden).view(batch, length, -1, _options.HeadDim).transpose(1, 2);
        var keys = _key.forward(hidden).view(batch, length, -1, _options.HeadDim).transpose(1, 2);
        var values = _value.forward(hidden).view(batch, length, -1, _options.HeadDim).transpose(1, 2);
        if (_queryNorm is not null && _keyNorm is not null)
            (queries, keys) = (_queryNorm.forward(queries), _keyNorm.forward(keys));
        (queries, keys) = context.Rotate(queries, keys);
        var attended = CausalSelfAttention.Forward(queries, keys, values, _layer, context, training ? _options.AttentionDropout : 0.0);
        return _dense.forward(attended).MoveToOuterDisposeScope();
    }
}

/// <summary>Phi's parallel block: one LayerNorm feeds both attention and MLP; x + attn(n) + mlp(n).</summary>
public sealed class PhiDecoderLayer : nn.Module, IDecoderLayer
{
    private readonly PhiAttention _attention;
    private readonly FeedForward _mlp;
    private readonly LayerNorm _inputNorm;
    private readonly double _residualDropout;

    public PhiDecoderLayer(PhiOptions options, int layer) : base(nameof(PhiDecoderLayer))
    {
        _residualDropout = options.ResidualDropout;
        register_module("self_attn", _attention = new PhiAttention(options, layer));
        register_module("mlp", _mlp = new FeedForward(options.HiddenSize, options.IntermediateSize, options.HiddenAct, "fc1", "fc2"));
        register_module("input_layernorm", _inputNorm = nn.LayerNorm(options.HiddenSize, options.LayerNormEps));
    }

    public Tensor Forward(Tensor hidden, DecoderContext context)
    {
        using var scope = NewDisposeScope();
        var normalized = _inputNorm.forward(hidden);
        var attended = F.dropout(_attention.Forward(normalized, context), _residualDropout, training);
        var fed = F.dropout(_mlp.forward(normalized), _residualDropout, training);
        return (attended + fed + hidden).MoveToOuterDisposeScope();
    }
}

/// <summary>transformers' PhiModel: embed_tokens, layers, final_layernorm.</summary>
public sealed class PhiModel : DecoderModel
{
    public PhiModel(PretrainedConfig config) : base(nameof(PhiModel), config, "model")
    {
        Options = PhiOptions.FromConfig(config);
        AddEmbeddings("embed_tokens", nn.Embedding(Options.VocabSize, Options.HiddenSize));
        AddLayers("layers", Options.NumLayers, i => new PhiDecoderLayer(Options, i));
        AddFinalNorm("final_layernorm", nn.LayerNorm(Options.HiddenSize, Options.LayerNormEps));
    }

    public PhiOptions Options { get; }
    protected override RotaryEmbedding Rotary => Options.Rotary;

    protected override Tensor Embed(Tensor inputIds, Tensor positionIds) =>
        F.dropout(base.Embed(inputIds, positionIds), Options.EmbeddingDropout, training);
}

/// <summary>transformers' PhiForCausalLM: "model" + "lm_head" with a bias (untied).</summary>
public sealed class PhiForCausalLM(PretrainedConfig config)
    : CausalLMModel(nameof(PhiForCausalLM), config, new PhiModel(config), headBias: true);

/// <summary>transformers' PhiForSequenceClassification: the score head at the last non-padding token.</summary>
public sealed class PhiForSequenceClassification(PretrainedConfig config)
    : DecoderForSequenceClassification("PhiForSequenceClassification", config, new PhiModel(config));

public static class Phi
{
    public static IReadOnlyList<ModelRegistration> Registrations =>
    [
        new("PhiModel", "phi", ModelTask.Base, config => new PhiModel(config)),
        new("PhiForCausalLM", "phi", ModelTask.CausalLM, config => new PhiForCausalLM(config)),
        new("PhiForSequenceClassification", "phi", ModelTask.SequenceClassification, config => new PhiForSequenceClassification(config)),
    ];
}
