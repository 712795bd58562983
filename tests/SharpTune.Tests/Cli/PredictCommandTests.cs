using System.Globalization;
using System.Text.Json;
using SharpTune.Tests.Support;

namespace SharpTune.Tests.Cli;

/// <summary><c>sharptune predict</c> for each task on the repo's small models, and the classify → predict round trip.</summary>
public sealed class PredictCommandTests : IDisposable
{
    private readonly string _directory = RepoPaths.NewTempDirectory("sharptune-predict");

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private static string MiniBert => Path.Combine(RepoPaths.Models, "mini-bert");

    private string Write(string name, params string[] lines)
    {
        var path = Path.Combine(_directory, name);
        System.IO.File.WriteAllLines(path, lines);
        return path;
    }

    private static List<JsonElement> ReadJsonLines(string path) =>
        System.IO.File.ReadAllLines(path).Select(l => JsonDocument.Parse(l).RootElement).ToList();

    [Fact]
    public void FillMaskFromATextFileWritesOneResultPerLine()
    {
        var input = Write("masked.txt", "she went to the [MASK].", "", "the [MASK] was very good .");
        var output = Path.Combine(_directory, "fills.jsonl");
        var result = CliRunner.Run("predict", "--model", MiniBert, "--task", "fill-mask", "--input", input, "--top-k", "3", "--output", output);
        Assert.True(result.ExitCode == 0, result.All);
        Assert.Contains("park", result.StdOut); // the table

        var lines = ReadJsonLines(output);
        Assert.Equal(2, lines.Count);
        Assert.Equal("she went to the [MASK].", lines[0].GetProperty("text").GetString());
        var candidates = lines[0].GetProperty("masks")[0].GetProperty("candidates");
        Assert.Equal(3, candidates.GetArrayLength());
        Assert.Equal("park", candidates[0].GetProperty("token_str").GetString());
        Assert.Equal(2380, candidates[0].GetProperty("token").GetInt64());
        Assert.Equal("she went to the park.", candidates[0].GetProperty("sequence").GetString()!.Replace(" .", "."));
        Assert.True(candidates[0].GetProperty("score").GetDouble() >= candidates[1].GetProperty("score").GetDouble());
    }

    [Fact]
    public void FillMaskNamesTheInputWithoutAMask()
    {
        var result = CliRunner.Run("predict", "--model", MiniBert, "--task", "fill-mask", "--text", "a [MASK] day", "--text", "no mask here");
        Assert.Equal(2, result.ExitCode);
        Assert.Contains("error: fill-mask input 2 (\"no mask here\") has no mask token [MASK]", result.StdErr);
    }

    [Fact]
    public void FeatureExtractionFromJsonLinesGivesTokenOrPooledEmbeddings()
    {
        var input = Write("texts.jsonl", "{\"id\": 1, \"sentence\": \"a good film\"}", "{\"id\": 2, \"sentence\": \"bad\"}");
        var tokensOut = Path.Combine(_directory, "tokens.jsonl");
        var tokens = CliRunner.Run("predict", "--model", MiniBert, "--task", "feature-extraction", "--input", input, "--text-column", "sentence",
            "--pooling", "none", "--output", tokensOut);
        Assert.True(tokens.ExitCode == 0, tokens.All);
        var first = ReadJsonLines(tokensOut)[0];
        Assert.Equal(["[CLS]", "a", "good", "film", "[SEP]"], first.GetProperty("tokens").EnumerateArray().Select(t => t.GetString()));
        Assert.Equal(5, first.GetProperty("embeddings").GetArrayLength());
        Assert.Equal(256, first.GetProperty("embeddings")[0].GetArrayLength());

        var pooledOut = Path.Combine(_directory, "pooled.jsonl");
        var pooled = CliRunner.Run("predict", "--model", MiniBert, "--task", "feature-extraction", "--input", input, "--text-column", "sentence",
            "--pooling", "cls", "--normalize", "--output", pooledOut);
        Assert.True(pooled.ExitCode == 0, pooled.All);
        var vectors = ReadJsonLines(pooledOut).Select(l => l.GetProperty("embedding").EnumerateArray().Select(v => v.GetDouble()).ToArray()).ToList();
        Assert.Equal(2, vectors.Count);
        Assert.All(vectors, v => Assert.Equal(1.0, Math.Sqrt(v.Sum(x => x * x)), 1e-5));

        var missing = CliRunner.Run("predict", "--model", MiniBert, "--task", "feature-extraction", "--input", input);
        Assert.Equal(2, missing.ExitCode);
        Assert.Contains("has no column 'text' (it has: id, sentence)", missing.StdErr);
    }

