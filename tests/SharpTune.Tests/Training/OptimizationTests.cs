using SharpTune.Training.Optimization;
using TorchSharp;
using static TorchSharp.torch;

namespace SharpTune.Tests.Training;

[Collection(TrainerCollection.Name)]
public class OptimizationTests
{
    [Fact]
    public void LinearWarmupScheduleMatchesTransformers()
    {
        // get_linear_schedule_with_warmup(warmup=2, total=6) at lr 1e-3: the reference trace's learning rates.
        var schedule = new LearningRateScheduler(SchedulerType.Linear, 2, 6);
        var expected = new[] { 0.0, 0.0005, 0.001, 0.00075, 0.0005, 0.00025 };
        for (var step = 0; step < 6; step++)
            Assert.Equal(expected[step], 1e-3 * schedule.Factor(step, 1e-3), 12);
    }

    [Fact]
    public void CosinePolynomialAndConstantSchedules()
    {
        var cosine = new LearningRateScheduler(SchedulerType.Cosine, 2, 12);
        Assert.Equal(0.5, cosine.Factor(1, 1), 12);
        Assert.Equal(1.0, cosine.Factor(2, 1), 12);
        Assert.Equal(0.5, cosine.Factor(7, 1), 12); // halfway through the decay
        Assert.Equal(0.0, cosine.Factor(12, 1), 12);
        var twoCycles = cosine with { NumCycles = 1.0 };
        Assert.Equal(0.0, twoCycles.Factor(7, 1), 12);
        Assert.Equal(1.0, twoCycles.Factor(12, 1), 12);

        var polynomial = new LearningRateScheduler(SchedulerType.Polynomial, 0, 10, Power: 2.0, PolynomialEndLearningRate: 0.0);
        Assert.Equal(0.25, polynomial.Factor(5, 1.0), 12);
        var polynomialEnd = polynomial with { PolynomialEndLearningRate = 1e-4 };
        Assert.Equal(1e-4 / 1e-2, polynomialEnd.Factor(11, 1e-2), 12);

        Assert.Equal(1.0, new LearningRateScheduler(SchedulerType.Constant, 5, 10).Factor(0, 1), 12);
        Assert.Equal(0.2, new LearningRateScheduler(SchedulerType.ConstantWithWarmup, 5, 10).Factor(1, 1), 12);
        Assert.Equal(3, LearningRateScheduler.ResolveWarmup(0, 0.06, 34));   // ceil(2.04)
        Assert.Equal(7, LearningRateScheduler.ResolveWarmup(7, 0.5, 34));
    }

    [Fact]
    public void ParameterGroupsExemptBiasesAndLayerNormAndSplitLearningRates()
    {
        using var model = new TinyClassifier();
        var plain = ParameterGroups.Create(model, 1e-3, 0.01, model.BaseModelPrefix);
        var noDecay = plain.Where(g => g.WeightDecay == 0).SelectMany(g => g.Parameters).Select(p => p.Name).Order(StringComparer.Ordinal).ToList();
        Assert.Equal(["classifier.bias", "encoder.LayerNorm.bias", "encoder.LayerNorm.weight", "encoder.layer.0.bias", "encoder.layer.1.bias"], noDecay);
        Assert.All(plain, g => Assert.Equal(1e-3, g.LearningRate));
        Assert.Equal(model.parameters().Count(), plain.Sum(g => g.Parameters.Count));

        var layered = ParameterGroups.Create(model, 1e-3, 0.01, model.BaseModelPrefix, headLearningRate: 1e-2, layerDecay: 0.5);
        double LrOf(string name) => layered.Single(g => g.Parameters.Any(p => p.Name == name)).LearningRate;
        Assert.Equal(1e-2, LrOf("classifier.weight"));
        Assert.Equal(1e-3, LrOf("encoder.layer.1.weight"));        // top layer
        Assert.Equal(0.5e-3, LrOf("encoder.layer.0.weight"));
        Assert.Equal(0.25e-3, LrOf("encoder.embeddings.weight"));  // below the bottom layer
    }

