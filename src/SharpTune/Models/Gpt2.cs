using SharpTune.Models.Blocks;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace SharpTune.Models;

/// <summary>GPT-2 hyper-parameters from config.json (GPT-2's own key names).</summary>
public sealed record Gpt2Options
{
    public required int HiddenSize { get; init; }
    public required int InnerSize { get; init; }
    public required int NumLayers { get; init; }
    public required int NumHeads { get; init; }
    public required int VocabSize { get; init; }
    public required int MaxPositions { get; init; }
    public required double LayerNormEps { get; init; }
    public required string Activation { get; init; }
    public required double AttentionDropout { get; init; }
    public required double ResidualDropout { get; init; }
    public required double EmbeddingDropout { get; init; }
    public required bool ScaleAttentionWeights { get; init; }
    public required bool ScaleByInverseLayerIndex { get; init; }

    public int HeadDim => HiddenSize / NumHeads;

    public static Gpt2Options FromConfig(PretrainedConfig config)
    {
        var hidden = config.Require<int>("n_embd", "hidden_size");
        return new Gpt2Options
        {
            HiddenSize = hidden,
            InnerSize = config.Get<int?>("n_inner", null) ?? 4 * hidden,
            NumLayers = config.Require<int>("n_layer", "num_hidden_layers"),
            NumHeads = config.Require<int>("n_head", "num_attention_heads"),
            VocabSize = config.Require<int>("vocab_size"),
            MaxPositions = config.Require<int>("n_positions", "max_position_embeddings"),
            LayerNormEps = config.Get("layer_norm_epsilon", 1e-5),
            Activation = config.Get("activation_function", "gelu_new"),
            AttentionDropout = config.Get("attn_pdrop", 0.1),
            ResidualDropout = config.Get("resid_pdrop", 0.1),
            EmbeddingDropout = config.Get("embd_pdrop", 0.1),
            ScaleAttentionWeights = config.Get("scale_attn_weights", true),
            ScaleByInverseLayerIndex = config.Get("scale_attn_by_inverse_layer_idx", false),
        };
    }
}

/// <summary>
/// GPT-2's "Conv1D": a linear layer whose <c>weight</c> is stored [in, out] (transposed w.r.t. nn.Linear),
/// exactly as the checkpoints hold it.
/// </summary>
public sealed class Conv1D : nn.Module<Tensor, Tensor>
{
    public Conv1D(long inFeatures, long outFeatures) : base(nameof(Conv1D))
    {
        register_parameter("weight", weight = new Parameter(empty(inFeatures, outFeatures).normal_(0, 0.02)));
        register_parameter("bias", bias = new Parameter(zeros(outFeatures)));
    }

    // Named like the parameters, with setters: Module.to(dtype/device) re-assigns converted parameters by name.
    public Parameter weight { get; private set; }
    public Parameter bias { get; private set; }

    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        var output = addmm(bias, input.reshape(-1, input.shape[^1]), weight, 1, 1);
        return output.view([.. input.shape[..^1], output.shape[^1]]).MoveToOuterDisposeScope();
    }
}

/// <summary>GPT-2 attention: fused c_attn (q | k | v), c_proj.</summary>
public sealed class Gpt2Attention : nn.Module
{
    private readonly nn.Module<Tensor, Tensor> _qkv;
    private readonly nn.Module<Tensor, Tensor> _projection;
    private readonly Gpt2Options _options;
    private readonly int _layer;
    private readonly double _queryScale;

    public Gpt2Attention(Gpt2Options options, int layer) : base(nameof(Gpt2Attention))
    {
        _options = options;
        _layer = layer;
        // scaled_dot_product_attention always divides by √head_dim; fold GPT-2's other scalings into the queries.
        _queryScale = (options.ScaleAttentionWeights ? 1.0 : Math.Sqrt(options.HeadDim)) / (options.ScaleByInverseLayerIndex ? layer + 1 : 1);
        register_module("c_attn", _qkv = new Conv1D(options.HiddenSize, 3 * options.HiddenSize));
        register_module("c_proj", _projection = new Conv1D(options.HiddenSize, options.HiddenSize));
    }

    public Tensor Forward(Tensor hidden, DecoderContext context)
    {
        using var scope = NewDisposeScope();
        var (batch, length) = (hidden.shape[0], hidden.shape[1]);
        var parts = _qkv.forward(hidden).split(_options.HiddenSize, dim: 2);
        var heads = parts.Select(p => p.view(batch, length, _options.NumHeads, _options.HeadDim).transpose(1, 2)).ToArray();
        var queries = _queryScale == 1.0 ? heads[0] : heads[0] * _queryScale;
        var attended = CausalSelfAttention.Forward(queries, heads[1], heads[2], _layer, context, training ? _options.AttentionDropout : 0.0);
        return F.dropout(_projection.forward(attended), _options.ResidualDropout, training).MoveToOuterDisposeScope();
    }
}

