namespace SharpTune.Models;

/// <summary>Every architecture SharpTune can build; each architecture file lists its own classes.</summary>
internal static class ModelRegistry
{
    public static readonly IReadOnlyList<ModelRegistration> All =
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
}
