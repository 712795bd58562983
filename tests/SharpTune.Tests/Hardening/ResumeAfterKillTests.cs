using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using SharpTune.Models;
using SharpTune.Tests.Support;
using SharpTune.Training;

namespace SharpTune.Tests.Hardening;

/// <summary>kill -9 of a training CLI run, then --resume: it continues from the last complete checkpoint, exits 0, and
/// ends with the metrics of an uninterrupted run.</summary>
public sealed class ResumeAfterKillTests : IDisposable
{
    private readonly string _root = RepoPaths.NewTempDirectory();

    public void Dispose() => Directory.Delete(_root, recursive: true);

    [Fact]
    public void PretrainResumedAfterKillMatchesAnUninterruptedRun()
    {
        var train = Path.Combine(_root, "train.txt");
        File.WriteAllLines(train, File.ReadLines(Path.Combine(RepoPaths.Data, "tinystories", "tiny_stories_sample.txt")).Take(120));
        string[] Args(string output) =>
        [
            "pretrain", "--objective", "clm", "--config", Path.Combine(RepoPaths.Models, "stories260K"), "--train", train, "--output", output,
            "--save-steps", "2", "--max-steps", "8", "--batch-size", "4", "--max-length", "32", "--seed", "5",
        ];
        var whole = Path.Combine(_root, "whole");
        var uninterrupted = CliRunner.Run(Args(whole));
        Assert.True(uninterrupted.ExitCode == 0, uninterrupted.All);

        var killed = Path.Combine(_root, "killed");
        KillAfterFirstCheckpoint(Args(killed), killed);
        var resumed = CliRunner.Run([.. Args(killed), "--resume"]);
        Assert.True(resumed.ExitCode == 0, resumed.All);

        var expected = JsonNode.Parse(File.ReadAllText(Path.Combine(whole, "pretrain_metrics.json")))!;
        var actual = JsonNode.Parse(File.ReadAllText(Path.Combine(killed, "pretrain_metrics.json")))!;
        Assert.StartsWith(TrainerCheckpoint.Prefix, actual["resumed_from"]!.GetValue<string>());
        Assert.Equal(8, actual["steps"]!.GetValue<long>());
        foreach (var key in new[] { "eval_loss_before", "eval_loss_after" })
            Assert.Equal(expected[key]!.GetValue<double>(), actual[key]!.GetValue<double>(), 1e-5);
    }

    [Fact]
    public void ClassifyFinetuneAndKFoldResumedAfterKillMatchAnUninterruptedRun()
    {
        var model = TinyBert();
        var train = Path.Combine(_root, "train.tsv");
        File.WriteAllLines(train, File.ReadLines(Path.Combine(RepoPaths.Data, "sst2-sample", "train.tsv")).Take(97));
        string[] Args(string output) =>
        [
            "classify", "--train", train, "--eval-fraction", "0.25", "--text-column", "sentence", "--label-column", "label",
            "--approach", "finetune,kfold", "--folds", "2", "--model", model, "--output", output, "--batch-size", "8", "--max-length", "24", "--epochs", "1",
            "--lr", "1e-3", "--save-steps", "2", "--seed", "3",
        ];
        var whole = Path.Combine(_root, "whole");
        var uninterrupted = CliRunner.Run(Args(whole));
        Assert.True(uninterrupted.ExitCode == 0, uninterrupted.All);

        var killed = Path.Combine(_root, "killed");
        // Killed in k-fold's first fold: finetune has finished, k-fold's first fold is half done and its second not begun.
        KillAfterFirstCheckpoint(Args(killed), Path.Combine(killed, "kfold", "fold-0"));
        var resumed = CliRunner.Run([.. Args(killed), "--resume"]);
        Assert.True(resumed.ExitCode == 0, resumed.All);

        foreach (var file in new[] { "predictions_finetune.csv", "predictions_kfold.csv", Path.Combine("kfold", "oof_predictions.csv") })
        {
            var expected = Probabilities(Path.Combine(whole, file));
            var actual = Probabilities(Path.Combine(killed, file));
            Assert.Equal(expected.Length, actual.Length);
            for (var i = 0; i < expected.Length; i++)
                Assert.Equal(expected[i], actual[i], 1e-5);
        }

        var fresh = CliRunner.Run([.. Args(Path.Combine(_root, "nothing")), "--resume"]);
        Assert.Equal(2, fresh.ExitCode);
        Assert.Contains("--resume: no checkpoint-*", fresh.StdErr);
    }

    /// <summary>Starts the CLI, waits for its first complete checkpoint, and kills it (SIGKILL) while it still runs.</summary>
    private static void KillAfterFirstCheckpoint(string[] args, string checkpointParent)
    {
        using var process = CliRunner.Start(args);
        var drain = Task.WhenAll(process.StandardOutput.ReadToEndAsync(), process.StandardError.ReadToEndAsync());
        var watch = Stopwatch.StartNew();
        while (TrainerCheckpoint.Latest(checkpointParent) is null)
        {
            if (process.HasExited)
                Assert.Fail($"the run ended (exit {process.ExitCode}) before its first checkpoint: {string.Join("\n", drain.Result)}");
            Assert.True(watch.Elapsed < TimeSpan.FromMinutes(5), "no checkpoint within 5 minutes");
            Thread.Sleep(5);
        }
        Assert.False(process.HasExited, "the run finished before it could be killed; give it more steps");
        process.Kill(entireProcessTree: true);
        process.WaitForExit();
        drain.Wait();
        Assert.NotEqual(0, process.ExitCode);
    }

    /// <summary>The probability columns of a predictions CSV (id, label, predicted, p...) or an OOF CSV (id, label, p...).</summary>
    private static double[] Probabilities(string csv) =>
        File.ReadLines(csv).Skip(1).SelectMany(line => line.Split(',').Skip(csv.EndsWith("oof_predictions.csv", StringComparison.Ordinal) ? 2 : 3))
            .Select(f => double.Parse(f, CultureInfo.InvariantCulture)).ToArray();

    /// <summary>A 2-layer BERT of hidden size 64 over the WordPiece fixture's vocabulary, seeded: minutes of mini-bert become seconds.</summary>
    private string TinyBert()
    {
        var directory = Path.Combine(_root, "tiny-bert");
        var config = PretrainedConfig.FromFile(RepoPaths.Fixture("models", "bert-base-model", "config.json"));
        config.Set("vocab_size", 2000);
        config.Set("architectures", new JsonArray("BertModel"));
        TorchSharp.torch.manual_seed(11);
        using var model = AutoModel.FromConfig(config, ModelTask.Base);
        model.InitializeWeights();
        model.SavePretrained(directory);
        File.Copy(RepoPaths.Fixture("tokenizers", "bert-wordpiece.tokenizer.json"), Path.Combine(directory, "tokenizer.json"));
        return directory;
    }
}
