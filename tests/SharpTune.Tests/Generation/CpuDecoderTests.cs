using SharpTune.Generation;
using SharpTune.Models;
using SharpTune.Quantization;
using SharpTune.Tests.Support;
using static TorchSharp.torch;

namespace SharpTune.Tests.Generation;

/// <summary>The fused batch-1 CPU decoder against the libtorch path it replaces: same logits step by step, same ids.</summary>
public class CpuDecoderTests
{
    private static string Stories => Path.Combine(RepoPaths.Models, "stories260K");

    private static CausalLMModel Load(string directory) =>
        Assert.IsAssignableFrom<CausalLMModel>(AutoModel.FromPretrained(directory, ModelTask.CausalLM));

    /// <summary>Runs the same prompt through two caches, then feeds both paths the libtorch path's greedy token each
    /// step and returns the largest logit difference seen.</summary>
    private static double MaxLogitDifference(CausalLMModel model, long[] prompt, int steps)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var capacity = prompt.Length + steps;
        using var torchCache = model.CreateCache(capacity);
        using var fusedCache = model.CreateCache(capacity);
        var input = tensor(prompt).view(1, -1);
        var logits = model.Forward(new ModelInputs(input) { Cache = torchCache }).Logits!.select(1, -1);
        model.Forward(new ModelInputs(input) { Cache = fusedCache }).Dispose();
        using var decoder = CpuDecoder.TryCreate(model, fusedCache, out var reason);
        if (!DecodeKernels.IsSupported)
        {
            // Without AVX2/FMA the generator keeps every step in libtorch.
            Assert.Null(decoder);
            return 0;
        }
        Assert.True(decoder is not null, reason);
        var worst = 0.0;
        for (var step = 0; step < steps; step++)
        {
            var token = logits.argmax(-1).item<long>();
            logits = model.Forward(new ModelInputs(tensor(new[] { token }).view(1, 1)) { Cache = torchCache }).Logits!.select(1, -1).view(-1);
            var fused = tensor(decoder.Step(token).ToArray());
            worst = Math.Max(worst, (fused - logits).abs().max().item<float>());
        }
        Assert.Equal(torchCache.Length, fusedCache.Length);
        return worst;
    }

    [Theory]
    [InlineData("llama-lm")]
    [InlineData("qwen2-lm")]
    public void FusedStepsMatchLibtorchLogitsOnTheFixtures(string fixture)
    {
        using var model = Load(RepoPaths.Fixture("models", fixture));
        Assert.True(MaxLogitDifference(model, [1, 5, 9, 3], 12) <= 1e-4);
    }

    public static TheoryData<string> Variants => ["fp32", "int8", "nf4", "nf4+double-quant", "fp4"];

    [Theory]
    [MemberData(nameof(Variants))]
    public void FusedStepsMatchLibtorchLogitsOnStories260K(string variant)
    {
        using var model = Load(Stories);
        QuantizationOptions? options = variant switch
        {
            "int8" => new QuantizationOptions { Bits = 8 },
            "nf4" => new QuantizationOptions(),
            "nf4+double-quant" => new QuantizationOptions { DoubleQuant = true },
            "fp4" => new QuantizationOptions { QuantType = FourBitType.Fp4 },
            _ => null,
        };
        if (options is not null)
            Quantizer.Quantize(model, options);
        var difference = MaxLogitDifference(model, [1, 403, 407, 261], 40);
        Assert.True(difference <= 1e-4, $"{variant}: max logit difference {difference}");
    }

    [Fact]
    public void FusedAndLibtorchGreedyGenerationsAreIdentical()
    {
        using var model = Load(Stories);
        var config = GenerationConfig.FromPretrained(Stories) with { MaxNewTokens = 100, EosTokenIds = [] };
        var fused = new TextGenerator(model).Generate([[1, 403, 407]], config);
        var reference = new TextGenerator(model) { FusedCpuDecoding = false }.Generate([[1, 403, 407]], config);
        Assert.Equal(reference.Sequences[0], fused.Sequences[0]);
        Assert.Equal(103, fused.Sequences[0].Count);
    }

    [Fact]
    public void RepeatedFusedGenerationLeaksNoTensors()
    {
        using var model = Load(Stories);
        var generator = new TextGenerator(model);
        var config = new GenerationConfig { MaxNewTokens = 10, EosTokenIds = [] };
        long Run()
        {
            generator.Generate([[1, 403]], config);
            generator.Generate([[1, 403]], config with { DoSample = true, Seed = 1, TopK = 5 });
            return TorchSharp.DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        }
        var afterFirst = Run();
        for (var i = 0; i < 3; i++)
            Run();
        Assert.Equal(afterFirst, Run());
    }

    [Fact]
    public void DoesNotApplyToOtherArchitecturesOrQuantizedLayersComputingInBFloat16()
    {
        using (var gpt2 = Load(RepoPaths.Fixture("models", "gpt2-lm")))
        using (var cache = gpt2.CreateCache(4))
        {
            Assert.Null(CpuDecoder.TryCreate(gpt2, cache, out var reason));
            Assert.NotNull(reason);
        }
        using var model = Load(Stories);
        Quantizer.Quantize(model, new QuantizationOptions { ComputeDType = ScalarType.BFloat16 });
        using var storiesCache = model.CreateCache(4);
        Assert.Null(CpuDecoder.TryCreate(model, storiesCache, out _));
    }
}
