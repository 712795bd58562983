using System.Globalization;
using System.Text.Json;
using SharpTune.Models;
using SharpTune.Pipelines;
using SharpTune.Tests.Support;
using SharpTune.Training.Approaches;
using SharpTune.Training.Heads;
using Xunit.Abstractions;

namespace SharpTune.Tests.Training;

/// <summary>The fold models <c>classify --approach kfold</c> saves are complete model folders: the text-classification
/// pipeline and <c>sharptune predict</c> load them and reproduce the probabilities the k-fold run wrote.</summary>
[Collection(TrainerCollection.Name)]
public sealed class PoolingHeadFolderTests(ITestOutputHelper log) : IDisposable
{
    private readonly string _directory = RepoPaths.NewTempDirectory("sharptune-poolhead");

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [Fact]
    public void KFoldFoldModelsPredictWhatTheKFoldRunWrote()
    {
        var modelDir = ApproachTests.TinyBertDirectory();
        try
        {
            var train = ApproachTests.Texts(64, 7);
            var eval = ApproachTests.Texts(20, 8);
            var trainCsv = Path.Combine(_directory, "train.csv");
            var evalCsv = Path.Combine(_directory, "eval.csv");
            File.WriteAllLines(trainCsv, ["id,text,label", .. train.Texts.Select((t, i) => $"{train.Ids[i]},{t},{train.Labels[i]}")]);
            File.WriteAllLines(evalCsv, ["id,text,label", .. eval.Texts.Select((t, i) => $"{eval.Ids[i]},{t},{eval.Labels[i]}")]);
            var run = Path.Combine(_directory, "run");
            var classify = CliRunner.Run("classify", "--train", trainCsv, "--eval", evalCsv, "--text-column", "text", "--label-column", "label", "--id-column", "id",
                "--approach", "kfold", "--model", modelDir, "--folds", "2", "--epochs", "2", "--lr", "1e-3", "--batch-size", "8", "--max-length", "16",
                "--pooling", "attention", "--output", run, "--seed", "3");
            Assert.True(classify.ExitCode == 0, classify.All);

            var foldModels = Enumerable.Range(0, 2).Select(f => Path.Combine(run, "kfold", $"fold-{f}", "model")).ToList();
            foreach (var folder in foldModels)
            {
                Assert.True(File.Exists(Path.Combine(folder, "tokenizer.json")), $"{folder} has no tokenizer");
                var config = PretrainedConfig.FromDirectory(folder);
                Assert.Equal(new[] { "BertForSequenceClassificationWithPooling" }, config.Architectures);
                Assert.Equal("attention", config.Get(SequenceClassifierWithPooling.PoolingConfigKey, ""));
                Assert.Equal(new[] { "neg", "pos" }, config.Id2Label.OrderBy(p => p.Key).Select(p => p.Value));
            }

            // Pipeline: each fold model on the training texts reproduces the out-of-fold rows it predicted, and the
            // fold average on the eval texts is predictions_kfold.csv.
            var oof = File.ReadAllLines(Path.Combine(run, "kfold", KFoldApproach.OofFileName)).Skip(1)
                .ToDictionary(l => l.Split(',')[0], l => l.Split(',')[2..].Select(v => double.Parse(v, CultureInfo.InvariantCulture)).ToArray());
            var expectedEval = File.ReadAllLines(Path.Combine(run, "predictions_kfold.csv")).Skip(1)
                .Select(l => l.Split(',')[3..].Select(v => double.Parse(v, CultureInfo.InvariantCulture)).ToArray()).ToList();
            Assert.Equal(eval.Count, expectedEval.Count);
            var pipelineEval = new double[eval.Count, 2];
            var matched = new int[foldModels.Count];
            var oofMatched = new HashSet<string>();
            for (var f = 0; f < foldModels.Count; f++)
            {
                using var classifier = (TextClassificationPipeline)Pipeline.Create(Pipeline.TextClassification, foldModels[f], new PipelineOptions { MaxLength = 16 });
                Assert.IsType<SequenceClassifierWithPooling>(classifier.Model);
                var trainScores = classifier.Predict(train.Texts, topK: null);
                for (var i = 0; i < train.Count; i++)
                    if (Math.Abs(Score(trainScores[i], "neg") - oof[train.Ids[i]][0]) <= 1e-4 && Math.Abs(Score(trainScores[i], "pos") - oof[train.Ids[i]][1]) <= 1e-4)
                    {
                        matched[f]++;
                        oofMatched.Add(train.Ids[i]);
                    }
                var evalScores = classifier.Predict(eval.Texts, topK: null);
                for (var i = 0; i < eval.Count; i++)
                {
                    pipelineEval[i, 0] += Score(evalScores[i], "neg") / foldModels.Count;
                    pipelineEval[i, 1] += Score(evalScores[i], "pos") / foldModels.Count;
                }
            }
            Assert.Equal(train.Count, oofMatched.Count);
            Assert.All(matched, m => Assert.InRange(m, train.Count / 4, train.Count * 3 / 4));
            log.WriteLine($"pipeline vs the k-fold run: eval max |diff| {MaxDifference(expectedEval, pipelineEval):E2}; fold models matched {string.Join(" + ", matched)} OOF rows");
            for (var i = 0; i < eval.Count; i++)
            {
                Assert.Equal(expectedEval[i][0], pipelineEval[i, 0], 1e-4);
                Assert.Equal(expectedEval[i][1], pipelineEval[i, 1], 1e-4);
            }

            // The CLI: sharptune predict on each fold model, averaged, gives the same eval probabilities.
            var cliEval = new double[eval.Count, 2];
            for (var f = 0; f < foldModels.Count; f++)
            {
                var output = Path.Combine(_directory, $"fold-{f}.jsonl");
                var predict = CliRunner.Run("predict", "--model", foldModels[f], "--task", "text-classification", "--input", evalCsv, "--text-column", "text",
                    "--top-k", "0", "--max-length", "16", "--output", output);
                Assert.True(predict.ExitCode == 0, predict.All);
                var rows = File.ReadAllLines(output).Select(l => JsonDocument.Parse(l).RootElement.GetProperty("labels").EnumerateArray()
                    .ToDictionary(e => e.GetProperty("label").GetString()!, e => e.GetProperty("score").GetDouble())).ToList();
                Assert.Equal(eval.Count, rows.Count);
                for (var i = 0; i < eval.Count; i++)
                {
                    cliEval[i, 0] += rows[i]["neg"] / foldModels.Count;
                    cliEval[i, 1] += rows[i]["pos"] / foldModels.Count;
                }
            }
            log.WriteLine($"sharptune predict vs the k-fold run: eval max |diff| {MaxDifference(expectedEval, cliEval):E2}");
            for (var i = 0; i < eval.Count; i++)
            {
                Assert.Equal(expectedEval[i][0], cliEval[i, 0], 1e-4);
                Assert.Equal(expectedEval[i][1], cliEval[i, 1], 1e-4);
            }
        }
        finally
        {
            Directory.Delete(modelDir, true);
        }
    }

    private static double MaxDifference(List<double[]> expected, double[,] actual) =>
        Enumerable.Range(0, expected.Count).SelectMany(i => Enumerable.Range(0, 2).Select(k => Math.Abs(expected[i][k] - actual[i, k]))).Max();

    private static double Score(IReadOnlyList<LabelScore> scores, string label) => scores.Single(s => s.Label == label).Score;
}
