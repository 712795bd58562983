using System.Text.Json.Nodes;
using SharpTune.IO;
using Xunit.Abstractions;
using SharpTune.Models;
using SharpTune.Tests.Support;
using SharpTune.Training;
using SharpTune.Training.Data;
using SharpTune.Training.Optimization;
using static TorchSharp.torch;

namespace SharpTune.Tests.Training;

/// <summary>The acceptance test of the Trainer: six steps of BertForSequenceClassification fine-tuning recorded with
/// torch (AdamW with decay groups, linear warmup/decay, clipping at 1.0) must be reproduced step by step.</summary>
[Collection(TrainerCollection.Name)]
public class TraceParityTests(ITestOutputHelper output)
{
    private static readonly string FixtureDir = RepoPaths.Fixture("training", "bert-seqcls-adamw");

    [Fact]
    public void TrainerReproducesTorchAdamWTrace()
    {
        var trace = JsonNode.Parse(File.ReadAllText(Path.Combine(FixtureDir, "trace.json")))!;
        double[] Read(string key) => trace[key]!.AsArray().Select(n => n!.GetValue<double>()).ToArray();
        var (losses, learningRates, gradNorms) = (Read("losses"), Read("lr_used"), Read("grad_norm_before_clip"));

        using var batches = SafeTensorsFile.Open(Path.Combine(FixtureDir, "batches.safetensors"));
        using var ids = batches.Load("input_ids");          // [steps, batch, T]
        using var labels = batches.Load("labels");          // [steps, batch]
        using var expectedClassifier = batches.Load("classifier_weight_after");
        var (steps, batchSize, length) = ((int)ids.shape[0], (int)ids.shape[1], (int)ids.shape[2]);
        var flatIds = ids.data<long>().ToArray();
        var flatLabels = labels.data<long>().ToArray();
        var examples = Enumerable.Range(0, steps * batchSize)
            .Select(i => new TrainingExample(flatIds.AsSpan(i * length, length).ToArray()) { Label = flatLabels[i] }).ToList();

        var outputDir = RepoPaths.NewTempDirectory();
        using var model = AutoModel.FromPretrained(Path.Combine(FixtureDir, "init"));
        Assert.IsType<BertForSequenceClassification>(model);
        var args = new TrainingArguments
        {
            OutputDir = outputDir,
            MaxSteps = steps,
            PerDeviceTrainBatchSize = batchSize,
            LearningRate = 1e-3,
            WeightDecay = 0.01,
            AdamBeta1 = 0.9,
            AdamBeta2 = 0.999,
            AdamEpsilon = 1e-8,
            LrSchedulerType = SchedulerType.Linear,
            WarmupSteps = 2,
            MaxGradNorm = 1.0,
            ShuffleTrainData = false,
            LoggingSteps = 1,
        };
        var recorder = new LogRecorder();
        var trainer = new Trainer(model, args, examples, callbacks: [recorder]);
        var result = trainer.Train();
        output.WriteLine($"train time {result.Elapsed.TotalSeconds:F2} s");

        Assert.Equal(steps, recorder.Entries.Count);
        double Worst(string key, double[] expected) => recorder.Entries.Select((e, i) => Math.Abs(e[key] - expected[i]) / Math.Abs(expected[i])).Max();
        output.WriteLine($"max relative error: loss {Worst("loss", losses):E2}, grad norm {Worst("grad_norm", gradNorms):E2}");
        for (var step = 0; step < steps; step++)
        {
            var entry = recorder.Entries[step];
            AssertRelative(losses[step], entry["loss"], 1e-4, $"loss at step {step}");
            AssertRelative(gradNorms[step], entry["grad_norm"], 1e-4, $"grad norm at step {step}");
            Assert.Equal(learningRates[step], entry["learning_rate"], 12);
        }
        var classifier = model.named_parameters().Single(p => p.name == "classifier.weight").parameter;
        var maxError = (classifier.detach() - expectedClassifier).abs().max().item<float>();
        output.WriteLine($"classifier weight max abs error {maxError:E2}");
        Assert.True(maxError <= 1e-5, $"classifier weights after training differ by {maxError}");

        Assert.True(File.Exists(Path.Combine(outputDir, TrainingLogWriter.LogFileName)));
        Assert.True(new FileInfo(Path.Combine(outputDir, TrainingLogWriter.PlotFileName)).Length > 1000);
        Directory.Delete(outputDir, true);
    }

    private static void AssertRelative(double expected, double actual, double tolerance, string what) =>
        Assert.True(Math.Abs(actual - expected) <= tolerance * Math.Abs(expected), $"{what}: expected {expected}, got {actual}");
}

/// <summary>Keeps every training-loss log entry.</summary>
internal sealed class LogRecorder : TrainerCallback
{
    public List<IReadOnlyDictionary<string, double>> Entries { get; } = [];
    public List<IReadOnlyDictionary<string, double>> Evaluations { get; } = [];

    public override void OnLog(TrainingArguments args, TrainerState state, TrainerControl control, IReadOnlyDictionary<string, double> logs)
    {
        if (logs.ContainsKey("loss"))
            Entries.Add(new Dictionary<string, double>(logs));
    }

    public override void OnEvaluate(TrainingArguments args, TrainerState state, TrainerControl control, IReadOnlyDictionary<string, double> metrics) =>
        Evaluations.Add(new Dictionary<string, double>(metrics));
}
