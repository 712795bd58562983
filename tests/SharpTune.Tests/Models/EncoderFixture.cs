using SharpTune.IO;
using SharpTune.Models;
using SharpTune.Tests.Support;
using static TorchSharp.torch;

namespace SharpTune.Tests.Models;

/// <summary>A fixture model of tests/fixtures/models and the reference tensors transformers produced for it.</summary>
internal static class EncoderFixture
{
    public static string Directory(string name) => RepoPaths.Fixture("models", name);

    /// <summary>The reference tensors (input_ids, attention_mask, outputs) as float32/int64 CPU tensors.</summary>
    public static Dictionary<string, Tensor> Reference(string name)
    {
        using var file = SafeTensorsFile.Open(Path.Combine(Directory(name), "reference.safetensors"));
        return file.Names.ToDictionary(n => n, file.Load);
    }

    public static ModelInputs Inputs(Dictionary<string, Tensor> reference, bool hiddenStates = true) =>
        new(reference["input_ids"]) { AttentionMask = reference["attention_mask"], OutputHiddenStates = hiddenStates };

    /// <summary>Max abs difference of <paramref name="actual"/> (any dtype/device) from the reference tensor.</summary>
    public static double MaxAbsError(Tensor actual, Tensor expected)
    {
        Assert.Equal(expected.shape, actual.shape);
        using var scope = NewDisposeScope();
        return (actual.detach().cpu().to(ScalarType.Float32) - expected).abs().max().item<float>();
    }

    /// <summary>Errors of every output the reference holds: logits, last_hidden_state, hidden_states_first/last.</summary>
    public static Dictionary<string, double> Errors(ModelOutput output, Dictionary<string, Tensor> reference)
    {
        var errors = new Dictionary<string, double>();
        if (reference.TryGetValue("logits", out var logits))
            errors["logits"] = MaxAbsError(output.Logits!, logits);
        if (reference.TryGetValue("last_hidden_state", out var last))
            errors["last_hidden_state"] = MaxAbsError(output.LastHiddenState, last);
        if (reference.TryGetValue("hidden_states_first", out var first))
            errors["hidden_states_first"] = MaxAbsError(output.HiddenStates![0], first);
        if (reference.TryGetValue("hidden_states_last", out var lastState))
            errors["hidden_states_last"] = MaxAbsError(output.HiddenStates![^1], lastState);
        return errors;
    }

    public static void Dispose(Dictionary<string, Tensor> tensors)
    {
        foreach (var tensor in tensors.Values)
            tensor.Dispose();
    }
}
