using SharpTune.Models.Blocks;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace SharpTune.Models;

/// <summary>GPT-NeoX (Pythia) hyper-parameters from config.json; 4.x <c>rotary_pct</c>/<c>rotary_emb_base</c> are read too.</summary>
public sealed record GptNeoXOptions
{
    public required int HiddenSize { get; init; }
    public required int IntermediateSize { get; init; }
    public required int NumLayers { get; init; }
    public required int NumHeads { get; init; }
    public required int VocabSize { get; init; }
    public required double LayerNormEps { get; init; }
    public required string HiddenAct { get; init; }
    public required bool AttentionBias { get; init; }
    public required bool ParallelResidual { get; init; }
    public required double AttentionDropout { get; init; }
    public required double HiddenDropout { get; init; }
    public required RotaryEmbedding Rotary { get; init; }

    public int HeadDim => HiddenSize / NumHeads;

    public static GptNeoXOptions FromConfig(PretrainedConfig config)
    {
        var hidden = config.Require<int>("hidden_size");
        var heads = config.Require<int>("num_attention_heads");
        return new GptNeoXOptions
        {
            HiddenSize = hidden,
            IntermediateSize = config.Require<int>("intermediate_size"),
            NumLayers = config.Require<int>("num_hidden_layers"),
            NumHeads = heads,
            VocabSize = config.Require<int>("vocab_size"),
            LayerNormEps = config.Get("layer_norm_eps", 1e-5),
            HiddenAct = config.Get("hidden_act", "gelu"),
            AttentionBias = config.Get("attention_bias", true),
            ParallelResidual = config.Get("use_parallel_residual", true),
            AttentionDropout = config.Get("attention_dropout", 0.0),
            HiddenDropout = config.Get("hidden_dropout", 0.0),
            Rotary = RotaryEmbedding.FromConfig(config, hidden / heads,
                defaultPartialFactor: config.Get("rotary_pct", 0.25), defaultTheta: config.Get("rotary_emb_base", 10000.0)),
        };
    }
}

/// <summary>
/// GPT-NeoX attention: one fused query_key_value projection whose output is laid out per head as
/// [q | k | v] (head-interleaved, unlike GPT-2's [all q | all k | all v]), then dense.
/// </summary>
public sealed class GptNeoXAttention : nn.Module
{
    private readonly nn.Module<Tensor, Tensor> _qkv;
    private readonly nn.Module<Tensor, Tensor> _dense;
    private readonly GptNeoXOptions _options;
    private readonly int _layer;

    public GptNeoXAttention(GptNeoXOptions options, int layer) : base(nameof(GptNeoXAttention))
    {
        _options = options;
        _layer = layer;
        register_module("query_key_value", _qkv = nn.Linear(options.HiddenSize, 3 * options.HiddenSize, options.AttentionBias));
        register_module("dense", _dense = nn.Linear(options.HiddenSize, options.HiddenSize, options.AttentionBias));
    }

    public Tensor Forward(Tensor hidden, DecoderContext context)
    {
        using var scope = NewDisposeScope();
        var (batch, length) = (hidden.shape[0], hidden.shape[1]);
        var perHead = _qkv.forward(hidden).view(batch, length, _options.NumHeads, 3 * _options.HeadDim).transpose(1, 2);
        var parts = perHead.chunk(3, dim: -1);
        var (queries, keys) = context.Rotate(parts[0], parts[1]);
        var attended = CausalSelfAttention.Forward(queries, keys, parts[2], _layer, context, training ? _options.AttentionDropout : 0.0);
        return _dense.forward(attended).MoveToOuterDisposeScope();
    }
}

/// <summary>GPT-NeoX layer: parallel residual x + attn(ln1(x)) + mlp(ln2(x)) (Pythia), or the sequential form.</summary>
public sealed class GptNeoXLayer : nn.Module, IDecoderLayer
{
    private readonly LayerNorm _inputNorm;
    private readonly LayerNorm _postAttentionNorm;
    private readonly GptNeoXAttention _attention;
    private readonly FeedForward _mlp;
    private readonly GptNeoXOptions _options;

