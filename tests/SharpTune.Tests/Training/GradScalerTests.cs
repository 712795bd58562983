using System.Text.Json.Nodes;
using SharpTune.Models;
using SharpTune.Tests.Support;
using SharpTune.Training;
using SharpTune.Training.Optimization;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SharpTune.Tests.Training;

/// <summary>fp16 training: torch.amp.GradScaler's state machine, skipped steps in the optimizer and the Trainer, and
/// fp16 runs that learn.</summary>
[Collection(TrainerCollection.Name)]
public class GradScalerTests
{
    [Fact]
    public void ScaleBacksOffOnOverflowAndGrowsAfterTheIntervalOfGoodSteps()
    {
        var defaults = new GradScaler();
        Assert.Equal((65536.0, 2.0, 0.5, 2000), (defaults.Scale, defaults.GrowthFactor, defaults.BackoffFactor, defaults.GrowthInterval));

        var scaler = new GradScaler(growthInterval: 3);
        scaler.Update(foundInf: true);
        Assert.Equal((32768.0, 0, true), (scaler.Scale, scaler.GrowthTracker, scaler.LastStepSkipped));
        scaler.Update(false);
        scaler.Update(false);
        Assert.Equal((32768.0, 2, false), (scaler.Scale, scaler.GrowthTracker, scaler.LastStepSkipped));
        scaler.Update(true); // an overflow restarts the count
        Assert.Equal((16384.0, 0), (scaler.Scale, scaler.GrowthTracker));
        for (var i = 0; i < 3; i++)
            scaler.Update(false);
        Assert.Equal((32768.0, 0), (scaler.Scale, scaler.GrowthTracker));

        // The scale is an fp32 value in torch: it stops growing where fp32 would overflow.
        var large = new GradScaler(initScale: 2e38, growthInterval: 1);
        large.Update(false);
        Assert.Equal(2e38, large.Scale);
        large.Restore(1024, 5);
        Assert.Equal((1024.0, 5), (large.Scale, large.GrowthTracker));
        Assert.Throws<ArgumentException>(() => new GradScaler(backoffFactor: 1.5));
        using var loss = tensor(0.25f);
        Assert.Equal(16384f, new GradScaler().ScaleLoss(loss).item<float>());
    }

    [Fact]
    public void OptimizerUnscalesBeforeClippingAndSkipsOverflowingSteps()
    {
        using var scope = NewDisposeScope();
        var weight = new Parameter(tensor(new float[] { 1, 2, 3 }));
        using var sgd = new Sgd([new ParameterGroup("all", [("w", weight)], 0.1, 0)]);
        var scaler = new GradScaler(initScale: 1024);

        weight.grad = tensor(new float[] { 3, -4, 0 }) * 1024;
        var norm = sgd.Step(maxGradNorm: 1.0, scaler);
        Assert.Equal(5.0, norm, 5); // the unscaled gradient's norm
        // Clipped to norm 1 after unscaling: [0.6, -0.8, 0] (times 1 / (1 + 1e-6) as torch clips).
        var expected = new[] { 1 - 0.1 * 0.6 / (1 + 2e-7), 2 + 0.1 * 0.8 / (1 + 2e-7), 3.0 };
        Assert.All(weight.data<float>().ToArray().Zip(expected), p => Assert.Equal(p.Second, p.First, 5));
        Assert.Equal((1, 1024.0, false), (sgd.StepCount, scaler.Scale, scaler.LastStepSkipped));

        var before = weight.detach().clone();
        foreach (var bad in new[] { float.PositiveInfinity, float.NaN })
        {
            weight.grad = tensor(new float[] { 1, bad, 1 });
            var badNorm = sgd.Step(maxGradNorm: 1.0, scaler);
            Assert.False(double.IsFinite(badNorm));
            Assert.True(weight.equal(before).all().item<bool>(), "an overflowing step must not change the weights");
            Assert.True(scaler.LastStepSkipped);
        }
        Assert.Equal((1, 256.0), (sgd.StepCount, scaler.Scale));
    }

    private static TrainingArguments Args(string outputDir) =>
        TrainerTests.Args(outputDir) with { WeightDecay = 0, Seed = 3, Precision = TrainingPrecision.Float16, WriteLogs = false };

