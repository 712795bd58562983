using System.Diagnostics;
using System.Text.Json.Nodes;

namespace SharpTune.Tokenizers.Tests;

/// <summary>
/// Crafted or damaged tokenizer.json files: truncations, wrong types, absurd sizes and ids, hostile regexes. Every case
/// ends in a typed exception whose message is one line naming the file, in bounded time and memory.
/// </summary>
public class MalformedTokenizerJsonTests : IDisposable
{
    private readonly string _directory = TestPaths.NewTempDirectory();

    public void Dispose() => Directory.Delete(_directory, true);

    private static JsonObject Fixture(string name) =>
        JsonNode.Parse(File.ReadAllText(TestPaths.Fixture("tokenizers", name + ".tokenizer.json")))!.AsObject();

    /// <summary>Edits of a valid tokenizer.json that must all be refused at load.</summary>
    public static TheoryData<string, string> Cases => new()
    {
        // absurd or invalid ids (issue 14 item 3): memory, overflow, negative index, negative added token
        { "vocab id 1e9", "bytelevel-bpe|model.vocab.a=1000000000" },
        { "vocab id 2^31-1", "bytelevel-bpe|model.vocab.a=2147483647" },
        { "vocab id -1", "bytelevel-bpe|model.vocab.a=-1" },
        { "vocab id 2^40", "bytelevel-bpe|model.vocab.a=1099511627776" },
        { "vocab id 1e9 in exponent form", "bytelevel-bpe|model.vocab.a=1e9" },
        { "vocab id fractional", "bytelevel-bpe|model.vocab.a=1.5" },
        { "added token id -1", "bytelevel-bpe|added_tokens.0.id=-1" },
        { "added token id 1e9", "bytelevel-bpe|added_tokens.0.id=1000000000" },
        { "unigram unk_id out of range", "sp-unigram|model.unk_id=1000000000" },
        { "wordpiece id -7", "bert-wordpiece|model.vocab.[UNK]=-7" },
        { "template special id -2", "bert-wordpiece|post_processor.special_tokens.[CLS].ids.0=-2" },
        { "padding pad_id -1", "bytelevel-bpe|padding={\"strategy\":\"BatchLongest\",\"pad_id\":-1}" },
        { "truncation max_length -5", "bytelevel-bpe|truncation={\"max_length\":-5}" },
        // wrong types (issue 14 item 9)
        { "vocab id a string", "bytelevel-bpe|model.vocab.a=\"12\"" },
        { "vocab an array", "bytelevel-bpe|model.vocab=[1,2]" },
        { "vocab missing", "bytelevel-bpe|model.vocab=null" },
        { "merges a number", "bytelevel-bpe|model.merges=5" },
        { "merge a number", "bytelevel-bpe|model.merges.0=5" },
        { "model a string", "bytelevel-bpe|model=\"BPE\"" },
        { "model type unknown", "bytelevel-bpe|model.type=\"Magic\"" },
        { "added_tokens an object", "bytelevel-bpe|added_tokens={}" },
        { "added token a string", "bytelevel-bpe|added_tokens.0=\"<s>\"" },
        { "added token id a string", "bytelevel-bpe|added_tokens.0.id=\"zero\"" },
        { "added token content a number", "bytelevel-bpe|added_tokens.0.content=7" },
        { "pre_tokenizer a number", "bytelevel-bpe|pre_tokenizer=3" },
        { "normalizer list not a list", "sp-unigram|normalizer.normalizers=true" },
        { "split pattern a number", "bytelevel-bpe|pre_tokenizer={\"type\":\"Split\",\"pattern\":{\"Regex\":5},\"behavior\":\"Isolated\"}" },
        { "unigram piece a number", "sp-unigram|model.vocab.3=42" },
        { "unigram score a string", "sp-unigram|model.vocab.3=[\"x\",\"high\"]" },
        { "template ids strings", "bert-wordpiece|post_processor.special_tokens.[CLS].ids=[\"a\"]" },
        { "truncation max_length a string", "bytelevel-bpe|truncation={\"max_length\":\"long\"}" },
        { "decoder strip start a string", "bytelevel-bpe|decoder={\"type\":\"Strip\",\"content\":\" \",\"start\":\"x\",\"stop\":0}" },
        // invalid regexes are refused with Oniguruma's reason
        { "regex unclosed group", "bytelevel-bpe|pre_tokenizer={\"type\":\"Split\",\"pattern\":{\"Regex\":\"(abc\"},\"behavior\":\"Isolated\"}" },
        { "replace regex invalid", "sp-unigram|normalizer={\"type\":\"Replace\",\"pattern\":{\"Regex\":\"[z-a]\"},\"content\":\"\"}" },
    };