/// <summary>GPT-2 MLP: c_proj(act(c_fc(x))).</summary>
public sealed class Gpt2Mlp : nn.Module<Tensor, Tensor>
{
    private readonly nn.Module<Tensor, Tensor> _fc;
    private readonly nn.Module<Tensor, Tensor> _projection;
    private readonly Func<Tensor, Tensor> _activation;
    private readonly double _dropout;

    public Gpt2Mlp(Gpt2Options options) : base(nameof(Gpt2Mlp))
    {
        _activation = Activations.Get(options.Activation);
        _dropout = options.ResidualDropout;
        register_module("c_fc", _fc = new Conv1D(options.HiddenSize, options.InnerSize));
        register_module("c_proj", _projection = new Conv1D(options.InnerSize, options.HiddenSize));
    }

    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        return F.dropout(_projection.forward(_activation(_fc.forward(input))), _dropout, training).MoveToOuterDisposeScope();
    }
}

/// <summary>GPT-2 block: x + attn(ln_1(x)), then x + mlp(ln_2(x)).</summary>
public sealed class Gpt2Block : nn.Module, IDecoderLayer
{
    private readonly LayerNorm _norm1;
    private readonly Gpt2Attention _attention;
    private readonly LayerNorm _norm2;
    private readonly Gpt2Mlp _mlp;

    public Gpt2Block(Gpt2Options options, int layer) : base(nameof(Gpt2Block))
    {
        register_module("ln_1", _norm1 = nn.LayerNorm(options.HiddenSize, options.LayerNormEps));
        register_module("attn", _attention = new Gpt2Attention(options, layer));
        register_module("ln_2", _norm2 = nn.LayerNorm(options.HiddenSize, options.LayerNormEps));
        register_module("mlp", _mlp = new Gpt2Mlp(options));
    }

    public Tensor Forward(Tensor hidden, DecoderContext context)
    {
        using var scope = NewDisposeScope();
        hidden = hidden + _attention.Forward(_norm1.forward(hidden), context);
        return (hidden + _mlp.forward(_norm2.forward(hidden))).MoveToOuterDisposeScope();
    }
}

/// <summary>transformers' GPT2Model: wte + wpe (learned positions), h, ln_f.</summary>
public sealed class Gpt2Model : DecoderModel
{
    private readonly Embedding _positionEmbeddings;

    public Gpt2Model(PretrainedConfig config) : base("GPT2Model", config, "transformer")
    {
        Options = Gpt2Options.FromConfig(config);
        AddEmbeddings("wte", nn.Embedding(Options.VocabSize, Options.HiddenSize));
        register_module("wpe", _positionEmbeddings = nn.Embedding(Options.MaxPositions, Options.HiddenSize));
        AddLayers("h", Options.NumLayers, i => new Gpt2Block(Options, i));
        AddFinalNorm("ln_f", nn.LayerNorm(Options.HiddenSize, Options.LayerNormEps));
    }

    public Gpt2Options Options { get; }

    protected override Tensor Embed(Tensor inputIds, Tensor positionIds)
    {
        using var scope = NewDisposeScope();
        var embedded = base.Embed(inputIds, positionIds) + _positionEmbeddings.forward(positionIds);
        return F.dropout(embedded, Options.EmbeddingDropout, training).MoveToOuterDisposeScope();
    }

    // Older GPT-2 checkpoints store the causal mask as attn.bias / attn.masked_bias buffers.
    protected override bool IsIgnorableKey(string key) =>
        base.IsIgnorableKey(key) || key.EndsWith(".attn.bias", StringComparison.Ordinal) || key.EndsWith(".attn.masked_bias", StringComparison.Ordinal);
}

/// <summary>transformers' GPT2LMHeadModel: "transformer" + "lm_head" tied to wte.</summary>
public sealed class Gpt2LMHeadModel(PretrainedConfig config)
    : CausalLMModel("GPT2LMHeadModel", config, new Gpt2Model(config), tiedByDefault: true);

/// <summary>transformers' GPT2ForSequenceClassification: the score head at the last non-padding token.</summary>
public sealed class Gpt2ForSequenceClassification(PretrainedConfig config)
    : DecoderForSequenceClassification("GPT2ForSequenceClassification", config, new Gpt2Model(config));

public static class Gpt2
{
    public static IReadOnlyList<ModelRegistration> Registrations =>
    [
        new("GPT2Model", "gpt2", ModelTask.Base, config => new Gpt2Model(config)),
        new("GPT2LMHeadModel", "gpt2", ModelTask.CausalLM, config => new Gpt2LMHeadModel(config)),
        new("GPT2ForSequenceClassification", "gpt2", ModelTask.SequenceClassification, config => new Gpt2ForSequenceClassification(config)),
    ];
}
