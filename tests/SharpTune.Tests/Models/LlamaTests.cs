using SharpTune.Models;
using SharpTune.Tests.Support;
using static TorchSharp.torch;
using static SharpTune.Tests.Models.DecoderTestSupport;

namespace SharpTune.Tests.Models;

public class LlamaTests
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
}
