using SharpTune.Models.Blocks;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SharpTune.Models;

/// <summary>
/// Llama's hyper-parameters from config.json, plus the switches that let close relatives reuse Llama's classes
/// (Qwen2: bias on q/k/v only).
/// </summary>
public sealed record LlamaOptions
{
    public required int HiddenSize { get; init; }
    public required int IntermediateSize { get; init; }
    public required int NumLayers { get; init; }
    public required int NumHeads { get; init; }
    public required int NumKeyValueHeads { get; init; }
    public required int HeadDim { get; init; }
    public required int VocabSize { get; init; }
    public required double RmsNormEps { get; init; }
    public required string HiddenAct { get; init; }
    public required double AttentionDropout { get; init; }
    public required RotaryEmbedding Rotary { get; init; }
    /// <summary>Bias on q_proj, k_proj and v_proj.</summary>
    public required bool QkvBias { get; init; }
    /// <summary>Bias on o_proj.</summary>
    public required bool OutputBias { get; init; }
    public required bool MlpBias { get; init; }

    public static LlamaOptions FromConfig(PretrainedConfig config)
    {
        var hidden = config.Require<int>("hidden_size");
        var heads = config.Require<int>("num_attention_heads");
        var headDim = config.Get("head_dim", hidden / heads);
        var attentionBias = config.Get("attention_bias", false);
        return new LlamaOptions
        {
            HiddenSize = hidden,
            IntermediateSize = config.Require<int>("intermediate_size"),
            NumLayers = config.Require<int>("num_hidden_layers"),
            NumHeads = heads,
            NumKeyValueHeads = config.Get("num_key_value_heads", heads),
            HeadDim = headDim,
            VocabSize = config.Require<int>("vocab_size"),
            RmsNormEps = config.Get("rms_norm_eps", 1e-6),
            HiddenAct = config.Get("hidden_act", "silu"),
            AttentionDropout = config.Get("attention_dropout", 0.0),
            Rotary = RotaryEmbedding.FromConfig(config, headDim),
            QkvBias = attentionBias,
            OutputBias = attentionBias,
            MlpBias = config.Get("mlp_bias", false),
        };
    }
}

/// <summary>Grouped-query self-attention with rotary embeddings: q_proj, k_proj, v_proj, o_proj.</summary>
public sealed class LlamaAttention : nn.Module
{
    private readonly nn.Module<Tensor, Tensor> _query;
    private readonly nn.Module<Tensor, Tensor> _key;
    private readonly nn.Module<Tensor, Tensor> _value;
    private readonly nn.Module<Tensor, Tensor> _output;
    private readonly LlamaOptions _options;
    private readonly int _layer;

    public LlamaAttention(LlamaOptions options, int layer) : base(nameof(LlamaAttention))
    {
        _options = options;
        _layer = layer;
        register_module("q_proj", _query = nn.Linear(options.HiddenSize, options.NumHeads * options.HeadDim, options.QkvBias));
        register_module("k_proj", _key = nn.Linear(options.HiddenSize, options.NumKeyValueHeads * options.HeadDim, options.QkvBias));
        register_module("v_proj", _value = nn.Linear(options.HiddenSize, options.NumKeyValueHeads * options.HeadDim, options.QkvBias));
        register_module("o_proj", _output = nn.Linear(options.NumHeads * options.HeadDim, options.HiddenSize, options.OutputBias));
    }

    public Tensor Forward(Tensor hidden, DecoderContext context)
    {
        using var scope = NewDisposeScope();
        var (batch, length) = (hidden.shape[0], hidden.shape[1]);
        var queries = _query.forward(hidden).view(batch, length, -1, _options.HeadDim).transpose(1, 2);
        var keys = _key.forward(hidden).view(batch, length, -1, _options.HeadDim).transpose(1, 2);
        var values = _value.forward(hidden).view(batch, length, -1, _options.HeadDim).transpose(1, 2);
        (queries, keys) = context.Rotate(queries, keys);
        var attended = CausalSelfAttention.Forward(queries, keys, values, _layer, context, training ? _options.AttentionDropout : 0.0);
        return _output.forward(attended).MoveToOuterDisposeScope();
    }
}

/// <summary>Gated MLP: down_proj(act(gate_proj(x)) · up_proj(x)).</summary>
public sealed class LlamaMlp : nn.Module<Tensor, Tensor>
{
    private readonly nn.Module<Tensor, Tensor> _gate;
    private readonly nn.Module<Tensor, Tensor> _up;
    private readonly nn.Module<Tensor, Tensor> _down;
    private readonly Func<Tensor, Tensor> _activation;

