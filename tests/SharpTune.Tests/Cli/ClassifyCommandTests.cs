using System.Text.Json;
using SharpTune.Tests.Support;

namespace SharpTune.Tests.Cli;

/// <summary><c>sharptune classify</c> end to end on slices of the repo's real data sets.</summary>
public sealed class ClassifyCommandTests : IDisposable
{
    private readonly string _directory = RepoPaths.NewTempDirectory("sharptune-classify");

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    /// <summary>The header and the first <paramref name="rows"/> lines of a repo data file (one record per line there).</summary>
    private string Slice(string relative, int rows, string name, Func<string, string>? edit = null)
    {
        var lines = File.ReadLines(Path.Combine(RepoPaths.Data, relative)).Take(rows + 1).Select((l, i) => i == 0 || edit is null ? l : edit(l));
        var path = Path.Combine(_directory, name);
        File.WriteAllLines(path, lines);
        return path;
    }

    [Fact]
    public void MulticlassAgNewsWithHeldOutFractionAndTest()
    {
        var train = Slice("ag_news/test.csv", 800, "ag.csv");
        var test = Slice("ag_news/test.csv", 30, "ag_test.csv");
        var output = Path.Combine(_directory, "out");
        var result = CliRunner.Run("classify", "--train", train, "--eval-fraction", "0.25", "--test", test, "--text-column", "title",
            "--text-pair-column", "description", "--label-column", "label", "--approach", "tfidf", "--output", output, "--seed", "7");
        Assert.True(result.ExitCode == 0, result.All);

        var metrics = JsonDocument.Parse(File.ReadAllText(Path.Combine(output, "metrics.json"))).RootElement.GetProperty("tfidf");
        foreach (var key in new[] { "accuracy", "f1", "roc_auc", "train_seconds", "log_loss", "mcc", "f1_micro" })
            Assert.True(metrics.TryGetProperty(key, out _), $"metrics.json lacks {key}");
        Assert.Equal(200, metrics.GetProperty("eval_rows").GetInt32());
        Assert.Equal(["1", "2", "3", "4"], metrics.GetProperty("classes").EnumerateArray().Select(c => c.GetString()));
        Assert.InRange(metrics.GetProperty("accuracy").GetDouble(), 0.6, 1.0);
        Assert.InRange(metrics.GetProperty("roc_auc").GetDouble(), 0.8, 1.0);

        var predictions = File.ReadAllLines(Path.Combine(output, "predictions_tfidf.csv"));
        Assert.Equal("id,label,predicted,prob_1,prob_2,prob_3,prob_4", predictions[0]);
        Assert.Equal(201, predictions.Length);
        var submission = File.ReadAllLines(Path.Combine(output, "submission.csv"));
        Assert.Equal("id,label,prob_1,prob_2,prob_3,prob_4", submission[0]);
        Assert.Equal(31, submission.Length);

        var report = File.ReadAllText(Path.Combine(output, "report.md"));
        Assert.Contains("| tfidf |", report);
        Assert.Contains("![ROC curves](roc.png)", report);
        foreach (var png in new[] { "roc.png", "pr.png" })
            Assert.Equal(new byte[] { 0x89, 0x50, 0x4E, 0x47 }, File.ReadAllBytes(Path.Combine(output, png))[..4]);
        Assert.True(File.Exists(Path.Combine(output, "tfidf", "tfidf_vectorizer.json")));
        Assert.Empty(Directory.GetFiles(output, "*.tmp", SearchOption.AllDirectories));
    }

    [Fact]
    public void BinarySpamWithEvalFileWritesProbabilitySubmission()
    {
        var train = Slice("sms_spam/SMSSpamCollection.tsv", 600, "train.tsv");
        var eval = Path.Combine(_directory, "eval.tsv");
        File.WriteAllLines(eval, File.ReadLines(Path.Combine(RepoPaths.Data, "sms_spam/SMSSpamCollection.tsv")).Take(1)
            .Concat(File.ReadLines(Path.Combine(RepoPaths.Data, "sms_spam/SMSSpamCollection.tsv")).Skip(601).Take(200)));
        var output = Path.Combine(_directory, "out");
        var result = CliRunner.Run("classify", "--train", train, "--eval", eval, "--test", eval, "--text-column", "SMS",
            "--label-column", "Label", "--class-weight", "balanced", "--output", output);
        Assert.True(result.ExitCode == 0, result.All);
        var metrics = JsonDocument.Parse(File.ReadAllText(Path.Combine(output, "metrics.json"))).RootElement.GetProperty("tfidf");
        Assert.Equal("spam", metrics.GetProperty("positive_class").GetString());
        Assert.InRange(metrics.GetProperty("roc_auc").GetDouble(), 0.9, 1.0);
        var submission = File.ReadAllLines(Path.Combine(output, "submission.csv"));
        Assert.Equal("id,probability", submission[0]);
        Assert.Equal(201, submission.Length);
        Assert.All(submission.Skip(1), line => Assert.InRange(double.Parse(line.Split(',')[1], System.Globalization.CultureInfo.InvariantCulture), 0, 1));
    }

