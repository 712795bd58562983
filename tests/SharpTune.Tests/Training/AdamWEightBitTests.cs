using SharpTune.Training.Optimization;
using TorchSharp;
using static TorchSharp.torch;

namespace SharpTune.Tests.Training;

[Collection(TrainerCollection.Name)]
public class AdamWEightBitTests
{
    /// <summary>Minimises ||W - target||² from the same start with full and 8-bit moments.</summary>
    private static (float Loss, long StateBytes, Tensor Weight) Fit(bool eightBit)
    {
        using var scope = NewDisposeScope();
        using var generator = new Generator(3, CPU);
        var target = randn(64, 128, generator: generator);
        var weight = new TorchSharp.Modules.Parameter(zeros(64, 128));
        using var optimizer = new AdamW([new ParameterGroup("w", [("w", weight)], 1e-2, 0.0)], eightBitStates: eightBit);
        float loss = 0;
        for (var step = 0; step < 200; step++)
        {
            weight.grad?.zero_();
            using var stepScope = NewDisposeScope();
            var value = (weight - target).pow(2).mean();
            value.backward();
            optimizer.Step(maxGradNorm: null);
            loss = value.item<float>();
        }
        return (loss, optimizer.StateBytes, weight.detach().clone().MoveToOuterDisposeScope());
    }

    [Fact]
    public void EightBitMomentsTrainLikeFullPrecisionInAQuarterOfTheMemory()
    {
        var full = Fit(eightBit: false);
        var quantized = Fit(eightBit: true);
        using (full.Weight)
        using (quantized.Weight)
        {
            Assert.True(quantized.Loss < 0.05 * 1.0, $"8-bit AdamW did not converge: loss {quantized.Loss}");
            Assert.True(Math.Abs(quantized.Loss - full.Loss) < 0.02, $"losses differ: {quantized.Loss} vs {full.Loss}");
            // 2 codes + 2/256 scales per element vs 8 bytes per element.
            Assert.True(quantized.StateBytes * 3.5 < full.StateBytes, $"state bytes {quantized.StateBytes} vs {full.StateBytes}");
        }
    }
}
