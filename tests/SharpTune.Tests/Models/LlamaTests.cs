using SharpTune.Models;
using SharpTune.Tests.Support;
using System.Text.Json.Nodes;
using Xunit.Abstractions;
using static TorchSharp.torch;
using static SharpTune.Tests.Models.DecoderTestSupport;

namespace SharpTune.Tests.Models;

public class LlamaTests(ITestOutputHelper log)
{
    [Fact]
    public void Stories260KMatchesTransformersLogits()
    {
        using var scope = NewDisposeScope();
        using var model = LoadCausalLM(Path.Combine(RepoPaths.Models, "stories260K"));
        Assert.IsType<LlamaForCausalLM>(model);
        Assert.True(model.IsTied);
        var reference = LoadReference(RepoPaths.Fixture("real", "stories260K", "reference.safetensors"));
        using var output = model.Forward(new ModelInputs(reference["input_ids"].unsqueeze(0)));
        var error = MaxAbsError(output.Logits![0], reference["logits"]);
        log.WriteLine($"stories260K logits max abs error {error:E2}");
        Assert.True(error <= 1e-4, $"stories260K logits max abs error {error}");
    }

    [Fact]
    public void Stories260KConfigAccessorsSizeTheCache()
    {
        using var model = LoadCausalLM(Path.Combine(RepoPaths.Models, "stories260K"));
        Assert.Equal(5, model.NumLayers);
        Assert.Equal(512, model.VocabSize);
        Assert.Equal(512, model.MaxPositions);
        Assert.Equal([2L], model.EosTokenIds);
        using var cache = model.CreateCache(8);
        Assert.Equal(8, cache.Capacity);
    }

    [Fact]
    public void Stories260KGreedyDecodingWithCacheMatchesTransformers()
    {
        using var model = LoadCausalLM(Path.Combine(RepoPaths.Models, "stories260K"));
        var reference = JsonNode.Parse(File.ReadAllText(RepoPaths.Fixture("real", "stories260K", "reference.json")))!;
        var generation = reference["generations"]!.AsArray().First(g => (string)g!["prompt"]! == "Once upon a time")!;
        var prompt = generation["prompt_ids"]!.AsArray().Select(n => (long)n!).ToArray();
        var expected = generation["greedy_ids"]!.AsArray().Select(n => (long)n!).ToList();
        Assert.Equal(expected, GreedyWithCache(model, prompt, expected.Count));
    }
}