    [Fact]
    public void BadRowsStopWithFileAndLineUnlessSkipped()
    {
        var train = Slice("sst2/dev.tsv", 100, "train.tsv", line => line.Replace("0\tone long string of cliches .", "0\t"));
        var eval = Slice("sst2/dev.tsv", 50, "eval.tsv", line => line.StartsWith("1\t") ? "7\t" + line[2..] : line);
        var output = Path.Combine(_directory, "out");
        string[] args = ["classify", "--train", train, "--eval", eval, "--text-column", "sentence|content", "--label-column", "label", "--output", output];

        var stopped = CliRunner.Run(args);
        Assert.Equal(1, stopped.ExitCode);
        Assert.Contains($"{train}:2: empty text", stopped.StdErr);
        Assert.False(Directory.Exists(output));

        var skipped = CliRunner.Run([.. args, "--skip-bad-rows"]);
        Assert.True(skipped.ExitCode == 0, skipped.All);
        Assert.Contains($"warning: skipped 1 bad row(s) of {train}", skipped.StdErr);
        Assert.Contains("label '7' is not one of the training labels", skipped.StdErr);
        // Only negatives are left in eval: ROC AUC is undefined there and written as null.
        var metrics = JsonDocument.Parse(File.ReadAllText(Path.Combine(output, "metrics.json"))).RootElement.GetProperty("tfidf");
        Assert.Equal(JsonValueKind.Null, metrics.GetProperty("roc_auc").ValueKind);
        Assert.Equal(30, metrics.GetProperty("eval_rows").GetInt32());
    }

    [Fact]
    public void UsageErrorsNameTheProblem()
    {
        var train = Slice("sst2/dev.tsv", 60, "train.tsv");
        var output = Path.Combine(_directory, "out");
        var unknown = CliRunner.Run("classify", "--train", train, "--eval-fraction", "0.3", "--text-column", "content", "--label-column", "label",
            "--approach", "tfidf,svm", "--output", output);
        Assert.Equal(2, unknown.ExitCode);
        Assert.Contains("unknown approach 'svm'", unknown.StdErr);

        var column = CliRunner.Run("classify", "--train", train, "--eval-fraction", "0.3", "--text-column", "text", "--label-column", "label", "--output", output);
        Assert.Equal(2, column.ExitCode);
        Assert.Contains("no text column 'text'", column.StdErr);
        Assert.Contains("label, content", column.StdErr);

        var split = CliRunner.Run("classify", "--train", train, "--text-column", "content", "--label-column", "label", "--output", output);
        Assert.Equal(2, split.ExitCode);
        Assert.Contains("--eval-fraction", split.StdErr);
        Assert.False(Directory.Exists(output));
    }

    [Fact]
    public void EmbeddingsApproachRunsBesideTfidfWithATinyBert()
    {
        // The tiny random BERT fixture has a 1,000-token vocabulary: give it the fixture WordPiece tokenizer cut to
        // its first 1,000 ids (unknown pieces fall back to [UNK]).
        var tokenizer = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(RepoPaths.Fixture("tokenizers", "bert-wordpiece.tokenizer.json")))!;
        var vocab = tokenizer["model"]!["vocab"]!.AsObject();
        foreach (var entry in vocab.ToList().Where(e => e.Value!.GetValue<int>() >= 1000))
            vocab.Remove(entry.Key);
        var tokenizerPath = Path.Combine(_directory, "tokenizer.json");
        File.WriteAllText(tokenizerPath, tokenizer.ToJsonString());

        var train = Slice("sst2/dev.tsv", 120, "train.tsv");
        var output = Path.Combine(_directory, "out");
        var result = CliRunner.Run("classify", "--train", train, "--eval-fraction", "0.25", "--text-column", "content", "--label-column", "label",
            "--approach", "tfidf,embeddings", "--model", RepoPaths.Fixture("models", "bert-base-model"), "--tokenizer", tokenizerPath,
            "--batch-size", "16", "--output", output, "--device", "cpu");
        Assert.True(result.ExitCode == 0, result.All);
        var metrics = JsonDocument.Parse(File.ReadAllText(Path.Combine(output, "metrics.json"))).RootElement;
        Assert.Equal(["tfidf", "embeddings"], metrics.EnumerateObject().Select(p => p.Name));
        var embeddings = metrics.GetProperty("embeddings");
        Assert.Equal(64, embeddings.GetProperty("embedding_dimensions").GetInt32());
        Assert.Equal(30, embeddings.GetProperty("eval_rows").GetInt32());
        Assert.Equal(31, File.ReadAllLines(Path.Combine(output, "predictions_embeddings.csv")).Length);
        Assert.Matches(@"\| (\*\*)?embeddings(\*\*)? \|", File.ReadAllText(Path.Combine(output, "report.md")));

        var missingModel = CliRunner.Run("classify", "--train", train, "--eval-fraction", "0.25", "--text-column", "content", "--label-column", "label",
            "--approach", "embeddings", "--output", Path.Combine(_directory, "out2"));
        Assert.Equal(2, missingModel.ExitCode);
        Assert.Contains("--model", missingModel.StdErr);
    }
}
