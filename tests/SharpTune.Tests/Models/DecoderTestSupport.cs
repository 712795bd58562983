using SharpTune.IO;
using SharpTune.Models;
using SharpTune.Tests.Support;
using static TorchSharp.torch;

namespace SharpTune.Tests.Models;

/// <summary>Loads decoder fixtures and their transformers reference tensors.</summary>
internal static class DecoderTestSupport
{
    public static string ModelDir(string fixture) => RepoPaths.Fixture("models", fixture);

    public static CausalLMModel LoadCausalLM(string directory, ScalarType? dtype = null)
    {
        var model = AutoModel.FromPretrained(directory, out var report, dtype: dtype);
        Assert.True(report.Missing.Count == 0 && report.Unexpected.Count == 0, report.ToString());
        return Assert.IsAssignableFrom<CausalLMModel>(model);
    }

    /// <summary>The named reference tensors, loaded eagerly (the file is closed on return).</summary>
    public static Dictionary<string, Tensor> LoadReference(string path)
    {
        using var file = SafeTensorsFile.Open(path);
        return file.Names.ToDictionary(n => n, n => file.Load(n));
    }

    /// <summary>Greedy decoding with the KV cache: the prompt in one pass, then one token per pass, until
    /// <paramref name="maxLength"/> tokens or an EOS.</summary>
    public static List<long> GreedyWithCache(ICausalLM model, long[] prompt, int maxLength)
    {
        using var scope = NewDisposeScope();
        var tokens = prompt.ToList();
        using var cache = model.CreateCache(maxLength);
        var input = tensor(prompt).reshape(1, -1);
        while (tokens.Count < maxLength)
        {
            using var output = model.Forward(new ModelInputs(input) { Cache = cache });
            var next = output.Logits![0, -1].argmax().item<long>();
            tokens.Add(next);
            if (model.EosTokenIds.Contains(next))
                break;
            input = tensor(new[] { next }).reshape(1, 1);
        }
        return tokens;
    }

    public static double MaxAbsError(Tensor actual, Tensor expected)
    {
        Assert.Equal(expected.shape, actual.shape);
        using var difference = (actual.to(ScalarType.Float64) - expected.to(ScalarType.Float64)).abs().max();
        return difference.item<double>();
    }
}
