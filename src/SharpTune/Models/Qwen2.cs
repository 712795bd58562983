namespace SharpTune.Models;

/// <summary>
/// Qwen2 is Llama with a bias on q/k/v (not on o_proj) and, in most checkpoints, tied embeddings; it reuses
/// Llama's classes through <see cref="LlamaOptions"/>. Sliding-window attention (use_sliding_window) is not supported.
/// </summary>
public static class Qwen2
{
    public static LlamaOptions Options(PretrainedConfig config)
    {
        if (config.Get("use_sliding_window", false))
            throw new NotSupportedException($"{config.SourcePath ?? PretrainedConfig.FileName}: Qwen2 sliding-window attention (use_sliding_window) is not supported");
        return LlamaOptions.FromConfig(config) with { QkvBias = true, OutputBias = false, MlpBias = false };
    }

    public static IReadOnlyList<ModelRegistration> Registrations =>
    [
        new("Qwen2Model", "qwen2", ModelTask.Base, config => new Qwen2Model(config)),
        new("Qwen2ForCausalLM", "qwen2", ModelTask.CausalLM, config => new Qwen2ForCausalLM(config)),
        new("Qwen2ForSequenceClassification", "qwen2", ModelTask.SequenceClassification, config => new Qwen2ForSequenceClassification(config)),
    ];
}

/// <summary>transformers' Qwen2ForSequenceClassification: the score head at the last non-padding token.</summary>
public sealed class Qwen2ForSequenceClassification(PretrainedConfig config)
    : DecoderForSequenceClassification("Qwen2ForSequenceClassification", config, new Qwen2Model(config));

/// <summary>transformers' Qwen2Model.</summary>
public sealed class Qwen2Model(PretrainedConfig config) : LlamaModel(config, Qwen2.Options(config), nameof(Qwen2Model));

/// <summary>transformers' Qwen2ForCausalLM.</summary>
public sealed class Qwen2ForCausalLM(PretrainedConfig config) : LlamaForCausalLM(config, Qwen2.Options(config), nameof(Qwen2ForCausalLM), nameof(Qwen2Model));
