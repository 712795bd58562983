using SharpTune.Tests.Support;
using SharpTune.Training;
using SharpTune.Training.Data;
using static TorchSharp.torch;

namespace SharpTune.Tests.Training;

[Collection(TrainerCollection.Name)]
public class TrainerTests
{
    /// <summary>The tiny classifier's training setup, which the other trainer tests vary.</summary>
    internal static TrainingArguments Args(string outputDir) => new()
    {
        OutputDir = outputDir,
        NumTrainEpochs = 4,
        PerDeviceTrainBatchSize = 8,
        PerDeviceEvalBatchSize = 16,
        LearningRate = 1e-2,
        WeightDecay = 0.01,
        WarmupRatio = 0.1,
        LoggingSteps = 1,
        Seed = 7,
    };

    private static IReadOnlyDictionary<string, double> Accuracy(EvalPrediction prediction) => new Dictionary<string, double>
    {
        ["accuracy"] = prediction.Logits.Zip(prediction.Labels!).Average(p => (p.First[1] > p.First[0] ? 1 : 0) == p.Second ? 1.0 : 0.0),
    };

    [Fact]
    public void TrainingLowersLossAndLearnsTheTask()
    {
        var dir = RepoPaths.NewTempDirectory();
        using var model = new TinyClassifier();
        var train = TinyClassifier.Data(160, 1);
        var eval = TinyClassifier.Data(64, 2);
        var trainer = new Trainer(model, Args(dir) with { NumTrainEpochs = 5, EvalStrategy = IntervalStrategy.Epoch }, train, eval, computeMetrics: Accuracy);
        var progress = new List<TrainingProgress>();
        trainer.Progress = new SynchronousProgress<TrainingProgress>(progress.Add);
        var before = trainer.Evaluate();
        var result = trainer.Train();
        var after = trainer.Evaluate();

        Assert.Equal(5 * 20, result.GlobalStep);
        Assert.True(after["eval_loss"] < before["eval_loss"] * 0.7, $"eval loss {before["eval_loss"]} → {after["eval_loss"]}");
        Assert.True(after["eval_accuracy"] >= 0.85, $"accuracy {after["eval_accuracy"]}");
        Assert.Equal(result.GlobalStep, progress.Count);
        Assert.Equal(result.GlobalStep, progress[^1].Step);
        Assert.Equal(TimeSpan.Zero, progress[^1].Remaining);
        var lines = File.ReadAllLines(Path.Combine(dir, TrainingLogWriter.LogFileName));
        Assert.Equal(result.GlobalStep + 5, lines.Length);   // a loss line per step and an eval line per epoch
        Assert.Contains("\"eval_accuracy\"", lines[^1]);
        Directory.Delete(dir, true);
    }

    [Fact]
    public void GradientAccumulationEqualsOneLargeBatch()
    {
        var data = TinyClassifier.Data(32, 3).Select(e => e with { InputIds = e.InputIds.Take(3).ToArray() }).ToList(); // equal lengths
        Dictionary<string, float[]> Run(int batch, int accumulation)
        {
            var dir = RepoPaths.NewTempDirectory();
            using var model = new TinyClassifier();
            new Trainer(model, Args(dir) with
            {
                PerDeviceTrainBatchSize = batch, GradientAccumulationSteps = accumulation, ShuffleTrainData = false, MaxSteps = 4, WriteLogs = false,
            }, data).Train();
            Directory.Delete(dir, true);
            return model.Snapshot();
        }
        var large = Run(8, 1);
        var accumulated = Run(2, 4);
        foreach (var (name, values) in large)
            for (var i = 0; i < values.Length; i++)
                Assert.Equal(values[i], accumulated[name][i], 5);
    }

    [Fact]
    public void ResumingFromACheckpointGivesTheUninterruptedResult()
    {
        var train = TinyClassifier.Data(40, 4);
        var args = Args("") with { NumTrainEpochs = 3, PerDeviceTrainBatchSize = 4, GradientAccumulationSteps = 2, SaveStrategy = IntervalStrategy.Steps, SaveSteps = 4 };

        var fullDir = RepoPaths.NewTempDirectory();
        using var full = new TinyClassifier(dropoutRate: 0.3);
        var fullResult = new Trainer(full, args with { OutputDir = fullDir }, train).Train();

        // "Kill" a run after its step-8 checkpoint (mid-epoch: 5 steps per epoch), then resume it in a fresh process state.
        var resumedDir = RepoPaths.NewTempDirectory();
        using (var interrupted = new TinyClassifier(dropoutRate: 0.3))
            new Trainer(interrupted, args with { OutputDir = resumedDir }, train, callbacks: [new StopAfterSave(8)]).Train();
        var checkpoint = TrainerCheckpoint.Latest(resumedDir)!;
        Assert.EndsWith("checkpoint-8", checkpoint);
        Assert.Empty(Directory.GetDirectories(resumedDir, ".*"));  // no temporary folders left behind
        manual_seed(12345);  // whatever the RNG holds now, the checkpoint's state must win
        using var resumed = new TinyClassifier(seed: 99, dropoutRate: 0.3);
        var resumedResult = new Trainer(resumed, args with { OutputDir = resumedDir }, train).Train(checkpoint);

        Assert.Equal(fullResult.GlobalStep, resumedResult.GlobalStep);
        var expected = full.Snapshot();
        foreach (var (name, values) in resumed.Snapshot())
            Assert.Equal(expected[name], values);
        var fullLog = File.ReadAllLines(Path.Combine(fullDir, TrainingLogWriter.LogFileName));
        Assert.Equal(fullLog, File.ReadAllLines(Path.Combine(resumedDir, TrainingLogWriter.LogFileName)));
        Directory.Delete(fullDir, true);
        Directory.Delete(resumedDir, true);
    }

