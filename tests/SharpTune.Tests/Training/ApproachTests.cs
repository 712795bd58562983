using System.Text.Json.Nodes;
using SharpTune.Classic;
using SharpTune.Data;
using SharpTune.Metrics;
using SharpTune.Models;
using SharpTune.Tests.Support;
using SharpTune.Training.Approaches;
using SharpTune.Training.Heads;

namespace SharpTune.Tests.Training;

[Collection(TrainerCollection.Name)]
public class ApproachTests
{
    /// <summary>A randomly initialised 2-layer BERT with the 2,000-token WordPiece fixture tokenizer.</summary>
    internal static string TinyBertDirectory()
    {
        var dir = RepoPaths.NewTempDirectory("sharptune-tinybert");
        var config = PretrainedConfig.FromDirectory(RepoPaths.Fixture("models", "bert-base-model"));
        config.Set("vocab_size", 2000);
        config.Set("hidden_dropout_prob", 0.0);
        using (var model = AutoModel.FromConfig(config, ModelTask.Base))
            model.SavePretrained(dir);
        File.Copy(RepoPaths.Fixture("tokenizers", "bert-wordpiece.tokenizer.json"), Path.Combine(dir, "tokenizer.json"));
        return dir;
    }

    /// <summary>Texts whose class is given by which of two word sets they draw from, amid shared filler words.</summary>
    internal static LabeledTexts Texts(int count, int seed)
    {
        string[] positive = ["north", "city", "high", "team", "first"], negative = ["south", "church", "film", "state", "attack"];
        string[] filler = ["with", "that", "from", "were", "which", "this", "after", "their", "they", "also"];
        var random = new Random(seed);
        var texts = new string[count];
        var labels = new string?[count];
        for (var i = 0; i < count; i++)
        {
            var isPositive = i % 2 == 0;
            var words = Enumerable.Range(0, random.Next(4, 10)).Select(k => k % 3 == 0
                ? (isPositive ? positive : negative)[random.Next(5)]
                : filler[random.Next(filler.Length)]);
            texts[i] = string.Join(' ', words);
            labels[i] = isPositive ? "pos" : "neg";
        }
        return new LabeledTexts(Enumerable.Range(0, count).Select(i => $"r{i}").ToArray(), texts, null, labels,
            Enumerable.Range(0, count).Select(i => new RowOrigin("synthetic", i + 1)).ToArray());
    }

    private static ClassificationProblem Problem() =>
        new(Texts(96, 1), Texts(40, 2), Texts(6, 3) with { Labels = new string?[6] }, new LabelEncoder(["neg", "pos"]), Seed: 5);

    [Fact]
    public void FineTuneApproachLearnsASeparableTask()
    {
        var modelDir = TinyBertDirectory();
        var output = RepoPaths.NewTempDirectory();
        var problem = Problem();
        var approach = new FineTuneApproach(new FineTuneOptions(modelDir) { Epochs = 4, LearningRate = 1e-3, BatchSize = 8, MaxLength = 16, WarmupRatio = 0.1 });
        var result = approach.Run(problem, output);

        var predicted = KFoldApproach.ArgMax(result.EvalProbabilities, 2);
        var accuracy = ClassificationMetrics.Accuracy(problem.EvalLabels, predicted);
        Assert.True(accuracy >= 0.9, $"fine-tuned accuracy {accuracy}");
        Assert.Equal(6 * 2, result.TestProbabilities!.Length);
        Assert.Equal(48, result.Details["steps"]);
        Assert.True(File.Exists(Path.Combine(output, "model", "model.safetensors")));
        Assert.True(File.Exists(Path.Combine(output, "training_curves.png")));
        Directory.Delete(modelDir, true);
        Directory.Delete(output, true);
    }

    [Fact]
    public void KFoldApproachProducesOutOfFoldPredictionsAndAveragedEvalPredictions()
    {
        var modelDir = TinyBertDirectory();
        var output = RepoPaths.NewTempDirectory();
        var problem = Problem();
        var approach = new KFoldApproach(new FineTuneOptions(modelDir) { Epochs = 3, LearningRate = 1e-3, BatchSize = 8, MaxLength = 16, Pooling = PoolingStrategy.Attention }, folds: 3);
        var result = approach.Run(problem, output);

        Assert.Equal(3, result.Details["folds"]);
        Assert.True(result.Details["cv_roc_auc"] >= 0.9, $"CV ROC AUC {result.Details["cv_roc_auc"]}");
        Assert.All(Enumerable.Range(0, 3), f => Assert.True(result.Details.ContainsKey($"fold{f}_roc_auc")));
        var oofLines = File.ReadAllLines(Path.Combine(output, KFoldApproach.OofFileName));
        Assert.Equal("id,label,p_neg,p_pos", oofLines[0]);
        Assert.Equal(97, oofLines.Length);
        Assert.All(approach.OutOfFoldProbabilities!.Chunk(2), row => Assert.Equal(1.0, row.Sum(), 6));
        Assert.All(result.EvalProbabilities.Chunk(2), row => Assert.Equal(1.0, row.Sum(), 6));
        var accuracy = ClassificationMetrics.Accuracy(problem.EvalLabels, KFoldApproach.ArgMax(result.EvalProbabilities, 2));
        Assert.True(accuracy >= 0.9, $"fold-averaged accuracy {accuracy}");
        Directory.Delete(modelDir, true);
        Directory.Delete(output, true);
    }

