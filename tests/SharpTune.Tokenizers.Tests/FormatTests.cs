using System.Text.Json.Nodes;

namespace SharpTune.Tokenizers.Tests;

/// <summary>The other tokenizer formats and AutoTokenizer: parity with the reference and round trips.</summary>
public class FormatTests
{
    private static readonly string[] Texts =
    [
        "Once upon a time, there was a little girl named Lily.", "Héllò hôw are ü?  Multiple   spaces\tand\ttabs\nnewline",
        "naïve café — “quotes” … 中文 日本語 👍🏽", "  leading and trailing  ", "numbers 3.14159 1,000,000 2024-11-23", "a", "",
    ];

    private static IEnumerable<string> SampleTexts() =>
        Texts.Concat(File.ReadLines(TestPaths.Repo("data", "tinystories", "tiny_stories_sample.txt")).Where(l => l.Length > 0).Take(40));

    [Fact]
    public void BertVocabTxtMatchesHuggingFace()
    {
        var tokenizer = AutoTokenizer.FromPretrained(TestPaths.Fixture("tokenizers", "real", "bert-base-uncased", "vocab.txt"));
        Assert.Equal(30522, tokenizer.VocabSize);
        var golden = GoldenTests.Golden("real", "bert-base-uncased.golden.json");
        GoldenTests.CheckSingles(tokenizer, golden, hasDecoded: true);
        GoldenTests.CheckPairs(tokenizer, golden);
        Assert.Equal(0, tokenizer.PadTokenId);
        Assert.Equal(103, tokenizer.TokenToId("[MASK]"));
    }

    [Fact]
    public void Gpt2VocabAndMergesMatchTokenizerJson()
    {
        var source = JsonNode.Parse(File.ReadAllText(TestPaths.Fixture("tokenizers", "bytelevel-bpe.tokenizer.json")))!;
        var directory = TestPaths.NewTempDirectory();
        try
        {
            File.WriteAllText(Path.Combine(directory, "vocab.json"), source["model"]!["vocab"]!.ToJsonString());
            File.WriteAllLines(Path.Combine(directory, "merges.txt"),
                ["#version: 0.2", .. source["model"]!["merges"]!.AsArray().Select(m => $"{m![0]} {m[1]}")]);
            var tokenizer = AutoTokenizer.FromPretrained(directory);
            var golden = GoldenTests.Golden("tokenizers", "bytelevel-bpe.golden.json");
            var failures = new List<string>();
            var cases = golden.GetProperty("single").EnumerateArray().ToList();
            foreach (var c in cases)
            {
                var text = c.GetProperty("text").GetString()!;
                var encoding = tokenizer.Encode(text);
                GoldenTests.Check(failures, "ids", text, GoldenTests.Ints(c.GetProperty("ids")), encoding.Ids);
                GoldenTests.Check(failures, "decoded", text, [c.GetProperty("decoded").GetString()], [tokenizer.Decode(encoding.Ids)]);
            }
            GoldenTests.Report(failures, cases.Count);
        }
        finally
        {
            Directory.Delete(directory, true);
        }
    }

    [Fact]
    public void Llama2SentencePieceModelMatchesSentencePiece()
    {
        var tokenizer = AutoTokenizer.FromPretrained(TestPaths.Fixture("tokenizers", "real", "llama2", "tokenizer.model"));
        var golden = GoldenTests.Golden("real", "llama2-spm.golden.json");
        Assert.Equal(golden.GetProperty("vocab_size").GetInt32(), tokenizer.VocabSize);
        Assert.Equal(golden.GetProperty("bos_id").GetInt32(), tokenizer.BosTokenId);
        Assert.Equal(golden.GetProperty("eos_id").GetInt32(), tokenizer.EosTokenId);
        Assert.Equal(golden.GetProperty("unk_id").GetInt32(), tokenizer.UnkTokenId);
        var failures = new List<string>();
        var cases = golden.GetProperty("single").EnumerateArray().ToList();
        foreach (var c in cases)
        {
            var text = c.GetProperty("text").GetString()!;
            var encoding = tokenizer.Encode(text, addSpecialTokens: false);
            GoldenTests.Check(failures, "ids", text, GoldenTests.Ints(c.GetProperty("ids")), encoding.Ids);
            GoldenTests.Check(failures, "pieces", text, GoldenTests.Strings(c.GetProperty("pieces")), encoding.Tokens);
            GoldenTests.Check(failures, "decoded", text, [c.GetProperty("decoded").GetString()], [tokenizer.Decode(encoding.Ids)]);
        }
        GoldenTests.Report(failures, cases.Count);
    }