    public GptNeoXLayer(GptNeoXOptions options, int layer) : base(nameof(GptNeoXLayer))
    {
        _options = options;
        register_module("input_layernorm", _inputNorm = nn.LayerNorm(options.HiddenSize, options.LayerNormEps));
        register_module("post_attention_layernorm", _postAttentionNorm = nn.LayerNorm(options.HiddenSize, options.LayerNormEps));
        register_module("attention", _attention = new GptNeoXAttention(options, layer));
        register_module("mlp", _mlp = new FeedForward(options.HiddenSize, options.IntermediateSize, options.HiddenAct, "dense_h_to_4h", "dense_4h_to_h"));
    }

    public Tensor Forward(Tensor hidden, DecoderContext context)
    {
        using var scope = NewDisposeScope();
        var attended = F.dropout(_attention.Forward(_inputNorm.forward(hidden), context), _options.HiddenDropout, training);
        Tensor output;
        if (_options.ParallelResidual)
            output = Dropout(_mlp.forward(_postAttentionNorm.forward(hidden))) + attended + hidden;
        else
        {
            attended = attended + hidden;
            output = Dropout(_mlp.forward(_postAttentionNorm.forward(attended))) + attended;
        }
        return output.MoveToOuterDisposeScope();
    }

    private Tensor Dropout(Tensor x) => F.dropout(x, _options.HiddenDropout, training);
}

/// <summary>transformers' GPTNeoXModel: embed_in, layers, final_layer_norm.</summary>
public sealed class GptNeoXModel : DecoderModel
{
    public GptNeoXModel(PretrainedConfig config) : base("GPTNeoXModel", config, "gpt_neox")
    {
        Options = GptNeoXOptions.FromConfig(config);
        AddEmbeddings("embed_in", nn.Embedding(Options.VocabSize, Options.HiddenSize));
        AddLayers("layers", Options.NumLayers, i => new GptNeoXLayer(Options, i));
        AddFinalNorm("final_layer_norm", nn.LayerNorm(Options.HiddenSize, Options.LayerNormEps));
    }

    public GptNeoXOptions Options { get; }
    protected override RotaryEmbedding Rotary => Options.Rotary;

    protected override Tensor Embed(Tensor inputIds, Tensor positionIds) =>
        F.dropout(base.Embed(inputIds, positionIds), Options.HiddenDropout, training);

    // Pythia checkpoints saved by older transformers carry the causal mask buffers.
    protected override bool IsIgnorableKey(string key) =>
        base.IsIgnorableKey(key) || key.EndsWith(".attention.bias", StringComparison.Ordinal) || key.EndsWith(".attention.masked_bias", StringComparison.Ordinal);
}

/// <summary>transformers' GPTNeoXForCausalLM: "gpt_neox" + the untied "embed_out" head.</summary>
public sealed class GptNeoXForCausalLM(PretrainedConfig config)
    : CausalLMModel("GPTNeoXForCausalLM", config, new GptNeoXModel(config), headName: "embed_out");

/// <summary>transformers' GPTNeoXForSequenceClassification: the score head at the last non-padding token.</summary>
public sealed class GptNeoXForSequenceClassification(PretrainedConfig config)
    : DecoderForSequenceClassification("GPTNeoXForSequenceClassification", config, new GptNeoXModel(config));

public static class GptNeoX
{
    public static IReadOnlyList<ModelRegistration> Registrations =>
    [
        new("GPTNeoXModel", "gpt_neox", ModelTask.Base, config => new GptNeoXModel(config)),
        new("GPTNeoXForCausalLM", "gpt_neox", ModelTask.CausalLM, config => new GptNeoXForCausalLM(config)),
        new("GPTNeoXForSequenceClassification", "gpt_neox", ModelTask.SequenceClassification, config => new GptNeoXForSequenceClassification(config)),
    ];
}