    [Fact]
    public void ClassifyCommandRunsFinetuneAndKFoldSideBySide()
    {
        var modelDir = TinyBertDirectory();
        var dir = RepoPaths.NewTempDirectory();
        var texts = Texts(120, 7);
        File.WriteAllLines(Path.Combine(dir, "train.csv"), ["text,label", .. texts.Texts.Zip(texts.Labels, (t, l) => $"{t},{l}")]);
        var output = Path.Combine(dir, "out");
        var result = CliRunner.Run("classify", "--train", Path.Combine(dir, "train.csv"), "--text-column", "text", "--label-column", "label",
            "--eval-fraction", "0.25", "--approach", "finetune,kfold", "--model", modelDir, "--folds", "2", "--epochs", "3", "--lr", "1e-3",
            "--batch-size", "8", "--max-length", "16", "--pooling", "mean", "--output", output, "--seed", "3");
        Assert.True(result.ExitCode == 0, result.All);
        var metrics = File.ReadAllText(Path.Combine(output, "metrics.json"));
        Assert.Contains("\"finetune\"", metrics);
        Assert.Contains("cv_roc_auc", metrics);
        Assert.True(File.Exists(Path.Combine(output, "kfold", KFoldApproach.OofFileName)));
        var report = File.ReadAllText(Path.Combine(output, "report.md"));
        Assert.Contains("## Cross-validation: kfold (2 stratified folds on the train rows)", report);
        Assert.Matches(@"\| \*\*out-of-fold\*\* \| \*\*[01]\.\d{4}\*\* \| \*\*[01]\.\d{4}\*\* \|", report);
        Assert.Contains("finetune", result.StdOut);
        var missingModel = CliRunner.Run("classify", "--train", Path.Combine(dir, "train.csv"), "--text-column", "text", "--label-column", "label",
            "--eval-fraction", "0.25", "--approach", "finetune", "--output", output);
        Assert.Equal(2, missingModel.ExitCode);
        Assert.Contains("--model", missingModel.StdErr);
        Directory.Delete(modelDir, true);
        Directory.Delete(dir, true);
    }

    [Fact]
    public void GradientCheckpointingChangesMemoryNotTheFineTunedModel()
    {
        var modelDir = TinyBertDirectory();
        var problem = Problem();
        double[] EvalProbabilities(bool checkpointing) => new FineTuneApproach(new FineTuneOptions(modelDir)
        {
            Epochs = 2, LearningRate = 1e-3, BatchSize = 8, MaxLength = 16, WarmupRatio = 0.1, GradientCheckpointing = checkpointing,
        }).Run(problem, null).EvalProbabilities;
        var plain = EvalProbabilities(false);
        var checkpointed = EvalProbabilities(true);
        Assert.All(plain.Zip(checkpointed), p => Assert.Equal(p.First, p.Second, 6));
        Directory.Delete(modelDir, true);
    }

    [Fact]
    public void ClassifyTrainsInFp16WithGradientCheckpointing()
    {
        var modelDir = TinyBertDirectory();
        var dir = RepoPaths.NewTempDirectory();
        var texts = Texts(120, 9);
        var train = Path.Combine(dir, "train.csv");
        File.WriteAllLines(train, ["text,label", .. texts.Texts.Zip(texts.Labels, (t, l) => $"{t},{l}")]);
        CliResult Classify(string output, params string[] extra) => CliRunner.Run(["classify", "--train", train, "--text-column", "text", "--label-column", "label",
            "--eval-fraction", "0.25", "--model", modelDir, "--approach", "finetune", "--epochs", "4", "--lr", "1e-3", "--batch-size", "8",
            "--max-length", "16", "--warmup-ratio", "0.1", "--output", Path.Combine(dir, output), "--seed", "3", .. extra]);

        var fp16 = Classify("fp16", "--fp16", "--grad-checkpointing");
        Assert.True(fp16.ExitCode == 0, fp16.All);
        var accuracy = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "fp16", "metrics.json")))!["finetune"]!["accuracy"]!.GetValue<double>();
        Assert.True(accuracy >= 0.8, $"fp16 accuracy {accuracy}");

        var both = Classify("both", "--bf16", "--fp16");
        Assert.Equal(2, both.ExitCode);
        Assert.Contains("--bf16 and --fp16", both.StdErr);
        Directory.Delete(modelDir, true);
        Directory.Delete(dir, true);
    }
}