    [Fact]
    public void TextGenerationContinuesEachPrompt()
    {
        var output = Path.Combine(_directory, "stories.jsonl");
        var model = Path.Combine(RepoPaths.Models, "stories260K");
        var result = CliRunner.Run("predict", "--model", model, "--task", "text-generation", "--text", "Once upon a time", "--text", "Lily saw a",
            "--max-new-tokens", "12", "--output", output);
        Assert.True(result.ExitCode == 0, result.All);
        var lines = ReadJsonLines(output);
        Assert.Equal(2, lines.Count);
        Assert.StartsWith("Once upon a time", lines[0].GetProperty("generated_text").GetString());
        Assert.Equal(12, lines[0].GetProperty("new_tokens").GetInt32());

        var continuationOut = Path.Combine(_directory, "continuation.jsonl");
        var continuation = CliRunner.Run("predict", "--model", model, "--task", "text-generation", "--text", "Once upon a time",
            "--max-new-tokens", "12", "--return-full-text", "false", "--output", continuationOut);
        Assert.True(continuation.ExitCode == 0, continuation.All);
        Assert.Equal(lines[0].GetProperty("generated_text").GetString(),
            "Once upon a time" + ReadJsonLines(continuationOut)[0].GetProperty("generated_text").GetString());
    }

    [Fact]
    public void ClassifyFinetuneOutputLoadsForTextClassificationWithTheSameProbabilities()
    {
        var sst2 = Path.Combine(RepoPaths.Data, "sst2-sample");
        var train = Write("train.tsv", System.IO.File.ReadLines(Path.Combine(sst2, "train.tsv")).Take(65).ToArray());
        var eval = Write("eval.tsv", System.IO.File.ReadLines(Path.Combine(sst2, "dev.tsv")).Take(25).ToArray());
        var run = Path.Combine(_directory, "run");
        var classify = CliRunner.Run("classify", "--train", train, "--eval", eval, "--text-column", "sentence|content", "--label-column", "label",
            "--approach", "finetune", "--model", MiniBert, "--epochs", "1", "--batch-size", "32", "--max-length", "64", "--output", run, "--seed", "42");
        Assert.True(classify.ExitCode == 0, classify.All);

        var output = Path.Combine(_directory, "labels.jsonl");
        var predict = CliRunner.Run("predict", "--model", Path.Combine(run, "finetune", "model"), "--task", "text-classification",
            "--input", eval, "--text-column", "sentence|content", "--top-k", "0", "--max-length", "64", "--output", output);
        Assert.True(predict.ExitCode == 0, predict.All);

        // predictions_finetune.csv: id,label,predicted,prob_0,prob_1 per eval row, in file order.
        var expected = System.IO.File.ReadAllLines(Path.Combine(run, "predictions_finetune.csv")).Skip(1).Select(l => l.Split(',')).ToList();
        var actual = ReadJsonLines(output);
        Assert.Equal(24, actual.Count);
        for (var i = 0; i < actual.Count; i++)
        {
            var scores = actual[i].GetProperty("labels").EnumerateArray().ToDictionary(l => l.GetProperty("label").GetString()!, l => l.GetProperty("score").GetDouble());
            Assert.Equal(["0", "1"], scores.Keys.Order());
            Assert.Equal(double.Parse(expected[i][3], CultureInfo.InvariantCulture), scores["0"], 1e-4);
            Assert.Equal(double.Parse(expected[i][4], CultureInfo.InvariantCulture), scores["1"], 1e-4);
            Assert.Equal(expected[i][2], actual[i].GetProperty("labels")[0].GetProperty("label").GetString());
        }
    }

    [Fact]
    public void TextAndInputAreExclusive()
    {
        var input = Write("one.txt", "hello");
        var result = CliRunner.Run("predict", "--model", MiniBert, "--task", "fill-mask", "--text", "a [MASK]", "--input", input);
        Assert.Equal(2, result.ExitCode);
        Assert.Contains("--text TEXT (repeatable) or --input FILE, not both", result.StdErr);
    }
}