    /// <summary>Applies "path=json" to the fixture: dotted keys, numeric segments index arrays.</summary>
    private string Write(string spec)
    {
        var (name, edit) = (spec[..spec.IndexOf('|')], spec[(spec.IndexOf('|') + 1)..]);
        var root = Fixture(name);
        var (path, value) = (edit[..edit.IndexOf('=')], edit[(edit.IndexOf('=') + 1)..]);
        var keys = path.Split('.');
        JsonNode parent = root;
        foreach (var key in keys[..^1])
            parent = parent is JsonArray a ? a[int.Parse(key)]! : parent[key]!;
        var node = value == "null" ? null : JsonNode.Parse(value);
        if (parent is JsonArray array)
            array[int.Parse(keys[^1])] = node;
        else
            parent[keys[^1]] = node;
        var file = Path.Combine(_directory, Guid.NewGuid().ToString("N")[..8], "tokenizer.json");
        Directory.CreateDirectory(Path.GetDirectoryName(file)!);
        File.WriteAllText(file, root.ToJsonString());
        return file;
    }

    private static void AssertOneLineNaming(Exception error, string file)
    {
        Assert.Contains(file, error.Message);
        Assert.DoesNotContain('\n', error.Message);
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void RefusedAtLoadWithOneLineNamingTheFile(string name, string spec)
    {
        var file = Write(spec);
        var before = GC.GetTotalAllocatedBytes();
        var error = Assert.Throws<InvalidDataException>(() => Tokenizer.FromFile(file));
        Assert.True(GC.GetTotalAllocatedBytes() - before < 200_000_000, $"{name}: allocated {(GC.GetTotalAllocatedBytes() - before) / 1e6:F0} MB");
        AssertOneLineNaming(error, file);
    }

    [Fact]
    public void TruncatedFilesAreRefused()
    {
        var text = File.ReadAllText(TestPaths.Fixture("tokenizers", "bytelevel-bpe.tokenizer.json"));
        foreach (var length in new[] { 0, 1, 10, text.Length / 3, text.Length / 2, text.Length - 2 })
        {
            var file = Path.Combine(_directory, $"truncated-{length}.json");
            File.WriteAllText(file, text[..length]);
            AssertOneLineNaming(Assert.Throws<InvalidDataException>(() => Tokenizer.FromFile(file)), file);
        }
        var array = Path.Combine(_directory, "array.json");
        File.WriteAllText(array, "[1, 2]");
        AssertOneLineNaming(Assert.Throws<InvalidDataException>(() => Tokenizer.FromFile(array)), array);
    }

    [Fact]
    public void HostileRegexIsBoundedAndNamesTheFile()
    {
        // Issue 14 item 8: (a+)+$ backtracks exponentially on a run of "a"s followed by anything else.
        var file = Write("bytelevel-bpe|pre_tokenizer={\"type\":\"Split\",\"pattern\":{\"Regex\":\"(a+)+$\"},\"behavior\":\"Isolated\"}");
        var tokenizer = Tokenizer.FromFile(file);
        Assert.NotEmpty(tokenizer.Encode("aaaa").Ids); // benign text: fine
        var watch = Stopwatch.StartNew();
        var error = Assert.Throws<Pipeline.RegexLimitException>(() => tokenizer.Encode(new string('a', 34) + "!"));
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(20), $"took {watch.Elapsed}");
        AssertOneLineNaming(error, file);
        Assert.Throws<Pipeline.RegexLimitException>(() => tokenizer.EncodeToIds(new string('a', 5000) + "!"));
    }

    [Fact]
    public void LargeButValidIdsStillLoad()
    {
        // Ids may leave holes (added tokens between model ids): only ids beyond twice the tokens defined are refused.
        var file = Write("bytelevel-bpe|added_tokens.0.id=3000");
        Assert.Equal(3000, Tokenizer.FromFile(file).TokenToId("<|endoftext|>"));
    }
}
