using System.Text.Json;
using SharpTune.Tests.Support;

namespace SharpTune.Tests.Cli;

public class TokenizeCommandTests
{
    private static JsonElement Golden(string name) =>
        JsonDocument.Parse(File.ReadAllText(RepoPaths.Fixture("tokenizers", name + ".golden.json"))).RootElement;

    private static int[] Ints(JsonElement e) => e.EnumerateArray().Select(x => x.GetInt32()).ToArray();

    [Fact]
    public void TokenizeWritesHuggingFaceEncodingsWithCodePointOffsets()
    {
        var golden = Golden("bert-wordpiece");
        var singles = golden.GetProperty("single").EnumerateArray().Take(12).ToList();
        var pairs = golden.GetProperty("pairs").EnumerateArray().Take(4).ToList();
        var directory = RepoPaths.NewTempDirectory();
        var input = Path.Combine(directory, "in.jsonl");
        var output = Path.Combine(directory, "out.jsonl");
        File.WriteAllLines(input, singles.Select(c => JsonSerializer.Serialize(new { text = c.GetProperty("text").GetString() }))
            .Concat(pairs.Select(c => JsonSerializer.Serialize(new { text = c.GetProperty("a").GetString(), text_pair = c.GetProperty("b").GetString() }))));

        var result = CliRunner.Run("tokenize", "--tokenizer", RepoPaths.Fixture("tokenizers", "bert-wordpiece.tokenizer.json"),
            "--input", input, "--output", output);

        Assert.True(result.ExitCode == 0, result.All);
        var lines = File.ReadAllLines(output).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        Assert.Equal(singles.Count + pairs.Count, lines.Count);
        foreach (var (expected, actual) in singles.Concat(pairs).Zip(lines))
        {
            Assert.Equal(Ints(expected.GetProperty("ids")), Ints(actual.GetProperty("ids")));
            Assert.Equal(Ints(expected.GetProperty("type_ids")), Ints(actual.GetProperty("type_ids")));
            // Offsets are in code points: the emoji case (🤗 is two UTF-16 units) checks it.
            Assert.Equal(expected.GetProperty("offsets").ToString(), actual.GetProperty("offsets").ToString().Replace(",", ", "));
            Assert.All(Ints(actual.GetProperty("attention_mask")), m => Assert.Equal(1, m));
        }
    }

    [Fact]
    public void TruncationAndPaddingToMaxLengthMatchHuggingFace()
    {
        var cases = Golden("bert-wordpiece").GetProperty("truncate16_pad16").EnumerateArray().Take(12).ToList();
        var directory = RepoPaths.NewTempDirectory();
        var input = Path.Combine(directory, "in.jsonl");
        var output = Path.Combine(directory, "out.jsonl");
        File.WriteAllLines(input, cases.Select(c => JsonSerializer.Serialize(new { text = c.GetProperty("text").GetString() })));

        var result = CliRunner.Run("tokenize", "--tokenizer", RepoPaths.Fixture("tokenizers", "bert-wordpiece.tokenizer.json"),
            "--input", input, "--output", output, "--max-length", "16", "--truncation", "--padding", "max_length");

        Assert.True(result.ExitCode == 0, result.All);
        var lines = File.ReadAllLines(output).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        foreach (var (expected, actual) in cases.Zip(lines))
        {
            Assert.Equal(Ints(expected.GetProperty("ids")), Ints(actual.GetProperty("ids")));
            Assert.Equal(Ints(expected.GetProperty("attention_mask")), Ints(actual.GetProperty("attention_mask")));
        }
    }

    [Fact]
    public void MissingTokenizerOrBadFlagsAreUsageErrors()
    {
        var directory = RepoPaths.NewTempDirectory();
        var input = Path.Combine(directory, "in.jsonl");
        File.WriteAllText(input, "{\"text\": \"hi\"}\n");
        var output = Path.Combine(directory, "out.jsonl");

        var missing = CliRunner.Run("tokenize", "--tokenizer", Path.Combine(directory, "nope"), "--input", input, "--output", output);
        Assert.Equal(2, missing.ExitCode);
        Assert.Contains("nope", missing.StdErr);

        var noLength = CliRunner.Run("tokenize", "--tokenizer", RepoPaths.Fixture("tokenizers", "bert-wordpiece.tokenizer.json"),
            "--input", input, "--output", output, "--truncation");
        Assert.Equal(2, noLength.ExitCode);
        Assert.Contains("--max-length", noLength.StdErr);
        Assert.False(File.Exists(output));
    }
}

public class TokenizerTrainCommandTests
{
    [Fact]
    public void TrainByteLevelBpeGivesHuggingFacesMergesAndALoadableTokenizer()
    {
        var directory = RepoPaths.NewTempDirectory();
        var output = Path.Combine(directory, "tokenizer.json");
        var result = CliRunner.Run("tokenizer", "train", "--type", "bytelevel-bpe", "--vocab-size", "2000",
            "--input", RepoPaths.Fixture("tokenizers", "train_corpus.txt"), "--output", output);

        Assert.True(result.ExitCode == 0, result.All);
        var trained = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(output))!["model"]!;
        var reference = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(RepoPaths.Fixture("tokenizers", "bytelevel-bpe.tokenizer.json")))!["model"]!;
        Assert.Equal(reference["merges"]!.ToJsonString(), trained["merges"]!.ToJsonString());
        Assert.Equal(2000, trained["vocab"]!.AsObject().Count);

        var tokenizer = SharpTune.Tokenizers.AutoTokenizer.FromPretrained(output);
        const string text = "Transformers support zero-shot learning.";
        Assert.Equal(text, tokenizer.Decode(tokenizer.Encode(text).Ids));
    }

    [Fact]
    public void TrainRejectsAnUnknownType()
    {
        var result = CliRunner.Run("tokenizer", "train", "--type", "sentencepiece", "--vocab-size", "100",
            "--input", RepoPaths.Fixture("tokenizers", "train_corpus.txt"), "--output", Path.Combine(RepoPaths.NewTempDirectory(), "t.json"));
        Assert.Equal(2, result.ExitCode);
        Assert.Contains("sentencepiece", result.StdErr);
    }
}