    [Fact]
    public void Stories260KTokenizerJsonAndLlama2cBinAgreeAndRoundTrip()
    {
        var json = AutoTokenizer.FromPretrained(TestPaths.Repo("models", "stories260K"));
        var bin = AutoTokenizer.FromPretrained(TestPaths.Repo("models", "stories260K", "llama2c", "tok512.bin"));
        Assert.Equal(512, json.VocabSize);
        Assert.Equal(512, bin.VocabSize);
        Assert.Equal(1, json.BosTokenId);
        Assert.Equal(2, bin.EosTokenId);
        foreach (var text in SampleTexts())
        {
            var ids = json.Encode(text).Ids;
            Assert.Equal(ids, bin.Encode(text).Ids);
            Assert.Equal(text, json.Decode(ids));
            Assert.Equal(text, bin.Decode(ids));
        }
        // "Once upon a time" is what the model generates first: common words are single tokens.
        Assert.True(json.Encode("Once upon a time").Length <= 6);
    }

    [Fact]
    public void Llama2SentencePieceRoundTripsTinyStories()
    {
        var tokenizer = AutoTokenizer.FromPretrained(TestPaths.Fixture("tokenizers", "real", "llama2", "tokenizer.model"));
        foreach (var text in SampleTexts())
            Assert.Equal(text, tokenizer.Decode(tokenizer.Encode(text).Ids));
    }

    [Fact]
    public void Llama2OffsetsPointAtEachPiecesText()
    {
        // Sentences are merged in ▁-words (cut before each ▁ that follows another char): offsets must stay those of the text.
        var tokenizer = AutoTokenizer.FromPretrained(TestPaths.Fixture("tokenizers", "real", "llama2", "tokenizer.model"));
        foreach (var text in SampleTexts())
        {
            var encoding = tokenizer.Encode(text);
            for (var i = 1; i < encoding.Length; i++)
            {
                var token = encoding.Tokens[i];
                var (start, end) = encoding.Utf16Offsets[i];
                Assert.True(start >= encoding.Utf16Offsets[i - 1].Start, $"'{text}': token {i} '{token}' starts at {start}, before the previous one");
                if (!token.StartsWith("<0x", StringComparison.Ordinal)) // byte pieces share their char's offsets
                    Assert.Equal(token.Replace('\u2581', ' '), text[start..end]);
            }
        }
    }

    [Fact]
    public void AutoTokenizerPrefersTokenizerJsonAndReadsSpecialTokens()
    {
        var tokenizer = AutoTokenizer.FromPretrained(TestPaths.Fixture("tokenizers", "real", "bert-base-uncased"));
        Assert.Equal("[PAD]", tokenizer.SpecialTokens.Pad);
        Assert.Equal("[MASK]", tokenizer.SpecialTokens.Mask);
        Assert.Equal(0, tokenizer.PadTokenId);
        Assert.Equal(30522, tokenizer.VocabSize);
        Assert.IsType<Models.WordPieceModel>(tokenizer.Model);
    }

    [Fact]
    public void UnknownComponentTypeNamesTypeAndFile()
    {
        var directory = TestPaths.NewTempDirectory();
        try
        {
            var node = JsonNode.Parse(File.ReadAllText(TestPaths.Fixture("tokenizers", "whitespace-bpe.tokenizer.json")))!;
            node["pre_tokenizer"] = new JsonObject { ["type"] = "MadeUpSplitter" };
            var path = Path.Combine(directory, "tokenizer.json");
            File.WriteAllText(path, node.ToJsonString());
            var error = Assert.Throws<InvalidDataException>(() => Tokenizer.FromFile(path));
            Assert.Contains("MadeUpSplitter", error.Message);
            Assert.Contains(path, error.Message);
        }
        finally
        {
            Directory.Delete(directory, true);
        }
    }

    [Fact]
    public void MissingPathsThrowNotFound()
    {
        Assert.Throws<DirectoryNotFoundException>(() => AutoTokenizer.FromPretrained("/nonexistent/tokenizer-dir"));
        Assert.Throws<FileNotFoundException>(() => Tokenizer.FromFile("/nonexistent/tokenizer.json"));
    }
}