    [Fact]
    public void EarlyStoppingAndLoadBestModelAtEnd()
    {
        var dir = RepoPaths.NewTempDirectory();
        using var model = new TinyClassifier();
        var train = TinyClassifier.Data(64, 5);
        // An absurd learning rate makes evaluation loss jump around, so early stopping fires and the best checkpoint matters.
        var args = Args(dir) with
        {
            NumTrainEpochs = 50, LearningRate = 3.0, WarmupRatio = 0, LrSchedulerType = SharpTune.Training.Optimization.SchedulerType.Constant,
            EvalStrategy = IntervalStrategy.Steps, EvalSteps = 2, SaveStrategy = IntervalStrategy.Steps, SaveSteps = 2,
            LoadBestModelAtEnd = true, SaveTotalLimit = 2,
        };
        var recorder = new LogRecorder();
        var trainer = new Trainer(model, args, train, TinyClassifier.Data(32, 6), callbacks: [new EarlyStoppingCallback(patience: 2), recorder]);
        var result = trainer.Train();

        Assert.True(result.GlobalStep < 50 * 8, "early stopping should end the run");
        var losses = recorder.Evaluations.Select(m => m["eval_loss"]).ToList();
        // Stopped after two evaluations without a new best.
        Assert.True(losses[^1] >= losses.Min() && losses[^2] >= losses.Min());
        Assert.Equal(losses.Min(), result.State.BestMetric);
        Assert.Equal(losses.Min(), trainer.Evaluate()["eval_loss"], 5);   // best weights reloaded
        Assert.Contains(result.State.BestModelCheckpoint, Directory.GetDirectories(dir));
        Assert.True(Directory.GetDirectories(dir, "checkpoint-*").Length <= 2);
        Directory.Delete(dir, true);
    }

    [Fact]
    public void BFloat16TrainingUsesFp32MasterWeightsAndReturnsAnFp32Model()
    {
        var dir = RepoPaths.NewTempDirectory();
        using var model = new TinyClassifier();
        var trainer = new Trainer(model, Args(dir) with { Precision = TrainingPrecision.BFloat16, NumTrainEpochs = 4 }, TinyClassifier.Data(256, 1), TinyClassifier.Data(64, 2), computeMetrics: Accuracy);
        var result = trainer.Train();
        Assert.All(model.parameters(), p => Assert.Equal(ScalarType.Float32, p.dtype));
        var metrics = trainer.Evaluate();
        Assert.True(metrics["eval_accuracy"] >= 0.8, $"bf16 accuracy {metrics["eval_accuracy"]}");
        Assert.True(result.TrainingLoss < 0.6);
        Directory.Delete(dir, true);
    }

    [Fact]
    public void CollatorPadsEachBatchToItsLongestExample()
    {
        var collator = new DataCollatorWithPadding(padTokenId: 0, padToMultipleOf: 4);
        using var batch = collator.Collate([new TrainingExample([5, 6, 7]) { Label = 1 }, new TrainingExample([8]) { Label = 0 }], CPU);
        Assert.Equal(new long[] { 2, 4 }, batch.Inputs.InputIds.shape);
        Assert.Equal(new long[] { 5, 6, 7, 0, 8, 0, 0, 0 }, batch.Inputs.InputIds.data<long>().ToArray());
        Assert.Equal(new long[] { 1, 1, 1, 0, 1, 0, 0, 0 }, batch.Inputs.AttentionMask!.data<long>().ToArray());
        Assert.Equal(new long[] { 1, 0 }, batch.Inputs.Labels!.data<long>().ToArray());

        using var tokens = new DataCollatorWithPadding().Collate([new TrainingExample([5, 6]) { TokenLabels = [5, -100] }, new TrainingExample([8]) { TokenLabels = [8] }], CPU);
        Assert.Equal(new long[] { 5, -100, 8, -100 }, tokens.Inputs.Labels!.data<long>().ToArray());
    }

    [Fact]
    public void LengthGroupedSamplerBatchesSimilarLengthsAndIsAPermutation()
    {
        var random = new Random(3);
        var lengths = Enumerable.Range(0, 1000).Select(_ => random.Next(1, 200)).ToList();
        var order = Samplers.LengthGrouped(lengths, 10, seed: 1, epoch: 0);
        Assert.Equal(Enumerable.Range(0, 1000), order.Order());
        Assert.Equal(lengths.Max(), lengths[order[0]]);
        var grouped = order.Chunk(10).Sum(b => b.Max(i => lengths[i]) - b.Min(i => lengths[i]));
        var shuffled = Samplers.Random(1000, 1, 0).Chunk(10).Sum(b => b.Max(i => lengths[i]) - b.Min(i => lengths[i]));
        Assert.True(grouped * 5 < shuffled, $"length spread per batch {grouped} vs {shuffled}");
        Assert.Equal(order, Samplers.LengthGrouped(lengths, 10, seed: 1, epoch: 0));
        Assert.NotEqual(order, Samplers.LengthGrouped(lengths, 10, seed: 1, epoch: 1));
    }
}

/// <summary>Ends a run right after the checkpoint of a given step, as if the process had been killed there.</summary>
internal sealed class StopAfterSave(long step) : TrainerCallback
{
    public override void OnSave(TrainingArguments args, TrainerState state, TrainerControl control, string checkpointDirectory) =>
        control.ShouldStop |= state.GlobalStep == step;
}

/// <summary>IProgress that calls back on the reporting thread (Progress&lt;T&gt; would post asynchronously).</summary>
internal sealed class SynchronousProgress<T>(Action<T> report) : IProgress<T>
{
    public void Report(T value) => report(value);
}
