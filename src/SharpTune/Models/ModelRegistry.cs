using SharpTune.Training.Heads;

namespace SharpTune.Models;

/// <summary>Every architecture SharpTune can build; each architecture file lists its own classes.</summary>
internal static class ModelRegistry
{
    private static readonly IReadOnlyList<ModelRegistration> Native =
    [
        .. Bert.Registrations,
        .. Roberta.Registrations,
        .. Llama.Registrations,
        .. Qwen2.Registrations,
        .. Phi.Registrations,
        .. Gpt2.Registrations,
        .. GptNeoX.Registrations,
        .. DistilBert.Registrations,
        .. DebertaV2.Registrations,
    ];

    /// <summary>The transformers classes, then SharpTune's pooling-head classifiers (chosen by their architecture name only).</summary>
    public static readonly IReadOnlyList<ModelRegistration> All = [.. Native, .. SequenceClassifierWithPooling.Registrations(Native)];
}
