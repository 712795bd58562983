using System.Text.Json;

namespace SharpTune.Tokenizers.Tests;

/// <summary>Exact parity with Hugging Face tokenizers on the golden outputs in tests/fixtures (every case).</summary>
public class GoldenTests
{
    public static TheoryData<string> FixtureNames => new() { "bert-wordpiece", "bytelevel-bpe", "sp-unigram", "whitespace-bpe" };

    private static readonly Dictionary<string, Tokenizer> Cache = [];

    private static Tokenizer Load(string path)
    {
        lock (Cache)
        {
            if (!Cache.TryGetValue(path, out var tokenizer))
                Cache[path] = tokenizer = Tokenizer.FromFile(path);
            return tokenizer;
        }
    }

    internal static JsonElement Golden(params string[] parts) => JsonDocument.Parse(File.ReadAllText(TestPaths.Fixture(parts))).RootElement;

    internal static int[] Ints(JsonElement e) => e.EnumerateArray().Select(x => x.GetInt32()).ToArray();

    internal static string[] Strings(JsonElement e) => e.EnumerateArray().Select(x => x.GetString()!).ToArray();

    internal static (int, int)[] Pairs(JsonElement e) => e.EnumerateArray().Select(x => (x[0].GetInt32(), x[1].GetInt32())).ToArray();

    internal static void Check<T>(List<string> failures, string what, string text, IEnumerable<T> expected, IEnumerable<T> actual)
    {
        var e = expected.ToArray();
        var a = actual.ToArray();
        if (!e.SequenceEqual(a))
            failures.Add($"{what} for {JsonSerializer.Serialize(text)}:\n  expected {string.Join(",", e)}\n  actual   {string.Join(",", a)}");
    }

    internal static void Report(List<string> failures, int cases)
    {
        Assert.True(failures.Count == 0, $"{failures.Count} mismatches over {cases} cases:\n" + string.Join("\n", failures.Take(8)));
    }

    internal static void CheckSingles(Tokenizer tokenizer, JsonElement golden, bool hasDecoded)
    {
        var failures = new List<string>();
        var cases = golden.GetProperty("single").EnumerateArray().ToList();
        foreach (var c in cases)
        {
            var text = c.GetProperty("text").GetString()!;
            var encoding = tokenizer.Encode(text);
            Check(failures, "ids", text, Ints(c.GetProperty("ids")), encoding.Ids);
            Check(failures, "ids-only", text, Ints(c.GetProperty("ids")), tokenizer.EncodeToIds(text));
            Check(failures, "tokens", text, Strings(c.GetProperty("tokens")), encoding.Tokens);
            Check(failures, "offsets", text, Pairs(c.GetProperty("offsets")), encoding.Offsets);
            Check(failures, "type_ids", text, Ints(c.GetProperty("type_ids")), encoding.TypeIds);
            if (c.TryGetProperty("special_tokens_mask", out var mask))
                Check(failures, "special_tokens_mask", text, Ints(mask), encoding.SpecialTokensMask);
            if (hasDecoded && c.TryGetProperty("decoded", out var decoded))
                Check(failures, "decoded", text, [decoded.GetString()], [tokenizer.Decode(encoding.Ids, skipSpecialTokens: true)]);
        }
        Report(failures, cases.Count);
    }

    internal static void CheckPairs(Tokenizer tokenizer, JsonElement golden)
    {
        var failures = new List<string>();
        var cases = golden.GetProperty("pairs").EnumerateArray().ToList();
        foreach (var c in cases)
        {
            var a = c.GetProperty("a").GetString()!;
            var b = c.GetProperty("b").GetString()!;
            var encoding = tokenizer.Encode(a, b);
            Check(failures, "ids", a + " | " + b, Ints(c.GetProperty("ids")), encoding.Ids);
            Check(failures, "type_ids", a + " | " + b, Ints(c.GetProperty("type_ids")), encoding.TypeIds);
            if (c.TryGetProperty("offsets", out var offsets))
                Check(failures, "offsets", a + " | " + b, Pairs(offsets), encoding.Offsets);
            if (c.TryGetProperty("tokens", out var tokens))
                Check(failures, "tokens", a + " | " + b, Strings(tokens), encoding.Tokens);
        }
        Report(failures, cases.Count);
    }

