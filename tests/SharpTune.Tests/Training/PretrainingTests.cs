using System.Text.Json.Nodes;
using SharpTune.Models;
using SharpTune.Tests.Support;
using SharpTune.Training.Data;
using static TorchSharp.torch;

namespace SharpTune.Tests.Training;

[Collection(TrainerCollection.Name)]
public class PretrainingTests
{
    [Fact]
    public void MaskedLMCollatorMasks15PercentWith80_10_10()
    {
        manual_seed(3);
        var special = new HashSet<long> { 1, 2, 3 };   // [CLS], [SEP], [MASK]
        var random = new Random(1);
        var examples = Enumerable.Range(0, 400).Select(_ =>
            new TrainingExample([1, .. Enumerable.Range(0, random.Next(20, 60)).Select(_ => (long)random.Next(10, 1000)), 2])).ToList();
        using var batch = new DataCollatorForMaskedLM(maskTokenId: 3, vocabSize: 1000, special).Collate(examples, CPU);
        var ids = batch.Inputs.InputIds.data<long>().ToArray();
        var labels = batch.Inputs.Labels!.data<long>().ToArray();
        var mask = batch.Inputs.AttentionMask!.data<long>().ToArray();
        var width = (int)batch.Inputs.InputIds.shape[1];
        long eligible = 0, chosen = 0, masked = 0, unchanged = 0;
        for (var i = 0; i < ids.Length; i++)
        {
            var original = i % width < examples[i / width].Length ? examples[i / width].InputIds[i % width] : 0;
            var isEligible = mask[i] == 1 && !special.Contains(original);
            eligible += isEligible ? 1 : 0;
            if (labels[i] == -100)
            {
                Assert.Equal(original, ids[i]);       // unchosen positions keep their token
                continue;
            }
            Assert.True(isEligible, "special tokens and padding are never chosen");
            Assert.Equal(original, labels[i]);
            chosen++;
            masked += ids[i] == 3 ? 1 : 0;
            unchanged += ids[i] == original ? 1 : 0;
        }
        Assert.InRange((double)chosen / eligible, 0.14, 0.16);
        Assert.InRange((double)masked / chosen, 0.77, 0.83);
        Assert.InRange((double)unchanged / chosen, 0.08, 0.12);   // 10% kept (+ random draws that hit the same id)
    }

    [Fact]
    public void CausalLMCollatorLabelsAreInputsWithPaddingIgnored()
    {
        using var batch = new DataCollatorForCausalLM(padTokenId: 0).Collate([new TrainingExample([5, 6, 7]), new TrainingExample([8])], CPU);
        Assert.Equal(new long[] { 5, 6, 7, 8, -100, -100 }, batch.Inputs.Labels!.data<long>().ToArray());
    }

    [Theory]
    [InlineData]
    [InlineData("--fp16", "--grad-checkpointing")]
    public void PretrainCommandLowersHeldOutMlmLossAndTheModelLoadsForClassification(params string[] precision)
    {
        var dir = RepoPaths.NewTempDirectory();
        File.Copy(RepoPaths.Fixture("tokenizers", "bert-wordpiece.tokenizer.json"), Path.Combine(dir, "tokenizer.json"));
        var config = JsonNode.Parse(File.ReadAllText(RepoPaths.Fixture("models", "bert-base-model", "config.json")))!;
        config["vocab_size"] = 2000;
        config["architectures"] = new JsonArray("BertForMaskedLM");
        File.WriteAllText(Path.Combine(dir, "config.json"), config.ToJsonString());
        File.WriteAllLines(Path.Combine(dir, "train.txt"), File.ReadLines(Path.Combine(RepoPaths.Data, "tinystories", "tiny_stories_sample.txt")).Take(240));
        var output = Path.Combine(dir, "out");

        var result = CliRunner.Run(["pretrain", "--objective", "mlm", "--config", dir, "--train", Path.Combine(dir, "train.txt"), "--output", output,
            "--layers", "1", "--epochs", "2", "--batch-size", "16", "--lr", "2e-3", "--max-length", "48", "--eval-fraction", "0.1", "--seed", "3", .. precision]);
        Assert.True(result.ExitCode == 0, result.All);
        var metrics = JsonNode.Parse(File.ReadAllText(Path.Combine(output, "pretrain_metrics.json")))!;
        var before = metrics["eval_loss_before"]!.GetValue<double>();
        var after = metrics["eval_loss_after"]!.GetValue<double>();
        Assert.True(after < before - 0.2, $"held-out MLM loss {before} -> {after}");
        Assert.Contains("held-out MLM loss", result.StdOut);
        Assert.Equal(1, PretrainedConfig.FromDirectory(output).Get("num_hidden_layers", 0));

        using var classifier = AutoModel.FromPretrained(output, out var report, ModelTask.SequenceClassification);
        Assert.IsType<BertForSequenceClassification>(classifier);
        Assert.All(report.Missing, name => Assert.True(name.StartsWith("classifier.") || name.StartsWith("bert.pooler."), name));
        Directory.Delete(dir, true);
    }
}