    public LlamaMlp(LlamaOptions options) : base(nameof(LlamaMlp))
    {
        _activation = Activations.Get(options.HiddenAct);
        register_module("gate_proj", _gate = nn.Linear(options.HiddenSize, options.IntermediateSize, options.MlpBias));
        register_module("up_proj", _up = nn.Linear(options.HiddenSize, options.IntermediateSize, options.MlpBias));
        register_module("down_proj", _down = nn.Linear(options.IntermediateSize, options.HiddenSize, options.MlpBias));
    }

    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        return _down.forward(_activation(_gate.forward(input)) * _up.forward(input)).MoveToOuterDisposeScope();
    }
}

/// <summary>Pre-norm decoder layer: x + attn(norm(x)), then x + mlp(norm(x)).</summary>
public sealed class LlamaDecoderLayer : nn.Module, IDecoderLayer
{
    private readonly LlamaAttention _attention;
    private readonly LlamaMlp _mlp;
    private readonly RMSNorm _inputNorm;
    private readonly RMSNorm _postAttentionNorm;

    public LlamaDecoderLayer(LlamaOptions options, int layer) : base(nameof(LlamaDecoderLayer))
    {
        register_module("self_attn", _attention = new LlamaAttention(options, layer));
        register_module("mlp", _mlp = new LlamaMlp(options));
        register_module("input_layernorm", _inputNorm = new RMSNorm(options.HiddenSize, options.RmsNormEps));
        register_module("post_attention_layernorm", _postAttentionNorm = new RMSNorm(options.HiddenSize, options.RmsNormEps));
    }

    public Tensor Forward(Tensor hidden, DecoderContext context)
    {
        using var scope = NewDisposeScope();
        var normalized = _inputNorm.forward(hidden);
        hidden = hidden + _attention.Forward(normalized, context);
        normalized = _postAttentionNorm.forward(hidden);
        return (hidden + _mlp.forward(normalized)).MoveToOuterDisposeScope();
    }
}

/// <summary>transformers' LlamaModel: embed_tokens, layers, norm.</summary>
public class LlamaModel : DecoderModel
{
    public LlamaModel(PretrainedConfig config) : this(config, LlamaOptions.FromConfig(config))
    {
    }

    /// <summary>A Llama stack with explicit options; <paramref name="name"/> is the transformers class it stands for.</summary>
    public LlamaModel(PretrainedConfig config, LlamaOptions options, string name = nameof(LlamaModel)) : base(name, config, "model")
    {
        Options = options;
        AddEmbeddings("embed_tokens", nn.Embedding(options.VocabSize, options.HiddenSize));
        AddLayers("layers", options.NumLayers, i => new LlamaDecoderLayer(options, i));
        AddFinalNorm("norm", new RMSNorm(options.HiddenSize, options.RmsNormEps));
    }

    public LlamaOptions Options { get; }
    protected override RotaryEmbedding Rotary => Options.Rotary;
}

/// <summary>transformers' LlamaForCausalLM: "model" + "lm_head" (tied when tie_word_embeddings, e.g. stories260K).</summary>
public class LlamaForCausalLM : CausalLMModel
{
    public LlamaForCausalLM(PretrainedConfig config) : this(config, LlamaOptions.FromConfig(config))
    {
    }

    /// <summary>A Llama causal LM with explicit options; the names are the transformers classes it stands for.</summary>
    public LlamaForCausalLM(PretrainedConfig config, LlamaOptions options, string name = nameof(LlamaForCausalLM), string modelName = nameof(LlamaModel))
        : base(name, config, new LlamaModel(config, options, modelName))
    {
    }
}

/// <summary>transformers' LlamaForSequenceClassification: the score head at the last non-padding token.</summary>
public sealed class LlamaForSequenceClassification(PretrainedConfig config)
    : DecoderForSequenceClassification("LlamaForSequenceClassification", config, new LlamaModel(config));

public static class Llama
{
    public static IReadOnlyList<ModelRegistration> Registrations =>
    [
        new("LlamaModel", "llama", ModelTask.Base, config => new LlamaModel(config)),
        new("LlamaForCausalLM", "llama", ModelTask.CausalLM, config => new LlamaForCausalLM(config)),
        new("LlamaForSequenceClassification", "llama", ModelTask.SequenceClassification, config => new LlamaForSequenceClassification(config)),
    ];
}