    [Fact]
    public void AdamWFirstTwoStepsFollowTorchFormulas()
    {
        using var weight = new TorchSharp.Modules.Parameter(tensor(new float[] { 1.0f, -2.0f }));
        using var optimizer = new AdamW([new ParameterGroup("all", [("w", weight)], 0.1, 0.01)]);
        double[] p = [1.0, -2.0], m = [0, 0], v = [0, 0];
        double[][] gradients = [[0.5, -0.25], [-1.0, 0.75]];
        for (var step = 1; step <= 2; step++)
        {
            weight.grad = tensor(gradients[step - 1].Select(g => (float)g).ToArray());
            optimizer.Step(null);
            for (var i = 0; i < 2; i++)
            {
                var g = gradients[step - 1][i];
                p[i] *= 1 - 0.1 * 0.01;
                m[i] = 0.9 * m[i] + 0.1 * g;
                v[i] = 0.999 * v[i] + 0.001 * g * g;
                var denominator = Math.Sqrt(v[i]) / Math.Sqrt(1 - Math.Pow(0.999, step)) + 1e-8;
                p[i] -= 0.1 / (1 - Math.Pow(0.9, step)) * m[i] / denominator;
            }
            var actual = weight.data<float>().ToArray();
            for (var i = 0; i < 2; i++)
                Assert.Equal(p[i], actual[i], 5);
        }
    }

    [Fact]
    public void SgdWithMomentumAndWeightDecay()
    {
        using var weight = new TorchSharp.Modules.Parameter(tensor(new float[] { 1.0f }));
        using var optimizer = new Sgd([new ParameterGroup("all", [("w", weight)], 0.1, 0.5)], momentum: 0.9);
        weight.grad = tensor(new float[] { 2.0f });
        optimizer.Step(null);  // d = 2 + 0.5·1 = 2.5; buf = 2.5; w = 1 − 0.25 = 0.75
        Assert.Equal(0.75f, weight.data<float>()[0], 6);
        weight.grad = tensor(new float[] { 1.0f });
        optimizer.Step(null);  // d = 1 + 0.375 = 1.375; buf = 0.9·2.5 + 1.375 = 3.625; w = 0.75 − 0.3625
        Assert.Equal(0.3875f, weight.data<float>()[0], 6);
    }

    [Fact]
    public void ClippingScalesToMaxNormAndReportsPreClipNorm()
    {
        using var a = tensor(new float[] { 3, 0 });
        using var b = tensor(new float[] { 0, 4 });
        var norm = Optimizer.ClipGradients([a, b], 1.0);
        Assert.Equal(5.0, norm, 5);
        Assert.Equal(0.6f, a.data<float>()[0], 5);
        Assert.Equal(0.8f, b.data<float>()[1], 5);
        Assert.Equal(1.0, Optimizer.ClipGradients([a, b], 2.0), 5);  // below max: unchanged
        Assert.Equal(0.6f, a.data<float>()[0], 5);
    }

    [Fact]
    public void OptimizerStateRoundTripsThroughAFile()
    {
        var directory = Support.RepoPaths.NewTempDirectory();
        using var first = new TorchSharp.Modules.Parameter(tensor(new float[] { 1, 2 }));
        using var second = new TorchSharp.Modules.Parameter(tensor(new float[] { 1, 2 }));
        using var a = new AdamW([new ParameterGroup("all", [("w", first)], 0.1, 0.0)]);
        using var b = new AdamW([new ParameterGroup("all", [("w", second)], 0.1, 0.0)]);
        first.grad = tensor(new float[] { 1, -1 });
        a.Step(null);
        a.Save(Path.Combine(directory, "opt.safetensors"));
        b.Load(Path.Combine(directory, "opt.safetensors"));
        using (no_grad())
            second.copy_(first);
        first.grad = tensor(new float[] { 0.5f, 0.5f });
        second.grad = tensor(new float[] { 0.5f, 0.5f });
        a.Step(null);
        b.Step(null);
        Assert.Equal(first.data<float>().ToArray(), second.data<float>().ToArray());
        Assert.Equal(2, b.StepCount);
        Directory.Delete(directory, true);
    }
}

[CollectionDefinition(Name, DisableParallelization = true)]
public class TrainerCollection
{
    /// <summary>Training tests seed libtorch's global generator: they must not run alongside other tests.</summary>
    public const string Name = "Trainer (global RNG)";
}