    [Theory]
    [MemberData(nameof(FixtureNames))]
    public void SingleTextsMatchHuggingFace(string name) =>
        CheckSingles(Load(TestPaths.Fixture("tokenizers", name + ".tokenizer.json")), Golden("tokenizers", name + ".golden.json"), hasDecoded: true);

    [Theory]
    [MemberData(nameof(FixtureNames))]
    public void BuiltFromTypedPartsAndWrittenAsJsonMatchesHuggingFace(string name)
    {
        // The loaded parts, assembled again in code; its generated tokenizer.json, read back, must tokenize the same.
        var loaded = Load(TestPaths.Fixture("tokenizers", name + ".tokenizer.json"));
        var built = new Tokenizer(loaded.Model, loaded.Normalizer, loaded.PreTokenizer, loaded.PostProcessor, loaded.Decoder,
            loaded.AddedTokens, loaded.SpecialTokens);
        var json = built.ToJson().ToJsonString();
        var golden = Golden("tokenizers", name + ".golden.json");
        CheckSingles(built, golden, hasDecoded: true);
        CheckSingles(Tokenizer.FromJson(json, "generated " + name, loaded.SpecialTokens), golden, hasDecoded: true);
        CheckPairs(Tokenizer.FromJson(json, "generated " + name, loaded.SpecialTokens), golden);
    }

    [Theory]
    [MemberData(nameof(FixtureNames))]
    public void PairsMatchHuggingFace(string name) =>
        CheckPairs(Load(TestPaths.Fixture("tokenizers", name + ".tokenizer.json")), Golden("tokenizers", name + ".golden.json"));

    [Theory]
    [MemberData(nameof(FixtureNames))]
    public void TruncationAndPaddingTo16MatchHuggingFace(string name)
    {
        // Options per call on the shared instance; the ids-only path and the copy made by WithTruncation/WithPadding must agree.
        var tokenizer = Load(TestPaths.Fixture("tokenizers", name + ".tokenizer.json"));
        var options = new EncodeOptions { Truncation = new TruncationOptions(16), Padding = new PaddingOptions { Length = 16 } };
        var configured = tokenizer.WithTruncation(options.Truncation).WithPadding(options.Padding);
        var failures = new List<string>();
        var cases = Golden("tokenizers", name + ".golden.json").GetProperty("truncate16_pad16").EnumerateArray().ToList();
        foreach (var c in cases)
        {
            var text = c.GetProperty("text").GetString()!;
            var encoding = tokenizer.Encode(text, options);
            Check(failures, "ids", text, Ints(c.GetProperty("ids")), encoding.Ids);
            Check(failures, "ids-only", text, Ints(c.GetProperty("ids")), tokenizer.EncodeToIds(text, null, options));
            Check(failures, "defaults", text, Ints(c.GetProperty("ids")), configured.Encode(text).Ids);
            Check(failures, "count", text, [Ints(c.GetProperty("ids")).Length], [tokenizer.CountTokens(text, null, options)]);
            Check(failures, "attention_mask", text, Ints(c.GetProperty("attention_mask")), encoding.AttentionMask);
            var expectedOverflow = c.GetProperty("overflowing").EnumerateArray().Select(o => string.Join(",", Ints(o))).ToArray();
            Check(failures, "overflowing", text, expectedOverflow, encoding.Overflowing.Select(o => string.Join(",", o.Ids)));
        }
        Report(failures, cases.Count);
    }

    [Fact]
    public void RealBertBaseUncasedMatchesHuggingFace()
    {
        var tokenizer = Load(TestPaths.Fixture("tokenizers", "real", "bert-base-uncased", "tokenizer.json"));
        var golden = Golden("real", "bert-base-uncased.golden.json");
        CheckSingles(tokenizer, golden, hasDecoded: true);
        CheckPairs(tokenizer, golden);
    }
}