    [Fact]
    public void Float16TrainingLearnsAndReturnsAnFp32Model()
    {
        var dir = RepoPaths.NewTempDirectory();
        try
        {
            using var model = new TinyClassifier();
            var trainer = new Trainer(model, Args(dir), TinyClassifier.Data(256, 1), TinyClassifier.Data(64, 2));
            var before = trainer.Evaluate()["eval_loss"];
            var result = trainer.Train();
            Assert.All(model.parameters(), p => Assert.Equal(ScalarType.Float32, p.dtype));
            var after = trainer.Evaluate()["eval_loss"];
            Assert.True(after < 0.7 * before, $"fp16 eval loss {before} -> {after}");
            Assert.NotNull(result.State.LossScale);
            Assert.Equal(result.State.GlobalStep - result.State.SkippedSteps, result.State.LogHistory.Count(e => e.ContainsKey("loss") && double.IsFinite(e["grad_norm"])));
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public void OverflowingFp16StepsAreSkippedWithoutAdvancingTheSchedule()
    {
        var dir = RepoPaths.NewTempDirectory();
        try
        {
            using var model = new OverflowingFirstSteps(steps: 2);
            var args = Args(dir) with { MaxSteps = 5, WarmupSteps = 2, WarmupRatio = 0, WriteLogs = true };
            var result = new Trainer(model, args, TinyClassifier.Data(64, 1)).Train();
            Assert.Equal(5, result.State.GlobalStep);
            Assert.Equal(2, result.State.SkippedSteps);
            Assert.Equal(65536.0 / 4, result.State.LossScale);
            var logs = result.State.LogHistory.Where(e => e.ContainsKey("loss")).ToList();
            // Warmup over 2 scheduled steps: the skipped steps keep the first learning rate (0), then 0.005, 0.01.
            Assert.Equal([0.0, 0.0, 0.0, 0.005, 0.01], logs.Select(e => Math.Round(e["learning_rate"], 6)));
            Assert.All(logs.Take(2), e => Assert.False(double.IsFinite(e["grad_norm"])));
            Assert.All(logs.Skip(2), e => Assert.True(double.IsFinite(e["grad_norm"])));
            // The log keeps the overflow's norm (JSON has no infinity: a named literal), and the plot is drawn.
            Assert.Matches("\"grad_norm\":\"(Infinity|NaN)\"", File.ReadAllText(Path.Combine(dir, TrainingLogWriter.LogFileName)));
            Assert.True(File.Exists(Path.Combine(dir, TrainingLogWriter.PlotFileName)));
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public void ResumingAnFp16RunRestoresTheLossScaleAndTheSkippedSteps()
    {
        var train = TinyClassifier.Data(40, 4);
        var args = Args("") with { NumTrainEpochs = 2, PerDeviceTrainBatchSize = 4, SaveStrategy = IntervalStrategy.Steps, SaveSteps = 4 };
        Dictionary<string, float[]> Weights(PreTrainedModel model) =>
            model.named_parameters().ToDictionary(p => p.name, p => p.parameter.detach().data<float>().ToArray());

        var fullDir = RepoPaths.NewTempDirectory();
        var resumedDir = RepoPaths.NewTempDirectory();
        try
        {
            using var full = new OverflowingFirstSteps(steps: 2);
            var fullResult = new Trainer(full, args with { OutputDir = fullDir }, train).Train();
            using (var interrupted = new OverflowingFirstSteps(steps: 2))
                new Trainer(interrupted, args with { OutputDir = resumedDir }, train, callbacks: [new StopAfterSave(8)]).Train();
            // The overflows happened before the checkpoint: the resumed run must carry on with the backed-off scale and
            // the schedule position that discounts the skipped steps.
            using var resumed = new OverflowingFirstSteps(steps: 0);
            var resumedResult = new Trainer(resumed, args with { OutputDir = resumedDir }, train).Train(TrainerCheckpoint.Latest(resumedDir));

            Assert.Equal((2L, 16384.0), (fullResult.State.SkippedSteps, fullResult.State.LossScale!.Value));
            Assert.Equal((fullResult.State.SkippedSteps, fullResult.State.LossScale, fullResult.State.LossScaleGrowthTracker),
                (resumedResult.State.SkippedSteps, resumedResult.State.LossScale, resumedResult.State.LossScaleGrowthTracker));
            var expected = Weights(full);
            foreach (var (name, values) in Weights(resumed))
                Assert.Equal(expected[name], values);
        }
        finally
        {
            Directory.Delete(fullDir, true);
            Directory.Delete(resumedDir, true);
        }
    }

    /// <summary>The tiny classifier whose first training losses are so large that their fp16 gradients overflow, as
    /// with a too-large loss scale.</summary>
    private sealed class OverflowingFirstSteps : PreTrainedModel
    {
        private readonly TinyClassifier inner;
        private int _remaining;

        public OverflowingFirstSteps(int steps) : base(nameof(OverflowingFirstSteps), new PretrainedConfig(new JsonObject { ["model_type"] = "tiny" }))
        {
            inner = new TinyClassifier();
            _remaining = steps;
            RegisterComponents();
        }

        public override ModelOutput Forward(ModelInputs inputs)
        {
            var output = inner.Forward(inputs);
            if (!training || _remaining-- <= 0)
                return output;
            return new ModelOutput { Logits = output.Logits, LastHiddenState = output.LastHiddenState, Loss = output.Loss! * 1e30 };
        }
    }
}
